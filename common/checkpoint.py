"""Saving and loading training state with paddle.save / paddle.load, written atomically."""
from __future__ import annotations

import os
from pathlib import Path

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
