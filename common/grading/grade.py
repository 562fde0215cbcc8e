"""Grade an assignment: points per chapter, and a Gradescope `results.json`.

    python -m common.grading.grade                                   # this repository, every chapter
    python -m common.grading.grade --chapters ch01_house_price       # one chapter (positional names work too)
    python -m common.grading.grade --submission SUB --starter STUDENT --tests INSTRUCTOR/tests \\
        --chapters ch01_house_price --json /autograder/results/results.json

An assignment is a set of chapters (`--chapters`, default: every chapter of the starter, else of the tests'
repository). Only the chapters' own test files count (tests/test_<chapter>.py and tests/test_<chapter>_*.py):
tests of common/, the template and the grading tools never enter a student's score, nor does a test module that
sets `GRADED = False`, nor a test without `@pytest.mark.points(n)`. `@pytest.mark.visibility("hidden" |
"after_due_date" | "after_published" | "visible")` is copied into the JSON; partial credit: see
common/grading/partial_credit.py.

With `--tests DIR` the instructor's tests run against the submission; the tests shipped inside it are never run.
Which tests count and their points come from collecting DIR against its own repository (DIR's parent, the reference
solution), so a submission that breaks collection still gets 0 out of the full total. With `--starter`, only the
submission's chapters/ files are laid over a copy of the clean student version (`overlay`).

What is not a submission is refused before anything runs, with a results.json of score 0 that says why and exit
status 1: no chapters/ folder (at the top or one folder down), no file of the assignment's chapters in it, chapter
files one folder too deep, a symbolic link pointing outside the submission, a file that is not a regular file, more
than MAX_SUBMISSION_FILES files or MAX_SUBMISSION_BYTES bytes.

## The threat model: what a submission can and cannot do

Submissions come from people who want marks without the work. Student code runs only in child pytest processes.

Defended (each with an attack in tests/test_grade_attacks.py, unless noted):
- Nothing of the instructor's within reach. The child sees a private per-run copy: the code (starter + the
  submission's chapters/) and the tests it needs, in a run folder under the system temp dir; the instructor's
  tests folder and reference `chapters/` appear in no path of its argv or environment (a minimal environment is
  built, not inherited), and the originals are only ever read (never opened for writing: a submission that edits
  tests edits its own copy). With separate tests (--tests / --starter), hidden tests run in a second phase, after
  every visible test: the copy the visible phase sees has the hidden tests removed (as the student export does),
  and the hidden phase's outputs are reduced to passed / failed, so reading hidden tests gains a submission
  nothing it can show.
- As root (Gradescope runs the autograder as root; the how is in common/grading/sandbox.py): each child runs as a
  fresh unprivileged uid chosen per run (a number with no passwd entry and no process, from
  sandbox.FRESH_UID_RANGE; `--user NAME` picks an existing user instead, e.g. nobody -- but then every process of
  that user is killed after each child), with no supplementary groups, PR_SET_NO_NEW_PRIVS (no setuid programs),
  RLIMIT_NPROC and no core dumps (the last two untested). The run folder is root's: the child can read the code and
  tests (0755/0644) but write only its scratch folder (HOME, TMPDIR, pytest's basetemp) and the world-writable /tmp,
  /var/tmp, /dev/shm, whose files of the fresh uid are removed after the run. In a private mount namespace, the
  instructor's tests folder and the reference chapters/ folders (of the tests' repository and of this grader's
  checkout, which an editable install points to) are covered by empty read-only tmpfs mounts,
  and /proc is remounted with hidepid=2 so the child cannot see the grader's command line or other users'
  processes. Where the kernel refuses a mount namespace (a container without CAP_SYS_ADMIN), those folders are
  instead made inaccessible to others (chmod go-rwx) for the run and restored afterwards; the note says which
  (this fallback is untested here: the test machine allows namespaces).
- Results the submission cannot write. Settings reach the child through a file descriptor opened by the grader
  (its file is in a root-only folder and closed before student code runs); outcomes come back through a pipe;
  the results file is written by this process, atomically, after every process of the submission is dead, so even
  a world-writable results folder stays as written.
- No survivors. The grader is a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so double-forked `setsid` daemons
  are re-parented to it; after every child, every process of the run's uid is killed (kill(-1) sent as that uid,
  repeated until none is left; without root: every descendant of the grader that was not there before), and all
  are reaped, before the next child starts or the results are written.
- Bounded time. Per test (`--timeout`, a timer in the child, and a watchdog here that kills a child whose test
  runs past timeout + grace, so blocking SIGALRM does not help); per submission (`--time-limit`, default
  DEFAULT_TIME_LIMIT s, well under Gradescope's 10 minutes; tests not run by then score 0 and say so). After a child
  was killed, the rest runs in a fresh child; once MAX_TIMEOUTS_PER_MODULE tests of a module have timed out, its
  remaining tests fail at once instead of each using up its timeout. Limits are reported in the JSON (extra_data).
- A test module that fails to import scores its tests 0 and the rest still run; `sys.exit()` in a test fails that
  test; `os._exit()` or a crash ends the child, the test in progress scores 0 and the rest run in a fresh child.
- Tampering inside the test process is made hard, not impossible: the plugin (common/grading/_pytest_points.py)
  checks after each module import and each test that pytest's and pluggy's run/report machinery, the plugin's own
  functions, the builtins assertions use and numpy's / Paddle's comparison helpers (when the tests' conftest loads
  them, as the course's does; numpy's tested, Paddle's the same code) are the objects captured at start-up; if
  not, that test and every later one fail with "the submission modified the test harness"; the plugin's module is
  also removed from sys.modules before any test module is imported. The grader itself counts a test only if it was
  reported started and ended exactly once, in order, with the run's nonce.
- Symbolic links that leave the submission are refused; links inside it are not copied; pipes, sockets and
  devices are refused (copying a pipe would block the grader).

Not defended (what student code can still do inside its own interpreter, or outside this grader's reach):
- Forge a pass by reaching the report channel directly: walking the garbage collector, frames or closure cells
  to the plugin's emitter, rewriting function internals of the check itself, or writing process memory with
  ctypes, then ending the process. Outcomes are decided in the test process, which student code shares.
- Return objects that fool a test's comparisons (an `__eq__` that is always True): tests should check types and
  values with numpy.testing, as the course's tests do.
- Without root: no separate uid, no mount namespace; the child can read and write whatever the grader's user can
  (the reference solution and the original tests included, when it guesses their paths: they are still in no path
  it is given) and can chmod its own copy back to writable. Processes it starts are still killed
  (subreaper and descendant sweep) and results are still written only by this process afterwards.
- Read the instructor's other files where their modes let everyone read them: only the tests folder and the
  reference chapters/ folders are hidden (keep answers nowhere else in the autograder's source).
- Read world-readable files elsewhere on the machine, use the network, use memory without limit, or fill the
  disk (run the grader in a container without network, as Gradescope does); kill this process (as root only the
  grader's uid could, and it is not the child's).

The child pytest uses the tests' own configuration file (copied) but not its addopts (`-o addopts=`), never loads
pytest-xdist (`-p no:xdist`) or other installed plugins (PYTEST_DISABLE_PLUGIN_AUTOLOAD), so a repository's `-n auto`
does not reach it. Runs are seeded (PYTHONHASHSEED=0, and random / numpy / paddle seeded before each test), so a
local pass is a grader pass.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.files import write_json

try:  # POSIX only
    import pwd
except ImportError:
    pwd = None
from common.grading.assign import CHAPTER_DIR, remove_hidden_tests, source_files
from common.grading.notebooks import use_submitted_notebooks
from common.grading.sandbox import Sandbox, Subreaper

PLUGIN_SOURCE = Path(__file__).with_name("_pytest_points.py")
PARTIAL_SOURCE = Path(__file__).with_name("partial_credit.py")
GRADER_REPO = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT = 60.0  # seconds per test
DEFAULT_TIME_LIMIT = 300.0  # seconds per submission: half of Gradescope's default 10-minute kill
MAX_SECONDS = 24 * 3600.0
WATCHDOG_GRACE = 5.0  # seconds past the timeout before the watchdog kills a child that ignores its own timer
STARTUP_ALLOWANCE = 60.0  # seconds for pytest to start (and import conftest) before its first report
MAX_TIMEOUTS_PER_MODULE = 2
MAX_SUBMISSION_FILES = 5000
MAX_SUBMISSION_BYTES = 100 * 2 ** 20
OUTPUT_TAIL = 64 * 1024  # bytes of a child's stdout/stderr kept
DEFAULT_SEED = 2024
STUDENT_PACKAGES = ("chapters",)  # imported only from the submission (see SubmissionOnly in _pytest_points.py)
CHILD_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "LD_LIBRARY_PATH", "OMP_NUM_THREADS")
CHILD_ENV_PREFIXES = ("CUDA_", "NVIDIA_", "FLAGS_", "MKL_", "OPENBLAS_")
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
HARNESS_MESSAGE = "the submission modified the test harness"  # as _pytest_points.HARNESS_MESSAGE
MARKERS_INI = """[pytest]
markers =
    points(n, split=False): points this graded test is worth
    visibility(v): visible | hidden | after_due_date | after_published
