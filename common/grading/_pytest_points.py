"""The pytest plugin that `python -m common.grading.grade` loads into its child pytest process. Not for direct use.

The grader copies this file into a private temporary folder under a name no submission ships and loads it with
`-p`, so a student cannot swap in an edited copy. It reports, one JSON line per event, to a file the grader owns:

    {"n": NONCE, "ev": "item", "id": "tests/test_x.py::test_y", "points": 2, "visibility": "visible", "graded": true}
    {"n": NONCE, "ev": "collect_start" | "collect_end" | "collect_error", "id": "tests/test_x.py", ...}
    {"n": NONCE, "ev": "start" | "end", "id": ..., "status": "passed" | "failed", "message": ..., "output": ...}

It only reports outcomes; the grader decides the points (from its own collection), checks that each test starts and
ends once and in order, and scores anything missing as 0. The report path and a per-run nonce reach this plugin
through environment variables that it removes from `os.environ` as it loads, before any test module is imported,
and the report file is opened at that moment; records without the nonce are ignored by the grader.

It also enforces the per-test timeout (a SIGALRM timer around each setup, call and teardown, and around importing
each test module), seeds `random`, and numpy and Paddle when loaded, before each test, leaves ungraded tests
unrun, and makes the student's packages importable from the submission only (SubmissionOnly below).
"""
from __future__ import annotations

import importlib.machinery
import json
import os
import random
import signal
import sys

import pytest

ENV_REPORT = "COURSE_GRADE_REPORT"
ENV_NONCE = "COURSE_GRADE_NONCE"
ENV_SKIP = "COURSE_GRADE_SKIP"
ENV_TIMEOUT = "COURSE_GRADE_TIMEOUT"
ENV_SEED = "COURSE_GRADE_SEED"
ENV_CODE = "COURSE_GRADE_CODE"  # the submission folder
ENV_PACKAGES = "COURSE_GRADE_PACKAGES"  # comma-separated: the packages that must come from it
OUTPUT_LIMIT = 4000  # characters of traceback kept per test


class GradeTimeout(BaseException):
    """Raised by the timer; a BaseException so that an `except Exception:` in student code does not swallow it."""


def _make_emitter():
    path = os.environ.pop(ENV_REPORT, None)
    nonce = os.environ.pop(ENV_NONCE, "")
    if path is None:
        return None
    stream = open(path, "a", encoding="utf-8")  # opened now, before any student code runs

    def emit(event: str, **fields) -> None:
        fields.update(n=nonce, ev=event)
        stream.write(json.dumps(fields) + "\n")
        stream.flush()

    return emit


_emit = _make_emitter()
_skip: set[str] = set()
_skip_file = os.environ.pop(ENV_SKIP, None)
if _skip_file:
    with open(_skip_file, encoding="utf-8") as f:
        _skip = set(json.load(f))
_timeout = float(os.environ.pop(ENV_TIMEOUT, "0") or 0)
_seed = int(os.environ.pop(ENV_SEED, "2024"))
_reports: dict[str, list] = {}


class SubmissionOnly:
    """A meta path finder: the student's packages (e.g. `chapters`) are imported from the submission or not at all.

    Without it, an installed (editable) copy of the course fills in any module the submission lacks, so a
    submission without chapters/ch02_mnist would be graded on the instructor's solution.
    """

    def __init__(self, code_dir: str, packages: set[str]):
        self.code_dir, self.packages = code_dir, packages

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in self.packages:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, [self.code_dir] if "." not in fullname else path)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {fullname!r} in the submission {self.code_dir}", name=fullname)
        return spec


_code_dir = os.environ.pop(ENV_CODE, None)
_packages = {p for p in os.environ.pop(ENV_PACKAGES, "").split(",") if p}
if _code_dir and _packages:
    sys.meta_path.insert(0, SubmissionOnly(_code_dir, _packages))


# ---- timer ----

def _on_alarm(signum, frame):
    raise GradeTimeout(f"timed out after {_timeout:g} s (the grader's per-test limit)")


