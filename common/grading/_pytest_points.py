"""The pytest plugin that `python -m common.grading.grade` loads into its child pytest process. Not for direct use.

The grader copies this file into its private run folder under a name no submission ships and loads it with `-p`.
It learns its settings from a file descriptor the grader opened for it (read and closed here, before any student
code runs: nothing secret is in the environment or argv, which `/proc/self/environ` and `/proc/PID/cmdline` show), and
reports one JSON line per event into a pipe the grader reads (no path to find, nothing to overwrite):

    {"n": NONCE, "ev": "item", "id": "tests/test_x.py::test_y", "points": 2, "visibility": "visible", ...}
    {"n": NONCE, "ev": "collect_start" | "collect_end" | "collect_error", "id": "tests/test_x.py", ...}
    {"n": NONCE, "ev": "start" | "end", "id": ..., "status": "passed" | "failed", "message": ..., "feedback": ...}
    {"n": NONCE, "ev": "tampered", "names": [...]}

It only reports outcomes; the grader decides the points (from its own collection), checks that each test starts and
ends once and in order, and scores anything missing as 0.

Harness check: at start-up it captures pytest's run and report machinery, pluggy's hook calling, this plugin's own
functions, the builtins that assertions use and (once loaded by the tests' conftest) numpy's and Paddle's comparison
helpers; after each test module is imported and after each test's teardown it checks that they are still the
same objects. Where one is not, it reports "tampered" and every test from the current one on fails with "the
submission modified the test harness". The hooks hold their helpers as default arguments, so replacing a module
attribute of this plugin does not change what the hooks call.

Feedback: a failed test's text is whole, not a fragment: pytest's own assertion explanation, or the exception's type
and message, with the deepest place in the student's chapters/ code (file:line), capped at FEEDBACK_LIMIT
characters at a line boundary (a single long line at a word boundary). A `NotImplementedError("TODO: hint")` reads
"not implemented yet: hint".

It also enforces the per-test timeout (a SIGALRM timer around each setup, call and teardown, and around importing
each test module; after MAX_TIMEOUTS of a module's tests timed out, its remaining tests fail at once), seeds
`random`, numpy and Paddle before each test, leaves ungraded tests unrun, reports partial credit (see
common/grading/partial_credit.py) and makes the student's packages importable from the submission only
(SubmissionOnly below).
"""
from __future__ import annotations

import builtins
import importlib.machinery
import json
import os
import random
import signal
import sys

import pytest

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

ENV_FDS = "COURSE_GRADE_FDS"  # "CONFIG_FD,REPORT_FD": only numbers, nothing secret
FEEDBACK_LIMIT = 600  # characters of feedback per failed test
MESSAGE_LIMIT = 200  # characters of the one-line reason for the table
HARNESS_MESSAGE = "the submission modified the test harness"
PARTIAL_KEY = "partial_credit"  # user_properties key written by the partial_credit fixture


class GradeTimeout(BaseException):
    """Raised by the timer; a BaseException so that an `except Exception:` in student code does not swallow it."""


# ---- settings and the report channel ----

def _read_config():
    fds = os.environ.pop(ENV_FDS, "")
    if not fds:
        return {}, None
    config_fd, report_fd = (int(x) for x in fds.split(","))
    with os.fdopen(config_fd, "r", encoding="utf-8") as f:
        config = json.load(f)
    if fcntl is None:
        return config, report_fd
    # Move the pipe to a high descriptor that programs the tests start with exec() do not inherit.
    channel = fcntl.fcntl(report_fd, fcntl.F_DUPFD_CLOEXEC, 200 + random.SystemRandom().randrange(800))
    os.close(report_fd)
    return config, channel


def _make_emitter(fd, nonce):
    if fd is None:
        return None
    write, dumps = os.write, json.dumps

    def emit(event: str, **fields) -> None:
        fields.update(n=nonce, ev=event)
        data = (dumps(fields) + "\n").encode("utf-8")
        while data:
            data = data[write(fd, data):]

    return emit


