"""The student-version export (common/grading/assign.py) on small fake repositories made here, plus one export of
this repository.

Round trip: the exported code parses, its tests fail on the TODO parts, the reference scores full marks. What is
copied: in a git checkout only tracked files, elsewhere only the allowlist; never the instructor's tools. The student
copy's pytest tests the copy's code even where the reference is importable. The fake repositories use this
repository's own pyproject.toml, so its pytest settings are the ones tested.
"""
import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from common.grading import assign, grade
from tests.background import Jobs

GRADED = False  # the course tooling's own tests are not part of a student's grade (see common/grading/grade.py)
pytestmark = pytest.mark.points(1)
REPO = Path(__file__).resolve().parent.parent

MODEL = '''
    """A fake chapter with the three kinds of exercise."""
    import math


    class Line:
        def __init__(self, w, b):
            self.w, self.b = w, b

        def forward(self, x):
            """x: list of floats -> list of floats"""
            # BEGIN SOLUTION
            # PROMPT: y = w x + b for every x
            return [self.w * v + self.b for v in x]
            # END SOLUTION


    def mse_gradient(w, b, xs, ys):
        """d/dw and d/db of the mean squared error."""
        # BEGIN SOLUTION
        n = len(xs)
        errors = [w * x + b - y for x, y in zip(xs, ys)]
        dw = 2 * sum(e * x for e, x in zip(errors, xs)) / n
        db = 2 * sum(errors) / n
        # END SOLUTION
        return dw, db


    def conv_output_size(size, kernel, stride=1, padding=0):
        out = (size + 2 * padding - kernel) // stride + 1  # SOLUTION
        return out


    MARKER_TEXT = "# BEGIN SOLUTION inside a string is not a marker"
    '''

TESTS = '''
    import pytest
    from chapters.ch01_fake.model import Line, mse_gradient, conv_output_size


    @pytest.mark.points(2)
    def test_forward():
        assert Line(2.0, 1.0).forward([0.0, 1.0]) == [1.0, 3.0]


    @pytest.mark.points(3)
    def test_gradient_against_finite_differences():
        xs, ys, w, b, eps = [1.0, 2.0, 3.0], [2.0, 3.0, 5.0], 0.5, 0.1, 1e-6
        loss = lambda w, b: sum((w * x + b - y) ** 2 for x, y in zip(xs, ys)) / len(xs)
        dw, db = mse_gradient(w, b, xs, ys)
        assert abs(dw - (loss(w + eps, b) - loss(w - eps, b)) / (2 * eps)) < 1e-5
        assert abs(db - (loss(w, b + eps) - loss(w, b - eps)) / (2 * eps)) < 1e-5


    @pytest.mark.points(1)
    def test_conv_output_size():
        assert conv_output_size(28, 5) == 24 and conv_output_size(28, 3, stride=2, padding=1) == 14


    @pytest.mark.points(2)
    @pytest.mark.visibility("hidden")
    def test_conv_output_size_hidden_case():
        assert conv_output_size(7, 7) == 1
    '''

OTHER_MODEL = '''
    def answer():
        return 42  # SOLUTION


    def question():
        return "six by nine"
    '''

OTHER_TESTS = '''
    import pytest
    from chapters.ch02_other.model import answer, question


    @pytest.mark.points(1)
    def test_answer():
        assert answer() == 42


    @pytest.mark.points(2)
    def test_question_needs_no_work():  # given code: an untouched copy already earns these 2 points
        assert question() == "six by nine"
    '''

TOOL_TEST = "import pytest\n\nGRADED = False\n\n\n@pytest.mark.points(1)\ndef test_tool():\n    assert True\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path)


