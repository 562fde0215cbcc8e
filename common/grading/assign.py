"""Student versions of the repository: solutions out, TODOs in, hidden tests and the instructor's files left out.

    python -m common.grading.assign export --out DIR [--chapters ch01_house_price ...] [--no-free-points]
    python -m common.grading.assign check                 # list the solution regions, fail on a bad marker

In chapter code (`chapters/**.py`) the instructor marks what students write:

    def gradient(self, x, y):
        \"\"\"x: [N, 13], y: [N, 1] -> (dw [13, 1], db scalar)\"\"\"
        # BEGIN SOLUTION
        # PROMPT: the gradient of the mean squared error with respect to w and b
        err = self.forward(x) - y
        return x.T @ err * 2 / len(x), 2 * err.mean()
        # END SOLUTION

or a single statement with a trailing `# SOLUTION` (a `# PROMPT: hint` line directly above it gives the hint). The
export replaces each region (markers included) with `raise NotImplementedError("TODO: <hint>")` at the region's
indentation; the hint is the PROMPT text, else "set <target>" for an assignment (`self.w = ...  # SOLUTION` ->
"TODO: set self.w"), else "implement <function>".

otter-grader's Python markers work too, with otter's meaning:
- `# BEGIN SOLUTION NO PROMPT` ... `# END SOLUTION`: the code is removed and nothing takes its place;
- a string statement `\"\"\" # BEGIN PROMPT` ... `\"\"\" # END PROMPT` (''' and `\"\"\"; # END PROMPT` work too): in the
  student copy the lines between the quotes become code, e.g. a skeleton in place of a NO PROMPT solution;
- a statement ending in `# SOLUTION NO PROMPT` is removed.
Unlike otter, a `# SOLUTION` line becomes a `raise`, not `x = ...`: a bare `...` runs on silently and the tests then
fail far from the cause, while the raise names the TODO where it is.

Markers are found with `tokenize`, so marker text inside ordinary strings is left alone. A region must be a complete
block of statements; nested or unpaired markers, a PROMPT that belongs to no region, and an export that does not
parse are errors naming the file and line.

Hidden tests: in `tests/`, a test function or class marked `@pytest.mark.visibility("hidden")` is removed from its
file (decorators included), and a test file whose module-level `pytestmark` says hidden is left out whole.
Hiding works at that granularity only: a hidden case inside a parametrize list is not removed, so give hidden cases
a function of their own. The grader runs hidden tests from the instructor's copy (`python -m common.grading.grade --tests`).

What is copied (source_files):
- in a git checkout (one that tracks chapters/), the files git tracks (`git ls-files`): an untracked note, `.env`,
  launcher `log/` or answer file never leaves the instructor's machine; untracked files under chapters/, common/
  and tests/ are listed, so that a forgotten `git add` shows;
- elsewhere, an allowlist: the top-level ALLOWED_TOP_FILES, and under ALLOWED_DIRS the files whose suffix is in
  ALLOWED_SUFFIXES, hidden names (.env, .ipynb_checkpoints) excluded.
Either way caches, runs/, data downloads and symlinks stay behind, and so does INSTRUCTOR_ONLY: the tests of the
instructor's tools (they test the grader, the export, the scaffold and the README generator, not a student's work;
the scaffold's test errors in a copy with TODOs). common/grading/ itself ships: tests/conftest.py may take fixtures
from it (partial credit), and a student may run the grader on their own copy to see the visible points
(the real score comes from the instructor's run, with the hidden tests and only the submission's chapters/ taken).
With --chapters, only those chapters (and their tests/test_<chapter>*.py) are exported.

The export adds a root `conftest.py` (GUARD_CONFTEST): pytest in the student copy imports `chapters` and `common`
from the copy or not at all, so an installed copy of the course (pip install -e of the instructor's repository)
cannot fill in a module the copy lacks, such as a chapter left out by --chapters. (pyproject's
`pythonpath = ["."]` already puts the copy first for the modules it has.)

Then `export` grades the fresh copy (python -m common.grading.grade, in a process of its own) and prints, per
chapter, the points an untouched copy already earns, so the instructor sees free points before handing out;
--no-free-points skips that.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

BEGIN, END, PROMPT, SINGLE = "# BEGIN SOLUTION", "# END SOLUTION", "# PROMPT:", "# SOLUTION"
NO_PROMPT = " NO PROMPT"  # otter-grader: the solution is removed and nothing takes its place
BEGIN_PROMPT, END_PROMPT = "# BEGIN PROMPT", "# END PROMPT"  # otter-grader: a string whose lines become code
PROMPT_STRING = re.compile(r"^[rRuU]?(\"\"\"|''')[ \t]*# BEGIN PROMPT[ \t]*\r?\n")
SKIP_NAMES = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "runs", "build", "dist",
              ".venv", "venv", ".ipynb_checkpoints"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info")
CHAPTER_DIR = re.compile(r"^ch\d+")
# Outside a git checkout only these are copied (see the module docstring).
ALLOWED_TOP_FILES = ("README.md", "requirements.txt", "pyproject.toml", ".gitignore", "LICENSE", "LICENSE.md",
                     "LICENSE.txt")
ALLOWED_DIRS = ("chapters", "common", "tests")
ALLOWED_SUFFIXES = {".py", ".md", ".txt", ".toml", ".cfg", ".ini", ".json", ".yaml", ".yml", ".ipynb", ".csv",
                    ".png", ".jpg", ".jpeg", ".svg"}
# The tests of the instructor's tools: never in a student copy (fnmatch patterns on the relative path). The README
# tool's test too: it checks that the READMEs show what the reference prints, which a copy with TODOs cannot.
INSTRUCTOR_ONLY = ("tests/test_assign*.py", "tests/test_grade*.py", "tests/test_new_chapter*.py", "tests/test_docs*.py")
TOOLS_ROOT = Path(__file__).resolve().parents[2]  # the repository these tools run from (the grader runs from here)
GUARD_CONFTEST = '''\
"""Written by `python -m common.grading.assign export`: pytest here tests this copy's code and nothing else.