_config, _fd = _read_config()
_emit = _make_emitter(_fd, _config.get("nonce", ""))
del _fd
_skip: set[str] = set(_config.get("skip", []))
_timeout = float(_config.get("timeout", 0))
_seed = int(_config.get("seed", 2024))
_max_timeouts = int(_config.get("max_timeouts", 0))
_code_dir = _config.get("code")
_state = {"tampered": None, "snapshot": {}, "plugin": None}
_reports: dict[str, list] = {}
_timeouts: dict[str, int] = {}  # test module -> tests timed out in this process


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
            raise ModuleNotFoundError(f"No module named {fullname!r} in the submission", name=fullname)
        return spec


_packages = set(_config.get("packages", []))
if _code_dir and _packages:
    sys.meta_path.insert(0, SubmissionOnly(_code_dir, _packages))


# ---- the harness check ----

WATCHED = [
    "_pytest.runner:runtestprotocol", "_pytest.runner:call_and_report", "_pytest.runner:call_runtest_hook",
    "_pytest.runner:CallInfo.from_call", "_pytest.runner:pytest_runtest_makereport",
    "_pytest.runner:check_interactive_exception", "_pytest.runner:pytest_runtest_setup",
    "_pytest.runner:pytest_runtest_call", "_pytest.runner:pytest_runtest_teardown",
    "_pytest.runner:pytest_runtest_protocol", "_pytest.runner:show_test_item", "_pytest.runner:SetupState.setup",
    "_pytest.python:Function.runtest", "_pytest.python:Function.setup", "_pytest.python:pytest_pyfunc_call",
    "_pytest.python:Module._importtestmodule", "_pytest.python:Module.collect",
    "_pytest.reports:TestReport.from_item_and_call", "_pytest.reports:TestReport.__init__",
    "_pytest.reports:BaseReport.passed", "_pytest.reports:BaseReport.failed", "_pytest.reports:BaseReport.skipped",
    "_pytest.main:pytest_runtestloop", "_pytest.main:Session.perform_collect",
    "_pytest.outcomes:fail", "_pytest.outcomes:skip", "_pytest.outcomes:exit", "_pytest.outcomes:xfail",
    "_pytest.skipping:pytest_runtest_makereport", "_pytest.skipping:pytest_runtest_setup",
    "_pytest.skipping:pytest_runtest_call", "_pytest.skipping:evaluate_xfail_marks",
    "_pytest.nodes:Node.iter_markers", "_pytest.nodes:Node.get_closest_marker",
    "_pytest.fixtures:FixtureDef.execute", "_pytest.fixtures:pytest_fixture_setup",
    "_pytest.assertion.rewrite:AssertionRewritingHook.exec_module",
    "_pytest.assertion.util:assertrepr_compare", "_pytest.assertion.rewrite:_call_reprcompare",
    "pluggy._callers:_multicall", "pluggy._hooks:HookCaller.__call__", "pluggy._hooks:HookImpl.__init__",
    "pluggy._manager:PluginManager._hookexec", "pluggy._manager:PluginManager.unregister",
    "pytest:fail", "pytest:skip", "pytest:approx", "pytest:raises", "pytest:Function",
    "json:dumps", "os:write", "math:isclose",
]
# Loaded by the tests' conftest (before any student code) in the course; checked when present at session start.
WATCHED_LIBRARIES = [
    "numpy:allclose", "numpy:isclose", "numpy:array_equal", "numpy:array_equiv", "numpy:all", "numpy:any",
    "numpy:asarray", "numpy:array", "numpy:ndarray.all", "numpy:ndarray.__eq__",
    "numpy.testing:assert_allclose", "numpy.testing:assert_array_equal", "numpy.testing:assert_equal",
    "numpy.testing:assert_array_almost_equal", "numpy.testing:assert_almost_equal", "numpy.testing:assert_array_less",
    "paddle:allclose", "paddle:equal_all", "paddle:to_tensor", "paddle:Tensor.numpy", "paddle:Tensor.shape",
]
BUILTINS = ["all", "any", "isinstance", "issubclass", "len", "abs", "sum", "min", "max", "round", "sorted", "bool",
            "int", "float", "str", "list", "tuple", "dict", "set", "type", "getattr", "hasattr", "callable", "zip",
            "range", "enumerate", "map", "filter", "repr", "iter", "next", "id", "hash", "AssertionError",
            "BaseException", "Exception", "__import__", "compile", "exec"]


