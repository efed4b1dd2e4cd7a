"""Fashion-MNIST files: the IDX loader, an IDX writer and a learnable synthetic data set.

The published data set is four gzip-compressed IDX files (see
https://github.com/zalandoresearch/fashion-mnist). An IDX file is a big-endian header
(two zero bytes, a type code, the number of dimensions, then one uint32 per dimension)
followed by the raw values. Images use magic 2051 (uint8, 3 dims: n x 28 x 28), labels 2049
(uint8, 1 dim: n).

Only numpy and the standard library are imported, so the light inference client can use it.

    python fmnist_data.py synth --out train_data --train 12000 --test 2000 --seed 0
    python fmnist_data.py check train_data
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

# TensorFlow's start-up notices: printed while it is imported, before its C++ logging reads
# TF_CPP_MIN_LOG_LEVEL, so that variable cannot hide them.
_TF_NOTICES = ("oneDNN custom operations are on",
               "All log messages before absl::InitializeLog() is called")


def import_tensorflow():
    """`import tensorflow`, keeping its known start-up notices out of the job log.

    Anything else it writes to stderr while importing is passed on; later C++ log lines
    below ERROR are hidden by TF_CPP_MIN_LOG_LEVEL. Call it before anything imports keras.
    """
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if not any(notice in line for notice in _TF_NOTICES):
                    sys.stderr.write(line)
            sys.stderr.flush()
    return tf


CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 28

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
_UBYTE = 0x08

# split -> (images file, labels file), exactly as published.
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ALL_FILES = tuple(name for pair in FILES.values() for name in pair)


class DataError(ValueError):
    """A data file is missing or not what it claims to be (one-line message naming the file)."""


def _read_gz(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except gzip.BadGzipFile:
        raise DataError(f"{path}: not a gzip file") from None
    except (EOFError, zlib.error):
        # A gzip stream cut short (interrupted download) ends here.
        raise DataError(f"{path}: truncated or corrupt gzip stream") from None


def read_idx(path: str | os.PathLike, expected_magic: int) -> np.ndarray:
    """Read one gzip-compressed IDX file of unsigned bytes, checking header and size."""
    path = Path(path)
    raw = _read_gz(path)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, no IDX header")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise DataError(f"{path}: wrong magic number {magic}, expected {expected_magic}")
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated: header needs {header_len} bytes, file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(raw) - header_len
    if body < expected:
        raise DataError(f"{path}: truncated: header promises {expected} values of shape {dims}, file has {body}")
    if body > expected:
        raise DataError(f"{path}: {body - expected} unexpected trailing bytes after {expected} values")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Images as uint8 array (n, 28, 28)."""
    images = read_idx(path, IMAGES_MAGIC)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: images are {images.shape[1]}x{images.shape[2]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    return images


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Labels as uint8 array (n,), every value a class index 0-9."""
    labels = read_idx(path, LABELS_MAGIC)
    bad = labels >= NUM_CLASSES
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"{path}: {int(bad.sum())} labels outside 0-{NUM_CLASSES - 1} (first: {int(labels[first])} at index {first})"
        )
    return labels


def load_split(data_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels uint8 (n,)) of split "train" or "t10k"."""
    if split not in FILES:
        raise ValueError(f"unknown split {split!r}, expected one of {sorted(FILES)}")
    images_name, labels_name = FILES[split]
    images_path = Path(data_dir) / images_name
    labels_path = Path(data_dir) / labels_name
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(f"{images_path}: {len(images)} images but {labels_path.name} has {len(labels)} labels")
    if len(images) == 0:
        raise DataError(f"{images_path}: no images")
    return images, labels


def load_data(data_dir: str | os.PathLike) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) like keras.datasets.fashion_mnist.load_data()."""
    return load_split(data_dir, "train"), load_split(data_dir, "t10k")


def write_idx(path: str | os.PathLike, array: np.ndarray, magic: int | None = None) -> Path:
    """Write a uint8 array as a gzip-compressed IDX file (magic from its number of dims)."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx needs uint8 values, got {array.dtype}")
    if magic is None:
        magic = (_UBYTE << 8) | array.ndim
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the bytes (and so the DVC hash) identical for identical data.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:
        fh.write(header)
        fh.write(array.tobytes())
    return path


