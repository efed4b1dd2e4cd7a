"""get_data.py: offline failure is one clear line; a mirror's files are fetched and checked."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

import fmnist_data
from fmnist_testlib import EXAMPLE_DIR, PYTHON, free_port, run


def get_data(args, cwd):
    return run([PYTHON, str(EXAMPLE_DIR / "get_data.py"), *args], cwd, timeout=60, check=False)


@pytest.fixture
def mirror(tmp_path):
    """A loopback HTTP server publishing generated files under the published names."""
    root = tmp_path / "mirror"
    fmnist_data.make_synthetic(root / "fashion", 30, 20, seed=2)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fashion/"
    server.shutdown()
    server.server_close()


def test_offline_fails_with_one_clear_line(tmp_path):
    port = free_port()  # nothing listens there: like a machine without internet

    proc = get_data(["--base-url", f"http://127.0.0.1:{port}/", "--out", "train_data", "--timeout", "5"], tmp_path)

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("get_data.py: error: could not download train-images-idx3-ubyte.gz")
    assert f"127.0.0.1:{port}" in proc.stderr and "offline?" in proc.stderr
    assert list((tmp_path / "train_data").iterdir()) == []  # no partial file left behind


def test_mirror_files_are_downloaded_validated_and_next_steps_printed(tmp_path, mirror):
    proc = get_data(["--base-url", mirror, "--out", "train_data", "--no-md5"], tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "train_data").iterdir()) == sorted(fmnist_data.ALL_FILES)
    assert "train: 30 images" in proc.stdout and "(the published set has 60000)" in proc.stdout
    assert "dvc add train_data" in proc.stdout and "dvc push train_data.dvc" in proc.stdout


def test_files_that_are_not_the_published_ones_fail_the_md5_check(tmp_path, mirror):
    proc = get_data(["--base-url", mirror, "--out", "train_data"], tmp_path)

    assert proc.returncode == 1
    assert "MD5 mismatch, not the published file" in proc.stderr and "Traceback" not in proc.stderr
    assert list((tmp_path / "train_data").iterdir()) == []


def test_a_mirror_missing_a_file_names_it(tmp_path, mirror):
    proc = get_data(["--base-url", mirror.replace("/fashion/", "/nowhere/"), "--out", "d", "--no-md5"], tmp_path)

    assert proc.returncode == 1
    assert "HTTP 404" in proc.stderr and "train-images-idx3-ubyte.gz" in proc.stderr
