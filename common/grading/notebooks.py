"""Notebooks: the chapters' walk-through notebooks, and assignments handed out and graded as notebooks.

    python -m common.grading.notebooks sync               # rebuild every chapters/*/notebook.ipynb from its .py
    python -m common.grading.notebooks check              # list the pairs that are out of sync (exit 1 if any)
    python -m common.grading.notebooks script X.ipynb     # an assignment notebook -> the X.py the tests import

**Walk-through notebooks.** Each chapter has `notebook.py`, a jupytext "percent" script (`# %%` starts a cell,
`# %% [markdown]` a text cell), and `notebook.ipynb` built from it with outputs stripped. The `.py` is the source
of truth: it diffs and reviews like code, a merge conflict in it is readable, and it holds no outputs, so a rerun
changes nothing in git. The `.ipynb` is committed as well, so a student who downloads the repository opens it in
any Jupyter (AI Studio, Colab, VS Code) without jupytext. `sync` rebuilds it deterministically (cell ids from
positions), and the tests fail when a committed `.ipynb` is not what `sync` would write. With jupytext installed,
Jupyter can also open the `.py` directly; `jupytext --sync` keeps the pair in step from Jupyter's side.
A notebook's cell tagged `parameters` (papermill's convention) holds its sizes; `with_parameters` inserts a cell
after it that overrides them, and `Kernel.run` executes it, so the tests run every notebook at a small size.

**Assignment notebooks** (`python -m common.grading.assign export --notebooks`). A chapter file with solution
regions becomes a notebook too: one code cell per top-level function or class, a text cell for each `# ---- step
----` header, and the regions replaced by TODOs exactly as in the `.py` (the cells holding one are the TODO cells).
Every cell carries `metadata.course` (its id, its kind, the blank lines that followed it) and Jupyter's
`deletable: false`; given cells are also `editable: false`. The `if __name__ == "__main__":` block is a raw cell,
so Run All in Jupyter does not parse the kernel's own command line.

A submitted notebook is turned back into the `.py` (`use_submitted_notebooks`, called by the grader after it lays
the submission over the starter): its code cells are matched with the starter's notebook by id and joined in the
starter's order with the starter's layout, so an untouched notebook gives back the student `.py` byte for byte.
IPython syntax (`%magic`, `!shell`) is commented out. Cells the student added are left out (scratch work must not
run when the tests import the module); put helpers inside a TODO cell. A notebook that is not valid JSON, not a
notebook, or whose starter code cells were deleted or changed to text gets a `.py` that raises ImportError with the
reason, so each test of that file fails with that one line, and the grader itself never fails on it.
"""
from __future__ import annotations

import argparse
import ast
import copy
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK_STEM = "notebook"  # chapters/<chapter>/notebook.py (the source) and notebook.ipynb (built from it)
CHAPTER_GLOB = "ch[0-9]*"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
FORMAT = 1  # of metadata.course in assignment notebooks
MAX_NOTEBOOK_BYTES = 20_000_000  # a submitted notebook larger than this is refused unread
SECTION = re.compile(r"^# ---- (.+?) ----\s*$")
MAIN_GUARD = 'if __name__ == "__main__":'


class NotebookError(ValueError):
    """A notebook that cannot be used; the message says why and what to do."""


# ---- walk-through notebooks: discovery and pairing ----

def chapter_notebooks(root: Path) -> list[Path]:
    """The walk-through notebooks' sources, chapters/<chapter>/notebook.py, in chapter order."""
    return sorted((root / "chapters").glob(f"{CHAPTER_GLOB}/{NOTEBOOK_STEM}.py"))


def chapters_without_notebook(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "chapters").glob(CHAPTER_GLOB)
                  if p.is_dir() and not (p / f"{NOTEBOOK_STEM}.py").is_file())


def read_percent(text: str):
    """A jupytext percent script -> an nbformat notebook (v4), with cell ids from positions."""
    import jupytext

    nb = jupytext.reads(text, fmt="py:percent")
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # jupytext draws random ids; position-based ones make the build repeatable
    return nb


def ipynb_text(py_text: str) -> str:
    """The .ipynb that `sync` writes for a percent script: no outputs, no execution counts, stable ids."""
    import jupytext

    return jupytext.writes(read_percent(py_text), fmt="ipynb")


