"""The data folder, and downloads that are verified by checksum and written atomically.

Every data set goes through `fetch`: use the cached copy if its md5 is right, otherwise download it
(from each mirror in turn) into a temporary file, check the md5, and only then rename it into place.
A corrupt or truncated file is therefore never left under the final name, and never used silently.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from common.files import atomic_path

REPO_ROOT = Path(__file__).resolve().parent.parent


class DataError(RuntimeError):
    """Data that is missing, corrupt or malformed; the message says what to do."""


class ChecksumError(DataError):
    pass


def data_dir() -> Path:
    """Where data sets are cached: $COURSE_DATA_DIR if set, else the repository's data/ folder."""
    return Path(os.environ.get("COURSE_DATA_DIR") or REPO_ROOT / "data")


def md5_of(path: str | os.PathLike) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, md5: str, *, timeout: float = 20) -> Path:
    """Download `url` to `dest`, atomically, and verify its md5.

    Raises DataError if the server cannot be reached or answers with an error, ChecksumError if the bytes
    differ from the expected ones (a corrupt or truncated transfer). In both cases `dest` is untouched.
    """
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
                shutil.copyfileobj(response, f)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            # URLError covers HTTP errors such as 404, HTTPException a connection cut short, OSError timeouts.
            raise DataError(f"could not download {url}: {e}") from e
        got = md5_of(tmp)
        if got != md5:
            raise ChecksumError(f"{url} gave a file with md5 {got}, expected {md5} (corrupt or truncated download)")
    return dest


def fetch(
    filename: str, urls: Sequence[str], md5: str, *, cache_dir: str | os.PathLike | None = None, offline: bool = False
) -> Path:
    """Return a verified local copy of `filename`: from the cache, else downloaded from the first mirror that works.

    A cached file with the wrong md5 is reported, deleted and downloaded again. Raises DataError, listing
    every mirror's failure, when no mirror gives the right bytes, or at once when `offline` and the cache
    has no good copy.
    """
    path = Path(cache_dir or data_dir()) / filename
    if path.exists():
        got = md5_of(path)
        if got == md5:
            return path
        warn(f"cached {path} is corrupt (md5 {got}, expected {md5}); deleting it and downloading again")
        path.unlink()
    if offline:
        raise DataError(f"{path} is not in the cache and downloads are off (--offline)")
    failures = []
    for url in urls:
        try:
            return download(url, path, md5)
        except DataError as e:
            failures.append(str(e))
    raise DataError(f"could not get {filename}:\n  " + "\n  ".join(failures))


def warn(message: str) -> None:
    print(f"[data] {message}", file=sys.stderr)
