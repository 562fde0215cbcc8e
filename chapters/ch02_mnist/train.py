"""Chapter 2: handwritten digit recognition (手写数字识别) with softmax regression, an MLP and a CNN.

The five steps of chapter 1, now for classification, with the machinery every later chapter reuses:
mini-batches from a DataLoader, model.train()/model.eval(), validation each epoch, optimizers and a
learning-rate schedule, checkpoints that resume exactly, data-parallel training, and export for inference.

    python -m chapters.ch02_mnist --model lenet          # writes runs/ch02_mnist/lenet/
    python -m paddle.distributed.launch --nproc_per_node 2 --log_dir runs/ch02_mnist/lenet-2ranks/launch_log \
        chapters/ch02_mnist/train.py --epochs 1          # writes runs/ch02_mnist/lenet-2ranks/
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import time
import warnings
from pathlib import Path

# Before Paddle is imported: keep the output to the chapter's own lines. GLOG_minloglevel=1 hides Paddle's C++
# INFO lines (the launcher's ranks print `tcp_store.cc ... create libuv server` and the like); the ccache warning
# comes from Paddle's C++-extension module, which a training run never uses.
os.environ.setdefault("GLOG_minloglevel", "1")
warnings.filterwarnings("ignore", message="No ccache found")

import paddle
import paddle.distributed as dist
import paddle.nn.functional as F

from common import runtime
from common.checkpoint import (export_inference_model, previous_checkpoint, read_checkpoint, restore_checkpoint,
                               save_checkpoint, save_state)
from common.cli import dropout_probability, make_parser, positive_float, positive_int, run
from common.download import DataError
from common.files import write_metrics
from common.image_folder import load_image_folder, looks_like_image_folder
from common.mnist import FILES as MNIST_FILES, load_mnist, make_loader, set_epoch
from common.models import build_mnist_model, count_parameters, evaluate
from common.plot import plot_curves
from common.progress import progress
from common.runtime import seed_everything, set_device

NAME = "ch02_mnist"
MODEL = "lenet"
EPOCHS = 12
BATCH_SIZE = 64
OPTIMIZER = "adam"
SCHEDULE = "onecycle"  # ramps the learning rate up for 30% of the steps, then anneals it to 1e-4
AUGMENT = 2  # random shifts of up to 2 pixels (data augmentation); 0 turns it off
IMAGE_SIZE = 28  # side of the model's input: MNIST's; your own images (--data FOLDER) are resized to it
# A good learning rate depends on the optimizer: the adaptive ones (Adagrad, RMSProp, Adam) scale each
# step by the gradient's own size, so they want far smaller values than SGD.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "adagrad": 0.01, "rmsprop": 0.002, "adam": 0.005}
# Cross-entropy of 10 classes starts near ln 10 = 2.3 and falls. Paddle caps each sample's loss at 64, so a
# blown-up model shows as a batch loss stuck in the tens (or NaN), never as inf: stop above this...
LOSS_LIMIT = 20.0
# ...for this many steps in a row: one spike recovers (Adagrad's first steps on a small folder of your own reach
# 20 and fall back to 0.4 within five steps), a blown-up model stays up there. Above half the cap, at once.
LOSS_LIMIT_STEPS = 3
LOSS_HARD_LIMIT = 32.0
# Each run its own folder, so that runs keep each other's results: the model, "-bn" with --batch-norm, and
# "-Rranks" under paddle.distributed.launch with R processes (see default_out).
DEFAULT_OUT = Path("runs") / NAME / "MODEL[-bn][-Rranks]"
CHECKPOINT_FILE = "checkpoint.pdckpt"
MODEL_FILE = "model.pdparams"
INFERENCE_DIR, INFERENCE_NAME = "inference", "model"  # paddle.jit.save writes inference/model.json + .pdiparams
INFERENCE_PREFIX = f"{INFERENCE_DIR}/{INFERENCE_NAME}"
# A resumed run must continue the same run: same model, same schedule length, same batches.
RESUME_MUST_MATCH = ("model", "batch_norm", "dropout", "optimizer", "lr", "schedule", "weight_decay", "epochs",
                     "batch_size", "augment", "seed", "val_size")


class TrainingDiverged(runtime.TrainingDiverged):
    """The loss became NaN/inf or exploded: the learning rate is too high for this model and optimizer."""


def is_main_process() -> bool:
    """Rank 0 writes the files and shows the progress; other ranks only compute (data parallel)."""
    return dist.get_rank() == 0


def connect_ranks() -> None:
    """Under paddle.distributed.launch: connect the ranks (gloo on CPU, NCCL on GPU) before any collective."""
    if dist.get_rank() > 0:
        # Rank 0 opens the rendezvous store; a rank that knocks before it is open retries only after 3 s
        # (Paddle's TCP store client). All ranks start together, so a short head start for rank 0 saves that.
        time.sleep(0.5)
    # init_parallel_env writes every Paddle flag that differs from its default to stderr ("Modified FLAGS
    # detected", flags Paddle sets itself): catch that block, pass anything else on.
    caught = io.StringIO()
    try:
        with contextlib.redirect_stderr(caught):
            dist.init_parallel_env()
    finally:  # also when it fails: its other messages may say why
        sys.stderr.write(drop_flags_block(caught.getvalue()))


def drop_flags_block(text: str) -> str:
    """`text` without Paddle's "=== Modified FLAGS detected ===" block (its header, FLAGS(...) lines, footer)."""
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        if "Modified FLAGS detected" in line:
            inside = True
        elif inside and line.startswith("====="):
            inside = False
        elif not inside:
            kept.append(line)
    return "".join(kept)


