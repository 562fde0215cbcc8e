"""Chapter 3: each example against a reference computed another way (OpenCV, numpy, by hand, finite differences)."""
import json
from types import SimpleNamespace

import cv2
import numpy as np
import paddle
import pytest

from chapters.ch03_conv_examples import activations, conv_examples as ch3, figures, shapes
from common.download import DataError
from common.image import read_image, sample_photo_path


def correlate_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Cross-correlation without padding in float64 numpy: out[i, j] = sum(image[i:i+kh, j:j+kw] * kernel)."""
    windows = np.lib.stride_tricks.sliding_window_view(image.astype(np.float64), kernel.shape)
    return np.einsum("ijkl,kl->ij", windows, kernel.astype(np.float64))


@pytest.fixture(scope="module")
def photo_crop():
    """A 48x40 RGB crop of the sample photo (the face: real edges), float32 in 0..1."""
    rgb = read_image(sample_photo_path(), "rgb")
    return rgb[200:248, 230:270].astype(np.float32) / 255


# ---- Example 1: boundary ----
@pytest.mark.points(3)
@pytest.mark.parametrize("shape, column", [((6, 12), 6), ((3, 9), 2)])
def test_boundary_output_is_nonzero_exactly_at_the_boundary(shape, column):
    out = ch3.from_nchw(ch3.detect_boundary(ch3.boundary_image(shape, column)))
    assert out.shape == (shape[0], shape[1] - 2)
    # Output column j sees input columns j, j+1, j+2: it straddles the boundary iff j < column <= j + 2,
    # and there it is 1 * 1 + 0 * x - 1 * 0 = 1 (cross-correlation: the kernel is not flipped).
    straddling = [j for j in range(shape[1] - 2) if j < column <= j + 2]
    expected = np.zeros_like(out)
    expected[:, straddling] = 1.0
    np.testing.assert_array_equal(out, expected)


# ---- Examples 2 and 3: edges and blur against OpenCV ----
@pytest.mark.points(4)
def test_edge_detection_equals_opencv_on_every_channel(photo_crop):
    out = ch3.detect_edges(photo_crop)
    assert out.shape == [1, 3, 46, 38]  # depthwise: 3 channels in, 3 out, each filtered on its own
    edges = ch3.from_nchw(out)
    for c in range(3):
        channel = photo_crop[:, :, c].astype(np.float64)
        full = cv2.filter2D(channel, cv2.CV_64F, ch3.EDGE_KERNEL.astype(np.float64))
        np.testing.assert_allclose(edges[:, :, c], full[1:-1, 1:-1], atol=1e-5)
    assert np.abs(edges).max() > 0.5  # the crop has real edges, so this is no comparison of zeros


@pytest.mark.points(3)
def test_mean_blur_equals_opencv_box_filter(photo_crop):
    gray = cv2.cvtColor(photo_crop, cv2.COLOR_RGB2GRAY)
    blurred = ch3.from_nchw(ch3.mean_blur(gray))
    assert blurred.shape == (44, 36)
    reference = cv2.blur(gray.astype(np.float64), (5, 5))[2:-2, 2:-2]  # mean of each 5x5 window
    np.testing.assert_allclose(blurred, reference, atol=1e-6)


@pytest.mark.points(2)
def test_paddle_conv_is_cross_correlation_not_flipped():
    rng = np.random.default_rng(0)
    image, kernel = rng.random((9, 11)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)
    out = ch3.from_nchw(ch3.convolve(image, kernel))
    np.testing.assert_allclose(out, correlate_valid(image, kernel), atol=1e-5)
    assert np.abs(out - correlate_valid(image, kernel[::-1, ::-1])).max() > 0.1  # true convolution differs


# ---- Output size ----
@pytest.mark.points(3)
@pytest.mark.parametrize("h, k, s, p", shapes.SHAPE_CASES)
def test_output_size_formula_matches_paddle_and_counting(h, k, s, p):
    # Independent count: the window's start positions in the padded input of length h + 2p.
    positions = len(range(0, h + 2 * p - k + 1, s))
    measured = shapes.measured_sizes(h, k, s, p)
    assert shapes.output_size(h, k, s, p) == positions == measured["conv2d"]
    if measured["max_pool2d"] is not None:
        assert measured["max_pool2d"] == positions


# ---- Pooling ----
@pytest.mark.points(3)
def test_pooling_small_array_by_hand():
    # [[1, 3, 2, 1], [4, 6, 5, 0], [7, 2, 9, 8], [0, 1, 3, 4]], 2x2 blocks, stride 2:
    # top-left {1, 3, 4, 6}, top-right {2, 1, 5, 0}, bottom-left {7, 2, 0, 1}, bottom-right {9, 8, 3, 4}.
    np.testing.assert_array_equal(ch3.from_nchw(ch3.pool(ch3.POOL_DEMO, "max", 2)), [[6, 5], [7, 9]])
    np.testing.assert_allclose(ch3.from_nchw(ch3.pool(ch3.POOL_DEMO, "avg", 2)), [[14 / 4, 8 / 4], [10 / 4, 24 / 4]])


@pytest.mark.points(2)
def test_pooling_on_the_photo_matches_numpy_blocks(photo_crop):
    gray = photo_crop[:, :, 1]  # 48 x 40: whole 4x4 blocks
    blocks = gray.reshape(12, 4, 10, 4)
    np.testing.assert_array_equal(ch3.from_nchw(ch3.pool(gray, "max", 4)), blocks.max(axis=(1, 3)))
    np.testing.assert_allclose(ch3.from_nchw(ch3.pool(gray, "avg", 4)), blocks.mean(axis=(1, 3)), atol=1e-6)


# ---- Activations ----
NUMPY_ACTIVATIONS = {  # written independently of the chapter and of Paddle
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, activations.LEAKY_SLOPE * x),
}


@pytest.mark.points(3)
@pytest.mark.parametrize("name", sorted(NUMPY_ACTIVATIONS))
def test_activation_derivative_matches_finite_difference(name):
    x = np.linspace(-4.05, 4.05, 82)  # avoids the kink at 0 by 0.05
    f, eps = NUMPY_ACTIVATIONS[name], 1e-6
    numeric = (f(x + eps) - f(x - eps)) / (2 * eps)
    np.testing.assert_allclose(activations.derivative(name, x), numeric, atol=1e-7)
    np.testing.assert_allclose(activations.autograd_derivative(name, x), numeric, atol=1e-7)
    np.testing.assert_allclose(activations.activation(name, paddle.to_tensor(x)).numpy(), f(x), atol=1e-12)


@pytest.mark.points(2)
def test_softmax_jacobian_matches_finite_difference():
    z, eps = np.array([0.5, -1.0, 2.0, 0.0]), 1e-6

    def softmax(v):
        e = np.exp(v - v.max())
        return e / e.sum()

    numeric = np.stack([(softmax(z + eps * e) - softmax(z - eps * e)) / (2 * eps) for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(activations.softmax_jacobian(z), numeric, atol=1e-8)
    np.testing.assert_allclose(activations.autograd_softmax_jacobian(z), numeric, atol=1e-8)


@pytest.mark.points(1)
def test_sigmoid_gradients_vanish_towards_the_input_relu_ones_do_not():
    norms = activations.vanishing_gradients(depth=8, width=32)
    sigmoid, relu = np.array(norms["sigmoid"]), np.array(norms["relu"])
    assert np.all(np.diff(sigmoid) > 0)  # smaller at every step back towards the input
    assert sigmoid[-1] / sigmoid[0] > 100
    assert 0.1 < relu[-1] / relu[0] < 10


# ---- Step 4: learning the kernel ----
@pytest.mark.points(4)
@pytest.mark.parametrize("kernel", ["edge", "blur"])
def test_learned_kernel_converges_to_the_designed_one(kernel):
    cfg = SimpleNamespace(learn=kernel, lr=0.1, epochs=15, seed=0)  # 60 SGD steps
    loader = paddle.io.DataLoader(ch3.make_pairs(ch3.LEARNABLE[kernel], n=32), batch_size=8, shuffle=True)
    model = ch3.build_model(cfg)
    history = ch3.train(cfg, model, SimpleNamespace(train_loader=loader), ch3.configure(cfg, model))
    designed = ch3.LEARNABLE[kernel]
    assert np.abs(history["initial_kernel"] - designed).max() > 0.1  # it started far away
    np.testing.assert_allclose(model.weight.numpy()[0, 0], designed, atol=1e-3)
    assert history["max_abs_diff"][-1] == pytest.approx(np.abs(model.weight.numpy()[0, 0] - designed).max())


# ---- Reading images ----
@pytest.mark.points(2)
def test_read_image_bad_paths_raise_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no image at .*missing.jpg"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(DataError, match="notes.jpg is not an image"):
        read_image(tmp_path / "notes.jpg")


@pytest.mark.points(2)
def test_read_image_grey_rgba_and_16_bit(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    rgb = read_image(tmp_path / "grey.png", "rgb")
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert all(np.array_equal(rgb[:, :, c], grey) for c in range(3))

    bgra = np.zeros((1, 3, 4), np.uint8)
    bgra[0, :, 2] = 200  # red, in OpenCV's B, G, R, A order
    bgra[0, :, 3] = [255, 0, 51]  # opaque, transparent, 20% opaque
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    # Composited onto white: 200 * a + 255 * (1 - a) for red, 255 * (1 - a) for green and blue.
    assert read_image(tmp_path / "rgba.png", "rgb").tolist() == [[[200, 0, 0], [255, 255, 255], [244, 204, 204]]]

    cv2.imwrite(str(tmp_path / "deep.png"), np.array([[0, 257 * 100, 65535]], np.uint16))
    assert read_image(tmp_path / "deep.png", "gray").tolist() == [[0, 100, 255]]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_turns_a_photo_upright_by_its_exif_orientation(orientation, tmp_path):
    # A phone stores a portrait photo as landscape plus an EXIF tag; Pillow's exif_transpose is the reference.
    from PIL import Image, ImageOps
    stored = np.random.default_rng(orientation).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    picture = Image.fromarray(stored)
    exif = picture.getexif()
    exif[0x0112] = orientation
    for name in ("photo.png", "photo.jpg"):
        picture.save(tmp_path / name, exif=exif, **({"quality": 100} if name.endswith("jpg") else {}))
        expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / name)).convert("RGB"))
        ours = read_image(tmp_path / name, "rgb")
        assert ours.shape == expected.shape
        assert np.abs(ours.astype(int) - expected).max() <= (0 if name.endswith("png") else 2)  # JPEG: decoders


@pytest.mark.points(1)
def test_large_photo_is_shrunk_and_tiny_one_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "big.png"), np.full((1000, 800, 3), 128, np.uint8))
    photo = ch3.load_photo(tmp_path / "big.png", max_side=100)
    assert photo.rgb.shape == (100, 80, 3) and photo.gray.shape == (100, 80)
    assert photo.original_shape == [1000, 800, 3]
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="at least"):
        ch3.load_photo(tmp_path / "tiny.png")


# ---- The command line ----
@pytest.mark.points(2)
def test_main_writes_metrics_with_shapes_and_kernel_error(tmp_path):
    image = tmp_path / "small.png"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((40, 36, 3)) * 255).astype(np.uint8))
    out = tmp_path / "run"
    metrics = ch3.main(["--image", str(image), "--out", str(out), "--no-figures"])  # figures: next test
    written = json.loads((out / "metrics.json").read_text())
    assert written["edge"]["output_shape"] == [1, 3, 38, 34]
    assert written["blur"]["output_shape"] == [1, 1, 36, 32]
    assert written["pooling"]["photo_output_shape"] == [1, 1, 10, 9]
    assert written["learned_kernel"]["max_abs_diff"] == metrics["learned_kernel"]["max_abs_diff"] < 1e-3
    state = paddle.load(str(out / "learned_kernel.pdparams"))
    np.testing.assert_allclose(state["model"]["weight"].numpy()[0, 0], ch3.EDGE_KERNEL, atol=1e-3)


@pytest.mark.points(1)
def test_figure_shows_input_beside_output(tmp_path):
    image = ch3.boundary_image()
    path = figures.save_image_row([("input", image), ("output", ch3.from_nchw(ch3.detect_boundary(image)))],
                                  tmp_path / "boundary.png")
    png = cv2.imread(str(path))
    assert png is not None and png.shape[1] > png.shape[0]  # a PNG, two panels side by side


@pytest.mark.points(1)
def test_main_reports_a_missing_image_as_a_data_error(tmp_path):
    # `python -m chapters.ch03_conv_examples` wraps main in common.cli.run, which prints this as one line.
    with pytest.raises(DataError, match="no image at .*nope.jpg"):
        ch3.main(["--image", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)])
