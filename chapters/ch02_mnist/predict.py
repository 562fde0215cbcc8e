"""Classify photos of handwritten digits with the exported model (模型推理): the lesson's last step.

    python -m chapters.ch02_mnist.predict photo.jpg digit.png [--model runs/ch02_mnist/lenet] [--json]
    python -m chapters.ch02_mnist.predict photo.jpg --debug runs/ch02_mnist/seen   # also save what the model saw

A model trained on MNIST only knows MNIST's format: a white digit on black, about 20 pixels tall, its centre
of mass in the middle of a 28x28 field. A phone photo of a digit on paper is none of that, so `read_digit`
first turns the photo into that format (预处理), step by step:
1. flip light-on-dark images so that the ink is the darker part (both polarities are accepted);
2. divide by an estimate of the bare paper (a morphological closing), which removes uneven lighting;
3. binarise (Otsu's threshold), take out the long straight lines of ruled paper, and keep the digit: the
   largest connected ink blobs, without specks, shadows or the table at the photo's edge;
4. MNIST's own normalisation: the digit's longer side scaled to 20 pixels, its centre of mass placed at the
   centre of 28x28, then `common.mnist.normalize` as in training.
A blank sheet gets "no digit found" instead of a guess, and an answer below LOW_CONFIDENCE is marked.
`python -m chapters.ch02_mnist.photo_bench` measures all this on generated photos.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# Before Paddle is imported: hide its C++ INFO lines ("New Executor is Running ...") so the output is only ours.
os.environ.setdefault("GLOG_minloglevel", "1")

import cv2
import numpy as np

from common.cli import run
from common.checkpoint import load_inference_model
from common.download import DataError
from common.files import atomic_path
from common.image import read_image
from common.image_folder import prepare_image
from common.mnist import normalize

DEFAULT_RUN = Path("runs") / "ch02_mnist" / "lenet"  # where `python -m chapters.ch02_mnist` writes its LeNet
INFERENCE_PREFIX = "inference/model"  # as written by train.save
DIGIT_BOX = 20  # MNIST digits fit a 20x20 box inside the 28x28 image
WORK_SIZE = 512  # the reader works on a copy whose longer side is at most this (a 12-megapixel photo is slow)
MOSTLY_DARK = 110  # a photo whose median grey is below this may be light ink on dark (a board, MNIST style);
# paper, even in the shade, is brighter
LOW_CONFIDENCE = 0.6  # below this probability an answer is marked "low confidence"
MIN_CONTRAST = 0.12  # ink must be at least 12% darker than the paper around it (paper grain is a few %)
GRAIN_SIGMAS = 8  # ... and this many standard deviations of the paper's grain above the paper
MIN_DIGIT_SIDE = 0.04  # the digit's box must span at least 4% of the photo's longer side ...
MIN_DIGIT_PIXELS = 30  # ... and hold this many ink pixels (at the working size): smaller is a speck
FAINT = 0.5  # an ink blob less than half as dark (on average) as the darkest is shading, not ink
PART_OF_DIGIT = 0.08  # a separate ink blob this big (vs the largest), near it, is a part of it (the bar of a 5)


@dataclass
class Reading:
    """What `read_digit` found: the 28x28 image for the model, or None and why not."""

    image: np.ndarray | None  # [28, 28] uint8, white digit on black, centred as MNIST; None: no digit found
    reason: str | None  # why no digit was found (None when one was)
    sheet: np.ndarray  # [h, w] uint8 the cleaned sheet at the working size: paper white, ink dark
    box: tuple[int, int, int, int] | None  # the digit's (x, y, w, h) on `sheet`
    light_ink: bool  # True when the ink was lighter than the paper (white on black, chalk on a board)


def read_digit(gray: np.ndarray) -> Reading:
    """Grey photo [H, W] uint8 of one digit, either polarity, any size -> `Reading` (the model's 28x28 input).

    1. shrink to at most WORK_SIZE pixels; flip light-on-dark images so that ink is darker than paper;
    2. remove the paper and its uneven lighting: divide by an estimate of the empty paper (`paper_level`);
    3. binarise with Otsu's threshold (never below MIN_CONTRAST), without the lines of ruled paper;
    4. keep the digit: the largest connected ink blob and the sizeable blobs near it, dropping specks,
       and blobs touching the photo's edge (the table, a shadow, the sheet's border) when others remain;
    5. MNIST's own normalisation (`mnist_box`): longer side 20 pixels, centre of mass at the centre of 28x28.
    """
    work = shrink(gray, WORK_SIZE).astype(np.float32)
    light_ink = not ink_is_dark(work)
    if light_ink:
        work = 255.0 - work
    ink = np.clip(1.0 - work / paper_level(work), 0.0, 1.0)  # 0 = bare paper, 1 = black ink
    sheet = np.round(255.0 * (1.0 - ink)).astype(np.uint8)
    level = ink_threshold(ink)
    mask = (ink >= level) & ~ruled_lines(ink >= level / 2)
    if mask.mean() > 0.5:  # "ink" is most of the image: there is no paper to write on (all dark, or no contrast)
        return Reading(None, "no digit found: no paper to be seen (the image is dark all over)", sheet, None,
                       light_ink)
    digit, box, reason = keep_digit(mask, ink)
    if digit is None:
        return Reading(None, reason, sheet, None, light_ink)
    x, y, w, h = box
    strokes = ink[y:y + h, x:x + w] * grow(digit[y:y + h, x:x + w])  # the digit's own ink, soft edges kept
    return Reading(mnist_box(strokes), None, sheet, box, light_ink)


def shrink(gray: np.ndarray, longest: int) -> np.ndarray:
    """Scale down (never up) so that the longer side is at most `longest` pixels; area averaging, no aliasing."""
    scale = longest / max(gray.shape)
    if scale >= 1:
        return gray
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def ink_is_dark(gray: np.ndarray) -> bool:
    """Is the ink darker than the paper? Yes, unless the image is mostly dark (MOSTLY_DARK) and what stands out
    is light.

    Most photos are ink on paper; a blackboard, or an MNIST-style image, is mostly dark. What stands out:
    a median over a wide window is the paper there (less than half of any window is ink), so the pixels far
    below it are dark ink and those far above it light ink (grain and JPEG noise are as often above as below).
    The first test alone keeps a dark table around a sheet of paper from flipping the sheet.
    """
    if np.median(gray) >= MOSTLY_DARK:
        return True
    local_paper = cv2.medianBlur(np.round(gray).astype(np.uint8), odd(max(gray.shape) // 6)).astype(np.float32)
    difference = gray - local_paper
    noise = 1.4826 * np.median(np.abs(difference)) + 1.0  # robust standard deviation (MAD), at least 1 grey level
    # Counted in the middle of the photo only: there the digit is, and not the corners of a sheet lying on a
    # table (the median beside a corner is the table's, so the sheet's corner would stand out as light "ink").
    h, w = gray.shape
    middle = difference[h // 5:h - h // 5, w // 5:w - w // 5]
    return np.count_nonzero(middle < -5 * noise) >= np.count_nonzero(middle > 5 * noise)


def paper_level(gray: np.ndarray) -> np.ndarray:
    """[h, w] float: the brightness the paper would have at each pixel without ink (dark ink on light paper).

    Morphological closing (闭运算: dilate, then erode) with a window wider than any pen stroke paints each
    stroke over with the paper beside it, while keeping slow changes of the light (a linear fall-off comes
    through a closing unchanged). A small median filter first keeps the grain from lifting the estimate. The
    photo is padded by repeating its edge pixels: a window cut off by the edge would take the paper from
    further in, which is brighter when the light falls off towards the edge.
    """
    side = odd(max(gray.shape) // 4)
    pad = side // 2 + 1
    smooth = cv2.medianBlur(gray.astype(np.float32), 5)  # a median keeps the sheet's edge sharp, a blur would not
    padded = cv2.copyMakeBorder(smooth, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))  # rectangular: fast at any size
    paper = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel)
    # Smooth the closing's small steps, but never upwards: a blur would lift a dark table beside the sheet.
    paper = np.minimum(paper, cv2.blur(paper, (side // 4 + 1, side // 4 + 1)))
    return np.maximum(paper[pad:-pad, pad:-pad], 1.0)


def ink_threshold(ink: np.ndarray) -> float:
    """Otsu's threshold (大津法: the split of the histogram into two classes of least spread), but at least
    MIN_CONTRAST, and far above the paper's own grain, so that a blank sheet's noise is not taken for ink."""
    level, _ = cv2.threshold(np.round(ink * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = np.median(ink)  # most of a photo is paper
    grain = 1.4826 * np.median(np.abs(ink - paper))  # its noise as a standard deviation (robust: MAD)
    return max(level / 255.0, MIN_CONTRAST, paper + GRAIN_SIGMAS * grain)


def ruled_lines(mask: np.ndarray) -> np.ndarray:
    """Straight lines across 3/4 of the photo in an ink mask (ruled or squared paper, a sheet's edge), widened.

    A morphological opening with a 1-pixel-high window 3/4 of the width long keeps exactly the horizontal runs
    at least that long (a digit's stroke is shorter even in a tightly cropped image: MNIST's digit fills 20 of
    28 pixels), and likewise vertically. Found in a mask at half the ink threshold, so that the faint edges of
    a line go with it, and widened by a pixel.
    """
    h, w = mask.shape
    ink = mask.astype(np.uint8)
    rows = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, max(3, 3 * w // 4)), np.uint8))
    cols = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((max(3, 3 * h // 4), 1), np.uint8))
    return cv2.dilate(rows | cols, np.ones((3, 3), np.uint8)) > 0


def keep_digit(mask: np.ndarray, ink: np.ndarray) -> tuple[np.ndarray | None, tuple | None, str | None]:
    """Binary ink mask [h, w] (and the ink [h, w]) -> (the digit's mask, its box (x, y, w, h), None), or
    (None, None, why not)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    h, w = mask.shape
    blobs = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= MIN_DIGIT_PIXELS]  # 0 is the paper
    # Pen strokes are all about equally dark; a much fainter blob is shading (a sheet's dim corner beside a
    # bright desk), not ink.
    darkness = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count) / np.maximum(stats[:, 4], 1)
    if blobs:
        blobs = [i for i in blobs if darkness[i] >= FAINT * max(darkness[j] for j in blobs)]
    inside = [i for i in blobs if not touches_edge(stats[i], w, h)]
    blobs = inside or blobs  # a digit cropped tightly may touch the edge: then keep what there is
    if not blobs:
        return None, None, "no digit found: no ink stands out from the paper (blank sheet, or only specks)"
    main = max(blobs, key=lambda i: stats[i, cv2.CC_STAT_AREA])
    parts = [i for i in blobs if stats[i, cv2.CC_STAT_AREA] >= PART_OF_DIGIT * stats[main, cv2.CC_STAT_AREA]]
    keep, more = [], [main]
    while more:  # grow the digit by the sizeable blobs near it (a line of ruled paper may cut it in several)
        keep += more
        x, y, bw, bh = union_box(stats, keep)
        margin = max(bw, bh) // 3
        near = (x - margin, y - margin, bw + 2 * margin, bh + 2 * margin)
        more = [i for i in parts if i not in keep and overlaps(box_of(stats[i]), near)]
    digit = np.isin(labels, keep)
    box = union_box(stats, keep)
    if max(box[2], box[3]) < MIN_DIGIT_SIDE * max(h, w):
        return None, None, (f"no digit found: the largest ink mark is {max(box[2:])} pixels, too small for a "
                            "digit (a speck, or the digit is tiny: photograph it closer)")
    return digit, box, None


