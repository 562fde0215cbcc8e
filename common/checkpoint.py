"""Saving and loading training state with paddle.save / paddle.load, written atomically."""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import paddle

from common.download import DataError
from common.files import atomic_path


def save_state(path: str | os.PathLike, state: dict) -> Path:
    """paddle.save `state` (state_dicts, numbers, numpy arrays) to `path`, atomically."""
    with atomic_path(path) as tmp:
        paddle.save(state, str(tmp))
    return Path(path)


def load_state(path: str | os.PathLike) -> dict:
    """paddle.load a file written by `save_state`; a missing file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no saved model at {path}: train one first (the chapter's command writes it)")
    return paddle.load(str(path))


# ---- training checkpoints: resume an interrupted run exactly ----

def rng_state() -> np.ndarray:
    """The state of Python's, numpy's and Paddle's random generators, pickled into a uint8 array.

    (paddle.save stores tensors, arrays, numbers, strings and containers, but neither these state objects
    nor bytes; an array of the pickled bytes it does store.)
    """
    blob = pickle.dumps({"python": random.getstate(), "numpy": np.random.get_state(),
                         "paddle": paddle.get_rng_state()})
    return np.frombuffer(blob, dtype=np.uint8).copy()


def set_rng_state(blob: np.ndarray) -> None:
    """Restore the generators from `rng_state`'s array."""
    state = pickle.loads(np.asarray(blob, dtype=np.uint8).tobytes())
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    paddle.set_rng_state(state["paddle"])


def save_checkpoint(path: str | os.PathLike, *, model, optimizer, epoch: int, **extra) -> Path:
    """Atomically save everything a resumed run needs after `epoch` epochs are complete.

    model and optimizer state_dicts (the optimizer's holds its moments and the learning-rate schedule),
    the epoch, the random generators' state, and any `extra` values (e.g. the history so far).
    """
    return save_state(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "epoch": epoch, "rng": rng_state(), "extra": extra})


def load_checkpoint(path: str | os.PathLike, *, model, optimizer) -> dict:
    """Restore model, optimizer and random generators from `save_checkpoint`'s file; return {"epoch", **extra}."""
    state = load_state(path)
    if not {"model", "optimizer", "epoch", "rng"} <= set(state):
        raise DataError(f"{path} is not a training checkpoint (it lacks model/optimizer/epoch/rng)")
    model.set_state_dict(state["model"])
    optimizer.set_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    return {"epoch": int(state["epoch"]), **state.get("extra", {})}