def pair_problem(py_path: Path) -> str | None:
    """Why py_path's .ipynb is not the one `sync` would build from it, or None if it is."""
    ipynb = py_path.with_suffix(".ipynb")
    rel = f"{py_path.parent.name}/{ipynb.name}"
    if not ipynb.is_file():
        return f"{rel} is missing"
    if ipynb.read_text(encoding="utf-8") != ipynb_text(py_path.read_text(encoding="utf-8")):
        return f"{rel} differs from {py_path.name}, its source (outputs left in it, or one of the two edited alone)"
    return None


def sync(root: Path) -> list[Path]:
    """Rebuild every out-of-date notebook.ipynb from its notebook.py; returns those written."""
    from common.files import atomic_path

    written = []
    for py in chapter_notebooks(root):
        if pair_problem(py) is None:
            continue
        with atomic_path(py.with_suffix(".ipynb")) as tmp:
            tmp.write_text(ipynb_text(py.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(py.with_suffix(".ipynb"))
    return written


# ---- walk-through notebooks: execution ----

class CellFailed(AssertionError):
    """A notebook cell raised: the message holds the cell's source and its error."""


def with_parameters(nb, parameters: dict):
    """A copy of nb with a cell after the one tagged `parameters` that sets `parameters` (papermill's convention)."""
    import nbformat

    nb = copy.deepcopy(nb)
    index = next((i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), None)
    if index is None:
        raise NotebookError(f"the notebook has no cell tagged {PARAMETERS_TAG!r} to override")
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    cell["id"] = "injected-parameters"
    nb.cells.insert(index + 1, cell)
    return nb


# Run once in a new kernel: what a fresh kernel looks like, so that each notebook can start from it again. The
# inline backend is switched on here, as a fresh kernel does when a notebook first imports pyplot.
_KERNEL_SETUP = """
import os as _os, sys as _sys, types as _types
import matplotlib.pyplot as _plt
_k = _types.ModuleType("_course_kernel")
_k.path, _k.environ, _k.rc = list(_sys.path), dict(_os.environ), _plt.matplotlib.rcParams.copy()

def _fresh(cwd, env, root, _k=_k):
    import matplotlib, os, sys, warnings
    os.chdir(cwd)  # first: the last notebook's folder may be gone, and IPython asks for the working folder
    get_ipython().reset(new_session=False)  # the user namespace, Out and the _ variables
    sys.path[:] = _k.path
    os.environ.clear()
    os.environ.update(_k.environ)
    os.environ.update(env)
    for name, module in list(sys.modules.items()):  # the course's own modules are imported afresh
        where = [getattr(module, "__file__", None) or "", *getattr(module, "__path__", [])]
        if any(str(w).startswith(root + os.sep) for w in where):
            del sys.modules[name]
    matplotlib.pyplot.close("all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matplotlib.rcParams.update(_k.rc)
    if "paddle" in sys.modules:
        import paddle
        paddle.disable_static()
        paddle.set_default_dtype("float32")

_k.fresh = _fresh
_sys.modules["_course_kernel"] = _k
del _os, _sys, _types, _plt, _k, _fresh
"""


class Kernel:
    """An ipykernel of this Python that runs notebooks one after another, each from a fresh state.

    Starting a kernel and importing Paddle into it costs about 2 s, more than most notebooks take at their test
    size, so the tests run every notebook in one kernel. Before each notebook the kernel is put back as it was
    when it started: IPython's namespace reset (so a notebook that forgets an import fails with NameError), sys.path,
    os.environ and the working folder restored, every module of `root` (the course's own code) dropped from
    sys.modules so that it is imported afresh, figures closed and matplotlib's settings restored, Paddle back in
    dynamic-graph mode with float32. What stays is the third-party modules already imported (Paddle, NumPy,
    matplotlib) and their internal state; `fresh=True` gives every notebook a new kernel instead. A kernel that
    dies or times out is restarted for the next notebook.
    """

    def __init__(self, *, root: Path, timeout: float = 120, prelude: str = "", warm: str = "", fresh: bool = False):
        """prelude: code run before each notebook; warm: code run once when the kernel starts (e.g. imports that
        every notebook needs, so that they are paid once)."""
        self.root, self.timeout, self.prelude, self.warm, self.fresh = Path(root).resolve(), timeout, prelude, warm, fresh
        self.lock = threading.Lock()
        self.runtime = Path(tempfile.mkdtemp(prefix="course-kernel-"))  # the connection file: not in the user's folders
        self.km = None
        self.log = None

    def __enter__(self) -> "Kernel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start the kernel now, if it is not running (run() starts it when needed)."""
        with self.lock:
            if self.km is None or not self.km.is_alive():
                self.close()
                self.runtime.mkdir(exist_ok=True)
                self._start()

    def _start(self) -> None:
        from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
        from jupyter_client.manager import KernelManager

        class ThisPython(KernelSpecManager):
            # Whatever `python3` kernel a user has installed, run the kernel with the interpreter under test.
            def get_kernel_spec(self, kernel_name):
                return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                  display_name="Python (course)", language="python")

        quiet = logging.getLogger("common.grading.notebooks.kernel")
        quiet.setLevel(logging.ERROR)  # jupyter_client warns about zmq contexts it closes late; nothing to act on
        self.km = KernelManager(kernel_spec_manager=ThisPython(), kernel_name="python3", log=quiet, transport="ipc",
                                ip=str(self.runtime / "ipc"), connection_file=str(self.runtime / "kernel.json"))
        # What the kernel's libraries write to its own stdout and stderr (Paddle's C++ log, say) goes to a file,
        # not into the output of whoever started it; a kernel that dies is reported with the end of that file.
        self.log = open(self.runtime / "kernel.log", "wb")
        self.km.start_kernel(cwd=str(self.root), env=dict(os.environ), stdout=self.log, stderr=subprocess.STDOUT)
        self._run_hidden(_KERNEL_SETUP)
        if self.warm:
            self._run_hidden(self.warm)

    def _run_hidden(self, code: str) -> None:
        client = self.km.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=self.timeout)
            reply = client.execute_interactive(code, store_history=False, timeout=self.timeout,
                                               output_hook=lambda msg: None)
            if reply["content"]["status"] != "ok":
                raise NotebookError(f"the kernel could not be set up: {reply['content'].get('evalue')}")
        finally:
            client.stop_channels()

    def close(self) -> None:
        if self.km is not None and self.km.has_kernel:
            self.km.shutdown_kernel(now=True)
        self.km = None
        if self.log is not None:
            self.log.close()
            self.log = None
        shutil.rmtree(self.runtime, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return (self.runtime / "kernel.log").read_bytes()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def run(self, nb, *, cwd: Path, env: dict | None = None):
        """Run every cell of nb top to bottom; returns the executed notebook. A failing cell raises CellFailed with
        the cell's number, source, and error. `env`: environment variables set for this notebook only."""
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        if self.fresh:
            self.close()
        self.start()
        nb = copy.deepcopy(nb)
        fresh = f"__import__('_course_kernel').fresh({str(cwd)!r}, {dict(env or {})!r}, {str(self.root)!r})"
        cell = nbformat.v4.new_code_cell(fresh + "\n" + self.prelude, metadata={"tags": ["prelude"]})
        cell["id"] = "prelude"
        nb.cells.insert(0, cell)
        client = NotebookClient(nb, km=self.km, timeout=self.timeout, allow_errors=False)
        try:
            client.execute()
        except CellExecutionError as e:
            failed = next((c for c in nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))),
                          None)
            shown = [c for c in nb.cells if c.get("id") not in ("prelude", "injected-parameters")]  # as Jupyter counts
            number = shown.index(failed) + 1 if failed in shown else "?"
            source = failed.source if failed is not None else "(unknown cell)"
            raise CellFailed(f"cell {number} failed:\n{source}\n---\n{e.ename}: {e.evalue}\n{_plain(e.traceback)}") \
                from None
        except (CellTimeoutError, DeadKernelError) as e:
            message = f"{type(e).__name__}: {e}\nthe kernel's own output ends with:\n{self._log_tail()}"
            self.close()  # the next notebook gets a new kernel
            raise NotebookError(message) from None
        except BaseException:
            self.close()
            raise
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
        return nb