def log(message: str) -> None:
    if is_main_process():
        print(message, flush=True)


# ---- 1. Data processing 数据处理 ----
def load_data(cfg) -> dict:
    """MNIST (or the offline 5k subset), or your own folder of class subfolders; normalised, split, in DataLoaders.

    Returns {"data": MnistData or ImageFolderData, "train_loader": batches (images [B, C, S, S], labels [B]) for
    this rank, "class_names": [...] and "input": how to prepare an image, for a folder of your own}.
    Records the sizes the model needs on cfg (cfg.num_classes, cfg.in_channels, cfg.image_size): the data
    decides them, and build_model(cfg) follows.
    Under `paddle.distributed.launch` each of the R ranks gets its own b = --batch-size samples of every
    global batch of R*b (Paddle's DistributedBatchSampler).
    """
    named = {}
    max_shift = cfg.augment
    if cfg.data is not None and not cfg.data.exists():
        raise DataError(f"--data {cfg.data}: no such folder. Give a folder with the four MNIST IDX files, or your own "
                        "images in one subfolder per class (my_photos/cat/*.jpg, my_photos/dog/*.jpg ...); leave "
                        "out --data to use the cache")
    if cfg.data is not None and looks_like_image_folder(cfg.data) and \
            not any((cfg.data / name).exists() for name, _ in MNIST_FILES.values()):
        data = load_image_folder(cfg.data, size=IMAGE_SIZE, val_size=cfg.val_size, seed=cfg.seed)
        named = {"class_names": data.class_names, "input": data.input_spec}
        max_shift = 0  # the shifts fill the border with MNIST's blank: not a sensible border for photos
    else:
        try:
            data = load_mnist(cfg.data, val_size=cfg.val_size, seed=cfg.seed, download=not cfg.offline)
        except ValueError as e:  # --val-size as large as the training set
            raise DataError(f"--val-size: {e}") from e
    cfg.num_classes = len(named["class_names"]) if named else int(data.train_y.max()) + 1  # digits 0..9: 10
    cfg.in_channels, cfg.image_size = data.train_x.shape[1], data.train_x.shape[2]
    train_loader = make_loader(data.train_x, data.train_y, cfg.batch_size, shuffle=True, seed=cfg.seed,
                               num_workers=cfg.num_workers, max_shift=max_shift,
                               num_replicas=dist.get_world_size(), rank=dist.get_rank())
    return {"data": data, "train_loader": train_loader, **named}


