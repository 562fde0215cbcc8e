"""Chapter 2 predict on phone photos: the digit reader, the photo generator, no-digit answers, --debug, run folders.

The photos come from `chapters/ch02_mnist/photos.py` (MNIST digits drawn as ink on unevenly lit paper, grain,
blur, JPEG, tints). The reader's output is checked against the MNIST digit it was made from (the reference the
reader must reproduce), so most tests need no trained model; the few that classify use an MLP trained for one
epoch in-process (0.3 s). The accuracy goal itself (>= 95% with the default LeNet) is measured by
`python -m chapters.ch02_mnist.photo_bench`, not here.
"""
import json

import cv2
import numpy as np
import pytest

from chapters.ch02_mnist import predict, train as ch02
from chapters.ch02_mnist.photos import PhotoStyle, jpeg_round_trip, make_photo, write_photo
from common.mnist import load_subset_raw, stratified_split

STRAIGHT = PhotoStyle(rotation=0.0)  # no rotation: the reader's output can then be compared with the digit


@pytest.fixture(scope="module")
def digits():
    """20 validation digits of the offline subset (two of each class), uint8 [20, 28, 28], and their labels."""
    images, labels = load_subset_raw()
    _, val = stratified_split(labels, 1000, seed=0)
    pick = np.concatenate([val[labels[val] == d][:2] for d in range(10)])
    return images[pick], labels[pick]


@pytest.fixture(scope="module")
def straight_photos(digits):
    """(photo, info, digit) for each digit, unrotated: the first 10 ink on paper, the other 10 chalk on a board."""
    rng = np.random.default_rng(7)
    out = []
    for k, digit in enumerate(digits[0]):
        style = PhotoStyle(rotation=0.0, light_ink=k >= 10, tinted=1.0 if k % 2 else 0.0)
        photo, info = make_photo(digit, rng, style)
        out.append((photo, info, digit))
    return out


@pytest.fixture
def mlp_run(mnist_mlp_run):
    """An MLP trained for 2 epochs on the offline subset, exported (tests/conftest.py: one run for chapter 2)."""
    return mnist_mlp_run


def grey(photo):
    return cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)


