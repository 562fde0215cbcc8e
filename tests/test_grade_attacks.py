"""Attacks on the grader (common/grading/grade.py), each a few lines of a fake submission, graded the way an
instructor grades: `--submission SUB --starter STARTER --tests INSTRUCTOR/tests`.

The fake course has chapters of one tiny exercise each: `double` is the TODO, `width` is given (the starter's one free
point) and a hidden test checks `double` again. Attacks that stay out of the harness share one grader run (one
chapter each); attacks that tamper with the harness get a run of their own, since the first detection fails every
later test. Every attack must score no more than the honest, untouched starter (a chapter of the same run: exactly
as much, unless the harness was modified, which fails every test), and leave the results file as the grader wrote it
and the instructor's folders byte-identical. These run as root here (as Gradescope's autograder does), so the
fresh uid and the mount namespace are what is tested; without root the module checks what holds there.
"""
import ast
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from common.grading import grade
from tests import background
from tests.background import Jobs
from tests.gradescope_schema import assert_valid

GRADED = False  # the course tooling's own tests are not part of a student's grade
pytestmark = pytest.mark.points(1)
ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parents[1]
needs_root = pytest.mark.skipif(not ROOT, reason="without root the child runs as the grader's own user: "
                                "it can read and write what the grader can (see common/grading/grade.py)")
REFERENCE_MARK = "REFERENCE-SOLUTION-7f3a"  # appears only in the instructor's chapters/

REFERENCE = f'''
    def double(xs):
        return [2 * x for x in xs]  # {REFERENCE_MARK}

    def width():
        return 2
    '''
STARTER = '''
    def double(xs):
        raise NotImplementedError("TODO: double every x")

    def width():
        return 2
    '''
TESTS = '''
    import pytest
    from chapters.CHAPTER.model import double, width

    @pytest.mark.points(2)
    def test_double():
        assert all(a == b for a, b in zip(double([1, 2, 3]), [2, 4, 6])) and len(double([1])) == 1

    @pytest.mark.points(1)
    def test_width():
        assert width() == 2

    @pytest.mark.points(1)
    def test_third():
        assert double([0]) == [0]

    @pytest.mark.points(1)
    @pytest.mark.visibility("hidden")
    def test_hidden_secret_case():
        assert double([5]) == [10]
    '''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def make_course(root: Path, chapters: list[str], code: str, with_tests=True, hidden=True) -> Path:
    write(root / "chapters" / "__init__.py", "")
    tests = TESTS if hidden else TESTS.split("    @pytest.mark.points(1)\n    @pytest.mark.visibility")[0]
    for chapter in chapters:
        write(root / "chapters" / chapter / "__init__.py", "")
        write(root / "chapters" / chapter / "model.py", code)
        if with_tests:
            write(root / "tests" / f"test_{chapter}.py", tests.replace("CHAPTER", chapter))
    return root


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


