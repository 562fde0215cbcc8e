"""Student versions of the repository: solutions out, TODOs in, hidden tests left out.

    python -m common.grading.assign export --out DIR [--chapters ch01_house_price ...]
    python -m common.grading.assign check                 # list the solution regions, fail on a bad marker

In chapter code (`chapters/**.py`) the instructor marks what students write:

    def gradient(self, x, y):
        \"\"\"x: [N, 13], y: [N, 1] -> (dw [13, 1], db scalar)\"\"\"
        # BEGIN SOLUTION
        # PROMPT: the gradient of the mean squared error with respect to w and b
        err = self.forward(x) - y
        return x.T @ err * 2 / len(x), 2 * err.mean()
        # END SOLUTION

or a single statement with a trailing `# SOLUTION`. The export replaces each region (markers included) with
`raise NotImplementedError("TODO: <hint>")` at the region's indentation; the hint is the PROMPT text, else
"implement <function>". Markers are comments found with `tokenize`, so marker text inside strings is left alone.
A region must be a complete block of statements; nested or unpaired markers, a PROMPT that does not follow
BEGIN, and an export that does not parse are errors naming the file and line.

Hidden tests: in `tests/`, a test function or class marked `@pytest.mark.visibility("hidden")` is removed from its
file (decorators included), and a test file whose module-level `pytestmark` says hidden is left out whole.
Hiding works at that granularity only: a hidden case inside a parametrize list is not removed, so give hidden cases
a function of their own. The grader runs hidden tests from the instructor's copy (`python -m common.grading.grade --tests`).

The copy leaves out what git ignores here (caches, runs/, data downloads, build outputs) and the .git folder.
With --chapters, only those chapters (and their tests/test_<chapter>.py) are exported.
"""
from __future__ import annotations

import argparse
import ast
import io
import os
import re
import shutil
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

BEGIN, END, PROMPT, SINGLE = "# BEGIN SOLUTION", "# END SOLUTION", "# PROMPT:", "# SOLUTION"
SKIP_NAMES = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "runs", "build", "dist",
              ".venv", "venv", ".ipynb_checkpoints"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info")
CHAPTER_DIR = re.compile(r"^ch\d+")


class MarkerError(ValueError):
    """A solution marker that cannot be turned into a TODO; the message names the file and line."""


@dataclass
class Region:
    """Lines first..last (1-based, inclusive) become one `raise` at `indent`."""

    first: int
    last: int
    indent: str
    hint: str


# ---- finding the solution regions ----

