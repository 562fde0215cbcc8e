"""A model inspector: per-layer shapes, parameters and operation counts for any `paddle.nn.Layer`.

    report = inspect_model(model, [1, 3, 224, 224])
    print(report.to_markdown())          # one row per layer call, then the totals
    report.save("runs/x")                # runs/x/layers.md, layers.json, layers.csv

It runs one forward pass (eval mode, no gradients, an all-zero input) with hooks on every layer, and records
one row per call of a leaf layer (a layer with no sublayers) and per functional call made directly in a
`forward` (`F.relu(x)`, `paddle.flatten(x, 1)`, `paddle.matmul`, and the tensor operators `x + y`, `x * y`).
It exists because `paddle.flops` (paddle 3.3.1) crashes with numpy >= 2.4, counts max-pooling as zero and
does not see functional calls.

Counting conventions (one place, here)
--------------------------------------
Let `out` be the number of output elements of a call (batch included) and `K` the number of products
that make one output of a convolution or linear layer: `K = C_in / groups * kh * kw` for Conv2D
(`K` = the product of the weight shape after the first axis, for 1-D/2-D/3-D convolutions),
`K = in_features` for Linear and matmul.

- Conv / Linear / matmul: multiplications = out * K; additions = out * (K - 1) to sum the K products,
  plus out more for the bias when the layer has one. MACs (multiply-accumulates) = out * K: the bias is
  not a MAC. Zero-padding positions count as real products, as every published figure does
  (a convolution kernel multiplies the padded zeros too).
- MACs are counted for conv, linear and matmul only. This is the convention of the published model
  figures (e.g. torchvision's "GFLOPS" column, which is in fact GMACs): a ResNet-50 at 224x224 is 4.09 G.
- BatchNorm, either class (BatchNorm1D/2D/3D and the older `paddle.nn.BatchNorm`), in its inference form
  folded to y = a * x + b: 1 multiplication + 1 addition per element.
- Average pooling: window - 1 additions and 1 multiplication (by 1 / window) per output; adaptive
  pooling uses each output's exact window. Max pooling: window - 1 comparisons per output.
  Padded positions count as part of the window, as for convolutions.
- Activations (ReLU, sigmoid, tanh, softmax, ...): 1 operation per output element, whatever the
  function's real cost. Elementwise add: 1 addition per element; elementwise multiply: 1 multiplication.
- Comparisons and activation operations count in FLOPs, not in multiplications or additions.
- FLOPs = multiplications + additions + those other operations. (The other common convention,
  FLOPs = 2 * MACs, is easy to get from the MACs column.)
- Reshape, flatten, dropout (identity in eval mode), concat: no operations.
- A leaf layer of another type (a custom layer, say, that calls F.conv2d on its own weight) is counted
  through the functional calls listed in FUNCTIONAL that its forward makes, which get rows of their own;
  if it makes none, it counts zero and its row says "not counted". Functions imported by name
  (`from paddle.nn.functional import relu`) are not seen: call them as `F.relu`.

Parameters: `trainable` = elements of parameters that an optimizer updates (`trainable` and not
`stop_gradient`); `non_trainable` = the other parameters (BatchNorm's running mean and variance: Paddle's
`parameters()` includes them) plus persistable buffers. A layer called twice (e.g. one `nn.ReLU` reused)
gives two rows, with its parameters counted at the first call only. Parameters of layers that the forward
pass never called as leaves get a row of their own, marked in `note`.
"""
from __future__ import annotations

import ast
import csv
import importlib
import importlib.util
import io
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from common.files import atomic_path, write_json

COLUMNS = (
    "name", "type", "kind", "input_shape", "output_shape", "param_shapes", "trainable", "non_trainable",
    "multiplications", "additions", "macs", "flops", "note",
)


