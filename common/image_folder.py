"""Your own images for classification: a folder with one subfolder per class (图像分类: 自己的图片).

    my_photos/
        cat/   001.jpg  002.png ...
        dog/   a.jpg ...
        fox/   ...

is the layout of `paddle.vision.datasets.DatasetFolder` (and torchvision's ImageFolder): the class names are the
subfolder names, sorted, and class i is the i-th of them. Paddle's DatasetFolder finds the classes and the files
(those with an image extension, in sorted order); every file is read with `common.image.read_image`, so a file
that is not an image is an error naming it. Then each image, whatever its size and mode, is resized to the
model's input, S x S pixels (stretched, not cropped: nothing of the picture is lost), and kept in memory.

Grey or colour is decided by the data: if every image is grey (R = G = B everywhere) the model gets 1 channel,
otherwise 3 (RGB). Pixels are standardised per channel with the mean and standard deviation of the training
split, as chapter 1 standardises its columns; `input_spec` holds those statistics, saved with the model so that
prediction (`prepare_image`) transforms a new image exactly as training did.

The validation split is stratified and shuffled with the seed (`common.mnist.stratified_split`, as for MNIST).
There is no test split: the validation accuracy is the held-out figure.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.download import DataError
from common.image import read_image
from common.mnist import content_hash

VAL_FRACTION = 0.2  # default share of each class held out for validation
MAX_LISTED = 5  # unreadable files named in one error message


@dataclass
class ImageFolderData:
    """Images float32 [N, C, S, S], standardised; labels int64 [N]; no test split (test_* are None).

    Field for field like `common.mnist.MnistData`, so a chapter's loop takes either.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: None
    test_y: None
    source: str
    class_names: list[str] = field(default_factory=list)
    input_spec: dict = field(default_factory=dict)
    fingerprint: str = ""  # sha256 of the images and labels read: what a resumed run must match

    @property
    def is_subset(self) -> bool:  # as MnistData: True when there is no test split
        return self.test_x is None


def looks_like_image_folder(path: str | os.PathLike) -> bool:
    """A folder meant as images: it holds a subfolder (a class), or image files of its own (which then get the
    error that says to sort them into class subfolders). Hidden entries do not count."""
    path = Path(path)
    if not path.is_dir():
        return False
    entries = [e for e in path.iterdir() if not e.name.startswith(".")]
    return any(e.is_dir() or e.name.lower().endswith(_extensions()) for e in entries)


def _dataset_folder(root: Path):
    """Paddle's DatasetFolder over root, reading nothing yet; hidden folders (.git, .ipynb_checkpoints) are no class."""
    from paddle.vision.datasets import DatasetFolder

    class VisibleFolders(DatasetFolder):
        def _find_classes(self, dir):
            classes = sorted(e.name for e in os.scandir(dir) if e.is_dir() and not e.name.startswith("."))
            return classes, {name: i for i, name in enumerate(classes)}

    try:
        return VisibleFolders(str(root), loader=lambda path: path)
    except RuntimeError as e:  # Paddle: "Found 0 directories in subfolders of ..." when no file has an image extension
        raise DataError(f"--data {root}: found no images ({', '.join(_extensions())}) in its class subfolders; "
                        "put each class's images in a subfolder named after the class") from e


