"""The data folder, and downloads that are verified by checksum and written atomically.

Every data set goes through `fetch`: use the cached copy if its md5 is right, otherwise download it
(from each mirror in turn) into a temporary file, check the md5, and only then rename it into place.
A corrupt or truncated file is therefore never left under the final name, and never used silently.
A download has an overall deadline and a minimum rate (a server that drips one byte at a time fails like any
other); a cache that cannot be used (read-only, a file where the folder should be, a folder where the file
should be) is a DataError, so the data loaders fall back to their offline copies with a notice.
"""
from __future__ import annotations

import functools
import http.client
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from common.files import atomic_path, digest_of

REPO_ROOT = Path(__file__).resolve().parent.parent


class DataError(RuntimeError):
    """Data that is missing, corrupt or malformed; the message says what to do."""


class ChecksumError(DataError):
    pass


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every download of the process: making one reads all of the system's certificates."""
    return ssl.create_default_context()


def data_dir() -> Path:
    """Where data sets are cached: $COURSE_DATA_DIR if set, else the repository's data/ folder."""
    return Path(os.environ.get("COURSE_DATA_DIR") or REPO_ROOT / "data")


def md5_of(path: str | os.PathLike) -> str:
    """The md5 the official sources publish (MNIST, housing): a check against damage, not against forgery."""
    return digest_of(path, "md5")


TIMEOUT = 20  # seconds one read may wait
DEADLINE = 900  # seconds a whole download may take (MNIST's largest file, 9.9 MB, at the minimum rate: ~16 min)
MIN_RATE = 10_000  # bytes per second, averaged from GRACE seconds on: slower is a stalled or dripping server
GRACE = 15
CHUNK = 1 << 16


def _copy_with_limits(response, f, url: str, deadline: float, min_rate: float, grace: float) -> None:
    start = time.monotonic()
    done = 0
    while True:
        block = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
        if not block:
            return
        f.write(block)
        done += len(block)
        elapsed = time.monotonic() - start
        if elapsed > deadline:
            raise DataError(f"could not download {url}: no complete answer within {deadline:g} s")
        if elapsed > grace and done < min_rate * elapsed:
            raise DataError(f"could not download {url}: too slow ({done / elapsed:.0f} bytes/s after "
                            f"{elapsed:.0f} s, minimum {min_rate:g})")


def download(url: str, dest: str | os.PathLike, md5: str, *, timeout: float = TIMEOUT, deadline: float = DEADLINE,
             min_rate: float = MIN_RATE, grace: float = GRACE) -> Path:
    """Download `url` to `dest`, atomically, and verify its md5.

    Raises DataError if the server cannot be reached, answers with an error, takes longer than `deadline`
    seconds in all, or sends fewer than `min_rate` bytes/s (after `grace` seconds); ChecksumError if the bytes
    differ from the expected ones (a corrupt or truncated transfer); DataError if `dest` cannot be written.
    In every case `dest` is untouched and no temporary file is left.
    """
    dest = Path(dest)
    try:
        with atomic_path(dest) as tmp:
            try:
                opened = urllib.request.urlopen(url, timeout=min(timeout, deadline), context=_tls_context())
                with opened as response, open(tmp, "wb") as f:
                    _copy_with_limits(response, f, url, deadline, min_rate, grace)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                # URLError covers HTTP errors such as 404, HTTPException a connection cut short, OSError timeouts.
                raise DataError(f"could not download {url}: {e}") from e
            got = md5_of(tmp)
            if got != md5:
                raise ChecksumError(f"{url} gave a file with md5 {got}, expected {md5} (corrupt or truncated download)")
    except OSError as e:  # the cache itself: read-only, a file in the way, a folder where the file goes, disk full
        raise DataError(f"cannot write {dest} ({e.strerror or e}): set COURSE_DATA_DIR to a folder you can write to"
                        ) from e
    return dest


def fetch(
    filename: str, urls: Sequence[str], md5: str, *, cache_dir: str | os.PathLike | None = None, offline: bool = False
) -> Path:
    """Return a verified local copy of `filename`: from the cache, else downloaded from the first mirror that works.

    A cached file with the wrong md5 is reported and replaced by a good download (never deleted first: offline,
    or when every mirror fails, it stays as it was). Raises DataError, listing every mirror's failure, when no
    mirror gives the right bytes, at once when `offline` and the cache has no good copy, and when the cache
    cannot be read or written.
    """
    path = Path(cache_dir or data_dir()) / filename
    if path.is_dir():
        raise DataError(f"the cache entry {path} is a folder, not a file: remove or rename it")
    if path.exists():
        try:
            got = md5_of(path)
        except OSError as e:
            raise DataError(f"cannot read the cached {path} ({e.strerror or e})") from e
        if got == md5:
            return path
        if offline:
            raise DataError(f"cached {path} does not verify (md5 {got}, expected {md5}) and downloads are off "
                            "(--offline); it is left as it is")
        warn(f"cached {path} is corrupt (md5 {got}, expected {md5}); downloading a good copy to replace it")
    elif offline:
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
