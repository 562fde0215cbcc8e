"""Chapter 1: is the test split's "better than the optimum" overfitting? Check it on 30 shuffled splits.

    python -m chapters.ch01_house_price.split_check --offline

The chapter splits the file in order (first 80 % train, last 20 % test), and there the SGD model's test MSE
comes out below the least-squares optimum's. This script repeats the numpy model of numpy_from_scratch.py
(same epochs, learning rate, batch size and seed) on `--splits` random 80/20 splits and prints the ratio
trained / optimum test MSE on each, so you can see whether the ordered split is typical. It also counts the test
columns that min-max scaling with the training statistics maps outside [0, 1].
"""
from __future__ import annotations

import numpy as np

from chapters.ch01_house_price.numpy_from_scratch import (
    BATCH_SIZE, EPOCHS, LR, NAME, fit_normalization, least_squares, mse, normalize, numpy_side_script,
    split_train_test, train_mini_batch, LinearRegression,
)
from common.cli import make_parser, positive_int, run
from common.files import write_metrics
from common.housing import FEATURE_NAMES, TARGET_NAME, load_housing


def test_ratio(train_raw: np.ndarray, test_raw: np.ndarray, seed: int) -> float:
    """Trained / optimum test MSE of the chapter's numpy SGD model (z-score statistics of the training split)."""
    stats = fit_normalization(train_raw, "zscore")
    train, test = normalize(train_raw, stats), normalize(test_raw, stats)
    x, y, tx, ty = train[:, :-1], train[:, -1:], test[:, :-1], test[:, -1:]
    model = LinearRegression(seed=seed)
    train_mini_batch(model, x, y, LR, EPOCHS, BATCH_SIZE, seed)
    w, b = least_squares(x, y)
    return mse(model.forward(tx), ty) / mse(tx @ w + b, ty)


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(f"{NAME}.split_check", "The ordered split against shuffled 80/20 splits.",
                         epochs=None, lr=None, batch_size=None,
                         data_help="a housing.data file (default: data/housing.data, downloaded if missing)")
    parser.add_argument("--splits", type=positive_int, default=30, help="number of shuffled splits")
    cfg = numpy_side_script(parser, "split_check").parse_args(argv)
    raw, source = load_housing(cfg.data, download=not cfg.offline)
    print(f"data: {source}")

    train_raw, test_raw = split_train_test(raw)
    ordered = test_ratio(train_raw, test_raw, cfg.seed)
    print(f"ordered split (the chapter's): test MSE ratio trained / optimum {ordered:.3f}")

    rng = np.random.default_rng(cfg.seed)
    ratios = np.array([test_ratio(*split_train_test(raw[rng.permutation(len(raw))]), cfg.seed)
                       for _ in range(cfg.splits)])
    print(f"{cfg.splits} shuffled splits: ratio mean {ratios.mean():.3f}, median {np.median(ratios):.3f}, "
          f"min {ratios.min():.3f}, max {ratios.max():.3f}; below 1 in {(ratios < 1).sum()} of {cfg.splits} "
          f"({(ratios < 1).mean():.0%})")

    stats = fit_normalization(train_raw, "minmax")
    scaled = normalize(test_raw, stats)
    names = [*FEATURE_NAMES, TARGET_NAME]
    outside = [(names[j], float(scaled[:, j].min()), float(scaled[:, j].max())) for j in range(scaled.shape[1])
               if scaled[:, j].min() < 0 or scaled[:, j].max() > 1]
    print(f"min-max with the training split's statistics: {len(outside)} of {len(names)} test columns leave [0, 1]: "
          + ", ".join(f"{n} {lo:.3f}..{hi:.3f}" for n, lo, hi in outside))
    metrics = {"data_source": source, "ordered_ratio": ordered, "shuffled_ratios": ratios.tolist(),
               "minmax_outside": outside}
    print(f"wrote {write_metrics(cfg.out, metrics)}")
    return metrics


if __name__ == "__main__":
    run(main)
