"""Chapter 3: convolution by example (卷积算子应用举例).

What a convolution kernel (卷积核) does to an image, shown with kernels designed by hand:
  1. black/white boundary detection (黑白边界检测): kernel [1, 0, -1] on a synthetic image;
  2. edge detection on a photo (图像中物体边缘检测): 3x3, 8 in the centre and -1 around (the negative of the
     8-neighbour Laplacian), on each colour channel;
  3. mean blur (图像均值模糊): 5x5 of 1/25 on the greyscale photo;
  4. pooling (池化): max and average, on a small array and on the photo; the output-size formula;
  5. activation functions (激活函数) and their derivatives; vanishing gradients (梯度消失).
A fixed kernel is not trained, so the training step does the natural variant: it learns a kernel from
(input, output) pairs made with the designed one, and shows that gradient descent recovers it.

Run:  python -m chapters.ch03_conv_examples [--image PATH] [--out DIR]
"""
from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np
import paddle
import paddle.nn.functional as F

from chapters.ch03_conv_examples import activations, figures, shapes
from common.checkpoint import save_state
from common.cli import make_parser, positive_int, run
from common.download import DataError
from common.files import write_metrics
from common.image import SIZE_LIMIT_HELP, read_image, sample_photo_path
from common.plot import plot_curves
from common.runtime import check_finite_loss, seed_everything, set_device

# ---- Configuration defaults ----
EPOCHS = 20         # passes over the training pairs when learning a kernel
LR = 0.1            # SGD; on white-noise inputs the MSE's curvature is 2 in every direction, so 0.1 is safe
BATCH_SIZE = 16
N_PAIRS = 64        # (input, output) image pairs for learning the kernel
PAIR_SIZE = 32      # each input is [1, 32, 32]
MAX_SIDE = 640      # photos with a longer side are shrunk (the default photo, 600 x 512, is not)
MIN_SIDE = 16       # smaller images leave too little for a 5x5 kernel and 4x4 pooling to show anything
POOL_SIZE = 4       # pooling window (and stride) on the photo

# The hand-designed kernels, [kh, kw]. Paddle's conv, like cv2.filter2D, is cross-correlation: the kernel
# is slid over the image as written, not flipped.
BOUNDARY_KERNEL = np.array([[1, 0, -1]], dtype=np.float32)
# The negative of the 8-neighbour discrete Laplacian (whose stencil is -8 in the centre and 1 around).
EDGE_KERNEL = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float32)
BLUR_KERNEL = np.full((5, 5), 1 / 25, dtype=np.float32)
LEARNABLE = {"edge": EDGE_KERNEL, "blur": BLUR_KERNEL}

# The synthetic image of example 1: rows x columns, ones left of BOUNDARY_COLUMN, zeros from it on.
BOUNDARY_SHAPE = (6, 12)
BOUNDARY_COLUMN = 6

# A 4x4 array for pooling by hand: max of each 2x2 block = [[6, 5], [7, 9]], mean = [[3.5, 2], [2.5, 6]].
POOL_DEMO = np.array([[1, 3, 2, 1], [4, 6, 5, 0], [7, 2, 9, 8], [0, 1, 3, 4]], dtype=np.float32)


# ---- Convolution with a designed kernel (examples 1-3) ----
def fixed_conv(kernel: np.ndarray, channels: int = 1) -> paddle.nn.Conv2D:
    """A Conv2D whose weight is `kernel` [kh, kw], on `channels` channels, no bias, not trained.

    With channels > 1 it is depthwise (groups=channels): weight [channels, 1, kh, kw], so output channel c
    sees input channel c only, each filtered by the same kernel. (A plain Conv2D(3, 1) would instead sum
    the three filtered channels into one grey edge map.)
    """
    # BEGIN SOLUTION
    # PROMPT: a Conv2D with groups=channels, no bias, its weight [channels, 1, kh, kw] set by an Assign initializer
    weight = np.broadcast_to(kernel, (channels, 1, *kernel.shape)).copy()
    return paddle.nn.Conv2D(
        channels, channels, kernel.shape, groups=channels, bias_attr=False,
        weight_attr=paddle.ParamAttr(initializer=paddle.nn.initializer.Assign(weight), trainable=False),
    )
    # END SOLUTION


def to_nchw(image: np.ndarray) -> paddle.Tensor:
    """[H, W] -> [1, 1, H, W]; [H, W, C] -> [1, C, H, W]; float32."""
    x = image[None, None] if image.ndim == 2 else image.transpose(2, 0, 1)[None]
    return paddle.to_tensor(np.ascontiguousarray(x, dtype=np.float32))


