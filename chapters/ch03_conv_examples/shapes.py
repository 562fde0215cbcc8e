"""Output size of a convolution or pooling window (输出尺寸): H_out = floor((H + 2p - k) / s) + 1.

The window starts at offsets 0, s, 2s, ... of the padded input (length H + 2p) and must fit entirely, so
the last start is at most H + 2p - k. When s does not divide H + 2p - k the leftover rows are dropped:
that is the floor. (Pooling with `ceil_mode=True` keeps a last partial window instead: ceil, not floor.)
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F

# (H, k, s, p): "same" convolutions, strided ones, and cases where s does not divide H + 2p - k (floor matters).
SHAPE_CASES = (
    (32, 3, 1, 0),
    (32, 3, 1, 1),
    (32, 5, 1, 2),
    (32, 5, 1, 0),
    (32, 2, 2, 0),
    (32, 3, 2, 1),
    (7, 3, 2, 0),
    (8, 3, 2, 0),
    (8, 3, 3, 1),
    (28, 5, 2, 0),
    (224, 7, 2, 3),
    (224, 11, 4, 2),
)


def output_size(h: int, k: int, s: int = 1, p: int = 0) -> int:
    """Rows (or columns) out of a k-wide window with stride s and padding p on each side of h inputs."""
    # BEGIN SOLUTION
    # PROMPT: the number of window positions in the padded input; use floor division
    return (h + 2 * p - k) // s + 1
    # END SOLUTION


def measured_sizes(h: int, k: int, s: int, p: int) -> dict:
    """What Paddle actually produces for an [1, 1, h, h] input: conv2d and max_pool2d output heights."""
    x = paddle.zeros([1, 1, h, h])
    weight = paddle.zeros([1, 1, k, k])
    conv = F.conv2d(x, weight, stride=s, padding=p)
    # Paddle (like PyTorch) refuses pooling padding above k/2, which would make windows of pure padding.
    pool = F.max_pool2d(x, kernel_size=k, stride=s, padding=p) if 2 * p <= k else None
    return {"conv2d": conv.shape[2], "max_pool2d": None if pool is None else pool.shape[2]}


def shape_table(cases=SHAPE_CASES) -> list[dict]:
    """One row per (H, k, s, p): the formula's answer beside Paddle's conv2d and max_pool2d outputs."""
    rows = []
    for h, k, s, p in cases:
        dropped = (h + 2 * p - k) % s  # padded rows after the last window: what the floor throws away
        rows.append({"H": h, "k": k, "s": s, "p": p, "formula": output_size(h, k, s, p), "dropped": dropped,
                     **measured_sizes(h, k, s, p)})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["   H   k  s  p | (H+2p-k)//s+1  dropped | conv2d  max_pool2d"]
    for r in rows:
        pool = "-" if r["max_pool2d"] is None else r["max_pool2d"]
        lines.append(f"{r['H']:4d} {r['k']:3d} {r['s']:2d} {r['p']:2d} | {r['formula']:13d}  {r['dropped']:7d} | "
                     f"{r['conv2d']:6d}  {pool!s:>10}")
    return "\n".join(lines)
