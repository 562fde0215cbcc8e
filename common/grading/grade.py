"""Grade the course's tests: points per chapter, and a Gradescope `results.json`.

    python -m common.grading.grade                                  # every test file in tests/
    python -m common.grading.grade ch01_house_price ch02            # chosen chapters (or test files / folders)
    python -m common.grading.grade --submission SUB --tests TESTS --json /autograder/results/results.json
    python -m common.grading.grade --submission SUB --starter STUDENT_VERSION --tests TESTS   # only SUB's chapters/ count

What counts: every test with a `@pytest.mark.points(n)` marker, except those in a test module that sets
`GRADED = False` at module level (the course tooling's own tests do). `@pytest.mark.visibility("hidden" |
"after_due_date" | "visible")` is copied into the JSON.

With `--tests DIR` the instructor's tests in DIR run against the code in SUB (SUB first on the import path, and the
working folder); the tests shipped inside SUB are never run. The list of graded tests and their points comes from
collecting DIR against its own repository (DIR's parent, the reference solution), so a submission that breaks
collection still gets 0 out of the full total.

Student code is hostile by accident and sometimes on purpose, so:
- it runs in a child pytest process (its own session, killed as a group when done), never in this one;
- the `chapters` package is imported from the submission only: an installed copy of the course (pip install -e)
  cannot fill in a chapter the submission lacks;
- each test has a time limit (`--timeout`): a timer in the child fails the test, and if the child does not respond
  a watchdog here kills it; the test in progress scores 0 and the rest are run in a fresh child;
- a test module that fails to import (syntax error, crash at import) scores its tests 0 and the rest still run;
- `sys.exit()` in a test fails that test; `os._exit()` or a crash ends the child, the test in progress scores 0 and
  the rest are run in a fresh child;
- the child only reports outcomes, through a private file with a per-run nonce (see common/grading/_pytest_points.py);
  points are summed here, and a test that does not report exactly once, in order, scores 0;
- the JSON is always written, also when pytest cannot start (then every test scores 0, with pytest's output).
It is not a sandbox. These defences stop accidents and casual forgery (writing a results.json, printing or writing
fake report lines, editing tests); code written to forge a pass from inside the test process (say, calling the
reporting plugin and then ending the process) can still succeed, as can code that kills this process. Run untrusted
submissions in a container (Gradescope does), with the reference tests outside the submission.
Runs are seeded (PYTHONHASHSEED=0, and random / numpy / paddle seeded before each test), so a local pass is a
grader pass.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.grading.assign import source_files
from common.grading.notebooks import use_submitted_notebooks
from common.files import write_json

PLUGIN_SOURCE = Path(__file__).with_name("_pytest_points.py")
DEFAULT_TIMEOUT = 60.0
WATCHDOG_GRACE = 5.0  # seconds past the timeout before the watchdog kills a child that ignores its own timer
STARTUP_ALLOWANCE = 60.0  # seconds for pytest to start (and import conftest) before its first report
DEFAULT_SEED = 2024
STUDENT_PACKAGES = ("chapters",)  # imported only from the submission (see SubmissionOnly in _pytest_points.py)
MARKERS_INI = """[pytest]
markers =
    points(n): points this graded test is worth
    visibility(v): visible | hidden | after_due_date
