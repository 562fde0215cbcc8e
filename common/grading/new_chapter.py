"""Start a new task from a chapter: copy it, rename it, and get template tests that pass at once.

    python -m common.grading.new_chapter ch07_flowers --from ch02_mnist

makes chapters/ch07_flowers/: every file of the source chapter (its scripts: the five steps in `train.py`, and
the side scripts that reach data and model through those steps: predict, comparisons, benchmarks), with each
whole-word mention of `ch02_mnist` rewritten to `ch07_flowers` -- module paths `chapters.ch02_mnist`, `NAME`, and
so the default output folders `runs/ch07_flowers/...` -- and the short alias `ch02` to `ch07`. What the chapters
share stays shared in common/ and is not copied. The README.md is a stub that lists the five steps to fill in,
what was copied and why, and how to point the copy at your own data. tests/test_ch07_flowers.py holds the
template tests:

    the five steps are exposed | a run end to end on tiny data writes metrics.json | the model's output shape |
    its parameters, layer by layer (name and shape) | its trainable parameter count (the sum of those shapes)

The shapes are measured now, on one tiny run of the copy (`--epochs 1`, `--offline`, `--no-figures`, `--device cpu`
and a training subset such as `--train-size 256`, where the chapter has them), and written into the test file the way
a reader counts them: one line per parameter with its shape, and the total as the sum of their products. So they
pass at once; a changed model (another layer, another width, another number of classes) fails them until the
test is updated with the new layer list -- which is the point: the change is then a reviewed one.
With `--data my_photos/` the tiny run and the template tests use your data (the copy's `--data`), so the
recorded layers are those of the model your data makes (3 classes: a last layer 84 -> 3).
A copy whose .py files still name another chapter is reported (a side script that bypasses the steps).
It refuses to overwrite an existing chapter or test file and rejects a name that is not a Python identifier;
`--root` scaffolds into another repository (the tests use a temporary one).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import keyword
import math
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEPS = ("load_data", "build_model", "configure", "train", "save", "main")
TEXT_SUFFIXES = {".py", ".md", ".txt", ".json", ".yaml", ".yml", ".cfg", ".toml"}
SKIP = {"__pycache__", ".pytest_cache", "README.md"}
TINY_FLAGS = ("--offline", "--no-figures")  # switches that keep a run local and small, when the chapter has them
TINY_OPTIONS = {"--epochs": "1", "--device": "cpu", "--limit": "256", "--subset": "256", "--max-samples": "256",
                "--train-size": "256"}


class ScaffoldError(ValueError):
    """A request the scaffold refuses, with the reason and what to do instead."""


def check_name(name: str, root: Path) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r} is not a valid Python identifier: use letters, digits and underscores, not "
                            "starting with a digit (e.g. ch07_flowers); the chapter is imported as chapters.<name>")
    if (root / "chapters" / name).exists():
        raise ScaffoldError(f"chapters/{name} already exists; refusing to overwrite it (choose another name)")
    if (root / "tests" / f"test_{name}.py").exists():
        raise ScaffoldError(f"tests/test_{name}.py already exists; refusing to overwrite it (choose another name)")


def main_script(chapter_dir: Path) -> str:
    """The module `__main__.py` imports `main` from, e.g. 'train'."""
    entry = chapter_dir / "__main__.py"
    found = re.search(r"from\s+chapters\.\w+\.(\w+)\s+import\s+main\b", entry.read_text(encoding="utf-8")) \
        if entry.is_file() else None
    if found is None:
        raise ScaffoldError(f"{entry} does not import main from the chapter's script "
                            "(expected `from chapters.<chapter>.<script> import main`)")
    return found.group(1)


def rewrite(text: str, old: str, new: str) -> str:
    """Every whole-word `old` -> `new`; and the short alias (`ch02` in `import train as ch02`) when both have one."""
    text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    old_short, new_short = (re.match(r"(ch\d+)_", name) for name in (old, new))
    if old_short and new_short:
        text = re.sub(rf"\b{old_short.group(1)}\b", new_short.group(1), text)
    return text


def copy_chapter(source: Path, target: Path, old: str, new: str) -> list[Path]:
    """Copy the chapter's files, rewriting every whole-word mention of its name (module paths, NAME, runs/...)."""
    written = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in SKIP for part in rel.parts) or path.is_dir():
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in TEXT_SUFFIXES:
            dest.write_text(rewrite(path.read_text(encoding="utf-8"), old, new), encoding="utf-8")
        else:
            shutil.copy2(path, dest)
        written.append(dest)
    notebook = target / "notebook.py"  # the walk-through notebook: its .ipynb is rebuilt from the rewritten text
    if notebook.is_file():
        from common.grading.notebooks import ipynb_text

        notebook.with_suffix(".ipynb").write_text(ipynb_text(notebook.read_text(encoding="utf-8")), encoding="utf-8")
    init = target / "__init__.py"
    init.write_text(f'"""{new}: <one line: the task, in English and 中文>. Started from {old} '
                    f'(python -m common.grading.new_chapter)."""\n', encoding="utf-8")
    return written


