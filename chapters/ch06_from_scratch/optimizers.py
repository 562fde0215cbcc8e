"""SGD, Momentum, RMSProp and Adam in numpy (优化算法), each in Paddle's exact convention.

Every optimizer updates a dict of numpy parameters in place from a dict of gradients of the same shapes:

    opt = Adam(lr=0.002)
    opt.step(model.params, grads)

and keeps its state (velocity, running averages, step count) per parameter name in `opt.state`. The formulas
below are the ones Paddle 3.3.1 uses, as measured in `checks.paddle_conventions` (each candidate formula is
run against Paddle, and only the one written here matches, to ~1e-7):

    SGD       p <- p - lr g
    Momentum  v <- mu v + g;                    p <- p - lr v          (velocity is a plain sum, not an average)
    RMSProp   r <- rho r + (1 - rho) g^2;       p <- p - lr g / sqrt(r + eps)   (eps INSIDE the square root;
              centered=False, momentum=0: Paddle's defaults)
    Adam      m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  t <- t + 1
              p <- p - lr m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)
              (bias-corrected, eps added AFTER the correction, outside the square root)

The default hyper-parameters are Paddle's: Momentum mu = 0.9; RMSProp rho = 0.95, eps = 1e-6; Adam b1 = 0.9,
b2 = 0.999, eps = 1e-8.
"""
from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")


class Optimizer:
    """Base class: `step` calls `update(name, p, g)` for every parameter; `update` changes p in place."""

    def __init__(self, lr: float):
        self.lr = lr
        self.state: dict[str, dict] = {}

    def step(self, params: dict, grads: dict) -> None:
        for name, p in params.items():
            self.update(self.state.setdefault(name, {}), p, grads[name])

    def update(self, state: dict, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent 随机梯度下降: p <- p - lr g."""

    def update(self, state, p, g):
        # BEGIN SOLUTION
        # PROMPT: p <- p - lr g, in place (p -= ...)
        p -= self.lr * g
        # END SOLUTION


class Momentum(Optimizer):
    """Momentum 动量: v <- mu v + g, p <- p - lr v (Paddle's form; v starts at 0).

    The velocity v sums past gradients with weights mu^k, so a direction that stays the same builds up speed
    (up to 1 / (1 - mu) = 10x the gradient for mu = 0.9), while one that flips sign cancels out.
    """

    def __init__(self, lr: float, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = momentum

    def update(self, state, p, g):
        # BEGIN SOLUTION
        # PROMPT: keep state["v"] (starts at zeros): v <- momentum v + g, then p <- p - lr v
        v = state.setdefault("v", np.zeros_like(p))
        v *= self.momentum
        v += g
        p -= self.lr * v
        # END SOLUTION


class RMSProp(Optimizer):
    """RMSProp: r <- rho r + (1 - rho) g^2, p <- p - lr g / sqrt(r + eps) (Paddle: eps inside the root).

    r is a running mean of the squared gradient per element, so each element's step is scaled by the inverse
    of its own recent gradient size: steep directions take small steps, flat ones large.
    """

    def __init__(self, lr: float, rho: float = 0.95, epsilon: float = 1e-6):
        super().__init__(lr)
        self.rho, self.epsilon = rho, epsilon

    def update(self, state, p, g):
        # BEGIN SOLUTION
        # PROMPT: keep state["r"] (starts at zeros): r <- rho r + (1 - rho) g^2; p <- p - lr g / sqrt(r + epsilon)
        r = state.setdefault("r", np.zeros_like(p))
        r *= self.rho
        r += (1 - self.rho) * g * g
        p -= self.lr * g / np.sqrt(r + self.epsilon)
        # END SOLUTION


class Adam(Optimizer):
    """Adam = Momentum's average of g + RMSProp's average of g^2, both bias-corrected.

    m and v start at 0, so early averages are too small by the factors (1 - b1^t) and (1 - b2^t); dividing
    by them (bias correction 偏差修正) fixes that. eps is added to sqrt(v_hat), after the correction.
    """

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def update(self, state, p, g):
        # BEGIN SOLUTION
        # PROMPT: keep state["m"], state["v"] (zeros) and state["t"] (0); update them, bias-correct, then step
        m = state.setdefault("m", np.zeros_like(p))
        v = state.setdefault("v", np.zeros_like(p))
        state["t"] = t = state.get("t", 0) + 1
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1 ** t)
        v_hat = v / (1 - self.beta2 ** t)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.epsilon)
        # END SOLUTION


def make_optimizer(name: str, lr: float, **hyper) -> Optimizer:
    """sgd | momentum | rmsprop | adam -> the numpy optimizer, with Paddle's defaults for what `hyper` leaves out."""
    classes = {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSProp, "adam": Adam}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return classes[name](lr, **hyper)
