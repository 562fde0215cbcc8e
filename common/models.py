"""The image classifiers of chapter 2 (LeNet is reused by chapter 4): images [N, C, S, S] -> logits [N, K].

Each takes its sizes as arguments with the course's defaults, MNIST's: num_classes K = 10, in_channels C = 1
(grey), image_size S = 28. A new task changes the arguments, not the classes (e.g. LeNet(num_classes=3,
in_channels=3, image_size=32) for colour photos of three kinds of things); the sizes inside follow from them.

Every model returns logits 未归一化的分数 (no softmax): the loss, `F.cross_entropy`, applies log-softmax itself,
and prediction applies softmax once to report a probability. Applying softmax inside `forward` as well (as
the original course code did) squashes the gradients and slows training.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

N_CLASSES = 10  # the course's defaults: MNIST's ten digits, grey, 28x28
IN_CHANNELS = 1
IMAGE_SIZE = 28


class SoftmaxRegression(nn.Layer):
    """Softmax regression 多分类逻辑回归: one linear layer C*S*S -> K (default 784 -> 10).

    Parameters: C*S*S*K weights + K biases; default 784 * 10 + 10 = 7,850.
    """

    def __init__(self, num_classes: int = N_CLASSES, in_channels: int = IN_CHANNELS, image_size: int = IMAGE_SIZE):
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x):
        """x: [N, C, S, S] -> logits [N, K]"""
        return self.fc(paddle.flatten(x, 1))


class MLP(nn.Layer):
    """Multilayer perceptron 多层感知机: C*S*S -> 128 -> 64 -> K with ReLU; dropout (optional) before fc2 and fc3.

    Parameters: (C*S*S*128 + 128) + (128*64 + 64) + (64*K + K); default
    (784*128 + 128) + (128*64 + 64) + (64*10 + 10) = 100,480 + 8,256 + 650 = 109,386.
    """

    def __init__(self, dropout: float = 0.0, num_classes: int = N_CLASSES, in_channels: int = IN_CHANNELS,
                 image_size: int = IMAGE_SIZE):
        super().__init__()
        self.fc1 = nn.Linear(in_channels * image_size * image_size, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, num_classes)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        """x: [N, C, S, S] -> logits [N, K]"""
        h = F.relu(self.fc1(paddle.flatten(x, 1)))  # [N, 128]
        h = F.relu(self.fc2(self.drop(h)))  # [N, 64]
        return self.fc3(self.drop(h))  # [N, K]


class Conv2D(nn.Conv2D):
    """nn.Conv2D that adds its bias with an explicit broadcast: same parameters, same results, faster on CPU.

    Paddle's CPU conv kernel adds the bias in a slow separate pass (about a third of a LeNet training step,
    measured with paddle 3.3.1); an explicitly expanded add is much cheaper: LeNet trains about 1.6x faster.
    Exported graphs (paddle.jit.save) use Paddle's own conv, whose inference path fuses the bias anyway.
    """

    def forward(self, x):
        if not paddle.in_dynamic_mode():
            return super().forward(x)
        y = F.conv2d(x, self.weight, None, self._stride, self._padding, self._dilation, self._groups)
        if self.bias is None:
            return y
        # expand_as first: Paddle's implicit broadcast in `+` (and its gradient) is several times slower.
        return y + self.bias.reshape([1, -1, 1, 1]).expand_as(y)


def lenet_feature_size(image_size: int) -> int:
    """Side of LeNet's last feature map for S x S inputs: conv 5x5 pad 2 keeps S, pool halves it (floor),
    conv 5x5 without padding takes 4 off, pool halves again. 28 -> 28 -> 14 -> 10 -> 5."""
    side = (image_size // 2 - 4) // 2
    if image_size // 2 - 4 < 2:
        raise ValueError(f"LeNet needs images of at least 12x12 pixels (two 5x5 convolutions and two 2x2 poolings), "
                         f"got {image_size}x{image_size}")
    return side


class LeNet(nn.Layer):
    """LeNet-5 style CNN 卷积神经网络 for [N, C, S, S] -> logits [N, K] (default [N, 1, 28, 28] -> [N, 10]).

        conv 5x5, 6 channels, pad 2 -> ReLU -> max-pool 2   [N, 6, 14, 14]   (S/2)
        conv 5x5, 16 channels       -> ReLU -> max-pool 2   [N, 16, 5, 5]    (F = (S/2 - 4)/2, `lenet_feature_size`)
        linear 16*F*F = 400 -> 120 -> ReLU -> linear 120 -> 84 -> ReLU -> linear 84 -> K

    In general: conv1 6*C*25 + 6, conv2 2,416, fc1 16*F*F*120 + 120, fc2 10,164, fc3 84*K + K.
    Parameters (batch_norm=False) at the defaults, by hand:
        conv1  6*1*5*5 + 6     =    156
        conv2  16*6*5*5 + 16   =  2,416
        fc1    400*120 + 120   = 48,120
        fc2    120*84 + 84     = 10,164
        fc3    84*10 + 10      =    850
        total                  = 61,706
    batch_norm=True: convs and the hidden linears lose their bias (BatchNorm's shift beta replaces it), and
    BatchNorm2D follows each conv, BatchNorm1D each hidden linear; trainable parameters
        150 + 12 (BN 6) + 2,400 + 32 (BN 16) + 48,000 + 240 (BN 120) + 10,080 + 168 (BN 84) + 850 = 61,932,
    plus 2 * (6 + 16 + 120 + 84) = 452 running means/variances, which Paddle lists in `parameters()` as
    non-trainable (`buffers()` is empty): updated from batch statistics, not trained.
    dropout > 0: Dropout before fc2 and fc3 (the two last linears).
    """

    def __init__(self, batch_norm: bool = False, dropout: float = 0.0, num_classes: int = N_CLASSES,
                 in_channels: int = IN_CHANNELS, image_size: int = IMAGE_SIZE):
        super().__init__()
        bias = None if not batch_norm else False  # None: Paddle's default bias; False: none
        side = lenet_feature_size(image_size)
        self.conv1 = Conv2D(in_channels, 6, 5, padding=2, bias_attr=bias)
        self.conv2 = Conv2D(6, 16, 5, bias_attr=bias)
        self.fc1 = nn.Linear(16 * side * side, 120, bias_attr=bias)
        self.fc2 = nn.Linear(120, 84, bias_attr=bias)
        self.fc3 = nn.Linear(84, num_classes)
        norm2d = nn.BatchNorm2D if batch_norm else (lambda c: nn.Identity())
        norm1d = nn.BatchNorm1D if batch_norm else (lambda c: nn.Identity())
        self.bn1, self.bn2, self.bn3, self.bn4 = norm2d(6), norm2d(16), norm1d(120), norm1d(84)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        """x: [N, C, S, S] -> logits [N, K]"""
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # [N, 6, S/2, S/2]
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2)  # [N, 16, F, F]
        h = F.relu(self.bn3(self.fc1(paddle.flatten(h, 1))))  # [N, 120]
        h = F.relu(self.bn4(self.fc2(self.drop(h))))  # [N, 84]
        return self.fc3(self.drop(h))  # [N, K]


MODELS = {"softmax": SoftmaxRegression, "mlp": MLP, "lenet": LeNet}


def build_mnist_model(name: str, **kwargs) -> nn.Layer:
    """'softmax' | 'mlp' | 'lenet' -> a fresh model; kwargs go to its constructor (num_classes=, in_channels=,
    image_size=, and dropout= for mlp and lenet, batch_norm= for lenet)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


@paddle.no_grad()
def evaluate(model: nn.Layer, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> dict:
    """Mean cross-entropy and accuracy of `model` on images x [N, C, S, S], labels y [N], in eval mode
    (BatchNorm uses its running statistics, Dropout passes everything through)."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model(paddle.to_tensor(x[start:start + batch_size]))
        labels = paddle.to_tensor(y[start:start + batch_size])
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(axis=1) == labels).astype("int64").sum().item()
    return {"loss": loss_sum / len(y), "accuracy": correct / len(y)}


def count_parameters(model: nn.Layer) -> int:
    """Trainable parameters (BatchNorm's running statistics are parameters in Paddle but not trained)."""
    return sum(int(p.size) for p in model.parameters() if not p.stop_gradient)