def make_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root / "README.md", "# fake course\n")
    shutil.copyfile(REPO / "pyproject.toml", root / "pyproject.toml")  # this repository's pytest settings
    shutil.copyfile(REPO / ".gitignore", root / ".gitignore")
    write(root / "chapters" / "__init__.py", "")
    write(root / "chapters" / "ch01_fake" / "__init__.py", "")
    write(root / "chapters" / "ch01_fake" / "model.py", MODEL)
    write(root / "chapters" / "ch01_fake" / "README.md", "# chapter 1\n")
    write(root / "chapters" / "ch02_other" / "__init__.py", "")
    write(root / "chapters" / "ch02_other" / "model.py", OTHER_MODEL)
    write(root / "common" / "__init__.py", "")
    write(root / "common" / "files.py", "def write():\n    pass\n")
    write(root / "common" / "grading" / "__init__.py", "")
    write(root / "common" / "grading" / "partial_credit.py", "def partial_credit():\n    pass\n")  # conftest uses it
    write(root / "tests" / "test_ch01_fake.py", TESTS)
    write(root / "tests" / "test_ch02_other.py", OTHER_TESTS)
    write(root / "tests" / "test_ch02_speed.py", "def test_speed():\n    pass\n")  # chapter 2's by its number
    for tool_test in ("test_assign.py", "test_grade.py", "test_grade_schema.py", "test_new_chapter.py", "test_docs.py"):
        write(root / "tests" / tool_test, TOOL_TEST)
    write(root / "data" / "README.md", "sources\n")
    write(root / "data" / "download.bin", "big")
    write(root / "runs" / "ch01_fake" / "metrics.json", "{}")
    write(root / "chapters" / "ch01_fake" / "__pycache__" / "model.cpython-311.pyc", "")
    return root


SHIPPED = [".gitignore", "README.md", "chapters/__init__.py", "chapters/ch01_fake/README.md",
           "chapters/ch01_fake/__init__.py", "chapters/ch01_fake/model.py", "chapters/ch02_other/__init__.py",
           "chapters/ch02_other/model.py",
           "common/__init__.py", "common/files.py", "common/grading/__init__.py", "common/grading/partial_credit.py",
           "conftest.py", "data/README.md", "pyproject.toml",
           "tests/test_ch01_fake.py", "tests/test_ch02_other.py", "tests/test_ch02_speed.py"]