def _resolve(spec: str):
    module, _, attrs = spec.partition(":")
    obj = sys.modules[module]
    for name in attrs.split("."):
        obj = vars(obj)[name] if isinstance(obj, type) and name in vars(obj) else getattr(obj, name)
    return obj


def _capture(specs) -> dict:
    found = {}
    for spec in specs:
        try:
            found[spec] = _resolve(spec)
        except (KeyError, AttributeError):
            pass  # not in this pytest/library version, or the library is not loaded
    return found


def _own_functions() -> dict:
    return {f"plugin:{name}": obj for name, obj in globals().items()
            if callable(obj) and getattr(obj, "__module__", None) == __name__}


def _take_snapshot() -> None:
    snapshot = _capture(WATCHED)
    snapshot.update({f"builtins:{n}": vars(builtins)[n] for n in BUILTINS if n in vars(builtins)})
    snapshot.update(_own_functions())
    for name, fn in _own_functions().items():  # and their insides, which a patch could swap in place
        snapshot[name + ".__code__"] = getattr(fn, "__code__", None)
        snapshot[name + ".__defaults__"] = getattr(fn, "__defaults__", None)
    _state["snapshot"] = snapshot
    _state["modules"] = {name: sys.modules.get(name) for name in ("_pytest.runner", "_pytest.python", "pluggy")}


def _changed() -> list[str]:
    """The watched objects that are no longer the ones captured at start-up."""
    changed = []
    own = _own_functions()
    for spec, original in _state["snapshot"].items():
        try:
            if spec.startswith("plugin:"):
                name, _, inner = spec.partition(".__")
                fn = own.get(name)
                current = fn if not inner else getattr(fn, "__" + inner, None)
            elif spec.startswith("builtins:"):
                current = vars(builtins).get(spec[len("builtins:"):])
            else:
                current = _resolve(spec)
        except (KeyError, AttributeError):
            current = None
        if current is not original:
            changed.append(spec)
    changed += [name for name, module in _state.get("modules", {}).items() if sys.modules.get(name) is not module]
    if sys.meta_path[:1] and _packages and not isinstance(sys.meta_path[0], SubmissionOnly):
        changed.append("sys.meta_path")
    return changed


def _verify(_changed=_changed, _emit=_emit, _state=_state) -> bool:
    """True while the harness is intact; the first time it is not, report what changed."""
    if _state["tampered"] is None:
        changed = _changed()
        if changed:
            _state["tampered"] = changed
            if _emit is not None:
                _emit("tampered", names=changed[:20])
    return _state["tampered"] is None


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


def pytest_configure(config):
    if _emit is not None:
        _take_snapshot()
        config.addinivalue_line("markers", "points(n, split=False): points this graded test is worth")
        config.addinivalue_line("markers", "visibility(v): visible | hidden | after_due_date | after_published")


def pytest_sessionstart(session):
    if _emit is not None:
        # The conftest has loaded numpy/paddle by now, before any student module: watch their helpers too.
        _state["snapshot"].update(_capture(WATCHED_LIBRARIES))
        # One place fewer where student code finds this plugin by name.
        for name, module in list(sys.modules.items()):
            if module is sys.modules.get(__name__) and name == __name__:
                del sys.modules[name]


