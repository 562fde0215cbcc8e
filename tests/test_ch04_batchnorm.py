"""Chapter 4: numpy BatchNorm and Dropout against Paddle's layers, Paddle's BatchNorm bookkeeping, the BN LeNet."""
from pathlib import Path

import numpy as np
import paddle
import pytest

from chapters.ch04_batchnorm import numerics as bn

pytestmark = pytest.mark.filterwarnings("ignore:When training, we now always track global mean and variance")

TOL = 1e-5


@pytest.mark.points(4)
@pytest.mark.parametrize("dim", [1, 2])
def test_numpy_batchnorm_equals_paddle_in_train_and_eval(dim):
    result = bn.compare_batchnorm(dim, steps=3, seed=dim)
    diff = result["max_abs_diff"]
    assert diff["train"] < TOL, diff
    assert diff["eval"] < TOL, diff


@pytest.mark.points(2)
def test_batchnorm1d_on_sequences_averages_over_batch_and_length():
    # x: [N, C, L]: one mean per channel over N and L, as BatchNorm2D does over N, H and W.
    rng = np.random.default_rng(3)
    x = bn.random_batch(2, rng, n=4)[:, :, :, 0]  # [4, 3, 5]
    layer = bn.make_layer(1, x.shape[1], rng)
    y_numpy, _, _ = bn.batch_norm_train(x, layer.weight.numpy(), layer.bias.numpy())
    assert bn.max_abs(layer(paddle.to_tensor(x)).numpy(), y_numpy) < TOL


@pytest.mark.points(2)
def test_numpy_batchnorm_normalises_each_channel():
    # Independent of Paddle: with gamma = 1 and beta = 0 each channel comes out with mean 0 and std ~1.
    x = bn.random_batch(2, np.random.default_rng(4))
    c = x.shape[1]
    y, mean, var = bn.batch_norm_train(x, np.ones(c), np.zeros(c))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), np.sqrt(var / (var + bn.EPSILON)), rtol=1e-5)
    np.testing.assert_allclose(mean, [x[:, k].mean() for k in range(c)], rtol=1e-5)


@pytest.mark.points(3)
def test_running_statistics_after_k_steps_follow_the_formula():
    # Closed form of k updates from (0, 1): running = 0.9^k * start + 0.1 * sum_i 0.9^(k-1-i) * batch_i,
    # with the biased batch variance; the running stats then drive eval mode.
    k, rng = 4, np.random.default_rng(5)
    layer = paddle.nn.BatchNorm2D(3)
    batches = [bn.random_batch(2, rng) for _ in range(k)]
    layer.train()
    for x in batches:
        layer(paddle.to_tensor(x))
    weights = [0.1 * 0.9 ** (k - 1 - i) for i in range(k)]
    mean = sum(w * x.mean(axis=(0, 2, 3)) for w, x in zip(weights, batches))
    var = 0.9 ** k * 1.0 + sum(w * x.var(axis=(0, 2, 3)) for w, x in zip(weights, batches))
    np.testing.assert_allclose(layer._mean.numpy(), mean, atol=TOL)
    np.testing.assert_allclose(layer._variance.numpy(), var, atol=TOL)


@pytest.mark.points(2)
def test_running_variance_is_the_biased_one():
    convention = bn.running_variance_convention()
    assert convention["matches"] == "biased"
    assert convention["distance"]["biased"] < TOL < convention["distance"]["unbiased"]


@pytest.mark.points(2)
def test_eval_mode_ignores_the_batch_and_keeps_running_stats():
    layer = bn.make_layer(1, 3, np.random.default_rng(6))
    layer.train()
    layer(paddle.to_tensor(bn.random_batch(1, np.random.default_rng(7))))
    before = layer._mean.numpy(), layer._variance.numpy()
    layer.eval()
    x = bn.random_batch(1, np.random.default_rng(8))
    whole = layer(paddle.to_tensor(x)).numpy()
    one_row = layer(paddle.to_tensor(x[:1])).numpy()  # in eval mode a row's output does not depend on its batch
    np.testing.assert_allclose(one_row, whole[:1], atol=TOL)
    np.testing.assert_array_equal(layer._mean.numpy(), before[0])
    np.testing.assert_array_equal(layer._variance.numpy(), before[1])


