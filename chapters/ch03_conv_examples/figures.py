"""Figures for this chapter: images side by side (input beside output), kernels with their numbers, activations.

Line curves (losses, gradient norms) go through `common.plot.plot_curves`; what is here draws images.
matplotlib's Agg backend renders straight to PNG, so no display is needed. Titles are in English only:
matplotlib's bundled fonts have no Chinese glyphs (they would print as boxes, with a warning for each).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from common.files import atomic_path

# A panel is (title, image) or (title, image, (vmin, vmax)). image: [H, W] grey, shaded from vmin (black) to
# vmax (white), by default its own min..max; or [H, W, 3] RGB in 0..1. Give panels that are compared with
# each other the same (vmin, vmax), so that equal values get equal shades.
Panel = tuple
ANNOTATE_MAX = 16  # write the numbers into the cells of arrays at most this wide and tall


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def _draw(ax, title: str, image: np.ndarray, vrange: tuple | None = None) -> None:
    if image.ndim == 3:
        ax.imshow(np.clip(image, 0.0, 1.0))
    else:
        vmin, vmax = vrange or (float(image.min()), float(image.max()))
        ax.imshow(image, cmap="gray", interpolation="nearest", vmin=vmin, vmax=vmax)
        if max(image.shape) <= ANNOTATE_MAX:
            _annotate(ax, image, (vmin + vmax) / 2)
            _cell_lines(ax, *image.shape)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()  # no ticks or frame: pixel indices say nothing here, and axes cost time to lay out


def _cell_lines(ax, h: int, w: int) -> None:
    """Thin grey lines around every cell and the whole array, so white cells do not melt into the white page."""
    ax.hlines(np.arange(h + 1) - 0.5, -0.5, w - 0.5, colors="0.55", linewidths=0.6)
    ax.vlines(np.arange(w + 1) - 0.5, -0.5, h - 0.5, colors="0.55", linewidths=0.6)


def _annotate(ax, image: np.ndarray, middle: float) -> None:
    """Write each value into its cell, dark text on light cells (above `middle`) and light text on dark ones."""
    for (i, j), v in np.ndenumerate(image):
        text = f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"
        # in_layout=False: tight_layout need not measure every number (it is inside the axes anyway).
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="black" if v > middle else "white",
                in_layout=False)


def save_image_grid(rows: Sequence[Sequence[Panel]], path: str | os.PathLike, *, title: str = "") -> Path:
    """Draw rows of (title, image) panels and save a PNG; small grey arrays get their numbers written in."""
    plt = _pyplot()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 3.0 * n_rows), dpi=100, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            if c < len(row):
                _draw(axes[r][c], *row[c])
            else:
                axes[r][c].axis("off")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def save_image_row(panels: Sequence[Panel], path: str | os.PathLike, *, title: str = "") -> Path:
    """One row of (title, image) panels, e.g. the input beside the output."""
    return save_image_grid([panels], path, title=title)


def save_activations(x: np.ndarray, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path,
                     titles: Mapping[str, str] | None = None) -> Path:
    """One panel per activation: f(x) and f'(x) on the grid x: [n]; `titles` overrides a panel's name."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(3.0 * len(curves), 3.0), dpi=100, squeeze=False)
    for ax, (name, (f, df)) in zip(axes[0], curves.items()):
        ax.plot(x, f, label="f(x)")
        ax.plot(x, df, "--", label="f'(x)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title((titles or {}).get(name, name), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)
