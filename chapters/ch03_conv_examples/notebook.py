# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 3 · Convolution by example 卷积算子应用举例
#
# What a convolution kernel (卷积核) does to an image before any network learns one: three hand-designed kernels on
# a synthetic image and on a photograph, pooling, activation functions — and then the bridge to the next lesson: a
# randomly initialised `Conv2D` trained by gradient descent recovers the designed kernel, because in a CNN the
# kernels are just parameters. The code is `conv_examples.py` (with `shapes.py`, `activations.py`, `figures.py`).
#
# **How to run this notebook 如何运行**
#
# - **On your computer 本地**: in the repository root, `pip install -r requirements.txt` (Paddle, this repository
#   and Jupyter's kernel), then open this notebook in Jupyter (`pip install jupyterlab`, then `jupyter lab`) or in
#   VS Code, and *Run All*.
# - **On a hosted Jupyter 在线 (飞桨 AI Studio, Colab ...)**: upload or `git clone` the repository, open this
#   notebook, and run `%pip install -e ../..` in a cell first: the repository and its other dependencies, without
#   replacing the Paddle the platform installed (on Colab, first `%pip install paddlepaddle`). Restart the kernel after
#   the install.
# - Nothing is downloaded: the photo is the one matplotlib ships, unless you set `IMAGE` to your own.
# - In the student version of the course, a step whose exercise you have not written yet stops with
#   `NotImplementedError: TODO ...`: write it in the chapter's `.py` (or its assignment notebook), then run again.
#
# This notebook calls the chapter's own functions (the script is the one copy of the code); the sizes are in the
# *parameters* cell. Its source is the text file `notebook.py` beside it (jupytext's percent format);
# `python -m common.grading.notebooks sync` rebuilds this `.ipynb` from it.

# %%
import sys
from pathlib import Path

from IPython.display import Image, display

# The repository root (the folder with chapters/ and common/), so that `import chapters` works from this folder.
ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "chapters").is_dir() and (p / "common").is_dir()),
            None)
if ROOT is None:
    raise RuntimeError("open this notebook inside the course repository: chapters/<chapter>/notebook.ipynb")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# %% tags=["parameters"] test_parameters={"EPOCHS": 2, "MAX_SIDE": 96}
IMAGE = None  # a photo of your own (a path), or None for the photo matplotlib ships (nothing is downloaded)
MAX_SIDE = 640  # a larger photo is shrunk so the examples stay fast
LEARN = "edge"  # which designed kernel the training step learns: "edge" or "blur"
EPOCHS = 20
LR = 0.1
OUT = str(ROOT / "runs" / "ch03_conv_examples" / "notebook")

# %%
from chapters.ch03_conv_examples import conv_examples as chapter, shapes
from common.runtime import seed_everything, set_device

argv = ["--max-side", str(MAX_SIDE), "--learn", LEARN, "--epochs", str(EPOCHS), "--lr", str(LR), "--out", OUT]
cfg = chapter.parse_args(argv + (["--image", str(IMAGE)] if IMAGE else []))  # the chapter's own command line
seed_everything(cfg.seed)
print("device:", set_device(cfg.device))

# %% [markdown]
# ## 1. Data processing 数据处理
#
# The photo (read with OpenCV through `common.image.read_image`: a missing or undecodable file is one clear error),
# as RGB and as greyscale (灰度图) in 0..1; a 6 × 12 image with ones left of column 6 and zeros from it on; a 4 × 4
# array for pooling by hand; and, for the training step, 64 white-noise images filtered with the designed kernel.

# %%
data = chapter.load_data(cfg)
print("photo", data.photo.path, data.photo.original_shape, "-> used", list(data.photo.rgb.shape))
print("boundary image\n", data.boundary)
print("training pairs:", len(data.train_loader.dataset), "batches of", cfg.batch_size)