pyproject.toml puts this folder first on the import path; the finder below also keeps an installed copy of the
course (say, `pip install -e` of another checkout) from filling in a module that this copy lacks.
"""
import importlib.machinery
import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
_PACKAGES = ("chapters", "common")


class _ThisCopyOnly:
    """A meta path finder, first in line: these packages come from this folder or not at all."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in _PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path if "." in fullname else [_HERE])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {fullname!r} in this copy ({_HERE})", name=fullname)
        return spec


sys.meta_path.insert(0, _ThisCopyOnly())
'''


class MarkerError(ValueError):
    """A solution marker that cannot be turned into a TODO; the message names the file and line."""


@dataclass
class Region:
    """Lines first..last (1-based, inclusive) of the reference. In the student copy they become `replacement`
    (source lines; "" removes them) or, when that is None, one `raise NotImplementedError("TODO: <hint>")`."""

    first: int
    last: int
    indent: str
    hint: str
    replacement: str | None = None

    def student_lines(self) -> list[str]:
        if self.replacement is None:
            return [f"{self.indent}raise NotImplementedError({_quote('TODO: ' + self.hint)})\n"]
        return self.replacement.splitlines(keepends=True)

    def describe(self) -> str:
        if self.replacement is None:
            return f"TODO: {self.hint}"
        if not self.replacement:
            return "removed (NO PROMPT)"
        return f"prompt code, {len(self.replacement.splitlines())} line(s)"


# ---- finding the solution regions ----

@dataclass
class _Mark:
    line: int
    text: str  # a comment, whitespace-normalised; BEGIN_PROMPT for a string that opens an otter prompt
    alone: bool  # only indentation before it on its line
    end: int  # its last line (a prompt string spans several)


def _marks(source: str, filename: str):
    """Every comment, and every string that opens an otter PROMPT block, in source order."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                alone = not tok.line[: tok.start[1]].strip()
                yield _Mark(tok.start[0], " ".join(tok.string.split()), alone, tok.start[0])
            elif tok.type == tokenize.STRING and PROMPT_STRING.match(tok.string):
                yield _Mark(tok.start[0], BEGIN_PROMPT, True, tok.end[0])
    except (tokenize.TokenError, SyntaxError) as e:
        raise MarkerError(f"{filename}: cannot be read as Python: {e}") from None


def find_regions(source: str, filename: str = "<source>") -> list[Region]:
    """The solution regions of `source`, in order (MarkerError for markers that do not pair up)."""
    return [dataclasses.replace(r) for r in _find_regions(source, filename)]  # copies: callers may change them


@functools.lru_cache(maxsize=256)
def _find_regions(source: str, filename: str) -> tuple[Region, ...]:
    # An export, a notebook and its answer key read each file several times: each is scanned once.
    tree = _parse(source, filename)
    lines = source.splitlines(keepends=True)
    regions: list[Region] = []
    open_at: int | None = None  # line of the BEGIN being read
    removes = False  # the open region is a BEGIN SOLUTION NO PROMPT
    prompts: list[str] = []
    prompt_allowed_at = None  # the line where a PROMPT may appear (just after BEGIN or after another PROMPT)
    above: list[_Mark] = []  # PROMPT lines outside a region, waiting for the `# SOLUTION` line below them
    prompt_string: _Mark | None = None  # a BEGIN PROMPT string waiting for its END PROMPT comment

    def dangling() -> MarkerError:
        return MarkerError(f"{filename}:{above[0].line}: {PROMPT} must be on its own line directly after {BEGIN}, "
                           f"or directly above a line of code that ends in {SINGLE}")

    for mark in _marks(source, filename):
        where, text = f"{filename}:{mark.line}", mark.text
        if prompt_string is not None and not (text == END_PROMPT and mark.line == prompt_string.end):
            raise MarkerError(f"{filename}:{prompt_string.line}: the {BEGIN_PROMPT} string must be closed by "
                              f"{END_PROMPT} after its closing quotes, on line {prompt_string.end}")
        if above and text != SINGLE and text.startswith((BEGIN, END, BEGIN_PROMPT, END_PROMPT, SINGLE)):
            raise dangling()
        if text.startswith(PROMPT):
            if open_at is None and mark.alone and (not above or above[-1].line == mark.line - 1):
                above.append(mark)
                continue
            if above:
                raise dangling()
            if not mark.alone or mark.line != prompt_allowed_at:
                raise MarkerError(f"{where}: {PROMPT} must be on its own line directly after {BEGIN}"
                                  + (" (a NO PROMPT region shows nothing, so it takes no hint)" if removes else ""))
            prompts.append(text[len(PROMPT):].strip())
            prompt_allowed_at = mark.line + 1
        elif text in (BEGIN, BEGIN + NO_PROMPT):
            if not mark.alone:
                raise MarkerError(f"{where}: {text} must be on a line of its own")
            if open_at is not None:
                raise MarkerError(f"{where}: nested {BEGIN} (the region opened at line {open_at} is not closed)")
            open_at, removes, prompts = mark.line, text != BEGIN, []
            prompt_allowed_at = None if removes else mark.line + 1
        elif text in (END, END + NO_PROMPT):
            if not mark.alone:
                raise MarkerError(f"{where}: {text} must be on a line of its own")
            if open_at is None:
                raise MarkerError(f"{where}: {text} without a {BEGIN}")
            if text != END and not removes:
                raise MarkerError(f"{where}: {text} closes a {BEGIN}{NO_PROMPT} only; write {END}")
            region = _block_region(tree, lines, open_at, mark.line, prompts, filename)
            region.replacement = "" if removes else None
            regions.append(region)
            open_at, removes, prompt_allowed_at = None, False, None
        elif text == BEGIN_PROMPT:
            if not mark.alone or mark.end == mark.line:
                raise MarkerError(f'{where}: {BEGIN_PROMPT} belongs in a string that opens on its line: '
                                  f'""" {BEGIN_PROMPT} (the code, on lines of its own) """ {END_PROMPT}')
            if open_at is not None:
                raise MarkerError(f"{where}: a {BEGIN_PROMPT} string inside the region opened at line {open_at}")
            prompt_string = mark
        elif text == END_PROMPT:
            if prompt_string is None:
                raise MarkerError(f'{where}: {END_PROMPT} without a """ {BEGIN_PROMPT} string')
            regions.append(_prompt_region(tree, lines, prompt_string, filename))
            prompt_string = None
        elif text in (SINGLE, SINGLE + NO_PROMPT):
            if open_at is not None:
                raise MarkerError(f"{where}: {text} inside the region opened at line {open_at}")
            if mark.alone:
                raise MarkerError(f"{where}: {text} must end a line of code (or use {BEGIN} / {END})")
            region = _statement_region(tree, lines, mark.line, filename)
            if text != SINGLE:
                region.replacement = ""
            elif above:
                if above[-1].line != region.first - 1:
                    raise dangling()
                region.first, region.hint = above[0].line, " ".join(m.text[len(PROMPT):].strip() for m in above)
                above = []
            regions.append(region)
        elif text.startswith(SINGLE + " "):
            continue  # e.g. "# SOLUTION CHECK ..." is prose, not a marker
        elif text.upper().startswith(("# BEGIN SOLUTION", "# END SOLUTION")):
            raise MarkerError(f"{where}: write the marker exactly as {text.upper()[:16]!r}, got {text!r}")
    if above:
        raise dangling()
    if prompt_string is not None:
        raise MarkerError(f"{filename}:{prompt_string.line}: the {BEGIN_PROMPT} string has no {END_PROMPT}")
    if open_at is not None:
        raise MarkerError(f"{filename}:{open_at}: {BEGIN} without an {END}")
    return tuple(regions)


def _parse(source: str, filename: str) -> ast.Module:
    """The parsed source; shared between callers (an export reads each file several times), so never changed."""
    tree = _parse_cached(source, filename)
    if isinstance(tree, SyntaxError):
        raise MarkerError(f"{filename}:{tree.lineno}: not valid Python: {tree.msg}") from None
    return tree


@functools.lru_cache(maxsize=256)
def _parse_cached(source: str, filename: str):
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as e:
        return e


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _block_region(tree, lines, begin: int, end: int, prompts: list[str], filename: str) -> Region:
    indent = _indent(lines[begin - 1])
    code = [n for n in range(begin + 1, end) if lines[n - 1].strip() and not lines[n - 1].strip().startswith("#")]
    if not code:
        raise MarkerError(f"{filename}:{begin}: empty solution region (no code between {BEGIN} and {END})")
    if _indent(lines[code[0] - 1]) != indent:
        raise MarkerError(f"{filename}:{begin}: {BEGIN} is indented differently from the code it wraps "
                          f"(line {code[0]})")
    outdented = [n for n in code if not _indent(lines[n - 1]).startswith(indent)]
    if outdented or _indent(lines[end - 1]) != indent:
        raise MarkerError(f"{filename}:{(outdented or [end])[0]}: the region opened at line {begin} runs out of "
                          f"its block; {END} must close it at the indentation of {BEGIN}")
    for n in (begin, end):  # the markers must not sit inside a statement that starts or ends outside the region
        node = _statement_spanning(tree, n)
        if node is not None and not (begin < node.lineno and node.end_lineno < end):
            raise MarkerError(f"{filename}:{n}: the region {begin}-{end} cuts the statement at line {node.lineno}; "
                              "a region must be whole statements")
    hint = " ".join(p for p in prompts if p) or _default_hint(tree, begin)
    return Region(begin, end, indent, hint)


def _prompt_region(tree, lines, mark: _Mark, filename: str) -> Region:
    """An otter PROMPT string statement; in the student copy the lines between its quotes are code."""
    statement = next((n for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                      and isinstance(n.value.value, str) and (n.lineno, n.end_lineno) == (mark.line, mark.end)), None)
    if statement is None or statement.col_offset != len(_indent(lines[mark.line - 1])):
        raise MarkerError(f"{filename}:{mark.line}: the {BEGIN_PROMPT} string must be a statement of its own")
    if not lines[mark.end - 1].lstrip().startswith(("'''", '"""')):
        raise MarkerError(f"{filename}:{mark.end}: put the closing quotes of the {BEGIN_PROMPT} string at the start "
                          "of their line (the lines between the quotes become the student's code)")
    return Region(mark.line, mark.end, _indent(lines[mark.line - 1]), "", "".join(lines[mark.line: mark.end - 1]))


