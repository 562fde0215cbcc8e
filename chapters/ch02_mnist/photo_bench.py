"""How well does `predict` read photos? Accuracy on generated phone photos next to the same digits clean.

    python -m chapters.ch02_mnist.photo_bench                       # 1,300 photos, about 45 s
    python -m chapters.ch02_mnist.photo_bench --photos 100 --save --out runs/ch02_mnist/photo_samples   # and the photos

The digits are the validation split of the chapter's own data (`train.load_data` with the run's seed: digits
the model never trained on); --seed draws the photos' looks. Each is
photographed by `photos.make_photo` (ink on paper, uneven light, grain, rotation, blur, JPEG, tints), read by
`predict.read_digit` and classified by the exported model. Printed, from one run:
1. the model's accuracy on the clean 28x28 digits, and on their photos (a photo without a digit found is wrong);
2. the same for variants (`VARIANTS`): the other polarity (chalk on a board), ruled paper, the sheet on a
   dark table or a white desk, a shadow, a light pencil, a small digit;
3. blank sheets (no digit, same lighting and noise): how many the reader rightly answers "no digit found".
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np

from chapters.ch02_mnist import predict, train
from chapters.ch02_mnist.photos import PhotoStyle, make_photo, write_photo
from common.cli import make_parser, positive_int, run
from common.files import write_json
from common.mnist import MEAN, STD
from common.runtime import set_device

NAME = "ch02_mnist.photo_bench"
TARGET = 0.95  # the goal on photos with the chapter's default LeNet
VARIANTS = {  # file tag -> (what the row shows, the photos' style)
    "board": ("chalk on a board (light on dark)", PhotoStyle(light_ink=True)),
    "ruled": ("ruled notebook paper", PhotoStyle(ruled=True)),
    "table": ("the sheet on a dark table", PhotoStyle(surround=(30, 80))),
    "desk": ("the sheet on a white desk", PhotoStyle(surround=(235, 250))),
    "shadow": ("a shadow over part of the sheet", PhotoStyle(shadow=0.5)),
    "pencil": ("a light pencil (ink grey 110-140)", PhotoStyle(ink=(110, 140))),
    "small": ("a small digit (50-70 px), big sheet", PhotoStyle(digit_size=(50, 70), sheet=(6.0, 10.0))),
}


def validation_digits(offline: bool, data: Path | None, run_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The chapter's validation split as MNIST pixels: images uint8 [N, 28, 28], labels [N].

    run_seed: the seed the model was trained with, which chose its validation split (so these digits are
    ones the model has never trained on).
    """
    argv = ["--seed", str(run_seed)] + (["--offline"] if offline else []) + (["--data", str(data)] if data else [])
    mnist = train.load_data(train.parse_args(argv))["data"]
    # load_data hands out normalised images; undo `common.mnist.normalize` (exact after rounding).
    pixels = np.round((mnist.val_x[:, 0] * STD + MEAN) * 255.0)
    return np.clip(pixels, 0, 255).astype(np.uint8), mnist.val_y


