"""common.inspector: what paddle.flops misses (functional calls, pooling), shared layers, and its outputs."""
import csv
import io
import json

import paddle
import paddle.nn.functional as F
import pytest
from paddle import nn

from common.inspector import InputMismatch, inspect_model


class Functional(nn.Layer):
    """x [N, 4, 6, 6] -> [N, 4, 3, 3], mostly through functional calls and tensor operators."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(4, 4, 3, padding=1, bias_attr=False)
        self.act = nn.ReLU()  # called twice: two rows, parameters (none) once
        self.scale = self.create_parameter([4, 1, 1])  # used in forward, owned by a container

    def forward(self, x):
        y = self.act(self.conv(x))
        y = F.relu(y + x) * self.scale  # residual add, then a multiply
        y = F.max_pool2d(self.act(y), kernel_size=2)
        return F.avg_pool2d(y, kernel_size=1)  # 1x1 average: no additions, one multiply per output


@pytest.mark.points(3)
def test_functional_calls_and_pooling_are_counted():
    originals = (paddle.Tensor.__add__, F.relu, paddle.flatten)
    report = inspect_model(Functional(), [2, 4, 6, 6])
    rows = {r.name: r for r in report.rows}
    n = 2 * 4 * 6 * 6  # elements of a [2, 4, 6, 6] map
    assert rows["conv"].macs == n * 4 * 3 * 3
    assert rows["(model):add"].additions == n and rows["(model):add"].type == "Tensor +"
    assert rows["(model):relu"].flops == n
    assert rows["(model):mul"].multiplications == n
    assert rows["(model):max_pool2d"].flops == (2 * 4 * 3 * 3) * 3  # 3 comparisons per 2x2 window
    assert rows["(model):avg_pool2d"].multiplications == 2 * 4 * 3 * 3
    assert rows["(model):avg_pool2d"].additions == 0
    acts = [r for r in report.rows if r.name == "act"]
    assert [(r.flops, r.note) for r in acts] == [(n, ""), (n, "repeat call")]
    # The container's own parameter is in the table, and every parameter is counted once.
    assert rows["(model)"].kind == "parameters" and rows["(model)"].trainable == 4
    assert report.totals["trainable_params"] == 4 * 4 * 3 * 3 + 4 == sum(r.trainable for r in report.rows)
    # The tensor operators and functions are Paddle's own again afterwards.
    assert (paddle.Tensor.__add__, F.relu, paddle.flatten) == originals


class CustomConv(nn.Layer):
    """A leaf layer of its own: x [N, 2, 5, 5] -> [N, 3, 3, 3] with F.conv2d on its own weight."""

    def __init__(self):
        super().__init__()
        self.weight = self.create_parameter([3, 2, 3, 3])

    def forward(self, x):
        return F.conv2d(x, self.weight)


@pytest.mark.points(2)
def test_a_custom_leaf_layer_is_counted_through_its_functional_calls():
    conv_row, own_row = inspect_model(CustomConv(), [4, 2, 5, 5]).rows
    assert conv_row.type == "F.conv2d" and conv_row.macs == (4 * 3 * 3 * 3) * (2 * 3 * 3)
    assert own_row.param_shapes == {"weight": [3, 2, 3, 3]} and own_row.macs == 0
    assert own_row.note == "counted in the calls above"


@pytest.mark.points(2)
def test_batchnorm_and_adaptive_pooling_counts():
    # Adaptive average pooling 5 -> 3 uses windows [0:2], [1:4], [3:5] per axis: sizes 2, 3, 2 (sum 7), so
    # 7 * 7 = 49 elements in 9 windows: 49 - 9 additions and 9 multiplications per channel.
    model = nn.Sequential(nn.BatchNorm2D(3), nn.AdaptiveAvgPool2D(3))
    bn, pool = inspect_model(model, [2, 3, 5, 5]).rows
    assert (bn.multiplications, bn.additions) == (2 * 3 * 25, 2 * 3 * 25)
    assert (pool.additions, pool.multiplications) == (2 * 3 * (49 - 9), 2 * 3 * 9)


@pytest.mark.points(2)
def test_unknown_layers_are_flagged_and_bad_inputs_rejected():
    report = inspect_model(nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2D(1, 1, 3)), [1, 1, 4, 4])
    assert "not counted" in report.rows[0].note and report.rows[1].output_shape == [1, 1, 6, 6]
    with pytest.raises(InputMismatch, match="too small"):  # checked before Paddle's conv runs (it would crash)
        inspect_model(nn.Conv2D(1, 1, 5), [1, 1, 4, 9])
    with pytest.raises(InputMismatch, match="layer 1"):
        inspect_model(nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), [1, 11])
    with pytest.raises(ValueError, match="positive"):
        inspect_model(nn.Linear(3, 2), [0, 3])


@pytest.mark.points(2)
def test_markdown_csv_and_json_outputs_agree(tmp_path):
    report = inspect_model(nn.Sequential(nn.Conv2D(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 2)),
                           [1, 3, 6, 6])
    md, csv_path, json_path = report.save(tmp_path)
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    data = json.loads(json_path.read_text())
    assert [r["name"] for r in rows] == [r["name"] for r in data["layers"]] == ["0", "1", "2", "3"]
    assert sum(int(r["macs"]) for r in rows) == data["totals"]["macs"] == 8 * 16 * 27 + 2 * 128
    assert f"| **total** | | | | | {data['totals']['trainable_params']:,} |" in md.read_text()
