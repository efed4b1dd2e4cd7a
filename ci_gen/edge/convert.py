"""The edge-convert job: convert, measure against the SavedModel, judge, write.

Writes OUT/model-<variant>.tflite for each variant, OUT/edge.json (every figure and the
gate's verdict) and SECTION, the markdown table eval-report appends to the MR report. The
gate's verdict is recorded, not enforced: `ci-gen job edge-gate` fails the pipeline on it.
Measurements of an unchanged model come from the cache (see `cache`); only a real conversion
installs the project's requirements. Nothing is written until every variant converted and ran.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ci_gen.edge import cache, gate, measure, samples, table, variants
from ci_gen.errors import UsageError
from ci_gen.files import atomic_write
from ci_gen.inputs import check_paths

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
    data: str = ""  # the data's DVC pointer, part of the cache key
    requirements: str = ""  # installed before a real conversion
    cache: Path | None = None


def check(opts: Options) -> None:
    """Every flag, before anything is imported or written."""
    paths = [("--model", opts.model), ("--out", opts.out), ("--section", opts.section),
             ("--data", opts.data), ("--requirements", opts.requirements), ("--cache", opts.cache)]
    check_paths(paths, "edge-convert: ")
    for flag, n in (("--representative-samples", opts.representative_samples),
                    ("--test-samples", opts.test_samples)):
        if not 1 <= n <= MAX_SAMPLES:
            raise UsageError(f"edge-convert: {flag} must be between 1 and {MAX_SAMPLES}, got {n}")
    gate.check_bounds(opts.max_accuracy_drop, opts.min_agreement)
    samples.check_spec(opts.loader)


def run(opts: Options, say: Callable[[str], None] = print,
        install: Callable[[Path, str], None] | None = None) -> dict[str, Any]:
    check(opts)
    saved = variants.find_saved_model(opts.root / opts.model)
    entry = cache.key(opts.root, saved, opts.data, opts.loader,
                      (opts.representative_samples, opts.test_samples))
    hit = cache.load(opts.root / opts.cache, entry, opts.root, say) if opts.cache else None
    if hit is not None:
        say("edge-convert: reused the measurements of an earlier run (same model, data pointer, "
            "loader and sample counts); nothing converted or installed")
        measured, blobs = hit
    else:
        if opts.requirements:
            from ci_gen.dvcrepo.reproduce import pip_install

            (install or pip_install)(opts.root, opts.requirements, "edge-convert")
        measured, blobs = _measure(opts, saved, say)
        if opts.cache:
            cache.store(opts.root / opts.cache, entry, measured, blobs, opts.root, say)
    result = _judge(opts, measured)
    _write(opts, blobs, result)
    for row in result["variants"]:
        say(f"edge-convert: {row['name']}: accuracy {row['accuracy']:.4f} "
            f"({row['accuracy'] - result['reference']['accuracy']:+.4f}), agreement {row['agreement']:.4f}, "
            f"p50 {row['latency_p50_ms']:.3f} ms, {'pass' if row['passed'] else 'FAIL'}")
    return result


def _measure(opts: Options, saved: Path, say: Callable[[str], None]
             ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Convert every variant and measure it next to the SavedModel: (figures, .tflite bytes)."""
    loader = samples.load_loader(opts.loader, opts.root)
    train_x, _ = samples.split(loader, "train", opts.loader)
    calibration = samples.representative(train_x, opts.representative_samples, opts.loader)
    test_x, test_y = samples.split(loader, "test", opts.loader)
    if len(test_x) == 0:
        raise UsageError(f"edge-convert: the test set is empty: {opts.loader}('test') "
                         "returned no samples")
    test_x, test_y = test_x[:opts.test_samples], test_y[:opts.test_samples]

    blobs = {v: variants.convert(saved, v, calibration) for v in variants.VARIANTS}
    say(f"edge-convert: converted {saved}: "
        + ", ".join(f"{v} ({len(b):,} bytes)" for v, b in blobs.items()))
    say(f"edge-convert: measuring each against the SavedModel on {len(test_x)} held-out samples")
    reference = measure.saved_model(saved, test_x)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ci-gen-edge-") as tmp:
        for name, blob in blobs.items():
            path = Path(tmp) / f"{name}.tflite"
            path.write_bytes(blob)
            got = measure.litert(path, test_x)
            rows.append({"name": name, "size_bytes": len(blob), "sha256": cache.sha256(blob),
                         "accuracy": float((got.predictions == test_y).mean()),
                         "agreement": float((got.predictions == reference.predictions).mean()),
                         "latency_p50_ms": got.latency_p50_ms})
    measured = {
        "model": saved.as_posix(), "loader": opts.loader,
        "test_samples": int(len(test_y)), "representative_samples": int(len(calibration)),
        "reference": {"size_bytes": _dir_size(saved),
                      "accuracy": float((reference.predictions == test_y).mean()),
                      "latency_p50_ms": reference.latency_p50_ms},
        "variants": rows,
    }
    return measured, blobs


def _judge(opts: Options, measured: dict[str, Any]) -> dict[str, Any]:
    """edge.json's document: the figures, each variant judged, the gate's verdict."""
    rows = []
    for row in measured["variants"]:
        row = {**row, "file": (opts.out / f"model-{row['name']}.tflite").as_posix(),
               "accuracy_drop": measured["reference"]["accuracy"] - row["accuracy"]}
        row["failures"] = gate.judge(row, opts.max_accuracy_drop, opts.min_agreement)
        row["passed"] = not row["failures"]
        rows.append(row)
    failures = [f"{r['name']}: {w}" for r in rows for w in r["failures"]]
    return {**measured, "variants": rows,
            "gate": {"max_accuracy_drop": opts.max_accuracy_drop,
                     "min_agreement": opts.min_agreement,
                     "passed": not failures, "failures": failures}}


def _write(opts: Options, blobs: dict[str, bytes], result: dict[str, Any]) -> None:
    out = opts.root / opts.out
    for name, blob in blobs.items():
        atomic_write(out / f"model-{name}.tflite", blob)
    atomic_write(out / "edge.json", json.dumps(result, indent=2) + "\n")
    atomic_write(opts.root / opts.section, table.markdown(result))


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