def write_split(data_dir: str | os.PathLike, split: str, images: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    """Write one split under its published file names."""
    images_name, labels_name = FILES[split]
    return (
        write_idx(Path(data_dir) / images_name, np.asarray(images, dtype=np.uint8)),
        write_idx(Path(data_dir) / labels_name, np.asarray(labels, dtype=np.uint8)),
    )


# --- synthetic data ---------------------------------------------------------------------

_TEMPLATE_SEED = 20170825  # fixed: every seed draws samples of the same ten classes
_TOPS = (0, 2, 4, 6)
_SHOES = (5, 7, 9)
_OWN_SHARE = 0.3  # how much of a look-alike class's template is its own


def class_templates() -> np.ndarray:
    """Ten smooth 28x28 patterns in [0, 1], one per class (the same for every seed).

    Like the real data, some classes look alike: the four tops (T-shirt/top, Pullover, Coat,
    Shirt) share most of their pattern, and so do the three shoes (Sandal, Sneaker, Ankle boot),
    so the confusion matrix has the same kind of structure.
    """
    rng = np.random.default_rng(_TEMPLATE_SEED)

    def blobs(k: int) -> np.ndarray:
        # A coarse 7x7 random grid blown up 4x and blurred: blobs large enough to survive
        # the pooling layers and the random shifts.
        big = np.kron(rng.random((k, 7, 7)) ** 2, np.ones((4, 4)))
        kernel = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16
        for axis in (1, 2):
            big = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, big)
        return big

    own = blobs(NUM_CLASSES)
    shared = blobs(2)
    templates = own.copy()
    for group, base in ((_TOPS, shared[0]), (_SHOES, shared[1])):
        for k in group:
            templates[k] = (1 - _OWN_SHARE) * base + _OWN_SHARE * own[k]
    templates -= templates.min(axis=(1, 2), keepdims=True)
    templates /= templates.max(axis=(1, 2), keepdims=True)
    return templates


def synthetic_split(n: int, seed: int, noise: float = 0.25, max_shift: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """n learnable images: the class template, shifted, contrast-scaled and noisy; balanced labels."""
    if n <= 0:
        raise ValueError(f"need a positive number of images, got {n}")
    rng = np.random.default_rng(seed)
    templates = class_templates()
    labels = np.arange(n) % NUM_CLASSES
    rng.shuffle(labels)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    contrast = rng.uniform(0.6, 1.0, size=(n, 1, 1))
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float64)
    for i in range(n):
        images[i] = np.roll(templates[labels[i]], tuple(shifts[i]), axis=(0, 1))
    images = images * contrast + rng.normal(0.0, noise, size=images.shape)
    images = np.clip(images, 0.0, 1.0)
    return np.round(images * 255).astype(np.uint8), labels.astype(np.uint8)


def make_synthetic(out_dir: str | os.PathLike, n_train: int = 12000, n_test: int = 2000, seed: int = 0) -> dict[str, Path]:
    """Write the four files under out_dir with learnable data; same seed, same bytes.

    Returns {file name: path}. Train and test draw from separate streams of the seed.
    """
    out = Path(out_dir)
    x_train, y_train = synthetic_split(n_train, seed=seed * 2 + 0)
    x_test, y_test = synthetic_split(n_test, seed=seed * 2 + 1)
    paths = write_split(out, "train", x_train, y_train) + write_split(out, "t10k", x_test, y_test)
    return {p.name: p for p in paths}


# --- command line -----------------------------------------------------------------------


def _cmd_synth(args: argparse.Namespace) -> int:
    paths = make_synthetic(args.out, args.train, args.test, args.seed)
    for path in paths.values():
        print(path)
    print(f"synthetic Fashion-MNIST-shaped data: {args.train} train / {args.test} test images, seed {args.seed}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    for split in FILES:
        images, labels = load_split(args.data_dir, split)
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        print(f"{split}: {len(images)} images, per class {counts.tolist()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fmnist_data.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write learnable synthetic data in the published format")
    synth.add_argument("--out", default="train_data", help="directory (default: train_data)")
    synth.add_argument("--train", type=int, default=12000, help="training images (default: 12000)")
    synth.add_argument("--test", type=int, default=2000, help="test images (default: 2000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.set_defaults(func=_cmd_synth)
    check = sub.add_parser("check", help="validate the four files of a data directory")
    check.add_argument("data_dir", nargs="?", default="train_data")
    check.set_defaults(func=_cmd_check)
    args = parser.parse_args(argv)
    if getattr(args, "train", 1) <= 0 or getattr(args, "test", 1) <= 0:
        parser.error("--train and --test must be positive")
    try:
        return args.func(args)
    except DataError as exc:
        print(f"fmnist_data.py: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
