"""Check common.inspector's MACs and parameter counts against the published figures of classic networks.

    python -m chapters.ch05_cnn_shapes_flops.published_macs [--models resnet18 densenet121 ...]

A verification script, not a test: building all of them takes several seconds on CPU (vgg's and alexnet's fully
connected layers hold 100+ million randomly initialised weights), too slow for the test suite, which checks a few
cheap ones. The published figures and their sources are in shapes_flops.py (PUBLISHED_GMACS, PUBLISHED_PARAMS).
Exits with status 1 if a model's MACs are off by more than its tolerance (1%, googlenet 5%) or a parameter count
differs.
"""
from __future__ import annotations

import argparse
import sys
import time

import paddle

from chapters.ch05_cnn_shapes_flops.shapes_flops import (
    MODELS, PUBLISHED_GMACS, PUBLISHED_PARAMS, PUBLISHED_TOLERANCE, build_model_spec, default_input,
)
from common.cli import run
from common.inspector import inspect_model

TOLERANCE = 0.01


def build_published(name: str) -> paddle.nn.Layer:
    """The classic model `name` (a key of PUBLISHED_GMACS), freshly initialised."""
    return build_model_spec(name, {n: build for n, (build, _) in MODELS.items()})


def inspect_published(name: str, model: paddle.nn.Layer | None = None):
    """The classic model `name` (built now unless given) inspected at its default input (batch 1), where its
    figures were published."""
    return inspect_model(model if model is not None else build_published(name), default_input(name), name=name)


def compare(name: str, report=None) -> dict:
    """One model's figures beside the published ones. report: its inspect_published(name), if already made."""
    start = time.perf_counter()
    report = report if report is not None else inspect_published(name)
    t = report.totals
    diff = t["macs"] / (PUBLISHED_GMACS[name] * 1e9) - 1
    params_ok = PUBLISHED_PARAMS.get(name, t["trainable_params"]) == t["trainable_params"]
    tolerance = PUBLISHED_TOLERANCE.get(name, TOLERANCE)
    return {"name": name, "input": report.input_shape, "params": t["trainable_params"], "macs": t["macs"],
            "flops": t["flops"], "diff": diff, "ok": abs(diff) <= tolerance and params_ok, "tolerance": tolerance,
            "params_published": PUBLISHED_PARAMS.get(name), "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="python -m chapters.ch05_cnn_shapes_flops.published_macs",
        description="Inspect classic networks at their default input (batch 1) and compare the MACs and trainable "
                    "parameters with the published figures (sources in shapes_flops.py). Exit status 1 if one is "
                    "off by more than its tolerance.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(PUBLISHED_GMACS), default=list(PUBLISHED_GMACS),
                        metavar="MODEL", help=f"models to check, of: {', '.join(PUBLISHED_GMACS)}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    cfg = parser.parse_args(argv)
    paddle.set_device("cpu")
    print("| model | input | trainable parameters | published | MACs, ours | published | difference | FLOPs, ours "
          "| seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for name in cfg.models:
        r = compare(name)
        results.append(r)
        published_params = f"{r['params_published']:,}" if r["params_published"] else "–"
        flag = "" if r["ok"] else " **off**"
        print(f"| {name} | {r['input'][-1]}x{r['input'][-2]} | {r['params']:,} | {published_params} | {r['macs']:,} "
              f"| {PUBLISHED_GMACS[name]:g} G | {r['diff']:+.2%}{flag} | {r['flops']:,} | {r['seconds']:.1f} |")
    worst = max(results, key=lambda r: abs(r["diff"]))
    print(f"largest difference {worst['diff']:+.2%} ({worst['name']}); "
          f"{sum(not r['ok'] for r in results)} of {len(results)} outside their tolerance")
    return results


def _cli() -> None:
    sys.exit(0 if all(r["ok"] for r in main()) else 1)


if __name__ == "__main__":
    run(_cli)