def best_correlation(a, b):
    """Pearson correlation of two 28x28 images, best over shifts of up to one pixel."""
    a, b = a.astype(float), b.astype(float).ravel()
    return max(np.corrcoef(np.roll(a, (dy, dx), axis=(0, 1)).ravel(), b)[0, 1]
               for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def centre_of_mass(image):
    ys, xs = np.indices(image.shape)
    w = image.astype(float)
    return (ys * w).sum() / w.sum(), (xs * w).sum() / w.sum()


# ---- the generator ----

@pytest.mark.points(1)
def test_photos_are_seeded_and_within_the_drawn_ranges(digits):
    a, info = make_photo(digits[0][0], np.random.default_rng(3))
    b, _ = make_photo(digits[0][0], np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)  # the same seed, the same photo
    assert not np.array_equal(a, make_photo(digits[0][0], np.random.default_rng(4))[0])
    style = PhotoStyle()
    assert style.digit_size[0] <= info["digit_size"] <= style.digit_size[1]
    h, w, channels = a.shape
    assert channels == 3 and (h, w) == info["sheet"][::-1]
    for side in (w, h):
        assert style.sheet[0] <= side / info["digit_size"] < style.sheet[1] + 0.01
    x, y, size, _ = info["box"]
    assert 0 <= x <= w - size and 0 <= y <= h - size and abs(info["angle"]) <= style.rotation
    # the paper (the brightest tenth of the sheet) is lit at most as brightly as its drawn grey level
    paper = np.quantile(grey(a), 0.9)
    assert (1 - style.gradient - style.vignette) * info["paper"] - 12 <= paper <= info["paper"] + 12


# ---- the reader ----

@pytest.mark.points(3)
def test_reader_reproduces_the_mnist_digit_in_both_polarities_and_colour(straight_photos):
    """The 28x28 read from a photo is the MNIST digit again: same shape, 20-pixel box, centre of mass centred."""
    for k, (photo, info, digit) in enumerate(straight_photos):
        reading = predict.read_digit(grey(photo))
        assert reading.image is not None, f"photo {k}: {reading.reason}"
        assert reading.light_ink == (k >= 10)  # the polarity was recognised
        assert best_correlation(reading.image, digit) > 0.85, f"photo {k}"
        cy, cx = centre_of_mass(reading.image)
        assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
        rows, cols = np.nonzero(reading.image > 0)
        assert 19 <= max(np.ptp(rows), np.ptp(cols)) + 1 <= 21  # MNIST's 20x20 box, give or take anti-aliasing


@pytest.mark.points(1)
def test_ruled_paper_lines_are_not_part_of_the_digit(digits):
    """Lines across the whole sheet cut through the digit: they are removed, and the cut pieces kept together."""
    rng = np.random.default_rng(13)
    correlations = []
    for digit in digits[0][::2]:
        photo, _ = make_photo(digit, rng, PhotoStyle(rotation=0.0, ruled=True))
        reading = predict.read_digit(grey(photo))
        assert reading.image is not None
        correlations.append(best_correlation(reading.image, digit))
    # a line taken out leaves a thin gap where it crossed a stroke; lines left in would ruin the match (< 0.4)
    assert min(correlations) > 0.7 and np.median(correlations) > 0.9, correlations


@pytest.mark.points(1)
def test_a_table_or_a_shadow_around_the_digit_is_not_part_of_it(digits):
    """The sheet on a dark table or a white desk, or half in shadow: the digit read is still the digit."""
    rng = np.random.default_rng(17)
    styles = (PhotoStyle(rotation=0.0, surround=(30, 80)), PhotoStyle(rotation=0.0, surround=(235, 250)),
              PhotoStyle(rotation=0.0, shadow=0.5))
    for k, digit in enumerate(digits[0][1::3]):
        photo, _ = make_photo(digit, rng, styles[k % 3])
        reading = predict.read_digit(grey(photo))
        assert not reading.light_ink and best_correlation(reading.image, digit) > 0.8, k


@pytest.mark.points(2)
def test_reader_finds_the_digit_where_it_was_drawn(straight_photos):
    """The box on the cleaned sheet is the digit's ink box in the photo (scaled to the working size)."""
    for k, (photo, info, digit) in enumerate(straight_photos):
        reading = predict.read_digit(grey(photo))
        scale = reading.sheet.shape[1] / photo.shape[1]
        x, y, size, _ = info["box"]
        rows, cols = np.nonzero(cv2.resize(digit, (size, size), interpolation=cv2.INTER_CUBIC) > 64)
        truth = np.array([x + cols.min(), y + rows.min(), x + cols.max() + 1, y + rows.max() + 1]) * scale
        bx, by, bw, bh = reading.box
        found = np.array([bx, by, bx + bw, by + bh])
        assert np.abs(found - truth).max() <= 0.08 * size * scale + 2, f"photo {k}: {found} vs {truth}"


@pytest.mark.points(2)
def test_blank_and_noise_only_sheets_give_no_digit(digits):
    rng = np.random.default_rng(11)
    sheets = [grey(make_photo(None, rng, PhotoStyle(light_ink=k % 2 == 1, ruled=k % 3 == 2))[0]) for k in range(6)]
    sheets.append(rng.integers(0, 256, (300, 400)).astype(np.uint8))  # pure noise
    sheets.append(np.zeros((40, 40), np.uint8))  # all dark
    speckled = np.full((400, 400), 200.0)
    for y, x in rng.integers(0, 400, (300, 2)):  # pepper: 300 pen dots, none a digit
        cv2.circle(speckled, (int(x), int(y)), 2, 40, -1)
    sheets.append(jpeg_round_trip(np.repeat(speckled.astype(np.uint8)[:, :, None], 3, axis=2), 70)[:, :, 0])
    for k, sheet in enumerate(sheets):
        reading = predict.read_digit(sheet)
        assert reading.image is None and reading.box is None, f"sheet {k} read as a digit"
        assert reading.reason.startswith("no digit found")
    # ... while a digit drawn on the same kind of sheet is found
    assert predict.read_digit(grey(make_photo(digits[0][3], rng)[0])).image is not None


@pytest.mark.points(2)
def test_photos_classify_about_as_well_as_the_clean_digits(mlp_run, digits):
    """With rotation, blur, JPEG and all: the old border-median reader got 3 of 10 such photos right."""
    images, labels = digits
    model = predict.load_predictor(mlp_run)
    rng = np.random.default_rng(5)
    read = [predict.read_digit(grey(make_photo(d, rng, PhotoStyle(light_ink=k % 4 == 3))[0])).image
            for k, d in enumerate(images)]
    assert all(r is not None for r in read)
    clean = np.mean(predict.classify(model, images)[0] == labels)
    photos = np.mean(predict.classify(model, np.stack(read))[0] == labels)
    assert clean >= 0.75 and photos >= clean - 0.15, (photos, clean)


# ---- the command ----

@pytest.mark.points(2)
def test_predict_names_its_model_and_answers_no_digit_for_a_blank_sheet(mlp_run, digits, tmp_path, capsys):
    rng = np.random.default_rng(2)
    digit = write_photo(tmp_path / "digit.jpg", make_photo(digits[0][4], rng)[0])
    blank = write_photo(tmp_path / "blank.jpg", make_photo(None, rng)[0])
    predict.main([str(digit), str(blank), "--model", str(mlp_run)])
    lines = capsys.readouterr().out.splitlines()
    accuracy = json.loads((mlp_run / "metrics.json").read_text())["val_accuracy"]
    assert lines[0].startswith(f"model: {mlp_run} (mlp, validation accuracy {accuracy:.4f}")
    assert "--model" in lines[0]  # how to choose another
    assert lines[1].startswith(f"{digit}: ") and "probability" in lines[1]
    assert lines[2].startswith(f"{blank}: no digit found")

    with pytest.raises(SystemExit):  # no model there: one line that says how to get one
        predict.main([str(digit), "--model", str(tmp_path / "no_run")])
    assert "no run folder" in capsys.readouterr().err

    results = predict.main([str(digit), str(blank), "--model", str(mlp_run), "--json"])
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # stdout is pure JSON; the model line went to stderr
    assert printed == results and "model:" in captured.err
    assert printed[0]["label"] in range(10) and isinstance(printed[0]["low_confidence"], bool)
    assert printed[1]["label"] is None and printed[1]["probability"] is None
    assert printed[1]["reason"].startswith("no digit found")


@pytest.mark.points(1)
def test_low_confidence_answers_are_marked(digits, tmp_path, capsys):
    """A model with all weights zero gives every class 0.1: its answers must be marked as unsure."""
    import paddle
    from common.models import build_mnist_model
    model = build_mnist_model("softmax")
    model.set_state_dict({k: paddle.zeros_like(v) for k, v in model.state_dict().items()})
    model.eval()
    paddle.jit.save(model, str(tmp_path / "flat" / ch02.INFERENCE_PREFIX),
                    input_spec=[paddle.static.InputSpec(shape=[None, 1, 28, 28], dtype="float32")])
    image = tmp_path / "digit.png"
    cv2.imwrite(str(image), digits[0][0])
    result = predict.main([str(image), "--model", str(tmp_path / "flat")])[0]
    out = capsys.readouterr().out
    assert result["probability"] == pytest.approx(0.1) and result["low_confidence"] is True
    assert "low confidence" in out and "no metrics.json" in out  # and it says it knows nothing of this model
    sure = {"path": "b.png", "label": 7, "probability": 0.97, "low_confidence": False}
    assert "low confidence" not in predict.answer_line(sure)


@pytest.mark.points(2)
def test_debug_dir_holds_the_cleaned_sheet_and_what_the_model_saw(mlp_run, digits, tmp_path, capsys):
    rng = np.random.default_rng(9)
    photo, info = make_photo(digits[0][5], rng, STRAIGHT)
    path = write_photo(tmp_path / "photo.jpg", photo)
    seen = tmp_path / "seen"
    result = predict.main([str(path), "--model", str(mlp_run), "--debug", str(seen)])[0]
    assert f"wrote what the model saw to {seen}" in capsys.readouterr().out
    sheet = cv2.imread(str(seen / "00_photo_sheet.png"))
    model_input = cv2.imread(str(seen / "00_photo_input.png"), cv2.IMREAD_GRAYSCALE)
    expected = predict.read_digit(predict.read_image(path, mode="gray"))
    np.testing.assert_array_equal(model_input, expected.image)  # exactly the 28x28 the model classified
    assert sheet.shape[:2] == expected.sheet.shape
    red = (sheet[:, :, 2] > 200) & (sheet[:, :, 1] < 60) & (sheet[:, :, 0] < 60)
    x, y, w, h = expected.box
    ys, xs = np.nonzero(red)
    assert abs(xs.min() - x) <= 3 and abs(ys.min() - y) <= 3 and abs(xs.max() - (x + w)) <= 3  # the box
    assert predict.main([str(seen / "00_photo_input.png"), "--model", str(mlp_run)])[0]["label"] == result["label"]
    # a bare --debug after the images writes nothing; `--debug FILE` is refused with a hint
    predict.main([str(path), "--model", str(mlp_run), "--debug"])
    with pytest.raises(SystemExit):
        predict.main(["--debug", str(path), "--model", str(mlp_run)])
    assert "is a file" in capsys.readouterr().err


@pytest.mark.points(1)
def test_class_names_from_metrics_json_are_printed(mlp_run, digits, tmp_path, capsys):
    import shutil
    run = tmp_path / "named"
    shutil.copytree(mlp_run / "inference", run / "inference")
    names = [f"class-{chr(ord('a') + i)}" for i in range(10)]
    (run / "metrics.json").write_text(json.dumps({"model": "lenet", "val_accuracy": 0.5, "class_names": names}))
    image = tmp_path / "digit.png"
    cv2.imwrite(str(image), digits[0][0])
    result = predict.main([str(image), "--model", str(run)])[0]
    out = capsys.readouterr().out
    assert result["class_name"] == names[result["label"]]
    assert f"{image}: {names[result['label']]} (probability" in out


# ---- run folders ----

@pytest.mark.points(1)
def test_runs_get_their_own_folders_and_predict_defaults_to_the_lenet_run(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # `--out mine` is checked and locked where the run starts: somewhere writable
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)
    folder = {" ".join(argv): str(ch02.parse_args(argv).out) for argv in
              ([], ["--model", "mlp"], ["--model", "softmax"], ["--batch-norm"], ["--out", "mine"])}
    assert folder == {"": "runs/ch02_mnist/lenet", "--model mlp": "runs/ch02_mnist/mlp",
                      "--model softmax": "runs/ch02_mnist/softmax", "--batch-norm": "runs/ch02_mnist/lenet-bn",
                      "--out mine": "mine"}
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")  # what paddle.distributed.launch sets in every rank
    assert str(ch02.parse_args([]).out) == "runs/ch02_mnist/lenet-2ranks"
    monkeypatch.delenv("PADDLE_TRAINERS_NUM")
    assert predict.DEFAULT_RUN == ch02.parse_args([]).out  # predict loads what the plain training run wrote


@pytest.mark.points(1)
def test_the_modified_flags_block_is_dropped_and_other_lines_kept():
    text = ("warning: kept\n"
            "======================= Modified FLAGS detected =======================\n"
            "FLAGS(name='FLAGS_enable_pir_in_executor', current_value=True, default_value=False)\n"
            "=======================================================================\n"
            "also kept\n")
    assert ch02.drop_flags_block(text) == "warning: kept\nalso kept\n"
