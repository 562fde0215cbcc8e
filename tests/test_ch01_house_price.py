"""Chapter 1: house prices, numpy from scratch and Paddle."""
import argparse
import json

import numpy as np
import paddle
import pytest

from chapters.ch01_house_price import numpy_from_scratch as npv
from chapters.ch01_house_price import train as pdv
from common.housing import load_housing


def config(**overrides) -> argparse.Namespace:
    return npv.build_parser("test", "test").parse_args(
        [f"--{k.replace('_', '-')}={v}" for k, v in overrides.items()])


@pytest.fixture(scope="module")
def data():
    return npv.load_data(config())


@pytest.mark.points(2)
def test_data_shapes_and_split(data):
    raw, _ = load_housing()
    assert raw.shape == (506, 14)
    assert data["train_x"].shape == (404, 13) and data["train_y"].shape == (404, 1)
    assert data["test_x"].shape == (102, 13) and data["test_y"].shape == (102, 1)
    # The split keeps the file's order: the first 80 % of rows train.
    np.testing.assert_allclose(npv.price_in_thousands(data["test_y"][:, 0], data["stats"]), raw[404:, 13], rtol=1e-5)


@pytest.mark.points(2)
def test_minmax_puts_training_columns_in_unit_interval():
    d = npv.load_data(config(norm="minmax"))
    train = np.hstack([d["train_x"], d["train_y"]])
    np.testing.assert_allclose(train.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(train.max(axis=0), 1, atol=1e-6)


@pytest.mark.points(2)
def test_zscore_gives_training_columns_mean_0_std_1(data):
    train = np.hstack([data["train_x"], data["train_y"]]).astype(np.float64)
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-5)
    # Test statistics are not used: the test split is not exactly standardised.
    assert abs(data["test_y"].mean()) > 0.05


@pytest.mark.points(2)
def test_models_output_shape_and_14_parameters(data):
    x = data["test_x"][:7]
    numpy_model = npv.LinearRegression()
    assert numpy_model.forward(x).shape == (7, 1)
    assert numpy_model.w.size + 1 == 14
    paddle_model = pdv.Regressor()
    assert paddle_model(paddle.to_tensor(x)).shape == [7, 1]
    assert sum(p.size for p in paddle_model.parameters() if p.trainable) == 14


@pytest.mark.points(3)
def test_hand_gradient_matches_finite_differences(data):
    model = npv.LinearRegression(seed=3)
    x, y = data["train_x"][:32].astype(np.float64), data["train_y"][:32].astype(np.float64)
    grad_w, grad_b = model.gradient(x, y)
    eps = 1e-6

    def loss():
        return np.mean((model.forward(x) - y) ** 2)

    numeric_w = np.zeros_like(model.w)
    for i in range(model.w.size):
        model.w[i] += eps
        up = loss()
        model.w[i] -= 2 * eps
        down = loss()
        model.w[i] += eps
        numeric_w[i] = (up - down) / (2 * eps)
    model.b += eps
    up = loss()
    model.b -= 2 * eps
    numeric_b = (up - loss()) / (2 * eps)
    np.testing.assert_allclose(grad_w, numeric_w, rtol=1e-5, atol=1e-8)
    assert grad_b == pytest.approx(numeric_b, rel=1e-5)


