"""Evaluate the exported model on the test split (the `evaluate` stage of dvc.yaml).

It evaluates the SavedModel exactly as it will be served (model/fashion-mnist/<highest version>,
`serving_default` signature), not the in-memory Keras model, and writes:

- model/eval/metrics.json: accuracy, loss, per-class precision/recall/f1/support, macro averages
- model/eval/confusion_matrix.png: the confusion matrix (counts), for the merge-request report
- model/eval/plots/confusion.csv: one `actual,predicted` row per test image, for `dvc plots`
- model/eval/profile.json: the reference profile for monitoring (fmnist_profile.py): the
  test images' mean-intensity histogram and the predicted-class counts, the same statistics
  serve.py exports, so the `monitor` job can compare live traffic with them
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

import fmnist_data
import fmnist_profile

DATA_DIR = Path("train_data")
MODEL_DIR = Path("model/fashion-mnist")
OUT_DIR = Path("model/eval")
EPSILON = 1e-7  # same clipping as Keras' cross-entropy


class EvalError(ValueError):
    """Something the user can fix (missing model, bad params); one-line message."""


def latest_version(base: str | os.PathLike) -> Path:
    """The numerically highest version directory under base, as TF Serving picks it."""
    base = Path(base)
    if not base.is_dir():
        raise EvalError(f"{base}: no such model directory (run the train stage first)")
    versions = [p for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise EvalError(f"{base}: no numeric version directory (expected e.g. {base}/1)")
    return max(versions, key=lambda p: int(p.name))


def predict(model_dir: str | os.PathLike, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (n, 10) from the SavedModel's serving signature."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(latest_version(model_dir)))
    serve = loaded.signatures["serving_default"]
    (input_name,) = serve.structured_input_signature[1]
    parts = []
    for start in range(0, len(images), batch_size):
        batch = tf.constant(images[start : start + batch_size])
        (output,) = serve(**{input_name: batch}).values()
        parts.append(output.numpy())
    return np.concatenate(parts)


def confusion_matrix(actual: np.ndarray, predicted: np.ndarray, k: int = fmnist_data.NUM_CLASSES) -> np.ndarray:
    """k x k counts, rows = actual class, columns = predicted class."""
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (actual, predicted), 1)
    return matrix


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0  # no prediction/sample of a class: 0, as sklearn's default


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray) -> tuple[dict, np.ndarray]:
    """(metrics dict for metrics.json, confusion matrix)."""
    predicted = probabilities.argmax(axis=1)
    picked = probabilities[np.arange(len(labels)), labels]
    loss = float(np.mean(-np.log(np.clip(picked, EPSILON, 1.0))))
    matrix = confusion_matrix(labels, predicted)
    per_class = {}
    for k, name in enumerate(fmnist_data.CLASS_NAMES):
        tp = matrix[k, k]
        precision = _ratio(tp, matrix[:, k].sum())
        recall = _ratio(tp, matrix[k, :].sum())
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(matrix[k, :].sum())}
    macro = {key: float(np.mean([c[key] for c in per_class.values()])) for key in ("precision", "recall", "f1")}
    metrics = {
        "accuracy": float(np.mean(predicted == labels)),
        "loss": loss,
        "macro_avg": macro,
        "per_class": per_class,
        "test_samples": int(len(labels)),
    }
    return metrics, matrix


def plot_confusion(matrix: np.ndarray, accuracy: float, path: str | os.PathLike) -> None:
    """Counts with class names on both axes; darker = more."""
    import matplotlib

    matplotlib.use("Agg")  # no display in CI
    import matplotlib.pyplot as plt

    names = fmnist_data.CLASS_NAMES
    fig, ax = plt.subplots(figsize=(8, 7), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"Fashion-MNIST confusion matrix (accuracy {accuracy:.4f}, n={int(matrix.sum())})")
    threshold = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color="white" if count > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})  # no version stamp: same data, same bytes
    plt.close(fig)


def load_batch_size(path: str | os.PathLike = "params.yaml") -> int:
    """evaluate.batch_size from params.yaml (the only parameter of this stage)."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EvalError(f"{path}: cannot read ({type(exc).__name__})") from None
    value = (doc.get("evaluate") or {}).get("batch_size") if isinstance(doc, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise EvalError(f"{path}: evaluate.batch_size must be a positive integer, got {value!r}")
    return value


def evaluate(data_dir=DATA_DIR, model_dir=MODEL_DIR, out_dir=OUT_DIR, batch_size: int = 512) -> dict:
    """Write metrics.json, confusion_matrix.png, plots/confusion.csv and profile.json; returns the metrics."""
    images, labels = fmnist_data.load_split(data_dir, "t10k")
    served = images.astype(np.float32) / 255.0
    probabilities = predict(model_dir, served, batch_size)
    metrics, matrix = compute_metrics(labels.astype(np.int64), probabilities)

    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    plot_confusion(matrix, metrics["accuracy"], out / "confusion_matrix.png")
    profile = fmnist_profile.build_profile(served, probabilities.argmax(axis=1), Path(model_dir).name, probabilities.shape[1])
    (out / "profile.json").write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    names = fmnist_data.CLASS_NAMES
    with open(out / "plots" / "confusion.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows((names[a], names[p]) for a, p in zip(labels, probabilities.argmax(axis=1)))
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default=str(DATA_DIR))
    parser.add_argument("--model-dir", default=str(MODEL_DIR))
    parser.add_argument("--out-dir", default=str(OUT_DIR))
    args = parser.parse_args(argv)
    fmnist_data.import_tensorflow()  # first, without its start-up notices
    try:
        metrics = evaluate(args.data_dir, args.model_dir, args.out_dir, load_batch_size(args.params))
    except (EvalError, fmnist_data.DataError) as exc:
        print(f"eval.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}  macro f1 {metrics['macro_avg']['f1']:.4f}")
    print(f"wrote {args.out_dir}/metrics.json, confusion_matrix.png, plots/confusion.csv, profile.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