def _statement_spanning(tree, line: int):
    """The innermost statement whose lines include `line` strictly inside (not a block that merely contains it)."""
    best = None
    for node in _simple_statements(tree):
        if node.lineno < line < node.end_lineno:
            best = node
    return best


@functools.lru_cache(maxsize=256)
def _simple_statements(tree: ast.Module) -> tuple[ast.stmt, ...]:
    """The statements without a block of their own (assignments, calls, returns ...) in ast.walk's order: listed
    once per file, not once per marker."""
    return tuple(n for n in ast.walk(tree) if isinstance(n, ast.stmt) and not _has_body(n))


def _has_body(node: ast.stmt) -> bool:
    blocks = (getattr(node, f, None) for f in ("body", "orelse", "finalbody"))
    return any(isinstance(block, list) and block and isinstance(block[0], ast.stmt) for block in blocks)


def _statement_region(tree, lines, line: int, filename: str) -> Region:
    candidates = [n for n in _simple_statements(tree) if n.end_lineno == line]
    if not candidates:
        raise MarkerError(f"{filename}:{line}: {SINGLE} must end a simple statement (an assignment, a return, ...)")
    node = min(candidates, key=lambda n: n.lineno)
    indent = _indent(lines[node.lineno - 1])
    if node.col_offset != len(indent):
        raise MarkerError(f"{filename}:{line}: {SINGLE} must mark a statement that starts its own line")
    return Region(node.lineno, line, indent, _assignment_hint(node) or _default_hint(tree, line))


