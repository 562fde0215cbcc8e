"""Optimization algorithms (优化算法) side by side: SGD, Momentum, Adagrad, RMSProp, Adam.

Same model, same data, same initial weights, same batch order (same seed); only the optimizer differs, each at
its textbook learning rate (LR below) with a constant schedule. Writes one plot of the training-loss curves
and a table. An optimizer whose loss blows up is reported as diverged, and the others still run.
The data and the model come from the chapter's own steps (`train.load_data`, `train.build_model`, with
--data as train.py takes it), so a changed step changes this comparison too.

    python -m chapters.ch02_mnist.compare_optimizers --model mlp --epochs 10   # -> runs/ch02_mnist/compare_optimizers/
"""
from __future__ import annotations

import time
from pathlib import Path

import argparse

from chapters.ch02_mnist import train as ch02
from common.cli import make_parser, positive_int, run
from common.files import atomic_path, write_metrics
from common.mnist import set_epoch
from common.models import evaluate
from common.plot import plot_curves
from common.runtime import seed_everything, set_device

# Constant learning rates, the usual starting points. (train.DEFAULT_LR holds higher *peak* rates for the
# one-cycle schedule, which spends most of its steps well below the peak.)
LR = {"sgd": 0.1, "momentum": 0.05, "adagrad": 0.01, "rmsprop": 0.001, "adam": 0.001}
OPTIMIZERS = tuple(LR)


def chapter_config(cfg) -> argparse.Namespace:
    """The chapter's own cfg for this comparison (through train.py's parser): constant schedule, no augmentation."""
    args = ["--model", cfg.model, "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size),
            "--seed", str(cfg.seed), "--schedule", "constant", "--augment", "0", "--out", str(cfg.out)]
    args += ["--data", str(cfg.data)] if cfg.data is not None else []
    args += ["--offline"] if cfg.offline else []
    args += ["--val-size", str(cfg.val_size)] if cfg.val_size is not None else []
    return ch02.parse_args(args)


def compare(cfg) -> dict:
    """optimizer -> {"lr", "train_loss" per epoch, "val_accuracy" per epoch, "seconds"}."""
    base = chapter_config(cfg)
    loaded = ch02.load_data(base)  # also records the model's sizes on base (classes, channels, image size)
    data, loader = loaded["data"], loaded["train_loader"]
    results = {"data_source": data.source}
    for name in OPTIMIZERS:
        options = argparse.Namespace(**{**vars(base), "optimizer": name, "lr": LR[name]})
        seed_everything(cfg.seed)  # the same initial weights for every optimizer
        model = ch02.build_model(options)
        training = ch02.configure(options, model, steps_per_epoch=len(loader))
        losses, accuracies = [], []
        start = time.perf_counter()
        diverged = None
        for epoch in range(cfg.epochs):
            set_epoch(loader, epoch)  # the same batches, in the same order, for every optimizer
            try:
                losses.append(ch02.train_one_epoch(model, loader, training, epoch, show_progress=False)["loss"])
            except ch02.TrainingDiverged as e:
                diverged = str(e)
                break
            accuracies.append(evaluate(model, data.val_x, data.val_y)["accuracy"])
        results[name] = {"lr": training["lr"], "train_loss": losses, "val_accuracy": accuracies,
                         "seconds": time.perf_counter() - start, "diverged": diverged}
        if diverged:
            print(f"{name:9s} lr {training['lr']:<6g} DIVERGED: {diverged}")
        else:
            print(f"{name:9s} lr {training['lr']:<6g} final train loss {losses[-1]:.4f}  "
                  f"val accuracy {accuracies[-1]:.4f}  ({results[name]['seconds']:.1f} s)")
    return results


def table(results: dict) -> str:
    rows = ["| optimizer | learning rate | final train loss | val accuracy | seconds |", "|---|---|---|---|---|"]
    for name in OPTIMIZERS:
        r = results[name]
        if r["diverged"]:
            rows.append(f"| {name} | {r['lr']:g} | diverged | - | {r['seconds']:.1f} |")
            continue
        rows.append(f"| {name} | {r['lr']:g} | {r['train_loss'][-1]:.4f} | {r['val_accuracy'][-1]:.4f} "
                    f"| {r['seconds']:.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(f"{ch02.NAME}.compare_optimizers", __doc__.split("\n")[0], epochs=10, lr=None,
                         batch_size=64, data_help="as train.py's --data (MNIST IDX files, or a folder of class "
                                                  "subfolders of images; default: as train.py)")
    parser.set_defaults(out=Path("runs") / ch02.NAME / "compare_optimizers")
    parser.add_argument("--model", choices=("softmax", "mlp", "lenet"), default="mlp")
    parser.add_argument("--val-size", type=positive_int, default=None, help="as train.py's --val-size")
    cfg = parser.parse_args(argv)
    set_device(cfg.device)
    results = compare(cfg)
    curves = {f"{name} (lr {results[name]['lr']:g})": results[name]["train_loss"] for name in OPTIMIZERS
              if not results[name]["diverged"]}
    plot = plot_curves(curves, cfg.out / "optimizers.png", title=f"{ch02.NAME} {cfg.model}: optimizers",
                       ylabel="training loss (mean per epoch)", logy=True)
    text = table(results)
    with atomic_path(cfg.out / "optimizers.md") as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    write_metrics(cfg.out, {"model": cfg.model, "epochs": cfg.epochs, "seed": cfg.seed, **results})
    print(text)
    print(f"wrote {plot}, {cfg.out / 'optimizers.md'}, {cfg.out / 'metrics.json'}")
    return results


if __name__ == "__main__":
    run(main)
