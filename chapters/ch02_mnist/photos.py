"""Realistic phone photos of handwritten digits, made from MNIST digits, to measure `predict` on (测试照片生成).

    photo, info = make_photo(digit_28x28_uint8, np.random.default_rng(0))   # JPEG-decoded [H, W, 3] uint8, RGB
    write_photos(digits, labels, folder, seed=0)                             # one .jpg per digit

A photo of a digit written on paper differs from an MNIST image in every way that a reader must undo:
the digit is dark ink on light paper, big (hundreds of pixels) and off-centre; the lighting falls off across
the sheet and towards its corners; the paper has grain; the phone was held a little crooked, focused a little
off, saved as JPEG, and often under warm or cool light. `PhotoStyle` holds the ranges each of these is drawn
from (the defaults are the issue's measured-photo ranges); every photo's own draw is returned as `info`, so a
test can rebuild what the digit should look like.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.files import atomic_path


@dataclass(frozen=True)
class PhotoStyle:
    """The ranges a photo's look is drawn from (uniformly, unless said otherwise)."""

    digit_size: tuple[int, int] = (120, 260)  # pixels, the 28x28 MNIST field scaled to this
    ink: tuple[int, int] = (20, 90)  # grey level of the ink (0 black)
    paper: tuple[int, int] = (150, 235)  # grey level of the paper under full light
    sheet: tuple[float, float] = (1.6, 3.0)  # sheet side / digit size, drawn for width and height separately
    gradient: float = 0.45  # lighting falls off by up to this fraction from one side of the sheet to the other
    vignette: float = 0.25  # and by up to this fraction more in the corners
    noise: tuple[float, float] = (2.0, 8.0)  # paper grain: std of the grey-level noise
    rotation: float = 12.0  # degrees, either way
    blur: tuple[float, float] = (0.6, 1.8)  # Gaussian blur sigma in pixels (focus, hand shake)
    jpeg_quality: tuple[int, int] = (55, 85)
    tinted: float = 0.5  # fraction of photos taken under coloured light (a per-channel gain)
    light_ink: bool = False  # True: light chalk on a dark board instead (the other polarity)
    ruled: bool = False  # True: ruled notebook paper, lines 2 pixels thick every 25-40 pixels, 25-45% darker
    shadow: float = 0.0  # a soft-edged shadow (a hand, the phone) over part of the sheet, this much darker at most
    surround: tuple[int, int] | None = None  # grey level of a table around the sheet (10% of the photo each side)


