"""Atomic file writes, checked output folders and run locks: a crash, a Ctrl-C or a kill -9 never leaves a
half-written file under the final name, and two runs never write into one folder at once.

    atomic_path(path)      a temporary file beside `path`, renamed onto it when the block succeeds
    atomic_dir(path)       the same for a folder (e.g. a paddle.jit.save export): the old one stays until the swap
    write_json(path, obj)  strict JSON (no NaN or inf, which strict parsers reject), atomically
    check_out_dir(path)    one clear error if --out is a file, sits under a file, or cannot be written
    lock_run_dir(path)     refuse a second process writing into the same run folder (naming the first's pid)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

PART_SUFFIX = ".part"


class OutputError(RuntimeError):
    """An output folder that cannot be used; the message says what to do (shown as one line by common.cli.run)."""


class NonFiniteError(ValueError):
    """A value that JSON cannot hold (NaN or inf): a diverged run must stop before it writes its figures."""


# ---- temporary names: .<name>.<pid>.<random>.part beside the target ----

def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on Windows: assumed so)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # no cheap liveness test without extra packages: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files/folders of `path` left by killed writers (their pid is dead); return what went.

    A temporary name carries its writer's pid, so one that a live process is still writing is left alone.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}."
    for part in path.parent.iterdir():
        name = part.name
        if not (name.startswith(prefix) and name.endswith(PART_SUFFIX)):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(part) if part.is_dir() and not part.is_symlink() else part.unlink()
            removed.append(part)
    return removed


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same folder, so the final `os.replace` is atomic on POSIX and Windows:
    a reader (or a run killed at any instant) sees the old content or the new, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=PART_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600); give it an ordinary file's mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _backup_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; swap it in for `path` only if the block succeeds.

    POSIX has no atomic exchange of two folders, so the swap is two renames: `path` -> `.<name>.old`, then the
    new folder -> `path`. A kill between them leaves `.<name>.old` complete; `recover_dir` (called here and by
    readers) moves it back. So at every instant there is a whole old folder or a whole new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    remove_stale_parts(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=PART_SUFFIX, dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    backup = _backup_of(path)
    try:
        yield tmp
        if backup.exists():
            shutil.rmtree(backup)
        if path.exists():
            os.replace(path, backup)
        os.replace(tmp, path)
        shutil.rmtree(backup, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recover_dir(path: str | os.PathLike) -> Path:
    """Finish a swap that `atomic_dir` began and a kill interrupted: put the complete old folder back."""
    path, backup = Path(path), _backup_of(Path(path))
    if not path.exists() and backup.is_dir():
        with contextlib.suppress(OSError):
            os.replace(backup, path)
    return path if path.exists() else backup


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def digest_of(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's content, read in 1 MiB blocks (a data set never sits in memory twice)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_of(path: str | os.PathLike) -> str:
    return digest_of(path, "sha256")


# ---- JSON ----

def _first_non_finite(obj, where="") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value"
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = _first_non_finite(value, f"{where}[{key!r}]" if where else str(key))
        if found:
            return found
    return None


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write `obj` as indented strict JSON, atomically. NaN and inf are refused (NonFiniteError), not written.

    Python's json writes NaN as a bare `NaN`, which JSON does not allow and strict parsers reject; a figure
    that is NaN means the run diverged, and the chapter must say so instead of writing it.
    """
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError as e:
        where = _first_non_finite(obj)
        raise NonFiniteError(f"refusing to write {path}: {where or 'a value'} is NaN or infinite "
                             "(the run diverged; lower the learning rate)") from e
    try:
        data = (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a path that is not valid UTF-8 (Linux allows any bytes): escape it
        data = (json.dumps(obj, indent=2, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_metrics(out_dir: str | os.PathLike, metrics: dict) -> Path:
    """Write a run's headline figures to `out_dir/metrics.json`."""
    return write_json(Path(out_dir) / "metrics.json", metrics)


# ---- output folders ----

def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Make sure a run can write into folder `path` before it does any work; raise OutputError saying why not.

    Creates nothing: the probe is a temporary file in `path` (or, if it does not exist yet, in its nearest
    existing parent, where the folder will be made).
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{option} {path} is a file, not a folder: choose a folder name (or move the file)")
        parent = path
        while not parent.exists():
            if parent.parent == parent:
                break
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{option} {path} lies under {parent}, which is a file: choose a folder elsewhere")
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:  # permissions (stat of a folder we may not enter, too), a read-only disk, ...
        where = Path(e.filename) if e.filename else path
        where = where.parent if where.name.startswith(".write-test.") else where
        raise OutputError(f"{option} {path}: cannot write in {where} ({e.strerror or e}); "
                          "choose a folder you can write to") from e
    return path


_held_locks: dict[str, object] = {}  # folder -> open lock file, oldest first
MAX_HELD_LOCKS = 16


def _lock_file(path: Path) -> Path:
    """The lock of run folder `path`: in the temporary folder, so the run folder holds only the run's files."""
    key = hashlib.sha1(os.fsencode(os.path.abspath(path))).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "paddle-course-locks"
    if not folder.is_dir():
        folder.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o1777)  # shared by all users, like /tmp itself
    return folder / f"{key}.lock"


def lock_run_dir(path: str | os.PathLike) -> None:
    """Hold a lock on run folder `path` until this process exits; OutputError if another process holds it.

    An OS lock (flock), so the kernel releases it when its holder dies, kill -9 included: a stale lock from
    a dead run is simply taken over. Re-entrant within a process (tests call a chapter's main repeatedly).
    On systems without fcntl (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:
        return
    key = os.path.abspath(path)
    if key in _held_locks:
        return
    try:
        f = open(_lock_file(Path(path)), "a+")
    except OSError:  # no usable temporary folder: run unlocked rather than not at all
        return
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise OutputError(f"another run (pid {holder}) is writing to {path}: wait for it to finish, "
                          "or choose another --out") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    _held_locks[key] = f  # kept open (and so locked) until the process ends...
    while len(_held_locks) > MAX_HELD_LOCKS:  # ...or until it has started many later runs (tests, benchmarks)
        _held_locks.pop(next(iter(_held_locks))).close()


def unlock_run_dir(path: str | os.PathLike) -> None:
    f = _held_locks.pop(os.path.abspath(path), None)
    if f is not None:
        f.close()