@dataclass
class LayerRow:
    """One call of a leaf layer or of a functional operation."""

    name: str  # sublayer path ("layer1.0.conv1"); a functional call: "<parent path>:<function>"
    type: str  # class name ("Conv2D") or function ("F.relu", "Tensor +")
    kind: str = "layer"  # "layer" (a leaf layer's call), "function" (a functional call), "parameters" (not called)
    input_shape: list | None = None  # the first input tensor's shape
    output_shape: list | None = None
    param_shapes: dict = field(default_factory=dict)  # {"weight": [64, 3, 3, 3], "bias": [64]}
    trainable: int = 0
    non_trainable: int = 0
    multiplications: int = 0
    additions: int = 0
    macs: int = 0
    flops: int = 0
    note: str = ""


@dataclass
class ModelReport:
    model: str
    input_shape: list
    rows: list[LayerRow]
    trainable_params: int
    non_trainable_params: int
    note: str = ""  # e.g. how a batch too large to allocate was counted

    @property
    def totals(self) -> dict:
        def total(key):
            return sum(getattr(r, key) for r in self.rows)

        return {
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "total_params": self.trainable_params + self.non_trainable_params,
            "multiplications": total("multiplications"),
            "additions": total("additions"),
            "macs": total("macs"),
            "flops": total("flops"),
        }

    def to_dict(self) -> dict:
        return {"model": self.model, "input_shape": self.input_shape, "totals": self.totals, "note": self.note,
                "layers": [asdict(r) for r in self.rows]}

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in self.rows:
            writer.writerow([_cell(getattr(r, c)) for c in COLUMNS])
        return buf.getvalue()

    def to_markdown(self) -> str:
        head = ("layer", "type", "input", "output", "parameters", "trainable", "non-train.",
                "mults", "adds", "MACs", "FLOPs")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = (r.name, r.type + (f" ({r.note})" if r.note else ""), _cell(r.input_shape),
                     _cell(r.output_shape), _cell(r.param_shapes), *(f"{getattr(r, c):,}" for c in COLUMNS[6:12]))
            lines.append("| " + " | ".join(cells) + " |")
        t = self.totals
        lines.append("| **total** | | | | | " + " | ".join(f"{t[k]:,}" for k in (
            "trainable_params", "non_trainable_params", "multiplications", "additions", "macs", "flops")) + " |")
        lines.append("")
        lines.append(f"{self.model}, input {self.input_shape}: {t['total_params']:,} parameters "
                     f"({t['trainable_params']:,} trainable, {t['non_trainable_params']:,} not), "
                     f"{t['macs'] / 1e9:.4g} GMACs, {t['flops'] / 1e9:.4g} GFLOPs")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | os.PathLike, stem: str = "layers") -> list[Path]:
        """Write `stem`.md, .json and .csv into `out_dir`; return the paths."""
        out_dir = Path(out_dir)
        paths = [out_dir / f"{stem}.{ext}" for ext in ("md", "csv")]
        for path, text in zip(paths, (self.to_markdown(), self.to_csv())):
            with atomic_path(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
        paths.append(write_json(out_dir / f"{stem}.json", self.to_dict()))
        return paths


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return "; ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


# ---- counting rules: (layer or call arguments, input shape, output shape) -> counts ----

def _numel(shape) -> int:
    return math.prod(shape)


def _dot_products(out: int, k: int, bias: bool) -> dict:
    """`out` dot products of length `k`, each followed by a bias add if `bias`."""
    return {"multiplications": out * k, "additions": out * (k - 1) + (out if bias else 0), "macs": out * k}


def _pool_windows(in_size: int, out_size: int) -> list[int]:
    # Adaptive pooling: output i averages input[floor(i*in/out) : ceil((i+1)*in/out)].
    return [-(-(i + 1) * in_size // out_size) - (i * in_size // out_size) for i in range(out_size)]


def _pool_counts(kind: str, window_sizes, out_shape) -> dict:
    """Pooling counts; `window_sizes` is one window size for all outputs, or the exact per-output sizes."""
    channels = _numel(out_shape[:-2])  # N * C
    sizes = window_sizes if isinstance(window_sizes, list) else [window_sizes] * _numel(out_shape[-2:])
    reductions = channels * sum(s - 1 for s in sizes)
    if kind == "max":
        return {"other": reductions}
    return {"additions": reductions, "multiplications": channels * len(sizes)}


def _adaptive_windows(in_shape, out_shape) -> list[int]:
    rows = _pool_windows(in_shape[-2], out_shape[-2])
    cols = _pool_windows(in_shape[-1], out_shape[-1])
    return [r * c for r in rows for c in cols]


def _kernel_area(kernel) -> int:
    return math.prod(kernel) if isinstance(kernel, (list, tuple)) else kernel * kernel


ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LeakyReLU, nn.GELU, nn.Silu,
               nn.Hardswish, nn.Hardsigmoid, nn.Swish, nn.ELU, nn.PReLU, nn.LogSoftmax)
FREE_LAYERS = (nn.Dropout, nn.Flatten, nn.Identity)


# Paddle has two BatchNorm families: BatchNorm1D/2D/3D (and SyncBatchNorm) derive from _BatchNormBase; the older
# paddle.nn.BatchNorm, which densenet and others still use, does not. Both count the same.
BATCH_NORMS = (nn.layer.norm._BatchNormBase, nn.BatchNorm)
COUNTED_LAYERS = (nn.Conv1D, nn.Conv2D, nn.Conv3D, nn.Linear, *BATCH_NORMS, nn.MaxPool2D,
                  nn.AvgPool2D, nn.AdaptiveAvgPool2D, nn.AdaptiveMaxPool2D, *ACTIVATIONS, *FREE_LAYERS)


def _count_layer(layer, in_shape, out_shape) -> dict | None:
    """Counts for one call of a leaf layer; None for a type this module does not know."""
    out = _numel(out_shape)
    if isinstance(layer, (nn.Conv1D, nn.Conv2D, nn.Conv3D)):
        return _dot_products(out, _numel(layer.weight.shape[1:]), layer.bias is not None)
    if isinstance(layer, nn.Linear):
        return _dot_products(out, layer.weight.shape[0], layer.bias is not None)
    if isinstance(layer, BATCH_NORMS):
        return {"multiplications": out, "additions": out}
    if isinstance(layer, nn.MaxPool2D):
        return _pool_counts("max", _kernel_area(layer.ksize), out_shape)
    if isinstance(layer, nn.AvgPool2D):
        return _pool_counts("avg", _kernel_area(layer.ksize), out_shape)
    if isinstance(layer, (nn.AdaptiveAvgPool2D, nn.AdaptiveMaxPool2D)):
        kind = "max" if isinstance(layer, nn.AdaptiveMaxPool2D) else "avg"
        return _pool_counts(kind, _adaptive_windows(in_shape, out_shape), out_shape)
    if isinstance(layer, ACTIVATIONS):
        return {"other": out}
    if isinstance(layer, FREE_LAYERS):
        return {}
    return None


def _arg(args, kwargs, index, name, default=None):
    return args[index] if len(args) > index else kwargs.get(name, default)


def _count_matmul(args, kwargs, in_shape, out_shape):
    k = in_shape[-2] if _arg(args, kwargs, 2, "transpose_x", False) else in_shape[-1]
    return _dot_products(_numel(out_shape), k, bias=False)


def _count_f_conv(args, kwargs, in_shape, out_shape):
    weight = _arg(args, kwargs, 1, "weight")
    return _dot_products(_numel(out_shape), _numel(weight.shape[1:]), _arg(args, kwargs, 2, "bias") is not None)


def _count_f_linear(args, kwargs, in_shape, out_shape):
    weight = _arg(args, kwargs, 1, "weight")
    return _dot_products(_numel(out_shape), weight.shape[0], _arg(args, kwargs, 2, "bias") is not None)


def _count_f_pool(kind):
    def count(args, kwargs, in_shape, out_shape):
        return _pool_counts(kind, _kernel_area(_arg(args, kwargs, 1, "kernel_size")), out_shape)
    return count


def _count_f_adaptive(kind):
    def count(args, kwargs, in_shape, out_shape):
        return _pool_counts(kind, _adaptive_windows(in_shape, out_shape), out_shape)
    return count


def _per_element(key):
    def count(args, kwargs, in_shape, out_shape):
        return {key: _numel(out_shape)}
    return count


def _free(args, kwargs, in_shape, out_shape):
    return {}


# (namespace, attribute, label, counting rule): the functional calls a `forward` may make directly.
FUNCTIONAL = [
    *[(F, name, f"F.{name}", _per_element("other")) for name in (
        "relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax", "leaky_relu", "gelu", "silu",
        "swish", "hardswish", "hardsigmoid", "elu")],
    (F, "conv2d", "F.conv2d", _count_f_conv),
    (F, "linear", "F.linear", _count_f_linear),
    (F, "max_pool2d", "F.max_pool2d", _count_f_pool("max")),
    (F, "avg_pool2d", "F.avg_pool2d", _count_f_pool("avg")),
    (F, "adaptive_avg_pool2d", "F.adaptive_avg_pool2d", _count_f_adaptive("avg")),
    (F, "adaptive_max_pool2d", "F.adaptive_max_pool2d", _count_f_adaptive("max")),
    (F, "dropout", "F.dropout", _free),
    (paddle, "matmul", "paddle.matmul", _count_matmul),
    (paddle, "add", "paddle.add", _per_element("additions")),
    (paddle, "multiply", "paddle.multiply", _per_element("multiplications")),
    (paddle, "flatten", "paddle.flatten", _free),
    (paddle, "reshape", "paddle.reshape", _free),
    (paddle, "concat", "paddle.concat", _free),
    (paddle.Tensor, "__add__", "Tensor +", _per_element("additions")),
    (paddle.Tensor, "__radd__", "Tensor +", _per_element("additions")),
    (paddle.Tensor, "__mul__", "Tensor *", _per_element("multiplications")),
    (paddle.Tensor, "__rmul__", "Tensor *", _per_element("multiplications")),
    (paddle.Tensor, "__matmul__", "Tensor @", _count_matmul),
]


def _first_shape(obj):
    """Shape of the first tensor in a (possibly nested) argument list, or None."""
    if isinstance(obj, paddle.Tensor):
        return list(obj.shape)
    if isinstance(obj, (list, tuple)):
        for item in obj:
            shape = _first_shape(item)
            if shape is not None:
                return shape
    return None


def _params(layer) -> tuple[dict, int, int]:
    """(shapes, trainable elements, non-trainable elements) of what `layer` itself owns."""
    shapes, trainable, frozen = {}, 0, 0
    for name, p in layer.named_parameters(include_sublayers=False):
        shapes[name] = list(p.shape)
        if p.trainable and not p.stop_gradient:
            trainable += _numel(p.shape)
        else:
            frozen += _numel(p.shape)
    for name, b in layer.named_buffers(include_sublayers=False):
        if getattr(b, "persistable", True):
            shapes[name] = list(b.shape)
            frozen += _numel(b.shape)
    return shapes, trainable, frozen


def _pair(v):
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


def _total_padding(padding) -> list[int]:
    """Padding added along [height, width], from any of Paddle's forms: p, [ph, pw],
    [top, bottom, left, right], or per-axis pairs (the last two pairs are height and width)."""
    if isinstance(padding, int):
        return [2 * padding, 2 * padding]
    flat = []
    for item in padding:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    if len(flat) == 2:
        return [2 * flat[0], 2 * flat[1]]
    flat = flat[-4:]
    return [flat[0] + flat[1], flat[2] + flat[3]]


class InputMismatch(ValueError):
    """The input shape does not fit the network (too small for a kernel, wrong channels, wrong flat size)."""


def _check_fits(layer, name, in_shape):
    """Raise InputMismatch if a convolution's input is smaller than its (dilated) kernel after padding.

    Paddle 3.3.1 on CPU does not reject this itself: a Conv2D whose input is smaller than its kernel
    corrupts the heap (a `malloc()` abort, or a hang) instead of raising, so we check before it runs.
    """
    if not isinstance(layer, nn.Conv2D) or len(in_shape) != 4:
        return  # a wrong rank is reported by Paddle itself, cleanly
    padding = layer._padding
    if isinstance(padding, str):  # "SAME" always fits; "VALID" means no padding
        if padding.upper() == "SAME":
            return
        padding = 0
    for axis, size, k, p, d in zip(("height", "width"), in_shape[-2:], _pair(layer._kernel_size),
                                   _total_padding(padding), _pair(layer._dilation)):
        span = d * (k - 1) + 1
        if size + p < span:
            raise InputMismatch(
                f"input {axis} {size} at layer {name} is too small for its {k}x{k} kernel "
                f"(padding {p} in all, dilation {d}): it needs at least {span - p}")


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


MEMORY_BUDGET = 4 * 2**30  # bytes a forward pass may need; a larger batch is counted without being allocated


class InputTooLarge(ValueError):
    """The input would need more memory than the budget, and cannot be counted without allocating it."""


def _gib(n_bytes: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n_bytes >= size:
            return f"{n_bytes / size:,.1f} {unit}"
    return f"{n_bytes / 2**10:,.1f} KiB"


def activation_bytes(report: ModelReport, dtype: str = "float32") -> int:
    """An upper bound of the memory one forward pass needs: the input plus every row's output, all at once
    (a no-gradient pass frees most of them early; residual and concatenating networks keep some)."""
    itemsize = paddle.zeros([1], dtype=dtype).element_size()
    return itemsize * (_numel(report.input_shape) + sum(_numel(r.output_shape) for r in report.rows
                                                       if r.output_shape is not None))


def inspect_model(model: nn.Layer, input_shape, dtype: str = "float32", name: str | None = None,
                  memory_budget: int = MEMORY_BUDGET) -> ModelReport:
    """Run one forward pass of `model` on zeros of `input_shape` and tabulate every layer call.

    input_shape: e.g. [10, 3, 224, 224]; every size positive. Raises ValueError (InputMismatch) when the input
    does not fit the network (too small for a kernel, wrong channel count, wrong flattened size).

    A batch whose forward pass could need more than `memory_budget` bytes (4 GiB) is not allocated: the model
    runs at batch 1 and 2, and, when every count and shape grows exactly in proportion to the batch (as in any
    network that treats samples independently), the table is the batch-1 table scaled to N, exactly what the
    full pass would give; the report's `note` says so. Otherwise, or when one sample alone is too large,
    InputTooLarge says how much memory the pass would need.
    """
    input_shape = [int(s) for s in input_shape]
    if not input_shape or any(s <= 0 for s in input_shape):
        raise ValueError(f"input shape must be positive sizes, got {input_shape}")
    itemsize = paddle.zeros([1], dtype=dtype).element_size()
    sample = [1, *input_shape[1:]]
    if _numel(sample) * itemsize * 8 > memory_budget:  # before running: one sample alone is this large
        raise InputTooLarge(f"one sample of {input_shape} is {_gib(_numel(sample) * itemsize)} as {dtype}, and a "
                            f"forward pass needs several times that: above the {_gib(memory_budget)} budget")
    if input_shape[0] == 1 or len(input_shape) < 2:
        return _inspect(model, input_shape, dtype, name)
    one = _inspect(model, sample, dtype, name)
    need = activation_bytes(one, dtype) * input_shape[0]
    if need <= memory_budget:
        return _inspect(model, input_shape, dtype, name)
    if activation_bytes(one, dtype) > memory_budget:
        raise InputTooLarge(f"one sample of {input_shape} needs up to {_gib(activation_bytes(one, dtype))} "
                            f"in a forward pass: above the {_gib(memory_budget)} budget")
    return _scaled(one, _inspect(model, [2, *input_shape[1:]], dtype, name), input_shape, need, memory_budget)


_COUNTS = ("multiplications", "additions", "macs", "flops")


def _scaled(one: ModelReport, two: ModelReport, input_shape: list, need: int, budget: int) -> ModelReport:
    """The batch-N report from the batch-1 and batch-2 ones, if everything is proportional to the batch."""
    def batch_shape(s1, s2):
        if s1 is None or s2 is None:
            return s1 == s2
        return len(s1) == len(s2) and s1[1:] == s2[1:] and s2[0] == 2 * s1[0]

    proportional = len(one.rows) == len(two.rows) and all(
        (r1.name, r1.type, r1.trainable, r1.non_trainable) == (r2.name, r2.type, r2.trainable, r2.non_trainable)
        and batch_shape(r1.input_shape, r2.input_shape) and batch_shape(r1.output_shape, r2.output_shape)
        and all(getattr(r2, c) == 2 * getattr(r1, c) for c in _COUNTS)
        for r1, r2 in zip(one.rows, two.rows))
    if not proportional:
        raise InputTooLarge(f"input {input_shape} needs up to {_gib(need)} in a forward pass (budget "
                            f"{_gib(budget)}), and this model's counts do not grow in proportion to the batch, "
                            f"so they cannot be scaled from a small one: use a smaller batch")
    n = input_shape[0]
    rows = []
    for r in one.rows:
        scaled = LayerRow(**{**asdict(r), **{c: n * getattr(r, c) for c in _COUNTS}})
        for key in ("input_shape", "output_shape"):
            shape = getattr(r, key)
            if shape is not None:
                setattr(scaled, key, [n * shape[0], *shape[1:]])
        rows.append(scaled)
    note = (f"batch {n:,} counted without allocating it: its forward pass needs up to {_gib(need)} (budget "
            f"{_gib(budget)}), so the model ran at batch 1 and 2, every count and shape grew in proportion, "
            f"and the table is batch 1 scaled by {n:,}")
    return ModelReport(one.model, input_shape, rows, one.trainable_params, one.non_trainable_params, note)


def _inspect(model: nn.Layer, input_shape: list, dtype: str, name: str | None) -> ModelReport:
    """One forward pass on zeros of `input_shape` with every layer hooked: the report (see inspect_model)."""
    names = {id(layer): path for path, layer in model.named_sublayers(include_self=True)}
    layers_by_id = {id(layer): layer for layer in model.sublayers(include_self=True)}
    leaves = {id(layer) for path, layer in model.named_sublayers(include_self=True) if not layer.sublayers()}
    # Leaves of a known type count themselves; inside any other layer (a container, or a custom leaf
    # such as one that calls F.conv2d on its own parameter) the functional calls are what we count.
    known = {i for i in leaves if isinstance(layers_by_id[i], COUNTED_LAYERS)}
    rows: list[LayerRow] = []
    counted: set[int] = set()  # layers whose parameters are already in a row
    stack: list[int] = []  # ids of the layers whose forward is running, innermost last
    first_row: list[int] = []  # len(rows) when each of them started
    in_call = [False]  # inside an intercepted functional call: its own inner calls are not rows
    calls: dict[str, int] = {}  # functional calls per "<parent>:<function>", to number repeats

    def pre_hook(layer, inputs):
        stack.append(id(layer))
        first_row.append(len(rows))
        if id(layer) in leaves:
            _check_fits(layer, names[id(layer)], _first_shape(inputs) or [])

    def post_hook(layer, inputs, output):
        stack.pop()
        inner_rows = len(rows) - first_row.pop()
        if id(layer) not in leaves:
            return
        in_shape, out_shape = _first_shape(inputs), _first_shape(output)
        row = LayerRow(names[id(layer)] or "(model)", type(layer).__name__, "layer", in_shape, out_shape)
        if id(layer) not in counted:
            counted.add(id(layer))
            row.param_shapes, row.trainable, row.non_trainable = _params(layer)
        else:
            row.note = "repeat call"
        counts = _count_layer(layer, in_shape, out_shape) if out_shape is not None else None
        if counts is None and inner_rows:
            counts, row.note = {}, (row.note + "; " if row.note else "") + "counted in the calls above"
        _fill(row, counts)
        rows.append(row)

    def wrap(original, attr, label, rule):
        def call(*args, **kwargs):
            if in_call[0] or not stack or stack[-1] in known:
                return original(*args, **kwargs)
            in_call[0] = True
            try:
                output = original(*args, **kwargs)
            finally:
                in_call[0] = False
            in_shape, out_shape = _first_shape(args), _first_shape(output)
            name = f"{names.get(stack[-1]) or '(model)'}:{attr.strip('_')}"
            calls[name] = calls.get(name, 0) + 1
            name = name if calls[name] == 1 else f"{name}_{calls[name]}"
            row = LayerRow(name, label, "function", in_shape, out_shape)
            _fill(row, rule(args, kwargs, in_shape, out_shape) if out_shape is not None else None)
            rows.append(row)
            return output
        return call

    hooks = []
    patched = []
    was_training = model.training
    try:
        for layer in model.sublayers(include_self=True):
            hooks.append(layer.register_forward_pre_hook(pre_hook))
            hooks.append(layer.register_forward_post_hook(post_hook))
        for namespace, attr, label, rule in FUNCTIONAL:
            original = getattr(namespace, attr)
            patched.append((namespace, attr, original))
            setattr(namespace, attr, wrap(original, attr, label, rule))
        model.eval()
        with paddle.no_grad():
            model(paddle.zeros(input_shape, dtype=dtype))
    except InputMismatch:
        raise
    except (ValueError, RuntimeError) as e:  # Paddle reports shape errors as ValueError("(InvalidArgument) ...")
        where = (names.get(stack[-1]) or "(model)") if stack else "(model)"
        raise InputMismatch(f"input {input_shape} does not fit the network at layer {where}: {_first_line(e)}") from e
    finally:
        for namespace, attr, original in reversed(patched):
            setattr(namespace, attr, original)
        for h in hooks:
            h.remove()
        if was_training:
            model.train()

    # Parameters of layers never called as leaves (unused layers, or containers that own parameters).
    for path, layer in model.named_sublayers(include_self=True):
        shapes, trainable, frozen = _params(layer)
        if id(layer) not in counted and shapes:
            note = "not called" if id(layer) in leaves else "parameters used in its forward"
            rows.append(LayerRow(path or "(model)", type(layer).__name__, "parameters", None, None, shapes,
                                 trainable, frozen, note=note))
    # Totals over the model's distinct parameters (a parameter shared by two layers counts once).
    trainable = sum(_numel(p.shape) for p in model.parameters() if p.trainable and not p.stop_gradient)
    frozen = sum(_numel(p.shape) for p in model.parameters()) - trainable
    frozen += sum(_numel(b.shape) for b in model.buffers() if getattr(b, "persistable", True))
    return ModelReport(name or type(model).__name__, input_shape, rows, trainable, frozen)


def _fill(row: LayerRow, counts: dict | None) -> None:
    if counts is None:
        row.note = (row.note + "; " if row.note else "") + "not counted"
        return
    row.multiplications = counts.get("multiplications", 0)
    row.additions = counts.get("additions", 0)
    row.macs = counts.get("macs", 0)
    row.flops = row.multiplications + row.additions + counts.get("other", 0)


# ---- building a model from a command-line description ----
class ModelSpecError(ValueError):
    """A --model description that does not name a buildable model; the message says what is wrong."""


def parse_model_spec(text: str) -> tuple[str, str, tuple, dict]:
    """'path/file.py:Net(num_classes=5)' -> ('path/file.py', 'Net', (), {'num_classes': 5}).

    Forms: NAME, NAME(args), TARGET:NAME, TARGET:NAME(args), where TARGET is a .py file or a dotted module
    name. The arguments are parsed with ast and each is evaluated with ast.literal_eval: numbers, strings,
    True/False/None, tuples, lists, dicts and sets, never a name or a call, so a description cannot run code.
    """
    head, paren, rest = text.strip().partition("(")
    target, _, name = head.strip().rpartition(":")
    target, name = target.strip(), name.strip()
    if not name.isidentifier():
        raise ModelSpecError(f"expected NAME, NAME(args), file.py:NAME or package.module:NAME, got {text!r}")
    if not paren:
        return target, name, (), {}
    try:
        call = ast.parse(f"{name}({rest}", mode="eval").body
    except SyntaxError:
        raise ModelSpecError(f"cannot read the arguments of {text!r}: write them as in Python, "
                             f"e.g. {name}(num_classes=5)") from None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ModelSpecError(f"expected one call {name}(...), got {text!r}")
    try:
        args = tuple(ast.literal_eval(a) for a in call.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg is not None}
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ModelSpecError(f"the arguments of {text!r} must be literals (numbers, strings, True/False/None, "
                             f"lists, dicts), not names or calls") from None
    if any(k.arg is None for k in call.keywords):
        raise ModelSpecError(f"**arguments are not supported in {text!r}")
    return target, name, args, kwargs


def _load_target(target: str):
    """The module a spec names: a .py file (run as code: it is the user's own model) or an importable module."""
    is_file = Path(target).expanduser().is_file()
    if not target.endswith(".py") and (is_file or not all(part.isidentifier() for part in target.split("."))):
        # A path such as ../my_net or notes.txt: import_module's own message (a relative import, no module
        # named '/etc/x') would not say what to do.
        kind = "a file, but not a .py file" if is_file else "no module name"
        raise ModelSpecError(f"{target} is {kind}: give path/to/file.py:NAME (the file must end in .py) "
                             "or package.module:NAME")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ModelSpecError(f"no Python file at {target}: check the path")
        module_name = f"_user_model_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))  # so the file can import its neighbours
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as e:  # sys.exit() in the file: an error, not a silent exit 0
            sys.modules.pop(module_name, None)
            raise ModelSpecError(f"running {target} failed: {type(e).__name__}: {_first_line(e)}") from e
        finally:
            sys.path.remove(str(path.resolve().parent))
        return module
    try:
        return importlib.import_module(target)
    except (Exception, SystemExit) as e:
        raise ModelSpecError(f"cannot import module {target}: {type(e).__name__}: {_first_line(e)}") from e


def build_model_spec(text: str, known: dict) -> nn.Layer:
    """Build the model `text` describes (see parse_model_spec); `known` maps plain names to constructors."""
    target, name, args, kwargs = parse_model_spec(text)
    if target:
        module = _load_target(target)
        if not hasattr(module, name):
            offered = sorted(n for n, v in vars(module).items()
                             if not n.startswith("_") and isinstance(v, type) and issubclass(v, nn.Layer)
                             and v.__module__ == module.__name__)
            raise ModelSpecError(f"{target} has no {name!r}" + (f"; its layers: {', '.join(offered)}" if offered else ""))
        build = getattr(module, name)
    elif name in known:
        build = known[name]
    else:
        raise ModelSpecError(f"unknown model {name!r}; known: {', '.join(known)}")
    if not callable(build):
        raise ModelSpecError(f"{text!r} is not a class or function")
    try:
        model = build(*args, **kwargs)
    except (Exception, SystemExit) as e:  # e.g. sys:exit, which would end the run silently with status 0
        raise ModelSpecError(f"{name}(...) raised {type(e).__name__}: {_first_line(e)}") from e
    if not isinstance(model, nn.Layer):
        raise ModelSpecError(f"{text!r} built a {type(model).__name__}, not a paddle.nn.Layer")
    return model