"""


class NotASubmission(ValueError):
    """The upload cannot be graded; the message says what was expected and what was found."""


@dataclass
class Expected:
    """A graded test: its pytest node id and what it is worth."""

    id: str
    points: float
    visibility: str = "visible"
    partial: bool = False  # may earn a fraction (asks for the partial_credit fixture, or one of split cases)

    @property
    def file(self) -> str:
        return self.id.split("::", 1)[0]

    @property
    def chapter(self) -> str:
        return chapter_of(self.file)


@dataclass
class Outcome:
    status: str  # passed | failed
    message: str = ""  # one line, for the table
    feedback: str = ""  # whole, capped, for the student
    fraction: float | None = None  # partial credit of a failed test
    timeout: bool = False


@dataclass
class Round:
    """What one child pytest process reported."""

    items: list[dict] = field(default_factory=list)
    collect_errors: dict[str, dict] = field(default_factory=dict)  # file -> event
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    in_progress: str | None = None  # test id started and not ended
    collecting: str | None = None  # module whose import started and did not end
    finished: bool = False  # pytest reached the end of its session
    killed: bool = False  # by the watchdog
    out_of_time: bool = False  # the submission's time limit ran out
    tampered: list[str] | None = None
    returncode: int | None = None
    output: str = ""
    ignored: int = 0  # records that failed the nonce or order checks


def chapter_of(test_file: str) -> str:
    stem = Path(test_file).stem
    return stem[len("test_"):] if stem.startswith("test_") else stem


# ---- the assignment: chapters and their test files ----

def chapters_in(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "chapters").glob("*") if p.is_dir() and CHAPTER_DIR.match(p.name))


def chapter_test_files(tests_dir: Path, chapter: str) -> list[Path]:
    return sorted(p for p in tests_dir.glob("test_*.py")
                  if p.stem == f"test_{chapter}" or p.stem.startswith(f"test_{chapter}_"))


def resolve_chapters(names: list[str], tests_dir: Path, known: list[str]) -> list[str]:
    """Chapter names (ch01_house_price, ch01, chapters/ch01_house_price, tests/test_ch01_house_price.py) -> chapters."""
    chosen = []
    for text in names:
        name = Path(text).name.removesuffix(".py").removeprefix("test_")
        matches = [c for c in known if c == name] or [c for c in known if c.startswith(name)]
        if len(matches) != 1:
            what = "matches several chapters" if matches else "is not a chapter"
            raise ValueError(f"{text!r} {what}; choose from: {', '.join(known) or '(none)'}")
        if not chapter_test_files(tests_dir, matches[0]):
            raise ValueError(f"chapter {matches[0]} has no test file tests/test_{matches[0]}.py in {tests_dir}")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def known_chapters(tests_dir: Path, starter: Path | None, submission: Path | None) -> list[str]:
    """The chapters an assignment may name: the starter's, else the tests' repository's, that have test files."""
    for root in (starter, tests_dir.parent, submission):
        if root is not None and chapters_in(root):
            return [c for c in chapters_in(root) if chapter_test_files(tests_dir, c)]
    return []


# ---- what is a submission ----

def check_submission(submission: Path, chapters: list[str]) -> Path:
    """The folder holding the submission's chapters/; NotASubmission when the upload cannot be graded."""
    submission = submission.resolve()
    _refuse_links_and_clutter(submission)
    found = [submission / "chapters"] if (submission / "chapters").is_dir() else \
        sorted(p for p in submission.glob("*/chapters") if p.is_dir())
    expected = "chapters/" + ("{" + ",".join(chapters) + "}" if len(chapters) > 1 else chapters[0]) + "/*.py (or .ipynb)"
    if len(found) > 1:
        raise NotASubmission(f"the submission has several chapters/ folders ({_list(found, submission)}); "
                             f"expected one, holding {expected}")
    if not found:
        deeper = sorted(p for p in submission.glob("*/*/chapters") if p.is_dir())
        bare = sorted(p for c in chapters for p in [*submission.glob(c), *submission.glob(f"*/{c}")] if p.is_dir())
        if deeper:
            why = f"found {_list(deeper, submission)}: one folder too deep"
        elif bare:
            why = f"found {_list(bare, submission)} without a chapters/ folder around it"
        else:
            why = f"found: {_list(_python_files(submission), submission) or 'no Python files at all'}"
        raise NotASubmission(f"no chapters/ folder at the top of the submission or one folder down; expected "
                             f"{expected}; {why}")
    folder = found[0]
    if not any(p.is_file() for c in chapters for pattern in ("*.py", "*.ipynb") for p in (folder / c).glob(pattern)):
        too_deep = sorted(p for c in chapters for p in folder.glob(f"*/{c}") if p.is_dir())
        why = (f"found {_list(too_deep, submission)}: one folder too deep" if too_deep else
               f"found: {_list(_python_files(folder), submission) or 'no Python files'}")
        raise NotASubmission(f"no file of the assignment's chapters in {folder.relative_to(submission).as_posix()}/; "
                             f"expected {expected}; {why}")
    return folder.parent


