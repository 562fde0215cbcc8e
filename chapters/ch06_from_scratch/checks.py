"""Every hand-written piece of the chapter against an independent computation: finite differences or Paddle.

    gradient_check_numeric(activation)   hand gradients vs central finite differences, float64, every parameter entry
    gradient_check_autograd(activation)  hand backward vs Paddle's loss.backward() on the same weights and batch
    cross_entropy_check()                numpy cross-entropy vs paddle.nn.functional.cross_entropy (mean, per sample)
    optimizer_match(name)                numpy optimizer vs paddle.optimizer.*, 20 steps on the same gradients
    paddle_conventions()                 which textbook variant of each update rule Paddle uses (measured)
    weight_decay_check()                 loss + wd * sum(W**2) by hand vs paddle.regularizer.L2Decay: the factor 2
    embedding_check()                    paddle.nn.Embedding == one_hot(ids) @ W; its gradient rows
    accumulation_check()                 two backward() calls without clear_grad() == the sum of the two gradients
    paddle_mlp(model)                    the equivalent paddle.nn model with the numpy weights copied in

All return plain dicts of floats, so the chapter prints them, metrics.json stores them and the tests assert them.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F

from chapters.ch06_from_scratch.network import MLP, cross_entropy, l2_gradient, l2_penalty, loss_and_gradients, one_hot
from chapters.ch06_from_scratch.optimizers import make_optimizer

OPTIMIZER_STEPS = 20
# Hyper-parameters for the optimizer match, chosen so that a wrong convention shows: gradients spread over
# five orders of magnitude (1e-5 .. 1) meet epsilons large enough to matter for the small ones.
MATCH_HYPER = {
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.05, "momentum": 0.9},
    "rmsprop": {"lr": 0.01, "rho": 0.9, "epsilon": 1e-6},
    "adam": {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-4},
}


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def relative_error(a, b) -> float:
    """max |a - b| / max(|a|, |b|) over all entries: 0 for equal arrays, ~1e-7 for float32 round-off."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-30))


def small_problem(activation: str, *, inputs=12, hidden=7, classes=5, n=8, seed=0, dtype=np.float64):
    """A small random network and batch: small enough to perturb every parameter entry one by one."""
    rng = np.random.default_rng(seed)
    model = MLP(inputs, hidden, classes, activation, seed=seed, dtype=dtype)
    for p in model.params.values():  # non-zero biases, so their gradients are exercised too
        p += rng.normal(0.0, 0.3, p.shape).astype(dtype)
    x = rng.normal(size=(n, inputs)).astype(dtype)
    labels = rng.integers(0, classes, n)
    return model, x, labels


# ---- gradients 梯度 ----

def gradient_check_numeric(activation: str, *, loss: str = "cross_entropy", wd: float = 0.01, h: float = 1e-6,
                           seed: int = 0) -> dict:
    """Hand gradients vs central differences (L(p + h) - L(p - h)) / 2h, float64, every entry of every parameter.

    loss "cross_entropy": the training objective, mean cross-entropy + wd * sum(W**2) (backward, the loss's
    gradient and the penalty's together). loss "probe": L = sum(logits * R) for a fixed random R, whose
    dL/dlogits is R: the backward pass alone, whatever the loss code does.
    Returns per parameter and overall the largest relative error, max |hand - numeric| / max |gradient|:
    ~1e-9 when right, ~1 when a term is wrong. A ReLU kink between p - h and p + h would spoil one entry;
    with random inputs that has probability ~1e-6.
    """
    model, x, labels = small_problem(activation, seed=seed)
    if loss == "cross_entropy":
        _, grads, _ = loss_and_gradients(model, x, labels, wd)

        def objective() -> float:
            return cross_entropy(model.forward(x), labels) + l2_penalty(model.params, wd)
    elif loss == "probe":
        probe = np.random.default_rng(seed + 1).normal(size=(len(x), model.params["b2"].size))
        model.forward(x)
        grads = model.backward(probe)

        def objective() -> float:
            return float(np.sum(model.forward(x) * probe))
    else:
        raise ValueError(f"loss must be cross_entropy or probe, not {loss!r}")

    errors = {}
    for name, p in model.params.items():
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            saved = p[i]
            p[i] = saved + h
            up = objective()
            p[i] = saved - h
            down = objective()
            p[i] = saved
            numeric[i] = (up - down) / (2 * h)
        errors[name] = relative_error(grads[name], numeric)
    return {"max_relative_error": max(errors.values()), "per_parameter": errors}