def _assignment_hint(node: ast.stmt) -> str | None:
    """What a marked assignment is for, read from its left-hand side: `self.w = ...` -> "set self.w"."""
    def name(target: ast.expr) -> str:
        if isinstance(target, (ast.Tuple, ast.List)):
            return ", ".join(ast.unparse(t) for t in target.elts)
        return ast.unparse(target)

    if isinstance(node, ast.Assign):
        return "set " + " and ".join(name(t) for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return "set " + name(node.target)
    if isinstance(node, ast.AugAssign):
        return "update " + name(node.target)
    return None


def _default_hint(tree, line: int) -> str:
    names: list[str] = []

    def visit(node, trail):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                    child.lineno <= line <= child.end_lineno:
                names[:] = trail + [child.name]
                visit(child, trail + [child.name])
            elif isinstance(child, ast.stmt) and _has_body(child):
                visit(child, trail)

    visit(tree, [])
    return f"implement {'.'.join(names)}" if names else "write this part"


def strip_solutions(source: str, filename: str = "<source>") -> tuple[str, int]:
    """The student version of one file and the number of regions replaced."""
    regions = find_regions(source, filename)
    if not regions:
        return source, 0
    lines = source.splitlines(keepends=True)
    for region in sorted(regions, key=lambda r: r.first, reverse=True):
        lines[region.first - 1: region.last] = region.student_lines()
    result = "".join(lines)
    try:
        ast.parse(result, filename=filename)
    except SyntaxError as e:
        raise MarkerError(f"{filename}:{e.lineno}: the student version does not parse ({e.msg}); "
                          "does a region leave a block without statements?") from None
    return result, len(regions)


def _quote(text: str) -> str:
    return f'"{text}"' if '"' not in text and "\\" not in text else repr(text)


# ---- hidden tests ----

def _is_hidden_mark(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "visibility"
            and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) and node.args[0].value == "hidden")


