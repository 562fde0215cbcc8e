"""Saving and loading training state and exported models: written atomically, verified when read.

    save_state / load_state        paddle.save / paddle.load with a checksum; a damaged file is a clear DataError
    save_checkpoint / read_checkpoint / restore_checkpoint
                                   everything a resumed run needs; the previous good checkpoint is kept beside
    export_inference_model / load_inference_model
                                   paddle.jit.save into a temporary folder that is swapped in whole, with a
                                   SHA256SUMS file that the loader checks before Paddle reads a byte

The checksum is a trailer after paddle.save's bytes: b"\\nCOURSE-SHA256:" + the hex digest of everything
before it + b"\\n". paddle.load itself stops at the end of its pickle and ignores it, so `paddle.load(path)`
still works on every file written here.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import paddle

from common.download import DataError
from common.files import atomic_dir, atomic_path, pid_alive, recover_dir, sha256_of

TRAILER_TAG = b"\nCOURSE-SHA256:"
TRAILER_SIZE = len(TRAILER_TAG) + 64 + 1
SUMS_FILE = "SHA256SUMS"  # in an export folder; the format of `sha256sum`, so `sha256sum -c SHA256SUMS` checks it


# ---- one file: paddle.save + checksum ----

def _with_checksum(state) -> bytes:
    """paddle.save's bytes of `state`, followed by the checksum trailer."""
    buffer = io.BytesIO()
    paddle.save(state, buffer)
    payload = buffer.getvalue()
    return payload + TRAILER_TAG + hashlib.sha256(payload).hexdigest().encode("ascii") + b"\n"