# ---- 2. Model design 模型设计 ----
def build_model(cfg) -> paddle.nn.Layer:
    """softmax | mlp | lenet: images [N, C, S, S] -> logits [N, K] (no softmax; see common/models.py), with
    K = cfg.num_classes, C = cfg.in_channels, S = cfg.image_size as load_data found them (MNIST: 10, 1, 28)."""
    options = {"mlp": {"dropout": cfg.dropout},
               "lenet": {"dropout": cfg.dropout, "batch_norm": cfg.batch_norm}}.get(cfg.model, {})
    options.update(num_classes=cfg.num_classes, in_channels=cfg.in_channels, image_size=cfg.image_size)
    # unique_name.guard: parameter names start from 0 in every model built here (see main).
    with paddle.utils.unique_name.guard():
        return build_mnist_model(cfg.model, **options)


# ---- 3. Training config 训练配置 ----
def make_optimizer(name: str, learning_rate, parameters, weight_decay: float = 0.0) -> paddle.optimizer.Optimizer:
    """The five optimizers of the course's 优化算法 lesson; weight_decay is an L2 penalty (L2 正则化)."""
    decay = paddle.regularizer.L2Decay(weight_decay) if weight_decay > 0 else None
    common = {"learning_rate": learning_rate, "parameters": parameters, "weight_decay": decay}
    if name == "sgd":
        return paddle.optimizer.SGD(**common)
    if name == "momentum":
        return paddle.optimizer.Momentum(momentum=0.9, **common)
    if name == "adagrad":
        return paddle.optimizer.Adagrad(**common)
    if name == "rmsprop":
        return paddle.optimizer.RMSProp(rho=0.9, **common)
    if name == "adam":
        return paddle.optimizer.Adam(**common)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(DEFAULT_LR)}")


def configure(cfg, model: paddle.nn.Layer, steps_per_epoch: int) -> dict:
    """Optimizer (with its learning-rate schedule) and loss; the schedule needs the number of steps."""
    lr = cfg.lr or DEFAULT_LR[cfg.optimizer]
    if cfg.schedule == "onecycle":
        # One-cycle 单周期学习率: warm up from lr/25 to lr over 30% of the steps, then cosine-anneal to 1e-4.
        schedule = paddle.optimizer.lr.OneCycleLR(max_learning_rate=lr, total_steps=cfg.epochs * steps_per_epoch)
    else:
        schedule = None
    optimizer = make_optimizer(cfg.optimizer, schedule or lr, model.parameters(), cfg.weight_decay)
    return {"optimizer": optimizer, "schedule": schedule, "loss_fn": F.cross_entropy, "lr": lr}


# ---- 4. Training loop 训练过程 ----
DIVERGED_ADVICE = "Lower --lr (e.g. by 10x), or try --optimizer adam or --schedule onecycle"


_high_losses = {"streak": 0, "last": (-1, -1)}  # steps in a row above LOSS_LIMIT, and the last (epoch, step)


def check_loss(loss_value: float, epoch: int, step: int) -> None:
    """Stop on a NaN/inf loss or one above LOSS_HARD_LIMIT at once, and on one above LOSS_LIMIT for
    LOSS_LIMIT_STEPS steps in a row."""
    if (epoch, step) <= _high_losses["last"]:  # a new run (or a new model) in this process: forget the old one
        _high_losses["streak"] = 0
    _high_losses["last"] = (epoch, step)
    _high_losses["streak"] = _high_losses["streak"] + 1 if loss_value > LOSS_LIMIT else 0
    stuck = _high_losses["streak"] >= LOSS_LIMIT_STEPS
    if not math.isfinite(loss_value) or loss_value > LOSS_HARD_LIMIT or stuck:
        slow = stuck and loss_value <= LOSS_HARD_LIMIT
        above = f" (above {LOSS_LIMIT:g} for {LOSS_LIMIT_STEPS} steps)" if slow else ""
        raise TrainingDiverged(f"loss is {loss_value} at epoch {epoch + 1}, step {step + 1}{above}: training "
                               f"diverged. {DIVERGED_ADVICE}.")


