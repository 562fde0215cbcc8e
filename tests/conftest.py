"""Shared fixtures: every test starts from the same seeds, and never touches the network."""
import random

import numpy as np
import paddle
import pytest

SEED = 2024


@pytest.fixture(autouse=True)
def seeded():
    random.seed(SEED)
    np.random.seed(SEED)
    paddle.seed(SEED)
    paddle.set_device("cpu")
    yield


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch):
    """Point the download cache at an empty folder so tests never read or write the user's data/."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data-cache"))
