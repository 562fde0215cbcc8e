"""Shared fixtures: every test starts from the same seeds, with an empty data cache, and no network."""
import ipaddress
import random
import socket

import numpy as np
import paddle
import pytest

from common.grading.partial_credit import partial_credit  # noqa: F401  (a fixture for graded tests)

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


def _is_loopback(host) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Refuse name look-ups and connections beyond 127.0.0.1: a test that tries the internet fails at once,
    here and on a machine that has internet, instead of silently downloading."""
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if not _is_loopback(host):
            raise OSError(f"tests must not use the network (look-up of {host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


def pytest_collection_finish(session):
    """A test module may start slow work in the background once the tests are chosen, so that it runs beside the
    rest of the suite: tests/test_notebooks.py starts its notebooks' kernels here."""
    chosen: dict = {}
    for item in session.items:
        chosen.setdefault(getattr(item, "module", None), []).append(item)
    for module, items in chosen.items():
        start = getattr(module, "start_background_work", None)
        if callable(start):
            start(items)
