"""The chapter scaffold (common/grading/new_chapter.py): copies of chapter 1 and of a tiny fake chapter, made in a temporary
repository, whose template tests pass at once (graded in one child process)."""
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from common.grading import new_chapter, notebooks

GRADED = False  # the course tooling's own tests are not part of a student's grade (see common/grading/grade.py)
pytestmark = pytest.mark.points(1)
REPO = Path(__file__).resolve().parent.parent

TINY_CHAPTER = {
    "__init__.py": '"""A tiny fake chapter: the five steps around a plain-Python model."""\n',
    "__main__.py": "from chapters.ch00_tiny.steps import main\n\nif __name__ == '__main__':\n    main()\n",
    "steps.py": '''
        """chapters.ch00_tiny.steps: fit y = 2x with one weight, by hand."""
        import argparse
        import json
        from pathlib import Path

        NAME = "ch00_tiny"


        def load_data(cfg):
            return [(x, 2.0 * x) for x in range(5)]


        def build_model(cfg):
            return {"w": 0.0}


        def configure(cfg, model):
            return {"lr": 0.05, "epochs": cfg.epochs}


        def train(cfg, model, data, training):
            history = []
            for _ in range(training["epochs"]):
                grad = sum(2 * (model["w"] * x - y) * x for x, y in data) / len(data)
                model["w"] -= training["lr"] * grad
                history.append(model["w"])
            return history


        def save(cfg, model, history):
            cfg.out.mkdir(parents=True, exist_ok=True)
            (cfg.out / "metrics.json").write_text(json.dumps({"name": NAME, "w": model["w"]}))
            return [cfg.out / "metrics.json"]


        def main(argv=None):
            parser = argparse.ArgumentParser(prog=f"python -m chapters.{NAME}")
            parser.add_argument("--epochs", type=int, default=50)
            parser.add_argument("--out", type=Path, default=Path("runs") / NAME)
            cfg = parser.parse_args(argv)
            data = load_data(cfg)
            model = build_model(cfg)
            history = train(cfg, model, data, configure(cfg, model))
            save(cfg, model, history)
            return {"name": NAME, "w": model["w"]}
        ''',
}


def make_repo(root: Path) -> Path:
    """A temporary repository with a copy of chapter 1 and the tiny fake chapter."""
    (root / "chapters").mkdir(parents=True)
    (root / "tests").mkdir()
    shutil.copyfile(REPO / "chapters" / "__init__.py", root / "chapters" / "__init__.py")
    shutil.copytree(REPO / "chapters" / "ch01_house_price", root / "chapters" / "ch01_house_price",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in TINY_CHAPTER.items():
        path = root / "chapters" / "ch00_tiny" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("repo"))
    new_chapter.main(["ch06_houses", "--from", "ch01_house_price", "--root", str(root)])
    new_chapter.main(["ch07_tiny", "--from", "ch00_tiny", "--root", str(root)])
    return root


def test_copy_rewrites_module_paths_and_names(scaffolded):
    copy = scaffolded / "chapters" / "ch06_houses"
    assert sorted(p.name for p in copy.iterdir()) == sorted(
        ["README.md", "__init__.py", "__main__.py", "notebook.ipynb", "notebook.py", "numpy_from_scratch.py", "train.py"])
    assert notebooks.pair_problem(copy / "notebook.py") is None  # the notebook's .ipynb rebuilt from the renamed text
    for path in copy.glob("*.py"):  # only the new __init__.py's docstring says where the copy came from
        assert "ch01_house_price" not in path.read_text() or path.name == "__init__.py", path
    assert "from chapters.ch06_houses.train import main" in (copy / "__main__.py").read_text()
    assert 'NAME = "ch06_houses"' in (copy / "numpy_from_scratch.py").read_text()
    assert 'NAME = "ch07_tiny"' in (scaffolded / "chapters" / "ch07_tiny" / "steps.py").read_text()


def test_readme_stub_states_the_five_steps(scaffolded):
    readme = (scaffolded / "chapters" / "ch06_houses" / "README.md").read_text()
    for step in ("load_data(cfg)", "build_model(cfg)", "configure(cfg, model)", "train(cfg, model, data, training)",
                 "save(cfg, model"):
        assert step in readme
    assert "python -m chapters.ch06_houses" in readme


