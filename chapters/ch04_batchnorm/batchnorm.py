"""Chapter 4: batch normalisation (批归一化) and dropout (丢弃法), checked against numpy and shown in training.

Steps 1-2 check the two layers: numpy BatchNorm1D/2D and Dropout (numerics.py) against Paddle's, in training
and evaluation mode. Steps 3-5 train chapter 2's LeNet on MNIST with and without them, from the same seed on the
same batches, at a moderate learning rate and at a high one where the plain network gets stuck and the
BatchNorm one still trains.

    python -m chapters.ch04_batchnorm --out runs/ch04_batchnorm
"""
from __future__ import annotations

import math
import time

import numpy as np
import paddle
import paddle.nn.functional as F

from chapters.ch04_batchnorm import numerics
from common.checkpoint import load_state, save_state
from common.cli import dropout_probability, make_parser, positive_float, positive_int, run
from common.files import write_metrics
from common.mnist import load_mnist, make_loader, set_epoch
from common.models import LeNet, count_parameters, evaluate
from common.plot import plot_curves
from common.runtime import seed_everything, set_device

NAME = "ch04_batchnorm"
EPOCHS = 3
LR = 0.05  # plain SGD: the plain LeNet trains well here
HIGH_LR = 0.4  # the plain LeNet gets stuck at chance (dead ReLUs) here, the BatchNorm one trains (seed 0)
BATCH_SIZE = 64
DROPOUT = 0.3
TRAIN_SIZE = 4000  # training images used (all 4,000 of the offline subset's training split; keeps the run ~1 min)
VARIANTS = (  # name, batch_norm, dropout?, high learning rate?
    ("plain", False, False, False),
    ("dropout", False, True, False),
    ("bn", True, False, False),
    ("plain_high_lr", False, False, True),
    ("bn_high_lr", True, False, True),
)


# ---- 1. Data processing 数据处理 ----
def load_data(cfg) -> dict:
    """MNIST (normalised images [N, 1, 28, 28], labels [N]): the first cfg.train_size training images in a
    shuffled loader, and the validation split as arrays. Every variant reuses this loader, so all see the same
    batches in the same order (the order of epoch e depends only on the seed and e)."""
    mnist = load_mnist(cfg.data, seed=cfg.seed, download=not cfg.offline)
    n = min(cfg.train_size, len(mnist.train_y))
    # drop_last: a last batch of one image has no batch statistics, and Paddle's BatchNorm1D then silently
    # passes it through unnormalised (y = x, measured with paddle 3.3.1); BatchNorm wants whole batches.
    loader = make_loader(mnist.train_x[:n], mnist.train_y[:n], min(cfg.batch_size, n), shuffle=True, seed=cfg.seed,
                         drop_last=True)
    return {
        "train_loader": loader,
        "train_size": n,
        "val_x": mnist.val_x,
        "val_y": mnist.val_y,
        "source": mnist.source,
    }


# ---- 2. Model design 模型设计 ----
def check_layers(cfg) -> dict:
    """Check the two layers before building with them: numpy BatchNorm and Dropout against Paddle's (numerics.py)."""
    result = {
        "bn1d": numerics.compare_batchnorm(1, seed=cfg.seed),
        "bn2d": numerics.compare_batchnorm(2, seed=cfg.seed + 1),
        "running_variance": numerics.running_variance_convention(cfg.seed),
        "dropout_modes": numerics.dropout_modes(cfg.dropout, seed=cfg.seed),
        "dropout_expectation": numerics.dropout_expectation(cfg.dropout, seed=cfg.seed),
    }
    numerics.report_batchnorm("BatchNorm1D, x [8, 3]", result["bn1d"])
    numerics.report_batchnorm("BatchNorm2D, x [8, 3, 5, 5]", result["bn2d"])
    rv = result["running_variance"]
    print(f"running variance: Paddle keeps the {rv['matches']} batch variance "
          f"(distance to biased {rv['distance']['biased']:.1e}, to unbiased {rv['distance']['unbiased']:.1e})")
    numerics.report_dropout(result["dropout_modes"], result["dropout_expectation"], cfg.dropout)
    return result


def build_model(cfg, batch_norm: bool = True, dropout: float = 0.0) -> LeNet:
    """Chapter 2's LeNet (common.models): x [N, 1, 28, 28] -> logits [N, 10]; with batch_norm, BatchNorm2D after
    each conv and BatchNorm1D after each hidden linear; with dropout > 0, Dropout before the last two linears."""
    return LeNet(batch_norm=batch_norm, dropout=dropout)


