"""The command line every chapter shares: --epochs --lr --batch-size --seed --device --out --data --offline --debug.

A chapter calls `make_parser` with its own defaults, adds its own options, and parses:

    parser = make_parser("ch01_house_price", "House prices with Paddle", epochs=100, lr=0.01, batch_size=10)
    parser.add_argument("--norm", choices=["zscore", "minmax"], default="zscore")
    cfg = parser.parse_args(argv)

and its script ends with `if __name__ == "__main__": run(main)`, so that a user's mistake (a missing file, no GPU)
prints one clear line instead of a traceback, while tests calling `main([...])` still see the exception. `run`
turns *any* other exception into one line too, with a hint to rerun with `--debug` for the full traceback.

Parsing also checks `--out` before any work is done (a file, a folder under a file, or one that cannot be
written is a one-line error) and locks it, so a second run into the same folder is refused while the first lives.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Callable

from common.download import DataError
from common.files import NonFiniteError, OutputError, check_out_dir, lock_run_dir
from common.runtime import DEVICES, DeviceError, TrainingDiverged

SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit
# Errors whose message is the whole story for the user: shown as one line, exit status 1.
USER_ERRORS = (DataError, DeviceError, OutputError, TrainingDiverged, NonFiniteError)
OFFLINE_NOOP_HELP = "accepted by every chapter; this one downloads nothing, so it changes nothing here"


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


def seed_value(text: str) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (what numpy accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be from 0 to {SEED_MAX} (2**32 - 1), got {value}")
    return value


def out_folder(text: str) -> Path:
    """--out: a folder; an empty one (`--out=`, or an unset shell variable) would mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name the folder for the run's files, e.g. --out runs/try1")
    return Path(text)


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
    figures: bool = False,
) -> argparse.ArgumentParser:
    """A parser with the shared options; pass None for a training option the chapter has no use for, and
    figures=True for a chapter that draws plots (then --no-figures skips them)."""
    p = CourseParser(prog=f"python -m chapters.{name}", description=description, formatter_class=HelpFormatter)
    if epochs is not None:
        p.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the training data")
    if lr is not None:
        p.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    if batch_size is not None:
        p.add_argument("--batch-size", type=positive_int, default=batch_size, help="samples per mini-batch")
    p.add_argument("--seed", type=seed_value, default=seed, help="seed for Python, numpy and Paddle (0 to 2**32-1)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = GPU if Paddle sees one, else CPU")
    p.add_argument("--out", type=out_folder, default=Path("runs") / name, help="folder for plots, models and metrics.json")
    if data_help is not None:
        p.add_argument("--data", type=Path, default=None, help=data_help)
    p.add_argument("--offline", action="store_true",
                   help=OFFLINE_NOOP_HELP if data_help is None else
                   "never download: use --data, the cache in data/, or the copy a pip package ships; "
                   "a cached file that does not verify is left in place, never deleted")
    if figures:
        p.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                       help="draw the plots (PNG files in --out); --no-figures saves the models and numbers only, "
                            "about 0.1 s faster a plot (a server, a benchmark loop, a test)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    return p


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where X says something: not for None (the help says what happens then) nor for
    on/off flags, and never twice (help that already names its default keeps its own wording)."""

    def _get_help_string(self, action):
        text = action.help or ""
        on_off_flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
        if action.default is None or action.default is argparse.SUPPRESS or on_off_flag or "default" in text:
            return text
        return super()._get_help_string(action)


class CourseParser(argparse.ArgumentParser):
    """An ArgumentParser that checks and locks `--out` right after parsing, before the chapter does any work.

    Only for a run: a command line (args from sys.argv) or arguments that name --out. A configuration that a
    benchmark or a test builds from the defaults (`parse_args(["--model", "mlp"])`) writes nowhere, so its
    default folder is neither checked nor locked (a user's run there would otherwise block it).
    """

    # A chapter whose default output folder depends on its options (chapter 2: one folder per model) sets this to
    # a function cfg -> folder; it replaces the placeholder default before the folder is checked and locked.
    default_out_for = None

    def parse_args(self, args=None, namespace=None):
        cfg = super().parse_args(args, namespace)
        out = getattr(cfg, "out", None)
        if self.default_out_for is not None and out is not None and out == self.get_default("out"):
            cfg.out = out = self.default_out_for(cfg)
        names_out = args is None or any(a == "--out" or str(a).startswith("--out=") for a in args)
        if out is not None and names_out:
            check_out_dir(out)
            if os.environ.get("PADDLE_TRAINER_ID", "0") == "0":  # under paddle.distributed.launch: rank 0 writes
                lock_run_dir(out)
        return cfg


def debug_requested(argv: list[str]) -> bool:
    """True if the command line asks for tracebacks: `--debug` or `--debug=...` (ch02 predict's `--debug DIR`
    counts too: run() cannot parse a chapter's own options, so it looks at the words)."""
    return any(a == "--debug" or a.startswith("--debug=") for a in argv)


def one_line(text: str, limit: int = 400) -> str:
    """Squeeze a message (C++ errors run to pages) into one line of at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run(main: Callable[..., object], argv: list[str] | None = None) -> None:
    """Call a chapter's `main` (with `argv`, else it reads sys.argv) and exit as a command-line tool should.

    - a user's mistake (DataError, DeviceError, OutputError, a diverged run): "error: ..." on stderr, exit 1;
    - Ctrl-C: one line (a chapter may say how to resume in the KeyboardInterrupt's message), exit 130;
    - anything else: one line naming the error and "rerun with --debug for the traceback", exit 1;
      with --debug the exception propagates and Python prints the whole traceback.
    """
    words = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(words)
    for stream in (sys.stdout, sys.stderr):  # a path that is not UTF-8 must not crash a print
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        main() if argv is None else main(argv)
    except USER_ERRORS as e:
        if debug:
            raise
        sys.exit(f"error: {e}")
    except KeyboardInterrupt as e:
        if debug:
            raise
        print(f"\ninterrupted: {e}" if str(e) else "\ninterrupted (Ctrl-C); every file written so far is complete",
              file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:
        if debug:
            raise
        sys.exit(f"error: unexpected {type(e).__name__}: {one_line(e)} (rerun with --debug for the traceback)")
