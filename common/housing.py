"""The Boston housing data set (波士顿房价): 506 houses, 13 features and the median price in $1000s.

Sources, in order:
1. `--data PATH`, a copy of `housing.data` the user names;
2. `data/housing.data`, cached and md5-verified;
3. a download of the official file (the one Paddle's `UCIHousing` uses), md5-verified;
4. offline: the copy mlxtend ships as `boston_housing.csv` (the same 506 x 14 values; a test checks this).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.download import DataError, data_dir, fetch, md5_of, warn

FILENAME = "housing.data"
MD5 = "d4accdce7a25600298819f8e28e8d593"
URLS = (
    "https://archive.ics.uci.edu/ml/machine-learning-databases/housing/housing.data",
    "http://paddlemodels.bj.bcebos.com/uci_housing/housing.data",  # Paddle's UCIHousing mirror
)
FEATURE_NAMES = (
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT",
)
TARGET_NAME = "MEDV"  # median value of owner-occupied homes, in $1000s
N_COLUMNS = len(FEATURE_NAMES) + 1
MIN_ROWS = 10  # an 8:2 split of fewer leaves too few houses to fit 14 parameters and test them


def load_housing(path: str | os.PathLike | None = None, *, download: bool = True) -> tuple[np.ndarray, str]:
    """Return (data [506, 14] float32: 13 features then the price, source: a sentence saying where it came from)."""
    if path is not None:
        return _load_user_file(Path(path))
    try:
        local = fetch(FILENAME, URLS, MD5, cache_dir=data_dir(), offline=not download)
        return parse_housing(local), f"official housing.data (md5 verified) at {local}"
    except DataError as e:
        warn(f"{e}\n[data] falling back to the copy of the same data shipped with the mlxtend package")
    return load_mlxtend_copy(), "offline fallback: mlxtend's boston_housing.csv (same values as the official housing.data)"


def parse_housing(path: str | os.PathLike) -> np.ndarray:
    """Parse a housing file (whitespace- or comma-separated, 14 numbers a row) into a [N, 14] float32 array.

    Refused with a DataError naming the problem: text that is not numbers, rows of another length, fewer than
    MIN_ROWS rows, NaN or infinite values, and a column that is the same in every row (it carries no
    information, and normalising it would divide by zero).
    """
    get_it = f"get the official file from {URLS[0]}"
    try:
        with open(path, encoding="utf-8") as f:
            delimiter = "," if "," in f.readline() else None
        data = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(
            f"{path} is not a housing file: {str(e).rstrip('.')}. Each row must hold {N_COLUMNS} numbers "
            f"({', '.join(FEATURE_NAMES)}, {TARGET_NAME}); {get_it}"
        ) from e
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e}): check its permissions") from e
    if data.shape[1] != N_COLUMNS or data.shape[0] == 0:
        raise DataError(
            f"{path} has {data.shape[1]} columns, expected {N_COLUMNS} "
            f"({', '.join(FEATURE_NAMES)}, {TARGET_NAME}); {get_it}. A table of your own needs a header row "
            "naming its columns (then --target NAME)"
        )
    check_values(data, str(path))
    return data.astype(np.float32)


def column_name(index: int) -> str:
    return f"column {index + 1} ({(*FEATURE_NAMES, TARGET_NAME)[index]})"


def check_values(data: np.ndarray, where: str) -> None:
    """DataError if `data` [N, 14] is too short, holds NaN/inf, or has a constant column."""
    if len(data) < MIN_ROWS:
        raise DataError(f"{where} has {len(data)} rows: at least {MIN_ROWS} houses are needed to train and test "
                        f"a model (the official file has 506)")
    bad = np.argwhere(~np.isfinite(data))
    if len(bad):
        row, col = bad[0]
        raise DataError(f"{where}: row {row + 1}, {column_name(col)} is {data[row, col]} ({len(bad)} such values): "
                        "fill in or drop the rows with missing values")
    constant = np.flatnonzero(data.min(axis=0) == data.max(axis=0))
    if len(constant):
        raise DataError(f"{where}: {column_name(constant[0])} has the same value in every row, so it cannot be "
                        "normalised (its spread is 0) and carries no information: check the file")


def load_mlxtend_copy() -> np.ndarray:
    try:
        import mlxtend
    except ImportError as e:
        raise DataError(
            "no housing data: the download failed and mlxtend (which ships an offline copy) is not installed. "
            f"Run `pip install -r requirements.txt`, or download {URLS[0]} and pass --data PATH"
        ) from e
    csv = Path(mlxtend.__file__).parent / "data" / "data" / "boston_housing.csv"
    return parse_housing(csv)


def _load_user_file(path: Path) -> tuple[np.ndarray, str]:
    if path.is_dir():
        raise DataError(f"--data {path} is a folder: name the housing.data file itself")
    if not path.is_file():
        raise DataError(
            f"--data {path}: no such file. Download it from {URLS[0]}, or leave out --data to use "
            f"the cached/downloaded copy in {data_dir()}"
        )
    data = parse_housing(path)
    if md5_of(path) != MD5:
        warn(f"{path} differs from the official housing.data (md5 {MD5}); using it as you asked")
    return data, f"user file {path}"