# ---- 3. Training config 训练配置 ----
def configure(cfg, model: LeNet, lr: float | None = None) -> dict:
    """Plain SGD (no momentum, so the learning rate alone decides stability) on the cross-entropy of logits."""
    return {
        "optimizer": paddle.optimizer.SGD(learning_rate=lr or cfg.lr, parameters=model.parameters()),
        "loss_fn": F.cross_entropy,
        "epochs": cfg.epochs,
        "lr": lr or cfg.lr,
    }


# ---- 4. Training loop 训练过程 ----
def train(cfg, model: LeNet, data: dict, training: dict) -> dict:
    """Returns {"loss": mean mini-batch loss per epoch, "val_acc": validation accuracy per epoch,
    "step_loss": every mini-batch's loss}."""
    loader, optimizer, loss_fn = data["train_loader"], training["optimizer"], training["loss_fn"]
    history = {"loss": [], "val_acc": [], "step_loss": []}
    for epoch in range(training["epochs"]):
        set_epoch(loader, epoch)  # this epoch's shuffle order, the same for every variant
        model.train()  # BatchNorm: normalise with the batch's statistics and update the running ones; Dropout: on
        losses = []
        for images, labels in loader:
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            losses.append(loss)
        step_loss = paddle.stack(losses).numpy()  # one device sync per epoch
        history["step_loss"] += step_loss.tolist()
        history["loss"].append(float(step_loss.mean()))
        history["val_acc"].append(evaluate(model, data["val_x"], data["val_y"])["accuracy"])
    return history


def run_variant(cfg, data: dict, batch_norm: bool, dropout: bool, high_lr: bool) -> tuple[LeNet, dict, float]:
    """Steps 2-4 for one variant, from the same seed: (trained model, history, seconds)."""
    seed_everything(cfg.seed)
    model = build_model(cfg, batch_norm=batch_norm, dropout=cfg.dropout if dropout else 0.0)
    training = configure(cfg, model, cfg.high_lr if high_lr else cfg.lr)
    start = time.perf_counter()
    history = train(cfg, model, data, training)
    return model, history, time.perf_counter() - start


def label(cfg, name: str) -> str:
    _, batch_norm, dropout, high_lr = next(v for v in VARIANTS if v[0] == name)
    return (f"LeNet{' + BN' if batch_norm else ''}{f' + dropout {cfg.dropout}' if dropout else ''}"
            f" lr={cfg.high_lr if high_lr else cfg.lr}")


# ---- 5. Save 保存模型 ----
def save(cfg, models: dict, histories: dict) -> dict:
    """Each variant's state_dict (BatchNorm's running mean/variance included), and (unless --no-figures) the curves
    of all variants."""
    paths = {name: save_state(cfg.out / "models" / f"{name}.pdparams", model.state_dict())
             for name, model in models.items()}
    paths["loss_plot"] = paths["accuracy_plot"] = None
    if not cfg.figures:
        return paths
    paths["loss_plot"] = plot_curves(
        {label(cfg, n): moving_average(h["step_loss"], 10) for n, h in histories.items()}, cfg.out / "loss.png",
        title="MNIST LeNet: training loss (10-step moving average)", xlabel="step", ylabel="cross-entropy", logy=True,
        legend_outside=True)  # five curves fill the box: a legend inside would hide some of them
    paths["accuracy_plot"] = plot_curves(
        {label(cfg, n): h["val_acc"] for n, h in histories.items()}, cfg.out / "accuracy.png",
        title="MNIST LeNet: validation accuracy", ylabel="accuracy")
    return paths


def moving_average(values: list[float], window: int) -> list[float]:
    """Mean of the last `window` values at each step (fewer at the start): a readable curve from noisy batch losses."""
    v = np.asarray(values, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(v)])
    counts = np.minimum(np.arange(1, len(v) + 1), window)
    return ((cumulative[1:] - cumulative[np.arange(1, len(v) + 1) - counts]) / counts).tolist()


def reload_accuracy(cfg, name: str, state_path, data: dict) -> float:
    """Load a saved variant into a fresh LeNet and measure it again: the running statistics travel in the file."""
    _, batch_norm, dropout, _ = next(v for v in VARIANTS if v[0] == name)
    model = build_model(cfg, batch_norm=batch_norm, dropout=cfg.dropout if dropout else 0.0)
    model.set_state_dict(load_state(state_path))
    return evaluate(model, data["val_x"], data["val_y"])["accuracy"]


def finite_or_none(values: list[float]) -> list[float | None]:
    """JSON has no NaN: a diverged loss is written as null."""
    return [v if math.isfinite(v) else None for v in values]