def paddle_mlp(model: MLP) -> paddle.nn.Layer:
    """paddle.nn.Sequential(Linear, ReLU | Sigmoid, Linear) holding a copy of the numpy model's weights.

    paddle.nn.Linear stores weight as [in_features, out_features] and computes x @ weight + bias: the numpy layout.
    """
    W1, W2 = model.params["W1"], model.params["W2"]
    act = paddle.nn.ReLU() if model.activation == "relu" else paddle.nn.Sigmoid()
    net = paddle.nn.Sequential(paddle.nn.Linear(*W1.shape), act, paddle.nn.Linear(*W2.shape))
    for layer, (w, b) in ((net[0], ("W1", "b1")), (net[2], ("W2", "b2"))):
        layer.weight.set_value(model.params[w].astype(np.float32))
        layer.bias.set_value(model.params[b].astype(np.float32))
    return net


def gradient_check_autograd(activation: str, *, inputs=784, hidden=100, n=32, seed=0) -> dict:
    """Hand gradients vs Paddle autograd (loss.backward()) for the same weights and batch, in float32.

    The chapter-size network (784 -> 100 -> 10). Returns the largest relative error per parameter and overall
    (float32 round-off: ~1e-6).
    """
    model, x, labels = small_problem(activation, inputs=inputs, hidden=hidden, classes=10, n=n, seed=seed,
                                     dtype=np.float32)
    _, grads, logits = loss_and_gradients(model, x, labels)
    net = paddle_mlp(model)
    paddle_logits = net(paddle.to_tensor(x))
    F.cross_entropy(paddle_logits, paddle.to_tensor(labels)).backward()
    paddle_grads = {"W1": net[0].weight.grad, "b1": net[0].bias.grad, "W2": net[2].weight.grad, "b2": net[2].bias.grad}
    errors = {name: relative_error(grads[name], g.numpy()) for name, g in paddle_grads.items()}
    return {"max_relative_error": max(errors.values()), "per_parameter": errors,
            "logits_max_abs_diff": max_abs(logits, paddle_logits.numpy())}


# ---- the loss 损失 ----

