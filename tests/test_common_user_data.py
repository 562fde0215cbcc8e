"""Your own data: a folder of class subfolders of images (common/image_folder.py) and a CSV table
(common/table.py); what they load, checked against the files written here, and their one-line errors."""
import cv2
import numpy as np
import pytest

from common.download import DataError
from common.image_folder import (SHAPES, input_spec, load_image_folder, looks_like_image_folder, prepare_image,
                                 write_example_folder)
from common.table import load_table, read_csv, write_example_csv


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_example_folder(tmp_path_factory.mktemp("shapes"), per_class=6, size=24)


@pytest.mark.points(2)
def test_image_folder_classes_split_and_pixels(shapes):
    data = load_image_folder(shapes, size=16, val_size=6, seed=0)
    assert data.class_names == sorted(SHAPES)  # subfolder names, sorted, as DatasetFolder orders them
    assert data.train_x.shape == (12, 3, 16, 16) and data.val_x.shape == (6, 3, 16, 16)
    assert np.bincount(data.val_y).tolist() == [2, 2, 2]  # stratified
    assert data.test_x is None and data.is_subset and "3 classes" in data.source
    # Standardised per channel with the training split's statistics: mean 0, std 1 there.
    np.testing.assert_allclose(data.train_x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(data.train_x.std(axis=(0, 2, 3)), 1, atol=1e-4)
    # Each image is the file resized (cv2, area) and standardised: recompute one by hand from its file.
    first = sorted((shapes / "circle").iterdir())[0]
    bgr = cv2.imread(str(first))
    by_hand = (cv2.resize(bgr[:, :, ::-1], (16, 16), interpolation=cv2.INTER_AREA) / 255.0
               - data.input_spec["mean"]) / data.input_spec["std"]
    np.testing.assert_allclose(prepare_image(first, data.input_spec), by_hand.transpose(2, 0, 1), atol=1e-5)
    everything = np.concatenate([data.train_x, data.val_x])
    assert np.abs(everything - prepare_image(first, data.input_spec)).max(axis=(1, 2, 3)).min() < 1e-6
    again = load_image_folder(shapes, size=16, val_size=6, seed=0)
    np.testing.assert_array_equal(again.val_y, data.val_y)  # the seed fixes the split
    assert not np.array_equal(load_image_folder(shapes, size=16, val_size=6, seed=1).val_x, data.val_x)


@pytest.mark.points(1)
def test_grey_images_give_one_channel_and_hidden_folders_are_no_class(tmp_path):
    for name in ("dark", "light"):
        (tmp_path / name).mkdir()
        for i in range(3):
            value = 40 + 20 * i if name == "dark" else 200 + 10 * i
            cv2.imwrite(str(tmp_path / name / f"{i}.png"), np.full((20 + i, 30, 3), value, np.uint8))
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "dark" / "notes.txt").write_text("not an image extension: skipped")
    data = load_image_folder(tmp_path, size=12, val_size=2)
    assert data.class_names == ["dark", "light"] and data.train_x.shape[1] == 1
    assert data.input_spec["channels"] == 1 and "grey" in data.source
    assert looks_like_image_folder(tmp_path) and looks_like_image_folder(tmp_path / "dark")  # images, flat
    assert not looks_like_image_folder(tmp_path / "dark" / "0.png")
    with pytest.raises(DataError, match="images but no class subfolders"):
        load_image_folder(tmp_path / "dark", size=12)