def _python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)[:8]


def _list(paths: list[Path], root: Path) -> str:
    shown = [p.relative_to(root).as_posix() + ("/" if p.is_dir() else "") for p in paths[:8]]
    return ", ".join(shown) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")


def _refuse_links_and_clutter(root: Path) -> None:
    count, size = 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in dirnames + filenames:
            path = here / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                target = os.path.realpath(path)
                if not _inside(Path(target), root):
                    raise NotASubmission(f"{rel} is a symbolic link to {os.readlink(path)}, outside the submission; "
                                         "upload the files themselves")
                continue
            if name in filenames:
                if not path.is_file():
                    raise NotASubmission(f"{rel} is not a regular file (a pipe, socket or device); remove it")
                count += 1
                size += path.stat().st_size
        if count > MAX_SUBMISSION_FILES or size > MAX_SUBMISSION_BYTES:
            raise NotASubmission(f"the submission is too big (more than {MAX_SUBMISSION_FILES} files or "
                                 f"{MAX_SUBMISSION_BYTES // 2 ** 20} MB); upload only the repository's sources")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# ---- the private run folder ----

def overlay(starter: Path, submission_root: Path, dest: Path) -> int:
    """Copy the starter to dest, then the submission's chapters/ files over it; return how many were taken.

    submission_root is the folder that holds the submission's chapters/ (check_submission finds it). Everything else
    in the submission (tests, common/, config) is ignored. Symbolic links and caches are not copied. This is the one
    place where a submission's files enter the graded copy (a hook for other kinds of submission goes here).
    """
    _copy_files(starter, source_files(starter), dest)
    chapters = submission_root / "chapters"
    files = [p.relative_to(submission_root) for p in sorted(chapters.rglob("*"))
             if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")]
    _copy_files(submission_root, files, dest)
    return len(files)


def _copy_files(src: Path, files, dest: Path) -> None:
    for rel in files:
        if (src / rel).is_symlink():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dest / rel)  # contents only: never the originals' owner or mode


def copy_tests(tests_dir: Path, dest: Path, graded_files: list[Path], *, strip_hidden: bool) -> None:
    """The tests a child needs: the graded files (hidden tests removed when strip_hidden) and every non-test file
    of the folder (conftest.py, helpers, small data); other test files stay out."""
    if dest.exists():
        shutil.rmtree(dest)
    graded = {p.resolve() for p in graded_files}
    for path in sorted(tests_dir.rglob("*")):
        rel = path.relative_to(tests_dir)
        if path.is_symlink() or not path.is_file() or "__pycache__" in rel.parts or path.suffix == ".pyc":
            continue
        is_test = path.name.startswith("test_") and path.suffix == ".py"
        if is_test and path.resolve() not in graded:
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        text = None
        if is_test and strip_hidden:
            text, _ = remove_hidden_tests(path.read_text(encoding="utf-8"), rel.as_posix())
            if text is None:
                continue
        if text is None:
            shutil.copyfile(path, dest / rel)
        else:
            (dest / rel).write_text(text, encoding="utf-8")


def _publish(tree: Path, writable_by_owner: bool) -> None:
    """Readable by the child, writable by nobody but root (as root), or read-only (a speed bump without root)."""
    file_mode, dir_mode = (0o644, 0o755) if writable_by_owner else (0o444, 0o555)
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), file_mode)
        os.chmod(dirpath, dir_mode)


def _remove_tree(path: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        try:
            os.chmod(dirpath, 0o700)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


# ---- the child pytest process ----

class Child:
    """Runs pytest with the reporting plugin on the private copy (or, trusted, on the instructor's repository)."""

    def __init__(self, private: Path, plugin_dir: Path, timeout: float, seed: int, deadline: float):
        self.private, self.plugin_dir = private, plugin_dir
        self.timeout, self.seed, self.deadline = timeout, seed, deadline
        self.plugin = next(p.stem for p in plugin_dir.glob("_course_grade_plugin_*.py"))
        self.partial = next(p.stem for p in plugin_dir.glob("_course_grade_partial_*.py"))
        self.runs = 0

    def start(self, cwd: Path, ini: Path, tests: Path, targets: list[Path], *, sandbox: Sandbox | None,
              scratch: Path | None = None, collect_only: bool = False, skip=()) -> "_Running":
        """Start pytest on targets; finish() watches it. sandbox=None: trusted (the instructor's reference)."""
        self.runs += 1
        nonce = secrets.token_hex(16)
        config = {"nonce": nonce, "timeout": self.timeout, "seed": self.seed, "skip": sorted(skip),
                  "code": str(cwd), "packages": list(STUDENT_PACKAGES) if sandbox else [],
                  "max_timeouts": MAX_TIMEOUTS_PER_MODULE}
        config_path = self.private / f"config-{self.runs:03d}.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        config_fd = os.open(config_path, os.O_RDONLY)
        report_r, report_w = os.pipe()
        out_r, out_w = os.pipe()
        env = {k: v for k, v in os.environ.items() if k in CHILD_ENV or k.startswith(CHILD_ENV_PREFIXES)}
        home = scratch or self.private
        env.update(
            HOME=str(home), TMPDIR=str(home), MPLBACKEND="Agg", LANG=env.get("LANG", "C.UTF-8"),
            PYTHONPATH=os.pathsep.join([str(self.plugin_dir), str(cwd)]),
            PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1",
            PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",  # the same plugins everywhere: only pytest's own and ours
            COURSE_GRADE_FDS=f"{config_fd},{report_w}",
        )
        if scratch is not None:  # the course's download cache: the copy's data/ is read-only, the parent's private
            env["COURSE_DATA_DIR"] = str(scratch / "data")
        cmd = [sys.executable, "-s", "-m", "pytest", "-p", self.plugin, "-p", self.partial, "-p", "no:cacheprovider",
               "-p", "no:xdist", "-p", "no:randomly", "-c", str(ini), "-o", "addopts=", "--rootdir", str(cwd),
               "--confcutdir", str(tests), "--continue-on-collection-errors", "-q", "--color=no"]
        if scratch is not None:
            cmd += ["--basetemp", str(scratch / "pytest-tmp")]
        cmd += ["--collect-only"] if collect_only else []
        # Files whose import killed or hung an earlier child are left out (pytest does not ask its
        # ignore hook about files named on the command line).
        cmd += [str(t) for t in targets if _relative(t, cwd) not in skip]
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w,
                                    pass_fds=(config_fd, report_w), start_new_session=True,
                                    preexec_fn=sandbox.preexec() if sandbox else None)
        except BaseException:
            os.close(report_r)
            os.close(out_r)
            raise
        finally:
            for fd in (config_fd, report_w, out_w):
                os.close(fd)
        result = Round()
        return _Running(proc, report_r, out_r, result, _ReportReader(nonce, result), bytearray(), sandbox)

    def finish(self, running: "_Running") -> Round:
        """Watch a started child to its end (or kill it), then kill whatever it left and collect its reports."""
        r = running
        try:
            self._watch(r.proc, r.report_r, r.out_r, r.result, r.reader, r.tail)
        finally:
            _kill_group(r.proc)
            if r.sandbox is not None:
                r.sandbox.kill_all()
            r.proc.wait()
            r.result.returncode = r.proc.returncode
            _drain(r.report_r, r.reader.feed)
            _drain(r.out_r, lambda chunk: _keep(r.tail, chunk))
            os.close(r.report_r)
            os.close(r.out_r)
        r.result.output = r.tail.decode("utf-8", errors="replace")
        return r.result

    def run(self, *args, **kwargs) -> Round:
        return self.finish(self.start(*args, **kwargs))

    def _watch(self, proc, report_r: int, out_r: int, result: Round, reader: "_ReportReader", tail: bytearray):
        """Read reports and output until the child ends; kill it (return) on a timeout or the time limit."""
        started = time.monotonic()
        grace = min(WATCHDOG_GRACE, max(0.3, self.timeout))
        open_fds = [report_r, out_r]
        while True:
            if open_fds:
                ready = select.select(open_fds, [], [], 0.05)[0]
            else:
                ready = []
                time.sleep(0.05)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:  # every writer closed it
                    open_fds.remove(fd)
                reader.feed(chunk) if fd == report_r else _keep(tail, chunk)
            if proc.poll() is not None:
                return
            now = time.monotonic()
            if now > self.deadline:
                result.out_of_time = True
                return
            if self.timeout > 0:
                last = reader.last_event
                if (last is None and now - started > STARTUP_ALLOWANCE) or \
                        (last is not None and now - last > self.timeout + grace):
                    result.killed = True  # a test (or import, or the end of the session) ran past its limit
                    return


