"""What the served model reports about its traffic, and the reference profile it is compared with.

serve.py exports these statistics as Prometheus metrics; eval.py writes the same statistics
over the test split to model/eval/profile.json (a DVC output, versioned with the model); the
`monitor` component (`ci-gen job monitor`) compares the two. Keeping the bucket bounds and the
metric names here, once, is what makes the two sides comparable.

Only aggregates leave the service: the mean pixel intensity of each image (a number in [0, 1])
counted into fixed buckets, and the predicted class counted per class name.

profile.json (format "ci-gen/profile/v1"; ci_gen/monitoring/reference.py reads it):

    {"format": "ci-gen/profile/v1", "model": "fashion-mnist", "samples": 2000,
     "signals": {
       "mean_intensity":  {"kind": "histogram", "metric": "serving_input_mean_intensity",
                           "le": [0.05, ..., 1.0, "+Inf"], "counts": [...]},
       "predicted_class": {"kind": "categorical", "metric": "serving_predicted_class_total",
                           "label": "class", "categories": ["T-shirt/top", ...], "counts": [...]}}}

Histogram counts are per bucket (not cumulative), with Prometheus' `le` meaning: a value v
falls in the first bucket whose upper bound is >= v.
"""

from __future__ import annotations

import numpy as np

import fmnist_data

FORMAT = "ci-gen/profile/v1"
# Upper bounds of the mean-intensity buckets (Prometheus adds +Inf itself).
INTENSITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Metric names as exposed (prometheus_client adds `_total` to counters, `_bucket` etc. to histograms).
REQUESTS = "serving_requests"
LATENCY = "serving_request_latency_seconds"
BATCH_SIZE = "serving_batch_size"
PREDICTED_CLASS = "serving_predicted_class"
MEAN_INTENSITY = "serving_input_mean_intensity"


def mean_intensity(batch: np.ndarray) -> np.ndarray:
    """One number per instance: its mean input value (pixels / 255, so in [0, 1])."""
    batch = np.asarray(batch, dtype=np.float64)
    return batch.reshape(len(batch), -1).mean(axis=1)


def class_names(n: int) -> tuple[str, ...]:
    """Label values for a model with n output classes."""
    return fmnist_data.CLASS_NAMES if n == len(fmnist_data.CLASS_NAMES) else tuple(str(i) for i in range(n))


def bucket_counts(values: np.ndarray, bounds: tuple[float, ...] = INTENSITY_BUCKETS) -> list[int]:
    """Per-bucket counts with Prometheus' `le` semantics; the last entry is the +Inf bucket."""
    index = np.searchsorted(np.asarray(bounds), np.asarray(values, dtype=np.float64), side="left")
    return np.bincount(index, minlength=len(bounds) + 1).astype(int).tolist()


def build_profile(images01: np.ndarray, predicted: np.ndarray, model_name: str, n_classes: int) -> dict:
    """The reference profile of a data set: images as served ([0, 1]) and the model's predicted classes."""
    names = class_names(n_classes)
    return {
        "format": FORMAT,
        "model": model_name,
        "samples": int(len(images01)),
        "signals": {
            "mean_intensity": {
                "kind": "histogram",
                "metric": MEAN_INTENSITY,
                "le": [*INTENSITY_BUCKETS, "+Inf"],
                "counts": bucket_counts(mean_intensity(images01)),
            },
            "predicted_class": {
                "kind": "categorical",
                "metric": PREDICTED_CLASS + "_total",
                "label": "class",
                "categories": list(names),
                "counts": np.bincount(np.asarray(predicted, dtype=np.int64), minlength=n_classes).astype(int).tolist(),
            },
        },
    }
