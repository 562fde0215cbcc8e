"""Chapter 6: the numpy network's hand-written pieces against finite differences and Paddle.

What students write (solution regions): the backward pass (network.MLP.backward), the cross-entropy
(network.log_softmax, cross_entropy, cross_entropy_gradient) and the four optimizers (optimizers.py). The tests
of those pieces are the gradient, cross-entropy, optimizer, training, bowl and chapter-run tests; the others
(one-hot, weight decay, embeddings, gradient accumulation, the data split, saving, approximation, the CLI)
check code that is given.
"""
import json
import math

import numpy as np
import pytest

from chapters.ch06_from_scratch import approximation, bowl, checks
from chapters.ch06_from_scratch import from_scratch as ch06
from chapters.ch06_from_scratch import network as nn
from chapters.ch06_from_scratch.optimizers import OPTIMIZERS, make_optimizer
from common.mnist import BLANK, shift_image


def config(*args):
    return ch06.parse_args(["--offline", "--no-figures", *args])


@pytest.fixture(scope="module")
def small_data():
    """The chapter's 6:2:2 split of the offline subset, with only 512 training images."""
    return ch06.load_data(config("--train-size", "512"))


# ---- data: one-hot codes and the split ----

@pytest.mark.points(1)
def test_one_hot_round_trip():
    labels = np.random.default_rng(0).integers(0, 10, 50)
    codes = nn.one_hot(labels, 10)
    assert codes.shape == (50, 10)
    np.testing.assert_array_equal(codes.sum(axis=1), 1)
    np.testing.assert_array_equal(codes[np.arange(50), labels], 1)
    np.testing.assert_array_equal(nn.from_one_hot(codes), labels)
    with pytest.raises(ValueError):
        nn.one_hot(np.array([0, 10]), 10)


@pytest.mark.points(2)
def test_split_is_6_2_2_stratified_and_disjoint(small_data):
    labels = np.repeat(np.arange(10), 50)  # 500 labels, 50 per class, sorted like the offline subset
    train, val, test = ch06.split_6_2_2(labels, seed=0)
    assert (len(train), len(val), len(test)) == (300, 100, 100)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(500))
    for part, n in ((train, 30), (val, 10), (test, 10)):
        np.testing.assert_array_equal(np.bincount(labels[part], minlength=10), n)
    # The chapter's data: 3,000 / 1,000 / 1,000 of the 5,000 subset digits (training cut to 512 here),
    # flattened and standardised with MNIST's mean and std (a blank pixel is -0.1307 / 0.3081).
    assert small_data["train_x"].shape == (512, 784) and small_data["val_x"].shape == (1000, 784)
    assert small_data["test_x"].shape == (1000, 784)
    assert small_data["train_x"].min() == pytest.approx(BLANK)
    assert "offline subset" in small_data["source"]


@pytest.mark.points(1)
def test_shift_batch_moves_whole_images():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 784)).astype(np.float32)
    np.testing.assert_array_equal(ch06.shift_batch(x, 0, rng), x)
    shifted = ch06.shift_batch(x, 2, rng)
    for original, moved in zip(x, shifted):  # each is the image moved by some (dy, dx) in -2..2
        candidates = [shift_image(original.reshape(1, 28, 28), dy, dx).ravel()
                      for dy in range(-2, 3) for dx in range(-2, 3)]
        assert any(np.array_equal(moved, c) for c in candidates)


# ---- the loss (solution: cross-entropy) ----

@pytest.mark.points(3)
def test_cross_entropy_equals_paddle_mean_and_per_sample():
    result = checks.cross_entropy_check()
    assert result["mean_abs_diff"] < 1e-5
    assert result["per_sample_max_abs_diff"] < 1e-5


@pytest.mark.points(2)
def test_cross_entropy_values_and_stability():
    # Equal logits: every class has probability 1/C, the loss is log C.
    assert nn.cross_entropy(np.zeros((4, 10)), np.arange(4)) == pytest.approx(math.log(10))
    # Huge logits: no overflow; the loss of the wrong class is the logit gap, of the right one ~0.
    z = np.array([[1000.0, 0.0], [1000.0, 0.0]])
    np.testing.assert_allclose(nn.cross_entropy(z, np.array([1, 0]), reduction="none"), [1000.0, 0.0], atol=1e-9)
    # Its gradient: (softmax - one-hot) / N, so each row sums to 0.
    g = nn.cross_entropy_gradient(np.random.default_rng(1).normal(size=(5, 3)), np.array([0, 1, 2, 0, 1]))
    np.testing.assert_allclose(g.sum(axis=1), 0, atol=1e-12)


# ---- the backward pass (solution: MLP.backward) ----