@pytest.mark.points(2)
def test_image_folder_errors_say_what_is_wrong(tmp_path, shapes):
    with pytest.raises(DataError, match="no such folder"):
        load_image_folder(tmp_path / "missing", size=16)
    one = tmp_path / "one"
    (one / "cat").mkdir(parents=True)
    cv2.imwrite(str(one / "cat" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="only the class folder 'cat'.*at least 2 classes"):
        load_image_folder(one, size=16)
    (one / "dog").mkdir()
    with pytest.raises(DataError, match="dog hold no images"):
        load_image_folder(one, size=16)
    cv2.imwrite(str(one / "dog" / "b.png"), np.zeros((8, 8, 3), np.uint8))
    (one / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    (one / "cat" / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"2 of 4 files cannot be read.*empty\.png.*broken\.jpg"):
        load_image_folder(one, size=16)
    with pytest.raises(DataError, match="--val-size must be between 1 and 17"):
        load_image_folder(shapes, size=16, val_size=18)


def test_input_spec_of_a_constant_channel_does_not_divide_by_zero():
    spec = input_spec(np.full((2, 4, 4, 3), 7, np.uint8), 3, 4)
    assert spec["std"] == [1.0, 1.0, 1.0]


@pytest.mark.points(2)
def test_table_puts_the_target_last_and_keeps_the_values(tmp_path):
    path = write_example_csv(tmp_path / "houses.csv", rows=20)
    table = load_table(path, "rooms")
    assert table.feature_names == ["size_m2", "age_years", "distance_km", "floor", "price"]
    header, values = read_csv(path)
    assert table.values.shape == (20, 6)
    np.testing.assert_allclose(table.values[:, -1], values[:, header.index("rooms")])
    np.testing.assert_allclose(table.values[:, 0], values[:, 0], rtol=1e-6)
    reference = np.loadtxt(path, delimiter=",", skiprows=1)  # numpy's own parser
    np.testing.assert_allclose(values, reference)


@pytest.mark.points(2)
@pytest.mark.parametrize("text, target, message", [
    ("a,b,price\n1,2,3\n4,x,6\n", "price", r"t\.csv:3:2 \(column 'b'\): 'x' is not a number"),
    ("a,b,price\n1,,3\n", "price", r"t\.csv:2:2 \(column 'b'\): an empty cell is not a number"),
    ("a,b,price\n1,2,3\n", "cost", r"no column 'cost' to predict; its columns are a, b, price"),
    ("a,b,price\n1,2,3\n4,5\n", "price", r"t\.csv:3: 2 cells, but the header has 3 columns"),
    ("a,b,price\n1,2,nan\n", "price", r"t\.csv:2:3 .*not a finite number"),
    ("a,b,price\n" + "1,2,3\n" * 3, "price", r"3 rows of data; at least 5"),
    ("a,b,price\n" + "".join(f"{i},7,{2 * i}\n" for i in range(6)), "price", r"the column\(s\) b hold the same value"),
    ("", "price", "is empty"),
])
def test_table_errors_name_the_place(tmp_path, text, target, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_table(path, target)


def test_a_decimal_comma_is_named_as_such(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b;price\n1,5;2;3\n")  # a spreadsheet saved where decimals are written with a comma
    with pytest.raises(DataError, match=r"t\.csv:2:1 \(column 'a'\): '1,5' has a comma; .*\(1\.5, if"):
        load_table(path, "price")


def test_a_table_separated_by_spaces_or_semicolons_reads_like_the_csv(tmp_path):
    csv_path = write_example_csv(tmp_path / "houses.csv", rows=8)
    header, values = read_csv(csv_path)
    text = csv_path.read_text()
    for name, separator in (("spaces.txt", "  "), ("semicolons.csv", ";"), ("tabs.tsv", "\t")):
        (tmp_path / name).write_text("\ufeff" + text.replace(",", separator).replace("\n", "\r\n"))  # BOM, CRLF
        assert read_csv(tmp_path / name)[0] == header
        np.testing.assert_array_equal(read_csv(tmp_path / name)[1], values)


def test_read_csv_of_some_columns_skips_the_others_text_too(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("name,b,a\nflat one,2,1.5\nflat two,4,-3\n")
    header, values = read_csv(path, columns=["a", "b"])
    assert header == ["a", "b"] and values.tolist() == [[1.5, 2.0], [-3.0, 4.0]]
    with pytest.raises(DataError, match="lacks the column\\(s\\) c; its columns are name, b, a"):
        read_csv(path, columns=["a", "c"])
    with pytest.raises(DataError, match="'flat one' is not a number"):
        read_csv(path)


def test_a_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope.csv", "price")


def test_the_offline_notice_names_the_validation_size_in_use(capsys):
    from common.mnist import load_mnist

    data = load_mnist(val_size=500, download=False)
    assert len(data.val_y) == 500
    assert "validation accuracy on 500 of those digits" in capsys.readouterr().err


def test_a_header_row_tells_a_table_from_a_housing_file(tmp_path):
    from common.table import has_header

    (tmp_path / "h.data").write_text(" 0.1  18.0  2.3\n 0.2 0 7\n")
    (tmp_path / "t.csv").write_text("a,b,price\n1,2,3\n")
    assert not has_header(tmp_path / "h.data") and has_header(tmp_path / "t.csv")
    path = write_example_csv(tmp_path / "houses.csv", rows=8)
    assert load_table(path).target == "price"  # the last column by default


def test_the_example_writers_never_overwrite_your_own_files(tmp_path, capsys):
    from common import image_folder, table
    mine = tmp_path / "mine.csv"
    mine.write_text("my,data\n1,2\n")
    with pytest.raises(DataError, match="exists and holds something else: it is left alone"):
        table.main([str(mine)])
    assert mine.read_text() == "my,data\n1,2\n"
    example = table.main([str(tmp_path / "houses.csv"), "--rows", "7"])
    assert table.main([str(example), "--rows", "7"]) == example  # the README's command run twice: fine
    assert "already holds the example" in capsys.readouterr().out
    assert read_csv(example)[1].shape == (7, 6)

    photos = tmp_path / "photos"
    (photos / "cat").mkdir(parents=True)
    (photos / "cat" / "a.jpg").write_bytes(b"my photo")
    with pytest.raises(DataError, match="already holds other files \\(cat, cat/a.jpg\\)"):
        image_folder.main([str(photos)])
    assert sorted(p.name for p in photos.rglob("*")) == ["a.jpg", "cat"]
    shapes = image_folder.main([str(tmp_path / "shapes"), "--per-class", "2"])
    image_folder.main([str(shapes), "--per-class", "2"])  # again: only its own drawings there
    written = sorted(p.relative_to(shapes).as_posix() for p in shapes.rglob("*.*"))
    assert written == sorted(image_folder.example_file_names(2)) and len(written) == 6
    for argv in (["--per-class", "0"], ["--rows", "0"]):
        with pytest.raises(SystemExit):
            (image_folder.main if "--per-class" in argv else table.main)([str(tmp_path / "x"), *argv])
