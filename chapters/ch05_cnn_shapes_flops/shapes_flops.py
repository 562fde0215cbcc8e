"""Chapter 5: output shapes, parameter counts and FLOPs of a CNN (卷积网络的输出尺寸、参数量与计算量).

The course's two homework questions, answered so that each line can be checked:
  1. how many multiplications and additions one convolution takes (input [10, 3, 224, 224], 64 kernels 3x3);
  2. the output shape and parameter shapes of every layer of SimpleNet for input [10, 3, 224, 224];
and a tool that answers both for any model (common/inspector.py).

    python -m chapters.ch05_cnn_shapes_flops                      # SimpleNet, input 10,3,224,224
    python -m chapters.ch05_cnn_shapes_flops --model resnet50     # any model of MODELS, its default input
    python -m chapters.ch05_cnn_shapes_flops --model lenet --input 1,1,28,28 --out runs/lenet
"""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import paddle
import paddle.nn.functional as F
from paddle import nn

from common.cli import make_parser, run
from common.files import write_metrics
from common.inspector import (
    MEMORY_BUDGET, InputMismatch, InputTooLarge, ModelReport, ModelSpecError, build_model_spec, inspect_model,
    parse_model_spec,
)
from common.models import LeNet
from common.runtime import seed_everything, set_device

NAME = "ch05_cnn_shapes_flops"
HW1 = {"batch": 10, "c_in": 3, "height": 224, "width": 224, "c_out": 64, "kernel": 3, "stride": 1, "padding": 1}

# Published MACs (multiply-accumulates of conv + linear layers) at the models' own input size, batch 1, for the same
# architectures, and published parameter counts where the architecture is the same to the last layer.
# torchvision's model pages list MACs as "GFLOPS", counting one multiply-add as one operation (its ResNet-50's 4.09
# is exactly the conv + linear MACs): https://pytorch.org/vision/stable/models.html, e.g.
# https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html (num_params 25557032,
# GFLOPS 4.09). Paddle's vision models are the same architectures: AlexNet is the single-tower variant with
# 64/192/384/256/256 kernels that torchvision also uses (the 2012 paper's two-GPU net had 96/256/384/384/256),
# ResNet-50 is "v1.5" (stride 2 in the 3x3 conv of a bottleneck) like torchvision's. Where torchvision rounds to
# 0.14 or 0.06 G, the papers' own figures are used: MobileNetV2 (Sandler et al. 2018) 300 M multiply-adds,
# ShuffleNet V2 1x (Ma et al. 2018) 146 M, MobileNetV3-Small 1.0 (Howard et al. 2019) 56 M. inception_v3 runs at
# 299x299 (torchvision 5.71; its 27.2 M parameters include the auxiliary classifier Paddle's model lacks).
# Paddle's googlenet is the paper's network without BatchNorm and computes its two auxiliary classifiers in every
# forward pass; the paper (Szegedy et al. 2014) gives "1.5 billion multiply-adds", so it is checked to 5% only.
# `python -m chapters.ch05_cnn_shapes_flops.published_macs` compares them all.
PUBLISHED_GMACS = {
    "alexnet": 0.71, "vgg16": 15.47, "resnet18": 1.81, "resnet50": 4.09, "mobilenet_v2": 0.30,
    "squeezenet1_1": 0.35, "shufflenet_v2_x1_0": 0.146, "mobilenet_v3_small": 0.056, "densenet121": 2.83,
    "resnext50_32x4d": 4.23, "vgg11(batch_norm=True)": 7.61, "inception_v3": 5.71, "googlenet": 1.5,
}
PUBLISHED_PARAMS = {  # trainable parameters, torchvision's num_params
    "alexnet": 61_100_840, "vgg16": 138_357_544, "resnet18": 11_689_512, "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872, "squeezenet1_1": 1_235_496, "shufflenet_v2_x1_0": 2_278_604,
    "mobilenet_v3_small": 2_542_856, "densenet121": 7_978_856, "resnext50_32x4d": 25_028_904,
    "vgg11(batch_norm=True)": 132_868_840,
}
PUBLISHED_TOLERANCE = {"googlenet": 0.05}  # the others: 1%