@dataclass
class _Running:
    proc: subprocess.Popen
    report_r: int
    out_r: int
    result: Round
    reader: "_ReportReader"
    tail: bytearray
    sandbox: Sandbox | None


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _keep(tail: bytearray, chunk: bytes) -> None:
    tail += chunk
    if len(tail) > OUTPUT_TAIL:
        del tail[:-OUTPUT_TAIL]


def _drain(fd: int, take) -> None:
    """What is left in a pipe; never waits (a surviving process could hold its other end open)."""
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        take(chunk)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _ReportReader:
    """Reads the plugin's JSON lines as they arrive and keeps only those that carry the nonce, in order."""

    def __init__(self, nonce: str, result: Round):
        self.nonce, self.result = nonce, result
        self.pending = b""
        self.last_event: float | None = None  # when the last valid record arrived (the watchdog's clock)

    def feed(self, chunk: bytes) -> None:
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()[-1_000_000:]
        for line in lines:
            self._take(line)

    def _take(self, line: bytes) -> None:
        r = self.result
        try:
            event = json.loads(line)
            assert isinstance(event, dict) and event.get("n") == self.nonce
        except (ValueError, AssertionError):
            r.ignored += 1
            return
        kind, test_id = event.get("ev"), str(event.get("id", ""))
        self.last_event = time.monotonic()
        if kind == "item":
            r.items.append(event)
        elif kind == "collect_start":
            r.collecting = test_id
        elif kind == "collect_end":
            r.collecting = None
        elif kind == "collect_error":
            r.collect_errors[test_id] = event
        elif kind == "tampered":
            r.tampered = [str(n) for n in event.get("names", [])][:20] or ["(unnamed)"]
        elif kind == "start":
            r.in_progress = test_id
        elif kind == "end" and test_id in r.outcomes:  # only something besides the plugin writes a second one
            r.outcomes[test_id] = Outcome("failed", "reported more than once: something in the test process wrote "
                                                    "to the grader's report")
        elif kind == "end" and test_id == r.in_progress:
            r.in_progress = None
            outcome = Outcome("passed" if event.get("status") == "passed" else "failed",
                              str(event.get("message", "")), str(event.get("feedback", "")),
                              _fraction(event.get("fraction")), bool(event.get("timeout")))
            if r.tampered is not None:  # after the harness was modified nothing passes, whatever was reported
                outcome = Outcome("failed", HARNESS_MESSAGE, HARNESS_MESSAGE + ": " + ", ".join(r.tampered[:5]))
            r.outcomes[test_id] = outcome
        elif kind == "session_end":
            r.finished = True
        else:
            r.ignored += 1



def _fraction(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return min(max(float(value), 0.0), 1.0)
    return None


# ---- which tests count ----

def expected_from_items(items: list[dict]) -> list[Expected]:
    expected, seen = [], set()
    for item in items:
        points = item.get("points")
        if item["id"] in seen or not isinstance(points, (int, float)) or not item.get("graded", True):
            continue
        seen.add(item["id"])
        visibility = item.get("visibility", "visible")
        expected.append(Expected(item["id"], points, visibility if visibility in VISIBILITIES else "visible",
                                 bool(item.get("partial"))))
    return expected


def expected_from_source(test_file: Path, rootdir: Path) -> list[Expected]:
    """The graded tests of a file that cannot be collected, read from its source without importing it.

    A parametrized test becomes one entry `file::test[*]` worth points x cases when its cases are a literal list
    (points when they share them: `points(n, split=True)`), else points x 1.
    """
    rel = test_file.relative_to(rootdir).as_posix()
    try:
        tree = ast.parse(test_file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    module_marks: list[ast.expr] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) for t in node.targets):
            names = {t.id for t in node.targets if isinstance(t, ast.Name)}
            if "GRADED" in names and isinstance(node.value, ast.Constant) and node.value.value is False:
                return []
            if "pytestmark" in names:
                value = node.value
                module_marks = list(value.elts) if isinstance(value, (ast.List, ast.Tuple)) else [value]
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            found.append((f"{rel}::{node.name}", node.decorator_list + module_marks))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and sub.name.startswith("test"):
                    marks = sub.decorator_list + node.decorator_list + module_marks
                    found.append((f"{rel}::{node.name}::{sub.name}", marks))
    expected = []
    for test_id, marks in found:
        points, visibility, cases, split = None, "visible", 1, False
        for mark in marks:
            name, args, kwargs = _mark_call(mark)
            if name == "points" and args and points is None:
                points = _literal(args[0])
                split = bool(kwargs.get("split") and _literal(kwargs["split"]))
            elif name == "visibility" and args and visibility == "visible":
                visibility = str(_literal(args[0]) or "visible")
            elif name == "parametrize" and len(args) >= 2:
                values = args[1]
                if isinstance(values, (ast.List, ast.Tuple)):
                    cases *= max(len(values.elts), 1)
                    test_id = test_id if test_id.endswith("[*]") else test_id + "[*]"
        if isinstance(points, (int, float)) and not isinstance(points, bool):
            expected.append(Expected(test_id, points if split else points * cases, visibility, split))
    return expected


