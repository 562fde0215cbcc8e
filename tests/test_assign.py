"""The student-version export (common/grading/assign.py) on a small fake repository made here.

Round trip: the exported code parses, its tests fail (score 0) on the TODO parts, the reference scores full marks.
"""
import ast
import textwrap
from pathlib import Path

import pytest

from common.grading import assign, grade

GRADED = False  # the course tooling's own tests are not part of a student's grade (see common/grading/grade.py)
pytestmark = pytest.mark.points(1)

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

OTHER_TESTS = '''
    import pytest
    from chapters.ch02_other.model import answer


    @pytest.mark.points(1)
    def test_answer():
        assert answer() == 42
    '''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    write(root / "README.md", "# fake course\n")
    write(root / "chapters" / "__init__.py", "")
    write(root / "chapters" / "ch01_fake" / "__init__.py", "")
    write(root / "chapters" / "ch01_fake" / "model.py", MODEL)
    write(root / "chapters" / "ch02_other" / "__init__.py", "")
    write(root / "chapters" / "ch02_other" / "model.py", "def answer():\n    return 42  # SOLUTION\n")
    write(root / "tests" / "test_ch01_fake.py", TESTS)
    write(root / "tests" / "test_ch02_other.py", OTHER_TESTS)
    write(root / "data" / "README.md", "sources\n")
    write(root / "data" / "download.bin", "big")
    write(root / "runs" / "ch01_fake" / "metrics.json", "{}")
    write(root / "chapters" / "ch01_fake" / "__pycache__" / "model.cpython-311.pyc", "")
    return root


def test_export_replaces_regions_with_todos_and_leaves_out_hidden_tests_and_caches(repo, tmp_path):
    out = tmp_path / "student"
    assert assign.main(["--root", str(repo), "export", "--out", str(out)]) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "chapters/__init__.py", "chapters/ch01_fake/__init__.py",
                     "chapters/ch01_fake/model.py", "chapters/ch02_other/__init__.py", "chapters/ch02_other/model.py",
                     "data/README.md", "tests/test_ch01_fake.py", "tests/test_ch02_other.py"]
    for path in out.rglob("*.py"):
        ast.parse(path.read_text())  # everything exported parses
    model = (out / "chapters" / "ch01_fake" / "model.py").read_text()
    assert "END SOLUTION" not in model and "PROMPT" not in model and "# SOLUTION\n" not in model
    assert '        raise NotImplementedError("TODO: y = w x + b for every x")\n' in model
    assert '    raise NotImplementedError("TODO: implement mse_gradient")\n    return dw, db\n' in model
    assert '    raise NotImplementedError("TODO: implement conv_output_size")\n    return out\n' in model
    assert 'MARKER_TEXT = "# BEGIN SOLUTION inside a string is not a marker"' in model
    tests = (out / "tests" / "test_ch01_fake.py").read_text()
    assert "hidden" not in tests and "def test_conv_output_size():" in tests


def test_reference_scores_full_marks_and_student_version_scores_zero(repo, tmp_path):
    out = tmp_path / "student"
    assign.export(repo, out)
    ref, _ = grade.grade(repo)
    assert [g.score for g in ref] == [g.expected.points for g in ref] and sum(g.score for g in ref) == 9
    student, _ = grade.grade(out)
    assert len(student) == 4 and sum(g.score for g in student) == 0  # hidden test left out of the student copy
    assert all("not implemented yet" in g.outcome.message for g in student)


def test_chapters_option_exports_only_those_chapters_and_their_tests(repo, tmp_path):
    out = tmp_path / "student"
    report = assign.export(repo, out, chapters=["ch02_other"])
    assert not (out / "chapters" / "ch01_fake").exists() and not (out / "tests" / "test_ch01_fake.py").exists()
    assert (out / "chapters" / "ch02_other" / "model.py").read_text() == \
        'def answer():\n    raise NotImplementedError("TODO: implement answer")\n'
    assert (report.regions, report.files_with_regions) == (1, 1)
    with pytest.raises(ValueError, match="unknown chapter.*choose from: ch01_fake, ch02_other"):
        assign.export(repo, tmp_path / "other", chapters=["ch09"])


@pytest.mark.parametrize("source, line, message", [
    ("def f():\n    # BEGIN SOLUTION\n    x = 1\n    # BEGIN SOLUTION\n    y = 2\n    # END SOLUTION\n", 4, "nested"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", 2, "without an # END SOLUTION"),
    ("def f():\n    return 1\n    # END SOLUTION\n", 3, "without a # BEGIN SOLUTION"),
    ("def f():\n    # BEGIN SOLUTION\n    x = 1\n    # PROMPT: too late\n    # END SOLUTION\n", 4, "directly after"),
    ("def f():\n    # SOLUTION\n    return 1\n", 2, "must end a line of code"),
    ("def f():\n    return (1 +\n    # BEGIN SOLUTION\n    2)\n    # END SOLUTION\n", 3, "whole statements"),
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
    repo = Path(__file__).resolve().parent.parent
    regions = assign.check(repo)  # raises MarkerError naming file:line on a bad marker; the TODO version parses
    chapters = sorted(p.name for p in (repo / "chapters").iterdir() if p.is_dir() and assign.CHAPTER_DIR.match(p.name))
    with_exercises = {Path(rel).parts[1] for rel, _ in regions}
    # In the exported student version the markers are gone and the TODOs are the exercises.
    with_exercises |= {c for c in chapters for f in (repo / "chapters" / c).rglob("*.py")
                       if 'raise NotImplementedError("TODO: ' in f.read_text(encoding="utf-8")}
    assert [c for c in chapters if c not in with_exercises] == []