def remove_hidden_tests(source: str, filename: str = "<test>") -> tuple[str | None, int]:
    """The test file without its hidden tests (None: the whole module is hidden) and how many were removed."""
    tree = _parse(source, filename)
    spans = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            marks = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            if any(_is_hidden_mark(m) for m in marks):
                return None, sum(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in tree.body)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if any(_is_hidden_mark(d) for d in node.decorator_list):
                spans.append(node)
            elif isinstance(node, ast.ClassDef):
                spans += [m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                          and any(_is_hidden_mark(d) for d in m.decorator_list)]
    if not spans:
        return source, 0
    lines = source.splitlines(keepends=True)
    for node in sorted(spans, key=lambda n: n.lineno, reverse=True):
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        del lines[first - 1: node.end_lineno]
    result = re.sub(r"\n{4,}", "\n\n\n", "".join(lines))
    _parse(result, filename)
    return result, len(spans)


# ---- what is copied ----

def _ignored(rel: Path) -> bool:
    parts = rel.parts
    if any(p in SKIP_NAMES or p.endswith(SKIP_SUFFIXES) for p in parts):
        return True
    return len(parts) > 1 and parts[0] == "data" and rel.as_posix() != "data/README.md"


def _instructor_only(rel: Path) -> bool:
    return any(fnmatch.fnmatchcase(rel.as_posix(), pattern) for pattern in INSTRUCTOR_ONLY)


