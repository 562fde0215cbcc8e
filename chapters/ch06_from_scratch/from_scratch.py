"""Chapter 6: a neural network from scratch (从零实现神经网络): backpropagation, optimizers and embeddings by hand.

Everything `loss.backward()` and `opt.step()` do, written in numpy and proved equal to Paddle's own: the forward
pass, the backward pass by the chain rule, softmax cross-entropy, one-hot codes, SGD / Momentum / RMSProp / Adam,
weight decay, embeddings. The five steps train a two-layer network on MNIST with it; the checks (checks.py) run
first, and two small demonstrations follow: universal approximation (approximation.py) and the optimizers' paths
on an ill-conditioned bowl (bowl.py).

    python -m chapters.ch06_from_scratch [--activation relu|sigmoid] [--optimizer sgd|momentum|rmsprop|adam]
                                         [--hidden 100] [--weight-decay 0] --out runs/ch06_from_scratch
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import paddle
from threadpoolctl import threadpool_limits

from chapters.ch06_from_scratch import approximation, bowl, checks
from chapters.ch06_from_scratch.network import (ACTIVATIONS, MLP, cross_entropy, from_one_hot, l2_penalty,
                                               loss_and_gradients, one_hot)
from chapters.ch06_from_scratch.optimizers import OPTIMIZERS, make_optimizer
from common.cli import make_parser, positive_float, positive_int, run
from common.files import atomic_path, write_metrics
from common.mnist import BLANK, load_mnist, stratified_split
from common.plot import plot_curves
from common.runtime import TrainingDiverged, check_finite_loss, seed_everything, set_device

NAME = "ch06_from_scratch"
HIDDEN = 100
ACTIVATION = "relu"
OPTIMIZER = "adam"
EPOCHS = 40  # 40 passes over 3,000 images: about 5 s of numpy on one core
BATCH_SIZE = 64
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.02, "rmsprop": 0.001, "adam": 0.002}  # Paddle's momentum form: v sums g
LR_DECAY = 0.92  # learning rate of epoch e: lr * 0.92^e (学习率衰减), 0.04 lr by the 40th epoch
AUGMENT = 2  # random shifts of up to 2 pixels (数据增强): the subset's 3,000 training images are few
SPLIT = (0.6, 0.2, 0.2)  # train / validation / test
WEIGHTS_FILE = "weights.npz"
# Cross-entropy of 10 classes starts near ln 10 = 2.3 and falls; a batch above this means the steps blew it up.
LOSS_LIMIT = 20.0


# ---- 1. Data processing 数据处理 ----
def split_6_2_2(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, validation, test) in the proportions 6:2:2, each class in proportion in every part.

    训练集 train: what the gradients see.  验证集 validation: picks the settings (epochs, learning rate, H) without
    touching the test set.  测试集 test: one final figure for the finished model, looked at once, so it stays an
    honest estimate of accuracy on new digits.
    """
    n_test = round(SPLIT[2] * len(labels))
    n_val = round(SPLIT[1] * len(labels))
    train, held = stratified_split(labels, n_val + n_test, seed)
    val, test = stratified_split(labels[held], n_test, seed)
    return train, held[val], held[test]


def load_data(cfg) -> dict:
    """All MNIST images available (the offline 5k subset, or full MNIST when present), standardised with
    common.mnist's statistics, flattened to x [N, 784] float32, labels [N] int64, split 6:2:2."""
    mnist = load_mnist(cfg.data, seed=cfg.seed, download=not cfg.offline)
    parts = [(mnist.train_x, mnist.train_y), (mnist.val_x, mnist.val_y)]
    if not mnist.is_subset:
        parts.append((mnist.test_x, mnist.test_y))  # pooled, then split 6:2:2 like the subset
    x = np.concatenate([p[0] for p in parts]).reshape(-1, 28 * 28)
    y = np.concatenate([p[1] for p in parts])
    train, val, test = split_6_2_2(y, cfg.seed)
    if cfg.train_size is not None:
        train = train[:cfg.train_size]
    data = {"source": mnist.source}
    for part, idx in (("train", train), ("val", val), ("test", test)):
        data[f"{part}_x"], data[f"{part}_y"] = x[idx], y[idx]
    return data


