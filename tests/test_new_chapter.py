"""The chapter scaffold (common/grading/new_chapter.py): copies of chapter 1 and of a tiny fake chapter, made in a temporary
repository, whose template tests pass at once; and the two user stories of a new task end to end: a copy of
chapter 2 pointed at a folder of images of 3 classes, a copy of chapter 1 pointed at a CSV with 5 features.

The copies need chapters that run: in a student copy (solutions replaced by TODO stubs) the tests that copy
chapter 1 or 2 are skipped with that reason, and the ones on the tiny fake chapter still run."""
import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest

from common.grading import new_chapter, notebooks
from common.image_folder import draw_shape, prepare_image, write_example_folder
from common.table import write_example_csv
from tests.background import Jobs

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


def require_solutions(chapter: str) -> None:
    """Skip (with the reason) where the chapter holds the student copy's TODO stubs: a copy of it cannot run."""
    stubs = [p.name for p in sorted((REPO / "chapters" / chapter).glob("*.py"))
             if 'raise NotImplementedError("TODO' in p.read_text(encoding="utf-8")]
    if stubs:
        pytest.skip(f"chapters/{chapter} holds TODO stubs ({', '.join(stubs)}): a student copy; the scaffold "
                    "copies chapters that run")


def make_repo(root: Path, chapters=("ch01_house_price",)) -> Path:
    """A temporary repository with copies of `chapters` and the tiny fake chapter."""
    (root / "chapters").mkdir(parents=True)
    (root / "tests").mkdir()
    shutil.copyfile(REPO / "chapters" / "__init__.py", root / "chapters" / "__init__.py")
    for chapter in chapters:
        shutil.copytree(REPO / "chapters" / chapter, root / "chapters" / chapter,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in TINY_CHAPTER.items():
        path = root / "chapters" / "ch00_tiny" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


@pytest.fixture
def scaffolded():
    """A temporary repository with ch06_houses (a copy of chapter 1) and ch07_tiny (of the tiny fake chapter),
    made by the background job below, which also runs their template tests."""
    return jobs.result(template_test_runs)["root"]


def test_copy_rewrites_module_paths_and_names(scaffolded):
    copy = scaffolded / "chapters" / "ch06_houses"
    assert sorted(p.name for p in copy.iterdir() if p.name != "__pycache__") == sorted(
        ["README.md", "__init__.py", "__main__.py", "notebook.ipynb", "notebook.py", "numpy_from_scratch.py",
         "predict.py", "split_check.py", "train.py"])
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
    # what was copied and why: each script with the first line of its docstring; the shared modules named
    assert "- `predict.py`: Predict with a trained chapter-1 model" in readme and "`common.table`" in readme
    assert "--target" in readme  # how to point the copy at your own data, from the copy's own --help


def test_template_tests_record_what_the_source_model_measures(scaffolded):
    text = (scaffolded / "tests" / "test_ch06_houses.py").read_text()
    # Chapter 1's model is Linear(13, 1): 13 weights + 1 bias, batches of 10 rows of 13 features.
    assert "TRAINABLE_PARAMETERS = 14  # = 13 + 1\n" in text and "OUTPUT_SHAPE = [10, 1]\n" in text
    assert "    'fc.weight': [13, 1],\n    'fc.bias': [1],\n" in text
    assert "TINY_ARGS = ['--offline', '--no-figures', '--epochs', '1', '--device', 'cpu']" in text
    tiny = (scaffolded / "tests" / "test_ch07_tiny.py").read_text()
    assert "TRAINABLE_PARAMETERS" not in tiny  # a model that is not a paddle Layer: no shape or count tests


# The copies' template tests run in a child process (pytest in pytest, and Paddle training), as a background job
# while the other tests run (tests/background.py): once as made, once with the copy's model changed.
jobs = Jobs(lane="paddle")  # its process imports Paddle (tests/background.py)
TEMPLATE_RUNS = r"""
import shutil, sys
from pathlib import Path
import pytest

from common.grading import new_chapter

root, ini, report = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
new_chapter.scaffold("ch06_houses", "ch01_house_price", root)  # it runs the copies: in this process too
new_chapter.scaffold("ch07_tiny", "ch00_tiny", root)


def run(target, name):
    for module in [m for m in sys.modules if m.split(".")[0] == "chapters" or m.startswith("test_ch0")]:
        del sys.modules[module]
    pytest.main([str(root / target), "-q", "-p", "no:cacheprovider", "-c", ini, "--rootdir", str(root),
                 "--confcutdir", str(root / "tests"), "--junitxml", f"{report}-{name}.xml"])


run("tests", "as-made")
# A hidden layer (13*4+4 + 4+1 = 61 parameters); the .pyc goes too (same second: it could look current).
train = root / "chapters" / "ch06_houses" / "train.py"
original = train.read_text()
train.write_text(original.replace(
    "paddle.nn.Linear(n_features, 1)", "paddle.nn.Sequential(paddle.nn.Linear(n_features, 4), paddle.nn.Linear(4, 1))"))
shutil.rmtree(train.parent / "__pycache__", ignore_errors=True)
run("tests/test_ch06_houses.py", "changed")
train.write_text(original)  # the copy as made, for the other tests
shutil.rmtree(train.parent / "__pycache__", ignore_errors=True)
"""


def junit_outcomes(report: Path) -> dict[str, str]:
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        bad = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name")] = {"failure": "failed", "error": "failed", "skipped": "skipped"}.get(
            bad[0] if bad else "", "passed")
    return outcomes


