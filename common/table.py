"""Your own table for regression: a CSV file with a header row and numeric columns (回归: 自己的表格数据).

    size_m2,rooms,age,distance_km,floor,price
    72.5,3,12,4.1,2,315.0
    ...

    load_table("houses.csv", target="price") -> Table(values [N, F + 1] float32: the F feature columns in the
                                                      file's order, then the target; feature_names; target)

Any number of feature columns; every cell must be a finite number. The columns are read with Python's `csv`
module (quoted fields and a UTF-8 byte-order mark are fine; the delimiter is a comma, or a semicolon or tab
when the header has no comma). Each problem is a DataError that says where (file:line:column) and what to do:
a missing target column lists the columns there are; a cell that is not a number names it; a short row, a
constant column (it carries no information, and standardising it would divide by 0) and too few rows are
refused.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.download import DataError

MIN_ROWS = 5  # an 80/20 split of fewer rows leaves nothing to test on, or one row to fit


@dataclass
class Table:
    values: np.ndarray  # [N, F + 1] float32, features then target
    feature_names: list[str]
    target: str
    source: str


def _delimiter(header_line: str) -> str:
    if "," in header_line:
        return ","
    return ";" if ";" in header_line else ("\t" if "\t" in header_line else ",")


def _is_decimal_comma(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return text.count(",") == 1


def _number(cell: str, where: str, column: str) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        shown = "an empty cell" if not text else f"{text[:40]!r}"
        if _is_decimal_comma(text):  # 173,6: a spreadsheet saved in a locale that writes decimals with a comma
            raise DataError(f"{where} (column {column!r}): {shown} has a comma; write numbers with a decimal "
                            f"point and no thousands separator ({text.replace(',', '.')}, if the comma is a "
                            "decimal one): save the CSV with '.' as the decimal separator") from None
        raise DataError(f"{where} (column {column!r}): {shown} is not a number; every cell must be a number "
                        "(fix or remove the row, or leave out a text column)") from None
    if not np.isfinite(value):
        raise DataError(f"{where} (column {column!r}): {text!r} is not a finite number; fill in or remove the row")
    return value


def read_csv(path: str | os.PathLike, columns: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(header, values float64 [N, M]) of a CSV with a header and numbers in every cell; errors say file:line:col.

    With `columns`, only those must hold numbers (other columns, text ones too, are skipped): the header
    returned is `columns` and the values are theirs, in that order.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise DataError(f"--data {path} {what}: give a CSV file with a header row, e.g. --data houses.csv "
                        "--target price")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"--data {path}: cannot read it as a UTF-8 text file ({e}); save it as CSV (UTF-8)") from e
    first = next((line for line in lines if line.strip()), "")
    if any(d in first for d in ",;\t") or len(first.split()) < 2:
        reader = csv.reader(lines, delimiter=_delimiter(first))
    else:  # columns separated by spaces, as in housing.data (and many a .txt table)
        reader = (line.split() for line in lines)
    rows = [(number, row) for number, row in enumerate(reader, start=1) if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"--data {path} is empty; it needs a header row and rows of numbers")
    header = [name.strip() for name in rows[0][1]]
    if len(set(header)) != len(header):
        doubled = sorted({name for name in header if header.count(name) > 1})
        raise DataError(f"{path}:1: the column name(s) {', '.join(doubled)} appear more than once; rename them")
    if columns is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path} lacks the column(s) {', '.join(missing)}; its columns are {', '.join(header)}")
    wanted = [header.index(c) for c in columns] if columns is not None else list(range(len(header)))
    values = []
    for number, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}:{number}: {len(row)} cells, but the header has {len(header)} columns "
                            f"({', '.join(header)})")
        values.append([_number(row[col], f"{path}:{number}:{col + 1}", header[col]) for col in wanted])
    names = [header[col] for col in wanted]
    return names, np.asarray(values, dtype=np.float64).reshape(len(values), len(names))


def has_header(path: str | os.PathLike) -> bool:
    """True if the file's first non-blank line holds a cell that is not a number (a header row, so a table)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    try:  # a binary file is no table: leave it to the caller's own format and its error
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a character cut at the end of the chunk
            return False
        text = head[:e.start].decode("utf-8-sig")
    if "\0" in text:
        return False
    first = next((line for line in text.splitlines() if line.strip()), "")
    separated = any(d in first for d in ",;\t")
    cells = next(csv.reader([first], delimiter=_delimiter(first)), []) if separated else first.split()
    for cell in cells:  # a housing.data row is numbers separated by spaces
        try:
            float(cell)
        except ValueError:
            if cell.strip():
                return True
    return False


