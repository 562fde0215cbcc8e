"""Adam = Momentum + RMSProp, seen on a 2-D ill-conditioned bowl (病态曲面).

    f(x, y) = (x^2 + CURVATURE * y^2) / 2,  minimum at (0, 0)

is CURVATURE times steeper across (y) than along (x). Plain SGD must keep its step below 2 / CURVATURE to stay
stable across, and then crawls along; Momentum builds up speed along x while its swings across cancel; RMSProp
divides each coordinate by its own gradient size, so both coordinates move at about the same pace; Adam does both.
Each optimizer here is the chapter's numpy one (optimizers.py), run on the same start for the same steps.
"""
from __future__ import annotations

import numpy as np

from chapters.ch06_from_scratch.optimizers import make_optimizer

CURVATURE = 20.0
START = (-4.0, 1.5)
STEPS = 50
SETTINGS = {  # hand-picked so each shows its character; SGD's lr is near its stability limit 2 / 20 = 0.1
    "sgd": {"lr": 0.09},
    "momentum": {"lr": 0.05, "momentum": 0.6},
    "rmsprop": {"lr": 0.3, "rho": 0.9},
    "adam": {"lr": 0.3, "beta1": 0.8},
}


def bowl(p: np.ndarray) -> float:
    return float(0.5 * (p[0] ** 2 + CURVATURE * p[1] ** 2))


def bowl_gradient(p: np.ndarray) -> np.ndarray:
    return np.array([p[0], CURVATURE * p[1]])


def optimizer_paths(steps: int = STEPS, start=START, settings=None) -> dict:
    """{optimizer: path [steps + 1, 2]} from `start`, each optimizer with its SETTINGS."""
    paths = {}
    for name, hyper in (settings or SETTINGS).items():
        params = {"p": np.array(start, dtype=np.float64)}
        opt = make_optimizer(name, **hyper)
        path = [params["p"].copy()]
        for _ in range(steps):
            opt.step(params, {"p": bowl_gradient(params["p"])})
            path.append(params["p"].copy())
        paths[name] = np.array(path)
    return paths


def summarise(paths: dict) -> dict:
    """Per optimizer: the final loss and distance from the minimum (the start's loss for scale)."""
    return {name: {"final_loss": bowl(path[-1]), "final_distance": float(np.linalg.norm(path[-1])),
                   "start_loss": bowl(path[0])} for name, path in paths.items()}


def print_summary(summary: dict, steps: int = STEPS) -> None:
    start = next(iter(summary.values()))["start_loss"]
    print(f"optimizer paths on the bowl (x^2 + {CURVATURE:g} y^2) / 2 from {START}, loss {start:.2f}, {steps} steps:")
    for name, s in summary.items():
        print(f"  {name:8s} final loss {s['final_loss']:.2e}, distance to the minimum {s['final_distance']:.3f}  "
              f"({', '.join(f'{k} {v:g}' for k, v in SETTINGS[name].items())})")


def plot_paths(paths: dict, path) -> None:
    """Contours of the bowl with the four paths drawn on them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.files import atomic_path

    xs, ys = np.meshgrid(np.linspace(-4.5, 1.5, 300), np.linspace(-2.0, 2.0, 200))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    ax.contour(xs, ys, 0.5 * (xs ** 2 + CURVATURE * ys ** 2), levels=np.geomspace(0.02, 60, 14), colors="lightgrey",
               linewidths=0.8)
    for (name, p), colour in zip(paths.items(), ("tab:red", "tab:blue", "tab:green", "tab:purple")):
        ax.plot(p[:, 0], p[:, 1], "-o", color=colour, markersize=2.5, linewidth=1.2, label=name)
    ax.plot(0, 0, "k*", markersize=12, label="minimum")
    ax.plot(*START, "ks", markersize=6)
    ax.set(title=f"{len(next(iter(paths.values()))) - 1} steps on (x² + {CURVATURE:g}y²)/2", xlabel="x", ylabel="y")
    ax.set_aspect("equal")
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