def _plain(traceback: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", traceback or "")[-3000:]


# ---- assignment notebooks: from a chapter file ----

@dataclass
class Chunk:
    kind: str  # given | todo | section | script
    source: str  # the reference code (section: the header comment line)
    blank_after: int  # blank lines that followed it in the file


def _top_level_starts(tree: ast.Module, lines: list[str]) -> dict[int, str]:
    """Line -> kind of the chunk that starts there: each top-level def/class (with its decorators and the comment
    lines right above it), the __main__ block, and each section header."""
    starts: dict[int, str] = {}
    for node in tree.body:
        is_guard = isinstance(node, ast.If) and ast.unparse(node.test) in ("__name__ == '__main__'",)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or is_guard:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            while first > 1 and lines[first - 2].startswith("#") and not SECTION.match(lines[first - 2]):
                first -= 1
            starts[first] = "script" if is_guard else "code"
    for i, line in enumerate(lines, 1):
        if SECTION.match(line):
            starts[i] = "section"
    return starts


def split_script(source: str, filename: str = "<source>") -> list[Chunk]:
    """Cut a chapter file into chunks at top-level definitions and section headers, never inside a solution region.

    Joining the chunks (each followed by its blank lines) gives the file back exactly.
    """
    from common.grading import assign

    tree = assign._parse_cached(source, filename)  # shared with the marker scan; never changed
    if isinstance(tree, SyntaxError):
        raise SyntaxError(*tree.args)
    lines = source.splitlines(keepends=True)
    regions = assign.find_regions(source, filename)
    inside = {n for r in regions for n in range(r.first + 1, r.last + 1)}  # a chunk may not start in a region
    starts = {k: v for k, v in _top_level_starts(tree, [l.rstrip("\n") for l in lines]).items() if k not in inside}
    bounds = sorted(set(starts) | {1})
    chunks = []
    for begin, end in zip(bounds, bounds[1:] + [len(lines) + 1]):
        kind = starts.get(begin, "code")
        if kind == "section":  # the header alone is a text cell; what follows it up to the next start is code
            chunks.append(Chunk("section", lines[begin - 1].rstrip("\n"), 0))
            begin += 1
        body = lines[begin - 1:end - 1]
        trailing = 0
        while trailing < len(body) and body[len(body) - 1 - trailing] == "\n":
            trailing += 1
        text = "".join(body[:len(body) - trailing])
        if not text:  # nothing but blank lines (after a header): they belong to the chunk before
            if chunks:
                chunks[-1].blank_after += trailing
            continue
        if not text.endswith("\n"):
            raise NotebookError(f"{filename}: the file must end with a newline to be cut into cells")
        chunks.append(Chunk("script" if kind == "script" else "given", text[:-1], trailing))
    if "".join(_chunk_text(c) for c in chunks) != source:
        raise NotebookError(f"{filename}: cannot be cut into cells that join back into the file")  # a bug if seen
    return chunks


def _chunk_text(chunk: Chunk) -> str:
    return chunk.source + "\n" + "\n" * chunk.blank_after


def assignment_notebook(reference: str, rel: str, *, solutions: bool = False):
    """The notebook of one chapter file: TODO cells where the file has solution regions (or, with solutions=True,
    the reference code in them, for tests and for the instructor's answer key)."""
    import nbformat

    from common.grading import assign

    chunks = split_script(reference, rel)
    module = rel.removesuffix(".py").replace("/", ".")
    intro = (f"# Assignment: `{rel}`\n\n"
             "Fill in the cells that say `TODO` (each replaces a `raise NotImplementedError`), run the notebook, "
             "and submit this `.ipynb` in place of the `.py`: the grader turns its code cells back into the `.py` and "
             "runs the same tests on it.\n\n"
             "- Do not delete cells or change their type: a missing code cell makes every test of this file fail.\n"
             "- Cells you add are not graded (they are left out of the `.py`): write helpers inside a TODO cell.\n"
             f"- Check your work: `python -m common.grading.notebooks script {Path(rel).with_suffix('.ipynb')}` writes "
             f"the `.py` from this notebook, then run the chapter's tests with `pytest`.\n"
             f"- The last cell is raw (not run here): in a terminal, `python -m {module}` runs the script.")
    nb = nbformat.v4.new_notebook()
    nb.metadata.update({
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "course": {"assignment": rel, "format": FORMAT},
    })
    nb.cells.append(_cell("markdown", intro, "intro", "intro", 0))
    for i, chunk in enumerate(chunks):
        cell_id = f"c{i:02d}"
        if chunk.kind == "section":
            nb.cells.append(_cell("markdown", "## " + SECTION.match(chunk.source).group(1), cell_id, "section",
                                  chunk.blank_after,
                                  original=chunk.source))
            continue
        text, n = assign.strip_solutions(chunk.source + "\n", rel)
        kind = "todo" if n else chunk.kind
        body = chunk.source if solutions else text.rstrip("\n")
        nb.cells.append(_cell("raw" if kind == "script" else "code", body, cell_id, kind, chunk.blank_after))
    return nb


def _cell(cell_type: str, source: str, cell_id: str, kind: str, blank_after: int, **extra):
    import nbformat

    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell,
            "raw": nbformat.v4.new_raw_cell}[cell_type]
    metadata = {"course": {"id": cell_id, "kind": kind, "blank_after": blank_after, **extra}, "deletable": False}
    if kind != "todo":
        metadata["editable"] = False
    if kind == "todo":
        metadata["tags"] = ["todo"]
    cell = make(source, metadata=metadata)
    cell["id"] = cell_id
    return cell


