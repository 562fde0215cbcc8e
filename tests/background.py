"""Slow work that a test module starts when collection ends, so that it runs while the other tests do.

Most of the tools' tests spend their time waiting: for the grader's child processes, for a kernel, for a
`paddle.distributed.launch`. On two cores that wait can be spent running other tests, which is how the suite keeps
to its 30 s budget. A module declares that work as jobs and its tests ask for the results:

    from tests.background import Jobs
    jobs = Jobs()

    @jobs.job("test_full_marks", "test_schema")   # the tests that need this job
    def graded(folder):                           # a fresh folder, removed when the session ends
        ...                                       # build the inputs under folder, run the grader, return the result

    def test_full_marks():
        assert jobs.result(graded)["score"] == 5

When collection ends, tests/conftest.py starts the jobs that the chosen tests need (in a run without -k, -m or test
ids, a module's jobs start as soon as it is collected), and runs the tests that wait for jobs after the others, so
the jobs have the time of the other tests to finish. A module's jobs run one after another in one background
thread, its `lane` (lanes run side by side), at a lower priority than the tests. A job that was not started (its
test run alone, under another runner, or without root: see below) runs when a test first asks for it; a job's
exception is raised in every test that asks for it.

The lanes, chosen by measuring the whole suite on two cores: `grade` (the grader on small fake courses: many short
processes), `paddle` (the work whose processes import Paddle, in collection order, which puts the long ones first:
the assignment cycle on the real chapter 1, the scaffold's template tests, then the notebooks in their shared kernel)
and `launch` (the two-rank `paddle.distributed.launch`). Each lane ends about when the main thread's tests do. A
fourth lane measured slower (what runs at once takes CPU time from the tests in the main thread), and so did the
Paddle jobs at the end of the `grade` lane (it ended seconds after the rest, with one core idle).

A job runs outside any test, so it gets no fixtures; it sees os.environ as the test running meanwhile has
monkeypatched it, so it passes an explicit `env` to what it starts; it prints nothing (that would land in the output
of the test running meanwhile: capture what its processes print, give the grader --quiet; print() in a job raises);
and it keeps to starting processes and waiting for them (no pytest.main, no signal handlers, no training in this
process: the GIL is the other tests'). Without
root the grader tells a submission's processes by their ancestry and would take a job's processes for the
submission's, so jobs wait for the test that asks for them there.
"""
from __future__ import annotations

import builtins
import concurrent.futures
import os
import queue
import shutil
import sys
import tempfile
import threading
from pathlib import Path

WAIT = 600  # seconds a test waits for its job (they run one after another)

_folders: list[Path] = []
_queued: list[concurrent.futures.Future] = []  # every job handed to a lane
_at_end: list = []


class Jobs:
    """The jobs of one test module (see the module's docstring)."""

    def __init__(self, lane: str = "jobs"):
        """lane: the background thread these jobs run in, one after another (lanes run side by side)."""
        self.lane = lane
        self.needed_by: dict[str, list[str]] = {}  # job name -> the tests that need it
        self.functions: dict[str, callable] = {}
        self.futures: dict[str, concurrent.futures.Future] = {}

    def job(self, *tests: str):
        """Declare the decorated function(folder) as a job that `tests` need: test names, a parametrized test's
        id such as "test_runs[ch01]", or the name of a fixture (every test that uses it needs the job)."""
        def declare(fn):
            self.add(fn.__name__, fn, *tests)
            return fn
        return declare

    def add(self, name: str, fn, *tests: str) -> None:
        """Declare fn(folder) as the job `name` that `tests` need."""
        self.needed_by[name] = list(tests)
        self.functions[name] = fn

    def order(self, item) -> int:
        """0: runs in collection order; 1: after those (it waits for a job)."""
        return int(self.waits(item))

    def waits(self, item) -> bool:
        """Whether the test `item` needs one of these jobs."""
        names = _names(item)
        return any(names & set(tests) for tests in self.needed_by.values())

    def start(self, items=None) -> None:
        """Queue the jobs that the chosen tests need (all of them: items None), in the order declared, each once
        (tests/conftest.py calls this)."""
        if not runs_in_background():
            return
        chosen = set().union(*map(_names, items)) if items is not None else None
        for name, tests in self.needed_by.items():
            if name not in self.futures and (chosen is None or chosen & set(tests)):
                self.futures[name] = future = concurrent.futures.Future()
                _queued.append(future)
                _lane(self.lane).put((future, name, self.functions[name]))

    def result(self, job):
        """The job's result (job: the function or its name), waiting for it or running it now."""
        name = job if isinstance(job, str) else job.__name__
        future = self.futures.get(name)
        if future is None:
            self.futures[name] = future = concurrent.futures.Future()
            _run(future, name, self.functions[name])
        return future.result(timeout=WAIT)


def _names(item) -> set[str]:
    return {item.name, item.originalname, *getattr(item, "fixturenames", ())}


LANE_NICE = 10  # the lanes' threads and every process they start yield the CPU to the tests that run meanwhile


def lower_priority() -> None:
    """Lower this thread's scheduling priority, and so that of every process it starts (Linux: per thread).

    The tests in the main thread are the suite's critical path; the jobs have the time those tests take to finish,
    so they should take what CPU the tests leave, not the other way round."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LANE_NICE)
    except (AttributeError, OSError):
        pass  # not Linux: the same work, a little less well spread


def runs_in_background() -> bool:
    """As root (see the module's docstring), unless COURSE_TEST_BACKGROUND=0 asks for one thing at a time."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and os.environ.get("COURSE_TEST_BACKGROUND") != "0"


def at_end(fn):
    """Call fn() when the session ends (after the lanes are idle): e.g. shut down a kernel that jobs share."""
    _at_end.append(fn)
    return fn


def idle() -> None:
    """Wait until every lane has finished what it was given."""
    for lane in list(_lanes.values()):
        lane.join()


def fresh_folder(prefix: str = "course-job-") -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    _folders.append(folder)
    return folder


def finish() -> None:
    """Called by tests/conftest.py when the session ends: jobs no test waited for (a session stopped early, by -x or
    Ctrl-C) are dropped, the running ones finish, then the at_end functions, then the jobs' folders are removed."""
    for future in _queued:
        future.cancel()  # only those not started yet
    idle()
    while _at_end:
        _at_end.pop()()
    while _folders:
        shutil.rmtree(_folders.pop(), ignore_errors=True)


def _run(future: concurrent.futures.Future, name: str, fn) -> None:
    if future.set_running_or_notify_cancel():
        try:
            future.set_result(fn(fresh_folder(f"course-{name.replace(':', '-')}-")))
        except BaseException as e:  # handed to the tests that wait for it
            future.set_exception(e)


_lanes: dict[str, queue.Queue] = {}
_lane_threads: set[int] = set()
_real_print = builtins.print


def _print(*args, **kwargs):
    if threading.get_ident() in _lane_threads and kwargs.get("file") in (None, sys.stdout, sys.stderr):
        raise RuntimeError("a background job must not print: it would land in the output of another test")
    return _real_print(*args, **kwargs)


def _lane(lane: str) -> queue.Queue:
    builtins.print = _print
    if lane not in _lanes:
        _lanes[lane] = todo = queue.Queue()

        def worker():
            _lane_threads.add(threading.get_ident())
            lower_priority()
            while True:
                future, name, fn = todo.get()
                try:
                    _run(future, name, fn)
                finally:
                    todo.task_done()

        # A daemon: a session that dies without its sessionfinish (finish() waits for running jobs) is not held up.
        threading.Thread(target=worker, name=f"background-{lane}", daemon=True).start()
    return _lanes[lane]
