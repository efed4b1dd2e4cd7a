"""fmnist_data: the IDX format, its validation errors, and the synthetic data generator."""

from __future__ import annotations

import gzip
import hashlib
import struct
import subprocess
import sys

import numpy as np
import pytest

import fmnist_data
from fmnist_testlib import EXAMPLE_DIR, PYTHON
from fmnist_data import DataError


def _gz(path, raw: bytes):
    with gzip.open(path, "wb") as fh:
        fh.write(raw)
    return path


def _idx(magic: int, dims, body: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + body


def _images(n: int, size=(28, 28)) -> np.ndarray:
    return np.arange(n * size[0] * size[1], dtype=np.uint64).reshape(n, *size).astype(np.uint8)


def test_write_then_read_round_trips_the_published_format(tmp_path):
    images = _images(3)
    labels = np.array([0, 9, 4], dtype=np.uint8)
    img_path, lbl_path = fmnist_data.write_split(tmp_path, "train", images, labels)

    assert img_path.name == "train-images-idx3-ubyte.gz" and lbl_path.name == "train-labels-idx1-ubyte.gz"
    with gzip.open(img_path) as fh:
        assert struct.unpack(">4I", fh.read(16)) == (2051, 3, 28, 28)
    with gzip.open(lbl_path) as fh:
        assert struct.unpack(">2I", fh.read(8)) == (2049, 3)
    got_images, got_labels = fmnist_data.load_split(tmp_path, "train")
    assert got_images.dtype == np.uint8 and np.array_equal(got_images, images)
    assert np.array_equal(got_labels, labels)


def test_make_synthetic_writes_the_four_files_with_requested_counts(tmp_path):
    paths = fmnist_data.make_synthetic(tmp_path / "train_data", n_train=50, n_test=30, seed=1)

    assert sorted(paths) == sorted(fmnist_data.ALL_FILES)
    (x_train, y_train), (x_test, y_test) = fmnist_data.load_data(tmp_path / "train_data")
    assert x_train.shape == (50, 28, 28) and x_test.shape == (30, 28, 28)
    assert set(y_train.tolist()) == set(range(10))  # balanced: every class present
    assert x_train.max() > 200 and x_train.min() < 20  # full pixel range used


def _digest(directory) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_make_synthetic_is_deterministic_for_a_seed(tmp_path):
    fmnist_data.make_synthetic(tmp_path / "a", 40, 20, seed=3)
    fmnist_data.make_synthetic(tmp_path / "b", 40, 20, seed=3)
    fmnist_data.make_synthetic(tmp_path / "c", 40, 20, seed=4)

    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")  # same bytes, so same DVC hash
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_synthetic_data_is_learnable_far_above_chance(tmp_path):
    # A nearest-class-mean classifier fitted on the training split: a CNN can only do better.
    fmnist_data.make_synthetic(tmp_path, n_train=2000, n_test=500, seed=0)
    (x, y), (xt, yt) = fmnist_data.load_data(tmp_path)
    means = np.stack([x[y == k].reshape(-1, 784).mean(axis=0) for k in range(10)])
    dist = ((xt.reshape(-1, 1, 784).astype(np.float64) - means[None]) ** 2).sum(axis=2)
    accuracy = float((dist.argmin(axis=1) == yt).mean())

    assert accuracy > 0.6, accuracy  # chance is 0.1
    # ...but not trivially separable: the look-alike classes (tops, shoes) cause most errors.
    assert accuracy < 0.99, accuracy


# --- validation: every error names the file and fits on one line ------------------------


def _write_case(tmp_path, case: str):
    """Write a broken data dir for `case`; returns (file name the error must name, message part)."""
    images, labels = _images(10), np.arange(10, dtype=np.uint8) % 10
    fmnist_data.write_split(tmp_path, "train", images, labels)
    img = tmp_path / "train-images-idx3-ubyte.gz"
    lbl = tmp_path / "train-labels-idx1-ubyte.gz"
    if case == "wrong magic":
        _gz(img, _idx(2049, (10,), labels.tobytes()))  # a labels file under the images name
        return img.name, "wrong magic number 2049, expected 2051"
    if case == "truncated body":
        _gz(img, _idx(2051, (10, 28, 28), images.tobytes()[:-100]))
        return img.name, "truncated"
    if case == "truncated header":
        _gz(lbl, struct.pack(">I", 2049) + b"\x00\x00")
        return lbl.name, "truncated"
    if case == "truncated gzip stream":
        raw = img.read_bytes()
        img.write_bytes(raw[: len(raw) // 2])  # an interrupted download
        return img.name, "truncated or corrupt gzip"
    if case == "not gzip":
        img.write_bytes(_idx(2051, (10, 28, 28), images.tobytes()))  # someone ran gunzip
        return img.name, "not a gzip file"
    if case == "count mismatch":
        fmnist_data.write_idx(lbl, labels[:9])
        return img.name, "10 images but train-labels-idx1-ubyte.gz has 9 labels"
    if case == "label out of range":
        bad = labels.copy()
        bad[4] = 10
        fmnist_data.write_idx(lbl, bad)
        return lbl.name, "outside 0-9 (first: 10 at index 4)"
    if case == "missing file":
        lbl.unlink()
        return lbl.name, "file not found"
    if case == "wrong image size":
        fmnist_data.write_idx(img, _images(10, size=(27, 28)))
        return img.name, "images are 27x28, expected 28x28"
    if case == "trailing bytes":
        _gz(lbl, _idx(2049, (10,), labels.tobytes() + b"\x00\x00"))
        return lbl.name, "2 unexpected trailing bytes"
    raise AssertionError(case)


CASES = [
    "wrong magic",
    "truncated body",
    "truncated header",
    "truncated gzip stream",
    "not gzip",
    "count mismatch",
    "label out of range",
    "missing file",
    "wrong image size",
    "trailing bytes",
]


@pytest.mark.parametrize("case", CASES)
def test_loader_rejects_bad_files_with_a_one_line_error_naming_the_file(tmp_path, case):
    file_name, expected = _write_case(tmp_path, case)

    with pytest.raises(DataError) as info:
        fmnist_data.load_split(tmp_path, "train")

    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert file_name in message
    assert expected in message
    assert "\n" not in message


def test_check_cli_reports_a_bad_file_in_one_line_without_traceback(tmp_path):
    fmnist_data.make_synthetic(tmp_path, 20, 10, seed=0)
    file_name, _ = _write_case(tmp_path, "label out of range")

    proc = subprocess.run([PYTHON, "fmnist_data.py", "check", str(tmp_path)], cwd=EXAMPLE_DIR, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("fmnist_data.py: error: ") and file_name in proc.stderr


def test_synth_cli_writes_the_same_files_as_the_function(tmp_path):
    proc = subprocess.run(
        [PYTHON, "fmnist_data.py", "synth", "--out", str(tmp_path / "cli"), "--train", "60", "--test", "20", "--seed", "5"],
        cwd=EXAMPLE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    fmnist_data.make_synthetic(tmp_path / "api", 60, 20, seed=5)

    assert proc.returncode == 0, proc.stderr
    assert "60 train / 20 test images, seed 5" in proc.stdout
    assert _digest(tmp_path / "cli") == _digest(tmp_path / "api")


def test_example_modules_other_than_training_do_not_import_tensorflow_at_import_time():
    # The inference job installs only numpy (requirements-client.txt): the client must stay light.
    code = "import sys, fmnist_data, inference_client, get_data, serve, eval, train; print('tensorflow' in sys.modules)"
    proc = subprocess.run([PYTHON, "-c", code], cwd=EXAMPLE_DIR, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_client_runs_without_yaml_or_tensorflow_installed():
    # Simulate a venv with numpy only: block the heavy modules and import the client.
    code = (
        "import sys\n"
        "for name in ('tensorflow', 'keras', 'yaml', 'matplotlib'): sys.modules[name] = None\n"
        "import inference_client\n"
        "print('ok')\n"
    )
    proc = subprocess.run([PYTHON, "-c", code], cwd=EXAMPLE_DIR, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_write_idx_refuses_non_bytes(tmp_path):
    with pytest.raises(TypeError, match="uint8"):
        fmnist_data.write_idx(tmp_path / "x.gz", np.zeros(3, dtype=np.float32))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