def train_one_epoch(model, loader, training: dict, epoch: int, show_progress: bool) -> dict:
    """One pass over this rank's batches; returns the mean training loss and accuracy of the pass."""
    optimizer, schedule, loss_fn = training["optimizer"], training["schedule"], training["loss_fn"]
    model.train()  # Dropout drops, BatchNorm uses (and updates) batch statistics
    loss_sum, correct, seen = 0.0, 0, 0
    bar = progress(loader, desc=f"epoch {epoch + 1}", enabled=show_progress)
    # BEGIN SOLUTION
    # PROMPT: per batch: logits, loss_fn, check_loss, backward, step, clear_grad, schedule.step(); sum loss/correct/seen
    for step, (images, labels) in enumerate(bar):
        logits = model(images)  # [B, 10]
        loss = loss_fn(logits, labels)  # mean cross-entropy of the batch (log-softmax inside: once)
        loss_value = loss.item()
        check_loss(loss_value, epoch, step)
        loss.backward()  # DataParallel averages the gradients of all ranks here
        optimizer.step()
        optimizer.clear_grad()
        if schedule is not None:
            schedule.step()  # the one-cycle schedule moves every step, not every epoch
        loss_sum += loss_value * len(labels)
        correct += (logits.argmax(axis=1) == labels).astype("int64").sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{loss_value:.3f}")
    # END SOLUTION
    return {"loss": loss_sum / seen, "accuracy": correct / seen, "images": seen}


def train(cfg, model: paddle.nn.Layer, data: dict, training: dict) -> dict:
    """Train for cfg.epochs, validating after each epoch and checkpointing it; returns the per-epoch history.

    With --resume, start after the last epoch in the checkpoint (model, optimizer, schedule, RNG, history).
    """
    history = {"train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": [], "lr": [],
               "epoch_train_seconds": [], "epoch_seconds": [], "epoch_images": []}
    checkpoint = cfg.out / CHECKPOINT_FILE
    mnist = data["data"]
    # What a resume must match: the options, and the data itself (its content hash; the source is for the message).
    run_options = {key: getattr(cfg, key) for key in RESUME_MUST_MATCH} | {"data": mnist.fingerprint}
    start_epoch = 0
    if cfg.resume and (checkpoint.exists() or previous_checkpoint(checkpoint).is_file()):
        state, source = read_checkpoint(checkpoint, warn=log)  # verified (checksum); falls back to the previous one
        check_resume_matches(source, state["extra"], run_options, mnist.source)  # before anything is restored
        resumed = restore_checkpoint(state, model=model, optimizer=training["optimizer"])
        start_epoch, history = resumed["epoch"], resumed["history"]
        log(f"resumed from {source} after epoch {start_epoch}")
    elif cfg.resume:
        log(f"--resume: no checkpoint at {checkpoint}, starting from scratch")
    # Data parallel 数据并行: every rank holds a full copy; DataParallel all-reduces the gradients in backward().
    net = paddle.DataParallel(model) if dist.get_world_size() > 1 else model
    for epoch in range(start_epoch, cfg.epochs):
        start = time.perf_counter()
        set_epoch(data["train_loader"], epoch)  # this epoch's shuffle and augmentation
        lr_now = training["optimizer"].get_lr()
        try:
            fit = train_one_epoch(net, data["train_loader"], training, epoch, show_progress=is_main_process())
        except KeyboardInterrupt:
            raise KeyboardInterrupt(interrupted_message(cfg, epoch)) from None
        train_seconds = time.perf_counter() - start
        val = evaluate(model, mnist.val_x, mnist.val_y)
        for key, value in (("train_loss", fit["loss"]), ("train_accuracy", fit["accuracy"]),
                           ("val_loss", val["loss"]), ("val_accuracy", val["accuracy"]), ("lr", lr_now),
                           ("epoch_train_seconds", train_seconds), ("epoch_images", fit["images"])):
            history[key].append(value)
        rate = fit["images"] * dist.get_world_size() / train_seconds  # all ranks together
        log(f"epoch {epoch + 1:2d}/{cfg.epochs}  train loss {fit['loss']:.4f} acc {fit['accuracy']:.4f}  "
            f"val loss {val['loss']:.4f} acc {val['accuracy']:.4f}  ({rate:.0f} images/s)")
        history["epoch_seconds"].append(time.perf_counter() - start)  # training and validation
        if is_main_process():
            save_checkpoint(checkpoint, model=model, optimizer=training["optimizer"], epoch=epoch + 1,
                            history=history, options=run_options, data_source=mnist.source)
        if cfg.stop_after and epoch + 1 == cfg.stop_after:  # simulate an interrupted run (tests, --resume demo)
            break
    return history