@jobs.job("scaffolded", "test_template_tests_pass_immediately", "test_template_tests_fail_when_the_model_changes")
def template_test_runs(folder: Path) -> dict:
    require_solutions("ch01_house_price")
    root = make_repo(folder / "repo")
    ini = folder / "pytest.ini"
    ini.write_text("[pytest]\nmarkers =\n    points(n): points\n")
    env = dict(os.environ, COURSE_DATA_DIR=str(folder / "data-cache"), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               PYTHONPATH=os.pathsep.join([str(root), str(REPO)]))  # the copies, then this checkout's common/
    done = subprocess.run([sys.executable, "-c", TEMPLATE_RUNS, str(root), str(ini), str(folder / "junit")], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)
    runs = {name: folder / f"junit-{name}.xml" for name in ("as-made", "changed")}
    missing = [str(p) for p in runs.values() if not p.is_file()]
    assert not missing, f"no report {missing}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return {"root": root, **{name: junit_outcomes(report) for name, report in runs.items()}}


def test_template_tests_pass_immediately():
    outcomes = jobs.result(template_test_runs)["as-made"]
    assert set(outcomes) == {"test_exposes_the_five_steps", "test_runs_end_to_end_on_tiny_data",
                             "test_model_output_shape", "test_parameters_layer_by_layer",
                             "test_trainable_parameter_count"}
    assert set(outcomes.values()) == {"passed"}


def test_template_tests_fail_when_the_model_changes():
    # The measured layers are a real check: a hidden layer fails them, and only them.
    outcomes = jobs.result(template_test_runs)["changed"]
    assert outcomes == {"test_exposes_the_five_steps": "passed", "test_runs_end_to_end_on_tiny_data": "passed",
                        "test_model_output_shape": "passed", "test_parameters_layer_by_layer": "failed",
                        "test_trainable_parameter_count": "failed"}


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


# ---- the user stories: a new task from a chapter, on your own data, changing only the steps ----

@pytest.fixture(scope="module")
def shapes_copy(tmp_path_factory):
    """chapters/ch08_shapes from chapter 2, adapted in one step's setting (16x16 inputs), and a folder of coloured
    shapes of 3 classes (OpenCV drawings) beside it."""
    require_solutions("ch02_mnist")
    base = tmp_path_factory.mktemp("shapes_story")
    photos = write_example_folder(base / "my_photos", per_class=8, size=32, seed=1)
    root = make_repo(base / "repo", chapters=("ch02_mnist",))
    new_chapter.scaffold("ch08_shapes", "ch02_mnist", root, data=photos)  # template tests on the photos
    train = root / "chapters" / "ch08_shapes" / "train.py"
    train.write_text(train.read_text().replace("IMAGE_SIZE = 28", "IMAGE_SIZE = 16"))  # the adaptation
    # The scaffold ran the copy, so Python may hold its .pyc: same size, same second, so it would look current.
    shutil.rmtree(train.parent / "__pycache__", ignore_errors=True)
    return root, photos, base