def _mark_call(node: ast.expr) -> tuple[str | None, list[ast.expr], dict]:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr, list(node.args), {k.arg: k.value for k in node.keywords if k.arg}
    return None, [], {}


def _literal(node: ast.expr):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


# ---- grading ----

@dataclass
class Graded:
    expected: Expected
    outcome: Outcome

    @property
    def score(self) -> float:
        if self.outcome.status == "passed":
            return self.expected.points
        if self.expected.partial and self.outcome.fraction is not None:
            return round(self.expected.points * self.outcome.fraction, 4)
        return 0


@dataclass
class Settings:
    timeout: float = DEFAULT_TIMEOUT
    time_limit: float = DEFAULT_TIME_LIMIT
    seed: int = DEFAULT_SEED
    user: str | None = None


def grade(
    submission: Path,
    tests_dir: Path | None = None,
    selection: list[Path] | None = None,
    *,
    starter: Path | None = None,
    chapters: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    time_limit: float = DEFAULT_TIME_LIMIT,
    seed: int = DEFAULT_SEED,
    user: str | None = None,
) -> tuple[list[Graded], list[str]]:
    """Run the assignment's graded tests and return (per-test results in a stable order, notes about the run).

    submission: the code under test. tests_dir: the instructor's tests (default: the starter's, else the
    submission's own tests/). chapters: the assignment (default: every chapter with tests). selection: test files
    (older form of chapters). starter: a clean student version; only the submission's chapters/ files are laid
    over a copy of it. Raises NotASubmission for an upload that cannot be graded.
    """
    submission = submission.resolve()
    separate_tests = tests_dir is not None or starter is not None
    starter = starter.resolve() if starter is not None else None
    tests_dir = (tests_dir or (starter or submission) / "tests").resolve()
    known = known_chapters(tests_dir, starter, submission)
    if selection:
        chapters = (chapters or []) + [chapter_of(p.name) for p in selection]
    chapters = resolve_chapters(chapters, tests_dir, known) if chapters else known
    if not chapters:
        raise ValueError(f"no chapter with tests in {tests_dir} (expected tests/test_chNN_name.py files)")
    submission_root = check_submission(submission, chapters)
    graded_files = [p for c in chapters for p in chapter_test_files(tests_dir, c)]
    settings = Settings(timeout, time_limit, seed, user)
    run_dir = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        with Subreaper():
            return _grade_in(run_dir, submission_root, tests_dir, graded_files, starter, separate_tests, settings)
    finally:
        _remove_tree(run_dir)


def _grade_in(run_dir: Path, submission_root: Path, tests_dir: Path, graded_files: list[Path],
              starter: Path | None, separate_tests: bool, settings: Settings) -> tuple[list[Graded], list[str]]:
    deadline = time.monotonic() + settings.time_limit
    notes: list[str] = []
    private, code, scratch, plugin_dir = (run_dir / n for n in ("private", "code", "scratch", "plugin"))
    for folder in (private, code, scratch, plugin_dir):
        folder.mkdir()
    os.chmod(private, 0o700)
    os.chmod(run_dir, 0o711)  # others may enter (code, plugin, scratch) but not list it
    tag = secrets.token_hex(4)
    shutil.copyfile(PLUGIN_SOURCE, plugin_dir / f"_course_grade_plugin_{tag}.py")
    shutil.copyfile(PARTIAL_SOURCE, plugin_dir / f"_course_grade_partial_{tag}.py")
    if starter is not None:
        taken = overlay(starter, submission_root, code)
        notes.append(f"graded the starter {starter.name}/ with {taken} file(s) from the submission's chapters/")
        notes += use_submitted_notebooks(starter, code)  # a submitted X.ipynb stands for X.py
    else:
        _copy_files(submission_root, [r for r in source_files(submission_root) if r.parts[0] != tests_dir.name], code)
    code_tests = code / tests_dir.name
    ini = _ini_file(tests_dir.parent, code)
    sandbox = Sandbox(run_dir, [tests_dir, tests_dir.parent / "chapters", GRADER_REPO / "chapters"], settings.user)
    try:
        sandbox.own(scratch)
        os.chmod(scratch, 0o700)
        child = Child(private, plugin_dir, settings.timeout, settings.seed, deadline)
        # The instructor's own tests against the reference solution (trusted, in place) say which tests count; that
        # collection runs while the first child of the submission does.
        known: dict = {"reference": None, "expected": []}
        pending = _start_reference(child, tests_dir, graded_files) if separate_tests else None

        def reference_done() -> None:
            if isinstance(pending, Round):
                known["reference"] = pending
            elif pending is not None:
                known["reference"] = _remember_reference(pending, child.finish(pending.running))
            reference = known["reference"]
            if reference is not None:
                known["expected"] = _expected([reference], tests_dir.parent, graded_files)
                if not reference.items:
                    notes.append("the instructor's tests could not be collected:\n" + _tail(reference.output, 2000))

        # Hidden tests run last, in a phase of their own whose outputs say passed / failed only; the visible phase
        # runs a copy of the tests without them.
        has_hidden = separate_tests and any(_hidden_count(p) for p in graded_files)
        phases = [("visible", True), ("hidden", False)] if has_hidden else [("all", False)]
        targets = [code_tests / p.relative_to(tests_dir) for p in graded_files]
        rounds: list[Round] = []
        outcomes: dict[str, Outcome] = {}
        expected: list[Expected] = []
        meanwhile = reference_done
        for phase, strip in phases:
            def wanted(phase=phase) -> list[Expected]:
                return [e for e in known["expected"]
                        if phase == "all" or (e.visibility == "hidden") == (phase == "hidden")]

            if meanwhile is None and wanted() and all(e.id in outcomes for e in wanted()):
                continue  # e.g. the hidden tests of a module whose tests kept timing out
            _publish(code, True)
            copy_tests(tests_dir, code_tests, graded_files, strip_hidden=strip)
            _publish(code, sandbox.root)
            _publish(plugin_dir, sandbox.root)
            present = [t for t in targets if t.exists()]
            phase_rounds = _run_rounds(child, code, ini, code_tests, present, sandbox, scratch, outcomes, wanted,
                                       meanwhile)
            if meanwhile is not None and not phase_rounds:
                meanwhile()
            meanwhile = None
            rounds += phase_rounds
            expected = known["expected"] if separate_tests else _expected(phase_rounds, code, present)
            for round_ in phase_rounds:
                outcomes = _settle(round_, expected, outcomes)
            _give_up_on_slow_modules(expected, outcomes)
            if any(r.out_of_time or r.tampered for r in rounds):
                break  # no time left, or a harness that reports nothing true any more
        if meanwhile is not None:
            meanwhile()
            expected = known["expected"]
        ignored = sum(r.ignored for r in rounds)
        if ignored:
            notes.append(f"ignored {ignored} report line(s) without the run's nonce or out of order")
        tampered = next((r.tampered for r in rounds if r.tampered), None)
        if tampered:
            notes.append(f"{HARNESS_MESSAGE}: {', '.join(tampered[:5])}")
        if any(r.out_of_time for r in rounds):
            notes.append(f"the submission's time limit of {settings.time_limit:g} s ran out")
        graded = [Graded(e, outcomes.get(e.id) or _not_run(e, rounds, settings)) for e in expected]
        if not sandbox.kill_all():
            notes.append("warning: some processes of the submission could not be killed")
        notes += sandbox.notes
        return graded, notes
    finally:
        sandbox.kill_all()
        sandbox.restore()


