"""Assignments as notebooks: `assign export --notebooks`, and the grader taking a submitted .ipynb for the .py.

A small fake course (plain Python, no Paddle, so the grader's child process is quick) is exported with notebooks;
one submission then holds, per chapter, the notebook filled in with the reference, the notebook untouched, and
notebooks damaged in the ways students damage them (a cell deleted, a cell turned into Markdown, a file that is not
JSON). It is graded once, with the instructor's tests, in a background job (tests/background.py). The real chapters' files are checked for the round trip.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest

from common.grading import assign, grade, notebooks
from tests.background import Jobs

GRADED = False  # course tooling, not an exercise (see common/grading/grade.py)
ROOT = Path(__file__).resolve().parents[1]

MODEL = '''
    """A fake chapter: two exercises and a given part."""
    import math

    SCALE = 2


    # ---- 1. Data processing 数据处理 ----
    def load(n):
        """Given code: the first n squares."""
        return [i * i for i in range(n)]


    # ---- 2. Model design 模型设计 ----
    class Line:
        def __init__(self, w, b):
            self.w, self.b = w, b

        def forward(self, xs):
            # BEGIN SOLUTION
            # PROMPT: w * x + b for every x
            return [self.w * x + self.b for x in xs]
            # END SOLUTION


    def norm(xs):
        return math.sqrt(sum(x * x for x in xs)) * SCALE / SCALE  # SOLUTION


    if __name__ == "__main__":
        print(norm(Line(1, 0).forward(load(3))))
    '''

TESTS = '''
    import pytest
    from chapters.{chapter}.model import Line, load, norm


    @pytest.mark.points(1)
    def test_load_is_given():
        assert load(3) == [0, 1, 4]


    @pytest.mark.points(2)
    def test_forward():
        assert Line(2, 1).forward([0, 1]) == [1, 3]


    @pytest.mark.points(3)
    def test_norm():
        assert norm([3, 4]) == 5
    '''

# chapter -> what the submission does with its notebook
CASES = ("filled", "untouched", "not_submitted", "deleted", "to_markdown", "not_json", "scratch_and_magic",
         "metadata_stripped")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def cell_by_kind(nb, kind: str):
    return next(c for c in nb.cells if c.metadata.get("course", {}).get("kind") == kind)


jobs = Jobs(lane="grade")  # the grader run is a background job (tests/background.py)


@jobs.job("graded")  # every test that uses the fixture below
def graded_notebooks(tmp: Path):
    repo, student, upload = tmp / "instructor", tmp / "student", tmp / "upload"
    write(repo / "chapters" / "__init__.py", "")
    for case in CASES:
        write(repo / "chapters" / f"ch9_{case}" / "__init__.py", "")
        write(repo / "chapters" / f"ch9_{case}" / "model.py", MODEL)
        write(repo / "tests" / f"test_ch9_{case}.py", TESTS.format(chapter=f"ch9_{case}"))
    report = assign.export(repo, student, notebooks=True)
    for case in CASES:
        rel = Path("chapters") / f"ch9_{case}" / "model.ipynb"
        nb = nbformat.read(student / rel, as_version=4)
        reference = notebooks.assignment_notebook((repo / rel.with_suffix(".py")).read_text(), rel.with_suffix(".py").as_posix(),
                                                  solutions=True)
        answers = {c.metadata["course"]["id"]: c.source for c in reference.cells}
        if case == "not_submitted":
            continue
        if case in ("filled", "scratch_and_magic", "metadata_stripped"):
            for cell in nb.cells:
                if cell.metadata.get("course", {}).get("kind") == "todo":
                    cell.source = answers[cell.metadata["course"]["id"]]
                    cell.outputs = [nbformat.v4.new_output("stream", text="ran\n")]  # outputs do not matter
        if case == "scratch_and_magic":
            todo = cell_by_kind(nb, "todo")
            todo.source = "%matplotlib inline\n" + todo.source + "\n!echo hello"
            nb.cells.append(nbformat.v4.new_code_cell("import sys\nsys.exit('scratch work must not run when graded')"))
        if case == "metadata_stripped":  # as a tool that keeps only sources would save it
            for cell in nb.cells:
                cell.metadata = {}
        if case == "deleted":
            nb.cells.remove(cell_by_kind(nb, "given"))
        if case == "to_markdown":
            todo = cell_by_kind(nb, "todo")
            nb.cells[nb.cells.index(todo)] = nbformat.v4.new_markdown_cell(todo.source, metadata=todo.metadata)
        target = upload / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if case == "not_json":
            target.write_text('{"cells": [', encoding="utf-8")
        else:
            nbformat.write(nb, target)
    graded_tests, notes = grade.grade(upload, tests_dir=repo / "tests", starter=student, timeout=20)
    return report, graded_tests, notes, student


@pytest.fixture
def graded():
    return jobs.result(graded_notebooks)


def scores(graded_tests, case: str) -> dict:
    return {g.expected.id.split("::")[1]: (g.score, g.outcome) for g in graded_tests
            if g.expected.file == f"tests/test_ch9_{case}.py"}


def test_export_writes_a_notebook_beside_each_file_with_todos(graded):
    report, _, _, student = graded
    for case in CASES:
        nb = nbformat.read(student / "chapters" / f"ch9_{case}" / "model.ipynb", as_version=4)
        nbformat.validate(nb)
        kinds = [c.metadata["course"]["kind"] for c in nb.cells]
        assert kinds.count("todo") == 2 and "script" in kinds and "section" in kinds
        todo = [c.source for c in nb.cells if c.metadata["course"]["kind"] == "todo"]
        assert 'raise NotImplementedError("TODO: w * x + b for every x")' in todo[0]
        assert all("BEGIN SOLUTION" not in c.source and "SOLUTION" not in c.source for c in nb.cells)
        assert [c.cell_type for c in nb.cells if c.metadata["course"]["kind"] == "script"] == ["raw"]
        # The untouched notebook stands for exactly the student's .py.
        assert notebooks.notebook_to_script(nb, nb, "model.ipynb") == \
            (student / "chapters" / f"ch9_{case}" / "model.py").read_text()


def test_the_notebook_filled_with_the_reference_scores_full_marks(graded):
    _, graded_tests, notes, _ = graded
    assert {name: s for name, (s, _) in scores(graded_tests, "filled").items()} == \
        {"test_load_is_given": 1, "test_forward": 2, "test_norm": 3}
    assert any("graded chapters/ch9_filled/model.py from the submitted notebook model.ipynb" in n for n in notes)


def test_an_untouched_notebook_scores_what_the_starter_scores(graded):
    _, graded_tests, _, _ = graded
    untouched, starter = scores(graded_tests, "untouched"), scores(graded_tests, "not_submitted")
    assert {k: s for k, (s, _) in untouched.items()} == {k: s for k, (s, _) in starter.items()} == \
        {"test_load_is_given": 1, "test_forward": 0, "test_norm": 0}
    assert "not implemented yet: w * x + b for every x" in untouched["test_forward"][1].message


@pytest.mark.parametrize("case", ["scratch_and_magic", "metadata_stripped"])
def test_magics_added_cells_and_lost_metadata_do_not_cost_marks(graded, case):
    # %magic and !shell lines are commented out; cells the student added are left out; without the cells' metadata
    # the code cells are matched in order.
    _, graded_tests, _, _ = graded
    assert {k: s for k, (s, _) in scores(graded_tests, case).items()} == \
        {"test_load_is_given": 1, "test_forward": 2, "test_norm": 3}


@pytest.mark.parametrize("case, reason", [
    ("deleted", 'model.ipynb: code cell 1 of 4 (`"""A fake chapter: two exercises and a given part."""`) is missing '
                '(deleted?); restore it from the starter notebook'),
    ("to_markdown", "model.ipynb: code cell 3 of 4 (`class Line:`) was changed to a markdown cell; change it back"),
    ("not_json", "model.ipynb is not a readable notebook (NotJSONError"),
])
def test_a_damaged_notebook_fails_every_test_of_its_file_with_the_reason(graded, case, reason):
    _, graded_tests, notes, _ = graded
    results = scores(graded_tests, case)
    assert len(results) == 3 and all(score == 0 for score, _ in results.values())
    for _, outcome in results.values():
        assert reason in outcome.message, outcome.message
    assert any(f"could not use the submitted chapters/ch9_{case}/model.ipynb" in n for n in notes)


def test_other_chapters_grade_normally_beside_a_damaged_notebook(graded):
    _, graded_tests, _, _ = graded
    assert sum(g.score for g in graded_tests) == 6 + 1 + 1 + 6 + 6  # filled, untouched, not submitted, ...


@pytest.mark.parametrize("rel", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").rglob("*.py")
                                       if "BEGIN SOLUTION" in p.read_text(encoding="utf-8")
                                       or "# SOLUTION" in p.read_text(encoding="utf-8")))
def test_every_chapter_file_with_exercises_round_trips_through_its_notebook(rel):
    reference = (ROOT / rel).read_text(encoding="utf-8")
    student, n = assign.strip_solutions(reference, rel)
    nb = notebooks.assignment_notebook(reference, rel)
    answer_key = notebooks.assignment_notebook(reference, rel, solutions=True)
    assert sum(c.metadata["course"]["kind"] == "todo" for c in nb.cells) >= 1 and n >= 1
    assert notebooks.notebook_to_script(nb, nb, "x.ipynb") == student
    assert notebooks.notebook_to_script(answer_key, nb, "x.ipynb") == reference
    json.loads(notebooks.assignment_ipynb(reference, rel))  # what the export writes is JSON


def test_the_grader_survives_any_bytes_as_a_notebook(tmp_path):
    starter_nb = notebooks.assignment_notebook(textwrap.dedent(MODEL).lstrip(), "chapters/ch9_x/model.py")
    for data in (b"\xff\xfe", b"[]", b'{"cells": "no"}', b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, '
                 b'"cells": [{"cell_type": "code", "metadata": {"course": 3}, "source": 7}]}', b"{}" * 10):
        for folder in ("starter", "code"):
            write(tmp_path / folder / "chapters" / "ch9_x" / "model.py", MODEL)
        nbformat.write(starter_nb, tmp_path / "starter" / "chapters" / "ch9_x" / "model.ipynb")
        (tmp_path / "code" / "chapters" / "ch9_x" / "model.ipynb").write_bytes(data)
        notes = notebooks.use_submitted_notebooks(tmp_path / "starter", tmp_path / "code")
        assert len(notes) == 1 and notes[0].startswith("could not use the submitted"), notes
        stub = (tmp_path / "code" / "chapters" / "ch9_x" / "model.py").read_text()
        with pytest.raises(ImportError):
            exec(compile(stub, "model.py", "exec"), {})


def test_only_ipython_syntax_is_commented_out():
    magic = "%timeit f()\nx = !ls\n!pip install foo\ny = 1"
    assert notebooks._without_ipython_syntax(magic) == \
        "# (IPython) %timeit f()\n# (IPython) x = !ls\n# (IPython) !pip install foo\ny = 1"
    python = 'text = ("%d apples"\n        % 3)\nflag = not (1\n    != 2)'  # lines that start with % or != are code
    assert notebooks._without_ipython_syntax(python) == python
    assert notebooks._without_ipython_syntax("%%time\nz = 1").startswith("# (IPython) %%time\n# (IPython) z = 1")