def pytest_ignore_collect(collection_path, config):
    # Files whose import hung or killed the process in an earlier round are not imported again.
    if _skip and _relpath(config, collection_path) in _skip:
        return True
    return None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector, _emit=_emit, _verify=_verify):
    if _emit is None or not isinstance(collector, pytest.Module):
        return (yield)
    _emit("collect_start", id=collector.nodeid)
    _start_timer()
    try:
        return (yield)
    finally:
        _stop_timer()
        _verify()
        _emit("collect_end", id=collector.nodeid)


def pytest_collectreport(report):
    if _emit is not None and report.failed:
        full = str(report.longreprtext)
        errors = [line[1:].strip() for line in full.splitlines() if line.startswith("E ") and line[1:].strip()]
        text = _cap(full, FEEDBACK_LIMIT, keep="end")  # a traceback: its end says the most
        _emit("collect_error", id=report.nodeid, message=_first_line(errors[-1] if errors else text), feedback=text)


def _marker(item, name):
    return item.get_closest_marker(name)


def _points(item):
    mark = _marker(item, "points")
    points = mark.args[0] if mark is not None and mark.args else None
    return points if isinstance(points, (int, float)) and not isinstance(points, bool) and points >= 0 else None


def _graded(item) -> bool:
    return _points(item) is not None and getattr(getattr(item, "module", None), "GRADED", True) is not False


def _visibility(item) -> str:
    mark = _marker(item, "visibility")
    return str(mark.args[0]) if mark is not None and mark.args else "visible"


def _base_id(nodeid: str) -> str:
    return nodeid.split("[", 1)[0]


def pytest_collection_modifyitems(session, config, items):
    if _emit is None:
        return
    # points(n, split=True) on a parametrized test: its cases share the n points, so k of m cases earn n*k/m.
    cases: dict[str, int] = {}
    for item in items:
        mark = _marker(item, "points")
        if mark is not None and mark.kwargs.get("split"):
            cases[_base_id(item.nodeid)] = cases.get(_base_id(item.nodeid), 0) + 1
    for item in items:
        points = _points(item)
        if points is not None and _base_id(item.nodeid) in cases:
            points = points / cases[_base_id(item.nodeid)]
        _emit("item", id=item.nodeid, points=points, graded=_graded(item), visibility=_visibility(item),
              partial=PARTIAL_KEY in getattr(item, "fixturenames", ()))
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


def _module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem, _emit=_emit, _verify=_verify, _reports=_reports, _state=_state):
    if _emit is None:
        return (yield)
    _reports[item.nodeid] = []
    _emit("start", id=item.nodeid)
    _seed_everything()
    try:
        return (yield)
    finally:
        intact = _verify()
        status, message, feedback, timed_out = _summarise(_reports.pop(item.nodeid, []))
        if not intact:
            status, message, feedback = "failed", HARNESS_MESSAGE, HARNESS_MESSAGE + ": " + ", ".join(
                _state["tampered"][:5])
        if timed_out:
            _timeouts[_module_of(item.nodeid)] = _timeouts.get(_module_of(item.nodeid), 0) + 1
        fraction = _partial_fraction(item) if status != "passed" else None
        _emit("end", id=item.nodeid, status=status, message=message, feedback=feedback, fraction=fraction,
              timeout=timed_out)


def _partial_fraction(item):
    found = None
    for key, value in getattr(item, "user_properties", ()):
        if key == PARTIAL_KEY and isinstance(value, (int, float)) and not isinstance(value, bool):
            found = min(max(float(value), 0.0), 1.0)
    return found