def box_of(stat) -> tuple[int, int, int, int]:
    return (int(stat[cv2.CC_STAT_LEFT]), int(stat[cv2.CC_STAT_TOP]),
            int(stat[cv2.CC_STAT_WIDTH]), int(stat[cv2.CC_STAT_HEIGHT]))


def union_box(stats, ids) -> tuple[int, int, int, int]:
    """The (x, y, w, h) box around the blobs `ids`."""
    boxes = [box_of(stats[i]) for i in ids]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def touches_edge(stat, w: int, h: int) -> bool:
    x, y, bw, bh = box_of(stat)
    return x == 0 or y == 0 or x + bw == w or y + bh == h


def overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def grow(mask: np.ndarray) -> np.ndarray:
    """The mask widened by 2 pixels, so the strokes' soft (anti-aliased, blurred) edges stay with them."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)


def odd(n: int) -> int:
    return max(3, n | 1)


def mnist_box(strokes: np.ndarray) -> np.ndarray:
    """Ink [h, w] float 0..1 cropped to the digit -> [28, 28] uint8 the way MNIST was made.

    Contrast stretched so the stroke cores are white (255), longer side scaled to 20 pixels, placed in a
    28x28 field with its centre of mass in the middle.
    """
    core = np.quantile(strokes[strokes > 0], 0.9) if np.any(strokes > 0) else 1.0
    ink = np.clip(strokes / max(core, 1e-6), 0.0, 1.0) * 255.0
    h, w = ink.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 wants (width, height)
    small = cv2.resize(ink, size, interpolation=cv2.INTER_AREA)
    # Place it so that its centre of mass lands on the centre of the 28x28 field.
    ys, xs = np.indices(small.shape)
    total = max(small.sum(), 1e-6)
    cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    out = np.zeros((28, 28), np.float32)
    out[top:top + small.shape[0], left:left + small.shape[1]] = small
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def to_mnist_style(gray: np.ndarray) -> np.ndarray:
    """Grey image [H, W] uint8, either polarity, any size -> [28, 28] uint8 (all zeros when no digit is found)."""
    reading = read_digit(gray)
    return reading.image if reading.image is not None else np.zeros((28, 28), np.uint8)


def run_folder(model_path: str | Path) -> Path:
    """The run folder behind --model: the folder itself, a run's model.pdparams, or its inference/model prefix."""
    path = Path(model_path)
    if path.suffix == ".pdparams":
        return path.parent
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == Path(INFERENCE_PREFIX).parent.name else path.parent


