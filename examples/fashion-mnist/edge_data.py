"""Samples for ci-gen's `edge-convert` job (`--loader edge_data:load`).

`load("train")` gives the pool the int8 representative set is drawn from, `load("test")`
the held-out set every converted model is measured on. Both come as the SavedModel's serving
input (float32 [n, 28, 28] in [0, 1], as train.py trains it) with integer labels.
"""

from __future__ import annotations

import numpy as np

import fmnist_data

SPLITS = {"train": "train", "test": "t10k"}  # loader split -> IDX file prefix


def load(split: str, data_dir: str = "train_data") -> tuple[np.ndarray, np.ndarray]:
    images, labels = fmnist_data.load_split(data_dir, SPLITS[split])
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)
