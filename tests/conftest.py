"""Shared fixtures: every test starts from the same seeds, with an empty data cache, and no network."""
import gc
import ipaddress
import itertools
import os
import random
import socket

# One thread for the math libraries, here and in every process the tests start (the notebooks' kernel, the grader's
# children, the chapters run as scripts inherit the environment), set before numpy, Paddle or OpenCV load. The tests'
# arrays are small and two cores are shared by the main thread, the background lanes and their processes: a second
# thread per library only spins waiting for work (the notebooks' kernel used 7.3 CPU-s with two, 5.1 with one, in the
# same wall time). Paddle's CPU kernels use one thread anyway; a value the user set is kept.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"):
    os.environ.setdefault(_threads, "1")

import numpy as np  # noqa: E402  (after the thread settings above)
# Imported when this file loads, before any test module: the grader's harness (common/grading/_pytest_points.py)
# watches numpy's and Paddle's comparison helpers from the session's start, but only those of libraries loaded then.
import paddle  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from common.grading.partial_credit import partial_credit  # noqa: F401,E402  (a fixture for graded tests)
from tests import background, notebook_kernel  # noqa: E402

SEED = 2024
# numpy's matrix products on one thread for the whole session. OpenBLAS stops its thread pool when any thread of
# the process forks (the grader does, for every sandboxed child, from the background lanes of tests/background.py),
# and a product running on the pool in another thread at that moment never returns. One thread is also faster here
# for the small products of the tests (chapter 6 measures 2.7x), and the chapters' results do not depend on it.
_ONE_BLAS_THREAD = threadpool_limits(limits=1, user_api="blas")


@pytest.fixture(autouse=True)
def seeded():
    random.seed(SEED)
    np.random.seed(SEED)
    paddle.seed(SEED)
    paddle.set_device("cpu")
    yield


_data_caches_made = itertools.count()


@pytest.fixture(scope="session")
def data_caches(tmp_path_factory):
    return tmp_path_factory.mktemp("data-caches")


@pytest.fixture(autouse=True)
def isolated_data_dir(data_caches, monkeypatch):
    """Point the download cache at an empty folder of the test's own, so that tests never read or write the user's
    data/, nor each other's. The folder is made when something is written there: most tests download nothing, and
    a tmp_path for each would cost a folder and a symbolic link."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_caches / str(next(_data_caches_made))))


@pytest.fixture(scope="session")
def mnist_mlp_run(tmp_path_factory):
    """Chapter 2's MLP trained for 2 epochs on the offline subset (about 91 % validation accuracy): the model that
    the predict and photo tests of both chapter-2 modules read, trained once per session. Read it, never change it."""
    from chapters.ch02_mnist import train

    out = tmp_path_factory.mktemp("mnist_mlp_run")
    train.main(["--offline", "--model", "mlp", "--epochs", "2", "--augment", "0", "--device", "cpu", "--out", str(out)])
    return out


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


def _background_jobs(module) -> background.Jobs | None:
    jobs = getattr(module, "jobs", None)
    return jobs if isinstance(jobs, background.Jobs) else None


def pytest_collection_modifyitems(items):
    """Tests that wait for background jobs (tests/background.py) run after the others, which run meanwhile."""
    def order(item) -> int:
        jobs = _background_jobs(getattr(item, "module", None))
        return jobs.order(item) if jobs else 0
    items.sort(key=order)  # stable: collection order within each group


def pytest_sessionstart(session):
    notebook_kernel.warm_up(session.config)


def _unfiltered(config) -> bool:
    """No -k, -m, --deselect or test ids: every test of a collected module will run."""
    o = config.option
    return not (o.keyword or o.markexpr or getattr(o, "deselect", None) or o.collectonly
                or any("::" in a for a in config.args))


def pytest_itemcollected(item):
    """In an unfiltered run, a module's jobs start as soon as it is collected, beside the rest of the collection."""
    jobs = _background_jobs(getattr(item, "module", None))
    if jobs is not None and _unfiltered(item.config):
        jobs.start()


def pytest_collection_finish(session):
    """Once the tests are chosen, the jobs they need start in the background (tests/background.py)."""
    if session.config.option.collectonly:
        return
    # What is alive now (Paddle, the test modules, the chapters) lives until the end: the garbage collector need not
    # scan it again at every full collection (3-7 % of the tests' CPU time here).
    gc.freeze()
    for module in dict.fromkeys(getattr(item, "module", None) for item in session.items):
        jobs = _background_jobs(module)
        if jobs is not None:
            jobs.start(session.items)


def pytest_sessionfinish(session):
    background.finish()
