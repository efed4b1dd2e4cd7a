"""The edge-convert job: convert, measure against the SavedModel, judge, write.

Writes OUT/model-<variant>.tflite for each variant, OUT/edge.json (every figure and the
gate's verdict) and SECTION, the markdown table eval-report appends to the MR report. The
gate's verdict is recorded, not enforced: `ci-gen job edge-gate` fails the pipeline on it.
Nothing is written until every variant converted and ran.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ci_gen.edge import gate, measure, samples, table, variants
from ci_gen.errors import UsageError, shown
from ci_gen.files import atomic_write
from ci_gen.patterns import RE_PATH

MAX_SAMPLES = 100_000


@dataclass(frozen=True)
class Options:
    model: Path
    loader: str
    out: Path
    section: Path
    representative_samples: int = 200
    test_samples: int = 2000
    max_accuracy_drop: float = 0.02
    min_agreement: float = 0.95
    root: Path = Path(".")


def check(opts: Options) -> None:
    """Every flag, before anything is imported or written."""
    for flag, path in (("--model", opts.model), ("--out", opts.out), ("--section", opts.section)):
        if not re.fullmatch(RE_PATH, str(path)):
            raise UsageError(f"edge-convert: {flag} {shown(str(path))} is not a plain path")
    for flag, n in (("--representative-samples", opts.representative_samples),
                    ("--test-samples", opts.test_samples)):
        if not 1 <= n <= MAX_SAMPLES:
            raise UsageError(f"edge-convert: {flag} must be between 1 and {MAX_SAMPLES}, got {n}")
    gate.check_bounds(opts.max_accuracy_drop, opts.min_agreement)


def run(opts: Options, say: Callable[[str], None] = print) -> dict[str, Any]:
    check(opts)
    loader = samples.load_loader(opts.loader, opts.root)
    saved = variants.find_saved_model(opts.root / opts.model)
    train_x, _ = samples.split(loader, "train", opts.loader)
    calibration = samples.representative(train_x, opts.representative_samples, opts.loader)
    test_x, test_y = samples.split(loader, "test", opts.loader)
    if len(test_x) == 0:
        raise UsageError(f"edge-convert: the test set is empty: {opts.loader}('test') "
                         "returned no samples")
    test_x, test_y = test_x[:opts.test_samples], test_y[:opts.test_samples]

    converted = {v: variants.convert(saved, v, calibration) for v in variants.VARIANTS}
    say(f"edge-convert: converted {saved}: "
        + ", ".join(f"{v} ({len(b):,} bytes)" for v, b in converted.items()))
    say(f"edge-convert: measuring each against the SavedModel on {len(test_x)} held-out samples")
    reference = measure.saved_model(saved, test_x)
    result = _result(opts, saved, reference, (test_x, test_y), len(calibration), converted)
    _write(opts, converted, result)
    for row in result["variants"]:
        say(f"edge-convert: {row['name']}: accuracy {row['accuracy']:.4f} "
            f"({-row['accuracy_drop']:+.4f}), agreement {row['agreement']:.4f}, "
            f"p50 {row['latency_p50_ms']:.3f} ms, {'pass' if row['passed'] else 'FAIL'}")
    return result


def _result(opts: Options, saved: Path, reference: measure.Measured, test: tuple[Any, Any],
            calibrated: int, converted: dict[str, bytes]) -> dict[str, Any]:
    """edge.json's document: the SavedModel's figures, each variant's, the gate's verdict."""
    import tempfile

    inputs, labels = test
    accuracy = float((reference.predictions == labels).mean())
    rows = []
    with tempfile.TemporaryDirectory(prefix="ci-gen-edge-") as tmp:
        for name, blob in converted.items():
            path = Path(tmp) / f"model-{name}.tflite"
            path.write_bytes(blob)
            got = measure.litert(path, inputs)
            row = {"name": name, "file": (opts.out / path.name).as_posix(), "size_bytes": len(blob),
                   "accuracy": float((got.predictions == labels).mean()),
                   "agreement": float((got.predictions == reference.predictions).mean()),
                   "latency_p50_ms": got.latency_p50_ms}
            row["accuracy_drop"] = accuracy - row["accuracy"]
            row["failures"] = gate.judge(row, opts.max_accuracy_drop, opts.min_agreement)
            row["passed"] = not row["failures"]
            rows.append(row)
    failures = [f"{r['name']}: {w}" for r in rows for w in r["failures"]]
    return {
        "model": saved.as_posix(), "loader": opts.loader,
        "test_samples": int(len(labels)), "representative_samples": calibrated,
        "reference": {"size_bytes": _dir_size(saved), "accuracy": accuracy,
                      "latency_p50_ms": reference.latency_p50_ms},
        "variants": rows,
        "gate": {"max_accuracy_drop": opts.max_accuracy_drop, "min_agreement": opts.min_agreement,
                 "passed": not failures, "failures": failures},
    }


def _write(opts: Options, converted: dict[str, bytes], result: dict[str, Any]) -> None:
    out = opts.root / opts.out
    for name, blob in converted.items():
        atomic_write(out / f"model-{name}.tflite", blob)
    atomic_write(out / "edge.json", json.dumps(result, indent=2) + "\n")
    atomic_write(opts.root / opts.section, table.markdown(result))


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