def assignment_ipynb(reference: str, rel: str, *, solutions: bool = False) -> str:
    import nbformat

    return nbformat.writes(assignment_notebook(reference, rel, solutions=solutions)) + "\n"


# ---- assignment notebooks: back to the .py ----

def read_submitted(data: bytes, name: str):
    """Parse a submitted .ipynb (bytes) as a version-4 notebook, or raise NotebookError saying why not."""
    import nbformat

    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{name} is {len(data):,} bytes, more than a notebook may be "
                            f"({MAX_NOTEBOOK_BYTES:,}); clear its outputs and submit again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat warns about missing cell ids and the like: not the student's
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    except UnicodeDecodeError:
        raise NotebookError(f"{name} is not a notebook (not UTF-8 text)") from None
    except Exception as e:  # nbformat raises NotJSONError, ValidationError, KeyError ... on damaged files
        raise NotebookError(f"{name} is not a readable notebook ({type(e).__name__}: {_first_line(e)}); "
                            "submit the file Jupyter saved, or start again from the starter notebook") from None
    if not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{name} has no list of cells")
    return nb


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:150]


def notebook_to_script(submitted, starter, name: str) -> str:
    """The .py that `submitted` (a parsed notebook) stands for, laid out like `starter` (the trusted notebook).

    Raises NotebookError when a starter code cell is missing or is no longer a code cell.
    """
    expected = [c for c in starter.cells if _course(c).get("kind") in ("given", "todo", "script", "section")]
    by_id: dict[str, dict] = {}
    for cell in submitted.cells:
        cell_id = _course(cell).get("id") if isinstance(cell, dict) else None
        if isinstance(cell_id, str) and cell_id not in by_id:
            by_id[cell_id] = cell
    code_cells = [c for c in expected if _course(c)["kind"] in ("given", "todo")]
    if not by_id:  # a tool that drops cell metadata (some hosted notebooks do): match the code cells in order
        mine = [c for c in submitted.cells if isinstance(c, dict) and c.get("cell_type") == "code"]
        if len(mine) != len(code_cells):
            raise NotebookError(f"{name}: its cells lost the metadata that identifies them (saved by a tool that drops "
                                f"it?), and it has {len(mine)} code cells where the starter has {len(code_cells)}; "
                                "copy your code into the starter notebook")
        by_id = {_course(c)["id"]: m for c, m in zip(code_cells, mine)}
    parts = []
    for cell in expected:
        meta = _course(cell)
        kind, blank = meta["kind"], int(meta.get("blank_after", 0))
        if kind == "section":
            parts.append(str(meta.get("original", "# ---- " + _source(cell).lstrip("# ") + " ----")) + "\n"
                         + "\n" * blank)
            continue
        if kind == "script":  # the __main__ block is not the student's to change
            parts.append(_source(cell) + "\n" + "\n" * blank)
            continue
        number = code_cells.index(cell) + 1
        label = f"code cell {number} of {len(code_cells)} ({_summary(_source(cell))})"
        mine = by_id.get(meta["id"])
        if mine is None:
            raise NotebookError(f"{name}: {label} is missing (deleted?); restore it from the starter notebook")
        if mine.get("cell_type") != "code":
            raise NotebookError(f"{name}: {label} was changed to a {mine.get('cell_type')} cell; change it back "
                                "to code")
        parts.append(_without_ipython_syntax(_source(mine)).rstrip("\n") + "\n" + "\n" * blank)
    return "".join(parts)