def make_photo(digit: np.ndarray | None, rng: np.random.Generator, style: PhotoStyle = PhotoStyle()
               ) -> tuple[np.ndarray, dict]:
    """digit [28, 28] uint8, white on black (MNIST), or None for a blank sheet -> (photo [H, W, 3] uint8 RGB, info).

    info holds what was drawn: digit_size, the digit's box (x, y, w, h) on the sheet, angle, ink, paper, ...
    The photo has been through JPEG (encoded and decoded again), as a file from a phone would have.
    """
    size = int(rng.integers(style.digit_size[0], style.digit_size[1] + 1))
    sheet_w, sheet_h = (int(size * rng.uniform(*style.sheet)) for _ in range(2))
    angle = float(rng.uniform(-style.rotation, style.rotation))
    # Ink coverage 0..1 of the digit, scaled up smoothly (cubic) and turned: the pen's stroke, not its pixels.
    field = np.zeros((size, size), np.float32) if digit is None else \
        cv2.resize(digit.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_CUBIC)
    turn = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, 1.0)
    field = np.clip(cv2.warpAffine(field, turn, (size, size), flags=cv2.INTER_LINEAR), 0.0, 1.0)
    x = int(rng.integers(0, sheet_w - size + 1))  # anywhere on the sheet: off-centre
    y = int(rng.integers(0, sheet_h - size + 1))
    coverage = np.zeros((sheet_h, sheet_w), np.float32)
    coverage[y:y + size, x:x + size] = field

    ink, paper = float(rng.uniform(*style.ink)), float(rng.uniform(*style.paper))
    paper_grey = np.full((sheet_h, sheet_w), paper, np.float32)
    if style.ruled:  # printed lines under the ink
        spacing, shade = int(rng.integers(25, 41)), float(rng.uniform(0.25, 0.45))
        for row in range(int(rng.integers(0, spacing)), sheet_h - 1, spacing):
            paper_grey[row:row + 2] *= 1.0 - shade
    grey = paper_grey + (ink - paper_grey) * coverage  # ink laid on paper
    grey = grey + rng.normal(0.0, rng.uniform(*style.noise), grey.shape)  # paper grain (before the light)
    if style.light_ink:  # chalk on a board: the same drawing, light on dark
        grey = 255.0 - grey
    grey = grey * lighting(sheet_h, sheet_w, rng, style)
    if style.shadow > 0:
        grey = grey * shadow(sheet_h, sheet_w, rng, style.shadow)
    if style.surround is not None:  # the sheet lies on a table that the photo also shows
        margin = int(0.1 / 0.8 * max(sheet_h, sheet_w))  # the sheet fills the middle 80% of the photo
        table = rng.uniform(*style.surround) + rng.normal(0.0, 3.0, (sheet_h + 2 * margin, sheet_w + 2 * margin))
        table[margin:margin + sheet_h, margin:margin + sheet_w] = grey
        grey, x, y = table, x + margin, y + margin
    sigma = float(rng.uniform(*style.blur))
    grey = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), sigma)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    tint = None
    if rng.random() < style.tinted:  # warm lamp or cool daylight: each channel its own gain
        tint = rng.uniform(0.7, 1.0, 3)
        tint /= tint.max()
        rgb = rgb * tint
    quality = int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1))
    photo = jpeg_round_trip(np.clip(np.round(rgb), 0, 255).astype(np.uint8), quality)
    info = {"digit_size": size, "box": (x, y, size, size), "sheet": (sheet_w, sheet_h), "angle": angle,
            "ink": ink, "paper": paper, "blur": sigma, "jpeg_quality": quality,
            "tint": None if tint is None else tint.round(3).tolist(), "blank": digit is None, "ruled": style.ruled}
    return photo, info


def shadow(h: int, w: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """[h, w] light level: 1, falling by up to `strength` beyond a soft edge at a random place and angle."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    along = (xs - w / 2) * np.cos(direction) + (ys - h / 2) * np.sin(direction)
    edge, softness = rng.uniform(-0.2, 0.2) * max(h, w), rng.uniform(0.01, 0.05) * max(h, w)
    return 1.0 - rng.uniform(0.5, 1.0) * strength / (1.0 + np.exp(-(along - edge) / softness))


def lighting(h: int, w: int, rng: np.random.Generator, style: PhotoStyle) -> np.ndarray:
    """[h, w] light level in 0..1: a linear fall-off in a random direction times a vignette darkening the corners."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = ys / max(h - 1, 1) - 0.5, xs / max(w - 1, 1) - 0.5  # -0.5..0.5 across the sheet
    direction = rng.uniform(0, 2 * np.pi)
    along = xs * np.cos(direction) + ys * np.sin(direction)  # about -0.7..0.7
    along = (along - along.min()) / (along.max() - along.min())  # 0 on the lit side, 1 on the far side
    light = 1.0 - rng.uniform(0, style.gradient) * along
    radius2 = (xs ** 2 + ys ** 2) / 0.5  # 0 in the centre, 1 in the corners
    return light * (1.0 - rng.uniform(0, style.vignette) * radius2)


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode [H, W, 3] RGB uint8 as JPEG at `quality` and decode it again: the artefacts, without a file."""
    ok, encoded = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1])


def write_photo(path: str | os.PathLike, photo: np.ndarray) -> Path:
    """Save an RGB photo as a maximum-quality JPEG (it already carries its own JPEG artefacts), atomically."""
    ok, encoded = cv2.imencode(".jpg", photo[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return Path(path)


def write_photos(digits: np.ndarray, labels: np.ndarray, folder: str | os.PathLike, *, seed: int = 0,
                 style: PhotoStyle = PhotoStyle()) -> list[dict]:
    """One photo per digit [N, 28, 28] as folder/photo_<i>_<label>.jpg; returns each photo's info with its path."""
    rng = np.random.default_rng(seed)
    written = []
    for i, (digit, label) in enumerate(zip(digits, labels)):
        photo, info = make_photo(digit, rng, style)
        path = write_photo(Path(folder) / f"photo_{i:03d}_{int(label)}.jpg", photo)
        written.append({"path": str(path), "label": int(label), **info})
    return written