@pytest.mark.points(1)
def test_one_value_per_channel_is_passed_through_unchanged(tmp_path):
    # Paddle 3.3.1: in training mode, a batch with one value per channel (x [1, C]) skips BatchNorm
    # altogether: y = x (gamma and beta ignored) and the running statistics stay as they were, silently.
    # That is why the chapter's loader drops a last batch of one image.
    layer = bn.make_layer(1, 3, np.random.default_rng(12))
    layer.train()
    x = bn.random_batch(1, np.random.default_rng(13), n=1)
    np.testing.assert_array_equal(layer(paddle.to_tensor(x)).numpy(), x)
    np.testing.assert_array_equal(layer._mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(layer._variance.numpy(), np.ones(3))
    # Two identical rows (also zero variance) are normalised as usual: the output is beta.
    y2 = layer(paddle.to_tensor(np.concatenate([x, x]))).numpy()
    np.testing.assert_allclose(y2, np.tile(layer.bias.numpy(), (2, 1)), atol=1e-4)
    # And why the chapter refuses --batch-size 1: every batch would be such a batch.
    from chapters.ch04_batchnorm.batchnorm import main
    with pytest.raises(SystemExit) as exit_info:
        main(["--batch-size", "1", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2 and not (tmp_path / "run").exists()


@pytest.mark.points(3)
@pytest.mark.parametrize("dim", [1, 2])
def test_batchnorm_parameter_bookkeeping(dim):
    # Paddle 3.3.1: parameters() lists weight, bias AND the running _mean/_variance (as non-trainable
    # parameters with stop_gradient=True); buffers() is empty; state_dict() saves all four.
    c = 7
    layer = {1: paddle.nn.BatchNorm1D, 2: paddle.nn.BatchNorm2D}[dim](c)
    named = dict(layer.named_parameters())
    assert sorted(named) == ["_mean", "_variance", "bias", "weight"]
    trainable = [n for n, p in named.items() if p.trainable and not p.stop_gradient]
    assert sorted(trainable) == ["bias", "weight"]
    assert sum(named[n].size for n in trainable) == 2 * c
    assert sum(p.size for p in layer.parameters()) == 4 * c
    assert list(layer.buffers()) == []
    assert sorted(layer.state_dict()) == ["_mean", "_variance", "bias", "weight"]
    # An optimizer built from parameters() must leave the running statistics alone.
    layer.train()
    opt = paddle.optimizer.SGD(learning_rate=1.0, parameters=layer.parameters())
    x = bn.random_batch(dim, np.random.default_rng(9), channels=c)
    layer(paddle.to_tensor(x)).sum().backward()
    running = layer._variance.numpy()
    opt.step()
    np.testing.assert_array_equal(layer._variance.numpy(), running)


@pytest.mark.points(3)
@pytest.mark.parametrize("mode", bn.DROPOUT_MODES)
def test_dropout_modes_train_and_eval(mode):
    p = 0.3
    r = bn.dropout_modes(p, seed=11)[mode]
    assert r["same_mask_with_same_seed"]
    assert r["train_diff"] < 1e-6 and r["eval_diff"] < 1e-6
    # Written out, independently of dropout_reference: which values each mode may produce.
    x, train, evaluated = r["x"], r["train"], r["eval"]
    kept_value = x / (1 - p) if mode == "upscale_in_train" else x
    assert np.all(np.isclose(train, 0) | np.isclose(train, kept_value))
    np.testing.assert_allclose(evaluated, x if mode == "upscale_in_train" else x * (1 - p), rtol=1e-6)
    assert 0 < r["keep_fraction"] < 1


@pytest.mark.points(2)
def test_dropout_masks_repeat_only_with_the_same_seed():
    layer = paddle.nn.Dropout(0.5)
    x = paddle.ones([8, 32])
    paddle.seed(1)
    a = layer(x).numpy()
    paddle.seed(1)
    b = layer(x).numpy()
    paddle.seed(2)
    c = layer(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.points(3)
def test_dropout_preserves_the_expected_activation():
    p = 0.4
    result = bn.dropout_expectation(p, samples=20000)
    for mode, r in result.items():
        # The gap is within chance (a few standard errors, well under the 40% a missing rescale would give) ...
        assert r["max_relative_gap"] < 5 * r["max_relative_standard_error"] < 0.05, (mode, r)
    # ... and the two modes differ by the factor (1 - p) at evaluation time.
    assert result["upscale_in_train"]["eval_mean"] == pytest.approx(result["upscale_in_train"]["x_mean"], rel=1e-6)
    assert result["downscale_in_infer"]["eval_mean"] == pytest.approx((1 - p) * result["upscale_in_train"]["x_mean"], rel=1e-6)


# ---- the LeNet with BatchNorm (common.models) as chapter 4 builds it ----

@pytest.mark.points(2)
def test_bn_lenet_output_shape_in_train_and_eval():
    from chapters.ch04_batchnorm.batchnorm import build_model

    model = build_model(None, batch_norm=True, dropout=0.3)
    x = paddle.randn([5, 1, 28, 28])
    model.train()
    assert model(x).shape == [5, 10]
    model.eval()
    assert model(x[:1]).shape == [1, 10]  # eval mode: running statistics, so a batch of one works


@pytest.mark.points(2)
def test_bn_lenet_parameter_count():
    from chapters.ch04_batchnorm.batchnorm import build_model
    from common.models import count_parameters

    plain, with_bn = build_model(None, batch_norm=False), build_model(None, batch_norm=True)
    bn_channels = 6 + 16 + 120 + 84  # BatchNorm2D after conv1, conv2; BatchNorm1D after fc1, fc2
    # By hand: conv 6*25+6, 16*6*25+16; linear 400*120+120, 120*84+84, 84*10+10.
    assert count_parameters(plain) == (150 + 6) + (2400 + 16) + (48000 + 120) + (10080 + 84) + (840 + 10)
    # BN adds gamma and beta per channel and replaces the bias of the layer before it (beta does its job).
    assert count_parameters(with_bn) == count_parameters(plain) + 2 * bn_channels - bn_channels
    running = [p for p in with_bn.parameters() if p.stop_gradient]
    assert sum(p.size for p in running) == 2 * bn_channels
    assert all(not p.trainable for p in running)


@pytest.mark.points(3)
def test_chapter_main_writes_metrics_models_and_plots(tmp_path, monkeypatch):
    import json

    from chapters.ch04_batchnorm import batchnorm

    # Drawing is common.plot's job (importing matplotlib alone costs over a second); record what the chapter plots.
    plotted = {}

    def record_plot(curves, path, **kwargs):
        plotted[Path(path).name] = curves
        return Path(path)

    monkeypatch.setattr(batchnorm, "plot_curves", record_plot)
    out = tmp_path / "run"
    # Tests never touch the network: the offline subset, and only 128 training images for one epoch.
    metrics = batchnorm.main(["--offline", "--epochs", "1", "--train-size", "128", "--out", str(out)])
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert max(metrics["max_abs_diff_numpy_vs_paddle"].values()) < TOL
    assert set(metrics["max_abs_diff_numpy_vs_paddle"]) >= {"bn1d_train", "bn1d_eval", "bn2d_train", "bn2d_eval"}
    assert metrics["running_variance"] == "biased"
    assert all(r["same_mask_with_same_seed"] for r in metrics["dropout_checks"].values())
    assert set(metrics["final_val_accuracy"]) == {v[0] for v in batchnorm.VARIANTS}
    # The reloaded BN model (running statistics from the file) scores exactly what the trained one did.
    assert metrics["bn_val_accuracy_after_reload"] == metrics["final_val_accuracy"]["bn"]
    for name in metrics["final_val_accuracy"]:
        assert (out / "models" / f"{name}.pdparams").is_file()
    # One curve per variant on each plot: every step's loss (128 images = 2 batches of 64), one accuracy per epoch.
    assert sorted(plotted) == ["accuracy.png", "loss.png"]
    assert len(plotted["loss.png"]) == len(batchnorm.VARIANTS)
    assert all(len(curve) == 2 for curve in plotted["loss.png"].values())
    assert sorted(plotted["accuracy.png"].values()) == sorted([a] for a in metrics["final_val_accuracy"].values())