def stale_mentions(target: Path, root: Path) -> list[str]:
    """'file:line: chNN_other' for each mention of another chapter left in the copy's Python files."""
    others = {p.name for p in (root / "chapters").glob("ch*") if p.is_dir()} - {target.name}
    found = []
    for path in sorted(target.rglob("*.py")):
        if path.name == "__init__.py":  # its docstring says, on purpose, which chapter the copy started from
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            found += [f"{path.relative_to(root)}:{number}: {other}" for other in sorted(others)
                      if re.search(rf"\b{re.escape(other)}\b", line)]
    return found


def describe_files(target: Path) -> list[str]:
    """'`file`: the first line of its docstring' for each copied script: what was copied, and what it is for."""
    lines = []
    for path in sorted(target.glob("*.py")):
        if path.name == "__init__.py":
            continue
        try:
            doc = (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").strip()
        except SyntaxError:
            doc = ""
        lines.append(f"- `{path.name}`: {doc.splitlines()[0] if doc else '(no docstring)'}")
    return lines


def shared_modules(target: Path) -> list[str]:
    """The common/ modules the copy imports: shared, so not copied."""
    names = set()
    for path in target.rglob("*.py"):
        names |= set(re.findall(r"^\s*(?:from|import)\s+(common\.\w+)", path.read_text(encoding="utf-8"), re.M))
    return sorted(names)


def readme_stub(name: str, source: str, script: str, copied: list[str] = (), shared: list[str] = (),
                data_help: str = "") -> str:
    copied_text = "\n".join(copied) or "- (no scripts)"
    shared_text = ", ".join(f"`{m}`" for m in shared) or "none"
    data_text = f"`--data`: {data_help}" if data_help else "the chapter has no `--data` option."
    return f"""# {name}

Started from `{source}` with `python -m common.grading.new_chapter {name} --from {source}`. The code still does what
{source} does; change the bodies of the five steps in `{script}.py` and keep the skeleton, so that whoever knows
one chapter knows this one.

**Goal.** <what this task predicts, from what data>

## The five steps to fill in 五个步骤

1. **Data processing 数据处理** `load_data(cfg)`: read and split the data, normalise it, return datasets or loaders
   plus whatever prediction needs later (e.g. normalisation statistics).
2. **Model design 模型设计** `build_model(cfg)`: return a `paddle.nn.Layer`; the loss stays outside `forward`.
3. **Training config 训练配置** `configure(cfg, model)`: optimizer, loss, device and other training choices.
4. **Training loop 训练过程** `train(cfg, model, data, training)`: the loop, written out; returns per-epoch history.
5. **Save 保存模型** `save(cfg, model, ...)`: write the model (and what prediction needs); return the paths.

`main(argv=None)` parses the command line into `cfg` and calls the five in order.

## What was copied, and why 复制了什么

Every script of `{source}`, with `{source}` renamed to `{name}` everywhere (module paths, `NAME`, the default
output folders, now `runs/{name}/...`): the five steps, because they are what you change, and the side scripts,
because they reach the data and the model through those steps and so follow your changes:

{copied_text}

Not copied, because every chapter shares them and a fix there helps all: {shared_text} (in `common/`).

## Your own data, before any code 自己的数据

As in `{source}`, {data_text}

## How to run

    python -m chapters.{name} --help
    python -m chapters.{name}                       # writes runs/{name}/...
    python -m chapters.{name} --data YOUR_DATA      # your own data, as --data above says
    python chapters/{name}/{script}.py --out runs/{name}
    pytest tests/test_{name}.py

## What it prints

<real output you measured>

## Tests

`tests/test_{name}.py` holds the template tests (the five steps, a tiny end-to-end run, output shape, the
parameters layer by layer, their count). The layer list was measured on {source}'s model and is written out as a
reader counts it: when you change the model, write the new list (and so the new count) into the test, and add
tests of your own that check one real property each against a reference computed another way
(`tests/test_{source}.py` has examples to adapt).

## Exercises

1. <...>
"""


def help_text(script_module) -> str:
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
        script_module.main(["--help"])
    return text.getvalue()


def data_help(help_output: str) -> str:
    """The --data option's help, joined into one line ('' when the chapter has none)."""
    found = re.search(r"^\s*--data DATA\s+(.*?)(?=^\s*-|\Z)", help_output, re.M | re.S)
    return " ".join(found.group(1).replace("(default: None)", "").split()) if found else ""


def tiny_args(script_module) -> list[str]:
    """Options from TINY_* that the chapter's command line offers, read from its --help."""
    offered = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text(script_module)))
    args = [flag for flag in TINY_FLAGS if flag in offered]
    for option, value in TINY_OPTIONS.items():
        if option in offered:
            args += [option, value]
    return args


