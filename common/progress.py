"""Progress bars that help at a terminal and stay out of log files.

At a terminal, `progress` is a tqdm bar that redraws in place. When output goes to a file or a pipe (CI, nohup,
`> log.txt`) the bar is switched off, because each redraw would become a line of the log; the training loop's
one summary line per epoch is what remains. In data-parallel training only rank 0 shows a bar.
"""
from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True) -> tqdm:
    """Wrap `iterable` in a tqdm bar on stderr, shown only if `enabled` and stderr is a terminal.

    The returned object is always a tqdm, so `bar.set_postfix(loss=...)` works whether or not it is shown.
    """
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True,
                disable=not (enabled and is_terminal()), file=sys.stderr)