# %% [markdown]
# ## The examples: designed kernels, pooling, activations
#
# - **Convolution 卷积 (really cross-correlation 互相关)**: output pixel `(i, j)` is the sum of the kernel times the
#   window of the input starting at `(i, j)`; Paddle, like `cv2.filter2D`, does not flip the kernel.
# - **1. Black/white boundary 黑白边界检测**, kernel `[1, 0, -1]`: non-zero (= 1) exactly for the two windows that
#   straddle the boundary.
# - **2. Edge detection 物体边缘检测**, 8 in the centre and −1 around (a Laplacian 拉普拉斯算子), on every colour
#   channel separately: a **depthwise** convolution (逐通道卷积), `groups=3`.
# - **3. Mean blur 均值模糊**, 5 × 5 of 1/25 on the grey photo.
# - **4. Pooling 池化**: max pooling 最大池化 keeps the largest value of each window, average pooling 平均池化 the mean.
# - **Output size 输出尺寸**: `H_out = (H + 2p - k) // s + 1`; the floor drops rows that do not fill a window.
# - **5. Activations 激活函数** and their derivatives, written by hand and checked against finite differences;
#   **vanishing gradients 梯度消失**: ten sigmoid layers shrink the gradient, ten ReLU layers do not.

# %%
examples = chapter.run_examples(cfg, data)
m = examples.metrics
print("1. boundary output row", m["boundary"]["output_row"], "non-zero columns", m["boundary"]["nonzero_columns"])
print("2. edges", m["edge"]["input_shape"], "->", m["edge"]["output_shape"],
      f"max |Paddle - cv2.filter2D| = {m['edge']['max_abs_diff_vs_opencv']:.1e}")
print("3. blur", m["blur"]["input_shape"], "->", m["blur"]["output_shape"],
      f"max |Paddle - cv2.filter2D| = {m['blur']['max_abs_diff_vs_opencv']:.1e}")
print("4. pooling 2x2: max", m["pooling"]["demo_max_2x2"], "avg", m["pooling"]["demo_avg_2x2"])
print(shapes.format_table(m["output_size_table"]))
g = m["vanishing_gradients"]
print(f"5. ||dL/dW|| first/last of {len(g['sigmoid'])} layers: sigmoid {g['sigmoid'][0]:.2e}/{g['sigmoid'][-1]:.2e}, "
      f"relu {g['relu'][0]:.2e}/{g['relu'][-1]:.2e}")

# %% [markdown]
# ## 2. Model design 模型设计
#
# A fixed kernel is not trained, so the training steps do the natural variant: **learn** the kernel (学习卷积核).
# The model is a randomly initialised `Conv2D(1, 1, 3, bias_attr=False)`.

# %%
model = chapter.build_model(cfg)
print("random start:\n", model.weight.numpy()[0, 0].round(3))

# %% [markdown]
# ## 3. Training configuration 训练配置
#
# Plain SGD on the mean squared error between the model's output and the designed kernel's output. This is linear
# least squares: on white noise its curvature is 2 in every direction, so `lr = 0.1` shrinks the error by 0.8 a step.

# %%
training = chapter.configure(cfg, model)
print(type(training.optimizer).__name__, "lr", cfg.lr, "| target kernel\n", training.target)

# %% [markdown]
# ## 4. Training loop 训练过程

# %%
history = chapter.train(cfg, model, data, training)
print(f"last epoch mean MSE {history['loss'][-1]:.2e}, max |learned - designed| = {history['max_abs_diff'][-1]:.2e}")

# %% [markdown]
# ## 5. Save 保存模型
#
# The learned kernel (`learned_kernel.pdparams`) and one figure per example, input beside output.

# %%
paths = chapter.save(cfg, model, data, examples, history)
for path in paths[1:]:
    print(path.name)
    display(Image(filename=str(path)))

# %% [markdown]
# ## Exercises 练习
#
# 1. Replace `[1, 0, -1]` by `[1, -1]`: which output columns are non-zero now, and what is the output's shape?
# 2. Run the edge detector with a plain `Conv2D(3, 1, 3)` whose three input channels all hold the edge kernel. How
#    does the output relate to the depthwise one?
# 3. In `make_pairs`, replace the white noise by random 32 × 32 crops of the grey photo. Why does learning slow down?
# 4. With `LR = 0.5`, one full-batch step lands close to the kernel; with `LR = 1.1` training diverges. Why?
# 5. Add tanh to `vanishing_gradients`: does its gradient vanish like sigmoid's?
