"""Partial credit for graded tests: a test may earn part of its points.

Two ways, both counted by `python -m common.grading.grade` (plain `pytest` simply runs the tests):

1. Cases that share the points. `@pytest.mark.points(6, split=True)` on a parametrized test: its m cases are worth
   6/m each, so a student whose code passes 4 of 6 cases earns 4 points.

2. A test that records a fraction. Ask for the `partial_credit` fixture and call it with the fraction earned so far
   (0..1); the last call counts. A test that then passes earns all its points, one that fails earns
   points x fraction, and its failure message says why the rest was lost:

       @pytest.mark.points(4)
       def test_predictions(partial_credit):
           right = sum(predict(x) == y for x, y in CASES)
           partial_credit(right / len(CASES))
           assert right == len(CASES), f"{right} of {len(CASES)} predictions right"

Only tests that ask for the fixture can earn a fraction: the grader ignores one recorded for any other test.
tests/conftest.py imports the fixture, so every test module of the course can use it.
"""
from __future__ import annotations

import math

import pytest

KEY = "partial_credit"  # the user_properties key the grader's plugin reads (_pytest_points.PARTIAL_KEY)


@pytest.fixture
def partial_credit(request):
    """Call with the fraction of the test's points earned so far (a number from 0 to 1)."""

    def record(fraction: float) -> float:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction) \
                or not 0 <= fraction <= 1:
            raise ValueError(f"partial_credit takes a fraction from 0 to 1, got {fraction!r}")
        request.node.user_properties.append((KEY, float(fraction)))
        return float(fraction)

    return record