def from_nchw(x: paddle.Tensor) -> np.ndarray:
    """[1, 1, H, W] -> [H, W]; [1, C, H, W] -> [H, W, C] (numpy, for plotting and comparing)."""
    a = x.numpy()[0]
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


@paddle.no_grad()
def convolve(image: np.ndarray, kernel: np.ndarray) -> paddle.Tensor:
    """Filter `image` ([H, W] or [H, W, C]) with `kernel` [kh, kw], no padding: -> [1, C, H-kh+1, W-kw+1]."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    return fixed_conv(kernel, channels)(to_nchw(image))


def detect_boundary(image: np.ndarray) -> paddle.Tensor:
    """Example 1. image [H, W], ones then zeros -> [1, 1, H, W-2], non-zero where a window straddles the boundary."""
    return convolve(image, BOUNDARY_KERNEL)


def detect_edges(rgb: np.ndarray) -> paddle.Tensor:
    """Example 2. rgb [H, W, 3] in 0..1 -> [1, 3, H-2, W-2]: each colour channel minus its 8 neighbours' mean, x8."""
    return convolve(rgb, EDGE_KERNEL)


def mean_blur(gray: np.ndarray) -> paddle.Tensor:
    """Example 3. gray [H, W] -> [1, 1, H-4, W-4]: each pixel the mean of its 5x5 neighbourhood."""
    return convolve(gray, BLUR_KERNEL)


def reference_filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The same filtering by OpenCV, an independent implementation: [H, W] or [H, W, C] -> [H', W'(, C)].

    cv2.filter2D keeps the input size by inventing pixels beyond the border; only the 'valid' part, where
    the kernel lies wholly inside the image, is comparable with Paddle's unpadded output.
    """
    import cv2

    full = cv2.filter2D(image.astype(np.float32), cv2.CV_32F, kernel)
    kh, kw = kernel.shape
    return full[kh // 2: image.shape[0] - kh // 2, kw // 2: image.shape[1] - kw // 2]


def pool(image: np.ndarray, kind: str, k: int, s: int | None = None) -> paddle.Tensor:
    """Max or average pooling (最大池化 / 平均池化) with window k, stride s (default k). [H, W] -> [1, 1, H', W']."""
    fn = {"max": F.max_pool2d, "avg": F.avg_pool2d}[kind]
    return fn(to_nchw(image), kernel_size=k, stride=s or k)


# ---- 1. Data processing 数据处理 ----
def boundary_image(shape=BOUNDARY_SHAPE, column: int = BOUNDARY_COLUMN) -> np.ndarray:
    """[H, W] float32: ones in columns 0..column-1, zeros from `column` on."""
    image = np.zeros(shape, dtype=np.float32)
    image[:, :column] = 1.0
    return image


def load_photo(path, max_side: int = MAX_SIDE) -> SimpleNamespace:
    """Read a photo as rgb [H, W, 3] and gray [H, W], float32 in 0..1, shrunk so that max(H, W) <= max_side."""
    import cv2

    rgb = read_image(path, "rgb")
    original = rgb.shape
    if min(original[:2]) < MIN_SIDE:
        raise DataError(f"{path} is {original[0]}x{original[1]} pixels; "
                        f"this chapter needs at least {MIN_SIDE}x{MIN_SIDE}")
    scale = max_side / max(original[:2])
    if scale < 1:  # INTER_AREA averages the pixels it merges: the right choice for shrinking
        size = (max(MIN_SIDE, round(original[1] * scale)), max(MIN_SIDE, round(original[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return SimpleNamespace(
        path=str(path), original_shape=list(original), rgb=rgb.astype(np.float32) / 255,
        gray=gray.astype(np.float32) / 255,
    )


def make_pairs(kernel: np.ndarray, n: int = N_PAIRS, size: int = PAIR_SIZE, seed: int = 0) -> paddle.io.TensorDataset:
    """(input [1, size, size], output [1, size-kh+1, size-kw+1]) pairs: output = the designed kernel applied to input.

    Inputs are white noise (standard normal pixels): every pixel independent, so every kernel weight is
    pinned down equally well and plain gradient descent converges fast. (Photo crops work too, but their
    neighbouring pixels are nearly equal, which makes the problem ill-conditioned and slow; see exercise 3.)
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, size, size)).astype(np.float32)
    with paddle.no_grad():
        y = fixed_conv(kernel)(paddle.to_tensor(x))
    return paddle.io.TensorDataset([paddle.to_tensor(x), y])