def _timed_phase():
    _start_timer()
    try:
        return (yield)
    finally:
        _stop_timer()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    if _emit is not None and _state["tampered"] is not None:
        raise pytest.fail.Exception(HARNESS_MESSAGE, pytrace=False)
    count = _timeouts.get(_module_of(item.nodeid), 0)
    if _max_timeouts and count >= _max_timeouts:
        raise pytest.fail.Exception(f"not run: {count} tests of this module timed out, so the rest of it is not run "
                                    "(to stay within the submission's time limit)", pytrace=False)
    return (yield from _timed_phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _timed_phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    return (yield from _timed_phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if _emit is not None and call.excinfo is not None and report.failed:
        report.grade_feedback = feedback(call.excinfo, _code_dir)
        report.grade_timeout = call.excinfo.errisinstance(GradeTimeout)
    return report


def pytest_runtest_logreport(report):
    if report.nodeid in _reports:
        _reports[report.nodeid].append(report)


def _summarise(reports) -> tuple[str, str, str, bool]:
    """One outcome for a test from its setup/call/teardown reports: only a clean pass earns points."""
    for report in reports:
        if report.failed:
            text = getattr(report, "grade_feedback", None) or _cap(str(report.longreprtext), FEEDBACK_LIMIT, "end")
            where = "" if report.when == "call" else f"in {report.when}: "
            return "failed", where + _first_line(text), where + text, bool(getattr(report, "grade_timeout", False))
    for report in reports:
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            text = f"skipped: {reason}"
            return "failed", _first_line(text), _cap(text, FEEDBACK_LIMIT), False
    if any(r.when == "call" and r.passed for r in reports):
        return "passed", "", "", False
    return "failed", "the test did not run", "the test did not run", False


# ---- feedback ----

def feedback(excinfo, code_dir: str | None) -> str:
    """What a student reads about a failed test: the explanation, whole, and where in their code it happened."""
    exc = excinfo.value
    text = str(exc)
    if isinstance(exc, NotImplementedError) and text.startswith("TODO"):
        body = "not implemented yet: " + (text[4:].lstrip(": ").strip() or "this part")
    elif isinstance(exc, GradeTimeout):
        body = text
    else:
        body = excinfo.exconly()  # for an assert: pytest's explanation with the compared values
    where = _student_location(excinfo, code_dir)
    suffix = f"\n(at {where})" if where else ""
    return _cap(body, FEEDBACK_LIMIT - len(suffix)) + suffix


def _student_location(excinfo, code_dir: str | None) -> str:
    """file:line of the deepest traceback entry in the submission's chapters/, else in the tests."""
    if not code_dir:
        return ""
    code = os.path.realpath(code_dir)
    best = {}
    for entry in excinfo.traceback:
        path = os.path.realpath(str(entry.path))
        if not path.startswith(code + os.sep):
            continue
        rel = os.path.relpath(path, code).replace(os.sep, "/")
        kind = "chapters" if rel.startswith("chapters/") else "other"
        best[kind] = f"{rel}:{entry.lineno + 1} in {entry.name}"
    return best.get("chapters") or best.get("other", "")


def _cap(text: str, limit: int, keep: str = "start") -> str:
    """At most `limit` characters, cut at a line boundary (a single long line: at a space), never mid-word."""
    text = text.strip()
    if len(text) <= limit:
        return text
    more = "\n... ({} more characters)"
    room = max(limit - len(more.format(len(text))), 20)
    if keep == "end":  # a traceback: its end says the most
        cut = text[-room:]
        nl = cut.find("\n")
        cut = cut[nl + 1:] if 0 <= nl < len(cut) - 1 else cut[cut.find(" ") + 1:]
        return f"... ({len(text) - len(cut)} characters before)\n" + cut
    cut = text[:room]
    nl = cut.rfind("\n")
    if nl > room // 3:
        cut = cut[:nl]
    elif " " in cut:
        cut = cut[:cut.rfind(" ")]
    return cut.rstrip() + more.format(len(text) - len(cut.rstrip()))


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "(no message)")
    if len(line) <= MESSAGE_LIMIT:
        return line
    cut = line[:MESSAGE_LIMIT - 4]
    return (cut[:cut.rfind(" ")] if " " in cut else cut) + " ..."


def pytest_sessionfinish(session, exitstatus):
    if _emit is not None:
        _verify()
        _emit("session_end", exitstatus=int(exitstatus))
