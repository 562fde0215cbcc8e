"""Batch normalisation (批归一化) and dropout (丢弃法) by hand in numpy, checked against Paddle's layers.

    numpy references (the student exercise)
        batch_norm_train(x, gamma, beta, eps)              -> y, batch mean, batch variance
        batch_norm_eval(x, running_mean, running_var, ...) -> y
        update_running(running, batch_stat, momentum)      -> new running statistic
    checks against Paddle
        compare_batchnorm(dim, ...)   numpy vs paddle.nn.BatchNorm1D / BatchNorm2D, train and eval, step by step
        running_variance_convention() which variance Paddle keeps: biased (divide by n) or unbiased (n - 1)
        dropout_modes(...)            paddle.nn.Dropout's two modes, train and eval, seeded masks
        dropout_expectation(...)      the mean over many training passes equals the evaluation output

Shapes: BatchNorm1D takes x: [N, C] or [N, C, L]; BatchNorm2D takes x: [N, C, H, W]. Both keep one mean and
one variance per channel C, taken over every axis except the channel axis (1): over N for [N, C], over N and L
for [N, C, L], over N, H and W for [N, C, H, W].
"""
from __future__ import annotations

import warnings

import numpy as np
import paddle

EPSILON = 1e-5  # Paddle's default epsilon for BatchNorm
MOMENTUM = 0.9  # Paddle's default: running = 0.9 * running + 0.1 * batch (PyTorch's momentum=0.1 means the same)

# Paddle's BatchNorm warns on every training forward that it "now always tracks global mean and variance":
# it is a note about an old API, and exactly the behaviour this chapter checks, so silence that one message.
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")


# ---- numpy references ----

def channel_axes(x: np.ndarray) -> tuple[int, ...]:
    """The axes that BatchNorm averages over: all but the channel axis 1. [N, C] -> (0,), [N, C, H, W] -> (0, 2, 3)."""
    if x.ndim < 2:
        raise ValueError(f"BatchNorm needs x of shape [N, C, ...], got shape {x.shape}")
    return (0,) + tuple(range(2, x.ndim))


