"""The chapters' notebooks: every pair in sync, and every notebook run top to bottom in a real Jupyter kernel.

Each chapter's notebook (chapters/<chapter>/notebook.py, a jupytext percent script, and the notebook.ipynb built
from it) is found by name, so a new chapter's notebook is tested without an edit here. It runs in a fresh ipykernel
of this Python, offline (the kernel refuses non-loopback look-ups, as tests/conftest.py does here), writing only to
a temporary folder, with the small sizes its own parameters cell gives in its `test_parameters` metadata.

A kernel and `import paddle` take about 2 s, more than most notebooks need at their test size, so the notebooks run
one after another in one kernel that is put back to a fresh state before each (common.grading.notebooks.Kernel says
what is reset; COURSE_FRESH_KERNELS=1 gives each notebook a new kernel instead). They do not wait their turn: the
chosen notebooks are queued when collection ends, in the background lane of the jobs whose processes import Paddle
(tests/background.py), while the rest of the suite runs; each test here waits for its own notebook. (Run alone, a
test runs its notebook itself.)
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import nbformat
import pytest

from common.grading import notebooks
from tests.background import Jobs
from tests.notebook_kernel import kernel

GRADED = False  # course tooling, not an exercise (see common/grading/grade.py)
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {py.parent.name: py for py in notebooks.chapter_notebooks(ROOT)}

FAILING = ["x = 1", "def f():\n    return 1 / 0\n\nf()", "print('never reached')"]


# ---- the jobs: the notebooks, one after another in one kernel (tests/background.py) ----

jobs = Jobs(lane="paddle")  # after the other jobs whose processes import Paddle (tests/background.py)


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}


def run_chapter_notebook(chapter: str, folder: Path) -> dict:
    """Execute the chapter's committed .ipynb at its test size; what it produced, for the test to check."""
    ipynb = NOTEBOOKS[chapter].with_suffix(".ipynb")
    nb = nbformat.read(ipynb, as_version=4)
    cell = next(c for c in nb.cells if notebooks.PARAMETERS_TAG in c.metadata.get("tags", []))
    parameters = dict(cell.metadata.get("test_parameters", {}), OUT=str(folder / "out"))
    before = _files(ipynb.parent)
    env = {"COURSE_DATA_DIR": str(folder / "data-cache")}
    executed = kernel().run(notebooks.with_parameters(nb, parameters), cwd=ipynb.parent, env=env)
    return {"notebook": executed, "written": sorted(_files(folder / "out")) if (folder / "out").is_dir() else [],
            "new_in_chapter": sorted(_files(ipynb.parent) - before)}


for _chapter in NOTEBOOKS:
    jobs.add(f"notebook:{_chapter}", functools.partial(run_chapter_notebook, _chapter),
             f"test_notebook_runs_top_to_bottom[{_chapter}]",
             *(["test_progress_bars_in_a_notebook_are_tqdm_widgets"] if _chapter == "ch02_mnist" else []))


@jobs.job("test_a_failing_cell_is_reported_with_its_source_and_error")
def failing_notebook(folder: Path) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in FAILING])
    nb.cells.insert(0, nbformat.v4.new_code_cell("N = 0", metadata={"tags": ["parameters"]}))
    try:
        kernel().run(notebooks.with_parameters(nb, {"N": 1}), cwd=folder)
    except notebooks.CellFailed as e:
        return str(e)
    return "(no error)"


LEAKING = f"""
import os, sys
import matplotlib.pyplot as plt
import chapters.ch01_house_price.train as train
sys.path.insert(0, {str(ROOT)!r})
os.environ["COURSE_LEAK"] = "1"
leaked = train.LEAKED = True
plt.rcParams["lines.linewidth"] = 9
plt.figure()
"""
LOOKING = f"""
import os, sys
import matplotlib.pyplot as plt
print(repr({{"name": "leaked" in dir(), "path": {str(ROOT)!r} in sys.path, "env": "COURSE_LEAK" in os.environ,
            "module": "chapters.ch01_house_price.train" in sys.modules, "linewidth": plt.rcParams["lines.linewidth"],
            "figures": len(plt.get_fignums()), "cwd": os.getcwd()}}))
"""


