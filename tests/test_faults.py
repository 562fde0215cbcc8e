"""Fault injection: bad arguments, damaged files, kills, hostile servers and images, for every chapter entry point.

For each case: a non-zero exit, one clear line naming the problem and what to do, no traceback, and nothing in
`--out` changed. Kills: every file a run writes is written under a temporary name and renamed (traced below), a
kill at any step of a write leaves the old content or the new, and one real kill -9 shows it end to end.
Everything runs in-process and small, except where the subject is a process (kill -9, a lock held by another
process, a user without write permission).
"""
import builtins
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import paddle
import pytest

from chapters.ch01_house_price import numpy_from_scratch as ch01_numpy
from chapters.ch01_house_price import train as ch01_paddle
from chapters.ch02_mnist import compare_optimizers as ch02_compare
from chapters.ch02_mnist import train as ch02
from chapters.ch03_conv_examples import conv_examples as ch03
from chapters.ch04_batchnorm import batchnorm as ch04
from chapters.ch05_cnn_shapes_flops import shapes_flops as ch05
from common import checkpoint, download, files, housing, image, mnist
from common.cli import make_parser, run
from common.download import DataError

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"ch01_numpy": ch01_numpy.main, "ch01_paddle": ch01_paddle.main, "ch02": ch02.main,
                "ch02_compare": ch02_compare.main, "ch03": ch03.main, "ch04": ch04.main, "ch05": ch05.main}


# ---- helpers ----

def snapshot(folder: Path) -> dict:
    """Every file under `folder` (hidden ones too) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.is_dir() else {}


def invoke(main, argv, capsys) -> tuple[int, str, str]:
    """Run an entry point as its script does (common.cli.run); return (exit status, stderr, its last line)."""
    with pytest.raises(SystemExit) as exit_:
        run(main, argv)
    code, err = exit_.value.code, capsys.readouterr().err
    if isinstance(code, str):  # sys.exit("error: ...") prints this line and exits with status 1
        err, code = err + code + "\n", 1
    lines = [line for line in err.splitlines() if line.strip()]
    return code, err, lines[-1] if lines else ""


def assert_clean_failure(main, argv, expected, capsys, out: Path):
    before = snapshot(out)
    code, err, last = invoke(main, argv, capsys)
    assert code != 0, err
    assert "Traceback" not in err, err
    assert "error" in last and expected in last, err
    assert "\n" not in last
    assert snapshot(out) == before, "a failed run changed its --out folder"


def housing_rows(rows=40, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(rows, housing.N_COLUMNS)) + 5
    data[:, -1] = data[:, :-1] @ rng.normal(size=housing.N_COLUMNS - 1)  # a price that depends on the features
    return data


def write_housing(path: Path, data: np.ndarray) -> Path:
    path.write_text("\n".join(" ".join(f"{v:.5f}" for v in row) for row in data) + "\n")
    return path


@pytest.fixture
def out(tmp_path):
    """A run folder that already holds a result, which a failed run must leave as it was."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.json").write_text('{"old": true}\n')
    return folder


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """The four MNIST IDX files holding 160 training and 40 test digits (far fewer than the default 5,000)."""
    images, labels = mnist.load_subset_raw()
    order = np.random.default_rng(3).permutation(len(labels))
    folder = tmp_path_factory.mktemp("idx")
    for role, idx in (("train", order[:160]), ("test", order[160:200])):
        mnist.write_idx(folder / mnist.FILES[f"{role}_images"][0], images[idx])
        mnist.write_idx(folder / mnist.FILES[f"{role}_labels"][0], labels[idx])
    return folder


