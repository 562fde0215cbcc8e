"""Chapter 5: the homework counts, SimpleNet's table, the output-size formula, and the inspector against
paddle.summary, hand formulas and published figures.

The published-figures check runs here for a few cheap models only; the others (vgg and alexnet take seconds to
build on CPU) are checked by `python -m chapters.ch05_cnn_shapes_flops.published_macs`.
"""
import dataclasses
import functools
import json
import math
import re

import numpy as np
import paddle
import pytest
from paddle import nn

from chapters.ch05_cnn_shapes_flops.published_macs import (
    build_published, compare, inspect_published, main as published_main,
)
from chapters.ch05_cnn_shapes_flops.shapes_flops import (
    HW1, PUBLISHED_GMACS, PUBLISHED_PARAMS, SimpleNet, conv2d_counts, conv_output_size, homework1, main,
)
from common.inspector import InputTooLarge, inspect_model
from common.models import LeNet

# Homework 1 by hand: 10 * 64 * 224 * 224 = 32,112,640 outputs, each 3 * 3 * 3 = 27 products.
HW1_OUTPUTS = 32_112_640
HW1_MULTIPLICATIONS = 867_041_280  # 32,112,640 * 27
HW1_ADDITIONS_WITHOUT_BIAS = 834_928_640  # 32,112,640 * 26
HW1_ADDITIONS_WITH_BIAS = 867_041_280  # 32,112,640 * 27

# Homework 2 by hand, for input [10, 3, 224, 224]: (leaf layer, output shape, parameter shapes).
SIMPLENET_TABLE = [
    ("conv1", [10, 6, 224, 224], {"weight": [6, 3, 5, 5], "bias": [6]}),  # (224 + 4 - 5) // 1 + 1 = 224
    ("pool1", [10, 6, 112, 112], {}),
    ("conv2", [10, 16, 112, 112], {"weight": [16, 6, 5, 5], "bias": [16]}),
    ("pool2", [10, 16, 56, 56], {}),
    ("fc1", [10, 64], {"weight": [50176, 64], "bias": [64]}),  # 16 * 56 * 56 = 50176
    ("fc2", [10, 1], {"weight": [64, 1], "bias": [1]}),
]
SIMPLENET_PARAMS = 3_214_265  # 456 + 2,416 + 3,211,328 + 65


def im2col_conv_counting(x, w, b, padding):
    """Convolution as an explicit im2col matrix product, counting every multiplication and addition.

    x [N, C, H, W], w [O, C, K, K], stride 1 -> (y [N, O, H', W'], multiplications, additions without bias,
    additions for the bias).
    """
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out, w_out = xp.shape[2] - k + 1, xp.shape[3] - k + 1
    cols = np.stack([xp[:, :, i:i + h_out, j:j + w_out] for i in range(k) for j in range(k)], axis=2)
    cols = cols.reshape(n, c * k * k, h_out * w_out).transpose(0, 2, 1).reshape(-1, c * k * k)  # [N*H'*W', C*K*K]
    weights = w.reshape(o, -1).T  # [C*K*K, O]
    products = cols[:, :, None] * weights[None, :, :]  # every product the matrix multiply performs
    mults = products.size
    acc, adds = products[:, 0, :], 0
    for j in range(1, products.shape[1]):  # sum the products one addition at a time
        acc = acc + products[:, j, :]
        adds += acc.size
    y = acc + b[None, :]
    bias_adds = acc.size
    y = y.reshape(n, h_out, w_out, o).transpose(0, 3, 1, 2)
    return y, mults, adds, bias_adds


