"""Why a network can fit any curve (通用逼近): the piecewise-linear view.

A continuous curve on [a, b] is close to a piecewise-linear one through K + 1 evenly spaced points of it, and a
piecewise-linear curve is a constant plus K "hard sigmoids" (flat, a ramp over one piece, flat again), one per
piece, whose heights are the curve's rises over the pieces. Each hard sigmoid is

    a pair of ReLUs:  (dy / h) * (relu(x - x_i) - relu(x - x_{i+1}))        exactly
    one sigmoid:       dy * sigmoid((4 / h) * (x - midpoint_i))              approximately (same height and slope)

so a one-hidden-layer network  y = b + sum_j c_j act(w_j x + b_j)  with K sigmoid units, or 2K ReLU units, follows
the curve, and more units (smaller pieces h) follow it more closely. `approximation_table` measures the largest
error on a fine grid as K grows; it falls with every doubling (O(h) for sigmoids: their tails spill over into
neighbouring pieces and past the ends; O(h^2) for ReLUs: the piecewise-linear interpolation error).
"""
from __future__ import annotations

import numpy as np

INTERVAL = (-3.0, 3.0)
PIECES = (1, 2, 4, 8, 16, 32, 64)  # hard sigmoids: K sigmoid units or 2K ReLU units
GRID = 4001  # points on which the error is measured


def target(x: np.ndarray) -> np.ndarray:
    """The chapter's curve: sin(2x) + 0.3 x^2 - 0.5 x on [-3, 3] (two bumps on a tilted parabola)."""
    return np.sin(2 * x) + 0.3 * x ** 2 - 0.5 * x


def build_network(pieces: int, activation: str, f=target, interval=INTERVAL) -> dict:
    """The 1-D network  x -> b + act(x w + bias) @ c  that follows f with `pieces` hard sigmoids.

    Returns {"w": [units], "bias": [units], "c": [units], "b": float, "activation": str}, units = pieces for
    sigmoid, 2 * pieces for relu.
    """
    a, b = interval
    h = (b - a) / pieces
    knots = a + h * np.arange(pieces + 1)
    rise = np.diff(f(knots))  # dy of each piece
    if activation == "relu":
        # unit 2i: relu(x - x_i) with weight +dy/h; unit 2i + 1: relu(x - x_{i+1}) with weight -dy/h
        w = np.ones(2 * pieces)
        bias = -np.column_stack([knots[:-1], knots[1:]]).ravel()
        c = np.column_stack([rise / h, -rise / h]).ravel()
    elif activation == "sigmoid":
        # sigmoid(s (x - m)) rises with slope s/4 at its midpoint m: s = 4/h matches the ramp's slope dy/h
        w = np.full(pieces, 4.0 / h)
        bias = -w * (knots[:-1] + h / 2)
        c = rise
    else:
        raise ValueError(f"activation must be relu or sigmoid, not {activation!r}")
    return {"w": w, "bias": bias, "c": c, "b": float(f(np.array(a))), "activation": activation}


def network_output(net: dict, x: np.ndarray) -> np.ndarray:
    """x: [M] -> y: [M], y = b + act(x w + bias) @ c (a hidden layer of len(w) units, one output)."""
    z = x[:, None] * net["w"][None, :] + net["bias"][None, :]  # [M, units]
    hidden = np.maximum(z, 0) if net["activation"] == "relu" else 1.0 / (1.0 + np.exp(-z))
    return net["b"] + hidden @ net["c"]


def approximation_table(pieces=PIECES, f=target, interval=INTERVAL) -> list[dict]:
    """For each K: the largest |network(x) - f(x)| on a fine grid, for K sigmoid units and 2K ReLU units."""
    x = np.linspace(*interval, GRID)
    rows = []
    for k in pieces:
        row = {"pieces": k}
        for activation in ("sigmoid", "relu"):
            net = build_network(k, activation, f, interval)
            row[f"{activation}_units"] = len(net["w"])
            row[f"{activation}_max_error"] = float(np.abs(network_output(net, x) - f(x)).max())
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    print("universal approximation 通用逼近 of sin(2x) + 0.3x^2 - 0.5x on [-3, 3]: largest error on the grid")
    print(f"  {'pieces':>6}  {'sigmoid units':>13} {'max error':>10}  {'ReLU units':>10} {'max error':>10}")
    for r in rows:
        print(f"  {r['pieces']:6d}  {r['sigmoid_units']:13d} {r['sigmoid_max_error']:10.4f}  "
              f"{r['relu_units']:10d} {r['relu_max_error']:10.4f}")


def plot_approximation(rows: list[dict], path, shown=(4, 16)) -> None:
    """Left: one network taken apart into its hard sigmoids; middle: the curve and the networks for a few sizes;
    right: max error against units (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.files import atomic_path

    x = np.linspace(*INTERVAL, GRID)
    fig, (parts, left, right) = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    net = build_network(shown[0], "relu")
    parts.plot(x, target(x), color="black", linewidth=2.5, label="target curve")
    parts.plot(x, network_output(net, x), color="crimson", linewidth=1.8, label="their sum + b")
    for i in range(shown[0]):  # hard sigmoid i = ReLU pair (2i, 2i + 1)
        pair = {"w": net["w"][2 * i:2 * i + 2], "bias": net["bias"][2 * i:2 * i + 2], "c": net["c"][2 * i:2 * i + 2],
                "b": 0.0, "activation": "relu"}
        parts.plot(x, network_output(pair, x), ":", linewidth=1.5, label=f"hard sigmoid {i + 1} (2 ReLUs)")
    parts.axhline(net["b"], color="grey", linewidth=0.8, linestyle="--", label=f"b = {net['b']:.2f}")
    parts.set(title=f"{shown[0]} pieces: a constant plus {shown[0]} hard sigmoids", xlabel="x", ylabel="y")
    parts.legend(fontsize=7)
    parts.grid(alpha=0.3)
    left.plot(x, target(x), color="black", linewidth=2.5, label="target curve")
    styles = {"sigmoid": "-", "relu": "--"}
    for k, colour in zip(shown, ("tab:orange", "tab:blue")):
        for activation in ("sigmoid", "relu"):
            net = build_network(k, activation)
            left.plot(x, network_output(net, x), styles[activation], color=colour, linewidth=1.3,
                      label=f"{len(net['w'])} {activation} units ({k} pieces)")
    left.set(title="a sum of (hard) sigmoids follows the curve", xlabel="x", ylabel="y")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    for activation, marker in (("sigmoid", "o"), ("relu", "s")):
        right.loglog([r[f"{activation}_units"] for r in rows], [r[f"{activation}_max_error"] for r in rows],
                     marker=marker, label=activation)
    right.set(title="largest error falls as the units grow", xlabel="hidden units", ylabel="max |network - curve|")
    right.legend()
    right.grid(alpha=0.3, which="both")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