def _course(cell) -> dict:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    course = meta.get("course") if isinstance(meta, dict) else None
    return course if isinstance(course, dict) else {}


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _summary(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith(("#", "@")):
            line = line.strip()
            return f"`{line[:57] + '...' if len(line) > 60 else line}`"
    return "empty"


def _without_ipython_syntax(source: str) -> str:
    """Comment out what only IPython understands: a %%cell magic (the whole cell), %line magics and !shell lines.

    Only a cell that is not valid Python is touched, so a continuation line that starts with % stays code.
    """
    try:
        ast.parse(source)
        return source
    except SyntaxError:
        pass
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return "\n".join("# (IPython) " + line for line in lines)
    out = []
    for line in lines:
        stripped = line.lstrip()
        magic = stripped.startswith(("%", "!")) or re.match(r"^\w+\s*=\s*[!%]", stripped)
        out.append(line[: len(line) - len(stripped)] + "# (IPython) " + stripped if magic else line)
    return "\n".join(out)


def unusable_stub(reason: str) -> str:
    """The .py written in place of a notebook that cannot be used: importing it fails with the reason."""
    return ('"""Written by the grader in place of a notebook it could not use (see the message)."""\n'
            f"raise ImportError({reason!r})\n")


def is_assignment(nb) -> bool:
    course = nb.get("metadata", {}).get("course")
    return isinstance(course, dict) and isinstance(course.get("assignment"), str)


def script_from_notebook_file(path: Path, starter_nb=None) -> str:
    """The .py for an assignment notebook file; its own cells' metadata stand in for a starter when none is given."""
    nb = read_submitted(path.read_bytes(), path.name)
    starter = starter_nb if starter_nb is not None else nb
    if not is_assignment(starter):
        raise NotebookError(f"{path.name} is not an assignment notebook (no metadata.course.assignment)")
    return notebook_to_script(nb, starter, path.name)


def use_submitted_notebooks(starter: Path, code: Path) -> list[str]:
    """After the grader laid a submission over the starter in `code`: for each assignment notebook of the starter
    whose copy in `code` has other code than the starter's, write the .py from it (or a stub that fails with the
    reason). Returns one note per notebook used. Never raises on a submitted file."""
    candidates = [p for p in sorted((starter / "chapters").rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
    if not candidates:
        return []  # no notebooks handed out: nothing to do (and no need for nbformat)
    import nbformat

    notes = []
    for starter_path in candidates:
        rel = starter_path.relative_to(starter)
        try:
            reference = nbformat.reads(starter_path.read_text(encoding="utf-8"), as_version=4)
        except Exception:
            continue  # the instructor's own file; not an assignment notebook the grader can use
        if not is_assignment(reference):
            continue
        submitted, target = code / rel, code / rel.with_suffix(".py")
        try:
            data = submitted.read_bytes()
            if data == starter_path.read_bytes():
                continue  # the starter's notebook, untouched or not submitted: the .py is what counts
            script = notebook_to_script(read_submitted(data, rel.name), reference, rel.name)
            if script == notebook_to_script(reference, reference, rel.name):
                continue  # the same code as handed out (only outputs changed): the .py, maybe edited, counts
            note = f"graded {rel.with_suffix('.py').as_posix()} from the submitted notebook {rel.name}"
        except NotebookError as e:
            script, note = unusable_stub(str(e)), f"could not use the submitted {rel.as_posix()}: {e}"
        except Exception as e:  # anything else about a hostile file: reported, never a grader crash
            reason = f"{rel.name} could not be read ({type(e).__name__}: {_first_line(e)})"
            script, note = unusable_stub(reason), f"could not use the submitted {rel.as_posix()}: {reason}"
        target.write_text(script, encoding="utf-8")
        notes.append(note)
    return notes


# ---- command line ----

def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[2]
    p = argparse.ArgumentParser(prog="python -m common.grading.notebooks", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("sync", help="rebuild chapters/*/notebook.ipynb from notebook.py where they differ")
    sub.add_parser("check", help="list the notebook pairs that are out of sync; exit status 1 if any")
    s = sub.add_parser("script", help="write the .py of an assignment notebook beside it (the grader's conversion)")
    s.add_argument("notebook", type=Path)
    args = p.parse_args(argv)
    if args.command == "sync":
        written = sync(root)
        print("\n".join(f"wrote {w.relative_to(root)}" for w in written) or "all notebooks are in sync")
        return 0
    if args.command == "check":
        problems = [pr for pr in map(pair_problem, chapter_notebooks(root)) if pr]
        print("\n".join(problems) or "all notebooks are in sync")
        return 1 if problems else 0
    try:
        script = script_from_notebook_file(args.notebook)
    except (NotebookError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    target = args.notebook.with_suffix(".py")
    target.write_text(script, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