_reference_cache: dict[str, Round] = {}


@dataclass
class _PendingReference:
    key: str
    running: _Running


def _start_reference(child: Child, tests_dir: Path, graded_files: list[Path]):
    """The graded tests as the instructor's repository collects them: a Round when this process collected the same
    contents before (grading many submissions in one process collects once), else a started collection."""
    repo = tests_dir.parent
    # Not the timeout: a collection that timed out collected nothing, and only one that collected tests is kept.
    h = hashlib.sha256(repr((str(tests_dir), [str(p) for p in graded_files], child.seed)).encode())
    for folder in (tests_dir, repo / "chapters"):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path).encode() + b"\0" + path.read_bytes())
    for name in ("pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "conftest.py"):
        if (repo / name).is_file():
            h.update(name.encode() + (repo / name).read_bytes())
    key = h.hexdigest()
    if key in _reference_cache:
        return _reference_cache[key]
    return _PendingReference(key, child.start(repo, _ini_file(repo, None), tests_dir, graded_files, sandbox=None,
                                              collect_only=True))


def _remember_reference(pending: _PendingReference, reference: Round) -> Round:
    if reference.items:
        _reference_cache[pending.key] = reference
    return reference


def _hidden_count(test_file: Path) -> int:
    try:
        text, n = remove_hidden_tests(test_file.read_text(encoding="utf-8"), test_file.name)
    except (OSError, ValueError, SyntaxError):
        return 0
    return 1 if text is None else n


def _run_rounds(child: Child, code: Path, ini: Path, code_tests: Path, targets: list[Path], sandbox: Sandbox,
                scratch: Path, settled: dict[str, Outcome], wanted, meanwhile=None) -> list[Round]:
    """Children until every test of these targets has an outcome, a child makes no progress, or time runs out.

    wanted(): the tests this phase should settle (empty: learn them from what the children collect). meanwhile: run
    while the first child runs (the reference collection)."""
    rounds: list[Round] = []
    outcomes = dict(settled)
    while targets:
        skip = set(outcomes) | {r.collecting for r in rounds if r.collecting}
        running = child.start(code, ini, code_tests, targets, sandbox=sandbox, scratch=scratch, skip=skip)
        if meanwhile is not None:
            meanwhile()
            meanwhile = None
        rounds.append(child.finish(running))
        last = rounds[-1]
        ids = wanted() or _expected(rounds, code, targets)
        outcomes = _settle(last, ids, outcomes)
        _give_up_on_slow_modules(ids, outcomes)
        if last.tampered:  # every fresh child imports the same submission: nothing more to learn
            for e in ids:
                outcomes.setdefault(e.id, Outcome("failed", HARNESS_MESSAGE, HARNESS_MESSAGE))
        if last.out_of_time or last.tampered or (last.finished and not last.killed) or not _unsettled(ids, outcomes):
            break
        if last.in_progress is None and last.collecting is None and not last.outcomes:
            break  # no progress: pytest itself does not start
        if len(rounds) > len(ids) + 5:
            break
    return rounds


def _give_up_on_slow_modules(expected: list[Expected], outcomes: dict[str, Outcome]) -> None:
    """Once MAX_TIMEOUTS_PER_MODULE tests of a module timed out, its remaining tests fail without running."""
    counts: dict[str, int] = {}
    for outcome_id, outcome in outcomes.items():
        if outcome.timeout:
            file = outcome_id.split("::", 1)[0]
            counts[file] = counts.get(file, 0) + 1
    for e in expected:
        count = counts.get(e.file, 0)
        if count >= MAX_TIMEOUTS_PER_MODULE and e.id not in outcomes:
            outcomes[e.id] = Outcome("failed", f"not run: {count} tests of this module timed out",
                                     f"not run: {count} tests of this module timed out, so the rest of it was not "
                                     "run (to stay within the submission's time limit)")


def _expected(rounds: list[Round], rootdir: Path, targets: list[Path]) -> list[Expected]:
    """The graded tests: from collection, plus those of files that could not be collected, read from source."""
    source = next((r for r in rounds if r.items), rounds[-1] if rounds else Round())
    expected = expected_from_items(source.items)
    broken = _files_that_failed_to_collect(source, targets, rootdir) | {r.collecting for r in rounds if r.collecting}
    known = {e.id for e in expected}
    for bad_file in sorted(broken):
        expected += [e for e in expected_from_source(rootdir / bad_file, rootdir) if e.id not in known]
    return _in_stable_order(expected, source.items)


def _ini_file(repo: Path, code: Path | None) -> Path:
    """The tests' own pytest configuration (markers, filterwarnings), copied into the run folder when code is given;
    never the submission's: its addopts could deselect or re-plug things. addopts are cleared anyway (-o addopts=)."""
    for name in ("pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"):
        candidate = repo / name
        if candidate.is_file() and _has_pytest_section(candidate):
            if code is None:
                return candidate
            shutil.copyfile(candidate, code / name)
            return code / name
    ini = (code if code is not None else repo) / "pytest.ini"
    if code is None:  # the reference without a configuration: markers only, in the run folder
        return _markers_ini()
    ini.write_text(MARKERS_INI, encoding="utf-8")
    return ini


def _markers_ini() -> Path:
    path = Path(tempfile.gettempdir()) / f"course-grade-markers-{os.getuid()}.ini"
    if not path.exists() or path.read_text(encoding="utf-8") != MARKERS_INI:
        fd, tmp = tempfile.mkstemp(dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(MARKERS_INI)
        os.replace(tmp, path)
    return path


def _has_pytest_section(path: Path) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".toml":
        return "[tool.pytest.ini_options]" in text
    return "[pytest]" in text or "[tool:pytest]" in text


def _files_that_failed_to_collect(round_: Round, targets: list[Path], rootdir: Path) -> set[str]:
    bad = {f for f in round_.collect_errors if f.endswith(".py")}
    if round_.collecting:
        bad.add(round_.collecting)
    if not round_.items:  # pytest never got as far as listing tests: read every target from source
        bad |= {t.relative_to(rootdir).as_posix() for t in targets if t.is_file()}
    return bad


def _in_stable_order(expected: list[Expected], items: list[dict]) -> list[Expected]:
    # Files in path order, tests in the order pytest collects them (source order), source-read ones after.
    rank = {item["id"]: i for i, item in enumerate(items)}
    return sorted(expected, key=lambda e: (e.file, rank.get(e.id, len(rank)), e.id))


def _settle(round_: Round, expected: list[Expected], outcomes: dict[str, Outcome]) -> dict[str, Outcome]:
    """Fold one round's reports into the outcomes so far (earlier rounds win)."""
    outcomes = dict(outcomes)
    for test_id, outcome in round_.outcomes.items():
        outcomes.setdefault(test_id, outcome)
    for e in expected:
        if e.id in outcomes:
            continue
        if e.id.endswith("[*]"):  # read from source: all of its cases must pass (or a share each, when split)
            cases = [o for i, o in round_.outcomes.items() if i.startswith(e.id[:-3] + "[")]
            if cases:
                failed = [o for o in cases if o.status != "passed"]
                fraction = (len(cases) - len(failed)) / len(cases) if e.partial else None
                outcomes[e.id] = (Outcome(failed[0].status, failed[0].message, failed[0].feedback, fraction)
                                  if failed else Outcome("passed"))
                continue
        error = round_.collect_errors.get(e.file)
        if error is not None:
            message = f"cannot import the test module: {error.get('message', '')}"
            outcomes[e.id] = Outcome("failed", message, message + "\n\n" + str(error.get("feedback", "")))
    if round_.in_progress is not None and round_.in_progress not in outcomes:
        outcomes[round_.in_progress] = Outcome("failed", *_death_notice(round_), timeout=round_.killed)
        if round_.tampered:
            outcomes[round_.in_progress] = Outcome("failed", HARNESS_MESSAGE, HARNESS_MESSAGE)
    if round_.collecting is not None:
        message, output = _death_notice(round_, during="the import")
        for e in expected:
            if e.file == round_.collecting and e.id not in outcomes:
                outcomes[e.id] = Outcome("failed", "cannot import the test module: " + message, output)
    return outcomes


def _death_notice(round_: Round, during: str = "this test") -> tuple[str, str]:
    if round_.out_of_time:
        text = "not finished: the submission's time limit ran out during " + during
        return text, text
    if round_.killed:
        text = "timed out (killed by the grader's watchdog)"
        return text, text
    text = f"the test process ended during {during} (exit code {round_.returncode}: sys.exit/os._exit or a crash)"
    return text, text + "\n" + _tail(round_.output, 300)


def _unsettled(expected: list[Expected], outcomes: dict[str, Outcome]) -> bool:
    return any(e.id not in outcomes for e in expected)


def _not_run(e: Expected, rounds: list[Round], settings: Settings) -> Outcome:
    if any(r.out_of_time for r in rounds):
        text = f"not run: the submission's time limit of {settings.time_limit:g} s ran out"
        return Outcome("failed", text, text)
    if any(r.tampered for r in rounds):
        return Outcome("failed", HARNESS_MESSAGE, HARNESS_MESSAGE)
    last = rounds[-1] if rounds else Round()
    if not any(r.items for r in rounds):
        return Outcome("failed", f"pytest did not start (exit code {last.returncode})",
                       f"pytest did not start (exit code {last.returncode})\n" + _tail(last.output, 400))
    return Outcome("failed", "not run (not collected from this submission)", "not run (not collected from this "
                                                                             "submission)")


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    return "...\n" + cut[cut.find("\n") + 1:] if "\n" in cut else "..." + cut


# ---- reporting ----

def results_json(graded: list[Graded], seconds: float, notes: list[str], settings: Settings | None = None) -> dict:
    """Gradescope's results.json (tests/gradescope_results.schema.json): what students see leaves hidden tests out,
    and a hidden test's own output says passed or failed only."""
    settings = settings or Settings()
    numbers = _numbers(graded)
    tests = []
    for g, number in zip(graded, numbers):
        hidden = g.expected.visibility == "hidden"
        output = g.outcome.status if hidden else (g.outcome.feedback or g.outcome.message or g.outcome.status)
        if g.expected.partial and g.outcome.status != "passed" and g.outcome.fraction is not None and not hidden:
            output += f"\n(partial credit: {_num(g.score)} of {_num(g.expected.points)} points)"
        tests.append({
            "name": g.expected.id,
            "number": number,
            "score": g.score,
            "max_score": g.expected.points,
            "status": g.outcome.status,
            "output": output,
            "output_format": "text",
            "visibility": g.expected.visibility,
        })
    return {
        "score": round(sum(g.score for g in graded), 4),
        "max_score": sum(g.expected.points for g in graded),
        "execution_time": round(seconds, 2),
        "output": table(graded, include_hidden=False) + ("\n" + "\n".join(notes) if notes else ""),
        "output_format": "text",
        "test_output_format": "text",
        "stdout_visibility": "hidden",  # the instructor's table on stdout names the hidden tests
        "visibility": "visible",
        "extra_data": {"timeout_per_test_s": settings.timeout, "time_limit_s": settings.time_limit,
                       "seed": settings.seed},
        "tests": tests,
    }


def refusal_json(message: str, seconds: float, settings: Settings | None = None) -> dict:
    settings = settings or Settings()
    return {"score": 0, "execution_time": round(seconds, 2), "output": "not graded: " + message,
            "output_format": "text", "stdout_visibility": "hidden", "visibility": "visible",
            "extra_data": {"refused": True, "timeout_per_test_s": settings.timeout,
                           "time_limit_s": settings.time_limit, "seed": settings.seed},
            "tests": []}


def _numbers(graded: list[Graded]) -> list[str]:
    chapters: list[str] = []
    counts: dict[str, int] = {}
    numbers = []
    for g in graded:
        chapter = g.expected.chapter
        if chapter not in counts:
            chapters.append(chapter)
            counts[chapter] = 0
        counts[chapter] += 1
        numbers.append(f"{chapters.index(chapter) + 1}.{counts[chapter]}")
    return numbers


def table(graded: list[Graded], include_hidden: bool = True) -> str:
    """Points per chapter and the failing tests; without hidden tests for what students see."""
    shown = [g for g in graded if include_hidden or g.expected.visibility != "hidden"]
    by_chapter: dict[str, list[Graded]] = {}
    for g in shown:
        by_chapter.setdefault(g.expected.chapter, []).append(g)
    width = max([len(c) for c in by_chapter] + [len("chapter")])
    lines = [f"{'chapter':<{width}}  {'points':>11}  tests passed"]
    for chapter, rows in by_chapter.items():
        earned, possible = sum(g.score for g in rows), sum(g.expected.points for g in rows)
        passed = sum(g.outcome.status == "passed" for g in rows)
        lines.append(f"{chapter:<{width}}  {_num(earned):>5} / {_num(possible):<3}  {passed}/{len(rows)}")
        for g in rows:
            if g.outcome.status != "passed":
                name = g.expected.id.split("::", 1)[-1]
                hidden = " [hidden]" if g.expected.visibility == "hidden" else ""
                lines.append(f"    FAIL {name}{hidden} ({_num(g.score)}/{_num(g.expected.points)} pt): "
                             f"{g.outcome.message}")
    total, possible = sum(g.score for g in shown), sum(g.expected.points for g in shown)
    lines.append(f"{'TOTAL':<{width}}  {_num(total):>5} / {_num(possible):<3}")
    if len(shown) < len(graded):
        lines.append(f"(and {len(graded) - len(shown)} hidden test(s), not shown)")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:.4g}" if x != int(x) else f"{x:g}"


# ---- command line ----

def resolve_selection(paths: list[str], tests_dir: Path) -> list[Path]:
    """Chapter names (ch01_house_price, ch01, chapters/ch01_house_price) or test files -> the chapters' test files."""
    known = sorted({chapter_of(p.name) for p in tests_dir.glob("test_ch*.py") if CHAPTER_DIR.match(chapter_of(p.name))})
    root_known = chapters_in(tests_dir.parent)
    known = sorted({c for c in root_known if chapter_test_files(tests_dir, c)} or known)
    return [p.resolve() for c in resolve_chapters(paths, tests_dir, known) for p in chapter_test_files(tests_dir, c)]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds from 0 to {MAX_SECONDS:g}")
    return value


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m common.grading.grade",
        description="Run an assignment's graded tests, print points per chapter, write a Gradescope results.json.",
    )
    p.add_argument("paths", nargs="*", help="chapters of the assignment (same as --chapters)")
    p.add_argument("--chapters", nargs="+", default=None,
                   help="the assignment: chapters whose tests count (default: every chapter of the starter, "
                        "else of the tests' repository)")
    p.add_argument("--json", type=Path, default=Path("runs") / "grade" / "results.json",
                   help="where to write the results (default: runs/grade/results.json)")
    p.add_argument("--submission", type=Path, default=None,
                   help="the code to grade (default: the current folder if it has tests/, else this repository)")
    p.add_argument("--tests", type=Path, default=None,
                   help="the instructor's tests folder; the submission's own tests are then ignored")
    p.add_argument("--starter", type=Path, default=None,
                   help="a clean student version (python -m common.grading.assign export): only the submission's "
                        "chapters/ files are laid over a copy of it, the rest of the submission is ignored")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                   help=f"seconds per test, 0 for no per-test limit (default: {DEFAULT_TIMEOUT:g})")
    p.add_argument("--time-limit", type=_seconds, default=DEFAULT_TIME_LIMIT,
                   help=f"seconds for the whole submission (default: {DEFAULT_TIME_LIMIT:g})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed set before every test (default: {DEFAULT_SEED})")
    p.add_argument("--user", default=None,
                   help="as root: run student code as this existing user (default: a fresh uid per run)")
    p.add_argument("--quiet", action="store_true",
                   help="print nothing (usage errors aside); the results are in --json and the exit status")
    return p