def load_data(cfg) -> SimpleNamespace:
    """The photo, the synthetic boundary image, the pooling array, and a loader of training pairs."""
    photo = load_photo(cfg.image or sample_photo_path(), cfg.max_side)
    pairs = make_pairs(LEARNABLE[cfg.learn], seed=cfg.seed)
    loader = paddle.io.DataLoader(pairs, batch_size=cfg.batch_size, shuffle=True, num_workers=0)
    return SimpleNamespace(photo=photo, boundary=boundary_image(), pool_demo=POOL_DEMO, train_loader=loader)


# ---- Examples: fixed kernels, pooling, activations (nothing here is trained) ----
def run_examples(cfg, data) -> SimpleNamespace:
    """Examples 1-5. Returns their outputs (numpy, for the figures) and their headline numbers (for metrics)."""
    photo = data.photo
    boundary = detect_boundary(data.boundary)
    edges = detect_edges(photo.rgb)
    blur = mean_blur(photo.gray)
    pooled = {kind: pool(data.pool_demo, kind, 2) for kind in ("max", "avg")}
    pooled_photo = {kind: pool(photo.gray, kind, POOL_SIZE) for kind in ("max", "avg")}
    grid = np.linspace(-5, 5, 201)
    edge_ref = reference_filter(photo.rgb, EDGE_KERNEL)  # filter2D filters each channel separately
    blur_ref = reference_filter(photo.gray, BLUR_KERNEL)
    metrics = {
        "image": {"path": photo.path, "original_shape": photo.original_shape, "used_shape": list(photo.rgb.shape)},
        "boundary": {
            "input_shape": [1, 1, *data.boundary.shape], "output_shape": list(boundary.shape),
            "boundary_column": BOUNDARY_COLUMN,
            "nonzero_columns": np.flatnonzero(np.abs(from_nchw(boundary)).sum(axis=0)).tolist(),
            "output_row": from_nchw(boundary)[0].tolist(),
        },
        "edge": {
            "input_shape": list(to_nchw(photo.rgb).shape), "output_shape": list(edges.shape),
            "channels": "depthwise: groups=3, each colour channel filtered on its own",
            "max_abs_diff_vs_opencv": float(np.abs(from_nchw(edges) - edge_ref).max()),
        },
        "blur": {
            "input_shape": list(to_nchw(photo.gray).shape), "output_shape": list(blur.shape),
            "max_abs_diff_vs_opencv": float(np.abs(from_nchw(blur) - blur_ref).max()),
        },
        "pooling": {
            "demo_input": POOL_DEMO.tolist(),
            **{f"demo_{k}_2x2": from_nchw(v).tolist() for k, v in pooled.items()},
            "photo_output_shape": list(pooled_photo["max"].shape), "photo_window": POOL_SIZE,
        },
        "output_size_table": shapes.shape_table(),
        "activation_derivatives_max_abs_diff": activations.check_derivatives(seed=cfg.seed),
        "vanishing_gradients": activations.vanishing_gradients(seed=cfg.seed),
    }
    arrays = SimpleNamespace(
        boundary=from_nchw(boundary), edges=from_nchw(edges), blur=from_nchw(blur),
        pooled={k: from_nchw(v) for k, v in pooled.items()},
        pooled_photo={k: from_nchw(v) for k, v in pooled_photo.items()},
        activation_grid=grid, activation_curves=activations.curves(grid),
    )
    return SimpleNamespace(metrics=metrics, arrays=arrays)


# ---- 2. Model design 模型设计 ----
def build_model(cfg) -> paddle.nn.Conv2D:
    """A randomly initialised 1-in, 1-out Conv2D the size of the kernel to learn: [N, 1, H, W] -> [N, 1, H-k+1, W-k+1].

    No bias: the designed kernel has none, so the pairs are an exact linear map of the input.
    """
    # BEGIN SOLUTION
    # PROMPT: a paddle.nn.Conv2D with 1 input and 1 output channel, the designed kernel's size, and no bias
    return paddle.nn.Conv2D(1, 1, LEARNABLE[cfg.learn].shape, bias_attr=False)
    # END SOLUTION


# ---- 3. Training config 训练配置 ----
def configure(cfg, model) -> SimpleNamespace:
    """Plain SGD on the mean squared error between the model's output and the designed kernel's."""
    optimizer = paddle.optimizer.SGD(learning_rate=cfg.lr, parameters=model.parameters())
    return SimpleNamespace(optimizer=optimizer, loss_fn=F.mse_loss, target=LEARNABLE[cfg.learn])


