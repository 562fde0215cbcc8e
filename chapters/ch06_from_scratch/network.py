"""A two-layer network in numpy: one-hot codes, softmax cross-entropy, forward and backward by the chain rule.

    one_hot(labels, classes) / from_one_hot(codes)    独热编码 and back
    log_softmax(z), cross_entropy(z, y), cross_entropy_gradient(z, y)
    MLP: x [N, D] -> Linear(D, H) -> sigmoid | ReLU -> Linear(H, C) -> logits [N, C]
        forward(x) keeps what backward needs; backward(dlogits) returns every parameter's gradient
    l2_penalty / l2_gradient: weight decay written into the loss, wd * sum(W**2) over the weight matrices
    loss_and_gradients(model, x, y, wd): the whole training objective and its gradient

Shapes: N samples, D inputs (784 pixels), H hidden units, C classes (10 digits). Weights are stored as
W: [inputs, outputs], so a layer is `x @ W + b`, the same layout as `paddle.nn.Linear.weight`.
"""
from __future__ import annotations

import numpy as np

ACTIVATIONS = ("relu", "sigmoid")
WEIGHTS = ("W1", "W2")  # the parameters weight decay applies to (biases are left alone, as is usual)


# ---- one-hot codes 独热编码 ----

def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """Integer labels [N] in 0..classes-1 -> one-hot rows [N, classes]: row n is 1 at column labels[n], else 0."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= classes)):
        raise ValueError(f"labels must be a 1-D array of integers in 0..{classes - 1}")
    codes = np.zeros((len(labels), classes), dtype=np.float32)
    codes[np.arange(len(labels)), labels] = 1.0
    return codes


def from_one_hot(codes: np.ndarray) -> np.ndarray:
    """One-hot rows [N, C] -> integer labels [N] (the column of each row's 1; also the argmax of probabilities)."""
    return np.asarray(codes).argmax(axis=1).astype(np.int64)


# ---- softmax cross-entropy 交叉熵 ----

def log_softmax(z: np.ndarray) -> np.ndarray:
    """logits z: [N, C] -> log probabilities [N, C], log softmax(z)_k = z_k - log sum_j exp(z_j).

    Numerically stable: with m = max_j z_j, log sum_j exp(z_j) = m + log sum_j exp(z_j - m), and every
    exp(z_j - m) <= 1, so nothing overflows even for logits in the thousands.
    """
    # BEGIN SOLUTION
    # PROMPT: subtract each row's max before exp; return z - max - log(sum(exp(z - max)))
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    # END SOLUTION


def softmax(z: np.ndarray) -> np.ndarray:
    """logits [N, C] -> probabilities [N, C], each row summing to 1."""
    return np.exp(log_softmax(z))


def cross_entropy(z: np.ndarray, labels: np.ndarray, reduction: str = "mean"):
    """Softmax cross-entropy of logits z: [N, C] and integer labels [N].

    Per sample n: loss_n = -log softmax(z_n)[labels_n] (negative log-likelihood of the right class).
    reduction "none" -> [N]; "mean" -> a float, the mean over the batch (what paddle.nn.functional.cross_entropy
    returns by default).
    """
    # BEGIN SOLUTION
    # PROMPT: pick log_softmax(z)[n, labels[n]] for each row n, negate; "none" returns [N], "mean" its mean
    per_sample = -log_softmax(z)[np.arange(len(labels)), labels]
    # END SOLUTION
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return float(per_sample.mean())
    raise ValueError(f"reduction must be 'mean' or 'none', not {reduction!r}")


def cross_entropy_gradient(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """d(mean cross-entropy)/dz: [N, C] = (softmax(z) - one_hot(labels)) / N.

    Derivation, for one sample with p = softmax(z) and y its one-hot label:
        loss = -sum_k y_k log p_k = -sum_k y_k z_k + log sum_j exp(z_j)      (since sum_k y_k = 1)
        d loss / d z_j = -y_j + exp(z_j) / sum_i exp(z_i) = p_j - y_j
    and the mean over N samples divides each row by N.
    """
    # BEGIN SOLUTION
    # PROMPT: softmax(z) minus one_hot(labels), divided by the batch size N
    return (softmax(z) - one_hot(labels, z.shape[1])) / len(labels)
    # END SOLUTION


# ---- the network 模型 ----

def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), computed without overflow for large |z| (exp of a non-positive number only)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype)


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