class Course:
    """An instructor's checkout, a student starter, a folder the attacks may write their traces to."""

    def __init__(self, base: Path, chapters: list[str], hidden=True, conftest: str | None = None):
        """conftest: the text of the tests' conftest.py (in the instructor's tests and the student copy), if any."""
        self.base = base
        self.instructor = make_course(base / "instructor", chapters, REFERENCE, hidden=hidden)
        self.starter = make_course(base / "starter", chapters, STARTER)
        for test in (self.starter / "tests").glob("*.py"):  # the student copy has no hidden tests
            test.write_text(test.read_text().split("@pytest.mark.points(1)\n@pytest.mark.visibility")[0])
        if conftest is not None:
            for tests in (self.instructor / "tests", self.starter / "tests"):
                write(tests / "conftest.py", conftest)
        self.traces = base / "traces"
        self.traces.mkdir()
        os.chmod(self.traces, 0o777)  # the submission's uid may leave traces here
        self.before = self.digests()

    def digests(self):
        return digest(self.instructor / "tests"), digest(self.instructor / "chapters")

    def submission(self, name: str, files: dict[str, str]) -> Path:
        root = self.base / "submissions" / name
        make_course(root, [], "", with_tests=False)
        for rel, text in files.items():
            write(root / rel, self.fill(text))
        return root

    def fill(self, text: str) -> str:
        return (text.replace("INSTRUCTOR", str(self.instructor)).replace("TRACES", str(self.traces))
                .replace("RESULTS", str(self.base / "out")))

    def grade(self, submission: Path, *extra: str, without_root: bool = False) -> tuple[dict, Path, float]:
        """Grade as the instructor does; without_root: as a user without root would (see grade_without_root)."""
        out = self.base / "out" / f"{submission.name}.json"
        out.parent.mkdir(exist_ok=True)
        os.chmod(out.parent, 0o777)  # world-writable: only "nobody is left alive" protects the results
        argv = ["--submission", str(submission), "--starter", str(self.starter), "--tests",
                str(self.instructor / "tests"), "--json", str(out), "--timeout", "2", "--quiet", *extra]
        started = time.monotonic()
        result = grade_without_root(argv) if without_root else grade.main(argv)
        seconds = time.monotonic() - started
        assert json.loads(out.read_text()) == result
        assert_valid(result)
        return result, out, seconds


# Without root the grader takes every new descendant of its process for the submission's, so it runs in a process of
# its own: in this one, the processes of the other background jobs (tests/background.py) are descendants too.
WITHOUT_ROOT = """
import sys
from common.grading import grade, sandbox
sandbox._running_as_root = lambda: False  # as a user without root
sys.exit(grade.exit_status(grade.main(sys.argv[1:])))
"""


