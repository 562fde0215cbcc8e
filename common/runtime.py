"""Seeding and device choice: the two things every run sets before it builds a model; and the one way a
training loop says that it diverged."""
from __future__ import annotations

import math
import random

import numpy as np
import paddle

DEVICES = ("auto", "cpu", "gpu")


class DeviceError(RuntimeError):
    """The device asked for is not available; the message says what to do."""


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and Paddle.

    On CPU at a fixed thread count this makes training bit-for-bit repeatable. On GPU some cuDNN kernels
    are non-deterministic, so results agree only to float tolerance.
    """
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def gpu_available() -> bool:
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def set_device(choice: str = "auto") -> str:
    """Select the device for all new tensors and return its name ('cpu' or 'gpu:0').

    auto: the GPU when this Paddle build has CUDA and sees a GPU, else the CPU.
    """
    if choice not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {choice!r}")
    if choice == "gpu" and not gpu_available():
        raise DeviceError(
            "--device gpu was asked for, but this Paddle build has no CUDA or sees no GPU. "
            "Install paddlepaddle-gpu (see README, 'Running on a GPU') or use --device cpu."
        )
    use_gpu = choice == "gpu" or (choice == "auto" and gpu_available())
    paddle.device.set_device("gpu:0" if use_gpu else "cpu")
    return paddle.device.get_device()


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf or exploded: the learning rate is too high. The message says what to do."""


DIVERGED_ADVICE = "Lower --lr (e.g. by 10x)"


def check_finite_loss(loss: float, where: str, limit: float = float("inf"), advice: str = DIVERGED_ADVICE) -> None:
    """Raise TrainingDiverged if `loss` is NaN, infinite or above `limit`; `where` says when (e.g. "epoch 3")."""
    if not (math.isfinite(loss) and loss <= limit):
        raise TrainingDiverged(f"loss is {loss} at {where}: training diverged. {advice}.")