class WriteTracer:
    """Records every path a run opens for writing (Python's open, and paddle.jit.save's C++ writer)."""

    def __init__(self, monkeypatch):
        self.paths = []
        real_open, real_jit_save = builtins.open, paddle.jit.save

        def tracing_open(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
                self.paths.append(Path(file))
            return real_open(file, mode, *args, **kwargs)

        def tracing_jit_save(layer, path, *args, **kwargs):
            self.paths.append(Path(path))
            return real_jit_save(layer, path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", tracing_open)
        monkeypatch.setattr(io, "open", tracing_open)
        monkeypatch.setattr(paddle.jit, "save", tracing_jit_save)

    def direct_writes(self, folder: Path) -> list[Path]:
        """Paths under `folder` written directly, not through a temporary .part name (file or folder)."""
        folder = folder.resolve()
        return [p for p in self.paths if folder in p.resolve().parents
                and not any(part.endswith(files.PART_SUFFIX) for part in p.parts)]


def killed_after_first_rename():
    """An os.replace that does the first rename and is interrupted at the second, in this thread only: the
    background jobs' own renames (tests/background.py) go through untouched."""
    real_replace, calls, here = os.replace, [], threading.get_ident()

    def replace(src, dst, **kwargs):
        if threading.get_ident() == here:
            calls.append(dst)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real_replace(src, dst, **kwargs)
    return replace


CH02_OPTS = ("--model", "softmax", "--epochs", "2", "--val-size", "32", "--augment", "0", "--device", "cpu")


@pytest.fixture(scope="module")
def ch02_run(idx_dir, tmp_path_factory):
    """A finished 2-epoch chapter-2 run (checkpoint, previous checkpoint, weights, export, plots, metrics),
    with every write traced."""
    folder = tmp_path_factory.mktemp("ch02")
    with pytest.MonkeyPatch.context() as mp:
        tracer = WriteTracer(mp)
        ch02.main(["--data", str(idx_dir), "--out", str(folder), *CH02_OPTS])
    return folder, tracer


def ch02_args(idx_dir, folder, *extra):
    """The fixture's run (which draws its plots: every file is traced), without the plots."""
    return ["--data", str(idx_dir), "--out", str(folder), *CH02_OPTS, "--no-figures", *extra]


# ---- the shared command line, for every entry point ----

@pytest.mark.points(2)
@pytest.mark.parametrize("chapter", ENTRY_POINTS)
@pytest.mark.parametrize("args, expected", [
    (["--seed", "-1"], "must be from 0 to 4294967295"),
    (["--seed", str(2**40)], "must be from 0 to 4294967295"),
    (["--offline", "--seed", "x"], "expected a whole number"),  # --offline itself is accepted everywhere
])
def test_bad_seed_is_a_usage_error_in_every_chapter(chapter, args, expected, capsys, out):
    assert_clean_failure(ENTRY_POINTS[chapter], [*args, "--out", str(out)], expected, capsys, out)


@pytest.mark.points(2)
@pytest.mark.parametrize("chapter", ENTRY_POINTS)
@pytest.mark.parametrize("where, expected", [("file", "is a file, not a folder"), ("under", "which is a file")])
def test_out_that_is_or_sits_under_a_file_fails_before_any_work(chapter, where, expected, capsys, tmp_path):
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me")
    target = blocker if where == "file" else blocker / "run"
    assert_clean_failure(ENTRY_POINTS[chapter], ["--out", str(target)], expected, capsys, tmp_path)
    assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("script", ["chapters.ch02_mnist.bench", "chapters.ch01_house_price.split_check",
                                    "chapters.ch06_from_scratch.from_scratch"])
def test_side_scripts_refuse_an_out_that_is_a_file_before_any_work(script, capsys, tmp_path):
    import importlib
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me")
    main = importlib.import_module(script).main
    assert_clean_failure(main, ["--offline", "--out", str(blocker)], "is a file, not a folder", capsys, tmp_path)
    assert blocker.read_text() == "keep me"


@pytest.mark.points(1)
@pytest.mark.parametrize("chapter", ENTRY_POINTS)
def test_help_names_offline_and_debug_and_each_default_once(chapter, capsys):
    with pytest.raises(SystemExit) as exit_:
        ENTRY_POINTS[chapter](["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0
    assert "--offline" in text and "--debug" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    if chapter in ("ch03", "ch05"):
        assert "downloads nothing" in text  # where --offline applies is said, not left to guess


def as_unprivileged(check) -> str:
    """check() -> str, run as an ordinary user: root may read and write anywhere, so as root it runs in a forked
    child that has dropped to user nobody (no new interpreter: nobody may not be able to read this one)."""
    if os.geteuid() != 0:
        return check()
    import pwd
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, check, report, and leave without running any cleanup
        try:
            signal.alarm(20)  # a child that hangs dies, and the test fails instead of hanging
            os.close(reader)
            os.setgid(pwd.getpwnam("nobody").pw_gid)
            os.setuid(pwd.getpwnam("nobody").pw_uid)
            os.write(writer, check().encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as f:
        message = f.read().decode()
    os.waitpid(pid, 0)
    return message


@pytest.fixture
def locked_down():
    """A folder all users may enter (unlike tmp_path's parents), holding a read-only folder `ro` and a file
    `secret` that only its owner may read... after the owner has made it unreadable."""
    import tempfile
    base = Path(tempfile.mkdtemp())
    os.chmod(base, 0o755)
    (base / "ro").mkdir(mode=0o555)
    yield base
    os.chmod(base / "ro", 0o755)
    shutil.rmtree(base)


def message_of(call) -> str:
    try:
        result = call()
    except (DataError, files.OutputError) as e:
        return f"error: {e}"
    return f"no error: {result}"


@pytest.mark.points(2)
@pytest.mark.parametrize("case, expected", [
    ("out_read_only", "cannot write in"),
    ("cache_read_only", "no error: offline fallback"),
    ("unreadable_data", "cannot read"),
    ("unreadable_image", "cannot read"),
])
def test_permissions_are_one_line_or_a_fallback(case, expected, locked_down, monkeypatch):
    import mlxtend  # noqa: F401  (imported before the fork, as a run would have)
    base, ro = locked_down, locked_down / "ro"
    secret = base / "secret"
    if case == "unreadable_data":
        write_housing(secret, housing_rows())
    elif case == "unreadable_image":
        secret.write_bytes(png_declaring(8, 8))
    if case == "cache_read_only":
        # Read mlxtend's copy now: nobody may not reach the interpreter's site-packages (under /root with a
        # pyenv Python, as in CI); the subject here is the unwritable cache, not mlxtend's file permissions.
        shipped = housing.load_mlxtend_copy()
        monkeypatch.setattr(housing, "load_mlxtend_copy", lambda: shipped)
    os.chmod(base, 0o755)
    if secret.exists():
        os.chmod(secret, 0o000)
    monkeypatch.setenv("COURSE_DATA_DIR", str(ro))
    calls = {"out_read_only": lambda: files.check_out_dir(ro / "run"),
             "cache_read_only": lambda: housing.load_housing()[1],
             "unreadable_data": lambda: housing.load_housing(secret),
             "unreadable_image": lambda: image.read_image(secret)}
    message = as_unprivileged(lambda: message_of(calls[case]))
    assert expected in message and "\n" not in message, message
    if case != "cache_read_only":
        assert message.startswith("error: ") and "Permission denied" in message
        assert "choose a folder you can write to" in message or "check its permissions" in message
    assert list(ro.iterdir()) == []


@pytest.mark.points(1)
def test_a_command_line_run_checks_its_default_out_a_configuration_built_in_code_does_not(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file where the runs folder would go")
    parser = make_parser("chx", "demo")
    assert parser.parse_args(["--seed", "3"]).seed == 3  # a benchmark's or a test's cfg: writes nowhere
    monkeypatch.setattr(sys, "argv", ["chx", "--seed", "3"])
    with pytest.raises(files.OutputError, match="lies under runs, which is a file"):
        parser.parse_args()  # the command line: its default --out is checked before any work


# ---- any unexpected error: one line and --debug ----

@pytest.mark.points(2)
def test_unexpected_errors_are_one_line_with_a_debug_hint(monkeypatch, capsys, tmp_path):
    def broken(cfg):
        raise RuntimeError("(Fatal) something in C++\n  [operator < matmul > error]\n" + "x" * 2000)

    monkeypatch.setattr(ch01_numpy, "load_data", broken)
    argv = ["--out", str(tmp_path / "run")]
    code, err, last = invoke(ch01_numpy.main, argv, capsys)
    assert code == 1 and "Traceback" not in err
    assert last.startswith("error: unexpected RuntimeError: (Fatal) something in C++ [operator")
    assert last.endswith("(rerun with --debug for the traceback)") and len(last) < 500
    with pytest.raises(RuntimeError, match="something in C"):  # --debug: the exception, with its traceback
        run(ch01_numpy.main, [*argv, "--debug"])
    with pytest.raises(RuntimeError):  # ch02 predict's own --debug=DIR form counts too
        run(lambda argv: broken(None), ["--debug=figures"])


# ---- chapter 1: housing files ----

@pytest.mark.points(3)
@pytest.mark.parametrize("chapter", ["ch01_numpy", "ch01_paddle"])
@pytest.mark.parametrize("damage, expected", [
    ("missing", "no such file"),
    ("folder", "is a folder"),
    ("text", "is not a number"),  # a header row makes it a table (common.table)
    ("constant", "has the same value in every row"),
    ("nan", "is nan"),
    ("two_rows", "has 2 rows: at least 10"),
    ("binary", "is not a housing file"),
])
def test_damaged_housing_files(chapter, damage, expected, capsys, out, tmp_path):
    path = tmp_path / "housing.data"
    data = housing_rows()
    if damage == "folder":
        path.mkdir()
    elif damage == "text":
        path.write_text("CRIM ZN INDUS\n1 2 x\n")
    elif damage == "constant":
        data[:, 3] = 0.0
        write_housing(path, data)
    elif damage == "nan":
        data[7, 2] = np.nan
        write_housing(path, data)
    elif damage == "two_rows":
        write_housing(path, data[:2])
    elif damage == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    assert_clean_failure(ENTRY_POINTS[chapter], ["--data", str(path), "--out", str(out), "--epochs", "1"],
                         expected, capsys, out)


@pytest.mark.points(1)
def test_housing_error_ends_in_one_full_stop(tmp_path):
    path = tmp_path / "h.data"
    path.write_text("1 x 3\n")
    with pytest.raises(DataError) as err:
        housing.parse_housing(path)
    assert ".." not in str(err.value)


@pytest.mark.points(2)
@pytest.mark.parametrize("chapter", ["ch01_numpy", "ch01_paddle"])
def test_huge_learning_rate_stops_with_the_divergence_advice_and_writes_no_nan(chapter, capsys, out, tmp_path):
    data = write_housing(tmp_path / "housing.data", housing_rows())
    assert_clean_failure(ENTRY_POINTS[chapter], ["--data", str(data), "--out", str(out), "--lr", "1e30",
                                                 "--epochs", "3"], "training diverged. Lower --lr", capsys, out)


@pytest.mark.points(1)
def test_strict_json_refuses_nan(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(files.NonFiniteError, match=r"metrics.json: history\[1\] is NaN"):
        files.write_json(target, {"history": [0.5, float("nan")]})
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.points(1)
def test_a_path_that_is_not_utf8_works(capsys, tmp_path):
    odd = Path(os.fsdecode(str(tmp_path).encode() + b"/h\xff"))
    odd.mkdir()
    data = write_housing(odd / "housing.data", housing_rows())
    run(ch01_numpy.main, ["--data", str(data), "--out", str(odd / "run"), "--epochs", "1"])  # prints the path
    saved = json.loads((odd / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["epochs"] == 1 and str(data) in saved["data_source"]
    code, err, last = invoke(ch01_numpy.main, ["--data", str(odd / "missing\udcfe"), "--out", str(odd / "r2")],
                             capsys)
    assert code == 1 and "no such file" in last and "Traceback" not in err


# ---- chapter 2: data, checkpoints, resume, Ctrl-C ----

@pytest.mark.points(2)
@pytest.mark.parametrize("damage, expected", [
    ("no_folder", "no such folder"),
    ("missing_file", "missing t10k-labels"),
    ("bad_idx", "is not an IDX file"),
    ("not_gzip", "Not a gzipped file"),
    ("truncated_idx", "cannot read IDX file"),
])
def test_ch02_bad_data_folder(damage, expected, idx_dir, capsys, out, tmp_path):
    data = tmp_path / "mnist"
    if damage != "no_folder":
        shutil.copytree(idx_dir, data)
    name = data / mnist.FILES["test_labels"][0]
    if damage == "missing_file":
        name.unlink()
    elif damage == "bad_idx":
        name.write_bytes(gzip.compress(b"GIF89a" + bytes(100)))
    elif damage == "not_gzip":
        name.write_bytes(b"GIF89a" + bytes(100))
    elif damage == "truncated_idx":
        name.write_bytes(name.read_bytes()[:20])
    assert_clean_failure(ch02.main, ch02_args(data, out), expected, capsys, out)


def test_ch02_data_that_is_a_file_is_called_a_file(capsys, out, tmp_path):
    data = tmp_path / "train-images-idx3-ubyte.gz"  # one IDX file given instead of its folder
    data.write_bytes(b"")
    assert_clean_failure(ch02.main, ch02_args(data, out), "a file, not a folder", capsys, out)


def damage_file(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("this is not a checkpoint\n")
    elif how == "bit_flip":  # one bit, a third of the way in: paddle.load alone would accept it
        i = len(raw) // 3
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 0x10]) + raw[i + 1:])


@pytest.mark.points(3)
@pytest.mark.parametrize("how", ["truncated", "empty", "text", "bit_flip"])
def test_ch02_damaged_checkpoint_is_a_clear_error(how, ch02_run, idx_dir, capsys, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(ch02_run[0], folder)
    checkpoint.previous_checkpoint(folder / ch02.CHECKPOINT_FILE).unlink()  # no older one to fall back on
    damage_file(folder / ch02.CHECKPOINT_FILE, how)
    assert_clean_failure(ch02.main, ch02_args(idx_dir, folder, "--resume"),
                         "Start again without --resume", capsys, folder)


@pytest.mark.points(2)
def test_ch02_resume_falls_back_to_the_previous_good_checkpoint(ch02_run, idx_dir, capsys, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(ch02_run[0], folder)
    previous = checkpoint.previous_checkpoint(folder / ch02.CHECKPOINT_FILE)
    assert checkpoint.load_state(previous, require_checksum=True)["epoch"] == 1
    damage_file(folder / ch02.CHECKPOINT_FILE, "bit_flip")
    metrics = ch02.main(ch02_args(idx_dir, folder, "--resume"))  # redoes epoch 2 from the epoch-1 checkpoint
    assert "resuming from the previous checkpoint" in capsys.readouterr().out
    reference = paddle.load(str(ch02_run[0] / ch02.MODEL_FILE))
    resumed = paddle.load(str(folder / ch02.MODEL_FILE))
    for key in reference:
        np.testing.assert_array_equal(resumed[key].numpy(), reference[key].numpy(), err_msg=key)
    assert metrics["epochs"] == 2


@pytest.mark.points(2)
def test_ch02_resume_with_other_data_is_refused(ch02_run, idx_dir, capsys, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(ch02_run[0], folder)
    other = tmp_path / "other"
    shutil.copytree(idx_dir, other)
    labels = other / mnist.FILES["train_labels"][0]
    values = mnist.parse_idx(labels).copy()
    values[0] = (values[0] + 1) % 10  # one label changed: same shapes, other data
    mnist.write_idx(labels, values)
    assert_clean_failure(ch02.main, ch02_args(other, folder, "--resume"),
                         "was trained on other data", capsys, folder)
    # and the offline subset instead of the IDX files
    assert_clean_failure(ch02.main, ["--offline", "--out", str(folder), *CH02_OPTS, "--resume"],
                         "was trained on other data", capsys, folder)


@pytest.mark.points(2)
def test_ctrl_c_during_training_says_the_checkpoint_is_intact(ch02_run, idx_dir, monkeypatch, capsys, tmp_path):
    folder = tmp_path / "run"
    real = ch02.train_one_epoch

    def interrupted_in_epoch_2(model, loader, training, epoch, show_progress):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(model, loader, training, epoch, show_progress)

    monkeypatch.setattr(ch02, "train_one_epoch", interrupted_in_epoch_2)
    code, err, last = invoke(ch02.main, ch02_args(idx_dir, folder), capsys)
    assert code == 130 and "Traceback" not in err
    assert "(after epoch 1) is intact: continue with the same command plus --resume" in last
    monkeypatch.setattr(ch02, "train_one_epoch", real)
    ch02.main(ch02_args(idx_dir, folder, "--resume"))  # and the advice works: same weights as uninterrupted
    reference = paddle.load(str(ch02_run[0] / ch02.MODEL_FILE))
    resumed = paddle.load(str(folder / ch02.MODEL_FILE))
    for key in reference:
        np.testing.assert_array_equal(resumed[key].numpy(), reference[key].numpy(), err_msg=key)


@pytest.mark.points(1)
def test_ch02_run_cleans_paddles_scratch_folder(ch02_run):
    assert not (Path.home() / ".cache" / "paddle" / "to_static_tmp" / str(os.getpid())).exists()


# ---- chapter 2 export: the model predict loads ----

@pytest.mark.points(2)
@pytest.mark.parametrize("damage, expected", [
    ("bit_flip", "is damaged (model.pdiparams does not match SHA256SUMS)"),
    ("truncated", "is damaged (model.pdiparams does not match"),
    ("missing", "no exported model"),
    ("empty_unsummed", "are an empty file"),
    ("json_unsummed", "cannot load the exported model"),  # Paddle's own error, as one DataError
])
def test_damaged_export_is_a_clear_error(damage, expected, ch02_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(ch02_run[0], folder)
    prefix = folder / ch02.INFERENCE_PREFIX
    params = prefix.with_name(prefix.name + ".pdiparams")
    if damage.endswith("unsummed"):  # an export from before checksums: Paddle's own reader must not crash us
        (prefix.parent / checkpoint.SUMS_FILE).unlink()
    if damage == "missing":
        params.unlink()
    elif damage == "empty_unsummed":
        params.write_bytes(b"")
    elif damage == "json_unsummed":
        prefix.with_name(prefix.name + ".json").write_text('{"program": [1, 2')
    else:
        damage_file(params, damage)
    with pytest.raises(DataError, match="rerun|train"):
        try:
            checkpoint.load_inference_model(prefix)
        except DataError as e:
            assert expected in str(e), str(e)
            raise


# ---- chapter 3: images ----

def png_declaring(width: int, height: int) -> bytes:
    """A real 8x8 PNG whose IHDR is rewritten to declare width x height (with a valid CRC)."""
    png = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real 8x8 JPEG whose SOF0 marker is rewritten to declare width x height."""
    jpg = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = jpg.index(b"\xff\xc0")
    jpg[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpg)


@pytest.mark.points(2)
@pytest.mark.parametrize("damage, expected", [
    ("missing", "no image at"),
    ("folder", "is a folder"),
    ("text", "is not an image OpenCV can read"),
    ("huge_png", "declares 30000 x 30000 pixels (900 megapixels), above the limit of 50 megapixels"),
    ("huge_jpeg", "declares 30000 x 30000 pixels"),
])
def test_ch03_bad_images(damage, expected, capsys, out, tmp_path):
    path = tmp_path / "photo.png"
    if damage == "folder":
        path.mkdir()
    elif damage == "text":
        path.write_text("not a picture")
    elif damage == "huge_png":
        path.write_bytes(png_declaring(30000, 30000))
    elif damage == "huge_jpeg":
        path = tmp_path / "photo.jpg"
        path.write_bytes(jpeg_declaring(30000, 30000))
    assert_clean_failure(ch03.main, ["--image", str(path), "--out", str(out), "--no-figures"], expected, capsys, out)


@pytest.mark.points(1)
def test_image_size_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    (tmp_path / "ok.png").write_bytes(png_declaring(8, 8))
    assert image.read_image(tmp_path / "ok.png", "gray").shape == (8, 8)
    (tmp_path / "big.png").write_bytes(png_declaring(9000, 6000))  # 54 megapixels
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded an image above the limit"))
    with pytest.raises(image.ImageTooLarge, match="54 megapixels"):
        image.read_image(tmp_path / "big.png")
    assert "50 megapixels" in image.SIZE_LIMIT_HELP


# ---- chapter 4: a small IDX folder works as in chapter 2 ----

@pytest.mark.points(2)
def test_ch04_trains_on_an_idx_folder_of_160_images(idx_dir, monkeypatch, tmp_path):
    tracer = WriteTracer(monkeypatch)
    folder = tmp_path / "ch04"
    metrics = ch04.main(["--data", str(idx_dir), "--out", str(folder), "--epochs", "1", "--train-size", "64",
                         "--batch-size", "32", "--device", "cpu", "--no-figures"])
    assert metrics["train_images"] == 64 and metrics["val_images"] == 32  # a fifth of the 160 held out
    assert (folder / "metrics.json").is_file() and (folder / "models" / "bn.pdparams").is_file()
    assert tracer.direct_writes(folder) == []


# ---- every file a run writes: temporary name + rename ----

@pytest.mark.points(2)
def test_every_file_a_run_writes_goes_through_a_temporary_name(ch02_run, monkeypatch, tmp_path):
    folder, tracer = ch02_run
    written = {p.name for p in tracer.paths}
    assert any(n.startswith(".checkpoint.pdckpt.") for n in written) and len(tracer.paths) >= 7
    assert tracer.direct_writes(folder) == []
    assert {"checkpoint.pdckpt", "checkpoint.prev.pdckpt", "model.pdparams", "metrics.json", "loss.png"} <= \
        {p.name for p in folder.iterdir()}
    assert not [p for p in folder.rglob("*") if files.PART_SUFFIX in p.name or p.name.endswith(".old")]
    data = write_housing(tmp_path / "housing.data", housing_rows())
    for main in (ch01_numpy.main, ch01_paddle.main):
        tracer = WriteTracer(monkeypatch)
        main(["--data", str(data), "--out", str(tmp_path / "ch01"), "--epochs", "1"])
        assert tracer.paths and tracer.direct_writes(tmp_path / "ch01") == []


# ---- kills, simulated at each step of each kind of write ----

@pytest.mark.points(2)
def test_interrupted_file_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "metrics.json"
    files.write_json(target, {"version": "old"})
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_path(target) as tmp:
            tmp.write_text('{"version": "new", "half')  # the kill comes in the middle of the write
            raise KeyboardInterrupt
    assert json.loads(target.read_text()) == {"version": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.points(2)
@pytest.mark.parametrize("step", ["during_jit_save", "between_the_renames"])
def test_interrupted_export_keeps_a_whole_model(step, ch02_run, monkeypatch, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(ch02_run[0], folder)
    prefix = folder / ch02.INFERENCE_PREFIX
    old = snapshot(prefix.parent)
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(3, 1, 28, 28)).astype("float32"))
    expected = checkpoint.load_inference_model(prefix)(x).numpy()
    mnist_sizes = {"num_classes": 10, "in_channels": 1, "image_size": 28}
    model = ch02.build_model(SimpleNamespace(model="softmax", dropout=0.0, batch_norm=False, **mnist_sizes))
    if step == "during_jit_save":
        def killed_jit_save(layer, path, **kwargs):
            Path(path + ".pdiparams").write_bytes(b"half a file")
            raise KeyboardInterrupt
        monkeypatch.setattr(paddle.jit, "save", killed_jit_save)
    else:
        monkeypatch.setattr(files.os, "replace", killed_after_first_rename())
    spec = [paddle.static.InputSpec(shape=[None, 1, 28, 28], dtype="float32", name="image")]
    with pytest.raises(KeyboardInterrupt):
        checkpoint.export_inference_model(model, prefix.parent, spec)
    monkeypatch.undo()
    if step == "between_the_renames":  # the old export is set aside, the new one not yet in: the reader recovers
        assert not prefix.parent.exists() and (folder / ".inference.old").is_dir()
    np.testing.assert_array_equal(checkpoint.load_inference_model(prefix)(x).numpy(), expected)
    assert snapshot(prefix.parent) == old
    assert not [p for p in folder.iterdir() if files.PART_SUFFIX in p.name]


@pytest.mark.points(2)
def test_checkpoint_killed_between_its_renames_resumes_from_the_previous(ch02_run, monkeypatch, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(ch02_run[0], folder)
    path = folder / ch02.CHECKPOINT_FILE
    monkeypatch.setattr(files.os, "replace", killed_after_first_rename())
    model = paddle.nn.Linear(2, 2)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, model=model, optimizer=paddle.optimizer.SGD(parameters=model.parameters()),
                                   epoch=3)
    monkeypatch.undo()
    assert not path.exists()
    warnings = []
    state, source = checkpoint.read_checkpoint(path, warn=warnings.append)
    assert source.name == "checkpoint.prev.pdckpt" and state["epoch"] == 2 and "previous" in warnings[0]


@pytest.mark.points(2)
def test_real_kill_9_during_writes_leaves_old_or_new_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "metrics.json"
    writer = ("import sys\nfrom common.files import write_json\n"
              "big = {'rows': list(range(200_000))}\n"
              "print('ready', flush=True)\n"
              "for i in range(10**6):\n    write_json(sys.argv[1], {'i': i, **big})\n")
    files.write_json(target, {"i": -1, "rows": []})
    proc = subprocess.Popen([sys.executable, "-c", writer, str(target)], stdout=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.4)  # a few writes of about 2 MB each: the kill lands in one of them
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    content = json.loads(target.read_text())
    assert content["i"] == -1 or content["rows"] == list(range(200_000))
    files.write_json(target, {"i": "after"})  # the killed writer's .part (its pid is dead) goes
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


# ---- the run-folder lock ----

@pytest.mark.points(2)
def test_second_run_on_the_same_folder_is_refused_until_the_first_dies(tmp_path):
    folder = tmp_path / "run"
    holder = ("import sys, time\nfrom common.files import lock_run_dir\n"
              "lock_run_dir(sys.argv[1]); print('locked', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(folder)], stdout=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    parser = make_parser("chx", "demo")
    try:
        assert proc.stdout.readline() == b"locked\n"
        with pytest.raises(files.OutputError, match=f"another run \\(pid {proc.pid}\\) is writing to"):
            parser.parse_args(["--out", str(folder)])
    finally:
        proc.kill()  # kill -9: the lock it held is now stale
        proc.wait(timeout=10)
    assert parser.parse_args(["--out", str(folder)]).out == folder  # taken over
    files.unlock_run_dir(folder)


# ---- downloads: slow servers, unusable caches, offline ----

DRIP = b"x" * 200


class _DripHandler(http.server.BaseHTTPRequestHandler):
    """Announces 200 bytes and sends one every 20 ms: each read succeeds, the whole never arrives in time."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(DRIP)))
        self.end_headers()
        try:
            for i in range(len(DRIP)):
                self.wfile.write(DRIP[i:i + 1])
                self.wfile.flush()
                time.sleep(0.02)
        except OSError:  # the client gave up
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def drip_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DripHandler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file"
    httpd.shutdown()


@pytest.mark.points(2)
@pytest.mark.parametrize("limits, expected", [
    ({"deadline": 0.3}, "no complete answer within 0.3 s"),
    ({"min_rate": 1000, "grace": 0.2}, "too slow"),
])
def test_dripping_server_fails_in_bounded_time_and_leaves_no_part(drip_server, limits, expected, tmp_path):
    start = time.monotonic()
    with pytest.raises(DataError, match=expected):
        download.download(drip_server, tmp_path / "f.bin", hashlib.md5(DRIP).hexdigest(), **limits)
    assert time.monotonic() - start < 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.points(2)
@pytest.mark.parametrize("cache", ["data_dir_is_a_file", "entry_is_a_folder"])
def test_unusable_cache_falls_back_with_a_notice(cache, drip_server, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(housing, "URLS", (drip_server,))  # never reached: the cache fails first
    if cache == "data_dir_is_a_file":
        (tmp_path / "cache").write_text("not a folder")
    else:
        (tmp_path / "cache" / housing.FILENAME).mkdir(parents=True)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "cache"))
    data, source = housing.load_housing()
    assert data.shape == (506, 14) and "offline fallback" in source
    err = capsys.readouterr().err
    assert ("cannot write" in err or "is a folder" in err) and "falling back" in err
    subset = mnist.load_mnist(download=True)
    assert subset.is_subset


@pytest.mark.points(2)
def test_offline_never_deletes_a_cached_file_and_stale_parts_go(tmp_path):
    cached = tmp_path / "f.txt"
    cached.write_bytes(b"my own edits")
    with pytest.raises(DataError, match="does not verify .* left as it is"):
        download.fetch("f.txt", ["http://127.0.0.1:9/f.txt"], "0" * 32, cache_dir=tmp_path, offline=True)
    assert cached.read_bytes() == b"my own edits"
    dead, live = tmp_path / ".f.txt.999999999.abc.part", tmp_path / f".f.txt.{os.getpid()}.def.part"
    dead.write_bytes(b"left by a killed download")
    live.write_bytes(b"being written by a live process")
    with pytest.raises(DataError):  # port 9 refuses: the download fails, but the dead writer's part is gone
        download.download("http://127.0.0.1:9/f.txt", cached, "0" * 32)
    assert not dead.exists() and live.exists() and cached.read_bytes() == b"my own edits"