# ---- 4. Training loop 训练过程 ----
def kernel_error(model, target: np.ndarray) -> float:
    """max |learned weight - designed weight| over the kernel."""
    return float(np.abs(model.weight.numpy()[0, 0] - target).max())


def train(cfg, model, data, training) -> dict:
    """Fit the model's kernel to the pairs; per epoch record the mean loss and the kernel's distance to the target."""
    history = {"initial_kernel": model.weight.numpy()[0, 0].copy(), "loss": [], "max_abs_diff": []}
    model.train()
    for _ in range(cfg.epochs):
        losses = []
        for x, y in data.train_loader:
            # BEGIN SOLUTION
            # PROMPT: forward, MSE loss against y, backward, optimizer step, clear the gradients
            loss = training.loss_fn(model(x), y)
            loss.backward()
            training.optimizer.step()
            training.optimizer.clear_grad()
            # END SOLUTION
            losses.append(loss.item())
        history["loss"].append(float(np.mean(losses)))
        history["max_abs_diff"].append(kernel_error(model, training.target))
        # NaN/inf: stop before a NaN kernel is saved, plotted or written into metrics.json
        check_finite_loss(history["loss"][-1], f"epoch {len(history['loss'])}",
                          advice="Lower --lr: on white noise the MSE's curvature is 2, so SGD needs lr < 1")
    return history


# ---- 5. Save 保存模型 ----
def save(cfg, model, data, examples, history) -> list:
    """The learned kernel (.pdparams) and, unless --no-figures, one figure per example. Returns the paths."""
    paths = [save_state(cfg.out / "learned_kernel.pdparams", {"model": model.state_dict(), "kernel": cfg.learn})]
    if cfg.figures:
        paths += save_figures(cfg, model, data, examples, history)
    return paths


def save_figures(cfg, model, data, examples, history) -> list:
    """One PNG per example, input beside output, plus the learned kernel and the loss. Returns the paths."""
    out, a, photo = cfg.out, examples.arrays, data.photo
    target = LEARNABLE[cfg.learn]
    paths = []
    paths.append(figures.save_image_row(
        [("input: 1 left, 0 right", data.boundary), ("output, kernel [1, 0, -1]", a.boundary)],
        out / "boundary.png", title="1. Black/white boundary detection"))
    paths.append(figures.save_image_row(
        [("photo", photo.rgb), ("|output| per channel, clipped to 0..1", np.abs(a.edges))],
        out / "edges.png", title="2. Edge detection: 8 centre, -1 around, depthwise"))
    paths.append(figures.save_image_row(
        [("grey photo", photo.gray), ("5x5 mean", a.blur)], out / "blur.png", title="3. Mean blur"))
    demo_range = (float(data.pool_demo.min()), float(data.pool_demo.max()))
    paths.append(figures.save_image_grid(
        [[("4x4 input", data.pool_demo, demo_range), ("max pool 2x2, stride 2", a.pooled["max"], demo_range),
          ("avg pool 2x2, stride 2", a.pooled["avg"], demo_range)],
         [("grey photo", photo.gray), (f"max pool {POOL_SIZE}x{POOL_SIZE}", a.pooled_photo["max"]),
          (f"avg pool {POOL_SIZE}x{POOL_SIZE}", a.pooled_photo["avg"])]],
        out / "pooling.png", title="4. Pooling"))
    paths.append(figures.save_activations(
        a.activation_grid, a.activation_curves, out / "activations.png",
        titles={"leaky_relu": f"leaky_relu (slope {activations.LEAKY_SLOPE})", "softmax": "softmax([x, 0])[0]"}))
    grads = examples.metrics["vanishing_gradients"]
    paths.append(plot_curves(grads, out / "vanishing_gradients.png", logy=True, xlabel="layer (1 = nearest the input)",
                             ylabel="||dL/dW||", title="Gradient per layer: sigmoid vanishes, relu does not"))
    kernel_range = (float(target.min()), float(target.max()))
    title = f"Learned {cfg.learn} kernel, max |diff| = {history['max_abs_diff'][-1]:.1e}"
    paths.append(figures.save_image_row(
        [("designed", target, kernel_range), ("initial (random)", history["initial_kernel"], kernel_range),
         ("learned", model.weight.numpy()[0, 0], kernel_range)],
        out / "learned_kernel.png", title=title))
    paths.append(plot_curves({"MSE": history["loss"]}, out / "loss.png", logy=True,
                             title=f"Learning the {cfg.learn} kernel"))
    return paths