def shift_batch(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Data augmentation 数据增强: move each image [784] by up to max_shift pixels in x and y (blank fill).

    x: [B, 784] -> [B, 784]. One padded copy of the batch, then a 28x28 window per image at its random offset.
    """
    if max_shift == 0:
        return x
    images = np.pad(x.reshape(-1, 28, 28), ((0, 0), (max_shift, max_shift), (max_shift, max_shift)),
                    constant_values=BLANK)
    windows = np.lib.stride_tricks.sliding_window_view(images, (28, 28), axis=(1, 2))  # [B, 2s+1, 2s+1, 28, 28]
    offset = rng.integers(0, 2 * max_shift + 1, size=(len(x), 2))
    return windows[np.arange(len(x)), offset[:, 0], offset[:, 1]].reshape(len(x), -1)


# ---- 2. Model design 模型设计 ----
def build_model(cfg) -> MLP:
    """The numpy network 784 -> H -> 10 (network.MLP), not a paddle.nn.Layer: writing it is the lesson.

    `checks.paddle_mlp(model)` builds the equivalent paddle.nn model; `save` checks the two agree.
    """
    return MLP(28 * 28, cfg.hidden, 10, cfg.activation, seed=cfg.seed)


# ---- 3. Training config 训练配置 ----
def configure(cfg, model: MLP) -> dict:
    """The numpy optimizer, its learning-rate schedule, and the loss: cross-entropy + wd * sum(W**2)."""
    lr = cfg.lr or DEFAULT_LR[cfg.optimizer]
    return {"optimizer": make_optimizer(cfg.optimizer, lr), "lr": lr, "lr_decay": cfg.lr_decay,
            "weight_decay": cfg.weight_decay}


# ---- 4. Training loop 训练过程 ----
def evaluate(model: MLP, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> dict:
    """Mean cross-entropy (without the penalty) and accuracy on x [N, 784], y [N]."""
    loss_sum, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model.forward(x[start:start + batch_size])
        loss_sum += cross_entropy(logits, y[start:start + batch_size], reduction="none").sum()
        correct += int((logits.argmax(axis=1) == y[start:start + batch_size]).sum())
    return {"loss": float(loss_sum / len(y)), "accuracy": correct / len(y)}


def train(cfg, model: MLP, data: dict, training: dict) -> dict:
    """Mini-batches: forward, loss, backward, update; per epoch the training and validation loss and accuracy.

    No gradient is ever cleared here: `backward` returns new arrays each time. Paddle instead adds every
    backward() into .grad, which is why its loops call clear_grad() (checks.accumulation_check shows the sum).
    """
    history = {"train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": [], "lr": []}
    # A batch's matrix products ([64, 784] @ [784, 100]) are too small for BLAS threads to pay off: on a busy
    # 2-core machine two threads trained 2.7x slower than one (measured), so the loop uses one.
    with threadpool_limits(limits=1, user_api="blas"):
        for epoch in range(cfg.epochs):
            train_one_epoch(cfg, model, data, training, epoch, history)
    return history


def train_one_epoch(cfg, model: MLP, data: dict, training: dict, epoch: int, history: dict) -> None:
    """One pass over the shuffled training images; appends the epoch's figures to `history` and prints them."""
    optimizer = training["optimizer"]
    x, y = data["train_x"], data["train_y"]
    rng = np.random.default_rng([cfg.seed, epoch])  # epoch e's order and shifts depend on (seed, e) only
    optimizer.lr = training["lr"] * training["lr_decay"] ** epoch
    order = rng.permutation(len(y))
    loss_sum, correct = 0.0, 0
    for start in range(0, len(y), cfg.batch_size):
        batch = order[start:start + cfg.batch_size]
        xb = shift_batch(x[batch], cfg.augment, rng)
        loss, grads, logits = loss_and_gradients(model, xb, y[batch], training["weight_decay"])  # forward, backward
        data_loss = loss - l2_penalty(model.params, training["weight_decay"]) if training["weight_decay"] else loss
        check_finite_loss(data_loss, f"epoch {epoch + 1}", limit=LOSS_LIMIT,
                          advice=f"Lower --lr (now {optimizer.lr:g}) by 10x")
        optimizer.step(model.params, grads)  # update
        loss_sum += loss * len(batch)
        correct += int((logits.argmax(axis=1) == y[batch]).sum())
    val = evaluate(model, data["val_x"], data["val_y"])
    for key, value in (("train_loss", loss_sum / len(y)), ("train_accuracy", correct / len(y)),
                       ("val_loss", val["loss"]), ("val_accuracy", val["accuracy"]), ("lr", optimizer.lr)):
        history[key].append(value)
    if epoch < 5 or (epoch + 1) % 5 == 0 or epoch + 1 == cfg.epochs:  # the first five, then every fifth
        print(f"epoch {epoch + 1:2d}/{cfg.epochs}  train loss {history['train_loss'][-1]:.4f} "
              f"acc {history['train_accuracy'][-1]:.4f}  val loss {val['loss']:.4f} acc {val['accuracy']:.4f}  "
              f"lr {optimizer.lr:.2e}", flush=True)


# ---- 5. Save 保存模型 ----
def save(cfg, model: MLP, data: dict, history: dict, demos: dict) -> dict:
    """Weights as .npz; reloaded into numpy and into the equivalent paddle.nn model, which must give the same
    logits on the test images; the figures."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    weights = cfg.out / WEIGHTS_FILE
    with atomic_path(weights) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
        np.savez(f, **model.state())
    with np.load(weights, allow_pickle=False) as state:
        reloaded = MLP.from_state(state)
    net = checks.paddle_mlp(reloaded)
    net.eval()
    x = data["test_x"]
    numpy_logits = reloaded.forward(x)
    paddle_logits = net(paddle.to_tensor(x)).numpy()
    paths = {"weights": weights}
    if cfg.figures:
        train_label = "train (augmented" + (", + weight-decay penalty)" if cfg.weight_decay else ")")
        paths["loss"] = plot_curves({train_label: history["train_loss"],
                                     "validation": history["val_loss"]}, cfg.out / "loss.png",
                                    title=f"numpy MLP 784-{cfg.hidden}-10 ({cfg.activation}, {cfg.optimizer})",
                                    ylabel="cross-entropy", logy=True)
        paths["accuracy"] = plot_curves({"train (augmented)": history["train_accuracy"],
                                         "validation": history["val_accuracy"]}, cfg.out / "accuracy.png",
                                        title=f"numpy MLP 784-{cfg.hidden}-10: accuracy", ylabel="accuracy")
        paths["approximation"] = cfg.out / "approximation.png"
        approximation.plot_approximation(demos["approximation"], paths["approximation"])
        paths["optimizer_paths"] = cfg.out / "optimizer_paths.png"
        bowl.plot_paths(demos["paths"], paths["optimizer_paths"])
    return {"paths": paths,
            "reload": {"logits_max_abs_diff_numpy_vs_paddle": checks.max_abs(numpy_logits, paddle_logits),
                       "numpy_test_accuracy": float((numpy_logits.argmax(1) == data["test_y"]).mean()),
                       "paddle_test_accuracy": float((paddle_logits.argmax(1) == data["test_y"]).mean())}}


# ---- the checks against Paddle (what the tests assert, printed) ----
def run_checks() -> dict:
    """Every hand-written piece against finite differences or Paddle; returns the figures for metrics.json."""
    result = {"gradient_vs_finite_differences": {}, "gradient_vs_autograd": {}}
    for activation in ACTIVATIONS:
        result["gradient_vs_finite_differences"][activation] = \
            checks.gradient_check_numeric(activation)["max_relative_error"]
        result["gradient_vs_autograd"][activation] = checks.gradient_check_autograd(activation)["max_relative_error"]
    ce = checks.cross_entropy_check()
    result["cross_entropy_max_abs_diff"] = max(ce["mean_abs_diff"], ce["per_sample_max_abs_diff"])
    result["optimizer_max_abs_diff"] = {name: checks.optimizer_match(name)["max_abs_diff"] for name in OPTIMIZERS}
    result["paddle_conventions"] = {rule: r["matches"] for rule, r in checks.paddle_conventions().items()}
    result["weight_decay"] = checks.weight_decay_check()["max_abs_diff"]
    result["embedding"] = checks.embedding_check()
    result["accumulation"] = checks.accumulation_check()
    return result


def print_checks(c: dict) -> None:
    fd, ag = c["gradient_vs_finite_differences"], c["gradient_vs_autograd"]
    print("checks (hand-written numpy vs an independent computation):")
    print("  backward vs finite differences (float64, relative): "
          + ", ".join(f"{a} {fd[a]:.1e}" for a in ACTIVATIONS))
    print("  backward vs Paddle autograd (float32, relative):    "
          + ", ".join(f"{a} {ag[a]:.1e}" for a in ACTIVATIONS))
    print(f"  cross-entropy vs F.cross_entropy (mean and per sample): {c['cross_entropy_max_abs_diff']:.1e}")
    print(f"  optimizers vs paddle.optimizer after {checks.OPTIMIZER_STEPS} steps, max |diff|: "
          + ", ".join(f"{n} {d:.1e}" for n, d in c["optimizer_max_abs_diff"].items()))
    print("  Paddle's conventions (measured): " + "; ".join(f"{k}: {v}" for k, v in c["paddle_conventions"].items()))
    wd = c["weight_decay"]
    print(f"  loss + wd*sum(W^2) by hand vs L2Decay(2*wd): {wd['L2Decay(2 * wd)']:.1e} "
          f"(vs L2Decay(wd): {wd['L2Decay(wd)']:.1e}, so L2Decay(c) is the penalty (c/2) sum W^2)")
    e, acc = c["embedding"], c["accumulation"]
    print(f"  Embedding vs one_hot @ W: {e['lookup_vs_one_hot_matmul']:.1e}; gradient in rows {e['rows_with_gradient']} "
          f"= the ids looked up {e['looked_up']}, others exactly {e['untouched_rows_max_abs_grad']:.0f}")
    print(f"  two backward() without clear_grad vs g_A + g_B: {acc['accumulated_vs_sum']:.1e} "
          f"(vs g_B alone: {acc['accumulated_vs_last_batch']:.2f})")


# ---- the command line ----
def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0 and finite, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(NAME, "A two-layer network in numpy: backward pass, optimizers, cross-entropy, weight "
                               "decay and embeddings by hand, each checked against Paddle.",
                         epochs=EPOCHS, lr=None, batch_size=BATCH_SIZE,
                         data_help="folder with the four MNIST .gz IDX files (default: data/mnist/, "
                                   "downloaded if missing, else the offline 5k subset)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default=ACTIVATION, help="hidden-layer activation")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=OPTIMIZER, help="the numpy optimizer 优化算法")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help="learning rate; default per optimizer: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items()))
    parser.add_argument("--lr-decay", type=positive_float, default=LR_DECAY,
                        help="the learning rate is multiplied by this after every epoch (1: constant)")
    parser.add_argument("--hidden", type=positive_int, default=HIDDEN, help="hidden units H")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                        help="wd in loss + wd * sum(W**2) (权重衰减; Paddle's L2Decay(2 * wd))")
    parser.add_argument("--augment", type=int, default=AUGMENT, help="random shift in pixels (0: no augmentation)")
    parser.add_argument("--train-size", type=positive_int, default=None,
                        help="use only the first N training images (quick runs)")
    parser.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                        help="draw the PNG figures")
    return parser


def parse_args(argv):
    parser = build_parser()
    cfg = parser.parse_args(argv)
    if not 0 <= cfg.augment <= 8:
        parser.error(f"--augment is a shift in pixels from 0 to 8, got {cfg.augment}")
    if cfg.lr_decay > 1:
        parser.error(f"--lr-decay must be at most 1 (a decay), got {cfg.lr_decay}")
    return cfg


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_args(argv)
    start = time.perf_counter()
    seed_everything(cfg.seed)
    device = set_device(cfg.device)  # for the Paddle side of the checks; the numpy network runs on the CPU
    data = load_data(cfg)
    n_train, n_val, n_test = len(data["train_y"]), len(data["val_y"]), len(data["test_y"])
    print(f"data: {data['source']}\n      all of it split 6:2:2 here (so the subset gets a test set too): "
          f"train {n_train}, validation {n_val}, test {n_test}; x [N, 784] standardised")
    code = one_hot(data["train_y"][:1], 10)
    print(f"one-hot 独热编码: label {data['train_y'][0]} -> {code[0].astype(int).tolist()} -> back "
          f"{from_one_hot(code)[0]}")

    check_results = run_checks()
    print_checks(check_results)

    model = build_model(cfg)
    training = configure(cfg, model)
    print(f"model: numpy MLP 784-{cfg.hidden}-10 ({cfg.activation}), optimizer {cfg.optimizer} lr {training['lr']:g} "
          f"x {cfg.lr_decay:g}/epoch, weight decay {cfg.weight_decay:g}, batch {cfg.batch_size}, "
          f"augment +-{cfg.augment} px")
    train_start = time.perf_counter()
    try:
        history = train(cfg, model, data, training)
    except TrainingDiverged as e:
        raise SystemExit(f"error: {e}") from None
    train_seconds = time.perf_counter() - train_start
    test = evaluate(model, data["test_x"], data["test_y"])  # the test set, once, for the finished model
    print(f"validation accuracy {history['val_accuracy'][-1]:.4f}, test accuracy {test['accuracy']:.4f} "
          f"(numpy, {cfg.epochs} epochs, {train_seconds:.1f} s)")

    demos = {"approximation": approximation.approximation_table(), "paths": bowl.optimizer_paths()}
    approximation.print_table(demos["approximation"])
    paths_summary = bowl.summarise(demos["paths"])
    bowl.print_summary(paths_summary)

    saved = save(cfg, model, data, history, demos)
    reload = saved["reload"]
    print(f"reloaded {WEIGHTS_FILE}: numpy and paddle.nn logits differ by {reload['logits_max_abs_diff_numpy_vs_paddle']:.1e}, "
          f"test accuracy {reload['numpy_test_accuracy']:.4f} / {reload['paddle_test_accuracy']:.4f}")
    metrics = {
        "data_source": data["source"], "split": {"train": n_train, "validation": n_val, "test": n_test},
        "activation": cfg.activation, "optimizer": cfg.optimizer, "lr": training["lr"], "lr_decay": cfg.lr_decay,
        "hidden": cfg.hidden, "weight_decay": cfg.weight_decay, "augment": cfg.augment, "epochs": cfg.epochs,
        "batch_size": cfg.batch_size, "seed": cfg.seed, "device": device,
        "val_accuracy": history["val_accuracy"][-1], "test_accuracy": test["accuracy"], "test_loss": test["loss"],
        "max_gradient_error_vs_finite_differences": max(check_results["gradient_vs_finite_differences"].values()),
        "max_gradient_error_vs_autograd": max(check_results["gradient_vs_autograd"].values()),
        **check_results,
        "reload": reload,
        "approximation": demos["approximation"],
        "optimizer_paths": paths_summary,
        "train_seconds": train_seconds,
        "history": history,
    }
    metrics["seconds"] = time.perf_counter() - start
    write_metrics(cfg.out, metrics)
    print(f"wrote {', '.join(p.name for p in saved['paths'].values())}, metrics.json in {cfg.out} "
          f"({metrics['seconds']:.1f} s in all)")
    return metrics


if __name__ == "__main__":
    run(main)
