"""Progress bars that help at a terminal and stay out of log files.

At a terminal, `progress` is a tqdm bar that redraws in place. When output goes to a file or a pipe (CI, nohup,
`> log.txt`) the bar is switched off, because each redraw would become a line of the log; the training loop's
one summary line per epoch is what remains. In data-parallel training only rank 0 shows a bar.
In a Jupyter notebook (stderr is no terminal there, but a bar is welcome) it is tqdm's notebook widget, or tqdm's
text bar where ipywidgets is not installed.
"""
from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel's shell), where output goes to the notebook, not a terminal."""
    ipython = sys.modules.get("IPython")  # never imported here: a notebook has always imported it already
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _notebook_bar():
    """tqdm's notebook widget class, or None without ipywidgets (tqdm.notebook then fails when a bar is made)."""
    try:
        import ipywidgets  # noqa: F401
        from tqdm.notebook import tqdm as notebook_tqdm
    except ImportError:
        return None
    return notebook_tqdm


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True) -> tqdm:
    """Wrap `iterable` in a tqdm bar on stderr, shown only if `enabled` and stderr is a terminal (or in a notebook).

    The returned object is always a tqdm, so `bar.set_postfix(loss=...)` works whether or not it is shown.
    """
    if enabled and in_notebook():
        bar = _notebook_bar()
        if bar is not None:
            return bar(iterable, total=total, desc=desc, leave=False)
        return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr)  # Jupyter redraws on \r too
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True,
                disable=not (enabled and is_terminal()), file=sys.stderr)
