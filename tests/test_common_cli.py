"""The shared command line: defaults, validation of values, and one-line errors for user mistakes."""
import argparse

import pytest

from common.cli import dropout_probability, make_parser, run
from common.download import DataError
from common.runtime import DeviceError, gpu_available, set_device


@pytest.mark.points(1)
def test_shared_options_and_defaults():
    cfg = make_parser("chx", "demo", epochs=3, lr=0.5, batch_size=8).parse_args([])
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, cfg.device) == (3, 0.5, 8, 0, "auto")
    assert str(cfg.out) == "runs/chx" and cfg.data is None


@pytest.mark.points(1)
def test_options_a_chapter_does_not_use_are_absent():
    cfg = make_parser("chx", "demo", epochs=None, lr=None, batch_size=None, data_help=None).parse_args([])
    assert not any(hasattr(cfg, name) for name in ("epochs", "lr", "batch_size", "data"))


@pytest.mark.points(1)
@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "must be positive"),
    (["--epochs", "two"], "expected a whole number"),
    (["--lr", "-1"], "must be a positive finite number"),
    (["--lr", "nan"], "must be a positive finite number"),
    (["--batch-size", "1.5"], "expected a whole number"),
    (["--device", "tpu"], "invalid choice"),
])
def test_bad_values_are_rejected_with_a_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        make_parser("chx", "demo").parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--out="], ["--out", ""], ["--out", "  "]])
def test_an_empty_out_is_refused_not_taken_as_the_current_folder(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        make_parser("chx", "demo").parse_args(argv)
    assert exit_.value.code == 2 and "argument --out: is empty" in capsys.readouterr().err


@pytest.mark.points(1)
@pytest.mark.parametrize("error", [DataError("no such file: x"), DeviceError("no GPU")])
def test_run_turns_user_errors_into_one_line(error):
    def main():
        raise error

    with pytest.raises(SystemExit) as exit_:
        run(main)
    assert exit_.value.code == f"error: {error}"


@pytest.mark.points(1)
def test_device_choice():
    assert set_device("cpu") == "cpu"
    assert set_device("auto") == ("gpu:0" if gpu_available() else "cpu")
    if not gpu_available():
        with pytest.raises(DeviceError, match="paddlepaddle-gpu"):
            set_device("gpu")
    set_device("cpu")


@pytest.mark.points(1)
def test_dropout_probability_accepts_0_up_to_but_not_1():
    assert dropout_probability("0") == 0.0 and dropout_probability("0.5") == 0.5
    for bad in ("1", "-0.1", "1.5", "half"):
        with pytest.raises(argparse.ArgumentTypeError):
            dropout_probability(bad)