def read_photos(digits, rng, style: PhotoStyle, save_dir: Path | None, tag: str, labels=None):
    """Photograph each digit (None: a blank sheet) and read it back -> (28x28 images or None, seconds per read)."""
    images, seconds = [], 0.0
    for i, digit in enumerate(digits):
        photo, _ = make_photo(digit, rng, style)
        if save_dir is not None:
            label = "blank" if labels is None else int(labels[i])
            write_photo(save_dir / f"{tag}_{i:03d}_{label}.jpg", photo)
        start = time.perf_counter()
        reading = predict.read_digit(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
        seconds += time.perf_counter() - start
        images.append(reading.image)
    return images, seconds / max(len(digits), 1)


def photo_accuracy(model, images: list, labels: np.ndarray) -> tuple[float, int]:
    """Accuracy over all photos (no digit found counts as wrong), and how many had no digit found."""
    found = [i for i, image in enumerate(images) if image is not None]
    correct = 0
    if found:
        predicted, _ = predict.classify(model, np.stack([images[i] for i in found]))
        correct = int(np.sum(predicted == labels[found]))
    return correct / len(labels), len(labels) - len(found)


def main(argv: list[str] | None = None) -> dict:
    parser = make_parser(NAME, "Accuracy of ch02 predict on generated phone photos of validation digits.",
                         epochs=None, lr=None, batch_size=None,
                         data_help="MNIST IDX folder, as for `python -m chapters.ch02_mnist --data`")
    parser.set_defaults(out=Path("runs") / "ch02_mnist" / "photo_bench")
    parser.add_argument("--model", type=Path, default=predict.DEFAULT_RUN, help="run folder of the model to test")
    parser.add_argument("--photos", type=positive_int, default=500, help="photos of dark ink on paper")
    parser.add_argument("--variants", type=int, default=100,
                        help="photos of each variant (chalk on a board, ruled paper, a table around the sheet, ...)")
    parser.add_argument("--blank", type=int, default=100, help="photos of blank sheets (no digit)")
    parser.add_argument("--save", action="store_true", help="also write every photo to OUT/photos/")
    cfg = parser.parse_args(argv)
    if cfg.variants < 0 or cfg.blank < 0:
        parser.error("--variants and --blank count photos: 0 or more")
    set_device(cfg.device)
    model = predict.load_predictor(cfg.model)
    metrics = predict.run_metrics(cfg.model)
    print(predict.describe_model(cfg.model, metrics))
    run_seed = metrics.get("seed", 0)
    digits, labels = validation_digits(cfg.offline, cfg.data, run_seed if isinstance(run_seed, int) else 0)
    n = min(cfg.photos, len(labels))
    m = min(cfg.variants, len(labels))
    save_dir = cfg.out / "photos" if cfg.save else None
    rng = np.random.default_rng(cfg.seed)

    clean, _ = predict.classify(model, digits[:n])
    clean_accuracy = float(np.mean(clean == labels[:n]))
    paper, paper_seconds = read_photos(digits[:n], rng, PhotoStyle(), save_dir, "paper", labels)
    paper_accuracy, paper_missed = photo_accuracy(model, paper, labels[:n])
    variants = {}
    for tag, (name, style) in VARIANTS.items():  # the first m digits again, each time photographed otherwise
        images, _ = read_photos(digits[:m], rng, style, save_dir, tag, labels[:m])
        accuracy, missed = photo_accuracy(model, images, labels[:m]) if m else (float("nan"), 0)
        variants[name] = {"accuracy": accuracy, "no_digit": missed}
    variants_clean = float(np.mean(predict.classify(model, digits[:m])[0] == labels[:m])) if m else float("nan")
    blanks, _ = read_photos([None] * cfg.blank, rng, PhotoStyle(), save_dir, "blank")
    rejected = sum(image is None for image in blanks)

    print(f"{n} validation digits, clean 28x28: accuracy {clean_accuracy:.4f}")
    print(f"  the same digits photographed (ink on paper): accuracy {paper_accuracy:.4f}  "
          f"({paper_missed} with no digit found; {1000 * paper_seconds:.1f} ms per photo to read)  "
          f"target {TARGET:.2f}: {'met' if paper_accuracy >= TARGET else 'NOT met'}")
    if m:
        print(f"the first {m} of them (clean accuracy {variants_clean:.4f}), photographed otherwise:")
        for name, v in variants.items():
            print(f"  {name:40s} accuracy {v['accuracy']:.4f}  ({v['no_digit']} with no digit found)")
    if cfg.blank:
        print(f"{cfg.blank} blank sheets: {rejected} answered 'no digit found'")
    results = {"model": str(cfg.model), "photos": n, "clean_accuracy": clean_accuracy,
               "photo_accuracy": paper_accuracy, "photo_no_digit": paper_missed,
               "variant_photos": m, "variant_clean_accuracy": variants_clean, "variants": variants,
               "blank_sheets": cfg.blank, "blank_rejected": rejected, "seconds_per_photo": paper_seconds,
               "seed": cfg.seed, "style": dataclasses.asdict(PhotoStyle())}
    write_json(cfg.out / "metrics.json", results)
    print(f"wrote {cfg.out / 'metrics.json'}" + (f" and the photos in {save_dir}" if save_dir else ""))
    return results


if __name__ == "__main__":
    run(main)
