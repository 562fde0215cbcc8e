"""The one Jupyter kernel that tests/test_notebooks.py runs the chapters' notebooks in (tests/background.py).

Starting an ipykernel and importing Paddle into it takes about 2 s of one core, at a time when the other core is
idle: while pytest collects the tests. So tests/conftest.py calls `warm_up` when the session starts, if the session
will run tests/test_notebooks.py; the notebook tests then find the kernel ready.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from common.grading import notebooks
from tests import background

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 120  # seconds for one cell at the test size; a hung cell fails instead of hanging the suite
# Imported once for all notebooks: the third-party modules every chapter uses (a notebook still imports what it
# uses: the reset before each notebook empties its namespace). Then frozen: IPython's reset before each notebook
# runs a full garbage collection, which would walk all of Paddle again (0.1 s a notebook; frozen, 0.02 s).
WARM = "import paddle, numpy, cv2, matplotlib.pyplot, gc; gc.freeze()"

# Run first in every notebook: the same rule as tests/conftest.py, so a notebook that reaches for the internet fails.
OFFLINE_PRELUDE = '''
import ipaddress as _ipaddress, socket as _socket
_real_getaddrinfo = _socket.getaddrinfo
def _loopback_only(host, *args, **kwargs):
    try:
        ok = host == "localhost" or _ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise OSError(f"tests must not use the network (look-up of {host!r})")
    return _real_getaddrinfo(host, *args, **kwargs)
_socket.getaddrinfo = _loopback_only
'''.strip()

_kernel: list[notebooks.Kernel] = []
_lock = threading.Lock()


def kernel() -> notebooks.Kernel:
    """The shared kernel, started (and warmed) on first use; shut down when the session ends."""
    with _lock:
        if not _kernel:
            k = notebooks.Kernel(root=ROOT, timeout=CELL_TIMEOUT, prelude=OFFLINE_PRELUDE, warm=WARM,
                                 fresh=os.environ.get("COURSE_FRESH_KERNELS") == "1")
            background.at_end(k.close)
            _kernel.append(k)
        return _kernel[0]


def warm_up(config) -> None:
    """Start the kernel in a thread now if this session runs the notebook tests (tests/conftest.py calls this)."""
    if not background.runs_in_background() or config.option.collectonly or not _runs_notebook_tests(config):
        return
    import jupyter_client.manager  # noqa: F401  (imported here: an import in two threads at once can fail half-way)
    import nbclient  # noqa: F401

    def start():
        background.lower_priority()  # the kernel inherits it, as it would from the notebooks' lane
        kernel().start()

    threading.Thread(target=start, name="kernel-warm-up", daemon=True).start()


def _runs_notebook_tests(config) -> bool:
    """Whether collection will reach tests/test_notebooks.py (a folder or the file itself among the arguments)."""
    target = ROOT / "tests" / "test_notebooks.py"
    for arg in config.args or [str(ROOT / "tests")]:
        path = Path(arg.split("::")[0])
        path = path if path.is_absolute() else Path(config.invocation_params.dir) / path
        if path.resolve() == target or path.resolve() in target.parents:
            return True
    return False
