"""Chapter 1, part 2: house-price regression with Paddle (波士顿房价预测, 飞桨版).

The same linear model as the numpy version, now in the five steps every chapter follows: Paddle
computes the gradient (autograd) and updates the weights (the optimizer); the loop stays ours.

    python -m chapters.ch01_house_price --out runs/ch01_house_price
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import paddle

from chapters.ch01_house_price.numpy_from_scratch import (
    DIVERGED_ADVICE, NAME, build_parser, evaluate, in_target_units, least_squares, load_data, mse,
    price_in_thousands, print_evaluation,
)
from common.checkpoint import load_state, save_state
from common.cli import run
from common.files import write_json, write_metrics
from common.plot import plot_curves
from common.runtime import check_finite_loss, seed_everything, set_device

# load_data (step 1) is the numpy version's: the data processing is the same whichever framework trains.
__all__ = ["load_data", "build_model", "configure", "train", "save", "predict", "main"]
MODEL_FILE = "model.pdparams"
NORMALIZATION_FILE = "normalization.json"


# ---- 2. Model design 模型设计 ----
class Regressor(paddle.nn.Layer):
    """One fully connected layer: x [N, 13] -> price [N, 1]; 13 weights + 1 bias = 14 parameters."""

    def __init__(self, n_features: int = 13):
        super().__init__()
        self.fc = paddle.nn.Linear(n_features, 1)  # SOLUTION

    def forward(self, x):
        return self.fc(x)


def build_model(cfg) -> Regressor:
    return Regressor(cfg.n_features)  # as many inputs as load_data found feature columns


# ---- 3. Training config 训练配置 ----
def configure(cfg, model: Regressor) -> dict:
    """Plain SGD on the mean squared error, as in the numpy version."""
    return {
        "optimizer": paddle.optimizer.SGD(learning_rate=cfg.lr, parameters=model.parameters()),
        "loss_fn": paddle.nn.MSELoss(),
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
    }


# ---- 4. Training loop 训练过程 ----
def train(cfg, model: Regressor, data: dict, training: dict) -> dict:
    """Mini-batch SGD, reshuffled every epoch; returns {"loss": mean batch loss per epoch}."""
    x = paddle.to_tensor(data["train_x"])
    y = paddle.to_tensor(data["train_y"])
    optimizer, loss_fn, batch_size = training["optimizer"], training["loss_fn"], training["batch_size"]
    rng = np.random.default_rng(cfg.seed)
    model.train()
    history = {"loss": []}
    for epoch in range(training["epochs"]):
        order = paddle.to_tensor(rng.permutation(len(data["train_x"])))
        batch_losses = []
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            batch_losses.append(loss)
        history["loss"].append(paddle.stack(batch_losses).mean().item())  # one device sync per epoch
        # Stop at the first epoch whose loss is NaN/inf, before anything (model, metrics.json) holds NaN.
        check_finite_loss(history["loss"][-1], f"epoch {epoch + 1}", advice=DIVERGED_ADVICE)
    return history


def predict_normalized(model: Regressor, x: np.ndarray) -> np.ndarray:
    """x [N, 13] normalised features -> [N, 1] normalised prices, in evaluation mode without gradients."""
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


# ---- 5. Save 保存模型 ----
def save(cfg, model: Regressor, data: dict, history: dict) -> dict:
    """The state_dict, the normalisation statistics a prediction needs, and (unless --no-figures) the loss curve."""
    stats = data["stats"]
    model_path = save_state(cfg.out / MODEL_FILE, model.state_dict())
    stats_path = write_json(cfg.out / NORMALIZATION_FILE, {
        "method": stats["method"], "shift": stats["shift"].tolist(), "scale": stats["scale"].tolist(),
        "features": data["features"], "target": data["target"],  # the columns, in the order the model takes them
    })
    paths = {"model": model_path, "normalization": stats_path, "plot": None}
    if cfg.figures:
        w, b = least_squares(data["train_x"], data["train_y"])  # the best any linear model can do, as in numpy's
        paths["plot"] = plot_curves({"mini-batch SGD (epoch mean)": history["loss"]}, cfg.out / "loss.png",
                                    title="Boston housing, Paddle", ylabel="training MSE (normalised)", logy=True,
                                    hlines={"least-squares optimum": mse(data["train_x"] @ w + b, data["train_y"])})
    return paths


def load_for_prediction(out_dir: Path) -> tuple[Regressor, dict]:
    """Load what `save` wrote: a model with its weights, and the normalisation statistics (with the column names)."""
    stats = json.loads((out_dir / NORMALIZATION_FILE).read_text(encoding="utf-8"))
    model = Regressor(len(stats["shift"]) - 1)  # the statistics hold the F features and the target
    model.set_state_dict(load_state(out_dir / MODEL_FILE))
    return model, {"method": stats["method"], "shift": np.array(stats["shift"]), "scale": np.array(stats["scale"]),
                   "features": stats.get("features"), "target": stats.get("target")}


def predict(out_dir: Path, x_normalized: np.ndarray) -> np.ndarray:
    """Prices in $1000s for normalised features x [N, 13], with the model and statistics saved in out_dir."""
    model, stats = load_for_prediction(out_dir)
    return price_in_thousands(predict_normalized(model, x_normalized), stats)


def predict_raw(out_dir: Path, features: np.ndarray) -> np.ndarray:
    """Targets in their own units ($1000s for housing) for raw features [N, F]: normalised as in training first."""
    model, stats = load_for_prediction(out_dir)
    x = ((np.asarray(features, np.float64) - stats["shift"][:-1]) / stats["scale"][:-1]).astype(np.float32)
    return price_in_thousands(predict_normalized(model, x), stats)


def main(argv: list[str] | None = None) -> dict:
    cfg = build_parser(NAME, "Boston house prices: linear regression with Paddle.").parse_args(argv)
    seed_everything(cfg.seed)
    device = set_device(cfg.device)
    start = time.perf_counter()
    data = load_data(cfg)
    model = build_model(cfg)
    training = configure(cfg, model)
    history = train(cfg, model, data, training)
    train_seconds = time.perf_counter() - start
    paths = save(cfg, model, data, history)

    # Load the saved model back, as a deployment would, and price one house it has never seen.
    house = len(data["test_x"]) - 1
    predicted = predict(cfg.out, data["test_x"][house:house + 1]).item()
    actual = price_in_thousands(data["test_y"][house], data["stats"]).item()
    evaluation = evaluate(lambda x: predict_normalized(model, x), data)
    unit = "k_dollars" if "test_rmse_k_dollars" in evaluation else data["target"]  # housing prices are in $1000s
    metrics = {
        "data_source": data["source"], "impl": "paddle", "device": device, "normalization": cfg.norm,
        "epochs": cfg.epochs, "mse_units": "normalised price (the units the model trains on)",
        "features": data["features"], "target": data["target"], **evaluation,
        f"example_predicted_{unit}": predicted, f"example_actual_{unit}": actual,
        "train_seconds": train_seconds, "loss_history": history["loss"],
    }
    print(f"data: {data['source']}  device: {device}")
    print_evaluation(metrics)
    print(f"held-out {'house' if unit == 'k_dollars' else 'row'} #{house} of the test split: "
          f"predicted {in_target_units(predicted, data)}, actual {in_target_units(actual, data)}")
    written = [paths["model"], paths["normalization"], paths["plot"], write_metrics(cfg.out, metrics)]
    print(f"wrote {', '.join(str(p) for p in written if p)}")
    return metrics


if __name__ == "__main__":
    run(main)
