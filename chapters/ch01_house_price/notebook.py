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
# # Chapter 1 · House-price regression 波士顿房价预测
#
# Predict the median price of a Boston house from 13 numbers about its neighbourhood with the simplest model there
# is, a linear regression (线性回归), in the five steps every chapter follows: 数据处理 data processing → 模型设计
# model design → 训练配置 training configuration → 训练过程 training loop → 模型保存 saving. The code is in
# `train.py` (Paddle) and `numpy_from_scratch.py` (the same model by hand); this notebook runs it step by step.
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

# %% tags=["parameters"] test_parameters={"EPOCHS": 3, "OFFLINE": true}
EPOCHS = 100  # passes over the 404 training houses
LR = 0.01  # learning rate of plain SGD
BATCH_SIZE = 10  # houses per mini-batch
NORM = "zscore"  # or "minmax"
OFFLINE = False  # True: never download; use data/ or the copy the mlxtend package ships
OUT = str(ROOT / "runs" / "ch01_house_price" / "notebook")  # plots, weights and statistics go here

# %%
from chapters.ch01_house_price import numpy_from_scratch, train as chapter
from common.runtime import seed_everything, set_device

# The chapter's own command line turns the parameters into its configuration `cfg`, exactly as in a terminal.
argv = ["--epochs", str(EPOCHS), "--lr", str(LR), "--batch-size", str(BATCH_SIZE), "--norm", NORM, "--out", OUT]
cfg = chapter.build_parser(chapter.NAME, "notebook").parse_args(argv + (["--offline"] if OFFLINE else []))
seed_everything(cfg.seed)
print("device:", set_device(cfg.device))

# %% [markdown]
# ## 1. Data processing 数据处理
#
# 506 houses, 13 features (crime rate `CRIM`, rooms per dwelling `RM`, % lower-status population `LSTAT`, …) and the
# price `MEDV` in $1000s. The first 80 % of rows train, the last 20 % test (训练集 / 测试集), as in the course.
#
# **Normalisation 归一化 vs standardisation 标准化**: min-max `(x - min) / (max - min)` maps every column to [0, 1];
# z-score `(x - mean) / std` gives every column mean 0 and standard deviation 1. The statistics come from the
# **training split only** (the test split's would leak information about it) and are saved with the model, because
# a prediction must transform its input the same way.

# %%
data = chapter.load_data(cfg)
print("data:", data["source"])
print("train x", data["train_x"].shape, "y", data["train_y"].shape, "| test x", data["test_x"].shape)
print("after", NORM, "the training columns have mean", data["train_x"].mean(axis=0).round(3)[:4], "...",
      "and std", data["train_x"].std(axis=0).round(3)[:4], "...")

# %% [markdown]
# ## 2. Model design 模型设计
#
# `y = x·w + b`: one fully connected layer `paddle.nn.Linear(13, 1)`, 13 weights and 1 bias, 14 parameters.

# %%
model = chapter.build_model(cfg)
print(model)
print("parameters:", sum(p.size for p in model.parameters()))

# %% [markdown]
# ## 3. Training configuration 训练配置
#
# The loss is the mean squared error 均方误差 `L = mean((y_pred − y)²)`: smooth, with a gradient linear in the error,
# and its minimum is the least-squares solution, which we can also compute directly. The optimizer is plain SGD.

# %%
training = chapter.configure(cfg, model)
print(type(training["optimizer"]).__name__, "lr", cfg.lr, "| loss", type(training["loss_fn"]).__name__,
      "| epochs", training["epochs"], "| batch size", training["batch_size"])

# %% [markdown]
# ## 4. Training loop 训练过程
#
# With error `e = x·w + b − y`, the gradient is `∂L/∂w = 2/N · xᵀe` and `∂L/∂b = 2/N · Σe`; Paddle's autograd
# computes it in `loss.backward()`, and `optimizer.step()` moves `w ← w − lr · ∂L/∂w`. Mini-batch SGD (随机梯度下降)
# shuffles the data each **epoch** (轮) and steps on every **mini-batch** of `batch_size` houses. The loop is written
# out in `train.py`'s `train`.

# %%
history = chapter.train(cfg, model, data, training)
print(f"mean batch loss: epoch 1 {history['loss'][0]:.4f}, epoch {len(history['loss'])} {history['loss'][-1]:.4f}")

# %% [markdown]
# How good is that? `numpy.linalg.lstsq` gives the weights with the smallest possible training MSE (最小二乘解).
# On the **training** split SGD cannot beat it (ratio ≥ 1); on the **test** split it may (ratio < 1): the optimum is
# optimal for the training houses only, and the last rows of the file are a different part of Boston.

# %%
metrics = chapter.evaluate(lambda x: chapter.predict_normalized(model, x), data)
chapter.print_evaluation(metrics)

# %% [markdown]
# ## 5. Save 保存模型
#
# The `state_dict` (`model.pdparams`), the normalisation statistics a prediction needs (`normalization.json`) and the
# loss curve. Then the saved model is loaded back, as a deployment would, to price a house it has never seen.

# %%
paths = chapter.save(cfg, model, data, history)
print("wrote", *paths.values())
display(Image(filename=str(paths["plot"])))

# %%
house = len(data["test_x"]) - 1
predicted = chapter.predict(cfg.out, data["test_x"][house:house + 1]).item()
actual = chapter.price_in_thousands(data["test_y"][house], data["stats"]).item()
print(f"held-out house #{house}: predicted ${predicted:.1f}k, actual ${actual:.1f}k")

# %% [markdown]
# ## The same model by hand 手写 numpy 版
#
# `numpy_from_scratch.py` writes every piece out: the forward pass, the MSE, the gradient derived by hand, full-batch
# gradient descent and mini-batch SGD. Its `main` runs its five steps and prints the same table.

# %%
numpy_metrics = numpy_from_scratch.main(argv + ["--out", str(Path(OUT) / "numpy")] + (["--offline"] if OFFLINE else []))
display(Image(filename=str(Path(OUT) / "numpy" / "numpy_loss.png")))

# %% [markdown]
# ## Exercises 练习
#
# 1. Write `LinearRegression.gradient` yourself (the student version has a `TODO` there); the test compares it with
#    finite differences and with Paddle's autograd.
# 2. Set `NORM = "minmax"` and find the learning rate at which the train MSE ratio falls below 1.01 in 100 epochs.
# 3. Try `BATCH_SIZE = 404` (full batch) and `BATCH_SIZE = 1`: how do the loss curve and the time per epoch change?
# 4. Add a second `Linear` layer with a ReLU between (a neural network, 神经网络). Can it beat the linear optimum on
#    the test split?
