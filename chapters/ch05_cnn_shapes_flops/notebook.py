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
# # Chapter 5 · CNN output shapes, parameters and FLOPs 卷积网络的输出尺寸、参数量与计算量
#
# The course's two homework questions (作业), answered so that every line can be checked, and a tool that answers
# the same questions for any Paddle model: per layer, the input and output shapes, the parameter shapes, trainable
# and non-trainable parameters, multiplications, additions, MACs and FLOPs. The code is `shapes_flops.py`; the
# inspector is `common/inspector.py`.
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
# - Nothing is downloaded: the models are built from code and run on zeros.
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

# %% tags=["parameters"] test_parameters={"INPUT": "1,3,224,224"}
MODEL = "simplenet"  # simplenet | hw1_conv | lenet | alexnet | vgg16 | resnet18 | resnet50 | mobilenet_v2
INPUT = None  # "N,C,H,W", or None for the model's own (SimpleNet: 10,3,224,224)
OUT = str(ROOT / "runs" / "ch05_cnn_shapes_flops" / "notebook")

# %%
from IPython.display import Markdown

from chapters.ch05_cnn_shapes_flops import shapes_flops as chapter
from common.runtime import seed_everything, set_device

# The chapter's main builds its command line inline; the notebook sets the same fields on a namespace.
from types import SimpleNamespace

cfg = SimpleNamespace(model=MODEL, input=chapter.input_shape(INPUT) if INPUT else None, out=Path(OUT), seed=0,
                      device="auto")
seed_everything(cfg.seed)
print("device:", set_device(cfg.device))

# %% [markdown]
# ## Homework 1 作业1: the operations of one convolution
#
# **Output size 输出尺寸** per spatial axis: `H_out = floor((H + 2P − D·(K − 1) − 1) / S) + 1` (kernel `K`
# 卷积核大小, stride `S` 步幅, padding `P` 填充, dilation `D` 空洞). Every output value is one dot product of the
# `C_in·K·K` input values under the kernel with the weights: `C_in·K·K` products, one fewer additions to sum them, and
# one more for the bias. The count is (number of outputs) × (work per output), and the batch is part of the outputs.

# %%
hw1, derivation = chapter.homework1()
print("\n".join(derivation))

# %% [markdown]
# ## 1. Data processing 数据处理
#
# No data set: the "data" is the input specification `[N, C, H, W]`.

# %%
data = chapter.load_data(cfg)
print("input shape", data["input_shape"])

# %% [markdown]
# ## 2. Model design 模型设计
#
# Homework 2 作业2 is the course's `SimpleNet`: conv 3→6 5×5 pad 2, ReLU, max-pool 2/2, conv 6→16 5×5 pad 2, ReLU,
# max-pool 2/2, linear 50176→64, sigmoid, linear 64→1. **Parameters 参数量**: a Conv2D has
# `C_out × C_in/groups × K × K` weights plus `C_out` biases (偏置); a Linear `in × out + out`; pooling and
# activations have none.

# %%
model = chapter.build_model(cfg)
print(model)

# %% [markdown]
# ## 3. Training configuration 训练配置
#
# Nothing is trained; the configuration is how to count. **MACs 乘加次数** (multiply-accumulates) are what papers
# call the "FLOPs" of CNNs; **FLOPs 浮点运算次数** here are multiplications + additions + other operations
# (comparisons of max-pooling, one per activation element).

# %%
training = chapter.configure(cfg, model)
print(training)

# %% [markdown]
# ## 4. Training loop 训练过程
#
# No training: the "loop" is one forward pass on zeros, in eval mode, with a hook on every layer — and on the
# functional calls (`F.relu`, `paddle.flatten`, ...) made in a `forward`.

# %%
report = chapter.train(cfg, model, data, training)
display(Markdown(report.to_markdown()))
t = report.totals
print(f"{cfg.model}: {t['total_params']:,} parameters ({t['trainable_params']:,} trainable), "
      f"{t['macs'] / 1e9:.3f} GMACs, {t['flops'] / 1e9:.3f} GFLOPs")

# %% [markdown]
# ## 5. Save 保存模型
#
# No weights to save: the table as `layers.md`, `layers.csv`, `layers.json`, and `metrics.json`.

# %%
metrics = chapter.build_metrics(cfg, report, hw1)
print("wrote", *(p.name for p in chapter.save(cfg, report, metrics)))

# %% [markdown]
# ## Exercises 练习
#
# 1. Write `conv_output_size` and `conv2d_counts`. How many multiplications does homework 1's convolution take with
#    stride 2? With 5×5 kernels? Check with `inspect_model(nn.Conv2D(3, 64, 5, stride=2, padding=2), [10, 3, 224, 224])`.
# 2. Build `SimpleNet` so that it accepts any image size (hint: `nn.AdaptiveAvgPool2D` before `fc1`); how many
#    parameters does `fc1` have then?
# 3. Set `MODEL = "vgg16"`: where are VGG's parameters, and where are its MACs? Why in different layers?
# 4. Set `MODEL = "mobilenet_v2"` and find its depthwise convolutions (`groups` = channels): compare their MACs with a
#    normal 3×3 convolution of the same shape.
# 5. `MODEL = "resnet18"` with `INPUT = "1,3,112,112"`: by what factor do the MACs fall, and why not exactly 4?
