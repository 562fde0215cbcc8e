"""Predict with a trained chapter-1 model (模型推理): raw feature values in, the target in its own units out.

    python -m chapters.ch01_house_price.predict --model runs/ch01_house_price 0.00632,18,2.31,0,0.538,6.575,...
    python -m chapters.ch01_house_price.predict --model runs/my_houses --csv new_houses.csv

Each positional argument is one row: the feature values, comma-separated, in the order the run saved
(`normalization.json` "features"); or `--csv FILE` with a header that names those columns (any order; other
columns, the target among them, are ignored). The run's own statistics normalise the features, as in training.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from chapters.ch01_house_price.numpy_from_scratch import in_target_units
from chapters.ch01_house_price.train import NAME, NORMALIZATION_FILE, load_for_prediction, predict_raw
from common.cli import HelpFormatter, run
from common.download import DataError
from common.table import read_csv


def rows_from_text(rows: list[str], features: list[str]) -> np.ndarray:
    values = []
    for i, row in enumerate(rows, start=1):
        cells = [c for c in row.replace(" ", ",").split(",") if c]
        if len(cells) != len(features):
            raise DataError(f"row {i} has {len(cells)} values, the model takes {len(features)}: "
                            f"{', '.join(features)}")
        try:
            values.append([float(c) for c in cells])
        except ValueError:
            raise DataError(f"row {i}: {row!r} holds something that is not a number") from None
        if not np.all(np.isfinite(values[-1])):  # nan or inf would come out as a price of "$nank"
            raise DataError(f"row {i}: {row!r} holds nan or inf; every value must be a finite number")
    return np.asarray(values, np.float64)


def rows_from_csv(path: Path, features: list[str]) -> np.ndarray:
    """The model's feature columns of a CSV with a header, in the model's order (other columns ignored)."""
    if not path.is_file():  # read_csv's own message speaks of --data, training's option
        what = "is a folder" if path.is_dir() else "does not exist"
        raise DataError(f"--csv {path} {what}: give a CSV file with a header row naming the columns "
                        f"{', '.join(features)}")
    return read_csv(path, columns=features)[1]  # only the model's columns need numbers: others may hold text


def main(argv: list[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(prog=f"python -m chapters.{NAME}.predict", formatter_class=HelpFormatter,
                                     description="Predict the target from raw feature values with a trained run.")
    parser.add_argument("rows", nargs="*", help="feature values of one row, comma-separated")
    parser.add_argument("--model", type=Path, default=Path("runs") / NAME, help="run folder (its --out)")
    parser.add_argument("--csv", type=Path, default=None,
                        help="a CSV with a header naming the feature columns (other columns are ignored)")
    parser.add_argument("--json", action="store_true", help="print the predictions as a JSON list")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    cfg = parser.parse_args(argv)
    if cfg.model.is_file():
        raise DataError(f"--model {cfg.model} is a file: give the run folder that holds it "
                        f"(e.g. --model {cfg.model.parent})")
    if not (cfg.model / NORMALIZATION_FILE).is_file():
        raise DataError(f"no trained model in {cfg.model} (no {NORMALIZATION_FILE}): train one first with "
                        f"`python -m chapters.{NAME} --out {cfg.model}`, or pass --model RUN_FOLDER")
    _, stats = load_for_prediction(cfg.model)
    features = stats["features"] or [f"x{i}" for i in range(len(stats["shift"]) - 1)]
    target = stats["target"] or "target"
    if bool(cfg.rows) == bool(cfg.csv):
        parser.error(f"give the rows to predict, or --csv FILE (one of the two); the model takes "
                     f"{', '.join(features)}")
    x = rows_from_csv(cfg.csv, features) if cfg.csv else rows_from_text(cfg.rows, features)
    predictions = [round(float(v), 6) for v in predict_raw(cfg.model, x)[:, 0]]
    if cfg.json:
        print(json.dumps(predictions))
    else:
        for i, value in enumerate(predictions, start=1):
            print(f"row {i}: {in_target_units(value, {'target': target})}")
    return predictions


if __name__ == "__main__":
    run(main)
