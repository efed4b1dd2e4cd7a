"""Train the Fashion-MNIST CNN and export it for TF Serving (the `train` stage of dvc.yaml).

Reads the `train` section of params.yaml and the IDX files in train_data/, and writes a
SavedModel to model/fashion-mnist/1/ (TF Serving's <base path>/<version>/ layout).

Its `serving_default` signature takes `images`: float32 [batch, 28, 28], pixel values in
[0, 1] (raw bytes / 255), and returns `output_0`: float32 [batch, 10], the class probabilities
in the order of fmnist_data.CLASS_NAMES.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

import fmnist_data

DATA_DIR = Path("train_data")
EXPORT_DIR = Path("model/fashion-mnist")
VERSION = "1"

# name -> (type, check, what a valid value is)
TRAIN_PARAMS = {
    "epochs": (int, lambda v: v > 0, "a positive integer"),
    "batch_size": (int, lambda v: v > 0, "a positive integer"),
    "learning_rate": (float, lambda v: v > 0, "a positive number"),
    "seed": (int, lambda v: v >= 0, "a non-negative integer"),
    "width": (int, lambda v: v > 0, "a positive integer"),
    "dense_units": (int, lambda v: v > 0, "a positive integer"),
    "dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "validation_split": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
}


class ParamsError(ValueError):
    """params.yaml is missing a value or has a wrong one (one-line message)."""


def load_params(path: str | os.PathLike = "params.yaml", section: str = "train", spec: dict | None = None) -> dict:
    """The checked `section` of params.yaml."""
    spec = TRAIN_PARAMS if spec is None else spec
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    values = doc.get(section) if isinstance(doc, dict) else None
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: no `{section}:` section")
    params = {}
    for name, (kind, ok, what) in spec.items():
        if name not in values:
            raise ParamsError(f"{path}: {section}.{name} is missing")
        value = values[name]
        # bool is an int in Python; `epochs: true` is still a mistake.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise ParamsError(f"{path}: {section}.{name} must be {what}, got {value!r}")
        if not ok(value):
            raise ParamsError(f"{path}: {section}.{name} must be {what}, got {value!r}")
        params[name] = kind(value)
    return params


def set_determinism(seed: int) -> None:
    """Same seed, data and params -> same weights (CPU), at a small speed cost."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow generators
    tf.config.experimental.enable_op_determinism()


def build_model(width: int = 32, dense_units: int = 128, dropout: float = 0.3, learning_rate: float = 1e-3):
    """Two conv blocks and a dense head; softmax output so the served model returns probabilities."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(fmnist_data.IMAGE_SIZE, fmnist_data.IMAGE_SIZE), name="images")
    x = layers.Reshape((fmnist_data.IMAGE_SIZE, fmnist_data.IMAGE_SIZE, 1))(inputs)
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(fmnist_data.NUM_CLASSES, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="fashion_mnist_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1], the serving input."""
    return images.astype(np.float32) / 255.0


def train(params: dict, data_dir: str | os.PathLike = DATA_DIR, export_dir: str | os.PathLike = EXPORT_DIR, verbose: int = 2):
    """Train on data_dir's training split and export to export_dir/1; returns the Keras model."""
    images, labels = fmnist_data.load_split(data_dir, "train")
    set_determinism(params["seed"])
    model = build_model(params["width"], params["dense_units"], params["dropout"], params["learning_rate"])
    started = time.perf_counter()
    model.fit(
        to_float(images),
        labels.astype(np.int64),
        epochs=params["epochs"],
        batch_size=params["batch_size"],
        validation_split=params["validation_split"],
        shuffle=True,
        verbose=verbose,
    )
    seconds = time.perf_counter() - started
    print(f"trained {params['epochs']} epochs on {len(images)} images in {seconds:.1f} s")

    export_dir = Path(export_dir)
    if export_dir.exists():
        shutil.rmtree(export_dir)  # a stale version must not be served by mistake
    model.export(str(export_dir / VERSION), format="tf_saved_model", verbose=False)
    print(f"exported SavedModel to {export_dir / VERSION}")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default=str(DATA_DIR))
    parser.add_argument("--export-dir", default=str(EXPORT_DIR))
    args = parser.parse_args(argv)
    fmnist_data.import_tensorflow()  # first, without its start-up notices
    try:
        params = load_params(args.params)
        train(params, args.data_dir, args.export_dir)
    except (ParamsError, fmnist_data.DataError) as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