@pytest.mark.points(5)
def test_homework1_counts_agree_with_an_explicit_im2col_count():
    # A small case with the homework's channels, kernel, stride and padding, counted product by product...
    rng = np.random.default_rng(0)
    small = {**HW1, "batch": 2, "height": 6, "width": 5, "c_out": 4}
    x = rng.standard_normal((2, 3, 6, 5)).astype("float32")
    w = rng.standard_normal((4, 3, 3, 3)).astype("float32")
    b = rng.standard_normal(4).astype("float32")
    y, mults, adds, bias_adds = im2col_conv_counting(x, w, b, padding=1)
    # ...is really the convolution (Paddle's own conv gives the same output)...
    expected = paddle.nn.functional.conv2d(paddle.to_tensor(x), paddle.to_tensor(w), paddle.to_tensor(b), padding=1)
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-5, atol=1e-5)
    # ...and the formula counts what it performed.
    c = conv2d_counts(**small)
    assert c["output_shape"] == list(y.shape)
    assert c["multiplications"] == mults
    assert c["additions_without_bias"] == adds
    assert c["additions_with_bias"] == adds + bias_adds

    # Scaling up: work per output (the same 27 products and 26 + 1 additions) times the homework's outputs.
    outputs = y.size
    hw1, lines = homework1()
    assert hw1["outputs"] == HW1_OUTPUTS == 10 * 64 * 224 * 224
    assert hw1["multiplications"] == HW1_OUTPUTS * (mults // outputs) == HW1_MULTIPLICATIONS
    assert hw1["additions_without_bias"] == HW1_OUTPUTS * (adds // outputs) == HW1_ADDITIONS_WITHOUT_BIAS
    assert hw1["additions_with_bias"] == HW1_OUTPUTS * ((adds + bias_adds) // outputs) == HW1_ADDITIONS_WITH_BIAS
    assert any(f"{HW1_MULTIPLICATIONS:,}" in line for line in lines)  # the derivation prints the answer


@pytest.mark.points(2)
def test_homework1_counts_agree_with_the_inspector_on_the_same_layer():
    # The homework's conv at a smaller image: the inspector counts from the real output shape.
    conv = nn.Conv2D(3, 64, 3, stride=1, padding=1)
    row = inspect_model(conv, [2, 3, 20, 18]).rows[0]
    c = conv2d_counts(2, 3, 20, 18, 64, 3, stride=1, padding=1)
    assert row.output_shape == c["output_shape"]
    assert (row.multiplications, row.additions, row.macs) == (
        c["multiplications"], c["additions_with_bias"], c["multiplications"])


@pytest.mark.points(5)
def test_homework2_simplenet_table_and_metrics(tmp_path):
    metrics = main(["--out", str(tmp_path)])  # simplenet, input 10,3,224,224
    leaves = [r for r in metrics["layers"] if r["kind"] == "layer"]
    assert [(r["name"], r["output_shape"], r["param_shapes"]) for r in leaves] == SIMPLENET_TABLE
    assert metrics["trainable_params"] == SIMPLENET_PARAMS and metrics["non_trainable_params"] == 0
    assert metrics["input_shape"] == [10, 3, 224, 224] and metrics["model"] == "simplenet"
    assert (metrics["hw1_multiplications"], metrics["hw1_additions_with_bias"],
            metrics["hw1_additions_without_bias"]) == (HW1_MULTIPLICATIONS, HW1_ADDITIONS_WITH_BIAS,
                                                       HW1_ADDITIONS_WITHOUT_BIAS)
    # MACs by hand: conv1 10*6*224*224*75 + conv2 10*16*112*112*150 + fc1 10*64*50176 + fc2 10*1*64
    assert metrics["total_macs"] == 225_792_000 + 301_056_000 + 32_112_640 + 640
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["total_macs"] == metrics["total_macs"]
    table = json.loads((tmp_path / "layers.json").read_text())
    assert table["totals"]["trainable_params"] == SIMPLENET_PARAMS
    assert (tmp_path / "layers.csv").read_text().count("\n") == len(table["layers"]) + 1
    assert f"{SIMPLENET_PARAMS:,}" in (tmp_path / "layers.md").read_text()


# (size, kernel, stride, padding, dilation, expected), expected worked out by hand
OUTPUT_SIZE_CASES = [
    (224, 3, 1, 1, 1, 224),  # "same" padding
    (224, 5, 1, 2, 1, 224),
    (224, 2, 2, 0, 1, 112),  # 2x2 pooling halves
    (224, 11, 4, 2, 1, 55),  # AlexNet conv1: (224 + 4 - 11) // 4 + 1 = 54 + 1
    (55, 3, 2, 0, 1, 27),  # AlexNet pool: (55 - 3) // 2 + 1
    (224, 7, 2, 3, 1, 112),  # ResNet stem: (224 + 6 - 7) // 2 + 1 = 111 + 1
    (7, 3, 2, 0, 1, 3),
    (8, 3, 2, 1, 1, 4),  # (8 + 2 - 3) // 2 + 1 = 3 + 1: the remainder is dropped
    (10, 3, 1, 0, 2, 6),  # dilation 2: the kernel spans 5 pixels
    (5, 5, 1, 0, 1, 1),  # the kernel just fits
]


@pytest.mark.points(3)
@pytest.mark.parametrize("size, kernel, stride, padding, dilation, expected", OUTPUT_SIZE_CASES)
def test_output_size_formula(size, kernel, stride, padding, dilation, expected):
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected
    conv = nn.Conv2D(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    assert conv(paddle.zeros([1, 1, size, 3 + 2])).shape[2] == expected  # Paddle agrees


SUMMARY_ROW = re.compile(r"^\s*(\w+)-\d+\s+(\[\[.*?\]\])\s+(\[.*?\])\s+([\d,]+)\s*$")


def summary_rows(model, shape, capsys):
    """paddle.summary's printed table as [(type, input shape, output shape, parameters)], and its totals."""
    capsys.readouterr()
    totals = paddle.summary(model, tuple(shape))
    rows = []
    for line in capsys.readouterr().out.splitlines():
        m = SUMMARY_ROW.match(line)
        if m:
            rows.append((m[1], json.loads(m[2])[0], json.loads(m[3]), int(m[4].replace(",", ""))))
    return rows, totals


def inspector_rows(model, shape):
    """Our leaf-layer rows, one per layer as paddle.summary keeps them (first position, last call's shapes)."""
    report = inspect_model(model, shape)
    per_layer, params = {}, {}
    for r in report.rows:
        if r.kind == "layer":  # not a functional call
            params.setdefault(r.name, r.trainable + r.non_trainable)
            per_layer[r.name] = (r.type, r.input_shape, r.output_shape, params[r.name])
    return list(per_layer.values()), report.totals


@pytest.mark.points(4)
@pytest.mark.parametrize("build, shape", [
    (SimpleNet, [1, 3, 224, 224]),
    (LeNet, [2, 1, 28, 28]),
    (lambda: LeNet(batch_norm=True), [2, 1, 28, 28]),
    ("resnet18", [1, 3, 64, 64]),  # by name: the classic models are built once for this module (classic_model)
    ("mobilenet_v2", [1, 3, 64, 64]),
], ids=["simplenet", "lenet", "lenet_bn", "resnet18", "mobilenet_v2"])
def test_inspector_agrees_with_paddle_summary(build, shape, capsys, classic_model):
    model = classic_model(build) if isinstance(build, str) else build()
    ours, totals = inspector_rows(model, shape)
    theirs, their_totals = summary_rows(model, shape, capsys)
    leaf_types = {row[0] for row in ours}
    assert ours == [row for row in theirs if row[0] in leaf_types]
    assert totals["total_params"] == their_totals["total_params"]
    assert totals["trainable_params"] == their_totals["trainable_params"]


@pytest.fixture(scope="module")
def classic_model():
    """name -> the classic model, built once for this module: resnet18 initialises 11.7 million weights (0.2 s)."""
    return functools.cache(build_published)


@pytest.fixture(scope="module")
def published_report(classic_model):
    """name -> the classic model inspected at its default input (published_macs.inspect_published), made once:
    a 224-pixel forward pass of densenet121 or resnet18 takes a few tenths of a second."""
    return functools.cache(lambda name: inspect_published(name, classic_model(name)))


@pytest.fixture(scope="module")
def resnet18_report(published_report):
    report = published_report("resnet18")
    assert report.input_shape == [1, 3, 224, 224]
    return report


@pytest.mark.points(3)
def test_trainable_and_non_trainable_are_told_apart_on_a_batchnorm_model(resnet18_report):
    # A small model by hand: conv 3->8 3x3 without bias (216) + BatchNorm(8): scale and shift trainable (16),
    # running mean and variance not (16).
    small = nn.Sequential(nn.Conv2D(3, 8, 3, bias_attr=False), nn.BatchNorm2D(8))
    t = inspect_model(small, [1, 3, 8, 8]).totals
    assert (t["trainable_params"], t["non_trainable_params"]) == (216 + 16, 16)
    # ResNet-18: Paddle's parameters() has 11,699,112 elements; 11,689,512 are trained (the papers' figure),
    # and 9,600 = 2 * 4,800 BatchNorm channels are running statistics.
    t = resnet18_report.totals
    assert (t["total_params"], t["trainable_params"], t["non_trainable_params"]) == (11_699_112, 11_689_512, 9_600)
    assert sum(r.trainable for r in resnet18_report.rows) == 11_689_512
    assert sum(r.non_trainable for r in resnet18_report.rows) == 9_600


@pytest.mark.points(3)
def test_macs_of_one_conv_and_one_linear_match_hand_formulas():
    # Conv 4->8, 3x3, stride 2, pad 1, groups 2 on [2, 4, 9, 9]: output 5x5; each output sums 4/2 * 3 * 3 = 18
    # products: 2 * 8 * 5 * 5 = 400 outputs -> 7,200 MACs; additions 400 * 17, + 400 for the bias.
    conv = nn.Conv2D(4, 8, 3, stride=2, padding=1, groups=2)
    row = inspect_model(conv, [2, 4, 9, 9]).rows[0]
    assert row.output_shape == [2, 8, 5, 5]
    assert (row.macs, row.multiplications, row.additions) == (7_200, 7_200, 400 * 17 + 400)
    conv = nn.Conv2D(4, 8, 3, stride=2, padding=1, groups=2, bias_attr=False)
    assert inspect_model(conv, [2, 4, 9, 9]).rows[0].additions == 400 * 17
    # Linear 20 -> 7 on [3, 20]: 21 outputs of 20 products.
    row = inspect_model(nn.Linear(20, 7), [3, 20]).rows[0]
    assert (row.macs, row.additions, row.flops) == (420, 21 * 19 + 21, 420 + 21 * 20)


# Cheap to build (under 0.3 s each); the rest of PUBLISHED_GMACS is checked by published_macs.py.
CHEAP_PUBLISHED = ["resnet18", "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x1_0", "mobilenet_v3_small",
                   "densenet121"]


@pytest.mark.points(3)
@pytest.mark.parametrize("name", CHEAP_PUBLISHED)
def test_macs_and_parameters_of_classic_models_match_published_figures(name, published_report):
    result = compare(name, published_report(name))  # published_macs.py's own comparison, at the default input
    assert result["macs"] == pytest.approx(PUBLISHED_GMACS[name] * 1e9, rel=0.01)
    assert result["params"] == PUBLISHED_PARAMS[name]
    assert result["ok"]


@pytest.mark.points(2)
def test_the_older_paddle_nn_batchnorm_is_counted_like_batchnorm2d(published_report):
    # paddle.nn.BatchNorm is not a subclass of _BatchNormBase; it folds to y = a * x + b all the same.
    old = inspect_model(nn.Sequential(nn.Conv2D(3, 4, 3), nn.BatchNorm(4)), [2, 3, 6, 6]).rows[1]
    new = inspect_model(nn.Sequential(nn.Conv2D(3, 4, 3), nn.BatchNorm2D(4)), [2, 3, 6, 6]).rows[1]
    assert "not counted" not in old.note
    assert (old.multiplications, old.additions, old.flops) == (2 * 4 * 4 * 4, 2 * 4 * 4 * 4, 2 * 2 * 4 * 4 * 4)
    assert (old.multiplications, old.additions, old.flops) == (new.multiplications, new.additions, new.flops)
    # densenet121 is built from the older class: its 121 BatchNorm layers hold 31,334,912 of its FLOPs
    # (2 per output element; the figure paddle-free tools give), none of its rows is left uncounted.
    report = published_report("densenet121")
    assert report.input_shape == [1, 3, 224, 224]
    bn = [r for r in report.rows if r.type == "BatchNorm"]
    assert len(bn) == 121 and not any("not counted" in r.note for r in report.rows)
    assert sum(r.flops for r in bn) == 31_334_912 == 2 * sum(math.prod(r.output_shape) for r in bn)


USER_MODEL = """
import paddle.nn as nn

class Net(nn.Layer):
    def __init__(self, num_classes=10, width=8):
        super().__init__()
        self.conv = nn.Conv2D(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2D(width)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.bn(self.conv(x))).flatten(1))
"""


@pytest.mark.points(3)
def test_a_model_from_the_users_own_file_is_inspected_end_to_end(tmp_path, capsys):
    path = tmp_path / "my_net.py"
    path.write_text(USER_MODEL)
    out = tmp_path / "run"
    metrics = main(["--model", f"{path}:Net(num_classes=5)", "--input", "2,3,16,16", "--out", str(out)])
    # By hand: conv 3*8*9 + 8 = 224, BatchNorm 8 + 8 trainable and 8 + 8 running statistics, fc 8*5 + 5 = 45.
    assert (metrics["trainable_params"], metrics["non_trainable_params"]) == (224 + 16 + 45, 16)
    # MACs: conv 2*8*16*16 outputs of 27 products, fc 2*5 outputs of 8 products.
    assert metrics["total_macs"] == 2 * 8 * 16 * 16 * 27 + 2 * 5 * 8
    assert [r["output_shape"] for r in metrics["layers"] if r["kind"] == "layer"][-1] == [2, 5]
    assert json.loads((out / "layers.json").read_text())["totals"]["macs"] == metrics["total_macs"]
    assert "my_net.py:Net(num_classes=5)" in capsys.readouterr().out
    # A module and callable, with arguments: the same counts as building it here.
    metrics = main(["--model", "common.models:LeNet(batch_norm=True)", "--input", "1,1,28,28", "--out", str(out)])
    assert metrics["total_macs"] == inspect_model(LeNet(batch_norm=True), [1, 1, 28, 28]).totals["macs"]


@pytest.mark.points(2)
@pytest.mark.parametrize("spec, message", [
    ("resnet", "known: simplenet, hw1_conv, lenet, resnet18"),
    ("{file}:Nett", "has no 'Nett'; its layers: Net"),
    ("{file}:Net(nnum_classes=5)", "Net(...) raised TypeError"),
    ("{tmp}/missing.py:Net", "no Python file"),
    ("{file}:Net(open({marker!r}, 'w'))", "must be literals"),  # a call as an argument is never run
    ("{file}:Net(num_classes=5", "cannot read the arguments"),
    # not import_module's "relative import" (where ../../etc/passwd exists it is "not a .py file: give ...")
    ("../../etc/passwd:X", "give path/to/file.py:NAME"),
    ("{tmp}/notes.txt:Net", "is a file, but not a .py file"),
    ("sys:exit", "exit(...) raised SystemExit"),  # a build that exits is an error, not a silent status 0
    ("{tmp}/exits.py:Net", "running {tmp}/exits.py failed: SystemExit"),
])
def test_bad_model_descriptions_give_one_line(spec, message, tmp_path, capsys):
    path = tmp_path / "my_net.py"
    path.write_text(USER_MODEL)
    (tmp_path / "notes.txt").write_text(USER_MODEL)
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")
    marker = tmp_path / "ran"
    message = message.format(tmp=tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", spec.format(file=path, tmp=tmp_path, marker=str(marker)), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not marker.exists()


@pytest.mark.points(2)
def test_a_batch_too_large_to_allocate_is_counted_by_scaling(tmp_path, capsys):
    # 1,000,000 SimpleNet images would need terabytes; the counts are batch 1's times 1,000,000, exactly.
    metrics = main(["--input", "1000000,3,224,224", "--out", str(tmp_path)])
    per_image = (225_792_000 + 301_056_000 + 32_112_640 + 640) // 10  # the batch-10 MACs worked out above
    assert metrics["total_macs"] == 1_000_000 * per_image
    assert metrics["layers"][-1]["output_shape"] == [1_000_000, 1]
    assert "counted without allocating it" in capsys.readouterr().out
    # Scaling gives what the real pass gives: a batch of 6 under a budget that forces it.
    model = SimpleNet()
    direct, scaled = inspect_model(model, [6, 3, 224, 224]), inspect_model(model, [6, 3, 224, 224], memory_budget=2**24)
    assert scaled.note and not direct.note
    assert [dataclasses.astuple(r) for r in scaled.rows] == [dataclasses.astuple(r) for r in direct.rows]
    with pytest.raises(InputTooLarge, match="above the 4.0 GiB budget"):
        inspect_model(model, [1, 3, 30000, 30000])  # refused before anything is allocated


def test_published_macs_help_does_not_run_the_measurement(capsys):
    with pytest.raises(SystemExit) as exit_info:
        published_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "| model |" not in out


@pytest.mark.points(2)
@pytest.mark.parametrize("argv, message", [
    (["--input", "10,3,224"], "expected 4 sizes"),
    (["--input", "10,0,224,224"], "must be positive"),
    (["--input=-1,3,224,224"], "must be positive"),
    (["--input", "10,3,2x4,224"], "whole numbers"),
    (["--model", "simplenet", "--input", "1,3,100,100"], "does not fit simplenet"),  # fc1 wants 50176 inputs
    (["--model", "lenet", "--input", "1,1,3,3"], "too small"),  # conv2's 5x5 kernel meets a 1x1 map
    (["--model", "lenet", "--input", "1,3,28,28"], "channels"),
])
def test_bad_input_gives_a_clear_error(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