class MLP:
    """Linear(D, H) -> sigmoid | ReLU -> Linear(H, C): x [N, D] -> logits [N, C] (no softmax: that is in the loss).

    params: W1 [D, H], b1 [H], W2 [H, C], b2 [C]. Initial weights are Gaussian with variance 2 / fan-in for ReLU
    (He) and 1 / fan-in for sigmoid (Xavier-like), so the activations neither vanish nor blow up at the start.
    """

    def __init__(self, inputs: int = 784, hidden: int = 100, classes: int = 10, activation: str = "relu",
                 seed: int = 0, dtype=np.float32):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
        rng = np.random.default_rng(seed)
        gain = 2.0 if activation == "relu" else 1.0
        self.activation = activation
        self.params = {
            "W1": rng.normal(0.0, np.sqrt(gain / inputs), (inputs, hidden)).astype(dtype),
            "b1": np.zeros(hidden, dtype=dtype),
            "W2": rng.normal(0.0, np.sqrt(1.0 / hidden), (hidden, classes)).astype(dtype),
            "b2": np.zeros(classes, dtype=dtype),
        }
        self.cache: dict = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: [N, D] -> logits [N, C]; keeps x, z1 = x W1 + b1 and a1 = act(z1) for backward."""
        p = self.params
        z1 = x @ p["W1"] + p["b1"]  # [N, H]
        a1 = relu(z1) if self.activation == "relu" else sigmoid(z1)  # [N, H]
        self.cache = {"x": x, "z1": z1, "a1": a1}
        return a1 @ p["W2"] + p["b2"]  # [N, C]

    def backward(self, dlogits: np.ndarray) -> dict:
        """Gradients of the loss with respect to every parameter, given dlogits = dL/dlogits: [N, C].

        The chain rule (链式法则), layer by layer from the output back, with the values forward kept:
            logits = a1 W2 + b2  ->  dW2 = a1^T dlogits [H, C],  db2 = sum_n dlogits [C],  da1 = dlogits W2^T [N, H]
            a1 = act(z1)         ->  dz1 = da1 * act'(z1) [N, H]   (ReLU: 1 where z1 > 0; sigmoid: a1 (1 - a1))
            z1 = x W1 + b1       ->  dW1 = x^T dz1 [D, H],        db1 = sum_n dz1 [H]
        Returns {"W1": [D, H], "b1": [H], "W2": [H, C], "b2": [C]}, the shapes of the parameters.
        """
        x, z1, a1 = self.cache["x"], self.cache["z1"], self.cache["a1"]
        # BEGIN SOLUTION
        # PROMPT: output layer first (dW2, db2, da1), then through the activation (dz1), then dW1, db1
        W2 = self.params["W2"]
        dW2 = a1.T @ dlogits
        db2 = dlogits.sum(axis=0)
        da1 = dlogits @ W2.T
        dz1 = da1 * (z1 > 0) if self.activation == "relu" else da1 * a1 * (1 - a1)
        dW1 = x.T @ dz1
        db1 = dz1.sum(axis=0)
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
        # END SOLUTION

    def predict(self, x: np.ndarray) -> np.ndarray:
        """x: [N, D] -> predicted classes [N]."""
        return self.forward(x).argmax(axis=1)

    def state(self) -> dict:
        """What `save` writes: the parameters and the activation (a string array, so np.load needs no pickle)."""
        return {**self.params, "activation": np.array(self.activation)}

    @classmethod
    def from_state(cls, state) -> "MLP":
        """Rebuild a model from `state()` (or the .npz np.load returns), checking the shapes fit together."""
        W1, W2 = np.asarray(state["W1"]), np.asarray(state["W2"])
        model = cls(W1.shape[0], W1.shape[1], W2.shape[1], str(state["activation"]), dtype=W1.dtype)
        for name in model.params:
            value = np.asarray(state[name])
            if value.shape != model.params[name].shape:
                raise ValueError(f"{name} has shape {value.shape}, expected {model.params[name].shape}")
            model.params[name] = value.copy()
        return model


# ---- weight decay 权重衰减 (L2 regularisation, written into the loss) ----

def l2_penalty(params: dict, wd: float) -> float:
    """wd * sum(W**2) over the weight matrices W1, W2: the term added to the loss."""
    return float(wd * sum(np.sum(params[name].astype(np.float64) ** 2) for name in WEIGHTS))


def l2_gradient(params: dict, wd: float) -> dict:
    """d(wd * sum W**2)/dW = 2 wd W for each weight matrix (0 for biases): in Paddle's terms L2Decay(2 * wd)."""
    return {name: (2.0 * wd * p if name in WEIGHTS else np.zeros_like(p)) for name, p in params.items()}


def loss_and_gradients(model: MLP, x: np.ndarray, labels: np.ndarray, wd: float = 0.0):
    """The training objective mean cross-entropy + wd * sum(W**2) on a batch, its gradients, and the logits.

    x: [N, D], labels [N] -> (loss float, {name: gradient shaped like the parameter}, logits [N, C]).
    """
    logits = model.forward(x)
    loss = cross_entropy(logits, labels) + l2_penalty(model.params, wd)
    grads = model.backward(cross_entropy_gradient(logits, labels))
    if wd:
        decay = l2_gradient(model.params, wd)
        grads = {name: g + decay[name] for name, g in grads.items()}
    return loss, grads, logits
