"""Chapter 1, part 1: house-price regression written by hand in numpy (波士顿房价预测, numpy 版).

Every piece the framework will later do for us is written out here: the linear model, the mean squared
error, its gradient derived by hand, and gradient descent, first on the full batch and then on shuffled
mini-batches. The closed-form least-squares solution shows the best any linear model can do on this split.

    python -m chapters.ch01_house_price.numpy_from_scratch --out runs/ch01_numpy
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from common.cli import make_parser, run
from common.download import DataError
from common.files import atomic_path, write_metrics
from common.housing import FEATURE_NAMES, TARGET_NAME, column_name, load_housing
from common.table import has_header, load_table
from common.plot import plot_curves
from common.runtime import check_finite_loss

NAME = "ch01_house_price"
EPOCHS = 100  # mini-batch SGD passes over the training set
LR = 0.01
FULL_BATCH_STEPS = 500  # full-batch gradient descent takes one step per pass, so it needs more passes...
FULL_BATCH_LR = 0.1  # ...and, with an exact gradient, can take larger steps than noisy mini-batches
BATCH_SIZE = 10
# What a diverged run (loss NaN/inf: the steps grow instead of shrinking) should change; chapter 2 says the same.
DIVERGED_ADVICE = "Lower --lr (e.g. by 10x; on normalised features 0.01 to 0.1 works)"
TRAIN_RATIO = 0.8
NORMALIZATIONS = ("zscore", "minmax")


# ---- 1. Data processing 数据处理 ----
def split_train_test(data: np.ndarray, ratio: float = TRAIN_RATIO) -> tuple[np.ndarray, np.ndarray]:
    """The first `ratio` of the rows train, the rest test, as the course does (no shuffling: repeatable)."""
    offset = int(len(data) * ratio)
    return data[:offset], data[offset:]


def fit_normalization(train: np.ndarray, method: str) -> dict:
    """Statistics for `normalize`, computed on the training split only, so no test information leaks in.

    minmax, normalisation 归一化: x' = (x - min) / (max - min), every column in [0, 1] on the training split
        (test rows may fall outside: they are scaled with the training statistics);
    zscore, standardisation 标准化: x' = (x - mean) / std, every column with mean 0 and std 1 on the training split.
    ("normalize" in the code's names covers both kinds of feature scaling 特征缩放.)
    """
    train = train.astype(np.float64)  # float32 sums drift by ~1e-5 over 404 rows
    if method == "minmax":
        shift, scale = train.min(axis=0), train.max(axis=0) - train.min(axis=0)
    elif method == "zscore":
        shift, scale = train.mean(axis=0), train.std(axis=0)
    else:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, not {method!r}")
    if np.any(scale == 0):  # a column constant on the training rows: dividing by 0 would give NaN everywhere
        raise DataError(f"{column_name(int(np.flatnonzero(scale == 0)[0]))} has the same value in all "
                        f"{len(train)} training rows (the first {TRAIN_RATIO:.0%}), so it cannot be normalised: "
                        "check the file, or shuffle its rows")
    return {"method": method, "shift": shift, "scale": scale}


def normalize(data: np.ndarray, stats: dict) -> np.ndarray:
    """Scale all F + 1 columns (F features and the target) with `stats` (min-max or z-score): [N, F + 1] -> same, float32."""
    return ((data - stats["shift"]) / stats["scale"]).astype(np.float32)


def price_in_thousands(y_normalized: np.ndarray, stats: dict) -> np.ndarray:
    """Undo the normalisation of the price column (the last one): back to $1000s."""
    return y_normalized * stats["scale"][-1] + stats["shift"][-1]


def in_target_units(value: float, data: dict) -> str:
    """A value of the target as a reader wants it: $22.0k for a housing price, 'price 312.4' for your column."""
    return f"${value:.1f}k" if data["target"] == TARGET_NAME else f"{data['target']} {value:.4g}"


def load_data(cfg) -> dict:
    """Load, split 8:2, normalise with training statistics; x: [N, F], y: [N, 1], float32 (housing: F = 13).

    With --target, or a --data file whose first row is a header, --data is your own CSV file: --target (default:
    its last column) is predicted, the other columns are the F features.
    Records F on cfg (cfg.n_features), so that build_model(cfg) makes a model of the right width.
    """
    if cfg.target is not None and cfg.data is None:
        raise DataError(f"--target {cfg.target} names a column of your own CSV file: pass it with --data FILE.csv")
    if cfg.target is not None or (cfg.data is not None and has_header(cfg.data)):
        table = load_table(cfg.data, cfg.target)
        raw, source, features, target = table.values, table.source, table.feature_names, table.target
    else:
        raw, source = load_housing(cfg.data, download=not cfg.offline)
        features, target = list(FEATURE_NAMES), TARGET_NAME
    train_raw, test_raw = split_train_test(raw)
    stats = fit_normalization(train_raw, cfg.norm)
    train, test = normalize(train_raw, stats), normalize(test_raw, stats)
    cfg.n_features = len(features)
    return {
        "train_x": train[:, :-1], "train_y": train[:, -1:],
        "test_x": test[:, :-1], "test_y": test[:, -1:],
        "stats": stats, "source": source, "features": features, "target": target,
    }


def least_squares(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The closed-form optimum of the MSE (最小二乘解): the best weights any linear model can reach."""
    x1 = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    solution = np.linalg.lstsq(x1, y.astype(np.float64), rcond=None)[0]
    return solution[:-1], float(solution[-1, 0])


# ---- 2. Model design 模型设计 ----
def mse(prediction: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error (均方误差): mean((prediction - y)^2) over the batch."""
    return float(np.mean((prediction - y) ** 2))


class LinearRegression:
    """y = x w + b, with x: [N, 13] -> y: [N, 1]; 13 weights and 1 bias, 14 parameters."""

    def __init__(self, n_features: int = 13, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(0.0, 0.01, size=(n_features, 1))
        self.b = 0.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w + self.b

    def gradient(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """Gradient of L = mean((x w + b - y)^2) with respect to w [13, 1] and b.

        With error e = x w + b - y:  dL/dw = 2/N x^T e,  dL/db = 2/N sum(e).
        """
        # BEGIN SOLUTION
        # PROMPT: derive dL/dw and dL/db of the mean squared error and return them as (grad_w, grad_b)
        error = self.forward(x) - y
        grad_w = 2.0 * x.T @ error / len(x)
        grad_b = 2.0 * float(np.mean(error))
        return grad_w, grad_b
        # END SOLUTION

    def step(self, grad_w: np.ndarray, grad_b: float, lr: float) -> None:
        """One gradient-descent update: move against the gradient by `lr`."""
        self.w -= lr * grad_w
        self.b -= lr * grad_b


def build_model(cfg) -> LinearRegression:
    return LinearRegression(n_features=cfg.n_features, seed=cfg.seed)


# ---- 3. Training config 训练配置 ----
def configure(cfg, model: LinearRegression) -> dict:
    """Plain gradient descent has no optimizer object: its whole configuration is these numbers."""
    return {"lr": cfg.lr, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "full_batch_lr": FULL_BATCH_LR, "full_batch_steps": FULL_BATCH_STEPS}


# ---- 4. Training loop 训练过程 ----
def train_full_batch(model: LinearRegression, x: np.ndarray, y: np.ndarray, lr: float, steps: int) -> list[float]:
    """Gradient descent on the whole training set at every step; returns the loss before each step."""
    losses = []
    for step in range(steps):
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported below, not warned about
            losses.append(mse(model.forward(x), y))
            model.step(*model.gradient(x, y), lr)
        check_finite_loss(losses[-1], f"full-batch step {step + 1}", advice=DIVERGED_ADVICE)
    return losses


def train_mini_batch(
    model: LinearRegression, x: np.ndarray, y: np.ndarray, lr: float, epochs: int, batch_size: int, seed: int
) -> list[float]:
    """Mini-batch SGD: shuffle each epoch, step on every batch; returns the mean batch loss per epoch."""
    rng = np.random.default_rng(seed)
    epoch_losses = []
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        batch_losses = []
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported below, not warned about
            for start in range(0, len(x), batch_size):
                batch = order[start:start + batch_size]
                batch_losses.append(mse(model.forward(x[batch]), y[batch]))
                model.step(*model.gradient(x[batch], y[batch]), lr)
            epoch_losses.append(float(np.mean(batch_losses)))
        # Stop at the first epoch whose loss is NaN/inf, before anything (model, metrics.json) holds NaN.
        check_finite_loss(epoch_losses[-1], f"epoch {epoch + 1}", advice=DIVERGED_ADVICE)
    return epoch_losses


def train(cfg, model: LinearRegression, data: dict, training: dict) -> dict:
    """Full-batch gradient descent on a fresh model (for the plot), then mini-batch SGD on `model`."""
    x, y = data["train_x"], data["train_y"]
    full_batch_model = build_model(cfg)
    full_batch = train_full_batch(full_batch_model, x, y, training["full_batch_lr"], training["full_batch_steps"])
    mini_batch = train_mini_batch(model, x, y, training["lr"], training["epochs"], training["batch_size"], cfg.seed)
    return {"full_batch_loss": full_batch, "mini_batch_loss": mini_batch}


# ---- 5. Save 保存模型 ----
def save(cfg, model: LinearRegression, data: dict, history: dict, optimal_train_mse: float) -> dict:
    """Write the weights with the normalisation statistics and (unless --no-figures) the loss curves beside the
    optimum."""
    weights = cfg.out / "numpy_model.npz"
    stats = data["stats"]
    with atomic_path(weights) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a name
        np.savez(f, w=model.w, b=model.b, shift=stats["shift"], scale=stats["scale"], method=stats["method"])
    if not cfg.figures:
        return {"weights": weights, "plot": None}
    # One unit on the x axis: an epoch, one pass over the training data. Full-batch GD takes one step per pass,
    # mini-batch SGD one step per batch, so the plot compares them at the same amount of computation.
    steps_per_epoch = math.ceil(len(data["train_x"]) / cfg.batch_size)
    plot = plot_curves(
        {"full-batch GD (1 step per epoch)": history["full_batch_loss"],
         f"mini-batch SGD ({steps_per_epoch} steps per epoch; epoch mean)": history["mini_batch_loss"]},
        cfg.out / "numpy_loss.png", title="Boston housing, numpy",
        xlabel="epoch (one pass over the training data)", ylabel="training MSE (normalised)",
        logy=True, logx=True, hlines={"least-squares optimum": optimal_train_mse},
    )
    return {"weights": weights, "plot": plot}


def evaluate(model_forward, data: dict) -> dict:
    """Train/test MSE of a trained model beside the closed-form optimum on the same split.

    `model_forward` maps x [N, 13] (numpy) to predictions [N, 1] (numpy); MSE is in normalised units.
    """
    w, b = least_squares(data["train_x"], data["train_y"])
    result = {}
    for split in ("train", "test"):
        x, y = data[f"{split}_x"], data[f"{split}_y"]
        result[f"{split}_mse"] = mse(model_forward(x), y)
        result[f"optimal_{split}_mse"] = mse(x @ w + b, y)
        result[f"{split}_mse_ratio"] = result[f"{split}_mse"] / result[f"optimal_{split}_mse"]
    # Normalised MSE back to real units: the price was divided by scale, so the error was too.
    rmse = float(np.sqrt(result["test_mse"]) * data["stats"]["scale"][-1])
    if data.get("target", TARGET_NAME) == TARGET_NAME:
        result["test_rmse_k_dollars"] = rmse  # the housing price is in $1000s
    else:
        result[f"test_rmse_{data['target']}"] = rmse
    return result


def print_evaluation(metrics: dict) -> None:
    print(f"{'':6} {'trained MSE':>12} {'optimum (lstsq)':>16} {'ratio':>7}")
    for split in ("train", "test"):
        print(f"{split:6} {metrics[f'{split}_mse']:12.4f} {metrics[f'optimal_{split}_mse']:16.4f} "
              f"{metrics[f'{split}_mse_ratio']:7.3f}")
    if "test_rmse_k_dollars" in metrics:
        print(f"test RMSE in real units: ${metrics['test_rmse_k_dollars']:.2f}k (MSE above is in normalised "
              "price units)")
    for key in [k for k in metrics if k.startswith("test_rmse_") and k != "test_rmse_k_dollars"]:
        print(f"test RMSE in {key[len('test_rmse_'):]}'s units: {metrics[key]:.4g} (MSE above is in normalised units)")


def build_parser(name: str, description: str):
    parser = make_parser(name, description, epochs=EPOCHS, lr=LR, batch_size=BATCH_SIZE, figures=True,
                         data_help="a housing.data file (default: the md5-verified data/housing.data, "
                                   "downloaded if missing, else mlxtend's offline copy), "
                                   "or your own CSV file with a header row (see --target)")
    parser.add_argument("--target", default=None, metavar="COLUMN",
                        help="predict this column of the CSV (with a header row) given with --data; every other "
                             "column is a feature, numbers only (default: the CSV's last column)")
    parser.set_defaults(n_features=len(FEATURE_NAMES))  # the model's width until load_data finds the data's
    parser.add_argument("--norm", choices=NORMALIZATIONS, default="zscore",
                        help="zscore (x-mean)/std 标准化, or minmax (x-min)/(max-min) 归一化")
    return parser


def numpy_side_script(parser, script: str):
    """A numpy script's parser: outputs in runs/<chapter>/<script>/, and a --device that says it changes nothing
    (it is accepted so that train.py's command line works here too)."""
    parser.set_defaults(out=Path("runs") / NAME / script)
    for action in parser._actions:
        if action.dest == "device":
            action.help = "ignored here: numpy computes on the CPU (accepted so train.py's command line works)"
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser(f"{NAME}.numpy_from_scratch", "Boston house prices: linear regression written by hand in numpy.")
    cfg = numpy_side_script(parser, "numpy_from_scratch").parse_args(argv)
    np.random.seed(cfg.seed)
    start = time.perf_counter()
    data = load_data(cfg)
    model = build_model(cfg)
    training = configure(cfg, model)
    history = train(cfg, model, data, training)
    metrics = {"data_source": data["source"], "impl": "numpy", "normalization": cfg.norm, "epochs": cfg.epochs,
               **evaluate(model.forward, data), "train_seconds": time.perf_counter() - start}
    paths = save(cfg, model, data, history, metrics["optimal_train_mse"])
    print(f"data: {data['source']}")
    print_evaluation(metrics)
    written = [paths["weights"], paths["plot"], write_metrics(cfg.out, {**metrics, **history})]
    print(f"wrote {', '.join(str(p) for p in written if p)}")
    return metrics


if __name__ == "__main__":
    run(main)