def cross_entropy_check(*, n: int = 16, classes: int = 10, seed: int = 0) -> dict:
    """numpy cross-entropy vs paddle.nn.functional.cross_entropy, mean and per sample ("none").

    The logits include large values (+-50): a naive log(sum(exp(z))) would overflow in float32 there.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, (n, classes)).astype(np.float32)
    z[0, 3], z[1, 0] = 50.0, -50.0
    labels = rng.integers(0, classes, n)
    zt, yt = paddle.to_tensor(z), paddle.to_tensor(labels)
    per_sample = F.cross_entropy(zt, yt, reduction="none").numpy().reshape(-1)
    mean = F.cross_entropy(zt, yt).item()
    return {"mean_abs_diff": abs(cross_entropy(z, labels) - mean),
            "per_sample_max_abs_diff": max_abs(cross_entropy(z, labels, reduction="none"), per_sample),
            "mean": mean}


# ---- optimizers 优化算法 ----

def optimizer_gradients(shape=(3, 4), steps: int = OPTIMIZER_STEPS, seed: int = 0) -> tuple[np.ndarray, list]:
    """A starting parameter and `steps` gradients whose entries span 1e-5 .. 1 in size, with random signs."""
    rng = np.random.default_rng(seed)
    p0 = rng.normal(size=shape)
    grads = [rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-5, 0, shape) for _ in range(steps)]
    return p0, grads


def paddle_optimizer(name: str, parameters, lr: float, **hyper) -> paddle.optimizer.Optimizer:
    """The paddle.optimizer equivalent of `optimizers.make_optimizer(name, lr, **hyper)`."""
    if name == "sgd":
        return paddle.optimizer.SGD(lr, parameters=parameters)
    if name == "momentum":
        return paddle.optimizer.Momentum(lr, momentum=hyper.get("momentum", 0.9), parameters=parameters)
    if name == "rmsprop":  # centered=False and momentum=0.0 are Paddle's defaults: plain RMSProp
        return paddle.optimizer.RMSProp(lr, rho=hyper.get("rho", 0.95), epsilon=hyper.get("epsilon", 1e-6),
                                        momentum=0.0, centered=False, parameters=parameters)
    if name == "adam":
        return paddle.optimizer.Adam(lr, beta1=hyper.get("beta1", 0.9), beta2=hyper.get("beta2", 0.999),
                                     epsilon=hyper.get("epsilon", 1e-8), parameters=parameters)
    raise ValueError(f"unknown optimizer {name!r}")


def paddle_steps(name: str, p0: np.ndarray, grads: list, **hyper) -> np.ndarray:
    """Step paddle.optimizer.<name> once per gradient, starting from p0; returns the final parameter (float64).

    The gradient is handed to Paddle through the loss sum(p * g), whose gradient with respect to p is g.
    """
    p = paddle.create_parameter(list(p0.shape), "float32")
    p.set_value(p0.astype(np.float32))
    opt = paddle_optimizer(name, [p], **hyper)
    for g in grads:
        (p * paddle.to_tensor(g.astype(np.float32))).sum().backward()
        opt.step()
        opt.clear_grad()
    return p.numpy().astype(np.float64)


def optimizer_match(name: str, *, steps: int = OPTIMIZER_STEPS, seed: int = 0) -> dict:
    """The numpy optimizer and Paddle's, stepped `steps` times from the same start on the same gradients.

    Returns the largest |numpy - paddle| over the parameter's entries after the last step (float32 round-off
    in Paddle: ~1e-7), and how far the parameter moved (so a tiny mismatch is not a tiny step in disguise).
    """
    hyper = MATCH_HYPER[name]
    p0, grads = optimizer_gradients(steps=steps, seed=seed)
    params = {"p": p0.copy()}
    opt = make_optimizer(name, **hyper)
    for g in grads:
        opt.step(params, {"p": g})
    reference = paddle_steps(name, p0, grads, **hyper)
    return {"max_abs_diff": max_abs(params["p"], reference), "moved": max_abs(reference, p0), "steps": steps,
            "hyper": hyper}


def paddle_conventions(steps: int = OPTIMIZER_STEPS, seed: int = 1) -> dict:
    """Which textbook variant of each rule Paddle 3.3.1 implements: each candidate vs Paddle, 20 steps.

    Written out here, independently of optimizers.py. Large epsilons make the variants differ clearly.
    Returns {rule: {"distance": {candidate: max |candidate - paddle|}, "matches": closest candidate}}.
    """
    p0, grads = optimizer_gradients(steps=steps, seed=seed)
    lr = 0.01

    def run(update, state_names):
        p, state = p0.copy(), {k: np.zeros_like(p0) for k in state_names}
        for t, g in enumerate(grads, 1):
            p = update(p, g, state, t)
        return p

    def momentum(form):
        def update(p, g, s, t):
            s["v"] = 0.9 * s["v"] + (g if form == "sum" else 0.1 * g)
            return p - lr * s["v"]
        return update

    def rmsprop(inside):
        def update(p, g, s, t):
            s["r"] = 0.9 * s["r"] + 0.1 * g * g
            return p - lr * g / (np.sqrt(s["r"] + 1e-2) if inside else np.sqrt(s["r"]) + 1e-2)
        return update

    def adam(form):
        def update(p, g, s, t):
            s["m"] = 0.9 * s["m"] + 0.1 * g
            s["v"] = 0.999 * s["v"] + 0.001 * g * g
            if form == "eps after bias correction":
                return p - lr * (s["m"] / (1 - 0.9 ** t)) / (np.sqrt(s["v"] / (1 - 0.999 ** t)) + 1e-2)
            if form == "eps before bias correction":  # lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), m / (sqrt(v) + eps)
                return p - lr * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * s["m"] / (np.sqrt(s["v"]) + 1e-2)
            return p - lr * s["m"] / (np.sqrt(s["v"]) + 1e-2)  # no bias correction
        return update

    candidates = {
        "momentum": ({"v = mu v + g": momentum("sum"), "v = mu v + (1 - mu) g": momentum("average")},
                     lambda: paddle_steps("momentum", p0, grads, lr=lr, momentum=0.9), ["v"]),
        "rmsprop": ({"g / sqrt(r + eps)": rmsprop(True), "g / (sqrt(r) + eps)": rmsprop(False)},
                    lambda: paddle_steps("rmsprop", p0, grads, lr=lr, rho=0.9, epsilon=1e-2), ["r"]),
        "adam": ({"eps after bias correction": adam("eps after bias correction"),
                  "eps before bias correction": adam("eps before bias correction"),
                  "no bias correction": adam("none")},
                 lambda: paddle_steps("adam", p0, grads, lr=lr, epsilon=1e-2), ["m", "v"]),
    }
    result = {}
    for rule, (forms, paddle_run, state_names) in candidates.items():
        reference = paddle_run()
        distance = {form: max_abs(run(update, state_names), reference) for form, update in forms.items()}
        result[rule] = {"distance": distance, "matches": min(distance, key=distance.get)}
    return result


# ---- weight decay 权重衰减 ----

def weight_decay_check(wd: float = 0.05, lr: float = 0.1, seed: int = 0) -> dict:
    """One SGD step on loss + wd * sum(W**2) by hand vs Paddle's L2Decay on the weight (not the bias).

    Paddle's L2Decay(c) adds c * W to the weight's gradient: it is the gradient of (c / 2) * sum(W**2). So the
    course's `loss + wd * sum(W**2)` is L2Decay(2 * wd), and L2Decay(wd) is half that penalty.
    (A float weight_decay=c given to a paddle.optimizer means L2Decay(c) on every parameter, biases included.)
    Returns the mismatch of the step for L2Decay(2 wd) (~1e-8) and L2Decay(wd) (clearly not 0).
    """
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x, labels = rng.normal(size=(8, 5)), rng.integers(0, 3, 8)
    # By hand, in numpy: the data gradient of a linear softmax classifier plus the gradient of the penalty.
    p = np.exp(x @ W + b - (x @ W + b).max(axis=1, keepdims=True))
    dz = (p / p.sum(axis=1, keepdims=True) - one_hot(labels, 3)) / len(labels)
    decay = l2_gradient({"W1": W, "b1": b}, wd)
    W_hand, b_hand = W - lr * (x.T @ dz + decay["W1"]), b - lr * (dz.sum(axis=0) + decay["b1"])
    mismatch = {}
    for name, coeff in (("L2Decay(2 * wd)", 2 * wd), ("L2Decay(wd)", wd)):
        layer = paddle.nn.Linear(5, 3, weight_attr=paddle.ParamAttr(regularizer=paddle.regularizer.L2Decay(coeff)))
        layer.weight.set_value(W.astype(np.float32))
        layer.bias.set_value(b.astype(np.float32))
        opt = paddle.optimizer.SGD(lr, parameters=layer.parameters())
        F.cross_entropy(layer(paddle.to_tensor(x.astype(np.float32))), paddle.to_tensor(labels)).backward()
        opt.step()
        mismatch[name] = max(max_abs(layer.weight.numpy(), W_hand), max_abs(layer.bias.numpy(), b_hand))
    return {"max_abs_diff": mismatch, "wd": wd}


# ---- embeddings 嵌入 ----

def embedding_check(num: int = 10, dim: int = 4, seed: int = 0) -> dict:
    """paddle.nn.Embedding(num, dim) is a table lookup: out = W[ids] = one_hot(ids) @ W, ids [N] -> [N, dim].

    Its gradient dL/dW = one_hot(ids)^T @ dL/dout: zero in every row whose id was not looked up, and for a
    row looked up k times the sum of those k upstream gradients. A bias per item (as in recommendation models)
    is one more embedding of width 1. Returns the differences and which rows got a gradient.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([3, 7, 3, 0, 9, 3])  # 3 three times; 1, 2, 4, 5, 6, 8 never
    table = paddle.nn.Embedding(num, dim)
    table.weight.set_value(rng.normal(size=(num, dim)).astype(np.float32))
    W = table.weight.numpy()
    out = table(paddle.to_tensor(ids))
    upstream = rng.normal(size=(len(ids), dim)).astype(np.float32)
    (out * paddle.to_tensor(upstream)).sum().backward()  # dL/dout = upstream
    grad = table.weight.grad.numpy()
    codes = one_hot(ids, num)
    untouched = sorted(set(range(num)) - set(ids.tolist()))
    return {
        "lookup_vs_one_hot_matmul": max_abs(out.numpy(), codes @ W),
        "grad_vs_one_hot_transpose": max_abs(grad, codes.T @ upstream),
        "untouched_rows_max_abs_grad": float(np.abs(grad[untouched]).max()),
        "rows_with_gradient": [int(i) for i in np.flatnonzero(np.abs(grad).sum(axis=1))],
        "looked_up": sorted(set(ids.tolist())),
    }


# ---- why gradients are cleared 梯度清零 ----

def accumulation_check(seed: int = 0) -> dict:
    """Paddle adds each backward() into .grad: two backward() calls without clear_grad() hold g_A + g_B.

    Returns the largest |accumulated - (g_A + g_B)| (float32 round-off) and |accumulated - g_B| (what a step
    would have used had the gradient been cleared: clearly not 0).
    """
    rng = np.random.default_rng(seed)
    layer = paddle.nn.Linear(6, 3)
    batches = [(paddle.to_tensor(rng.normal(size=(5, 6)).astype(np.float32)), paddle.to_tensor(rng.integers(0, 3, 5)))
               for _ in range(2)]
    separate = []
    for x, y in batches:  # each batch's own gradient, cleared in between
        F.cross_entropy(layer(x), y).backward()
        separate.append(layer.weight.grad.numpy().copy())
        layer.clear_gradients()
    for x, y in batches:  # the same two batches, clear_grad left out
        F.cross_entropy(layer(x), y).backward()
    accumulated = layer.weight.grad.numpy()
    return {"accumulated_vs_sum": max_abs(accumulated, separate[0] + separate[1]),
            "accumulated_vs_last_batch": max_abs(accumulated, separate[1])}