def test_template_tests_of_a_copy_on_your_data_record_the_model_it_makes(shapes_copy):
    root, photos, _ = shapes_copy
    text = (root / "tests" / "test_ch08_shapes.py").read_text()
    assert f"'--data', '{photos}'" in text
    # LeNet on 3 classes of RGB 28x28 images: conv1 takes 3 channels, the last layer gives 3 logits
    assert "    'conv1.weight': [6, 3, 5, 5],\n" in text and "    'fc3.weight': [84, 3],\n" in text
    assert "OUTPUT_SHAPE = [" in text and ", 3]\n" in text.split("OUTPUT_SHAPE = ")[1].split("\n")[0] + "\n"
    by_hand = (6 * 3 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 3 + 3)
    assert f"TRAINABLE_PARAMETERS = {by_hand} " in text


def test_story_images_train_export_and_predict_by_class_name(shapes_copy, tmp_path):
    root, photos, _ = shapes_copy
    with new_chapter.importable(root, "ch08_shapes"):
        train = importlib.import_module("chapters.ch08_shapes.train")
        predict = importlib.import_module("chapters.ch08_shapes.predict")
        assert str(train.parse_args([]).out).startswith(str(Path("runs") / "ch08_shapes"))
        out = tmp_path / "run"
        metrics = train.main(["--data", str(photos), "--epochs", "1", "--batch-size", "8", "--device", "cpu",
                              "--no-figures", "--out", str(out)])
        saved = json.loads((out / "metrics.json").read_text())
        assert saved["class_names"] == ["circle", "square", "triangle"] == metrics["class_names"]
        assert saved["input"]["size"] == 16 and saved["input"]["channels"] == 3
        new_image = tmp_path / "new_triangle.png"
        cv2.imwrite(str(new_image), draw_shape("triangle", np.random.default_rng(99), 40))
        results = predict.main([str(new_image), "--model", str(out), "--json"])
    # The exported model's answer, by name, is the trained weights' answer on the image prepared as in training.
    cfg = train.parse_args(["--device", "cpu"])
    vars(cfg).update(num_classes=3, in_channels=3, image_size=16)  # what load_data found in the folder
    model = train.build_model(cfg)
    model.set_state_dict(paddle.load(str(out / train.MODEL_FILE)))
    model.eval()
    logits = model(paddle.to_tensor(prepare_image(new_image, saved["input"])[None])).numpy()[0]
    assert results[0]["class_name"] == saved["class_names"][int(logits.argmax())]
    probability = np.exp(logits - logits.max()).max() / np.exp(logits - logits.max()).sum()
    assert results[0]["probability"] == pytest.approx(probability, abs=1e-3)


def test_story_images_side_scripts_follow_the_copys_steps(shapes_copy):
    root, photos, base = shapes_copy
    with new_chapter.importable(root, "ch08_shapes"):
        compare = importlib.import_module("chapters.ch08_shapes.compare_optimizers")
        bench = importlib.import_module("chapters.ch08_shapes.bench")
        results = compare.main(["--data", str(photos), "--epochs", "1", "--model", "softmax", "--batch-size", "8",
                                "--out", str(base / "compare")])
        figures = bench.main(["--data", str(photos), "--skip-target", "--rounds", "1", "--model", "softmax",
                              "--batch-size", "8", "--out", str(base / "bench")])
    assert all(results[name]["diverged"] is None and len(results[name]["val_accuracy"]) == 1
               for name in compare.OPTIMIZERS)
    assert "image folder" in results["data_source"] and "image folder" in figures["data_source"]
    assert json.loads((base / "bench" / "metrics.json").read_text())["images_per_second_chapter"] > 0
    assert (base / "compare" / "optimizers.md").is_file()
    source = (root / "chapters" / "ch08_shapes" / "compare_optimizers.py").read_text()
    assert "ch02" not in source and 'Path("runs") / ch08.NAME / "compare_optimizers"' in source