@pytest.mark.points(2)
@pytest.mark.parametrize("activation", nn.ACTIVATIONS)
def test_backward_alone_equals_finite_differences(activation):
    # L = sum(logits * R): dL/dlogits = R, so this grades MLP.backward whatever the cross-entropy code does.
    result = checks.gradient_check_numeric(activation, loss="probe")
    assert sorted(result["per_parameter"]) == ["W1", "W2", "b1", "b2"]
    assert result["max_relative_error"] < 1e-6, result


@pytest.mark.points(3)
@pytest.mark.parametrize("activation", nn.ACTIVATIONS)
def test_backward_equals_finite_differences(activation):
    result = checks.gradient_check_numeric(activation)  # float64, every entry of W1, b1, W2, b2, with weight decay
    assert sorted(result["per_parameter"]) == ["W1", "W2", "b1", "b2"]
    assert result["max_relative_error"] < 1e-6, result


@pytest.mark.points(3)
@pytest.mark.parametrize("activation", nn.ACTIVATIONS)
def test_backward_equals_paddle_autograd(activation):
    result = checks.gradient_check_autograd(activation)  # 784 -> 100 -> 10, float32
    assert result["logits_max_abs_diff"] < 1e-4
    assert result["max_relative_error"] < 1e-4, result


# ---- optimizers (solution: optimizers.py) ----

@pytest.mark.points(2)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_numpy_optimizer_equals_paddle_after_20_steps(name):
    result = checks.optimizer_match(name)
    assert result["steps"] == 20
    assert result["moved"] > 0.05  # the parameter really moved, so a small difference means something
    assert result["max_abs_diff"] < 1e-6, result


@pytest.mark.points(1)
@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam"])
def test_numpy_defaults_are_paddles_defaults(name):
    p0, grads = checks.optimizer_gradients(seed=3)
    params = {"p": p0.copy()}
    optimizer = make_optimizer(name, 0.01)
    for g in grads:
        optimizer.step(params, {"p": g})
    # paddle_steps without hyper-parameters: Paddle's own defaults (momentum 0.9; rho 0.95, eps 1e-6; Adam's)
    reference = checks.paddle_steps(name, p0, grads, lr=0.01)
    assert checks.max_abs(params["p"], reference) < 1e-6


@pytest.mark.points(2)
def test_paddles_update_conventions():
    expected = {"momentum": "v = mu v + g", "rmsprop": "g / sqrt(r + eps)", "adam": "eps after bias correction"}
    result = checks.paddle_conventions()
    for rule, form in expected.items():
        assert result[rule]["matches"] == form
        others = [d for f, d in result[rule]["distance"].items() if f != form]
        assert result[rule]["distance"][form] < 1e-6 < 1e-3 < min(others), result[rule]


@pytest.mark.points(2)
def test_optimizer_paths_on_the_ill_conditioned_bowl():
    summary = bowl.summarise(bowl.optimizer_paths())
    for name, s in summary.items():
        assert s["final_loss"] < 1e-2 * s["start_loss"], name
    for name in ("momentum", "rmsprop", "adam"):  # each beats plain SGD on the same number of steps
        assert summary[name]["final_loss"] < summary["sgd"]["final_loss"], name


# ---- given code: weight decay, embeddings, gradient accumulation ----

@pytest.mark.points(2)
def test_hand_weight_decay_is_l2decay_with_factor_two():
    result = checks.weight_decay_check()["max_abs_diff"]
    assert result["L2Decay(2 * wd)"] < 1e-6
    assert result["L2Decay(wd)"] > 1e-3
    params = {"W1": np.ones((2, 2)), "b1": np.ones(2), "W2": np.full((2, 1), 3.0), "b2": np.ones(1)}
    assert nn.l2_penalty(params, 0.1) == pytest.approx(0.1 * (4 + 18))
    decay = nn.l2_gradient(params, 0.1)
    np.testing.assert_allclose(decay["W2"], 0.6)
    np.testing.assert_array_equal(decay["b1"], 0)


@pytest.mark.points(2)
def test_embedding_is_a_one_hot_matmul_and_its_gradient_touches_only_looked_up_rows():
    result = checks.embedding_check()
    assert result["lookup_vs_one_hot_matmul"] < 1e-6
    assert result["grad_vs_one_hot_transpose"] < 1e-5
    assert result["untouched_rows_max_abs_grad"] == 0.0
    assert result["rows_with_gradient"] == result["looked_up"] == [0, 3, 7, 9]


@pytest.mark.points(2)
def test_gradients_accumulate_without_clear_grad():
    result = checks.accumulation_check()
    assert result["accumulated_vs_sum"] < 1e-6
    assert result["accumulated_vs_last_batch"] > 1e-2


# ---- given code: universal approximation ----