def test_template_tests_record_what_the_source_model_measures(scaffolded):
    text = (scaffolded / "tests" / "test_ch06_houses.py").read_text()
    # Chapter 1's model is Linear(13, 1): 13 weights + 1 bias, batches of 10 rows of 13 features.
    assert "TRAINABLE_PARAMETERS = 14\n" in text and "OUTPUT_SHAPE = [10, 1]\n" in text
    assert "TINY_ARGS = ['--offline', '--epochs', '1', '--device', 'cpu']" in text
    tiny = (scaffolded / "tests" / "test_ch07_tiny.py").read_text()
    assert "TRAINABLE_PARAMETERS" not in tiny  # a model that is not a paddle Layer: no shape or count tests


def run_tests_in_process(root: Path, tmp_path: Path, target: str = "tests") -> dict:
    """Run root/target with pytest in this process (Paddle is imported already): {test name: outcome}."""
    outcomes = {}

    class Record:
        def pytest_runtest_logreport(self, report):
            if report.when == "call" or report.outcome != "passed":
                outcomes[report.nodeid.split("::")[-1]] = report.outcome

    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\nmarkers =\n    points(n): points\n")
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    try:
        with new_chapter.importable(root, "ch06_houses"), new_chapter.importable(root, "ch07_tiny"):
            pytest.main([str(root / target), "-q", "-p", "no:cacheprovider", "-c", str(ini), "--rootdir", str(root),
                         "--confcutdir", str(root / "tests"), "--basetemp", str(tmp_path / "inner")],
                        plugins=[Record()])
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if name.startswith("test_ch0"):
                del sys.modules[name]
    return outcomes


def test_template_tests_pass_immediately(scaffolded, tmp_path):
    outcomes = run_tests_in_process(scaffolded, tmp_path)
    assert set(outcomes) == {"test_exposes_the_five_steps", "test_runs_end_to_end_on_tiny_data",
                             "test_model_output_shape", "test_trainable_parameter_count"}
    assert set(outcomes.values()) == {"passed"}


def test_template_tests_fail_when_the_model_changes(scaffolded, tmp_path):
    # The measured count is a real check: a hidden layer (13*4+4 + 4+1 = 61 parameters) fails it, and only it.
    train = scaffolded / "chapters" / "ch06_houses" / "train.py"
    original = train.read_text()
    train.write_text(original.replace("paddle.nn.Linear(n_features, 1)",
                                      "paddle.nn.Sequential(paddle.nn.Linear(n_features, 4), paddle.nn.Linear(4, 1))"))
    shutil.rmtree(train.parent / "__pycache__", ignore_errors=True)  # same size, same second: a stale .pyc
    try:
        outcomes = run_tests_in_process(scaffolded, tmp_path, "tests/test_ch06_houses.py")
    finally:
        train.write_text(original)
        shutil.rmtree(train.parent / "__pycache__", ignore_errors=True)
    assert outcomes == {"test_exposes_the_five_steps": "passed", "test_runs_end_to_end_on_tiny_data": "passed",
                        "test_model_output_shape": "passed", "test_trainable_parameter_count": "failed"}


@pytest.mark.parametrize("name", ["6flowers", "my-task", "class", "ch 06"])
def test_a_name_that_is_not_an_identifier_is_rejected(tmp_path, name, capsys):
    with pytest.raises(SystemExit):
        new_chapter.main([name, "--from", "ch01_house_price", "--root", str(make_repo(tmp_path))])
    assert "not a valid Python identifier" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "chapters").iterdir()) == ["__init__.py", "ch00_tiny", "ch01_house_price"]


def test_refuses_to_overwrite_and_names_missing_sources(tmp_path):
    root = make_repo(tmp_path)
    with pytest.raises(new_chapter.ScaffoldError, match="chapters/ch00_tiny already exists"):
        new_chapter.scaffold("ch00_tiny", "ch01_house_price", root)
    (root / "tests" / "test_ch08_new.py").write_text("# mine\n")
    with pytest.raises(new_chapter.ScaffoldError, match="tests/test_ch08_new.py already exists"):
        new_chapter.scaffold("ch08_new", "ch00_tiny", root)
    with pytest.raises(new_chapter.ScaffoldError, match="choose from: ch00_tiny, ch01_house_price"):
        new_chapter.scaffold("ch08_other", "ch09_missing", root)


def test_a_failing_source_leaves_nothing_behind(tmp_path):
    root = make_repo(tmp_path)
    steps = root / "chapters" / "ch00_tiny" / "steps.py"
    steps.write_text(steps.read_text().replace("    data = load_data(cfg)\n", "    raise RuntimeError('broken')\n"))
    with pytest.raises(new_chapter.ScaffoldError, match="tiny run of the copy .* failed.*RuntimeError: broken"):
        new_chapter.scaffold("ch08_new", "ch00_tiny", root)
    assert not (root / "chapters" / "ch08_new").exists() and not (root / "tests" / "test_ch08_new.py").exists()