@contextlib.contextmanager
def importable(root: Path, name: str):
    """Import chapters.<name> from root/chapters even when the `chapters` package in use lives elsewhere."""
    import chapters

    folder = str(root / "chapters")
    added = folder not in [str(Path(p)) for p in chapters.__path__]
    if added:
        chapters.__path__.append(folder)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        if added:
            chapters.__path__.remove(folder)
        for module in [m for m in sys.modules if m == f"chapters.{name}" or m.startswith(f"chapters.{name}.")]:
            del sys.modules[module]


def run_tiny(script_module, args: list[str], out: Path) -> dict:
    """One tiny run of `main`: the cfg it built, the shape of the first batch its model saw; then, as the template
    tests will, a fresh `build_model(cfg)`'s output shape on that input and its trainable parameter count."""
    seen: dict = {}
    build_model = script_module.build_model

    def hook(layer, inputs, output):
        if "input_shape" not in seen and inputs and hasattr(inputs[0], "shape"):
            seen["input_shape"] = list(inputs[0].shape)
            seen["input_dtype"] = str(inputs[0].dtype).replace("paddle.", "")

    def recording_build_model(*args, **kwargs):
        model = build_model(*args, **kwargs)
        if "cfg" not in seen and args:
            seen["cfg"] = args[0]
        if hasattr(model, "register_forward_post_hook"):
            seen.setdefault("hooks", []).append(model.register_forward_post_hook(hook))
        return model

    script_module.build_model = recording_build_model
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            seen["metrics"] = script_module.main(args + ["--out", str(out)])
    finally:
        script_module.build_model = build_model
        for handle in seen.pop("hooks", []):
            handle.remove()
    if "cfg" in seen and "input_shape" in seen:
        import paddle

        model = build_model(seen["cfg"])
        model.eval()
        with paddle.no_grad():
            seen["output_shape"] = list(model(paddle.zeros(seen["input_shape"], dtype=seen["input_dtype"])).shape)
        seen["parameters"] = int(sum(int(p.size) for p in model.parameters() if p.trainable))
        seen["shapes"] = {n: [int(d) for d in p.shape] for n, p in model.named_parameters() if p.trainable}
    return seen


def template_tests(name: str, source: str, args: list[str], seen: dict) -> str:
    measured = "parameters" in seen
    shapes = seen.get("shapes", {})
    shape_lines = "".join(f"    {name!r}: {shape!r},\n" for name, shape in shapes.items())
    count_by_hand = " + ".join(str(math.prod(shape)) for shape in shapes.values()) or "0"
    text = f'''"""Template tests for chapters/{name} (made by `python -m common.grading.new_chapter {name} --from {source}`).

They pass for the copy as it is. Keep them passing as you change the five steps: TINY_ARGS make a run take
seconds. PARAMETER_SHAPES is the copied model as a reader counts it, one trainable parameter a line, and the
count is the sum of their sizes: when you change the model (a layer, a width, the number of classes), write its
new layer list here, so that the tests check what you meant the model to be.
"""
import importlib
import json
import math
import sys

import pytest

CHAPTER = "{name}"
STEPS = {STEPS!r}
TINY_ARGS = {args!r}  # options that make main() take seconds
'''
    if measured:
        text += f'''INPUT_SHAPE = {seen["input_shape"]!r}  # the first batch the model saw in a tiny run
INPUT_DTYPE = "{seen["input_dtype"]}"
OUTPUT_SHAPE = {seen["output_shape"]!r}
PARAMETER_SHAPES = {{  # name: shape of each trainable parameter of build_model(cfg)
{shape_lines}}}
TRAINABLE_PARAMETERS = {seen["parameters"]}  # = {count_by_hand}
'''
    text += '''

def script():
    """The chapter's main script, found the way `python -m chapters.<name>` finds it."""
    entry = importlib.import_module(f"chapters.{CHAPTER}.__main__")
    return sys.modules[entry.main.__module__]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One run of main on tiny settings; keeps the cfg that main built, for the tests below."""
    module, out, seen = script(), tmp_path_factory.mktemp(CHAPTER), {}
    build_model = module.build_model

    def recording_build_model(cfg, *args, **kwargs):
        seen.setdefault("cfg", cfg)
        return build_model(cfg, *args, **kwargs)

    module.build_model = recording_build_model
    try:
        seen["metrics"] = module.main(TINY_ARGS + ["--out", str(out)])
    finally:
        module.build_model = build_model
    return out, seen


@pytest.mark.points(1)
def test_exposes_the_five_steps():
    missing = [step for step in STEPS if not callable(getattr(script(), step, None))]
    assert not missing, f"{script().__name__} lacks {missing}"


@pytest.mark.points(2)
def test_runs_end_to_end_on_tiny_data(tiny_run):
    out, seen = tiny_run
    assert isinstance(seen["metrics"], dict) and seen["metrics"]
    written = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert set(seen["metrics"]) <= set(written)
'''
    if measured:
        text += '''

@pytest.mark.points(2)
def test_model_output_shape(tiny_run):
    import paddle

    model = script().build_model(tiny_run[1]["cfg"])
    model.eval()
    with paddle.no_grad():
        output = model(paddle.zeros(INPUT_SHAPE, dtype=INPUT_DTYPE))
    assert list(output.shape) == OUTPUT_SHAPE


@pytest.mark.points(2)
def test_parameters_layer_by_layer(tiny_run):
    model = script().build_model(tiny_run[1]["cfg"])
    shapes = {name: list(p.shape) for name, p in model.named_parameters() if p.trainable}
    assert shapes == PARAMETER_SHAPES, "the model changed: write its layers into PARAMETER_SHAPES"


@pytest.mark.points(2)
def test_trainable_parameter_count(tiny_run):
    model = script().build_model(tiny_run[1]["cfg"])
    by_hand = sum(math.prod(shape) for shape in PARAMETER_SHAPES.values())
    assert sum(int(p.size) for p in model.parameters() if p.trainable) == TRAINABLE_PARAMETERS == by_hand
'''
    return text