def exported(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def plant_secrets(root: Path) -> list[str]:
    """What an instructor's working copy holds besides the course: none of it may reach a student."""
    planted = {".env": "API_KEY=secret\n", "log/envlog.0": "HOME=/root\nAPI_KEY=secret\n",
               "answers.md": "the answers\n", "chapters/ch01_fake/answers_notes.md": "solution notes\n",
               "chapters/ch01_fake/.env": "TOKEN=1\n", "chapters/ch01_fake/weights.pdparams": "binary",
               "common/.secret": "x\n"}
    for rel, text in planted.items():
        write(root / rel, text)
    return sorted(planted)


def test_export_replaces_regions_with_todos_and_leaves_out_hidden_tests_caches_and_tools(repo, tmp_path):
    out = tmp_path / "student"
    assert assign.main(["--root", str(repo), "export", "--out", str(out), "--no-free-points"]) == 0
    assert exported(out) == SHIPPED  # no tests of the tools, no caches, no runs/ or downloads
    for path in out.rglob("*.py"):
        ast.parse(path.read_text())  # everything exported parses
    model = (out / "chapters" / "ch01_fake" / "model.py").read_text()
    assert "END SOLUTION" not in model and "PROMPT" not in model and "# SOLUTION\n" not in model
    assert '        raise NotImplementedError("TODO: y = w x + b for every x")\n' in model
    assert '    raise NotImplementedError("TODO: implement mse_gradient")\n    return dw, db\n' in model
    assert '    raise NotImplementedError("TODO: set out")\n    return out\n' in model
    assert 'MARKER_TEXT = "# BEGIN SOLUTION inside a string is not a marker"' in model
    tests = (out / "tests" / "test_ch01_fake.py").read_text()
    assert "hidden" not in tests and "def test_conv_output_size():" in tests
    assert (out / "conftest.py").read_text() == assign.GUARD_CONFTEST


# The grader runs and the student's pytest are jobs: they run in the background while the other tests do
# (tests/background.py).
jobs = Jobs(lane="grade")


@jobs.job("test_reference_scores_full_marks_and_student_version_only_the_given_code")
def graded_reference_and_student(tmp_path: Path):
    repo, out = make_repo(tmp_path), tmp_path / "student"
    assign.export(repo, out)
    return grade.grade(repo)[0], grade.grade(out)[0]


def test_reference_scores_full_marks_and_student_version_only_the_given_code():
    ref, student = jobs.result(graded_reference_and_student)
    assert [g.score for g in ref] == [g.expected.points for g in ref] and sum(g.score for g in ref) == 11
    assert len(student) == 5  # the hidden test is left out of the student copy
    passed = [g.expected.id for g in student if g.score]
    assert passed == ["tests/test_ch02_other.py::test_question_needs_no_work"]
    assert all("not implemented yet" in g.outcome.message for g in student if not g.score)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_in_a_git_checkout_only_tracked_files_are_exported(repo, tmp_path):
    git(repo, "init", "-q")
    git(repo, "add", "-A")  # runs/, data downloads and __pycache__ stay untracked: .gitignore
    (repo / "chapters" / "ch02_other" / "__init__.py").unlink()  # tracked, deleted in the working copy
    planted = plant_secrets(repo)
    # This repository's .gitignore keeps the launcher's log folder and .env out of `git add -A`.
    ignored = git(repo, "check-ignore", "log/envlog.0", ".env", "chapters/ch01_fake/.env").split()
    assert ignored == ["log/envlog.0", ".env", "chapters/ch01_fake/.env"]
    out = tmp_path / "student"
    report = assign.export(repo, out)
    assert report.from_git
    files = exported(out)
    assert not set(planted) & set(files)
    assert files == [f for f in SHIPPED if f != "chapters/ch02_other/__init__.py"]
    # Untracked course files are named (a forgotten `git add`); ignored ones and files outside the course are not.
    assert report.untracked == ["chapters/ch01_fake/answers_notes.md", "chapters/ch01_fake/weights.pdparams",
                                "common/.secret"]


def test_outside_git_only_the_allowlist_is_exported(repo, tmp_path):
    planted = plant_secrets(repo)
    report = assign.export(repo, tmp_path / "student")
    assert not report.from_git and report.untracked == []
    files = exported(tmp_path / "student")
    # Outside git a chapter's .md is a course kind of file: only git can tell a private note from a README.
    assert set(planted) & set(files) == {"chapters/ch01_fake/answers_notes.md"}
    assert files == sorted(SHIPPED + ["chapters/ch01_fake/answers_notes.md"])


def test_a_root_conftest_is_refused_because_the_export_writes_its_own(repo, tmp_path):
    write(repo / "conftest.py", "")
    with pytest.raises(ValueError, match="move your fixtures to tests/conftest.py"):
        assign.export(repo, tmp_path / "student")


def test_chapters_option_exports_only_those_chapters_and_their_tests(repo, tmp_path):
    out = tmp_path / "student"
    report = assign.export(repo, out, chapters=["ch02_other"])
    assert not (out / "chapters" / "ch01_fake").exists() and not (out / "tests" / "test_ch01_fake.py").exists()
    assert (out / "tests" / "test_ch02_speed.py").exists()
    assert (out / "chapters" / "ch02_other" / "model.py").read_text().startswith(
        'def answer():\n    raise NotImplementedError("TODO: implement answer")\n')
    assert (report.regions, report.files_with_regions) == (1, 1)
    assign.export(repo, tmp_path / "one", chapters=["ch01_fake"])
    assert not (tmp_path / "one" / "tests" / "test_ch02_speed.py").exists()
    with pytest.raises(ValueError, match="unknown chapter.*choose from: ch01_fake, ch02_other"):
        assign.export(repo, tmp_path / "other", chapters=["ch09"])


EDITABLE_INSTALL = '''
"""Stands in for `pip install -e REFERENCE` (setuptools' editable finder): a finder at the END of sys.meta_path
that maps the top-level packages to the reference, and their direct submodules too."""
import importlib.machinery
import os
import sys

REFERENCE = os.environ["REFERENCE"]
PACKAGES = {"chapters", "common"}


class Editable:
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        parent = fullname.rpartition(".")[0]
        if fullname in PACKAGES:
            return importlib.machinery.PathFinder.find_spec(fullname, [REFERENCE])
        if parent in PACKAGES:
            return importlib.machinery.PathFinder.find_spec(fullname, [os.path.join(REFERENCE, parent)])
        return None


sys.meta_path.append(Editable)
'''

STUDENT_TEST = '''
import pytest


def test_a_chapter_left_out_of_the_copy_is_not_importable():
    with pytest.raises(ModuleNotFoundError):
        import chapters.ch02_other.model  # only in the reference
'''


def run_student_pytest(student: Path, reference: Path, tmp_path: Path) -> dict[str, str]:
    """pytest in the student copy as the `pytest` command runs it (the working folder is not on sys.path), with the
    reference importable twice over: on PYTHONPATH and through an editable install. Outcome per test name."""
    site = write(tmp_path / "site" / "editable_reference.py", EDITABLE_INSTALL).parent
    report = tmp_path / f"junit-{len(list(tmp_path.glob('junit-*')))}.xml"
    code = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; import editable_reference, pytest; "
            f"sys.exit(pytest.main(['-p', 'no:cacheprovider', '--junitxml', {str(report)!r}, 'tests']))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(PYTHONPATH=os.pathsep.join([str(site), str(reference)]), REFERENCE=str(reference))
    subprocess.run([sys.executable, "-c", code], cwd=student, env=env, capture_output=True, timeout=120)
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        failure = case.find("failure")
        outcomes[case.get("name")] = "passed" if failure is None else failure.get("message", "failed")
    return outcomes


@jobs.job("test_student_pytest_tests_the_copy_even_where_the_reference_is_importable")
def student_pytest_runs(tmp_path: Path):
    """The copy's pytest as exported, then (the control) without pyproject's pythonpath and the export's conftest."""
    repo, student = make_repo(tmp_path), tmp_path / "student"
    assign.export(repo, student, chapters=["ch01_fake"])
    write(student / "tests" / "test_student_own.py", STUDENT_TEST)
    as_exported = run_student_pytest(student, repo, tmp_path)
    (student / "conftest.py").unlink()
    config = (student / "pyproject.toml").read_text()
    (student / "pyproject.toml").write_text(re.sub(r"(?m)^pythonpath = .*$", "", config))
    return as_exported, run_student_pytest(student, repo, tmp_path)


def test_student_pytest_tests_the_copy_even_where_the_reference_is_importable():
    outcomes, control = jobs.result(student_pytest_runs)
    assert set(outcomes) == {"test_forward", "test_gradient_against_finite_differences", "test_conv_output_size",
                             "test_a_chapter_left_out_of_the_copy_is_not_importable"}
    left_out = outcomes.pop("test_a_chapter_left_out_of_the_copy_is_not_importable")
    assert left_out == "passed"
    assert all(message.startswith("NotImplementedError: TODO") for message in outcomes.values()), outcomes

    # The control: without pyproject's pythonpath and the export's conftest, the same run tests the reference.
    assert control["test_forward"] == control["test_conv_output_size"] == "passed"
    assert control["test_a_chapter_left_out_of_the_copy_is_not_importable"] != "passed"


@jobs.job("test_export_prints_the_free_points_of_an_untouched_copy")
def exported_with_free_points(tmp_path: Path) -> subprocess.CompletedProcess:
    repo = make_repo(tmp_path)
    # From another folder, with --out relative to it (the grader that counts runs elsewhere: it must find the copy).
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "common.grading.assign", "--root", str(repo), "export", "--out",
                           "student"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_export_prints_the_free_points_of_an_untouched_copy():
    done = jobs.result(exported_with_free_points)
    assert done.returncode == 0, done.stderr
    printed = done.stdout
    # By construction: chapter 1's three visible tests all need the TODOs; chapter 2's given code earns 2 of 3.
    # (How tests of tools would count is the grader's business: the copy has none.)
    assert re.search(r"^  ch01_fake +0 / 6$", printed, re.M), printed
    assert re.search(r"^  ch02_other +2 / 3$", printed, re.M), printed
    assert re.search(r"^  total +2 / 9$", printed, re.M), printed


def test_free_points_say_why_when_the_grader_cannot_run(tmp_path):
    (tmp_path / "student" / "chapters").mkdir(parents=True)  # no tests/ folder: the grader refuses it
    with pytest.raises(RuntimeError, match="the grader wrote no results.*no tests folder"):
        assign.free_points(tmp_path / "student")


OTTER = '''\
import math


class Model:
    def __init__(self, n):
        # PROMPT: one weight per input, all zero
        self.w = [0.0] * n  # SOLUTION
        self.n = n  # SOLUTION
        self.debug = True  # SOLUTION NO PROMPT


def area(r):
    # BEGIN SOLUTION NO PROMPT
    return math.pi * r ** 2
    # END SOLUTION
    """ # BEGIN PROMPT
    return ...  # the area of a circle of radius r
    """ # END PROMPT


def total(xs):
    s = 0
    for x in xs:
        s += x  # SOLUTION
    return s


def skeleton():
    # BEGIN SOLUTION NO PROMPT
    value = 6 * 7
    # END SOLUTION NO PROMPT
    \'\'\' # BEGIN PROMPT
    value = ...
    \'\'\'; # END PROMPT
    return value
'''

OTTER_STUDENT = '''\
import math


class Model:
    def __init__(self, n):
        raise NotImplementedError("TODO: one weight per input, all zero")
        raise NotImplementedError("TODO: set self.n")


def area(r):
    return ...  # the area of a circle of radius r


def total(xs):
    s = 0
    for x in xs:
        raise NotImplementedError("TODO: update s")
    return s


def skeleton():
    value = ...
    return value
'''


def test_otter_grader_markers_mean_what_they_mean_in_otter():
    student, n = assign.strip_solutions(OTTER, "chapters/x.py")
    assert student == OTTER_STUDENT and n == 8
    reference = {}
    exec(compile(OTTER, "reference", "exec"), reference)  # the PROMPT strings are no-ops in the reference
    assert reference["area"](1.0) == pytest.approx(3.14159, abs=1e-5) and reference["skeleton"]() == 42


@pytest.mark.parametrize("source, line, message", [
    ("def f():\n    # BEGIN SOLUTION\n    x = 1\n    # BEGIN SOLUTION\n    y = 2\n    # END SOLUTION\n", 4, "nested"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", 2, "without an # END SOLUTION"),
    ("def f():\n    return 1\n    # END SOLUTION\n", 3, "without a # BEGIN SOLUTION"),
    ("def f():\n    # BEGIN SOLUTION\n    x = 1\n    # PROMPT: too late\n    # END SOLUTION\n", 4, "directly after"),
    ("def f():\n    # SOLUTION\n    return 1\n", 2, "must end a line of code"),
    ("def f():\n    return (1 +\n    # BEGIN SOLUTION\n    2)\n    # END SOLUTION\n", 3, "whole statements"),
    # a PROMPT above a # SOLUTION line must touch it; one that belongs to nothing is an error
    ("# PROMPT: a hint\n\nx = 1  # SOLUTION\n", 1, "directly above a line of code"),
    ("x = 1\n# PROMPT: a hint\n", 2, "directly above a line of code"),
    # otter-grader's markers
    ("def f():\n    # BEGIN SOLUTION NO PROMPT\n    # PROMPT: no\n    return 1\n    # END SOLUTION\n", 3,
     "takes no hint"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION NO PROMPT\n", 4, "closes a # BEGIN SOLUTION NO"),
    ("def f():\n    # BEGIN SOLUTION NO PROMPT\n    return 1\n    # END SOLUTION\n", 1, "does not parse"),
    ("x = 1  # END PROMPT\n", 1, "without a"),
    ("def f():\n    ''' # BEGIN PROMPT\n    return 1\n    '''\n", 2, "has no # END PROMPT"),
    ("def f():\n    ''' # BEGIN PROMPT\n    return 1\n    '''\n    y = 2  # END PROMPT\n", 2, "must be closed by"),
    ("x = f(''' # BEGIN PROMPT\n    1\n''')  # END PROMPT\n", 1, "statement of its own"),
    ("# BEGIN PROMPT\nx = 1\n# END PROMPT\n", 1, "belongs in a string"),
])
def test_bad_markers_are_errors_naming_file_and_line(source, line, message):
    with pytest.raises(assign.MarkerError, match=f"^chapters/x.py:{line}: .*{message}"):
        assign.strip_solutions(source, "chapters/x.py")


def test_a_bad_marker_stops_the_export_before_anything_is_written(repo, tmp_path, capsys):
    write(repo / "chapters" / "ch02_other" / "model.py", "def answer():\n    # BEGIN SOLUTION\n    return 42\n")
    out = tmp_path / "student"
    assert assign.main(["--root", str(repo), "export", "--out", str(out)]) == 2
    assert "chapters/ch02_other/model.py:2: # BEGIN SOLUTION without an # END SOLUTION" in capsys.readouterr().err
    assert not out.exists()


def test_export_refuses_a_folder_that_is_not_empty(repo, tmp_path):
    write(tmp_path / "student" / "keep.txt", "mine")
    with pytest.raises(ValueError, match="not empty"):
        assign.export(repo, tmp_path / "student")


def test_whole_hidden_module_is_left_out():
    text, n = assign.remove_hidden_tests('import pytest\npytestmark = pytest.mark.visibility("hidden")\n\n'
                                         'def test_a():\n    pass\n')
    assert text is None and n == 1


def test_every_chapter_of_this_repository_has_valid_exercise_markers():
    regions = assign.check(REPO)  # raises MarkerError naming file:line on a bad marker; the TODO version parses
    chapters = sorted(p.name for p in (REPO / "chapters").iterdir() if p.is_dir() and assign.CHAPTER_DIR.match(p.name))
    with_exercises = {Path(rel).parts[1] for rel, _ in regions}
    # In the exported student version the markers are gone and the TODOs are the exercises.
    with_exercises |= {c for c in chapters for f in (REPO / "chapters" / c).rglob("*.py")
                       if 'raise NotImplementedError("TODO: ' in f.read_text(encoding="utf-8")}
    assert [c for c in chapters if c not in with_exercises] == []


def test_one_chapter_of_this_repository_exports_what_git_tracks_and_not_the_tests_of_the_tools(tmp_path):
    tracked = assign.tracked_files(REPO)
    if tracked is None:
        pytest.skip(f"{REPO} is not a git checkout (the allowlist export is tested on a fake repository)")
    out = tmp_path / "student"
    report = assign.export(REPO, out, chapters=["ch01_house_price"])
    files = {Path(f) for f in exported(out)}
    assert report.from_git and files - set(tracked) == {Path("conftest.py")}
    assert {f.parts[1] for f in files if f.parts[0] == "chapters" and len(f.parts) > 2} == {"ch01_house_price"}
    assert not [f for f in files if f.name.startswith(("test_grade", "test_assign", "test_new_chapter", "test_docs"))]
    # Everything of the chapter and of common/ (common/grading/ included: tests/conftest.py may use it) is there.
    wanted = {f for f in tracked if f.parts[:2] == ("chapters", "ch01_house_price") or f.parts[0] == "common"}
    assert wanted - files == set() and Path("tests/test_ch01_house_price.py") in files
    assert 'raise NotImplementedError("TODO: ' in (out / "chapters" / "ch01_house_price" / "train.py").read_text()
    config = (out / "pyproject.toml").read_text(encoding="utf-8")  # the copy's code first on sys.path:
    assert re.search(r'(?ms)^\[tool\.pytest\.ini_options\]$.*?^pythonpath = \["\."\]$', config)
