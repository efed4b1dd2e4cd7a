"""Predictions and per-sample latency of the SavedModel and of each LiteRT model, on the
same held-out inputs.

LiteRT runs one sample per invoke on one thread, as a device would; the SavedModel's
accuracy comes from batched calls, its latency from single-sample calls on the first
LATENCY_SAMPLES inputs. Latency is the median (p50) in milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_gen.edge.variants import import_tensorflow
from ci_gen.errors import CiGenError

LATENCY_SAMPLES = 200
BATCH = 256


@dataclass
class Measured:
    predictions: Any  # class id per sample
    latency_p50_ms: float


def saved_model(path: Path, inputs: Any) -> Measured:
    """The SavedModel's `serving_default` on the inputs."""
    import numpy as np

    tf = import_tensorflow()
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (name,) = serve.structured_input_signature[1]

    def call(batch: Any) -> Any:
        return next(iter(serve(**{name: tf.constant(batch)}).values())).numpy()

    try:
        outputs = [call(inputs[i:i + BATCH]) for i in range(0, len(inputs), BATCH)]
    except Exception as exc:  # noqa: BLE001 - a shape/dtype mismatch of the loader's inputs
        raise CiGenError(f"edge-convert: the SavedModel refuses the loader's test inputs "
                         f"{inputs.shape}: {' '.join(str(exc).split())[:200]}") from None
    times = [_timed(call, inputs[i:i + 1]) for i in range(min(LATENCY_SAMPLES, len(inputs)))]
    return Measured(np.concatenate(outputs).argmax(axis=-1), _p50(times))


def litert(model: Path, inputs: Any) -> Measured:
    """A .tflite model on the inputs, one sample per invoke, quantizing int8 inputs."""
    import numpy as np

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise CiGenError(f"edge-convert: ai-edge-litert cannot be imported ({exc}); "
                         "pip install 'ci-gen[edge]'") from None
    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    samples = _as_input(inputs, source)
    predictions = np.empty(len(samples), dtype=np.int64)
    times = []
    for i, sample in enumerate(samples):
        interpreter.set_tensor(source["index"], sample[np.newaxis])
        started = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - started)
        # argmax of int8 outputs is the argmax of their dequantized values (scale > 0)
        predictions[i] = int(interpreter.get_tensor(target["index"])[0].argmax())
    return Measured(predictions, _p50(times))


def _as_input(inputs: Any, detail: dict) -> Any:
    """Inputs in the model's input type: int8 models take quantized values."""
    import numpy as np

    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return inputs.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    quantized = np.round(inputs / scale + zero_point)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def _timed(call: Any, batch: Any) -> float:
    started = time.perf_counter()
    call(batch)
    return time.perf_counter() - started


def _p50(seconds: list[float]) -> float:
    import numpy as np

    return float(np.median(seconds) * 1000) if seconds else 0.0