def build_parser():
    parser = make_parser(NAME, "BatchNorm and dropout: numpy vs Paddle, then LeNet on MNIST with and without them.",
                         epochs=EPOCHS, lr=LR, batch_size=BATCH_SIZE, figures=True,
                         data_help="folder with the four MNIST IDX files (default: data/mnist, downloaded if "
                                   "missing, else the offline 5,000-digit subset)")
    parser.add_argument("--high-lr", type=positive_float, default=HIGH_LR,
                        help="the high learning rate at which plain and BatchNorm LeNet are compared")
    parser.add_argument("--dropout", type=dropout_probability, default=DROPOUT, help="dropout probability of the dropout variant")
    parser.add_argument("--train-size", type=positive_int, default=TRAIN_SIZE, help="training images used")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    cfg = parser.parse_args(argv)
    if cfg.batch_size < 2:  # BatchNorm1D passes a [1, C] batch through unchanged, silently (see the README)
        parser.error("--batch-size must be at least 2: BatchNorm normalises over the batch, and Paddle passes a "
                     "batch of one sample through unchanged")
    seed_everything(cfg.seed)
    device = set_device(cfg.device)
    start = time.perf_counter()
    data = load_data(cfg)
    print(f"data: {data['source']}, {data['train_size']} training images  device: {device}\n")

    layers = check_layers(cfg)
    models, histories, seconds = {}, {}, {}
    print()
    for name, batch_norm, dropout, high_lr in VARIANTS:
        models[name], histories[name], seconds[name] = run_variant(cfg, data, batch_norm, dropout, high_lr)
        h = histories[name]
        print(f"{label(cfg, name):<32} loss/epoch {' '.join(f'{v:.3f}' for v in h['loss'])}   "
              f"val acc {' '.join(f'{v:.3f}' for v in h['val_acc'])}   {seconds[name]:.1f}s")
    paths = save(cfg, models, histories)
    reloaded = reload_accuracy(cfg, "bn", paths["bn"], data)

    plain, bn = LeNet(), LeNet(batch_norm=True)
    running = sum(p.size for p in bn.parameters() if p.stop_gradient)
    diffs = {f"{d}_{k}": layers[d]["max_abs_diff"][k] for d in ("bn1d", "bn2d")
             for k in ("train", "eval", "running_mean", "running_var")}
    metrics = {
        "data_source": data["source"], "device": device, "train_images": data["train_size"],
        "val_images": len(data["val_y"]), "epochs": cfg.epochs, "batch_size": cfg.batch_size,
        "lr": cfg.lr, "high_lr": cfg.high_lr, "dropout_p": cfg.dropout, "seed": cfg.seed,
        "max_abs_diff_numpy_vs_paddle": diffs,
        "running_variance": layers["running_variance"]["matches"],
        "dropout_checks": {mode: {k: r[k] for k in ("keep_fraction", "same_mask_with_same_seed", "train_diff", "eval_diff")}
                    | layers["dropout_expectation"][mode]
                    for mode, r in layers["dropout_modes"].items()},
        "trainable_parameters": {"lenet": count_parameters(plain), "lenet_bn": count_parameters(bn)},
        "bn_running_statistics": running,
        "final_val_accuracy": {name: h["val_acc"][-1] for name, h in histories.items()},
        "bn_val_accuracy_after_reload": reloaded,
        "histories": {name: {"loss": finite_or_none(h["loss"]), "val_acc": h["val_acc"]} for name, h in histories.items()},
        "train_seconds": seconds,
        "total_seconds": time.perf_counter() - start,
    }
    print(f"\nmax |numpy - paddle| over BatchNorm1D/2D, train/eval/running stats: {max(diffs.values()):.2e}")
    print(f"trainable parameters: LeNet {metrics['trainable_parameters']['lenet']:,}, LeNet + BN "
          f"{metrics['trainable_parameters']['lenet_bn']:,} (+ {running} running means/variances, not trained)")
    for name in ("plain", "bn", "plain_high_lr", "bn_high_lr", "dropout"):
        print(f"final validation accuracy  {label(cfg, name):<32} {metrics['final_val_accuracy'][name]:.3f}")
    print(f"BN model reloaded from {paths['bn']}: validation accuracy {reloaded:.3f}")
    written = [paths["loss_plot"], paths["accuracy_plot"], f"{cfg.out / 'models'}/*.pdparams",
               write_metrics(cfg.out, metrics)]
    print(f"wrote {', '.join(str(p) for p in written if p)}  ({metrics['total_seconds']:.0f}s)")
    return metrics


if __name__ == "__main__":
    run(main)