def check_resume_matches(checkpoint, saved: dict, run_options: dict, data_source: str) -> None:
    """DataError if the checkpoint's run had other options or other data than this one."""
    saved_options = saved.get("options", {})
    changed = {k: (v, run_options.get(k)) for k, v in saved_options.items() if run_options.get(k) != v}
    if "data" in changed:
        raise DataError(f"{checkpoint} was trained on other data ({saved.get('data_source', 'unrecorded')}; "
                        f"now {data_source}, content differs): resume with the same --data/--offline, or use "
                        "another --out")
    if changed:
        raise DataError(f"{checkpoint} was written with other options ("
                        + ", ".join(f"{k}: {old} then, {new} now" for k, (old, new) in changed.items())
                        + "): resume with the same options, or use another --out")


def interrupted_message(cfg, epoch: int) -> str:
    """What Ctrl-C during `epoch` (0-based) leaves: the checkpoint of the epoch before, intact, and how to go on."""
    if epoch == 0 and not (cfg.out / CHECKPOINT_FILE).is_file():
        return "Ctrl-C during epoch 1, before the first checkpoint: nothing to resume; run the command again"
    return (f"Ctrl-C during epoch {epoch + 1}; the checkpoint {cfg.out / CHECKPOINT_FILE} (after epoch {epoch}) is "
            "intact: continue with the same command plus --resume")


def rank_weight_difference(model: paddle.nn.Layer) -> float:
    """Largest |w_rank - w_rank0| over all parameters and ranks; 0 means the replicas stayed in sync."""
    flat = paddle.concat([p.flatten() for p in model.parameters()])
    gathered = []
    dist.all_gather(gathered, flat)
    return max((g - gathered[0]).abs().max().item() for g in gathered)