def scaffold(name: str, source: str, root: Path = REPO, data: str | Path | None = None) -> list[Path]:
    """Create chapters/<name>/ and tests/test_<name>.py from chapters/<source>/; nothing is left on an error.

    data: your own data (the copy's --data) for the tiny run, and so for the template tests: their shapes and
    counts are then those of the model your data makes (e.g. 3 classes)."""
    root = root.resolve()
    source_dir = root / "chapters" / source
    if not source_dir.is_dir():
        available = sorted(p.name for p in (root / "chapters").glob("ch*") if p.is_dir())
        raise ScaffoldError(f"no chapter {source!r} in {root / 'chapters'}; choose from: {', '.join(available)}")
    check_name(name, root)
    script = main_script(source_dir)
    target = root / "chapters" / name
    tests = root / "tests" / f"test_{name}.py"
    try:
        written = copy_chapter(source_dir, target, source, name)
        readme = target / "README.md"
        args: list[str] = []
        try:
            with importable(root, name), tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
                module = importlib.import_module(f"chapters.{name}.{script}")
                args = tiny_args(module) + (["--data", str(data)] if data is not None else [])
                readme.write_text(readme_stub(name, source, script, describe_files(target), shared_modules(target),
                                              data_help(help_text(module))), encoding="utf-8")
                seen = run_tiny(module, args, Path(tmp))
        except Exception as e:
            raise ScaffoldError(f"a tiny run of the copy (main({args + ['--out', 'TMP']})) failed, so nothing was "
                                f"created: {type(e).__name__}: {e}. Copy a chapter that runs.") from e
        tests.parent.mkdir(parents=True, exist_ok=True)
        tests.write_text(template_tests(name, source, args, seen), encoding="utf-8")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        tests.unlink(missing_ok=True)
        raise
    return written + [readme, tests]


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m common.grading.new_chapter",
                                     description="Copy a chapter into chapters/NAME with template tests.")
    parser.add_argument("name", help="the new chapter's folder and package name, e.g. ch07_flowers")
    parser.add_argument("--from", dest="source", required=True, help="the chapter to copy, e.g. ch02_mnist")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    parser.add_argument("--data", default=None, help="your own data (the copy's --data, e.g. my_photos/) for the "
                                                     "tiny run and the template tests (default: the chapter's)")
    args = parser.parse_args(argv)
    try:
        paths = scaffold(args.name, args.source, args.root, args.data)
    except ScaffoldError as e:
        parser.error(str(e))
    root = args.root.resolve()
    print(f"created chapters/{args.name}/ ({len(paths) - 2} files from {args.source}), its README.md stub and "
          f"tests/test_{args.name}.py")
    for mention in stale_mentions(root / "chapters" / args.name, root):
        print(f"note: {mention} (another chapter named in the copy: make it go through the copy's own steps)")
    print(f"next: pytest tests/test_{args.name}.py, then change the five steps in "
          f"chapters/{args.name}/{main_script(root / 'chapters' / args.name)}.py")
    return paths


if __name__ == "__main__":
    main()
