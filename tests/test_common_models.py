"""common/models.py: the classifiers take their sizes (classes, channels, image size); shapes and parameter counts
follow from the arguments, counted here by hand the way a reader counts them from the layer list."""
import numpy as np
import paddle
import pytest

from common.models import LeNet, MLP, SoftmaxRegression, build_mnist_model, count_parameters, lenet_feature_size

SIZES = [(10, 1, 28), (3, 3, 32), (2, 1, 12), (5, 3, 29)]  # (classes K, channels C, side S): MNIST and others


def conv_out(side, kernel, padding=0):
    return side + 2 * padding - kernel + 1


def by_hand(name, k, c, s):
    """Trainable parameters from the layer list in each class's docstring (weights + biases per layer)."""
    pixels = c * s * s
    if name == "softmax":
        return pixels * k + k
    if name == "mlp":
        return (pixels * 128 + 128) + (128 * 64 + 64) + (64 * k + k)
    side = conv_out(conv_out(s, 5, padding=2) // 2, 5) // 2  # conv pad 2, pool 2, conv, pool 2
    return (6 * c * 25 + 6) + (16 * 6 * 25 + 16) + (16 * side * side * 120 + 120) + (120 * 84 + 84) + (84 * k + k)


@pytest.mark.points(2)
@pytest.mark.parametrize("k, c, s", SIZES)
@pytest.mark.parametrize("name", ["softmax", "mlp", "lenet"])
def test_sizes_are_arguments_and_counts_follow_from_them(name, k, c, s):
    model = build_mnist_model(name, num_classes=k, in_channels=c, image_size=s)
    model.eval()
    assert list(model(paddle.zeros([2, c, s, s])).shape) == [2, k]
    assert count_parameters(model) == by_hand(name, k, c, s)


@pytest.mark.points(1)
def test_the_defaults_are_the_courses_mnist_models():
    assert count_parameters(SoftmaxRegression()) == by_hand("softmax", 10, 1, 28) == 7_850
    assert count_parameters(MLP()) == by_hand("mlp", 10, 1, 28) == 109_386
    assert count_parameters(LeNet()) == by_hand("lenet", 10, 1, 28) == 61_706
    assert lenet_feature_size(28) == 5


@pytest.mark.points(1)
def test_lenet_flatten_size_is_the_shape_its_convolutions_produce():
    for side in (12, 13, 28, 31, 64):
        model = LeNet(image_size=side)
        h = paddle.nn.functional.max_pool2d(model.conv1(paddle.zeros([1, 1, side, side])), 2)
        h = paddle.nn.functional.max_pool2d(model.conv2(h), 2)
        assert h.shape[2:] == [lenet_feature_size(side)] * 2
        assert model.fc1.weight.shape[0] == int(np.prod(h.shape[1:]))
    with pytest.raises(ValueError, match="at least 12x12"):
        LeNet(image_size=11)