def per_channel(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Reshape a per-channel vector v: [C] so that it broadcasts against x: [N, C, ...] (to [1, C, 1, ...])."""
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm_train(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = EPSILON):
    """BatchNorm in training mode, using the statistics of this batch.

    x: [N, C, ...]; gamma (scale), beta (shift): [C]
    -> y: same shape as x, batch_mean: [C], batch_var: [C] (biased: divided by the count, not count - 1).
    y = gamma * (x - mean) / sqrt(var + eps) + beta, with mean and var per channel.
    """
    # BEGIN SOLUTION
    # PROMPT: average over every axis except channel axis 1 (channel_axes), normalise, then scale and shift
    axes = channel_axes(x)
    batch_mean = x.mean(axis=axes)
    batch_var = x.var(axis=axes)  # ddof=0: the biased variance, which is what normalises the batch
    x_hat = (x - per_channel(batch_mean, x)) / np.sqrt(per_channel(batch_var, x) + eps)
    y = per_channel(gamma, x) * x_hat + per_channel(beta, x)
    # END SOLUTION
    return y, batch_mean, batch_var


def batch_norm_eval(x, running_mean, running_var, gamma, beta, eps: float = EPSILON) -> np.ndarray:
    """BatchNorm in evaluation mode: the same formula, with the running statistics in place of the batch's.

    x: [N, C, ...]; running_mean, running_var, gamma, beta: [C] -> y: same shape as x.
    """
    # BEGIN SOLUTION
    # PROMPT: batch_norm_train's formula, with running_mean and running_var in place of the batch's statistics
    x_hat = (x - per_channel(running_mean, x)) / np.sqrt(per_channel(running_var, x) + eps)
    return per_channel(gamma, x) * x_hat + per_channel(beta, x)
    # END SOLUTION


def update_running(running: np.ndarray, batch_stat: np.ndarray, momentum: float = MOMENTUM) -> np.ndarray:
    """Paddle's convention: running = momentum * running + (1 - momentum) * batch. [C], [C] -> [C]."""
    # BEGIN SOLUTION
    # PROMPT: momentum weighs the old running value, 1 - momentum the new batch statistic
    return momentum * running + (1 - momentum) * batch_stat
    # END SOLUTION


# ---- BatchNorm: numpy against Paddle ----

def make_layer(dim: int, channels: int, rng: np.random.Generator) -> paddle.nn.Layer:
    """paddle.nn.BatchNorm1D or BatchNorm2D with random gamma and beta (the defaults 1 and 0 would hide mistakes)."""
    layer = {1: paddle.nn.BatchNorm1D, 2: paddle.nn.BatchNorm2D}[dim](channels, momentum=MOMENTUM, epsilon=EPSILON)
    layer.weight.set_value(rng.uniform(0.5, 2.0, channels).astype("float32"))
    layer.bias.set_value(rng.normal(0.0, 1.0, channels).astype("float32"))
    return layer


def random_batch(dim: int, rng: np.random.Generator, n: int = 8, channels: int = 3, size: int = 5) -> np.ndarray:
    """Activations with a different mean and scale per channel: [n, C] for dim 1, [n, C, size, size] for dim 2."""
    shape = (n, channels) if dim == 1 else (n, channels, size, size)
    shift = per_channel(rng.uniform(-3, 3, channels), np.empty(shape))
    scale = per_channel(rng.uniform(0.5, 4, channels), np.empty(shape))
    return (rng.normal(size=shape) * scale + shift).astype("float32")


def compare_batchnorm(dim: int, *, steps: int = 5, channels: int = 3, seed: int = 0) -> dict:
    """Run numpy and Paddle BatchNorm side by side for `steps` training batches, then one evaluation batch.

    At each training step both see the same batch; numpy keeps its own running statistics with
    `update_running`, so they must match Paddle's `_mean` / `_variance` after every step.
    Returns the largest absolute differences (train output, eval output, running mean, running var) and,
    for the last training batch, the per-channel statistics printed by `report_batchnorm`.
    """
    rng = np.random.default_rng(seed)
    layer = make_layer(dim, channels, rng)
    gamma, beta = layer.weight.numpy(), layer.bias.numpy()
    running_mean, running_var = layer._mean.numpy(), layer._variance.numpy()  # start at 0 and 1
    diff = {"train": 0.0, "running_mean": 0.0, "running_var": 0.0}
    layer.train()
    for _ in range(steps):
        x = random_batch(dim, rng, channels=channels)
        y_paddle = layer(paddle.to_tensor(x)).numpy()
        y_numpy, batch_mean, batch_var = batch_norm_train(x, gamma, beta)
        running_mean = update_running(running_mean, batch_mean)
        running_var = update_running(running_var, batch_var)
        diff["train"] = max(diff["train"], max_abs(y_paddle, y_numpy))
        diff["running_mean"] = max(diff["running_mean"], max_abs(layer._mean.numpy(), running_mean))
        diff["running_var"] = max(diff["running_var"], max_abs(layer._variance.numpy(), running_var))
    axes = channel_axes(x)
    last = {  # the last training batch, measured directly on x and y (not taken from batch_norm_train)
        "input_mean": x.mean(axis=axes), "input_std": x.std(axis=axes),
        "output_mean": y_numpy.mean(axis=axes), "output_std": y_numpy.std(axis=axes),
        "gamma": gamma, "beta": beta, "running_mean": running_mean, "running_var": running_var,
    }
    layer.eval()
    x = random_batch(dim, rng, channels=channels)
    diff["eval"] = max_abs(layer(paddle.to_tensor(x)).numpy(), batch_norm_eval(x, running_mean, running_var, gamma, beta))
    return {"max_abs_diff": diff, "steps": steps, "last": last}


def running_variance_convention(seed: int = 0) -> dict:
    """One training step on a fresh BatchNorm1D: does Paddle's running variance use the biased or unbiased variance?

    Returns the distance of Paddle's `_variance` to each candidate and the name of the one it matches.
    (Paddle 3.3.1 keeps the biased variance, divided by n; PyTorch keeps the unbiased one, divided by n - 1.)
    """
    rng = np.random.default_rng(seed)
    x = random_batch(1, rng, n=4)  # a small batch, so n and n - 1 differ by a lot
    layer = paddle.nn.BatchNorm1D(x.shape[1], momentum=MOMENTUM, epsilon=EPSILON)
    layer.train()
    layer(paddle.to_tensor(x))
    got = layer._variance.numpy()
    candidates = {
        "biased": update_running(np.ones(x.shape[1]), x.var(axis=0, ddof=0)),
        "unbiased": update_running(np.ones(x.shape[1]), x.var(axis=0, ddof=1)),
    }
    distance = {name: max_abs(got, value) for name, value in candidates.items()}
    return {"distance": distance, "matches": min(distance, key=distance.get)}


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---- Dropout: the two modes of paddle.nn.Dropout ----

DROPOUT_MODES = ("upscale_in_train", "downscale_in_infer")


def dropout_reference(x: np.ndarray, keep: np.ndarray, p: float, mode: str, training: bool) -> np.ndarray:
    """What paddle.nn.Dropout(p, mode) computes, given the mask `keep` (1 = kept, 0 = dropped), x and keep: same shape.

    upscale_in_train   train: x * keep / (1 - p)   eval: x             (the expected value is fixed while training)
    downscale_in_infer train: x * keep             eval: x * (1 - p)   (the expected value is fixed at inference)
    """
    if mode == "upscale_in_train":
        return x * keep / (1 - p) if training else x
    if mode == "downscale_in_infer":
        return x * keep if training else x * (1 - p)
    raise ValueError(f"mode must be one of {DROPOUT_MODES}, not {mode!r}")


def dropout_modes(p: float = 0.5, *, seed: int = 0, shape=(4, 6)) -> dict:
    """Apply paddle.nn.Dropout in both modes, train and eval, to a positive x, and compare with `dropout_reference`.

    The mask is read off Paddle's training output (an element of a positive x is dropped exactly when it
    comes out 0). Re-seeding Paddle with the same seed must give the same mask; the kept fraction
    should be near 1 - p. Returns, per mode, the outputs and the largest differences from the reference.
    """
    x = np.random.default_rng(seed).uniform(1.0, 2.0, shape).astype("float32")  # no zeros: 0 means dropped
    results = {}
    for mode in DROPOUT_MODES:
        layer = paddle.nn.Dropout(p, mode=mode)
        layer.train()
        paddle.seed(seed)
        train_out = layer(paddle.to_tensor(x)).numpy()
        paddle.seed(seed)
        again = layer(paddle.to_tensor(x)).numpy()
        keep = (train_out != 0).astype("float32")
        layer.eval()
        # Paddle 3.3.1: eval of downscale_in_infer fails on a 1-D tensor (an internal scale op wants rank >= 2),
        # which is why x here is [N, features].
        eval_out = layer(paddle.to_tensor(x)).numpy()
        results[mode] = {
            "x": x, "train": train_out, "eval": eval_out, "keep_fraction": float(keep.mean()),
            "same_mask_with_same_seed": bool(np.array_equal(train_out, again)),
            "train_diff": max_abs(train_out, dropout_reference(x, keep, p, mode, training=True)),
            "eval_diff": max_abs(eval_out, dropout_reference(x, keep, p, mode, training=False)),
        }
    return results


def dropout_expectation(p: float = 0.5, *, samples: int = 10000, features: int = 16, seed: int = 0) -> dict:
    """Average `samples` training passes of the same x and compare with the evaluation output, per mode.

    Dropout is only fair if the expected training output equals what the network sees at inference:
    E[x * keep / (1 - p)] = x in upscale_in_train, E[x * keep] = (1 - p) x = eval output in downscale_in_infer.
    x: [features], repeated as a [samples, features] batch so one call draws `samples` independent masks.
    Returns per mode: the largest |mean of train outputs - eval output| relative to |x|, and the
    standard error of that mean (the size of difference chance alone explains).
    """
    x = np.random.default_rng(seed).uniform(1.0, 2.0, features).astype("float32")
    batch = paddle.to_tensor(np.tile(x, (samples, 1)))
    results = {}
    for mode in DROPOUT_MODES:
        layer = paddle.nn.Dropout(p, mode=mode)
        paddle.seed(seed)
        layer.train()
        train = layer(batch).numpy()
        layer.eval()
        evaluated = layer(batch).numpy()[0]
        relative_gap = np.abs(train.mean(axis=0) - evaluated) / x
        standard_error = train.std(axis=0) / np.sqrt(samples) / x
        results[mode] = {
            "max_relative_gap": float(relative_gap.max()),
            "max_relative_standard_error": float(standard_error.max()),
            "train_mean": float(train.mean()), "eval_mean": float(evaluated.mean()), "x_mean": float(x.mean()),
            "samples": samples,
        }
    return results


# ---- printing ----

def fmt(v) -> str:
    return "[" + ", ".join(f"{e:+.4f}" for e in np.ravel(v)) + "]"


def report_batchnorm(name: str, result: dict) -> None:
    last, diff = result["last"], result["max_abs_diff"]
    print(f"{name}: last training batch, per channel")
    print(f"  input   mean {fmt(last['input_mean'])}   std {fmt(last['input_std'])}")
    print(f"  output  mean {fmt(last['output_mean'])}   std {fmt(last['output_std'])}   (= beta and ~gamma)")
    print(f"  beta         {fmt(last['beta'])}   gamma {fmt(last['gamma'])}")
    print(f"  running mean {fmt(last['running_mean'])}   running var {fmt(last['running_var'])}  after {result['steps']} steps")
    print(
        f"  max |numpy - paddle|: train {diff['train']:.2e}, eval {diff['eval']:.2e}, "
        f"running mean {diff['running_mean']:.2e}, running var {diff['running_var']:.2e}"
    )


def report_dropout(modes: dict, expectation: dict, p: float) -> None:
    for mode, r in modes.items():
        print(f"Dropout(p={p}, mode={mode}) on x row 0 {fmt(r['x'][0])}")
        print(f"  train {fmt(r['train'][0])}   kept {r['keep_fraction']:.0%} of the elements   same mask when re-seeded: {r['same_mask_with_same_seed']}")
        print(f"  eval  {fmt(r['eval'][0])}")
        e = expectation[mode]
        print(
            f"  mean over {e['samples']:,} training passes {e['train_mean']:.4f} vs eval output {e['eval_mean']:.4f} "
            f"(x mean {e['x_mean']:.4f}); largest gap {e['max_relative_gap']:.2%} of x, "
            f"standard error {e['max_relative_standard_error']:.2%}"
        )