def _git(root: Path, *args: str) -> list[Path] | None:
    """`git -C root <args> -z` as paths relative to root; None when root is in no git checkout."""
    env = dict(os.environ, LC_ALL="C", LANGUAGE="C")  # messages in English, so "not a git repository" can be read
    try:
        proc = subprocess.run(["git", "-C", str(root), *args, "-z"], capture_output=True, env=env, timeout=120)
    except FileNotFoundError:  # git is not installed
        if any((folder / ".git").exists() for folder in (root, *root.parents)):
            raise ValueError(f"{root} is a git checkout but the git command is missing; install git (the export "
                             "copies the files git tracks)") from None
        return None
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip()
        if "not a git repository" in message:
            return None
        said = message.splitlines()[-1] if message else f"exit code {proc.returncode}"
        raise ValueError(f"git {' '.join(args)} failed in {root}: {said}")
    return [Path(p) for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def tracked_files(root: Path) -> list[Path] | None:
    """What git tracks under root; None outside a git checkout, or in one that does not track the course's chapters/
    (say, a home folder kept in git)."""
    files = _git(root, "ls-files", "--cached")
    return files if files and any(f.parts[0] == "chapters" for f in files) else None


def allowlisted_files(root: Path) -> list[Path]:
    """Outside git: the course's own kinds of files, never hidden ones (.env, .ipynb_checkpoints)."""
    files = [Path(name) for name in ALLOWED_TOP_FILES if (root / name).is_file()]
    if (root / "data" / "README.md").is_file():
        files.append(Path("data/README.md"))
    for top in ALLOWED_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files += [(Path(dirpath) / name).relative_to(root) for name in sorted(filenames)
                      if not name.startswith(".") and Path(name).suffix.lower() in ALLOWED_SUFFIXES]
    return files


def _chapter_of_test(name: str, chapters: set[str]) -> str | None:
    """The chapter a test file is about: test_ch02_mnist.py, test_ch02_mnist_photos.py, test_ch02_x.py -> ch02_mnist."""
    stem = name.removesuffix(".py")
    if not stem.startswith("test_"):
        return None
    rest = stem[len("test_"):]
    for chapter in chapters:
        if rest == chapter or rest.startswith(chapter + "_"):
            return chapter
    number = re.match(r"(ch\d+)(_|$)", rest)
    same_number = [c for c in chapters if number and c.split("_")[0] == number.group(1)]
    return same_number[0] if len(same_number) == 1 else None


def _chapter_names(root: Path) -> set[str]:
    return {p.name for p in (root / "chapters").glob("*") if p.is_dir() and CHAPTER_DIR.match(p.name)}


def source_files(root: Path, chapters: list[str] | None = None, exclude: Path | None = None) -> list[Path]:
    """Files to export, relative to root, in a stable order (see the module docstring)."""
    root = root.resolve()
    listed = tracked_files(root)
    if listed is None:
        listed = allowlisted_files(root)
    every_chapter = _chapter_names(root)
    dropped = every_chapter - set(chapters) if chapters else set()
    files = []
    for rel in sorted(set(listed)):
        path = root / rel
        if _ignored(rel) or _instructor_only(rel) or path.is_symlink() or not path.is_file():
            continue
        if exclude is not None and (exclude == path or exclude in path.parents):
            continue
        if rel.parts[0] == "chapters" and len(rel.parts) > 2 and rel.parts[1] in dropped:
            continue
        if rel.parts[0] == "tests" and _chapter_of_test(rel.name, every_chapter) in dropped:
            continue
        files.append(rel)
    return files


def untracked_course_files(root: Path, exclude: Path | None = None) -> list[Path]:
    """Files under chapters/, common/, tests/ that git neither tracks nor ignores: likely a forgotten `git add`."""
    root = root.resolve()
    if tracked_files(root) is None:
        return []
    found = _git(root, "ls-files", "--others", "--exclude-standard") or []
    return [rel for rel in found if rel.parts[0] in ALLOWED_DIRS and not _ignored(rel)
            and not (exclude is not None and exclude in (root / rel).parents)]


# ---- the export ----

@dataclass
class ExportReport:
    files: int = 0
    regions: int = 0
    files_with_regions: int = 0
    hidden_removed: int = 0
    hidden_files: int = 0
    from_git: bool = False  # the files came from `git ls-files` (else from the allowlist)
    untracked: list[str] = field(default_factory=list)  # course files git does not track, left out


def export(root: Path, out: Path, chapters: list[str] | None = None, notebooks: bool = False) -> ExportReport:
    """Write the student version of `root` to `out` (a new or empty folder). Nothing is written on an error.

    notebooks: also write each chapter file that has TODOs as an assignment notebook beside it (X.py -> X.ipynb).
    """
    root, out = root.resolve(), out.resolve()
    if out == root or out in root.parents:
        raise ValueError(f"--out {out} would contain the repository itself; choose a folder outside it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not empty; choose a new folder")
    if chapters:
        known = sorted(_chapter_names(root))
        unknown = [c for c in chapters if c not in known]
        if unknown:
            raise ValueError(f"unknown chapter(s) {', '.join(unknown)}; choose from: {', '.join(known)}")
    if (root / "conftest.py").exists():
        raise ValueError(f"{root / 'conftest.py'}: the export writes the student copy's root conftest.py itself "
                         "(it keeps pytest on the copy's own code); move your fixtures to tests/conftest.py")
    report = ExportReport(from_git=tracked_files(root) is not None)
    report.untracked = [p.as_posix() for p in untracked_course_files(root, exclude=out)]
    planned: list[tuple[Path, bytes | None, Path | None]] = []  # (destination, new content or None to copy, source)
    for rel in source_files(root, chapters, exclude=out):
        src = root / rel
        content = None
        if rel.suffix == ".py" and rel.parts[0] == "chapters":
            text, n = strip_solutions(src.read_text(encoding="utf-8"), rel.as_posix())
            if n:
                report.regions += n
                report.files_with_regions += 1
                content = text.encode("utf-8")
                if notebooks:  # the same TODOs as a notebook (common/grading/notebooks.py)
                    from common.grading.notebooks import assignment_ipynb

                    notebook = assignment_ipynb(src.read_text(encoding="utf-8"), rel.as_posix())
                    planned.append((out / rel.with_suffix(".ipynb"), notebook.encode("utf-8"), src))
        elif rel.suffix == ".py" and rel.parts[0] == "tests" and rel.name.startswith("test_"):
            text, n = remove_hidden_tests(src.read_text(encoding="utf-8"), rel.as_posix())
            if text is None:
                report.hidden_files += 1
                report.hidden_removed += n
                continue
            if n:
                report.hidden_removed += n
                content = text.encode("utf-8")
        planned.append((out / rel, content, src))
    planned.append((out / "conftest.py", GUARD_CONFTEST.encode("utf-8"), None))
    for dest, content, src in planned:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            shutil.copy2(src, dest)
        else:
            dest.write_bytes(content)
            if src is not None:
                shutil.copymode(src, dest)
        report.files += 1
    return report


def free_points(student: Path) -> dict[str, tuple[float, float]]:
    """(earned, possible) per chapter for an untouched student copy, as the grader counts them.

    Runs `python -m common.grading.grade` on the copy in a process of its own, the way an instructor would.
    """
    student = Path(student).resolve()  # the grader runs in the tools' folder, not where `--out` was relative to
    with tempfile.TemporaryDirectory(prefix="course-free-points-") as tmp:
        results = Path(tmp) / "results.json"
        command = [sys.executable, "-m", "common.grading.grade", "--submission", str(student), "--starter",
                   str(student), "--tests", str(student / "tests"), "--json", str(results)]
        proc = subprocess.run(command, cwd=TOOLS_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        try:
            data = json.loads(results.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            said = (proc.stderr or proc.stdout).strip().splitlines()
            raise RuntimeError(f"the grader wrote no results (exit code {proc.returncode})"
                               + (f": {said[-1]}" if said else "")) from None
    per_chapter: dict[str, tuple[float, float]] = {}
    for test in data.get("tests", []):
        stem = Path(test["name"].split("::", 1)[0]).stem
        chapter = stem.removeprefix("test_")
        earned, possible = per_chapter.get(chapter, (0, 0))
        per_chapter[chapter] = (earned + test["score"], possible + test["max_score"])
    if not per_chapter:
        said = str(data.get("output", "")).strip().splitlines()
        raise RuntimeError("the grader counted no graded tests" + (f": {said[0]}" if said else ""))
    return per_chapter


def free_points_table(points: dict[str, tuple[float, float]]) -> str:
    width = max(len(c) for c in [*points, "total"])
    rows = [f"  {chapter:<{width}}  {earned:>5g} / {possible:g}" for chapter, (earned, possible) in points.items()]
    earned, possible = sum(e for e, _ in points.values()), sum(p for _, p in points.values())
    rows.append(f"  {'total':<{width}}  {earned:>5g} / {possible:g}")
    return "\n".join(rows)


def check(root: Path) -> list[tuple[str, Region]]:
    """Every solution region under chapters/, as (file, region); raises MarkerError on the first bad marker."""
    found = []
    for rel in source_files(root):
        if rel.suffix == ".py" and rel.parts[0] == "chapters":
            source = (root / rel).read_text(encoding="utf-8")
            found += [(rel.as_posix(), r) for r in find_regions(source, rel.as_posix())]
            strip_solutions(source, rel.as_posix())
    return found


# ---- command line ----

def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m common.grading.assign", description="Make the student version of the course.")
    p.add_argument("--root", type=Path, default=TOOLS_ROOT,
                   help="the repository with the solutions (default: this one)")
    sub = p.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="copy what the course tracks, with solutions replaced by TODOs and hidden "
                                       "tests and the instructor's tools left out")
    ex.add_argument("--out", type=Path, required=True, help="a new (or empty) folder for the student version")
    ex.add_argument("--chapters", nargs="+", default=None, help="only these chapters (default: all)")
    ex.add_argument("--no-free-points", action="store_true",
                    help="do not grade the fresh copy (by default the points an untouched copy earns are printed)")
    ex.add_argument("--notebooks", action="store_true",
                    help="also write each chapter file with TODOs as a notebook beside it (X.ipynb, TODO cells), "
                         "which students may submit in place of X.py")
    sub.add_parser("check", help="list the solution regions; fail on a bad marker")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "chapters").is_dir():
        parser.error(f"--root {root} has no chapters/ folder")
    try:
        if args.command == "check":
            regions = check(root)
            for rel, r in regions:
                print(f"{rel}:{r.first}-{r.last}  {r.describe()}")
            print(f"{len(regions)} solution region(s), markers OK")
            return 0
        report = export(root, args.out, args.chapters, notebooks=args.notebooks)
    except (MarkerError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported {report.files} files to {args.out}: {report.regions} solution region(s) in "
          f"{report.files_with_regions} file(s) replaced by TODOs; {report.hidden_removed} hidden test(s) left out"
          + (f" ({report.hidden_files} whole file(s))" if report.hidden_files else ""))
    print("copied: the files git tracks" if report.from_git else
          "copied: the allowlisted files (not a git checkout; see common/grading/assign.py)")
    if report.untracked:
        shown = ", ".join(report.untracked[:5]) + (", ..." if len(report.untracked) > 5 else "")
        print(f"left out {len(report.untracked)} untracked file(s) ({shown}); `git add` what students should get")
    if not args.no_free_points:
        try:
            points = free_points(args.out)
        except RuntimeError as e:
            print(f"could not measure the free points: {e}", file=sys.stderr)
        else:
            print("free points: what an untouched copy already earns (python -m common.grading.grade on it):")
            print(free_points_table(points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