def _extensions() -> tuple[str, ...]:
    from paddle.vision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """[H, W, 3] or [H, W] uint8, any size -> [S, S, 3] or [S, S] uint8 (area averaging when shrinking)."""
    import cv2

    shrinking = image.shape[0] >= size and image.shape[1] >= size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def read_images(root: Path, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All images of the class folders, resized: (uint8 [N, S, S, 3] RGB, labels int64 [N], class names)."""
    if not root.exists():
        raise DataError(f"--data {root}: no such folder. Give a folder with one subfolder of images per class "
                        "(e.g. my_photos/cat/*.jpg, my_photos/dog/*.jpg)")
    if not root.is_dir():
        raise DataError(f"--data {root} is a file; give a folder with one subfolder of images per class")
    classes = sorted(e.name for e in root.iterdir() if e.is_dir() and not e.name.startswith("."))
    if len(classes) < 2:
        loose = any(e.is_file() and e.name.lower().endswith(_extensions()) for e in root.iterdir())
        found = (f"only the class folder {classes[0]!r}" if classes else
                 "images but no class subfolders" if loose else "no class subfolders")
        raise DataError(f"--data {root}: {found}. Classification needs at least 2 classes, one subfolder of "
                        "images each (e.g. my_photos/cat/, my_photos/dog/)")
    dataset = _dataset_folder(root)
    counts = np.bincount(np.asarray(dataset.targets, dtype=np.int64), minlength=len(dataset.classes))
    empty = [name for name, n in zip(dataset.classes, counts) if n == 0]
    if empty:
        raise DataError(f"--data {root}: the class folder(s) {', '.join(empty)} hold no images "
                        f"({', '.join(_extensions())}); add images or remove the folder")
    images, bad = [], []
    for path, _ in dataset.samples:
        try:
            images.append(resize(read_image(path, mode="rgb"), size))
        except DataError as e:
            bad.append(str(e))
    if bad:
        listed = "; ".join(bad[:MAX_LISTED]) + (f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")
        raise DataError(f"--data {root}: {len(bad)} of {len(dataset.samples)} files cannot be read as images: "
                        f"{listed}. Remove or replace them")
    return np.stack(images), np.asarray(dataset.targets, dtype=np.int64), list(dataset.classes)


def input_spec(train_uint8: np.ndarray, channels: int, size: int) -> dict:
    """What prediction needs to prepare an image as training did: channels, size, per-channel mean and std."""
    pixels = train_uint8.astype(np.float64) / 255.0  # [N, S, S, C]
    mean, std = pixels.mean(axis=(0, 1, 2)), pixels.std(axis=(0, 1, 2))
    std = np.where(std > 1e-6, std, 1.0)  # a constant channel: centre it, do not divide by 0
    return {"kind": "image_folder", "channels": channels, "size": size,
            "mean": [round(float(m), 6) for m in mean], "std": [round(float(s), 6) for s in std]}


def to_model_input(images_uint8: np.ndarray, spec: dict) -> np.ndarray:
    """uint8 [N, S, S, 3] RGB -> float32 [N, C, S, S], grey (C = 1) or RGB (C = 3) as the spec says, standardised."""
    if spec["channels"] == 1:
        images_uint8 = images_uint8[..., :1]  # grey images have R = G = B
    x = images_uint8.astype(np.float32) / 255.0
    x = (x - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def prepare_image(path: str | os.PathLike, spec: dict) -> np.ndarray:
    """One image file -> float32 [C, S, S], as `load_image_folder` prepared the training images (for predict)."""
    return to_model_input(resize(read_image(path, mode="rgb"), spec["size"])[None], spec)[0]


def load_image_folder(root: str | os.PathLike, *, size: int, val_size: int | None = None,
                      seed: int = 0) -> ImageFolderData:
    """Read root/<class>/*.jpg|png|..., resize to size x size, split (stratified, seeded), standardise."""
    from common.mnist import stratified_split

    root = Path(root)
    images, labels, classes = read_images(root, size)
    if val_size is None:
        val_size = max(1, round(VAL_FRACTION * len(labels)))
    if not 0 < val_size < len(labels):
        raise DataError(f"--val-size must be between 1 and {len(labels) - 1} for the {len(labels)} images in "
                        f"{root}, got {val_size}")
    train_idx, val_idx = stratified_split(labels, val_size, seed)
    grey = bool(np.all(images[..., 0] == images[..., 1]) and np.all(images[..., 1] == images[..., 2]))
    spec = input_spec(images[train_idx][..., :1] if grey else images[train_idx], 1 if grey else 3, size)
    counts = ", ".join(f"{name} {n}" for name, n in zip(classes, np.bincount(labels, minlength=len(classes))))
    return ImageFolderData(
        train_x=to_model_input(images[train_idx], spec), train_y=labels[train_idx],
        val_x=to_model_input(images[val_idx], spec), val_y=labels[val_idx], test_x=None, test_y=None,
        source=f"image folder {root}: {len(classes)} classes ({counts}), {'grey' if grey else 'RGB'}, "
               f"resized to {size}x{size}",
        class_names=classes, input_spec=spec, fingerprint=content_hash(images, labels),
    )


# ---- an example folder, for trying the above without photos of your own ----

SHAPES = ("circle", "square", "triangle")


def draw_shape(kind: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """One [size, size + 8, 3] uint8 BGR picture: a filled shape of random dark colour, position and size on a
    random light background (not square, so loading must resize)."""
    import cv2

    image = np.full((size, size + 8, 3), rng.integers(170, 256, 3), np.uint8)
    colour = tuple(int(c) for c in rng.integers(0, 120, 3))
    cx, cy = size // 2 + 4 + int(rng.integers(-size // 10, size // 10 + 1)), size // 2 + int(rng.integers(-3, 4))
    r = int(size * rng.uniform(0.22, 0.38))
    if kind == "circle":
        cv2.circle(image, (cx, cy), r, colour, -1)
    elif kind == "square":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    elif kind == "triangle":
        cv2.fillPoly(image, [np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)], colour)
    else:
        raise ValueError(f"kind must be one of {SHAPES}, not {kind!r}")
    return image


def example_file_names(per_class: int = 30) -> list[str]:
    """The files write_example_folder writes, relative to its root: circle/circle_000.jpg, ..."""
    return [f"{kind}/{kind}_{i:03d}{'.png' if i % 2 else '.jpg'}" for kind in SHAPES for i in range(per_class)]


def write_example_folder(root: str | os.PathLike, per_class: int = 30, size: int = 48, seed: int = 0) -> Path:
    """root/circle/, root/square/, root/triangle/, `per_class` pictures each (PNG and JPEG alternating)."""
    import cv2

    from common.files import atomic_path

    root, rng = Path(root), np.random.default_rng(seed)
    for kind in SHAPES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            suffix = ".png" if i % 2 else ".jpg"
            _, encoded = cv2.imencode(suffix, draw_shape(kind, rng, size))
            with atomic_path(root / kind / f"{kind}_{i:03d}{suffix}") as tmp:
                tmp.write_bytes(encoded.tobytes())
    return root


def main(argv: list[str] | None = None) -> Path:
    """The command line: write the example folder, but never into a folder that holds other files (your photos)."""
    import argparse

    from common.cli import positive_int, seed_value

    parser = argparse.ArgumentParser(prog="python -m common.image_folder",
                                     description="Write an example image folder: coloured shapes, 3 classes.")
    parser.add_argument("folder", type=Path, help="where to write circle/, square/, triangle/")
    parser.add_argument("--per-class", type=positive_int, default=30, help="images per class (default: 30)")
    parser.add_argument("--seed", type=seed_value, default=0, help="seed of the drawings (default: 0)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    args = parser.parse_args(argv)
    root = args.folder
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} is a file: name a folder to write the example images in")
    if root.is_dir():
        ours = set(example_file_names(args.per_class)) | set(SHAPES)
        others = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                        if p.relative_to(root).as_posix() not in ours)
        if others:
            raise DataError(f"{root} already holds other files ({', '.join(others[:3])}"
                            f"{', ...' if len(others) > 3 else ''}): they are left alone; choose a new folder")
    print(f"wrote {3 * args.per_class} images in {write_example_folder(root, args.per_class, seed=args.seed)}")
    return root


if __name__ == "__main__":
    from common.cli import run

    run(main)
