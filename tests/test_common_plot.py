"""common.plot: the curves every chapter draws."""
import cv2
import numpy as np
import pytest

from common.plot import plot_curves

BLUE = np.array([180, 119, 31])  # matplotlib's first colour, #1f77b4, as OpenCV reads it (BGR)


def blue_pixels(path) -> int:
    image = cv2.imread(str(path))
    return int((np.abs(image.astype(int) - BLUE).sum(axis=2) < 60).sum())


@pytest.mark.parametrize("epochs", [1, 2, 5])
def test_a_curve_of_any_length_is_drawn(tmp_path, epochs):
    # One curve: no legend, so the only blue on the page is the curve itself. A one-epoch run used to draw nothing.
    path = plot_curves({"train": list(np.linspace(1.0, 0.5, epochs))}, tmp_path / "loss.png")
    assert blue_pixels(path) > 20