def _comments(source: str, filename: str):
    """(line, column, normalised text, alone on its line) for every comment."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                alone = not tok.line[: tok.start[1]].strip()
                yield tok.start[0], " ".join(tok.string.split()), alone
    except (tokenize.TokenError, SyntaxError) as e:
        raise MarkerError(f"{filename}: cannot be read as Python: {e}") from None


def find_regions(source: str, filename: str = "<source>") -> list[Region]:
    tree = _parse(source, filename)
    lines = source.splitlines()
    regions: list[Region] = []
    open_at: int | None = None  # line of the BEGIN being read
    prompts: list[str] = []
    prompt_allowed_at = None  # the line where a PROMPT may appear (just after BEGIN or after another PROMPT)
    for line, text, alone in _comments(source, filename):
        where = f"{filename}:{line}"
        if text.startswith(PROMPT):
            if not alone or line != prompt_allowed_at:
                raise MarkerError(f"{where}: {PROMPT} must be on its own line directly after {BEGIN}")
            prompts.append(text[len(PROMPT):].strip())
            prompt_allowed_at = line + 1
        elif text == BEGIN:
            if not alone:
                raise MarkerError(f"{where}: {BEGIN} must be on a line of its own")
            if open_at is not None:
                raise MarkerError(f"{where}: nested {BEGIN} (the region opened at line {open_at} is not closed)")
            open_at, prompts, prompt_allowed_at = line, [], line + 1
        elif text == END:
            if not alone:
                raise MarkerError(f"{where}: {END} must be on a line of its own")
            if open_at is None:
                raise MarkerError(f"{where}: {END} without a {BEGIN}")
            regions.append(_block_region(tree, lines, open_at, line, prompts, filename))
            open_at, prompt_allowed_at = None, None
        elif text == SINGLE or text.startswith(SINGLE + " "):
            if text != SINGLE:
                continue  # e.g. "# SOLUTION CHECK ..." is prose, not a marker
            if open_at is not None:
                raise MarkerError(f"{where}: {SINGLE} inside the region opened at line {open_at}")
            if alone:
                raise MarkerError(f"{where}: {SINGLE} must end a line of code (or use {BEGIN} / {END})")
            regions.append(_statement_region(tree, lines, line, filename))
        elif text.upper().startswith(("# BEGIN SOLUTION", "# END SOLUTION")):
            raise MarkerError(f"{where}: write the marker exactly as {text.upper()[:16]!r}, got {text!r}")
    if open_at is not None:
        raise MarkerError(f"{filename}:{open_at}: {BEGIN} without an {END}")
    return regions


def _parse(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as e:
        raise MarkerError(f"{filename}:{e.lineno}: not valid Python: {e.msg}") from None


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


def _statement_spanning(tree, line: int):
    """The innermost statement whose lines include `line` strictly inside (not a block that merely contains it)."""
    best = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node.lineno < line < node.end_lineno and not _has_body(node):
            best = node
    return best


def _has_body(node: ast.stmt) -> bool:
    blocks = (getattr(node, f, None) for f in ("body", "orelse", "finalbody"))
    return any(isinstance(block, list) and block and isinstance(block[0], ast.stmt) for block in blocks)


def _statement_region(tree, lines, line: int, filename: str) -> Region:
    candidates = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and not _has_body(n) and n.end_lineno == line]
    if not candidates:
        raise MarkerError(f"{filename}:{line}: {SINGLE} must end a simple statement (an assignment, a return, ...)")
    node = min(candidates, key=lambda n: n.lineno)
    indent = _indent(lines[node.lineno - 1])
    if node.col_offset != len(indent):
        raise MarkerError(f"{filename}:{line}: {SINGLE} must mark a statement that starts its own line")
    return Region(node.lineno, line, indent, _default_hint(tree, line))


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
        todo = _quote("TODO: " + region.hint)
        lines[region.first - 1: region.last] = [f"{region.indent}raise NotImplementedError({todo})\n"]
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


# ---- the export ----

def _ignored(rel: Path) -> bool:
    parts = rel.parts
    if any(p in SKIP_NAMES or p.endswith(SKIP_SUFFIXES) for p in parts):
        return True
    return len(parts) > 1 and parts[0] == "data" and rel.as_posix() != "data/README.md"


def source_files(root: Path, chapters: list[str] | None = None, exclude: Path | None = None) -> list[Path]:
    """Files to export, relative to root, in a stable order."""
    all_chapters = {p.name for p in (root / "chapters").glob("*") if p.is_dir() and CHAPTER_DIR.match(p.name)}
    dropped = all_chapters - set(chapters) if chapters else set()
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if exclude is not None and (here == exclude or exclude in here.parents):
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not _ignored((here / d).relative_to(root)))
        for name in sorted(filenames):
            rel = (here / name).relative_to(root)
            if _ignored(rel) or (here / name).is_symlink():
                continue
            if rel.parts[0] == "chapters" and len(rel.parts) > 2 and rel.parts[1] in dropped:
                continue
            if rel.parts[0] == "tests" and rel.stem.startswith("test_") and rel.stem[5:] in dropped:
                continue
            files.append(rel)
    return files


@dataclass
class ExportReport:
    files: int = 0
    regions: int = 0
    files_with_regions: int = 0
    hidden_removed: int = 0
    hidden_files: int = 0


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
        known = sorted(p.name for p in (root / "chapters").glob("*") if p.is_dir() and CHAPTER_DIR.match(p.name))
        unknown = [c for c in chapters if c not in known]
        if unknown:
            raise ValueError(f"unknown chapter(s) {', '.join(unknown)}; choose from: {', '.join(known)}")
    report = ExportReport()
    planned: list[tuple[Path, bytes | None, Path]] = []  # (destination, new content or None to copy, source)
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
    for dest, content, src in planned:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            shutil.copy2(src, dest)
        else:
            dest.write_bytes(content)
            shutil.copymode(src, dest)
        report.files += 1
    return report


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
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                   help="the repository with the solutions (default: this one)")
    sub = p.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="copy the repository with solutions replaced by TODOs and hidden tests removed")
    ex.add_argument("--out", type=Path, required=True, help="a new (or empty) folder for the student version")
    ex.add_argument("--chapters", nargs="+", default=None, help="only these chapters (default: all)")
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
                print(f"{rel}:{r.first}-{r.last}  TODO: {r.hint}")
            print(f"{len(regions)} solution region(s), markers OK")
            return 0
        report = export(root, args.out, args.chapters, notebooks=args.notebooks)
    except (MarkerError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported {report.files} files to {args.out}: {report.regions} solution region(s) in "
          f"{report.files_with_regions} file(s) replaced by TODOs; {report.hidden_removed} hidden test(s) left out"
          + (f" ({report.hidden_files} whole file(s))" if report.hidden_files else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
