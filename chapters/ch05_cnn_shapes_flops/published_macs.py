"""Check common.inspector's MACs against the published figures of five classic networks at 224x224.

    python -m chapters.ch05_cnn_shapes_flops.published_macs

A verification script, not a test: building vgg16 and alexnet alone takes several seconds on CPU (their
fully connected layers hold 100+ million randomly initialised weights), too slow for the test suite, which
checks resnet18 and mobilenet_v2 only. Exits with status 1 if any model is off by 1% or more.
"""
from __future__ import annotations

import sys
import time

import paddle

from chapters.ch05_cnn_shapes_flops.shapes_flops import MODELS, PUBLISHED_GMACS
from common.inspector import inspect_model

TOLERANCE = 0.01


def main() -> int:
    paddle.set_device("cpu")
    print("| model | parameters (trainable) | MACs, ours | MACs, published | difference | seconds |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for name, published in PUBLISHED_GMACS.items():
        start = time.perf_counter()
        report = inspect_model(MODELS[name][0](), [1, 3, 224, 224], name=name)
        seconds = time.perf_counter() - start
        t = report.totals
        diff = t["macs"] / (published * 1e9) - 1
        worst = max(worst, abs(diff))
        print(f"| {name} | {t['trainable_params']:,} | {t['macs']:,} | {published:.2f} G | {diff:+.2%} "
              f"| {seconds:.1f} |")
    print(f"largest difference {worst:.2%} (tolerance {TOLERANCE:.0%})")
    return 0 if worst < TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
