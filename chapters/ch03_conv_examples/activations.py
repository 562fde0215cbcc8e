"""Activation functions (激活函数), their derivatives (导数), and vanishing gradients (梯度消失).

Each activation is computed by Paddle; each derivative is written out by hand from its formula, and
checked two ways: against Paddle's autograd and against a central finite difference.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F

NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "softmax")
# Paddle's default negative_slope is 0.01, invisible on a plot; 0.1 shows the "leak" clearly.
LEAKY_SLOPE = 0.1


def activation(name: str, x: paddle.Tensor) -> paddle.Tensor:
    """Apply the named activation. softmax works along the last axis; the others element by element."""
    if name == "leaky_relu":
        return F.leaky_relu(x, negative_slope=LEAKY_SLOPE)
    if name == "softmax":
        return F.softmax(x, axis=-1)
    return getattr(F, name)(x)


def derivative(name: str, x: np.ndarray) -> np.ndarray:
    """f'(x) element by element, from the formula, for the four element-wise activations. x: any shape -> same."""
    # BEGIN SOLUTION
    # PROMPT: sigmoid' = s(1 - s); tanh' = 1 - tanh^2; relu' = 1 if x > 0 else 0; leaky_relu' = 1 or LEAKY_SLOPE
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-x))
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(x) ** 2
    if name == "relu":
        return (x > 0).astype(x.dtype)
    if name == "leaky_relu":
        return np.where(x > 0, 1.0, LEAKY_SLOPE).astype(x.dtype)
    raise ValueError(f"{name} is not element-wise; use softmax_jacobian")
    # END SOLUTION


def softmax_jacobian(z: np.ndarray) -> np.ndarray:
    """d softmax(z)_i / d z_j = s_i (δ_ij - s_j), from the formula. z: [n] -> [n, n]."""
    # BEGIN SOLUTION
    # PROMPT: with s = softmax(z), the Jacobian is diag(s) - outer(s, s)
    e = np.exp(z - z.max())
    s = e / e.sum()
    return np.diag(s) - np.outer(s, s)
    # END SOLUTION


def autograd_derivative(name: str, x: np.ndarray) -> np.ndarray:
    """f'(x) element by element, by Paddle's autograd: d(sum f(x))/dx_i = f'(x_i). x: any shape -> same."""
    t = paddle.to_tensor(x, stop_gradient=False)
    (grad,) = paddle.grad(activation(name, t).sum(), t)
    return grad.numpy()


def autograd_softmax_jacobian(z: np.ndarray) -> np.ndarray:
    """The softmax Jacobian by autograd, one output at a time. z: [n] -> [n, n]."""
    t = paddle.to_tensor(z, stop_gradient=False)
    s = activation("softmax", t)
    rows = [paddle.grad(s[i], t, retain_graph=True)[0].numpy() for i in range(len(z))]
    return np.stack(rows)


def finite_difference(fn, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central difference (f(x + eps) - f(x - eps)) / 2eps of an element-wise fn, for every element of x (float64)."""
    return (fn(x + eps) - fn(x - eps)) / (2 * eps)


def numeric_softmax_jacobian(z: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Column j = (softmax(z + eps e_j) - softmax(z - eps e_j)) / 2eps, with Paddle's softmax. z: [n] -> [n, n]."""
    def f(v):
        return activation("softmax", paddle.to_tensor(v)).numpy()

    cols = [(f(z + eps * e) - f(z - eps * e)) / (2 * eps) for e in np.eye(len(z))]
    return np.stack(cols, axis=1)


def check_derivatives(seed: int = 0, n: int = 101) -> dict:
    """Largest |formula - finite difference| and |formula - autograd| per activation, in float64.

    Points within 1e-3 of 0 are left out: relu and leaky relu have a kink there, where neither the
    derivative nor a finite difference across it is defined.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5, 5, n)
    x = x[np.abs(x) > 1e-3]
    result = {}
    for name in NAMES:
        if name == "softmax":
            z = rng.normal(size=6)
            formula = softmax_jacobian(z)
            numeric, auto = numeric_softmax_jacobian(z), autograd_softmax_jacobian(z)
        else:
            formula = derivative(name, x)
            numeric = finite_difference(lambda v: activation(name, paddle.to_tensor(v)).numpy(), x)
            auto = autograd_derivative(name, x)
        result[name] = {
            "vs_finite_difference": float(np.abs(formula - numeric).max()),
            "vs_autograd": float(np.abs(formula - auto).max()),
        }
    return result


def curves(x: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (f(x), f'(x)) on a grid x: [n], for plotting.

    softmax maps a vector to a vector, so it is drawn along one slice: softmax([x, 0])[0] and its derivative
    with respect to x. (That slice is exactly sigmoid(x): softmax generalises the sigmoid to many classes.)
    """
    out = {}
    for name in NAMES:
        if name == "softmax":
            pairs = np.stack([x, np.zeros_like(x)], axis=1)  # [n, 2]
            s = activation("softmax", paddle.to_tensor(pairs)).numpy()[:, 0]
            ds = np.array([softmax_jacobian(p)[0, 0] for p in pairs])
            out[name] = (s, ds)
        else:
            out[name] = (activation(name, paddle.to_tensor(x)).numpy(), derivative(name, x))
    return out


def vanishing_gradients(depth: int = 10, width: int = 64, batch: int = 32, seed: int = 0) -> dict[str, list[float]]:
    """Gradient norm of each layer's weight in a stack of `depth` linear layers, with sigmoid and with relu.

    Both stacks use the same weights (Kaiming-normal: std sqrt(2 / width), no bias) and the same input
    x: [batch, width]; only the activation differs. The loss is the sum of the outputs. Returns
    name -> [||dL/dW_1||, ..., ||dL/dW_depth||], layer 1 nearest the input. Backpropagation multiplies by
    f'(.) once per layer, and sigmoid' <= 1/4, so the sigmoid stack's gradients shrink layer by layer
    towards the input; relu' is 1 wherever a unit is active.
    """
    rng = np.random.default_rng(seed)  # a local generator: leaves the global seeds of the run untouched
    weights = rng.normal(0.0, np.sqrt(2.0 / width), size=(depth, width, width)).astype(np.float32)
    x = paddle.to_tensor(rng.normal(size=(batch, width)).astype(np.float32))
    norms = {}
    for name in ("sigmoid", "relu"):
        ws = [paddle.to_tensor(w, stop_gradient=False) for w in weights]
        h = x
        for w in ws:
            h = activation(name, h @ w)
        grads = paddle.grad(h.sum(), ws)
        norms[name] = [g.norm().item() for g in grads]
    return norms