def _check_json_path(parser, path: Path) -> None:
    if path.is_dir():
        parser.error(f"--json {path} is a folder; give a file name, e.g. {path / 'results.json'}")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".results-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        parser.error(f"--json {path}: cannot write in {parent} ({e.strerror or e}); choose a writable folder")


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser()
    args = parser.parse_args(argv)
    started = time.monotonic()
    submission = args.submission or _default_submission()
    if not submission.is_dir():
        parser.error(f"--submission {submission} is not a folder")
    if args.starter is not None and not (args.starter / "chapters").is_dir():
        parser.error(f"--starter {args.starter} has no chapters/ folder "
                     "(make one: python -m common.grading.assign export)")
    tests_dir = args.tests or (args.starter or submission) / "tests"
    if not tests_dir.is_dir():
        parser.error(f"no tests folder at {tests_dir}")
    if args.user is not None:
        try:
            pwd.getpwnam(args.user)
        except KeyError:
            parser.error(f"--user {args.user}: no such user")
    _check_json_path(parser, args.json)
    settings = Settings(args.timeout, args.time_limit, args.seed, args.user)
    chapters = (args.chapters or []) + args.paths
    try:
        known = known_chapters(tests_dir.resolve(), args.starter, submission)
        chapters = resolve_chapters(chapters, tests_dir.resolve(), known) if chapters else None
    except ValueError as e:
        parser.error(str(e))
    notes: list[str] = []
    try:
        graded, notes = grade(submission, args.tests, starter=args.starter, chapters=chapters, timeout=args.timeout,
                              time_limit=args.time_limit, seed=args.seed, user=args.user)
        text = table(graded)
        result = results_json(graded, time.monotonic() - started, notes, settings)
    except NotASubmission as e:
        text = f"not graded: {e}"
        result = refusal_json(str(e), time.monotonic() - started, settings)
        _say(args, text, file=sys.stderr)
    except Exception as e:  # the grader's own failure still leaves a results.json behind
        text = f"grading failed: {type(e).__name__}: {e}"
        result = refusal_json(text, time.monotonic() - started, settings)
        result["extra_data"]["refused"] = False
        result["extra_data"]["grader_error"] = True
        _say(args, text, file=sys.stderr)
    write_json(args.json, result)
    for line in [text, *notes, f"wrote {args.json}"]:
        _say(args, line)
    return result


def _say(args, text: str, file=None) -> None:
    if not args.quiet:
        print(text, file=file)


def exit_status(result: dict) -> int:
    """0 when graded, 1 when the submission was refused or the grader failed."""
    extra = result.get("extra_data", {})
    return 1 if extra.get("refused") or extra.get("grader_error") else 0


def _default_submission() -> Path:
    here = Path.cwd()
    return here if (here / "tests").is_dir() else GRADER_REPO


if __name__ == "__main__":
    sys.exit(exit_status(main()))
