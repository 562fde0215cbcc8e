"""Start a new task from a chapter: copy it, rename it, and get template tests that pass at once.

    python -m common.grading.new_chapter ch06_flowers --from ch02_mnist

makes chapters/ch06_flowers/ (the source chapter's files with `chapters.ch02_mnist` and the name `ch02_mnist`
rewritten; the script file names stay, so `train.py` is still where the five steps live), a README.md stub that
lists the five template steps to fill in, and tests/test_ch06_flowers.py with the template tests:

    the five steps are exposed | a run end to end on tiny data writes metrics.json | the model's output shape |
    its trainable parameter count

The shapes and the count are measured now, on one tiny run of the copy (`--epochs 1`, `--offline`, `--device cpu`
and a training subset such as `--train-size 256`, where the chapter has them), and written into the test file as
constants to update when the model changes.
It refuses to overwrite an existing chapter or test file and rejects a name that is not a Python identifier.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import keyword
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEPS = ("load_data", "build_model", "configure", "train", "save", "main")
TEXT_SUFFIXES = {".py", ".md", ".txt", ".json", ".yaml", ".yml", ".cfg", ".toml"}
SKIP = {"__pycache__", ".pytest_cache", "README.md"}
TINY_FLAGS = ("--offline",)  # switches that keep a run local and small, used when the chapter offers them
TINY_OPTIONS = {"--epochs": "1", "--device": "cpu", "--limit": "256", "--subset": "256", "--max-samples": "256",
                "--train-size": "256"}


class ScaffoldError(ValueError):
    """A request the scaffold refuses, with the reason and what to do instead."""


def check_name(name: str, root: Path) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r} is not a valid Python identifier: use letters, digits and underscores, not "
                            "starting with a digit (e.g. ch06_flowers); the chapter is imported as chapters.<name>")
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


def copy_chapter(source: Path, target: Path, old: str, new: str) -> list[Path]:
    """Copy the chapter's files, rewriting every whole-word mention of its name (module paths, NAME, runs/...)."""
    pattern = re.compile(rf"\b{re.escape(old)}\b")
    written = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in SKIP for part in rel.parts) or path.is_dir():
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in TEXT_SUFFIXES:
            dest.write_text(pattern.sub(new, path.read_text(encoding="utf-8")), encoding="utf-8")
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


def readme_stub(name: str, source: str, script: str) -> str:
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

## How to run

    python -m chapters.{name} --help
    python chapters/{name}/{script}.py --out runs/{name}
    pytest tests/test_{name}.py

## What it prints

<real output you measured>

## Tests

`tests/test_{name}.py` holds the template tests (the five steps, a tiny end-to-end run, output shape, parameter
count). The shapes and the count were measured on {source}'s model: update them when you change yours, and add
tests of your own that check one real property each against a reference computed another way
(`tests/test_{source}.py` has examples to adapt).

## Exercises

1. <...>
"""


def tiny_args(script_module) -> list[str]:
    """Options from TINY_* that the chapter's command line offers, read from its --help."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
        script_module.main(["--help"])
    offered = set(re.findall(r"(--[a-z][a-z0-9-]*)", text.getvalue()))
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
    return seen


def template_tests(name: str, source: str, args: list[str], seen: dict) -> str:
    measured = "parameters" in seen
    text = f'''"""Template tests for chapters/{name} (made by `python -m common.grading.new_chapter {name} --from {source}`).

They pass for the copy as it is. Keep them passing as you change the five steps: TINY_ARGS make a run take
seconds; the shapes and the parameter count were measured on {source}'s model, so update them with your model.
"""
import importlib
import json
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
TRAINABLE_PARAMETERS = {seen["parameters"]}
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
def test_trainable_parameter_count(tiny_run):
    model = script().build_model(tiny_run[1]["cfg"])
    assert sum(int(p.size) for p in model.parameters() if p.trainable) == TRAINABLE_PARAMETERS
'''
    return text


def scaffold(name: str, source: str, root: Path = REPO) -> list[Path]:
    """Create chapters/<name>/ and tests/test_<name>.py from chapters/<source>/; nothing is left on an error."""
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
        readme.write_text(readme_stub(name, source, script), encoding="utf-8")
        args: list[str] = []
        try:
            with importable(root, name), tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
                module = importlib.import_module(f"chapters.{name}.{script}")
                args = tiny_args(module)
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
    parser.add_argument("name", help="the new chapter's folder and package name, e.g. ch06_flowers")
    parser.add_argument("--from", dest="source", required=True, help="the chapter to copy, e.g. ch02_mnist")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    try:
        paths = scaffold(args.name, args.source, args.root)
    except ScaffoldError as e:
        parser.error(str(e))
    root = args.root.resolve()
    print(f"created chapters/{args.name}/ ({len(paths) - 2} files from {args.source}), its README.md stub and "
          f"tests/test_{args.name}.py")
    print(f"next: pytest tests/test_{args.name}.py, then change the five steps in "
          f"chapters/{args.name}/{main_script(root / 'chapters' / args.name)}.py")
    return paths


if __name__ == "__main__":
    main()