# ---- 5. Save 保存模型 ----
def save(cfg, model: paddle.nn.Layer, history: dict) -> dict:
    """Weights (.pdparams, for more training), an inference model (paddle.jit.save), and the curves."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    weights = save_state(cfg.out / MODEL_FILE, model.state_dict())
    model.eval()  # export the inference behaviour of BatchNorm and Dropout
    shape = [None, cfg.in_channels, cfg.image_size, cfg.image_size]  # as load_data found it
    # Into a temporary folder swapped in whole: a run killed here leaves the previous export intact.
    inference = export_inference_model(
        model, cfg.out / INFERENCE_DIR, name=INFERENCE_NAME,
        input_spec=[paddle.static.InputSpec(shape=shape, dtype="float32", name="image")])
    paths = {"weights": weights, "inference": inference, "loss_plot": None, "accuracy_plot": None}
    if getattr(cfg, "figures", True):
        paths["loss_plot"] = plot_curves({"train": history["train_loss"], "validation": history["val_loss"]},
                                         cfg.out / "loss.png", title=f"MNIST {cfg.model}: cross-entropy",
                                         ylabel="loss")
        paths["accuracy_plot"] = plot_curves({"train": history["train_accuracy"],
                                              "validation": history["val_accuracy"]},
                                             cfg.out / "accuracy.png", title=f"MNIST {cfg.model}: accuracy",
                                             ylabel="accuracy")
    return paths


def build_parser():
    parser = make_parser(NAME, "MNIST handwritten digits: softmax regression, MLP and LeNet with Paddle.",
                         epochs=EPOCHS, lr=None, batch_size=BATCH_SIZE, figures=True,
                         data_help="folder with the four MNIST .gz IDX files, or your own images: a folder "
                                   "with one subfolder per class (my_photos/cat/*.jpg, my_photos/dog/*.jpg ...), "
                                   f"resized to {IMAGE_SIZE}x{IMAGE_SIZE}, grey or RGB as the images are, 20%% "
                                   "held out for validation (default: data/mnist/, downloaded if missing, else "
                                   "the offline 5k subset)")
    parser.add_argument("--model", choices=("softmax", "mlp", "lenet"), default=MODEL,
                        help="softmax regression 784-10, MLP 784-128-64-10, or the LeNet CNN")
    parser.add_argument("--optimizer", choices=tuple(DEFAULT_LR), default=OPTIMIZER, help="优化算法")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help="learning rate (peak rate with onecycle); default per optimizer: "
                             + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items()))
    parser.add_argument("--schedule", choices=("constant", "onecycle"), default=SCHEDULE,
                        help="learning-rate schedule: constant, or one-cycle (warm up to --lr, then anneal)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty coefficient")
    parser.add_argument("--dropout", type=dropout_probability, default=0.0, help="dropout probability (mlp, lenet)")
    parser.add_argument("--batch-norm", action="store_true", help="LeNet with BatchNorm after each conv/hidden linear")
    parser.add_argument("--augment", type=int, default=AUGMENT, help="random shift in pixels (0: no augmentation)")
    parser.add_argument("--val-size", type=positive_int, default=None,
                        help="validation images carved from training (default 5000 full, 1000 subset)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (0: load in-process)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoint.pdckpt (verified; if it is damaged, from the previous "
                             "one, checkpoint.prev.pdckpt); same options and data only")
    parser.add_argument("--stop-after", type=positive_int, default=None, metavar="EPOCH",
                        help="stop after this epoch, as if interrupted (then run again with --resume)")
    # The model's sizes: MNIST's until load_data finds others (your own image folder).
    parser.set_defaults(num_classes=10, in_channels=1, image_size=IMAGE_SIZE)
    parser.set_defaults(out=DEFAULT_OUT)
    parser.default_out_for = default_out  # the placeholder becomes the run's own folder, before it is locked
    return parser


def default_out(cfg) -> Path:
    """runs/ch02_mnist/<what distinguishes the run>/: the model, BatchNorm, and the number of launched processes,
    so that the README's runs keep each other's results (and `predict` finds the LeNet in runs/ch02_mnist/lenet)."""
    name = cfg.model + ("-bn" if cfg.batch_norm else "")
    ranks = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))  # set by paddle.distributed.launch for every rank
    if ranks > 1:
        name += f"-{ranks}ranks"
    return Path("runs") / NAME / name


def parse_args(argv):
    parser = build_parser()
    cfg = parser.parse_args(argv)
    if cfg.weight_decay < 0:
        parser.error(f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    if not 0 <= cfg.augment <= 8:
        parser.error(f"--augment is a shift in pixels from 0 to 8, got {cfg.augment}")
    if cfg.num_workers < 0:
        parser.error(f"--num-workers must be >= 0, got {cfg.num_workers}")
    if cfg.model == "softmax" and (cfg.dropout or cfg.batch_norm):
        parser.error("softmax regression has no hidden layer: --dropout and --batch-norm need --model mlp or lenet")
    if cfg.model == "mlp" and cfg.batch_norm:
        parser.error("--batch-norm is for --model lenet")
    if cfg.batch_norm and cfg.batch_size < 2:  # Paddle passes a one-sample batch through BatchNorm unchanged
        parser.error("--batch-norm needs --batch-size of at least 2: BatchNorm normalises over the batch")
    return cfg


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_args(argv)
    seed_everything(cfg.seed)
    if dist.get_world_size() > 1:
        connect_ranks()
    # Under the launcher each rank already has its device; a DeviceError or DataError from here on becomes a
    # one-line message in common.cli.run.
    device = set_device(cfg.device) if dist.get_world_size() == 1 else paddle.device.get_device()
    start = time.perf_counter()
    data = load_data(cfg)
    mnist = data["data"]
    load_seconds = time.perf_counter() - start
    log(f"data: {mnist.source}\n      train {len(mnist.train_y)}, validation {len(mnist.val_y)}, "
        f"test {'none' if mnist.is_subset else len(mnist.test_y)}  ({load_seconds:.2f} s)")
    # Paddle names parameters and optimizer moments from a process-wide counter (conv2d_0.w_0_moment1_0), and
    # a checkpoint's optimizer state is keyed by those names. A fresh counter for the run makes the names the
    # same in every run, so --resume finds its state even after other models were built in this process.
    with paddle.utils.unique_name.guard():
        model = build_model(cfg)
        training = configure(cfg, model, steps_per_epoch=len(data["train_loader"]))
        log(f"model: {cfg.model}, {count_parameters(model):,} trainable parameters; optimizer {cfg.optimizer}, "
            f"lr {training['lr']} ({cfg.schedule}), device {device}, ranks {dist.get_world_size()}")
        start = time.perf_counter()
        try:
            history = train(cfg, model, data, training)
        except TrainingDiverged as e:
            sys.exit(f"error: {e}")
    train_seconds = time.perf_counter() - start
    if len(history["val_accuracy"]) < cfg.epochs:  # --stop-after: behave like an interrupted run, save nothing more
        log(f"stopped after epoch {cfg.stop_after} of {cfg.epochs}; continue with the same command plus --resume "
            f"(checkpoint: {cfg.out / CHECKPOINT_FILE})")
        return {"stopped_after": cfg.stop_after, "history": history}
    metrics = {
        "data_source": mnist.source, "model": cfg.model, "optimizer": cfg.optimizer, "lr": training["lr"],
        "schedule": cfg.schedule, "weight_decay": cfg.weight_decay, "dropout": cfg.dropout,
        "batch_norm": cfg.batch_norm, "augment": cfg.augment, "batch_size": cfg.batch_size, "seed": cfg.seed,
        "epochs": len(history["val_accuracy"]), "parameters": count_parameters(model),
        "val_accuracy": history["val_accuracy"][-1], "val_loss": history["val_loss"][-1],
        "train_seconds": train_seconds, "data_seconds": load_seconds,
        # Training throughput: images through forward+backward+step per second of the epochs' training phase
        # (data loading included; validation and checkpointing not). Counted over all ranks.
        "images_per_second": sum(history["epoch_images"]) * dist.get_world_size()
                             / sum(history["epoch_train_seconds"]),
        "device": device, "world_size": dist.get_world_size(), "data_fingerprint": mnist.fingerprint,
    }
    if "class_names" in data:  # your own classes: predict reports them by name and prepares images as "input" says
        metrics.update(class_names=data["class_names"], input=data["input"])
    if not mnist.is_subset:
        test = evaluate(model, mnist.test_x, mnist.test_y)
        metrics.update(test_accuracy=test["accuracy"], test_loss=test["loss"])
    if dist.get_world_size() > 1:
        metrics["rank_weight_max_diff"] = rank_weight_difference(model)
    if is_main_process():
        paths = save(cfg, model, history)
        metrics["history"] = history
        write_metrics(cfg.out, metrics)
        held_out = ("test", metrics["test_accuracy"]) if "test_accuracy" in metrics else \
            (f"validation ({'your images' if 'class_names' in data else 'offline subset'}: no test set)",
             metrics["val_accuracy"])
        print(f"{held_out[0]} accuracy {held_out[1]:.4f} after {metrics['epochs']} epochs, "
              f"{train_seconds:.1f} s, {metrics['images_per_second']:.0f} training images/s")
        plots = [p.name for p in (paths["loss_plot"], paths["accuracy_plot"]) if p is not None]
        print(f"wrote {', '.join([str(paths['weights']), str(paths['inference']) + '.*', *plots])}, metrics.json "
              f"in {cfg.out}")
    return metrics


if __name__ == "__main__":
    run(main)