@jobs.job("test_a_notebook_starts_from_a_fresh_kernel_state_after_another")
def two_notebooks_in_one_kernel(folder: Path) -> tuple[str, dict]:
    """A notebook that changes what it can, then one that looks: what the second one saw, and where it ran."""
    def notebook(source):
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])

    kernel().run(notebook(LEAKING), cwd=ROOT)
    seen = kernel().run(notebook(LOOKING), cwd=folder).cells[-1].outputs[0]["text"]
    return str(folder.resolve()), ast.literal_eval(seen)


# ---- the tests ----

def test_every_chapter_has_a_notebook():
    missing = notebooks.chapters_without_notebook(ROOT)
    assert not missing, (f"chapters without chapters/<chapter>/notebook.py: {missing}; write one (copy another "
                         "chapter's), then `python -m common.grading.notebooks sync`")


@pytest.mark.parametrize("chapter", sorted(NOTEBOOKS))
def test_notebook_pair_is_in_sync(chapter):
    problem = notebooks.pair_problem(NOTEBOOKS[chapter])
    assert problem is None, (f"{problem}. notebook.py is the source: after editing it, run `python -m "
                             "common.grading.notebooks sync`; after editing the .ipynb in Jupyter, first copy the "
                             "change back with `jupytext --to py:percent notebook.ipynb`")


@pytest.mark.parametrize("chapter", sorted(NOTEBOOKS))
def test_notebook_has_the_five_steps_and_a_parameters_cell(chapter):
    nb = notebooks.read_percent(NOTEBOOKS[chapter].read_text(encoding="utf-8"))
    headers = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
               if line.startswith("## ")]
    for step in ("1. Data processing 数据处理", "2. Model design 模型设计", "3. Training configuration 训练配置",
                 "4. Training loop 训练过程", "5. Save 保存模型"):
        assert any(step in h for h in headers), f"{chapter}'s notebook has no section header for {step!r}: {headers}"
    tagged = [c for c in nb.cells if notebooks.PARAMETERS_TAG in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "OUT" in tagged[0].source, "one parameters cell, which sets OUT"
    assert "pip install" in nb.cells[0].source, "the first cell says how to install and run"


@pytest.mark.parametrize("chapter", sorted(NOTEBOOKS))
def test_notebook_calls_the_chapters_steps_instead_of_copying_them(chapter):
    code = "\n".join(c.source for c in notebooks.read_percent(NOTEBOOKS[chapter].read_text(encoding="utf-8")).cells
                     if c.cell_type == "code")
    assert "from chapters." + chapter in code
    assert "def load_data" not in code and "def train" not in code and ".backward()" not in code


@pytest.mark.parametrize("chapter", sorted(NOTEBOOKS))
def test_notebook_runs_top_to_bottom(chapter):
    run = jobs.result(f"notebook:{chapter}")
    code = [c for c in run["notebook"].cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "every code cell ran"
    assert run["written"], "the notebook's save step wrote its files into OUT"
    assert not run["new_in_chapter"], f"the notebook wrote into its chapter folder: {run['new_in_chapter']}"
    assert any(o.output_type == "display_data" for c in code for o in c.outputs), "it shows a figure or table"


def test_a_failing_cell_is_reported_with_its_source_and_error():
    message = jobs.result(failing_notebook)
    assert message.startswith("cell 3 failed:")  # as Jupyter numbers them: parameters, x = 1, then this one
    assert "return 1 / 0" in message and "ZeroDivisionError: division by zero" in message
    assert "never reached" not in message


def test_a_notebook_starts_from_a_fresh_kernel_state_after_another():
    # The notebooks share one kernel (for time); what one notebook changed must not reach the next, so that a
    # notebook relying on another's import, path or setting fails here as it would for a student.
    second_cwd, seen = jobs.result(two_notebooks_in_one_kernel)
    assert seen == {"name": False, "path": False, "env": False, "module": False, "linewidth": 1.5, "figures": 0,
                    "cwd": second_cwd}


def test_progress_bars_in_a_notebook_are_tqdm_widgets():
    # Chapter 2's training loop shows common.progress bars: in a kernel they are tqdm.notebook widgets, not text
    # (a terminal-only bar would be switched off there, since the kernel's stderr is no terminal).
    run = jobs.result("notebook:ch02_mnist")
    shown = [o for c in run["notebook"].cells if c.cell_type == "code" for o in c.outputs
             if o.output_type == "display_data"]
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in shown)
