"""The three LiteRT conversions of a SavedModel, with TensorFlow's converter.

- float32: the graph as is;
- dynamic-range: weights stored as int8, activations computed in float;
- int8: full-integer, int8 inputs and outputs too, its ranges calibrated on the
  representative set (what a microcontroller or an NPU runs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from ci_gen.errors import CiGenError

VARIANTS = ("float32", "dynamic-range", "int8")


def find_saved_model(path: Path) -> Path:
    """PATH itself when it holds saved_model.pb, else its highest numeric version directory
    (TF Serving's `<base>/<version>/` layout, as the example exports it)."""
    if (path / "saved_model.pb").is_file():
        return path
    if not path.is_dir():
        raise CiGenError(f"edge-convert: model directory {path} not found (did the train job "
                         "keep it as an artifact?)")
    versions = [p for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()]
    if not versions:
        raise CiGenError(f"edge-convert: {path} is not a SavedModel (no saved_model.pb in it or "
                         "in a numeric version directory)")
    return max(versions, key=lambda p: int(p.name))


def import_tensorflow() -> Any:
    """TensorFlow, with its C++ start-up and converter logs below errors kept out of the log."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise CiGenError(f"edge-convert: TensorFlow cannot be imported ({exc}); install the "
                         "project's requirements first") from None
    tf.get_logger().setLevel("ERROR")
    return tf


def convert(saved_model: Path, variant: str, representative: Any) -> bytes:
    """The .tflite bytes of one variant; a model the converter refuses is one line."""
    tf = import_tensorflow()
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        if variant != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "int8":
            converter.representative_dataset = lambda: _batches(representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter.convert()
    except Exception as exc:  # noqa: BLE001 - TF raises many kinds; each is the model's problem
        raise CiGenError(f"edge-convert: cannot convert {saved_model} to {variant}: "
                         f"{_reason(exc)}") from None


def _batches(inputs: Any) -> Iterator[list[Any]]:
    for i in range(len(inputs)):
        yield [inputs[i:i + 1]]


def _reason(exc: BaseException) -> str:
    """The converter's most telling line: its first `error:` line, else its first line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    text = (errors or lines or [type(exc).__name__])[0]
    return " ".join(text.split())[:300]