@pytest.mark.points(2)
def test_approximation_error_falls_with_every_doubling_of_units():
    rows = approximation.approximation_table()
    for activation in ("sigmoid", "relu"):
        errors = [r[f"{activation}_max_error"] for r in rows]
        assert all(later < earlier for earlier, later in zip(errors, errors[1:])), (activation, errors)
        assert errors[-1] < 0.05
    assert [r["relu_units"] for r in rows] == [2 * r["sigmoid_units"] for r in rows]
    # Independently: the ReLU network is the piecewise-linear interpolation, exact at the knots.
    net = approximation.build_network(8, "relu")
    knots = np.linspace(*approximation.INTERVAL, 9)
    np.testing.assert_allclose(approximation.network_output(net, knots), approximation.target(knots), atol=1e-12)


# ---- the chapter's steps ----

@pytest.mark.points(3)
def test_training_lowers_the_loss_clearly(small_data):
    cfg = config("--train-size", "512", "--epochs", "3", "--augment", "0")
    model = ch06.build_model(cfg)
    before = ch06.evaluate(model, small_data["val_x"], small_data["val_y"])
    history = ch06.train(cfg, model, small_data, ch06.configure(cfg, model))
    after = ch06.evaluate(model, small_data["val_x"], small_data["val_y"])
    assert before["loss"] > 1.5  # about ln 10 = 2.3 at the start: ten classes, nothing learnt
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] > 0.8
    assert history["val_accuracy"][-1] == after["accuracy"]
    assert len(history["train_loss"]) == 3 and history["train_loss"][-1] < history["train_loss"][0]


@pytest.mark.points(1)
def test_a_blown_up_loss_stops_training_with_a_hint(small_data):
    cfg = config("--train-size", "512", "--epochs", "1", "--optimizer", "sgd", "--lr", "50")
    model = ch06.build_model(cfg)
    with pytest.raises(ch06.TrainingDiverged, match="training diverged. Lower --lr"):
        ch06.train(cfg, model, small_data, ch06.configure(cfg, model))


@pytest.mark.points(2)
def test_saved_weights_reload_into_numpy_and_paddle(tmp_path):
    cfg = config("--out", str(tmp_path), "--hidden", "16", "--activation", "sigmoid")
    model = ch06.build_model(cfg)
    rng = np.random.default_rng(0)
    data = {"test_x": rng.normal(size=(20, 784)).astype(np.float32), "test_y": rng.integers(0, 10, 20)}
    saved = ch06.save(cfg, model, data, history={}, demos={})
    assert saved["reload"]["logits_max_abs_diff_numpy_vs_paddle"] < 1e-5
    assert saved["reload"]["numpy_test_accuracy"] == saved["reload"]["paddle_test_accuracy"]
    with np.load(saved["paths"]["weights"], allow_pickle=False) as state:
        reloaded = nn.MLP.from_state(state)
    assert reloaded.activation == "sigmoid"
    for name, value in model.params.items():
        np.testing.assert_array_equal(reloaded.params[name], value)


@pytest.mark.points(3)
def test_chapter_run_writes_metrics_and_figures(tmp_path, monkeypatch):
    drawn = {}  # drawing is matplotlib's job (importing it costs over a second): record what would be drawn
    monkeypatch.setattr(ch06, "plot_curves", lambda curves, path, **kw: drawn.setdefault(path.name, curves) and path)
    monkeypatch.setattr(approximation, "plot_approximation", lambda rows, path: drawn.setdefault(path.name, rows))
    monkeypatch.setattr(bowl, "plot_paths", lambda paths, path: drawn.setdefault(path.name, paths))
    metrics = ch06.main(["--offline", "--figures", "--epochs", "2", "--train-size", "256", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert sorted(drawn) == ["accuracy.png", "approximation.png", "loss.png", "optimizer_paths.png"]
    assert len(drawn["loss.png"]["validation"]) == 2
    assert metrics["split"] == {"train": 256, "validation": 1000, "test": 1000}
    assert 0.5 < metrics["test_accuracy"] <= 1 and 0.5 < metrics["val_accuracy"] <= 1
    assert metrics["max_gradient_error_vs_finite_differences"] < 1e-6
    assert metrics["max_gradient_error_vs_autograd"] < 1e-4
    assert set(metrics["optimizer_max_abs_diff"]) == set(OPTIMIZERS)
    assert max(metrics["optimizer_max_abs_diff"].values()) < 1e-6
    assert metrics["reload"]["numpy_test_accuracy"] == metrics["test_accuracy"]
    assert (tmp_path / "weights.npz").is_file()


@pytest.mark.points(1)
@pytest.mark.parametrize("bad", [["--augment", "9"], ["--lr-decay", "1.5"], ["--weight-decay", "-1"],
                                 ["--activation", "tanh"], ["--optimizer", "adagrad"], ["--hidden", "0"]])
def test_bad_options_are_one_line_errors(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ch06.parse_args(bad)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