def load_table(path: str | os.PathLike, target: str | None = None) -> Table:
    """Read a CSV with a header for training; the target column (default: the last) goes last, the others are
    the features."""
    path = Path(path)
    header, data = read_csv(path)
    target = header[-1] if target is None else target
    if target not in header:
        raise DataError(f"--data {path}: no column {target!r} to predict; its columns are {', '.join(header)} "
                        "(pass one of them with --target)")
    if len(header) < 2:
        raise DataError(f"--data {path}: only the column {target!r}; a regression needs at least one feature column")
    if len(data) < MIN_ROWS:
        raise DataError(f"--data {path}: {len(data)} rows of data; at least {MIN_ROWS} are needed to train on 80% "
                        "and test on 20%")
    constant = [name for name, column in zip(header, data.T) if np.all(column == column[0])]
    if constant:
        raise DataError(f"--data {path}: the column(s) {', '.join(constant)} hold the same value in every row: "
                        "they carry no information (and cannot be standardised); remove them")
    t = header.index(target)
    order = [i for i in range(len(header)) if i != t] + [t]
    features = [header[i] for i in order[:-1]]
    return Table(values=data[:, order].astype(np.float32), feature_names=features, target=target,
                 source=f"CSV {path}: {len(data)} rows, {len(features)} feature{'s' if len(features) > 1 else ''} "
                        f"({', '.join(features)}), "
                        f"target {target}")


# ---- an example table, for trying the above without data of your own ----

EXAMPLE_COLUMNS = ("size_m2", "rooms", "age_years", "distance_km", "floor", "price")


def example_csv_text(rows: int = 200, seed: int = 0) -> str:
    """The text of a CSV of made-up flats: 5 features and a price (in thousands) linear in them plus noise."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(30, 200, rows)
    rooms = rng.integers(1, 7, rows)
    age = rng.uniform(0, 80, rows)
    distance = rng.uniform(0.5, 30, rows)
    floor = rng.integers(0, 20, rows)
    price = 50 + 3.2 * size + 12 * rooms - 0.8 * age - 4 * distance + 1.5 * floor + rng.normal(0, 10, rows)
    lines = [",".join(EXAMPLE_COLUMNS)]
    lines += [",".join(f"{v:.2f}" for v in row) for row in zip(size, rooms, age, distance, floor, price)]
    return "\n".join(lines) + "\n"


def write_example_csv(path: str | os.PathLike, rows: int = 200, seed: int = 0) -> Path:
    """Write example_csv_text to `path` (atomically)."""
    from common.files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(example_csv_text(rows, seed), encoding="utf-8")
    return Path(path)


def main(argv: list[str] | None = None) -> Path:
    """The command line: write the example CSV, but never over a file that holds something else (your data)."""
    import argparse

    from common.cli import positive_int

    parser = argparse.ArgumentParser(prog="python -m common.table",
                                     description="Write an example CSV: 5 features of made-up flats and a price.")
    parser.add_argument("path", type=Path, help="the CSV file to write, e.g. houses.csv")
    parser.add_argument("--rows", type=positive_int, default=200, help="rows of data (default: 200)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    args = parser.parse_args(argv)
    path = args.path
    if path.is_dir():
        raise DataError(f"{path} is a folder: name the CSV file to write, e.g. {path / 'houses.csv'}")
    if path.exists():
        if path.read_bytes() == example_csv_text(args.rows).encode("utf-8"):
            print(f"{path} already holds the example ({args.rows} rows: {', '.join(EXAMPLE_COLUMNS)})")
            return path
        raise DataError(f"{path} exists and holds something else: it is left alone; choose another file name")
    print(f"wrote {write_example_csv(path, args.rows)} ({args.rows} rows: {', '.join(EXAMPLE_COLUMNS)})")
    return path


if __name__ == "__main__":
    from common.cli import run

    run(main)