def parse_args(argv=None):
    parser = make_parser(
        "ch03_conv_examples",
        "Convolution by example: boundary, edges, blur, pooling, activations; then learn a kernel.",
        epochs=EPOCHS, lr=LR, batch_size=BATCH_SIZE, data_help=None,
    )
    parser.add_argument("--image", default=None,
                        help="your own photo (jpg, png, bmp, tif ...; " + SIZE_LIMIT_HELP + "); "
                             "default: matplotlib's sample photo, no download")
    parser.add_argument("--max-side", type=positive_int, default=MAX_SIDE,
                        help="shrink photos whose longer side exceeds this many pixels (keeps the run fast)")
    parser.add_argument("--learn", choices=sorted(LEARNABLE), default="edge", help="which designed kernel to learn")
    parser.add_argument("--figures", action=argparse.BooleanOptionalAction, default=True,
                        help="draw one figure per example; --no-figures prints and saves the numbers only "
                             "(drawing is most of the run time)")
    cfg = parser.parse_args(argv)
    if cfg.max_side < MIN_SIDE:
        parser.error(f"--max-side must be at least {MIN_SIDE}")
    return cfg


def main(argv=None) -> dict:
    cfg = parse_args(argv)
    seed_everything(cfg.seed)
    device = set_device(cfg.device)
    start = time.perf_counter()
    data = load_data(cfg)  # a bad --image raises DataError; run(main) prints it as one line
    examples = run_examples(cfg, data)
    model = build_model(cfg)
    training = configure(cfg, model)
    history = train(cfg, model, data, training)
    paths = save(cfg, model, data, examples, history)

    m = examples.metrics
    metrics = {
        **m,
        "learned_kernel": {
            "kernel": cfg.learn, "designed": LEARNABLE[cfg.learn].tolist(),
            "learned": model.weight.numpy()[0, 0].astype(np.float64).round(6).tolist(),
            "max_abs_diff": history["max_abs_diff"][-1], "final_loss": history["loss"][-1],
            "diverged": not history["loss"][-1] < history["loss"][0],  # also true for nan
            "epochs": len(history["loss"]), "steps": len(history["loss"]) * len(data.train_loader),
        },
        "device": device, "seconds": round(time.perf_counter() - start, 2),
    }
    write_metrics(cfg.out, metrics)
    report(metrics, paths, cfg)
    return metrics


def report(metrics: dict, paths: list, cfg) -> None:
    m = metrics
    print(f"photo {m['image']['path']} {m['image']['original_shape']} -> used {m['image']['used_shape']}")
    b = m["boundary"]
    print(f"1. boundary: {b['input_shape']} -> {b['output_shape']}, output row {b['output_row']}, "
          f"non-zero columns {b['nonzero_columns']} (boundary before input column {b['boundary_column']})")
    for key, name in (("edge", "2. edges"), ("blur", "3. blur")):
        e = m[key]
        print(f"{name}: {e['input_shape']} -> {e['output_shape']}, "
              f"max |Paddle - cv2.filter2D| = {e['max_abs_diff_vs_opencv']:.1e}")
    p = m["pooling"]
    print(f"4. pooling 2x2 of {p['demo_input']}: max {p['demo_max_2x2']}, avg {p['demo_avg_2x2']}; "
          f"photo {POOL_SIZE}x{POOL_SIZE} -> {p['photo_output_shape']}")
    print("   output size (H + 2p - k) // s + 1:")
    print("   " + shapes.format_table(m["output_size_table"]).replace("\n", "\n   "))
    worst = max(v["vs_finite_difference"] for v in m["activation_derivatives_max_abs_diff"].values())
    print(f"5. activation derivatives: max |formula - finite difference| = {worst:.1e} "
          f"over {', '.join(activations.NAMES)}")
    g = m["vanishing_gradients"]
    print(f"   {len(g['sigmoid'])} layers, ||dL/dW|| first/last layer: "
          f"sigmoid {g['sigmoid'][0]:.2e}/{g['sigmoid'][-1]:.2e}, relu {g['relu'][0]:.2e}/{g['relu'][-1]:.2e}")
    k = m["learned_kernel"]
    print(f"learned {k['kernel']} kernel in {k['steps']} SGD steps: last epoch mean MSE {k['final_loss']:.2e}, "
          f"max |learned - designed| = {k['max_abs_diff']:.2e}")
    if k["diverged"]:
        print(f"   the loss grew: --lr {cfg.lr} is too large. On white noise the MSE's curvature is 2, so SGD "
              "needs lr < 1 (lr = 0.5 nearly lands on the answer in one step)")
    print(f"wrote {len(paths)} file{'' if len(paths) == 1 else 's'} and metrics.json to {cfg.out} in {m['seconds']} s")


if __name__ == "__main__":
    run(main)
