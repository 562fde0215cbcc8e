"""Curves to PNG with matplotlib's Agg backend, so plots work over SSH, in CI and in notebooks alike."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from common.files import atomic_path


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    title: str = "",
    xlabel: str = "epoch",
    ylabel: str = "loss",
    logy: bool = False,
    logx: bool = False,
    hlines: Mapping[str, float] | None = None,
    legend_outside: bool = False,
) -> Path:
    """Plot one line per entry of `curves` (label -> values, x = 1, 2, ...) and save a PNG to `path`.

    `hlines` (label -> y) adds dashed reference levels, e.g. the best loss a model can reach.
    `legend_outside` puts the legend below the plot, for curves that fill the whole box (a legend inside
    would hide some of them).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    longest = max((len(v) for v in curves.values()), default=0)
    # A line through one or two points is hardly a line (one epoch draws nothing at all): mark the points too.
    marks = {"marker": "o", "markersize": 5} if longest <= 2 else {}
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), list(values), label=label, **marks)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if longest == 1:  # one epoch: the axis shows 1, not 0.5 .. 1.5 in tenths
        ax.set_xlim(0.5, 1.5)
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([1]))
    else:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # epochs and steps are whole
    for label, y in (hlines or {}).items():
        ax.axhline(y, linestyle="--", color="grey", label=label)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))  # 1, 10, 100 rather than 10^0
    ax.grid(alpha=0.3)
    entries = len(curves) + len(hlines or {})
    if entries > 1 and legend_outside:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=min(entries, 2), fontsize=8, frameon=False)
        fig.set_size_inches(6, 4 + 0.25 * ((entries + 1) // 2))  # room below for the legend's rows
    elif entries > 1:
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
