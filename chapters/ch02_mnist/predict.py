"""Classify images of handwritten digits with the exported model (模型推理).

    python -m chapters.ch02_mnist.predict digit.png photo_of_paper.jpg [--model runs/ch02_mnist] [--json]

Any image size; white-on-black (MNIST style) or dark-on-light (ink on paper, detected from the border and
inverted). Each image is brought to MNIST's own format before the model sees it: the digit is cropped, scaled
so its longer side is 20 pixels, and placed in a 28x28 field with its centre of mass in the middle (how the
MNIST digits were made), then normalised by `common.mnist.normalize`, as in training.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Before Paddle is imported: hide its C++ INFO lines ("New Executor is Running ...") so the output is only ours.
os.environ.setdefault("GLOG_minloglevel", "1")

import cv2
import numpy as np

from common.download import DataError
from common.image import read_image
from common.image_folder import prepare_image
from common.mnist import normalize

DEFAULT_RUN = Path("runs") / "ch02_mnist"
INFERENCE_PREFIX = "inference/model"  # as written by train.save
DIGIT_BOX = 20  # MNIST digits fit a 20x20 box inside the 28x28 image
INK_THRESHOLD = 0.25  # fraction of the darkest-to-lightest range that counts as ink when cropping


def to_mnist_style(gray: np.ndarray) -> np.ndarray:
    """Grey image [H, W] uint8, either polarity, any size -> [28, 28] uint8, white digit on black, centred."""
    image = gray.astype(np.float32)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    background = float(np.median(border))
    if background > 127:  # light paper, dark ink: flip so the digit is the bright part, as in MNIST
        image, background = 255.0 - image, 255.0 - background
    ink = np.clip(image - background, 0, None)
    if ink.max() <= 0:  # a blank image: nothing to centre
        return np.zeros((28, 28), np.uint8)
    ink *= 255.0 / ink.max()  # stretch the contrast: photos of paper are rarely pure black and white
    rows, cols = np.nonzero(ink > INK_THRESHOLD * 255)
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = ink.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 wants (width, height)
    small = cv2.resize(ink, size, interpolation=cv2.INTER_AREA)
    # Place it so that its centre of mass lands on the centre of the 28x28 field.
    ys, xs = np.indices(small.shape)
    cy, cx = (ys * small).sum() / small.sum(), (xs * small).sum() / small.sum()
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    out = np.zeros((28, 28), np.float32)
    out[top:top + small.shape[0], left:left + small.shape[1]] = small
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def load_predictor(model_path: str | Path | None = None):
    """The model that `train.save` exported with paddle.jit.save: a callable images [N,1,28,28] -> logits [N,10].

    model_path: a run folder (holding inference/model.*), its model.pdparams, or the jit.save prefix itself.
    """
    import paddle

    path = Path(model_path) if model_path is not None else DEFAULT_RUN
    if path.suffix == ".pdparams":  # the run's state_dict: its exported twin is in the same run folder
        path = path.parent
    prefix = path / INFERENCE_PREFIX if path.is_dir() else path
    if not any(prefix.parent.glob(prefix.name + ".pdiparams")):
        raise DataError(f"no exported model at {prefix}(.json/.pdmodel + .pdiparams): train one first with "
                        "`python -m chapters.ch02_mnist`, or pass --model RUN_FOLDER")
    model = paddle.jit.load(str(prefix))
    model.eval()
    return model


def run_info(model_path: str | Path | None) -> dict:
    """The run's metrics.json ({} if none): "class_names" and "input" when it was trained on your own image folder."""
    path = Path(model_path) if model_path is not None else DEFAULT_RUN
    run = path if path.is_dir() else (path.parent if path.suffix == ".pdparams" else path.parent.parent)
    try:
        return json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def classify(model, images_uint8: np.ndarray, prepared: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """images [N, 28, 28] uint8 (MNIST style), or `prepared` model inputs [N, C, S, S] float32 ->
    (labels [N] int64, probabilities [N] float32 of those labels)."""
    import paddle
    import paddle.nn.functional as F

    with paddle.no_grad():
        logits = model(paddle.to_tensor(normalize(images_uint8) if prepared is None else prepared))
        probabilities = F.softmax(logits, axis=1).numpy()  # the one and only softmax
    labels = probabilities.argmax(axis=1)
    return labels, probabilities[np.arange(len(labels)), labels]


def predict_files(paths: list[str | Path], model, info: dict | None = None) -> list[dict]:
    """{"path", "label", "probability"} per readable file, {"path", "error"} per unreadable one, in order.

    info: the run's metrics.json (`run_info`); a run on your own image folder adds "class_name" and prepares
    each image as its "input" says (resized, standardised), instead of as an MNIST digit."""
    spec, names = (info or {}).get("input"), (info or {}).get("class_names")
    results, images, readable = [], [], []
    for path in paths:
        try:
            images.append(prepare_image(path, spec) if spec else to_mnist_style(read_image(path, mode="gray")))
            readable.append(len(results))
            results.append({"path": str(path)})
        except DataError as e:
            results.append({"path": str(path), "error": str(e)})
    if images:
        batch = np.stack(images)
        labels, probabilities = classify(model, batch, prepared=batch if spec else None)
        for i, label, probability in zip(readable, labels, probabilities):
            results[i].update(label=int(label), probability=round(float(probability), 4))
            if names:
                results[i]["class_name"] = names[int(label)]
    return results


def main(argv: list[str] | None = None) -> list[dict]:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m chapters.ch02_mnist.predict",
                                     description="Classify images of handwritten digits (0-9).")
    parser.add_argument("images", nargs="+", type=Path, help="image files (png, jpg, ...), any size and polarity")
    parser.add_argument("--model", type=Path, default=DEFAULT_RUN,
                        help="run folder from `python -m chapters.ch02_mnist --out` (or a jit.save prefix)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {path, label, probability}")
    cfg = parser.parse_args(argv)
    try:
        model = load_predictor(cfg.model)
    except DataError as e:
        parser.error(str(e))
    results = predict_files(cfg.images, model, run_info(cfg.model))
    if cfg.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    for r in results:
        if "error" in r:
            print(f"error: {r['error']}", file=sys.stderr)
        elif not cfg.json:
            print(f"{r['path']}: {r.get('class_name', r['label'])} (probability {r['probability']:.3f})")
    if any("error" in r for r in results):
        sys.exit(1)  # after classifying every readable file
    return results


if __name__ == "__main__":
    main()
