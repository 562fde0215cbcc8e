"""Downloads, checksums, caching and the offline fallback, against a local HTTP server on 127.0.0.1."""
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from common import download, housing
from common.download import ChecksumError, DataError

GOOD = b"0.1 2 3\n" * 1000
GOOD_MD5 = hashlib.md5(GOOD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves /good, /corrupt (same length, one byte changed), /short (honest but truncated body),
    /cut (announces the full length, sends half, hangs up) and 404 for anything else."""

    routes = {"/good": GOOD, "/corrupt": b"X" + GOOD[1:], "/short": GOOD[: len(GOOD) // 2]}

    def do_GET(self):
        if self.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 2])
            self.close_connection = True
            return
        if self.path not in self.routes:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.routes[self.path])))
        self.end_headers()
        self.wfile.write(self.routes[self.path])

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.points(2)
def test_good_download_is_verified_and_cached(server, tmp_path):
    path = download.fetch("f.txt", [f"{server}/good"], GOOD_MD5, cache_dir=tmp_path)
    assert path.read_bytes() == GOOD
    assert leftovers(tmp_path) == ["f.txt"]
    # Second call: served from the cache, so even a dead mirror does not matter.
    assert download.fetch("f.txt", [f"{server}/missing"], GOOD_MD5, cache_dir=tmp_path) == path


@pytest.mark.points(2)
@pytest.mark.parametrize("route", ["corrupt", "short"])
def test_bad_checksum_is_rejected_and_leaves_no_file(server, tmp_path, route):
    with pytest.raises(ChecksumError, match="md5"):
        download.download(f"{server}/{route}", tmp_path / "f.txt", GOOD_MD5)
    assert leftovers(tmp_path) == []  # no partial or temporary file left behind


@pytest.mark.points(2)
@pytest.mark.parametrize("route", ["cut", "missing"])
def test_broken_transfer_or_404_is_a_data_error_and_leaves_no_file(server, tmp_path, route):
    with pytest.raises(DataError, match=route):
        download.download(f"{server}/{route}", tmp_path / "f.txt", GOOD_MD5)
    assert leftovers(tmp_path) == []


@pytest.mark.points(2)
def test_next_mirror_is_tried_after_a_bad_one(server, tmp_path):
    path = download.fetch("f.txt", [f"{server}/corrupt", f"{server}/good"], GOOD_MD5, cache_dir=tmp_path)
    assert path.read_bytes() == GOOD


@pytest.mark.points(2)
def test_corrupt_cache_is_replaced_not_used(server, tmp_path, capsys):
    (tmp_path / "f.txt").write_bytes(b"stale")
    path = download.fetch("f.txt", [f"{server}/good"], GOOD_MD5, cache_dir=tmp_path)
    assert path.read_bytes() == GOOD
    assert "corrupt" in capsys.readouterr().err


@pytest.mark.points(1)
def test_all_mirrors_failing_names_each(server, tmp_path):
    with pytest.raises(DataError) as err:
        download.fetch("f.txt", [f"{server}/missing", f"{server}/corrupt"], GOOD_MD5, cache_dir=tmp_path)
    assert "missing" in str(err.value) and "corrupt" in str(err.value)
    assert leftovers(tmp_path) == []


# ---- the housing loader on top of it ----
def housing_text(rows: int = 12, columns: int = housing.N_COLUMNS) -> str:
    return "\n".join(" ".join(f"{r + c / 10:.2f}" for c in range(columns)) for r in range(rows)) + "\n"


@pytest.mark.points(2)
def test_housing_falls_back_to_the_shipped_copy_when_offline(server, tmp_path, monkeypatch):
    monkeypatch.setattr(housing, "URLS", (f"{server}/missing",))
    data, source = housing.load_housing()
    assert data.shape == (506, 14)
    assert "offline fallback" in source and "mlxtend" in source


@pytest.mark.points(2)
def test_housing_downloads_official_file_into_cache(server, tmp_path, monkeypatch):
    body = housing_text().encode()
    monkeypatch.setattr(housing, "URLS", (f"{server}/housing",))
    monkeypatch.setattr(housing, "MD5", hashlib.md5(body).hexdigest())
    monkeypatch.setitem(_Handler.routes, "/housing", body)
    data, source = housing.load_housing()
    assert data.shape == (12, 14) and "md5 verified" in source
    assert (download.data_dir() / housing.FILENAME).read_bytes() == body


@pytest.mark.points(1)
def test_missing_data_path_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match="no such file.*Download it from"):
        housing.load_housing(tmp_path / "nope.data")


@pytest.mark.points(1)
def test_wrong_number_of_columns_is_a_clear_error(tmp_path):
    path = tmp_path / "housing.data"
    path.write_text(housing_text(columns=13))
    with pytest.raises(DataError, match="13 columns, expected 14"):
        housing.load_housing(path)
    # Your own CSV saved without its header row lands here: the message says what would make it a table.
    with pytest.raises(DataError, match="A table of your own needs a header row naming its columns"):
        housing.load_housing(path)


@pytest.mark.points(1)
def test_ragged_or_non_numeric_file_is_a_clear_error(tmp_path):
    path = tmp_path / "housing.data"
    path.write_text(housing_text() + "1 2 3\n")
    with pytest.raises(DataError, match="not a housing file"):
        housing.load_housing(path)


SHARED_HOUSING = Path(__file__).resolve().parents[2] / "shared" / "data" / "housing.data"


# Not graded (no points): it checks the data, not code, and the reference file exists only beside this repository.
@pytest.mark.skipif(not SHARED_HOUSING.is_file(), reason=f"reference file {SHARED_HOUSING} not present")
def test_shipped_copy_equals_the_official_file():
    assert download.md5_of(SHARED_HOUSING) == housing.MD5
    official = housing.parse_housing(SHARED_HOUSING)
    np.testing.assert_allclose(housing.load_mlxtend_copy(), official, rtol=1e-6)


@pytest.mark.points(1)
def test_offline_uses_a_verified_cache_and_never_downloads(server, tmp_path):
    with pytest.raises(DataError, match="downloads are off"):
        download.fetch("f.txt", [f"{server}/good"], GOOD_MD5, cache_dir=tmp_path, offline=True)
    assert leftovers(tmp_path) == []
    (tmp_path / "f.txt").write_bytes(GOOD)
    assert download.fetch("f.txt", [f"{server}/good"], GOOD_MD5, cache_dir=tmp_path, offline=True).read_bytes() == GOOD


def test_the_suite_cannot_reach_the_internet(tmp_path):
    # conftest's guard: a download attempted by mistake fails at once instead of leaving the machine.
    with pytest.raises(DataError, match="must not use the network"):
        download.download("http://example.com/housing.data", tmp_path / "housing.data", GOOD_MD5)