def load_predictor(model_path: str | Path | None = None):
    """The model that `train.save` exported with paddle.jit.save: a callable images [N,1,28,28] -> logits [N,C].

    model_path: a run folder (holding inference/model.*), its model.pdparams, or the jit.save prefix itself.
    """
    path = Path(model_path) if model_path is not None else DEFAULT_RUN
    if path.suffix == ".pdparams":  # the run's state_dict: its exported twin is in the same run folder
        path = path.parent
    prefix = path / INFERENCE_PREFIX if path.is_dir() else path  # else the jit.save prefix itself
    if not any(prefix.parent.glob(prefix.name + ".pdiparams")):
        older = DEFAULT_RUN.parent / INFERENCE_PREFIX  # where runs went before each got its own folder
        hint = (f" (there is one in {DEFAULT_RUN.parent}: --model {DEFAULT_RUN.parent})"
                if path == DEFAULT_RUN and any(older.parent.glob(older.name + ".pdiparams")) else "")
        where = f"no run folder {path}" if not path.exists() else f"no exported model {prefix}.pdiparams"
        raise DataError(f"{where}: train one first with `python -m chapters.ch02_mnist` (it writes "
                        f"runs/ch02_mnist/lenet/), or pass --model RUN_FOLDER{hint}")
    return load_inference_model(prefix)  # verified first: a damaged export is a clear error, not Paddle's C++ one