# ---- the two formulas of the homework ----
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output height (or width) of a convolution or pooling: floor((H + 2P - D(K-1) - 1) / S) + 1."""
    # BEGIN SOLUTION
    # PROMPT: the dilated kernel spans D*(K-1)+1 pixels; count the positions it fits in the padded input, stepping by S
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    # END SOLUTION


def conv2d_counts(batch, c_in, height, width, c_out, kernel, stride=1, padding=0) -> dict:
    """Multiplications and additions of one Conv2D: (number of outputs) x (work per output).

    Each output is a dot product of the C_in*K*K input values under the kernel with the kernel's weights:
    C_in*K*K multiplications and C_in*K*K - 1 additions to sum them, plus one addition for the bias.
    Positions in the zero padding are multiplied like any other (the usual convention).
    """
    # BEGIN SOLUTION
    # PROMPT: count the outputs (batch included), then the products and additions that make one output
    h_out = conv_output_size(height, kernel, stride, padding)
    w_out = conv_output_size(width, kernel, stride, padding)
    outputs = batch * c_out * h_out * w_out
    products = c_in * kernel * kernel
    return {
        "output_shape": [batch, c_out, h_out, w_out],
        "outputs": outputs,
        "products_per_output": products,
        "multiplications": outputs * products,
        "additions_without_bias": outputs * (products - 1),
        "additions_with_bias": outputs * products,
    }
    # END SOLUTION


def homework1() -> tuple[dict, list[str]]:
    """Homework 1 作业1: the counts, and the derivation as printable lines."""
    h = HW1
    c = conv2d_counts(**h)
    n, c_out, h_out, w_out = c["output_shape"]
    k, per = h["kernel"], c["products_per_output"]
    lines = [
        f"Homework 1 (作业1): Conv2D on input [{h['batch']}, {h['c_in']}, {h['height']}, {h['width']}], "
        f"{h['c_out']} kernels {k}x{k}, stride {h['stride']}, padding {h['padding']}",
        f"  output size   ({h['height']} + 2*{h['padding']} - {k}) // {h['stride']} + 1 = {h_out}"
        f"  -> output [{n}, {c_out}, {h_out}, {w_out}]",
        f"  outputs       {n} * {c_out} * {h_out} * {w_out} = {c['outputs']:,}",
        f"  per output    {h['c_in']} * {k} * {k} = {per} multiplications, {per - 1} additions to sum them, "
        f"+1 addition for the bias",
        f"  multiplications          {c['outputs']:,} * {per} = {c['multiplications']:,}",
        f"  additions without bias   {c['outputs']:,} * {per - 1} = {c['additions_without_bias']:,}",
        f"  additions with bias      {c['outputs']:,} * {per} = {c['additions_with_bias']:,}",
        "  (zero-padding positions are multiplied like any other, as in the usual convention)",
    ]
    return c, lines


# ---- 1. Data processing 数据处理 ----
def input_shape(text: str) -> list[int]:
    """argparse type for --input: 'N,C,H,W', four positive whole numbers."""
    parts = [p.strip() for p in text.split(",")]
    try:
        shape = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected four whole numbers N,C,H,W, got {text!r}") from None
    if len(shape) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 sizes N,C,H,W (an image batch), got {len(shape)}: {text!r}")
    if any(s <= 0 for s in shape):
        raise argparse.ArgumentTypeError(f"every size must be positive, got {text!r}")
    return shape


def model_spec(text: str) -> str:
    """argparse type for --model: a known name, or file.py:Name / package.module:Name, each with literal arguments."""
    try:
        target, name, _, _ = parse_model_spec(text)
    except ModelSpecError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not target and name not in MODELS:
        raise argparse.ArgumentTypeError(
            f"unknown model {name!r}; known: {', '.join(MODELS)} (or your own: path/to/file.py:ClassName, "
            f"package.module:callable)")
    return text


def load_data(cfg) -> dict:
    """No data set: the 'data' is the input specification, [N, C, H, W] (the model's default unless --input)."""
    return {"input_shape": cfg.input or default_input(cfg.model)}


# ---- 2. Model design 模型设计 ----
class SimpleNet(nn.Layer):
    """The course's SimpleNet: x [N, 3, 224, 224] -> [N, 1] (only 224x224: fc1 expects 16*56*56 = 50176 inputs).

    conv 3->6 5x5 pad 2 -> ReLU -> max-pool 2/2 -> conv 6->16 5x5 pad 2 -> ReLU -> max-pool 2/2
    -> flatten -> linear 50176->64 -> sigmoid -> linear 64->1
    (The course's version does not build: its super().__init__() is commented out and it passes tride=2.)
    """

    def __init__(self, num_classes: int = 1):
        super().__init__()
        # BEGIN SOLUTION
        # PROMPT: conv1, pool1, conv2, pool2, fc1, fc2 as in the docstring (the test looks for these names)
        self.conv1 = nn.Conv2D(3, 6, kernel_size=5, stride=1, padding=2)
        self.pool1 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2D(6, 16, kernel_size=5, stride=1, padding=2)
        self.pool2 = nn.MaxPool2D(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(16 * 56 * 56, 64)
        self.fc2 = nn.Linear(64, num_classes)
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION
        # PROMPT: x [N, 3, 224, 224] -> [N, 1]: F.relu after each conv, paddle.flatten before fc1, F.sigmoid after it
        x = self.pool1(F.relu(self.conv1(x)))  # [N, 6, 112, 112]
        x = self.pool2(F.relu(self.conv2(x)))  # [N, 16, 56, 56]
        x = paddle.flatten(x, 1)  # [N, 50176]
        x = F.sigmoid(self.fc1(x))  # [N, 64]
        return self.fc2(x)  # [N, 1]
        # END SOLUTION


def hw1_conv() -> nn.Layer:
    """Homework 1's convolution as a one-layer model, to check the formula against the inspector."""
    return nn.Conv2D(HW1["c_in"], HW1["c_out"], HW1["kernel"], stride=HW1["stride"], padding=HW1["padding"])


# name -> (constructor, default input shape); every constructor of paddle.vision.models is added below.
MODELS = {
    "simplenet": (SimpleNet, [10, 3, 224, 224]),
    "hw1_conv": (hw1_conv, [HW1["batch"], HW1["c_in"], HW1["height"], HW1["width"]]),
    "lenet": (LeNet, [10, 1, 28, 28]),
    **{name: (getattr(paddle.vision.models, name), [1, 3, 299, 299] if name == "inception_v3" else [1, 3, 224, 224])
       for name in paddle.vision.models.__all__ if inspect.isfunction(getattr(paddle.vision.models, name))},
}
USER_INPUT = [1, 3, 224, 224]  # the default input for a model of the user's own
MODEL_HELP = ("the network to inspect: a name below, a name with simple arguments (\"resnet18(num_classes=10)\"), "
              "or your own model as path/to/file.py:ClassName or package.module:callable, with arguments too "
              "(\"my_net.py:Net(num_classes=5)\"; literals only: numbers, strings, True/False/None, lists, dicts). "
              "A file is run as Python code to build the model. Names: ")


def default_input(spec: str) -> list[int]:
    """The default input shape for --model `spec` (a known name's own, else 1,3,224,224)."""
    target, name, _, _ = parse_model_spec(spec)
    return list(MODELS[name][1]) if not target and name in MODELS else list(USER_INPUT)


def build_model(cfg) -> nn.Layer:
    """The model that --model names: a known constructor, or one from the user's file or module."""
    return build_model_spec(cfg.model, {name: build for name, (build, _) in MODELS.items()})


# ---- 3. Training config 训练配置 ----
def configure(cfg, model: nn.Layer) -> dict:
    """Nothing is trained. The 'configuration' is how to count: see the conventions in common/inspector.py
    (MACs = conv + linear multiply-accumulates; eval mode; one forward pass on zeros)."""
    return {"dtype": "float32", "conventions": "common.inspector module docstring"}


# ---- 4. Training loop 训练过程 ----
def train(cfg, model: nn.Layer, data: dict, training: dict) -> ModelReport:
    """No training: the 'loop' is one forward pass with a hook on every layer."""
    return inspect_model(model, data["input_shape"], dtype=training["dtype"], name=cfg.model)


# ---- 5. Save 保存模型 ----
def save(cfg, report: ModelReport, metrics: dict) -> list[Path]:
    """The table as layers.md / layers.csv / layers.json, and metrics.json (no model weights to save)."""
    return [*report.save(cfg.out), write_metrics(cfg.out, metrics)]


def build_metrics(cfg, report: ModelReport, hw1: dict) -> dict:
    t = report.totals
    metrics = {
        "model": cfg.model, "input_shape": report.input_shape,
        "total_macs": t["macs"], "total_flops": t["flops"],
        "total_multiplications": t["multiplications"], "total_additions": t["additions"],
        "trainable_params": t["trainable_params"], "non_trainable_params": t["non_trainable_params"],
        "total_params": t["total_params"],
        "hw1_output_shape": hw1["output_shape"], "hw1_multiplications": hw1["multiplications"],
        "hw1_additions_with_bias": hw1["additions_with_bias"],
        "hw1_additions_without_bias": hw1["additions_without_bias"],
        "layers": [{"name": r.name, "type": r.type, "kind": r.kind, "output_shape": r.output_shape,
                    "param_shapes": r.param_shapes} for r in report.rows],
    }
    if cfg.model == "hw1_conv" and report.input_shape == MODELS["hw1_conv"][1]:
        conv = report.rows[0]  # the formula against the inspector's count from the real output shape
        metrics["hw1_inspector_agrees"] = (conv.multiplications, conv.additions) == (
            hw1["multiplications"], hw1["additions_with_bias"])
    if cfg.model in PUBLISHED_GMACS and report.input_shape == default_input(cfg.model):
        published = PUBLISHED_GMACS[cfg.model] * 1e9
        metrics["published_macs"] = published
        metrics["macs_vs_published"] = t["macs"] / published - 1
    return metrics


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(NAME, "Output shapes, parameters and FLOPs of a CNN, layer by layer.",
                         epochs=None, lr=None, batch_size=None, data_help=None)
    parser.add_argument("--model", type=model_spec, default="simplenet", metavar="MODEL",
                        help=MODEL_HELP + ", ".join(MODELS))
    parser.add_argument("--input", type=input_shape, default=None, metavar="N,C,H,W",
                        help="input shape; %(default)s = the model's own (simplenet and hw1_conv 10,3,224,224, "
                             "lenet 10,1,28,28, inception_v3 1,3,299,299, the others and your own 1,3,224,224). "
                             f"A batch whose forward pass could need more than {MEMORY_BUDGET / 2**30:.0f} GiB is "
                             "counted without allocating it (at batch 1 and 2, scaled)")
    cfg = parser.parse_args(argv)
    seed_everything(cfg.seed)
    set_device(cfg.device)

    hw1, derivation = homework1()
    data = load_data(cfg)
    try:
        model = build_model(cfg)
    except ModelSpecError as e:
        parser.error(f"--model {cfg.model}: {e}")
    training = configure(cfg, model)
    shape = ",".join(map(str, data["input_shape"]))
    try:
        report = train(cfg, model, data, training)
    except InputTooLarge as e:
        parser.error(f"--input {shape} is too large to count: {e}")
    except InputMismatch as e:
        parser.error(f"--input {shape} does not fit {cfg.model}: {e}")
    metrics = build_metrics(cfg, report, hw1)
    paths = save(cfg, report, metrics)

    print("\n".join(derivation))
    homework = " (homework 2 作业2)" if cfg.model == "simplenet" else ""
    print(f"\n{cfg.model}{homework}, input {report.input_shape}, layer by layer:\n")
    print(report.to_markdown())
    if "published_macs" in metrics:
        print(f"published: {metrics['published_macs'] / 1e9:.2f} GMACs; ours differs by "
              f"{metrics['macs_vs_published']:+.2%}")
    if "hw1_inspector_agrees" in metrics:
        print(f"homework 1: the inspector's count of this layer agrees with the formula: "
              f"{metrics['hw1_inspector_agrees']}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return metrics


if __name__ == "__main__":
    run(main)