def save_state(path: str | os.PathLike, state) -> Path:
    """paddle.save `state` (state_dicts, numbers, numpy arrays) to `path` with a checksum trailer, atomically."""
    data = _with_checksum(state)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _verified_payload(path: Path, require_checksum: bool) -> bytes:
    """The paddle.save bytes of `path` after checking its trailer; DataError saying what is wrong otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e})") from e
    if not raw:
        raise DataError(f"{path} is empty (a copy or a write that did not finish)")
    tail = raw[-TRAILER_SIZE:]
    if tail.startswith(TRAILER_TAG) and tail.endswith(b"\n"):
        payload, expected = raw[:-TRAILER_SIZE], tail[len(TRAILER_TAG):-1].decode("ascii", "replace")
        if hashlib.sha256(payload).hexdigest() != expected:
            raise DataError(f"{path} is damaged: its content does not match its checksum "
                            "(a changed or truncated file)")
        return payload
    if require_checksum:
        raise DataError(f"{path} has no checksum: it is damaged (truncated?) or was not written by this course")
    return raw


def load_state(path: str | os.PathLike, *, require_checksum: bool = False):
    """paddle.load a file written by `save_state`, verifying its checksum.

    A missing, empty, truncated, bit-flipped or non-Paddle file is a DataError that names it. A file without a
    checksum (e.g. written by plain paddle.save) is accepted unless `require_checksum`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no saved model at {path}: train one first (the chapter's command writes it)")
    payload = _verified_payload(path, require_checksum)
    try:
        return paddle.load(io.BytesIO(payload))
    except Exception as e:  # pickle, EOF, value errors from a file that is not paddle.save's
        raise DataError(f"{path} is not a file paddle.save wrote, or it is damaged ({type(e).__name__}: {e})") from e


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


def previous_checkpoint(path: str | os.PathLike) -> Path:
    """Where the checkpoint before `path` is kept: checkpoint.pdckpt -> checkpoint.prev.pdckpt."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(path: str | os.PathLike, *, model, optimizer, epoch: int, **extra) -> Path:
    """Atomically save everything a resumed run needs after `epoch` epochs are complete.

    model and optimizer state_dicts (the optimizer's holds its moments and the learning-rate schedule),
    the epoch, the random generators' state, and any `extra` values (e.g. the history so far).
    The checkpoint it replaces becomes `previous_checkpoint(path)`, so one damaged file never costs the run.
    """
    path = Path(path)
    data = _with_checksum({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                           "rng": rng_state(), "extra": extra})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        if _is_good_checkpoint(path):  # a damaged one is overwritten, never kept as "the previous good one"
            # A kill between this rename and atomic_path's own leaves only the previous checkpoint: still good.
            os.replace(path, previous_checkpoint(path))
    return path


def _is_good_checkpoint(path: Path) -> bool:
    try:
        _verified_payload(path, require_checksum=True)
        return True
    except DataError:
        return False


def _read_one(path: Path) -> dict:
    state = load_state(path, require_checksum=True)
    if not isinstance(state, dict) or not {"model", "optimizer", "epoch", "rng"} <= set(state):
        raise DataError(f"{path} is not a training checkpoint (it lacks model/optimizer/epoch/rng)")
    return state


def read_checkpoint(path: str | os.PathLike, *, warn=print) -> tuple[dict, Path]:
    """The verified state in checkpoint `path`, or in the previous one if `path` is missing or damaged.

    Returns (state, the file it came from). DataError, saying what to do, when neither is usable.
    """
    path = Path(path)
    previous = previous_checkpoint(path)
    try:
        if not path.is_file():  # a run killed between the two renames of save_checkpoint
            raise DataError(f"{path} is missing")
        return _read_one(path), path
    except DataError as e:
        if not previous.is_file():
            raise DataError(f"cannot resume: {e}. Start again without --resume (the damaged checkpoint is "
                            "replaced after the first epoch), or use another --out") from e
        try:
            state = _read_one(previous)
        except DataError as e2:
            raise DataError(f"cannot resume: {e}; and the previous checkpoint is no better: {e2}. "
                            "Start again without --resume, or use another --out") from e2
        warn(f"warning: {e}; resuming from the previous checkpoint {previous} (after epoch {int(state['epoch'])})")
        return state, previous


def restore_checkpoint(state: dict, *, model, optimizer) -> dict:
    """Put a checkpoint's model, optimizer and random generators back; return {"epoch", **extra}."""
    model.set_state_dict(state["model"])
    optimizer.set_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    return {"epoch": int(state["epoch"]), **state.get("extra", {})}


def load_checkpoint(path: str | os.PathLike, *, model, optimizer) -> dict:
    """Restore model, optimizer and random generators from `save_checkpoint`'s file; return {"epoch", **extra}."""
    state, _ = read_checkpoint(path)
    return restore_checkpoint(state, model=model, optimizer=optimizer)


# ---- exported inference models (paddle.jit.save) ----

def _write_sums(folder: Path) -> None:
    lines = [f"{sha256_of(p)}  {p.name}\n" for p in sorted(folder.iterdir()) if p.is_file() and p.name != SUMS_FILE]
    (folder / SUMS_FILE).write_text("".join(lines), encoding="utf-8")


def export_inference_model(model, folder: str | os.PathLike, input_spec, name: str = "model") -> Path:
    """paddle.jit.save `model` as folder/name.* (model.json or .pdmodel, .pdiparams); return the prefix.

    paddle.jit.save writes in place, so a kill in the middle would leave a broken model where a good one was;
    here it writes into a temporary folder beside `folder`, adds SHA256SUMS, and swaps the folder in whole.
    It also removes the scratch folder paddle leaves at ~/.cache/paddle/to_static_tmp/<pid>/.
    """
    folder = Path(folder)
    try:
        with atomic_dir(folder) as tmp:
            paddle.jit.save(model, str(tmp / name), input_spec=input_spec)
            _write_sums(tmp)
    finally:
        remove_paddle_scratch()
    return folder / name


def remove_paddle_scratch() -> None:
    """Delete ~/.cache/paddle/to_static_tmp/<pid>/ of this process and of dead ones (runs that were killed)."""
    scratch = Path(os.path.expanduser("~/.cache")) / "paddle" / "to_static_tmp"
    if not scratch.is_dir():
        return
    for folder in scratch.iterdir():
        if folder.name.isdigit() and (int(folder.name) == os.getpid() or not pid_alive(int(folder.name))):
            shutil.rmtree(folder, ignore_errors=True)


def verify_export(prefix: str | os.PathLike) -> Path:
    """Check an export's files against its SHA256SUMS; DataError naming the first that is missing or changed."""
    prefix = Path(prefix)
    recover_dir(prefix.parent)  # a swap that a kill interrupted: the old export is complete
    sums = prefix.parent / SUMS_FILE
    retrain = "export it again: rerun the training command (the same --out replaces it)"
    params = prefix.with_name(prefix.name + ".pdiparams")
    if not params.is_file():
        raise DataError(f"no exported model at {prefix}(.json/.pdmodel + .pdiparams): {retrain}")
    if params.stat().st_size == 0:  # paddle.jit.load would accept it and run a model without weights
        raise DataError(f"the exported model's weights {params} are an empty file: {retrain}")
    if not sums.is_file():
        return prefix  # exported before checksums were written: paddle.jit.load's own checks only
    for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
        digest, _, file_name = line.partition("  ")
        file = prefix.parent / file_name
        if not file.is_file():
            raise DataError(f"the exported model in {prefix.parent} is incomplete ({file_name} is missing): {retrain}")
        if sha256_of(file) != digest:
            raise DataError(f"the exported model in {prefix.parent} is damaged ({file_name} does not match "
                            f"{SUMS_FILE}): {retrain}")
    return prefix


def load_inference_model(prefix: str | os.PathLike):
    """paddle.jit.load an export of `export_inference_model`, after verifying it; in eval mode.

    A missing, incomplete, damaged or unloadable export is a DataError that says what to do, never Paddle's
    C++ error.
    """
    prefix = verify_export(prefix)
    try:
        model = paddle.jit.load(str(prefix))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot load the exported model {prefix} ({type(e).__name__}: {first[:200]}): "
                        "export it again by rerunning the training command") from e
    model.eval()
    return model