def run_metrics(model_path: str | Path) -> dict:
    """The run's metrics.json (model type, accuracy, class names), or {} when there is none or it is unreadable."""
    try:
        metrics = json.loads((run_folder(model_path) / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def describe_model(model_path: str | Path, metrics: dict) -> str:
    """One line: which model answers (folder, type, validation accuracy of its run `metrics`), and how to pick
    another."""
    folder = run_folder(model_path)
    if metrics:
        accuracy = metrics.get("val_accuracy")
        facts = f"{metrics.get('model', 'unknown type')}, " + (
            f"validation accuracy {accuracy:.4f}" if isinstance(accuracy, (int, float)) else "no validation accuracy")
        test = metrics.get("test_accuracy")
        facts += f", test accuracy {test:.4f}" if isinstance(test, (int, float)) else ""
        facts += f", {metrics['epochs']} epochs" if isinstance(metrics.get("epochs"), int) else ""
    else:
        facts = "no metrics.json beside it: type and accuracy unknown"
    return f"model: {folder} ({facts}); choose another with --model RUN_FOLDER"


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


def predict_files(paths: list[str | Path], model, info: dict | None = None,
                  debug_dir: Path | None = None) -> list[dict]:
    """One dict per file, in order.

    A digit: {"path", "label" (class index), "probability", "low_confidence"} plus "class_name" when the run has
    class names; no digit found: {"path", "label": None, "probability": None, "reason"}; unreadable: {"path", "error"}.
    info: the run's metrics.json (`run_metrics`); a run on your own image folder (its "input") prepares each image
    as in its training (resized, standardised) instead of reading a digit off a photo.
    With `debug_dir`, each read photo leaves <index>_<name>_sheet.png (cleaned sheet, the digit boxed) and
    <index>_<name>_input.png (the 28x28 the model saw) there.
    """
    info = info or {}
    spec, names = info.get("input"), info.get("class_names") or None
    results, images, found = [], [], []
    for index, path in enumerate(paths):
        try:
            if spec:  # your own classes: the image as a whole, as training saw it
                images.append(prepare_image(path, spec))
                found.append(len(results))
                results.append({"path": str(path)})
                continue
            reading = read_digit(read_image(path, mode="gray"))
        except DataError as e:
            results.append({"path": str(path), "error": str(e)})
            continue
        if debug_dir is not None:
            write_debug_images(debug_dir, f"{index:02d}_{Path(path).stem}", reading)
        if reading.image is None:
            results.append({"path": str(path), "label": None, "probability": None, "reason": reading.reason})
        else:
            found.append(len(results))
            images.append(reading.image)
            results.append({"path": str(path)})
    if images:
        batch = np.stack(images)
        labels, probabilities = classify(model, batch, prepared=batch if spec else None)
        for i, label, probability in zip(found, labels, probabilities):
            results[i].update(label=int(label), probability=round(float(probability), 4),
                              low_confidence=bool(probability < LOW_CONFIDENCE))
            if names is not None:
                results[i]["class_name"] = str(names[label]) if label < len(names) else f"class {label}"
    return results


def write_debug_images(folder: Path, name: str, reading: Reading) -> list[Path]:
    """The cleaned sheet with the digit's box in red, and the model's 28x28 input, as PNG files."""
    sheet = cv2.cvtColor(reading.sheet, cv2.COLOR_GRAY2BGR)
    if reading.box is not None:
        x, y, w, h = reading.box
        cv2.rectangle(sheet, (x - 2, y - 2), (x + w + 1, y + h + 1), (0, 0, 255), 2)
    seen = reading.image if reading.image is not None else np.zeros((28, 28), np.uint8)
    return [write_png(folder / f"{name}_sheet.png", sheet), write_png(folder / f"{name}_input.png", seen)]


def write_png(path: Path, pixels: np.ndarray) -> Path:
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise DataError(f"could not encode {path} as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return path


def answer_line(r: dict) -> str:
    """The text answer for one result of `predict_files`."""
    if r["label"] is None:
        return f"{r['path']}: {r['reason']}"
    name = r.get("class_name", r["label"])
    line = f"{r['path']}: {name} (probability {r['probability']:.3f}"
    if r["low_confidence"]:
        line += f", low confidence: below {LOW_CONFIDENCE}"
        if "class_name" not in r:  # a digit read off a photo: --debug shows what the reader made of it
            line += "; check the photo with --debug DIR"
    return line + ")"


def build_parser():
    import argparse

    parser = argparse.ArgumentParser(prog="python -m chapters.ch02_mnist.predict",
                                     description="Classify photos or images of handwritten digits (0-9).")
    # nargs="*" and a check in main, so that `--debug photo.jpg` (the photo taken as DIR) gets a helpful message
    parser.add_argument("images", nargs="*", type=Path, help="image files (png, jpg, ...), any size and polarity")
    parser.add_argument("--model", type=Path, default=DEFAULT_RUN,
                        help="run folder of `python -m chapters.ch02_mnist` (or its model.pdparams or "
                             f"inference/model prefix); default {DEFAULT_RUN}, the default LeNet run")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of {path, label, probability, low_confidence} (label null and "
                             "a reason when no digit is found)")
    parser.add_argument("--debug", nargs="?", const=True, default=False, metavar="DIR",
                        help="show full tracebacks; with DIR, also write per image the cleaned sheet with the "
                             "digit's box and the 28x28 the model saw (PNG) into DIR")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    parser = build_parser()
    cfg = parser.parse_args(argv)
    debug_dir = None if isinstance(cfg.debug, bool) else Path(cfg.debug)
    if debug_dir is not None and debug_dir.is_file():  # `--debug photo.jpg`: argparse took the photo as DIR
        parser.error(f"--debug {debug_dir}: that is a file; --debug DIR takes a folder to write into. "
                     "Put a bare --debug after the images to only show tracebacks")
    if not cfg.images:
        parser.error("no image given: python -m chapters.ch02_mnist.predict IMAGE [IMAGE ...]")
    try:
        model = load_predictor(cfg.model)
    except DataError as e:
        parser.error(str(e))
    # Which model answers, before the answers (on stderr with --json, so stdout stays pure JSON).
    metrics = run_metrics(cfg.model)
    print(describe_model(cfg.model, metrics), file=sys.stderr if cfg.json else sys.stdout, flush=True)
    results = predict_files(cfg.images, model, metrics, debug_dir)
    if cfg.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    for r in results:
        if "error" in r:
            print(f"error: {r['error']}", file=sys.stderr)
        elif not cfg.json:
            print(answer_line(r))
    if debug_dir is not None:
        print(f"wrote what the model saw to {debug_dir}/ (*_sheet.png, *_input.png)",
              file=sys.stderr if cfg.json else sys.stdout)
    if any("error" in r for r in results):
        sys.exit(1)  # after classifying every readable file
    return results


if __name__ == "__main__":
    run(main)