"""


@dataclass
class Expected:
    """A graded test: its pytest node id and what it is worth."""

    id: str
    points: float
    visibility: str = "visible"

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
    output: str = ""  # longer, for the JSON


@dataclass
class Round:
    """What one child pytest process reported."""

    items: list[dict] = field(default_factory=list)
    collect_errors: dict[str, dict] = field(default_factory=dict)  # file -> event
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    in_progress: str | None = None  # test id started and not ended
    collecting: str | None = None  # module whose import started and did not end
    finished: bool = False  # pytest reached the end of its session
    killed: bool = False
    returncode: int | None = None
    output: str = ""
    ignored: int = 0  # records that failed the nonce or order checks


def chapter_of(test_file: str) -> str:
    stem = Path(test_file).stem
    return stem[len("test_"):] if stem.startswith("test_") else stem


# ---- the child pytest process ----

class Child:
    """Runs pytest with the reporting plugin in a private temporary folder."""

    def __init__(self, workdir: Path, tests_dir: Path, timeout: float, seed: int):
        self.workdir = workdir
        self.tests_dir = tests_dir
        self.rootdir = tests_dir.parent
        self.timeout = timeout
        self.seed = seed
        # A module name no submission ships, so the submission's own copy of the plugin is never the one loaded.
        self.plugin = f"_course_grade_plugin_{secrets.token_hex(4)}"
        plugin_dir = workdir / "plugin"
        plugin_dir.mkdir()
        shutil.copyfile(PLUGIN_SOURCE, plugin_dir / f"{self.plugin}.py")
        self.plugin_dir = plugin_dir
        self.ini = self._ini_file()
        self.runs = 0

    def _ini_file(self) -> Path:
        # The tests' own configuration (markers, filterwarnings) when the tests come with one, never the
        # submission's: its addopts could deselect or re-plug things.
        for name in ("pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"):
            candidate = self.rootdir / name
            if candidate.is_file() and _has_pytest_section(candidate):
                return candidate
        ini = self.workdir / "pytest.ini"
        ini.write_text(MARKERS_INI, encoding="utf-8")
        return ini

    def run(self, code_dir: Path, targets: list[Path], *, collect_only: bool = False, skip=()) -> Round:
        self.runs += 1
        tag = f"{self.runs:03d}"
        report = self.workdir / f"report-{tag}.jsonl"
        report.touch()
        log = self.workdir / f"output-{tag}.txt"
        skip_file = self.workdir / f"skip-{tag}.json"
        skip_file.write_text(json.dumps(sorted(skip)), encoding="utf-8")
        nonce = secrets.token_hex(16)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COURSE_GRADE_"))}
        env.update(
            PYTHONPATH=os.pathsep.join([str(self.plugin_dir), str(code_dir)] + _split(os.environ.get("PYTHONPATH"))),
            PYTHONHASHSEED="0",
            PYTHONDONTWRITEBYTECODE="1",
            PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",  # the same plugins everywhere: only pytest's own and ours
            COURSE_GRADE_REPORT=str(report),
            COURSE_GRADE_NONCE=nonce,
            COURSE_GRADE_SKIP=str(skip_file),
            COURSE_GRADE_TIMEOUT=str(self.timeout),
            COURSE_GRADE_SEED=str(self.seed),
            COURSE_GRADE_CODE=str(code_dir),
            COURSE_GRADE_PACKAGES=",".join(STUDENT_PACKAGES),
        )
        cmd = [
            sys.executable, "-m", "pytest", "-p", self.plugin, "-p", "no:cacheprovider",
            "-c", str(self.ini), "--rootdir", str(self.rootdir), "--confcutdir", str(self.tests_dir),
            "--continue-on-collection-errors", "-q", "--color=no", "-p", "no:randomly",
        ]
        cmd += ["--collect-only"] if collect_only else []
        cmd += [str(t) for t in targets]
        result = Round()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=code_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=(os.name == "posix"),
            )
            reader = _ReportReader(report, nonce, result)
            # Before the first report pytest is starting up (conftest may import Paddle): allow it a minute.
            limit = max(self.timeout + min(WATCHDOG_GRACE, max(0.5, self.timeout)), STARTUP_ALLOWANCE)
            last_event = time.monotonic()
            while True:
                try:
                    result.returncode = proc.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if reader.read():
                    last_event = time.monotonic()
                    limit = self.timeout + min(WATCHDOG_GRACE, max(0.5, self.timeout))
                elif self.timeout > 0 and time.monotonic() - last_event > limit:
                    result.killed = True
                    _kill_group(proc)
                    result.returncode = proc.wait()
                    break
            _kill_group(proc)  # whatever the tests left running in the background
            reader.read()
        result.output = log.read_text(encoding="utf-8", errors="replace")
        return result


def _has_pytest_section(path: Path) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".toml":
        return "[tool.pytest.ini_options]" in text
    return "[pytest]" in text or "[tool:pytest]" in text


def _split(pythonpath: str | None) -> list[str]:
    return [p for p in (pythonpath or "").split(os.pathsep) if p]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        elif proc.poll() is None:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


class _ReportReader:
    """Reads the plugin's JSON lines as they arrive and keeps only those that carry the nonce, in order."""

    def __init__(self, path: Path, nonce: str, result: Round):
        self.path, self.nonce, self.result = path, nonce, result
        self.offset = 0
        self.pending = b""

    def read(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()
        for line in lines:
            self._take(line)
        return bool(lines)

    def _take(self, line: bytes) -> None:
        r = self.result
        try:
            event = json.loads(line)
            assert isinstance(event, dict) and event.get("n") == self.nonce
        except (ValueError, AssertionError):
            r.ignored += 1
            return
        kind, test_id = event.get("ev"), str(event.get("id", ""))
        if kind == "item":
            r.items.append(event)
        elif kind == "collect_start":
            r.collecting = test_id
        elif kind == "collect_end":
            r.collecting = None
        elif kind == "collect_error":
            r.collect_errors[test_id] = event
        elif kind == "start":
            r.in_progress = test_id
        elif kind == "end" and test_id in r.outcomes:  # only something besides the plugin writes a second one
            r.outcomes[test_id] = Outcome("failed", "reported more than once: something in the test process wrote "
                                                    "to the grader's report")
        elif kind == "end" and test_id == r.in_progress:
            r.in_progress = None
            status = "passed" if event.get("status") == "passed" else "failed"
            r.outcomes[test_id] = Outcome(status, str(event.get("message", "")), str(event.get("output", "")))
        elif kind == "session_end":
            r.finished = True
        else:
            r.ignored += 1


# ---- which tests count ----

def expected_from_items(items: list[dict]) -> list[Expected]:
    expected, seen = [], set()
    for item in items:
        if item["id"] in seen or item.get("points") is None or not item.get("graded", True):
            continue
        seen.add(item["id"])
        expected.append(Expected(item["id"], item["points"], item.get("visibility", "visible")))
    return expected


def expected_from_source(test_file: Path, rootdir: Path) -> list[Expected]:
    """The graded tests of a file that cannot be collected, read from its source without importing it.

    A parametrized test becomes one entry `file::test[*]` worth points x cases when its cases are a literal list,
    else points x 1.
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
        points, visibility, cases = None, "visible", 1
        for mark in marks:
            name, args = _mark_call(mark)
            if name == "points" and args and points is None:
                points = _literal(args[0])
            elif name == "visibility" and args and visibility == "visible":
                visibility = str(_literal(args[0]) or "visible")
            elif name == "parametrize" and len(args) >= 2:
                values = args[1]
                if isinstance(values, (ast.List, ast.Tuple)):
                    cases *= max(len(values.elts), 1)
                    test_id = test_id if test_id.endswith("[*]") else test_id + "[*]"
        if isinstance(points, (int, float)) and not isinstance(points, bool):
            expected.append(Expected(test_id, points * cases, visibility))
    return expected


def _mark_call(node: ast.expr) -> tuple[str | None, list[ast.expr]]:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr, list(node.args)
    return None, []


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
        return self.expected.points if self.outcome.status == "passed" else 0


def grade(
    submission: Path,
    tests_dir: Path | None = None,
    selection: list[Path] | None = None,
    *,
    starter: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    seed: int = DEFAULT_SEED,
) -> tuple[list[Graded], list[str]]:
    """Run the graded tests and return (per-test results in a stable order, notes about the run).

    submission: the code under test. tests_dir: the instructor's tests (default: the starter's, else the
    submission's own tests/). When the tests come from outside the submission, the list of graded tests comes from
    collecting them against their own repository (tests_dir's parent), not against the submission.
    starter: a clean student version; only the submission's chapters/ files are laid over a copy of it.
    """
    submission = submission.resolve()
    separate_tests = tests_dir is not None or starter is not None
    tests_dir = (tests_dir or (starter or submission) / "tests").resolve()
    targets = [p.resolve() for p in (selection or [tests_dir])]
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        if starter is not None:
            taken = overlay(starter.resolve(), submission, Path(tmp) / "code")
            notes.append(f"graded the starter {starter} with {taken} file(s) from the submission's chapters/"
                         + ("" if taken else " (it has no chapters/ folder, nor one a level down)"))
            submission = Path(tmp) / "code"
            notes += use_submitted_notebooks(starter.resolve(), submission)  # a submitted X.ipynb stands for X.py
        child = Child(Path(tmp), tests_dir, timeout, seed)
        reference = child.run(tests_dir.parent, targets, collect_only=True) if separate_tests else None
        rounds = [child.run(submission, targets)]
        # A child that died while importing a test module lists no tests: run again without that module.
        while reference is None and not rounds[-1].items and rounds[-1].collecting and len(rounds) < 5:
            rounds.append(child.run(submission, targets, skip=_failed_files(rounds)))
        source = reference or next((r for r in rounds if r.items), rounds[-1])
        expected = expected_from_items(source.items)
        broken = _files_that_failed_to_collect(source, targets, child.rootdir) | _failed_files(rounds)
        known = {e.id for e in expected}
        for bad_file in sorted(broken):
            expected += [e for e in expected_from_source(child.rootdir / bad_file, child.rootdir) if e.id not in known]
        expected = _in_stable_order(expected, source.items)
        if reference is not None and not reference.items:
            notes.append("the instructor's tests could not be collected:\n" + _tail(reference.output, 2000))
        outcomes: dict[str, Outcome] = {}
        for round_ in rounds:
            outcomes = _settle(round_, expected, outcomes)
        # A child that died or was killed mid-way: the test (or module) in progress is blamed; run the rest again.
        while not rounds[-1].finished and _unsettled(expected, outcomes) and len(rounds) <= len(expected) + 5:
            last = rounds[-1]
            if last.in_progress is None and last.collecting is None and not last.outcomes:
                break  # no progress: pytest itself does not start
            rounds.append(child.run(submission, targets, skip=set(outcomes) | _failed_files(rounds)))
            outcomes = _settle(rounds[-1], expected, outcomes)
        ignored = sum(r.ignored for r in rounds)
        if ignored:
            notes.append(f"ignored {ignored} report line(s) without the run's nonce or out of order")
        graded = [Graded(e, outcomes.get(e.id) or _not_run(e, rounds)) for e in expected]
    return graded, notes


def overlay(starter: Path, submission: Path, dest: Path) -> int:
    """Copy the starter to dest, then the submission's chapters/ files over it; return how many were taken.

    Everything else in the submission (tests, common/, config) is ignored, and a submission of just the chapter
    files works.
    """
    for rel in source_files(starter):  # the export's rules for what a copy of the repository leaves out
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(starter / rel, dest / rel)
    taken = 0
    # An upload is the repository, or a zip of it with one folder on top.
    found = [submission / "chapters"] if (submission / "chapters").is_dir() else list(submission.glob("*/chapters"))
    if len(found) != 1:
        return 0
    for path in sorted(found[0].rglob("*")):
        rel = path.relative_to(found[0].parent)
        if path.is_file() and not path.is_symlink() and "__pycache__" not in rel.parts:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)
            taken += 1
    return taken


def _files_that_failed_to_collect(round_: Round, targets: list[Path], rootdir: Path) -> set[str]:
    bad = {f for f in round_.collect_errors if f.endswith(".py")}
    if round_.collecting:
        bad.add(round_.collecting)
    if not round_.items:  # pytest never got as far as listing tests: read every target from source
        for target in targets:
            files = [target] if target.is_file() else sorted(target.rglob("test_*.py"))
            bad |= {f.relative_to(rootdir).as_posix() for f in files}
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
        if e.id.endswith("[*]"):  # read from source: all of its cases must pass
            cases = [o for i, o in round_.outcomes.items() if i.startswith(e.id[:-3] + "[")]
            if cases:
                failed = [o for o in cases if o.status != "passed"]
                outcomes[e.id] = failed[0] if failed else Outcome("passed")
                continue
        error = round_.collect_errors.get(e.file)
        if error is not None:
            outcomes[e.id] = Outcome("failed", f"cannot import the test module: {error.get('message', '')}",
                                     str(error.get("output", "")))
    if round_.in_progress is not None and round_.in_progress not in outcomes:
        outcomes[round_.in_progress] = Outcome("failed", *_death_notice(round_))
    if round_.collecting is not None:
        message, output = _death_notice(round_, during="the import")
        for e in expected:
            if e.file == round_.collecting and e.id not in outcomes:
                outcomes[e.id] = Outcome("failed", "cannot import the test module: " + message, output)
    return outcomes


def _death_notice(round_: Round, during: str = "this test") -> tuple[str, str]:
    if round_.killed:
        return "timed out (killed by the grader's watchdog)", _tail(round_.output, 2000)
    return (f"the test process ended during {during} (exit code {round_.returncode}: sys.exit/os._exit or a crash)",
            _tail(round_.output, 2000))


def _unsettled(expected: list[Expected], outcomes: dict[str, Outcome]) -> bool:
    return any(e.id not in outcomes for e in expected)


def _failed_files(rounds: list[Round]) -> set[str]:
    return {r.collecting for r in rounds if r.collecting}


def _not_run(e: Expected, rounds: list[Round]) -> Outcome:
    last = rounds[-1]
    if not any(r.items for r in rounds):
        return Outcome("failed", f"pytest did not start (exit code {last.returncode})", _tail(last.output, 3000))
    return Outcome("failed", "not run (not collected from this submission)", "")


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


# ---- reporting ----

def results_json(graded: list[Graded], seconds: float, notes: list[str]) -> dict:
    """The Gradescope results.json schema; its top-level output (shown to students) leaves hidden tests out."""
    numbers = _numbers(graded)
    tests = []
    for g, number in zip(graded, numbers):
        output = g.outcome.message + ("\n\n" + g.outcome.output if g.outcome.output else "")
        tests.append({
            "name": g.expected.id,
            "number": number,
            "score": g.score,
            "max_score": g.expected.points,
            "status": g.outcome.status,
            "output": output,
            "visibility": g.expected.visibility,
        })
    return {
        "score": sum(g.score for g in graded),
        "max_score": sum(g.expected.points for g in graded),
        "execution_time": round(seconds, 2),
        "output": table(graded, include_hidden=False) + ("\n" + "\n".join(notes) if notes else ""),
        "tests": tests,
    }


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
                lines.append(f"    FAIL {name}{hidden} ({_num(g.expected.points)} pt): {g.outcome.message}")
    total, possible = sum(g.score for g in shown), sum(g.expected.points for g in shown)
    lines.append(f"{'TOTAL':<{width}}  {_num(total):>5} / {_num(possible):<3}")
    if len(shown) < len(graded):
        lines.append(f"(and {len(graded) - len(shown)} hidden test(s), not shown)")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:g}"


# ---- command line ----

def resolve_selection(paths: list[str], tests_dir: Path) -> list[Path]:
    """Chapter names (ch01_house_price, ch01, chapters/ch01_house_price) or test files / folders -> test paths."""
    chosen = []
    for text in paths:
        as_path = Path(text)
        for candidate in (as_path, tests_dir / as_path, tests_dir.parent / as_path):
            if candidate.exists() and _inside(candidate.resolve(), tests_dir.resolve()):
                chosen.append(candidate.resolve())
                break
        else:
            name = as_path.name.removesuffix(".py").removeprefix("test_")
            matches = sorted(tests_dir.glob(f"test_{name}.py")) or sorted(tests_dir.glob(f"test_{name}*.py"))
            if len(matches) != 1:
                available = ", ".join(chapter_of(p.name) for p in sorted(tests_dir.glob("test_*.py")))
                what = "matches several test files" if matches else "matches no test file"
                raise ValueError(f"{text!r} {what} in {tests_dir}; choose from: {available}")
            chosen.append(matches[0].resolve())
    return chosen


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m common.grading.grade",
        description="Run the graded tests, print points per chapter, write a Gradescope results.json.",
    )
    p.add_argument("paths", nargs="*", help="chapters (ch01_house_price, ch01) or test files/folders; default: all")
    p.add_argument("--json", type=Path, default=Path("runs") / "grade" / "results.json",
                   help="where to write the results (default: runs/grade/results.json)")
    p.add_argument("--submission", type=Path, default=None,
                   help="the code to grade (default: the current folder if it has tests/, else this repository)")
    p.add_argument("--tests", type=Path, default=None,
                   help="the instructor's tests folder; the submission's own tests are then ignored")
    p.add_argument("--starter", type=Path, default=None,
                   help="a clean student version (python -m common.grading.assign export): only the submission's chapters/ "
                        "files are laid over a copy of it, the rest of the submission is ignored")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds per test, 0 for no limit (default: {DEFAULT_TIMEOUT:g})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed set before every test (default: {DEFAULT_SEED})")
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser()
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        submission = args.submission or _default_submission()
        if not submission.is_dir():
            parser.error(f"--submission {submission} is not a folder")
        if args.starter is not None and not (args.starter / "chapters").is_dir():
            parser.error(f"--starter {args.starter} has no chapters/ folder (make one: python -m common.grading.assign export)")
        tests_dir = args.tests or (args.starter or submission) / "tests"
        if not tests_dir.is_dir():
            parser.error(f"no tests folder at {tests_dir}")
        if args.timeout < 0:
            parser.error("--timeout must be >= 0")
        try:
            selection = resolve_selection(args.paths, tests_dir) if args.paths else None
        except ValueError as e:
            parser.error(str(e))
        graded, notes = grade(submission, args.tests, selection, starter=args.starter, timeout=args.timeout,
                              seed=args.seed)
        text = table(graded)
        result = results_json(graded, time.monotonic() - started, notes)
    except SystemExit:
        raise
    except Exception as e:  # the grader's own failure still leaves a results.json behind
        text = f"grading failed: {type(e).__name__}: {e}"
        notes = []
        result = {"score": 0, "max_score": 0, "execution_time": round(time.monotonic() - started, 2),
                  "output": text, "tests": []}
        print(text, file=sys.stderr)
    write_json(args.json, result)
    print(text)
    for note in notes:
        print(note)
    print(f"wrote {args.json}")
    return result


def _default_submission() -> Path:
    here = Path.cwd()
    return here if (here / "tests").is_dir() else Path(__file__).resolve().parents[2]


if __name__ == "__main__":
    main()
