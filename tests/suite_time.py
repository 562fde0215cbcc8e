"""How long the test suite takes, with and without the notebooks' tests: a benchmark, not a test.

    python tests/suite_time.py [--rounds 3]

Runs the README's `pytest` in a child process, alternating the whole suite with the suite less the notebooks' tests
(tests/test_notebooks.py and tests/test_notebook_assignments.py), so that both see the machine in the same state.
Prints each run's wall-clock seconds and CPU seconds (pytest and every process it started), then the medians. The
budget: the whole suite within 30 s of wall time on two cores. Shared machines drift by a quarter from one minute to
the next; compare figures of the same invocation, as the ratio printed last does.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 30.0  # seconds of wall time for the whole suite on two cores
NOTEBOOK_TESTS = ("tests/test_notebooks.py", "tests/test_notebook_assignments.py")
VARIANTS = {"whole suite": [], "without notebooks": [arg for test in NOTEBOOK_TESTS for arg in ("--ignore", test)]}


def timed_pytest(extra: list[str]) -> tuple[float, float, str]:
    """One `pytest` run from the repository root: (wall seconds, CPU seconds of it and its processes, summary)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", *extra], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = done.stdout.strip().splitlines()
    return wall, cpu, lines[-1] if lines else f"(no output, exit status {done.returncode})"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python tests/suite_time.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant, alternating (default: 3)")
    rounds = max(1, parser.parse_args(argv).rounds)
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpus: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_ in range(1, rounds + 1):
        for name, extra in VARIANTS.items():
            wall, cpu, summary = timed_pytest(extra)
            walls[name].append(wall)
            cpus[name].append(cpu)
            print(f"round {round_}  {name:<18} {wall:5.1f} s wall  {cpu:5.1f} CPU-s  | {summary}", flush=True)
    medians = {name: statistics.median(values) for name, values in walls.items()}
    for name in VARIANTS:
        print(f"median  {name:<18} {medians[name]:5.1f} s wall  {statistics.median(cpus[name]):5.1f} CPU-s")
    whole, without = medians["whole suite"], medians["without notebooks"]
    print(f"the notebooks' tests add {whole - without:.1f} s ({whole / without:.2f}x); "
          f"budget {BUDGET:g} s: {'met' if whole <= BUDGET else 'NOT met'}")
    return {"median_wall_s": medians, "budget_s": BUDGET}


if __name__ == "__main__":
    main()