def test_story_table_train_and_predict(scaffolded, tmp_path):
    csv = write_example_csv(tmp_path / "houses.csv", rows=60, seed=3)
    with new_chapter.importable(scaffolded, "ch06_houses"):
        train = importlib.import_module("chapters.ch06_houses.train")
        predict = importlib.import_module("chapters.ch06_houses.predict")
        out = tmp_path / "run"
        metrics = train.main(["--data", str(csv), "--target", "price", "--epochs", "30", "--lr", "0.05",
                              "--device", "cpu", "--no-figures", "--out", str(out)])
        assert metrics["features"] == ["size_m2", "rooms", "age_years", "distance_km", "floor"]
        assert metrics["train_mse_ratio"] < 1.1  # near the least-squares optimum on a linear table
        rows = ["100,3,20,5,4", "40,1,70,25,0"]
        predicted = predict.main(rows + ["--model", str(out), "--json"])
    # By hand from the saved files: standardise with the saved statistics, apply w and b, undo the price's.
    stats = json.loads((out / "normalization.json").read_text())
    state = paddle.load(str(out / "model.pdparams"))
    shift, scale = np.array(stats["shift"]), np.array(stats["scale"])
    x = np.array([[float(v) for v in row.split(",")] for row in rows])
    expected = (((x - shift[:5]) / scale[:5]) @ state["fc.weight"].numpy() + state["fc.bias"].numpy()) \
        * scale[5] + shift[5]
    np.testing.assert_allclose(predicted, expected[:, 0], rtol=1e-4)
    # and the prices are those of the formula that made the table (noise sd 10): the model learnt it
    formula = 50 + 3.2 * x[:, 0] + 12 * x[:, 1] - 0.8 * x[:, 2] - 4 * x[:, 3] + 1.5 * x[:, 4]
    assert np.abs(np.array(predicted) - formula).max() < 30


def test_story_digits_0_to_4_changing_load_data_only(tmp_path):
    """The issue's case: a copy of chapter 2 that keeps the digits 0-4 in load_data; the model and the side
    scripts follow (5 logits), with no other edit."""
    require_solutions("ch02_mnist")
    root = make_repo(tmp_path / "repo", chapters=("ch02_mnist",))
    target = root / "chapters" / "ch09_digits"
    new_chapter.copy_chapter(root / "chapters" / "ch02_mnist", target, "ch02_mnist", "ch09_digits")
    train_py = target / "train.py"
    keep_0_to_4 = '''
        for split in ("train", "val"):  # the task: digits 0-4 only
            keep = getattr(data, f"{split}_y") < 5
            setattr(data, f"{split}_x", getattr(data, f"{split}_x")[keep])
            setattr(data, f"{split}_y", getattr(data, f"{split}_y")[keep])
'''
    anchor = "            raise DataError(f\"--val-size: {e}\") from e\n"
    assert anchor in train_py.read_text()
    train_py.write_text(train_py.read_text().replace(anchor, anchor + keep_0_to_4))
    with new_chapter.importable(root, "ch09_digits"):
        train = importlib.import_module("chapters.ch09_digits.train")
        compare = importlib.import_module("chapters.ch09_digits.compare_optimizers")
        cfg = train.parse_args(["--offline", "--model", "softmax"])
        loaded = train.load_data(cfg)
        assert set(loaded["data"].train_y.tolist()) == set(range(5)) and cfg.num_classes == 5
        assert list(train.build_model(cfg)(paddle.zeros([2, 1, 28, 28])).shape) == [2, 5]
        results = compare.main(["--offline", "--epochs", "1", "--model", "softmax", "--batch-size", "128",
                                "--out", str(tmp_path / "c")])
    assert all(results[name]["diverged"] is None and results[name]["val_accuracy"][0] > 0.5
               for name in compare.OPTIMIZERS)


def test_compare_optimizers_takes_a_small_idx_folder_as_training_does(tmp_path):
    """Through train.load_data: an IDX folder of 200 digits works with --val-size, and without it (a fifth of the
    training images held out), as chapter 2's training does (not a ValueError from a loader of its own)."""
    require_solutions("ch02_mnist")
    from chapters.ch02_mnist import compare_optimizers
    from common.mnist import FILES, load_subset_raw, write_idx

    images, labels = load_subset_raw()
    for role, rows in (("train", slice(0, 4000, 25)), ("test", slice(4000, 5000, 25))):
        write_idx(tmp_path / FILES[f"{role}_images"][0], images[rows])
        write_idx(tmp_path / FILES[f"{role}_labels"][0], labels[rows].astype(np.uint8))
    args = ["--data", str(tmp_path), "--epochs", "1", "--model", "softmax", "--out", str(tmp_path / "out")]
    results = compare_optimizers.main(args + ["--val-size", "40"])
    assert "IDX files" in results["data_source"]
    assert all(len(results[name]["val_accuracy"]) == 1 for name in compare_optimizers.OPTIMIZERS)
    # Without --val-size a small folder holds out a fifth of its training images, as chapter 2 does.
    default_split = compare_optimizers.main(args)
    assert all(len(default_split[name]["val_accuracy"]) == 1 for name in compare_optimizers.OPTIMIZERS)