@pytest.mark.points(3)
def test_hand_gradient_matches_paddle_autograd(data):
    x, y = data["train_x"][:32], data["train_y"][:32]
    numpy_model = npv.LinearRegression(seed=5)
    layer = pdv.Regressor()
    layer.fc.weight.set_value(numpy_model.w.astype(np.float32))
    layer.fc.bias.set_value(np.array([numpy_model.b], dtype=np.float32))
    loss = paddle.nn.functional.mse_loss(layer(paddle.to_tensor(x)), paddle.to_tensor(y))
    loss.backward()
    grad_w, grad_b = numpy_model.gradient(x.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose(layer.fc.weight.grad.numpy(), grad_w, rtol=1e-4, atol=1e-6)
    assert layer.fc.bias.grad.item() == pytest.approx(grad_b, rel=1e-4, abs=1e-6)


@pytest.mark.points(2)
def test_numpy_training_loss_falls(data):
    x, y = data["train_x"], data["train_y"]
    full = npv.train_full_batch(npv.LinearRegression(), x, y, lr=0.1, steps=50)
    assert full[-1] < 0.5 * full[0]
    model = npv.LinearRegression()
    before = npv.mse(model.forward(x), y)
    mini = npv.train_mini_batch(model, x, y, lr=0.01, epochs=5, batch_size=10, seed=0)
    assert mini[-1] < mini[0] < before
    assert npv.mse(model.forward(x), y) < 0.5 * before


@pytest.mark.points(1)
def test_least_squares_solves_the_normal_equations(data):
    x, y = data["train_x"].astype(np.float64), data["train_y"].astype(np.float64)
    w, b = npv.least_squares(x, y)
    x1 = np.hstack([x, np.ones((len(x), 1))])
    expected = np.linalg.solve(x1.T @ x1, x1.T @ y)
    np.testing.assert_allclose(np.vstack([w, [[b]]]), expected, rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def paddle_run(tmp_path_factory):
    """One short run of the Paddle chapter end to end: 30 epochs, ~0.5 s (no plot: the numpy test draws its own)."""
    out = tmp_path_factory.mktemp("ch01")
    metrics = pdv.main(["--offline", "--epochs", "30", "--out", str(out), "--device", "cpu", "--no-figures"])
    return out, metrics


@pytest.mark.points(3)
def test_paddle_training_reaches_the_least_squares_optimum(paddle_run):
    out, metrics = paddle_run
    assert metrics["loss_history"][-1] < 0.5 * metrics["loss_history"][0]
    # Least squares minimises the training MSE, so SGD can only approach it from above.
    assert 1.0 <= metrics["train_mse_ratio"] < 1.03
    assert json.loads((out / "metrics.json").read_text())["train_mse"] == pytest.approx(metrics["train_mse"])
    assert not (out / "loss.png").exists()  # --no-figures


@pytest.mark.points(3)
def test_save_load_round_trip_gives_identical_predictions(paddle_run, data):
    out, _ = paddle_run
    reloaded, stats = pdv.load_for_prediction(out)
    again, _ = pdv.load_for_prediction(out)
    x = data["test_x"]
    np.testing.assert_array_equal(pdv.predict_normalized(reloaded, x), pdv.predict_normalized(again, x))
    np.testing.assert_allclose(stats["shift"], data["stats"]["shift"])
    # The saved weights are exactly the trained ones: their training MSE is the one the run reported.
    assert npv.mse(pdv.predict_normalized(reloaded, data["train_x"]), data["train_y"]) == pytest.approx(
        paddle_run[1]["train_mse"], rel=1e-6)


@pytest.mark.points(2)
def test_prediction_in_thousands_of_dollars(paddle_run):
    out, metrics = paddle_run
    raw, _ = load_housing()
    train_raw = raw[:404].astype(np.float64)
    state = paddle.load(str(out / pdv.MODEL_FILE))
    w, b = state["fc.weight"].numpy().astype(np.float64), state["fc.bias"].numpy().astype(np.float64)
    # Recompute by hand from raw features: standardise with training statistics, apply w, b, un-standardise.
    mean, std = train_raw.mean(axis=0), train_raw.std(axis=0)
    house = raw[-1:].astype(np.float64)
    expected = (((house[:, :13] - mean[:13]) / std[:13]) @ w + b) * std[13] + mean[13]
    assert metrics["example_predicted_k_dollars"] == pytest.approx(expected.item(), rel=1e-4)
    assert metrics["example_actual_k_dollars"] == pytest.approx(raw[-1, 13])


def test_predict_takes_rows_or_a_csv_and_refuses_bad_input_in_one_line(paddle_run, tmp_path):
    from chapters.ch01_house_price import predict
    from common.download import DataError
    out, metrics = paddle_run
    raw, _ = load_housing()
    house = raw[-1, :13]
    row = ",".join(repr(float(v)) for v in house)
    # The same house as a command-line row and as a CSV row (columns shuffled, a text column and the target
    # included): the same price, the one the training run printed for it.
    table = tmp_path / "houses.csv"
    names = list(reversed(["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B",
                           "LSTAT"]))
    table.write_text(",".join(["name"] + names + ["MEDV"]) + "\n"  # a text column the model does not use
                     + ",".join(["house 101"] + [repr(float(v)) for v in house[::-1]]) + ",1\n")
    from_row = predict.main(["--model", str(out), row])
    from_csv = predict.main(["--model", str(out), "--csv", str(table)])
    assert from_row == from_csv == [pytest.approx(metrics["example_predicted_k_dollars"], rel=1e-4)]
    for argv, message in [
        ([row.replace(row.split(",")[0], "nan", 1)], "holds nan or inf"),  # not a price of "$nank"
        (["--csv", str(tmp_path / "missing.csv")], "--csv .*missing.csv does not exist"),  # not "--data ..."
    ]:
        with pytest.raises(DataError, match=message):
            predict.main(["--model", str(out), *argv])
    with pytest.raises(DataError, match="is a file: give the run folder"):
        predict.main(["--model", str(out / "metrics.json"), row])


def test_split_check_repeats_the_numpy_chapter_on_its_ordered_split_and_writes_its_figures(tmp_path):
    from chapters.ch01_house_price import split_check
    chapter = npv.main(["--offline", "--out", str(tmp_path / "numpy")])
    checked = split_check.main(["--offline", "--splits", "2", "--out", str(tmp_path / "check")])
    # Same model, seed, epochs and split as numpy_from_scratch: the same trained / optimum test MSE ratio.
    assert checked["ordered_ratio"] == pytest.approx(chapter["test_mse_ratio"], rel=1e-9)
    assert len(checked["shuffled_ratios"]) == 2
    saved = json.loads((tmp_path / "check" / "metrics.json").read_text())
    assert saved["ordered_ratio"] == checked["ordered_ratio"] and saved["data_source"] == checked["data_source"]
    assert (tmp_path / "numpy" / "numpy_loss.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")  # a real PNG