def grade_without_root(argv: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", WITHOUT_ROOT, *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(Path(argv[argv.index("--json") + 1]).read_text())


def chapter_score(result: dict, chapter: str) -> float:
    return sum(t["score"] for t in result["tests"] if t["name"].startswith(f"tests/test_{chapter}.py::"))


def outputs(result: dict, chapter: str) -> str:
    return "\n".join(t["output"] for t in result["tests"] if f"test_{chapter}.py" in t["name"])


# ---- the attacks that stay out of the harness: one run, one chapter each ----

HIJACK = '''
    # chapters/ch01_hijack/__init__.py: import this chapter from the instructor's solution instead.
    import glob
    import os
    guesses = ["INSTRUCTOR/chapters/ch01_hijack"]
    for cmdline in glob.glob("/proc/*/cmdline"):  # the grader's --tests argument, if any process shows it
        try:
            args = open(cmdline, "rb").read().split(b"\\0")
        except OSError:
            continue
        if b"--tests" in args and args.index(b"--tests") + 1 < len(args):
            tests = args[args.index(b"--tests") + 1].decode()
            guesses.append(os.path.join(os.path.dirname(tests), "chapters", "ch01_hijack"))
    for guess in guesses:
        if os.access(os.path.join(guess, "model.py"), os.R_OK):
            __path__[:] = [guess]
            open("TRACES/hijacked", "w").write(guess)
            break
    '''
REWRITE = '''
    # chapters/ch02_rewrite/model.py: at import, turn every test body into `pass`, the copy and the original.
    import glob
    import os
    import re

    def neuter(path):
        try:
            text = open(path).read()
            with open(path, "w") as f:
                f.write(re.sub(r"(def test_\\w+\\(.*\\):\\n)((?:    .*\\n)+)", r"\\1    pass\\n", text))
            open("TRACES/rewrote-" + os.path.basename(path), "w").write(path)
        except OSError:
            pass

    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for path in glob.glob(here + "/tests/*.py") + glob.glob("INSTRUCTOR/tests/*.py"):
        neuter(path)

    def double(xs):
        raise NotImplementedError("TODO: double every x")

    def width():
        return 2
    '''
SECRETS = '''
    # chapters/ch03_secrets/model.py: read what should be out of reach and show it in a visible test's output.
    import glob
    import os

    def readable(path, needle=None):
        try:
            text = open(path, errors="replace").read()
        except OSError as e:
            return "no (" + type(e).__name__ + ")"
        return "YES" if needle is None or needle in text else "no (not there)"

    def double(xs):
        try:
            open("/tmp/grade-attack-leftover-%d" % os.getuid(), "w").write("for the next submission")
            left = "done"
        except OSError:
            left = "failed"
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        report = {
            "reference": readable("INSTRUCTOR/chapters/ch03_secrets/model.py"),
            "instructor tests": readable("INSTRUCTOR/tests/test_ch03_secrets.py"),
            "hidden test in my copy": readable(here + "/tests/test_ch03_secrets.py", "hidden_secret"),
            "instructor path in my environ": readable("/proc/self/environ", "INSTRUCTOR"),
            "instructor path in any cmdline": "YES" if any(readable(c, "INSTRUCTOR") == "YES"
                                                           for c in glob.glob("/proc/*/cmdline")) else "no",
            "running as root": "YES" if os.getuid() == 0 else "no",
            "other users' processes": "YES" if any(os.stat(p).st_uid != os.getuid()
                                                   for p in glob.glob("/proc/[0-9]*")) else "no",
            "setuid programs would work": readable("/proc/self/status", "NoNewPrivs:\t0"),
            "left a file in /tmp": left,
        }
        raise RuntimeError("; ".join(k + ": " + v for k, v in report.items()))

    def width():
        return 2
    '''
DAEMONS = '''
    # chapters/ch04_daemons/model.py: a double-forked setsid daemon that rewrites the results once the grader is
    # done, and 50 setsid children; each leaves its pid in TRACES.
    import json
    import os
    import time

    def forked(body):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                try:
                    open("TRACES/pid-%d" % os.getpid(), "w").close()
                    body()
                finally:
                    os._exit(0)
            os._exit(0)

    def rewrite_results():
        for _ in range(100):
            time.sleep(0.05)
            for name in os.listdir("RESULTS"):
                try:
                    with open(os.path.join("RESULTS", name), "w") as f:
                        json.dump({"score": 1000, "tests": []}, f)
                except OSError:
                    pass

    forked(rewrite_results)
    for _ in range(50):
        forked(lambda: time.sleep(60))

    def double(xs):
        raise NotImplementedError("TODO: double every x")

    def width():
        return 2
    '''
REACH = ["ch01_hijack", "ch02_rewrite", "ch03_secrets", "ch04_daemons"]
HONEST = "ch05_honest"  # the untouched starter, graded in the same run as the attacks


# Each grader run is a job: it runs in the background while the other tests do (tests/background.py).
jobs = Jobs(lane="grade")


def open_folder(folder: Path) -> Path:
    """A folder others may enter (pytest's own tmp folders are root's only), so that what holds the attacks back
    is the grader, not the test's folder modes."""
    os.chmod(folder, 0o755)
    return folder


@jobs.job("course", "reach")  # every test that uses these fixtures
def graded_reach(folder: Path):
    course = Course(open_folder(folder), REACH + [HONEST])
    sub = course.submission("reach", {
        "chapters/ch01_hijack/__init__.py": HIJACK, "chapters/ch01_hijack/model.py": STARTER,
        "chapters/ch02_rewrite/__init__.py": "", "chapters/ch02_rewrite/model.py": REWRITE,
        "chapters/ch03_secrets/__init__.py": "", "chapters/ch03_secrets/model.py": SECRETS,
        "chapters/ch04_daemons/__init__.py": "", "chapters/ch04_daemons/model.py": DAEMONS,
        f"chapters/{HONEST}/__init__.py": "", f"chapters/{HONEST}/model.py": STARTER,
    })
    result, out, seconds = course.grade(sub)
    return course, (result, out), time.monotonic()


@pytest.fixture
def course():
    return jobs.result(graded_reach)[0]


@pytest.fixture
def reach():
    return jobs.result(graded_reach)[1]


def test_the_honest_starter_earns_only_the_free_points(reach):
    assert reach[0]["max_score"] == 5 * len(REACH + [HONEST])
    if ROOT:  # without root ch02_rewrite can rewrite the run's copy of every test (not defended there: grade.py)
        assert chapter_score(reach[0], HONEST) == 1  # test_width; its TODO fails the other four


@needs_root
@pytest.mark.parametrize("chapter", REACH)
def test_an_attack_out_of_the_harness_scores_what_the_starter_does(reach, chapter):
    assert chapter_score(reach[0], chapter) == chapter_score(reach[0], HONEST)


@needs_root
def test_the_reference_solution_is_out_of_reach(course, reach):
    assert not (course.traces / "hijacked").exists()
    report = outputs(reach[0], "ch03_secrets")
    assert "reference: no (PermissionError)" in report and "instructor tests: no (PermissionError)" in report
    # Nor the hidden tests (removed from the visible phase), the instructor's paths, root, other users' processes.
    assert "YES" not in report
    assert REFERENCE_MARK not in json.dumps(reach[0])
    assert "left a file in /tmp: done" in report
    uid = re.search(r"student code ran as uid (\d+)", reach[0]["output"]).group(1)
    assert not Path(f"/tmp/grade-attack-leftover-{uid}").exists()  # and it was removed after the run


def test_hidden_tests_report_pass_or_fail_only(reach):
    hidden = [t for t in reach[0]["tests"] if t["visibility"] == "hidden"]
    assert len(hidden) == 5 and {t["output"] for t in hidden} <= {"passed", "failed"}
    if ROOT:  # and they fail, as the TODOs say; without root ch02_rewrite's rewritten copies pass (see above)
        assert {t["output"] for t in hidden} == {"failed"}


def test_no_process_of_the_submission_survives_and_the_results_stay_as_written(course, reach):
    pids = [int(p.name.split("-")[1]) for p in course.traces.glob("pid-*")]
    assert len(pids) >= 51  # the daemon and the 50 children did start (in each child that imported them)
    finished = jobs.result(graded_reach)[2]
    time.sleep(max(0.0, finished + 0.3 - time.monotonic()))  # the daemon would have rewritten the results by now
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    result, out = reach
    assert json.loads(out.read_text()) == result


@needs_root
def test_rewriting_the_tests_changes_nothing_and_the_instructors_folders_stay_byte_identical(course, reach):
    assert not list(course.traces.glob("rewrote-*"))  # neither the private copy nor the originals could be written
    assert course.digests() == course.before  # so nothing they did can carry over to the next submission


# ---- tampering with the harness: a run each ----

TAMPER = {
    "runtest": "import _pytest.python\n_pytest.python.Function.runtest = lambda self: None\n",
    "plugin": textwrap.dedent('''
        import gc, sys, types
        # The reporting plugin, however it is found: its summary function now says "passed".
        for module in [m for m in gc.get_objects() if isinstance(m, types.ModuleType)] + list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("_course_grade_plugin_"):
                module._summarise = lambda reports: ("passed", "", "", False)
        '''),
    "builtins": "import builtins\nbuiltins.all = lambda iterable: True\nbuiltins.len = lambda x: 1\n",
}


_tamper_course: list = []
_tamper_lock = threading.Lock()


def shared_tamper_course() -> Course:
    """One course for the runs below (made by whichever job or test comes first), one phase per run: quicker."""
    with _tamper_lock:
        if not _tamper_course:
            _tamper_course.append(Course(open_folder(background.fresh_folder("grade-attacks-")), ["ch01_toy"],
                                         hidden=False))
        return _tamper_course[0]


@pytest.fixture
def tamper_course():
    return shared_tamper_course()


def graded_tamper(attack: str, folder: Path):
    wrong = "def double(xs):\n    return [0]\n\ndef width():\n    return 2\n"
    course = shared_tamper_course()
    sub = course.submission(attack, {"chapters/ch01_toy/__init__.py": TAMPER[attack],
                                     "chapters/ch01_toy/model.py": wrong})
    return course.grade(sub)


for _attack in TAMPER:
    jobs.add(f"tamper:{_attack}", functools.partial(graded_tamper, _attack),
             f"test_modifying_the_harness_fails_every_test[{_attack}]")


@pytest.mark.parametrize("attack", sorted(TAMPER))
def test_modifying_the_harness_fails_every_test(tamper_course, attack):
    result, out, _ = jobs.result(f"tamper:{attack}")
    assert result["score"] == 0  # the honest starter earns 1: the free point is lost too
    assert all(grade.HARNESS_MESSAGE in t["output"] or t["visibility"] == "hidden" for t in result["tests"])
    assert tamper_course.digests() == tamper_course.before


# numpy's comparison helpers are watched too, when the tests' conftest has loaded numpy (as the course's loads numpy
# and Paddle): a submission that makes numpy.allclose always true fails every test like the attacks above.
NUMPY_TAMPER = "import numpy\nnumpy.allclose = lambda *args, **kwargs: True\n"


@jobs.job("test_patching_numpys_comparisons_fails_every_test")
def graded_numpy_tamper(folder: Path):
    course = Course(open_folder(folder), ["ch01_toy"], hidden=False, conftest="import numpy\n")
    sub = course.submission("numpy", {"chapters/ch01_toy/__init__.py": NUMPY_TAMPER,
                                      "chapters/ch01_toy/model.py": STARTER})
    return course, course.grade(sub)[0]


def test_patching_numpys_comparisons_fails_every_test():
    course, result = jobs.result(graded_numpy_tamper)
    assert result["score"] == 0  # the untouched starter earns 1 (test_width)
    assert result["tests"] and all(grade.HARNESS_MESSAGE in t["output"] for t in result["tests"])
    assert "numpy:allclose" in result["output"]
    assert course.digests() == course.before


def test_the_course_conftest_loads_numpy_and_paddle_before_any_test_module():
    # The harness watches a library's comparison helpers only if it is loaded when the session starts: the course's
    # tests/conftest.py must import numpy and Paddle at its top, not inside a fixture.
    tree = ast.parse((REPO / "tests" / "conftest.py").read_text(encoding="utf-8"))
    top_level = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    assert {"numpy", "paddle"} <= top_level


# ---- time ----

HANG = '''
    import signal
    import time

    def hang():
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])  # the per-test timer never fires
        while True:  # asleep, not spinning: the same to the grader's clocks, and the other tests keep the CPU
            try:
                time.sleep(1)
            except BaseException:
                pass

    def double(xs):
        hang()

    def width():
        hang()
    '''


@jobs.job("test_a_submission_that_blocks_the_timer_and_hangs_is_stopped_within_bounded_time")
def graded_hang(folder: Path):
    course = shared_tamper_course()
    sub = course.submission("hang", {"chapters/ch01_toy/__init__.py": "", "chapters/ch01_toy/model.py": HANG})
    return course.grade(sub, "--timeout", "0.1")


def test_a_submission_that_blocks_the_timer_and_hangs_is_stopped_within_bounded_time(tamper_course):
    tests = tamper_course.instructor / "tests" / "test_ch01_toy.py"
    result, _, seconds = jobs.result(graded_hang)
    by_name = {t["name"].split("::")[1]: t for t in result["tests"]}
    assert result["score"] == 0
    assert "timed out (killed by the grader's watchdog)" in by_name["test_double"]["output"]
    assert "timed out" in by_name["test_width"]["output"]
    # Two tests of the module timed out: the rest of it is not run at all.
    assert by_name["test_third"]["output"].startswith("not run: 2 tests of this module timed out")
    assert result["extra_data"]["timeout_per_test_s"] == 0.1
    assert seconds < 15 and tests.exists()


@jobs.job("test_the_time_limit_bounds_the_whole_submission")
def graded_hang_forever(folder: Path):
    course = shared_tamper_course()
    sub = course.submission("hang-forever", {"chapters/ch01_toy/__init__.py": "", "chapters/ch01_toy/model.py": HANG})
    return course.grade(sub, "--timeout", "0", "--time-limit", "0.6")


def test_the_time_limit_bounds_the_whole_submission():
    result, _, seconds = jobs.result(graded_hang_forever)
    assert result["score"] == 0 and result["extra_data"]["time_limit_s"] == 0.6
    assert "time limit" in result["output"] and seconds < 10


# ---- what is refused before anything runs ----

def test_symbolic_links_out_of_the_submission_are_refused(tamper_course, tmp_path):
    sub = tmp_path / "linked"
    sub.mkdir()
    (sub / "chapters").symlink_to(tamper_course.instructor / "chapters")
    result, _, _ = tamper_course.grade(sub)
    assert result["score"] == 0 and result["extra_data"]["refused"] and result["tests"] == []
    assert "chapters is a symbolic link to" in result["output"] and "outside the submission" in result["output"]
    deep = tamper_course.submission("deep-link", {"chapters/ch01_toy/__init__.py": ""})
    (deep / "chapters" / "ch01_toy" / "model.py").symlink_to(tamper_course.instructor / "chapters/ch01_toy/model.py")
    result, _, _ = tamper_course.grade(deep)
    assert result["extra_data"]["refused"] and "chapters/ch01_toy/model.py is a symbolic link" in result["output"]


def test_a_pipe_in_the_submission_is_refused(tamper_course):
    sub = tamper_course.submission("fifo", {"chapters/ch01_toy/model.py": STARTER})
    os.mkfifo(sub / "chapters" / "ch01_toy" / "data.bin")  # copying it would block the grader for ever
    result, _, _ = tamper_course.grade(sub)
    assert result["extra_data"]["refused"] and "not a regular file" in result["output"]


@pytest.mark.parametrize("option, value, message", [
    ("--timeout", "inf", "give a number of seconds from 0 to"),
    ("--timeout", "1e300", "give a number of seconds from 0 to"),
    ("--timeout", "nan", "give a number of seconds from 0 to"),
    ("--timeout", "-1", "give a number of seconds from 0 to"),
    ("--time-limit", "inf", "give a number of seconds from 0 to"),
    ("--json", "FOLDER", "is a folder"),
    ("--json", "FILE/results.json", "cannot write in"),
])
def test_impossible_options_are_refused_before_anything_runs(tmp_path, capsys, option, value, message):
    (tmp_path / "FILE").write_text("")
    (tmp_path / "FOLDER").mkdir()
    value = str(tmp_path / value) if option == "--json" else value
    argv = ["--submission", str(tmp_path), "--tests", str(tmp_path), option, value]
    if option != "--json":
        argv += ["--json", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit) as exit_info:
        grade.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


@needs_root
def test_as_root_student_code_runs_as_a_fresh_uid_in_a_mount_namespace(reach):
    assert "student code ran as uid" in reach[0]["output"] and "mount namespace" in reach[0]["output"]


@jobs.job("test_without_root_the_processes_of_the_submission_are_still_killed")
def graded_daemons_without_root(folder: Path):
    course = shared_tamper_course()
    sub = course.submission("daemons", {"chapters/ch01_toy/__init__.py": "", "chapters/ch01_toy/model.py": DAEMONS})
    return (*course.grade(sub, without_root=True), time.monotonic())


def test_without_root_the_processes_of_the_submission_are_still_killed(tamper_course):
    """The grader's own uid for the child (no separate user, no mount namespace): the subreaper and the sweep of
    the grader's descendants must still leave no process alive before the results are written."""
    result, out, _, finished = jobs.result(graded_daemons_without_root)
    pids = [int(p.name.split("-")[1]) for p in tamper_course.traces.glob("pid-*")]
    assert len(pids) >= 51 and result["score"] == 1
    time.sleep(max(0.0, finished + 0.3 - time.monotonic()))  # the daemon would have rewritten the results by now
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert json.loads(out.read_text()) == result
    assert "student code ran as uid" not in result["output"]