def _timer_usable() -> bool:
    return _timeout > 0 and hasattr(signal, "setitimer") and _emit is not None


def _start_timer() -> None:
    if _timer_usable():
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, _timeout)


def _stop_timer() -> None:
    if _timer_usable():
        signal.setitimer(signal.ITIMER_REAL, 0)


# ---- collection ----

def _relpath(config, path) -> str:
    try:
        return os.path.relpath(str(path), str(config.rootpath)).replace(os.sep, "/")
    except ValueError:
        return str(path)


def pytest_ignore_collect(collection_path, config):
    # Files whose import hung or killed the process in an earlier round are not imported again.
    if _skip and _relpath(config, collection_path) in _skip:
        return True
    return None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    if _emit is None or not isinstance(collector, pytest.Module):
        return (yield)
    _emit("collect_start", id=collector.nodeid)
    _start_timer()
    try:
        return (yield)
    finally:
        _stop_timer()
        _emit("collect_end", id=collector.nodeid)


def pytest_collectreport(report):
    if _emit is not None and report.failed:
        _emit("collect_error", id=report.nodeid, message=_one_line(report), output=_tail(report.longreprtext))


def _marker_arg(item, name, default):
    mark = item.get_closest_marker(name)
    return mark.args[0] if mark is not None and mark.args else default


def _points(item):
    points = _marker_arg(item, "points", None)
    return points if isinstance(points, (int, float)) and not isinstance(points, bool) else None


def _graded(item) -> bool:
    return _points(item) is not None and getattr(getattr(item, "module", None), "GRADED", True) is not False


def pytest_collection_modifyitems(session, config, items):
    if _emit is None:
        return
    for item in items:
        _emit("item", id=item.nodeid, points=_points(item), graded=_graded(item),
              visibility=str(_marker_arg(item, "visibility", "visible")))
    # Tests that earn nothing are not run, nor those settled in an earlier round.
    kept = [item for item in items if _graded(item) and item.nodeid not in _skip]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


# ---- running ----

def _seed_everything() -> None:
    random.seed(_seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(_seed)
    if "paddle" in sys.modules:
        sys.modules["paddle"].seed(_seed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if _emit is None:
        return (yield)
    _reports[item.nodeid] = []
    _emit("start", id=item.nodeid)
    _seed_everything()
    try:
        return (yield)
    finally:
        status, message, output = _summarise(_reports.pop(item.nodeid, []))
        _emit("end", id=item.nodeid, status=status, message=message, output=output)


def _timed_phase():
    _start_timer()
    try:
        return (yield)
    finally:
        _stop_timer()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _timed_phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _timed_phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    return (yield from _timed_phase())


def pytest_runtest_logreport(report):
    if report.nodeid in _reports:
        _reports[report.nodeid].append(report)


def _summarise(reports) -> tuple[str, str, str]:
    """One outcome for a test from its setup/call/teardown reports: only a clean pass earns points."""
    for report in reports:
        if report.failed:
            where = "" if report.when == "call" else f"in {report.when}: "
            return "failed", where + _one_line(report), _tail(report.longreprtext)
    for report in reports:
        if report.skipped:
            return "failed", f"skipped: {_one_line(report)}", ""
    if any(r.when == "call" and r.passed for r in reports):
        return "passed", "", ""
    return "failed", "the test did not run", ""


def _one_line(report) -> str:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and crash.message.strip():
        text = crash.message.strip().splitlines()[0]
    elif isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, reason)
        text = str(longrepr[2])
    else:
        lines = [line for line in str(longrepr).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("E ")]
        text = (errors or lines or ["(no message)"])[-1].lstrip("E ").strip()
    text = " ".join(text.split()).replace(f"{GradeTimeout.__module__}.{GradeTimeout.__name__}: ", "")
    return text if len(text) <= 200 else text[:197] + "..."


def _tail(text: str) -> str:
    return text if len(text) <= OUTPUT_LIMIT else "...\n" + text[-OUTPUT_LIMIT:]


def pytest_sessionfinish(session, exitstatus):
    if _emit is not None:
        _emit("session_end", exitstatus=int(exitstatus))
