"""Metrics as eval-report reads them: a JSON or YAML file, flattened to dotted names, and
which way each one is better.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

from ci_gen.errors import CiGenError, UsageError, shown
from ci_gen.patterns import RE_METRIC

# Which way a metric is better, by the words of its last dotted part ("val_loss" -> loss).
_LOWER_WORDS = frozenset({"loss", "error", "err", "errors", "mse", "mae", "rmse", "mape", "msle",
                          "latency", "duration", "seconds", "ms", "perplexity", "fpr", "fnr",
                          "wer", "cer", "brier", "logloss", "hinge"})
_HIGHER_WORDS = frozenset({"accuracy", "acc", "precision", "recall", "f1", "auc", "roc", "map",
                           "iou", "dice", "r2", "bleu", "rouge", "ndcg", "specificity",
                           "sensitivity", "tpr", "tnr", "throughput"})


def check_metric_name(name: str, flag: str) -> None:
    """A metric name as the `gate-metric` input accepts it ("" is no metric), else a UsageError."""
    if name and not re.fullmatch(RE_METRIC, name):
        raise UsageError(f"{flag} {name[:60]!r} is not a metric name")


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {"a.b.c": leaf}. Lists are leaves (shown as JSON)."""
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten(value, name))
        return out
    return {prefix: data} if prefix else {}


def is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_metrics(text: str, name: str) -> dict[str, Any]:
    """Metrics text (JSON, or YAML for .yaml/.yml) -> nested dict; errors name the file."""
    from ci_gen import yamlload

    if name.endswith((".yaml", ".yml")):
        try:
            data = yamlload.load(text, name)
        except yamlload.YamlError as exc:
            raise CiGenError(f"eval-report: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise CiGenError(f"eval-report: {name} is not valid JSON: "
                             f"{(str(exc).splitlines() or ['nested too deeply'])[0]}") from None
    if not isinstance(data, dict):
        raise CiGenError(f"eval-report: {name} must hold a mapping of metric names to values")
    return data


def load_metrics(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CiGenError(f"eval-report: metrics file {shown(str(path))} not found "
                         "(did the train job run and keep it as an artifact?)")
    from ci_gen import yamlload

    try:
        text = yamlload.read_text(path, str(path), what="metrics file")
    except yamlload.YamlError as exc:
        raise CiGenError(f"eval-report: {exc}") from None
    return parse_metrics(text, str(path))


def split_blocks(nested: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, dict]]]:
    """Scalars (flattened) and per-class style blocks: {name: {row: {col: number}}}.

    A block is a top-level mapping whose values are all mappings of numbers (per class,
    per label...); it reads better as one compact row-by-column table.
    """
    scalars: dict[str, Any] = {}
    blocks: dict[str, dict[str, dict]] = {}
    for key, value in nested.items():
        if (isinstance(value, Mapping) and len(value) > 1
                and all(isinstance(v, Mapping) and v and all(is_num(x) for x in v.values())
                        for v in value.values())):
            blocks[str(key)] = {str(r): dict(v) for r, v in value.items()}
        else:
            scalars.update(flatten({key: value}))
    return scalars, blocks


def deltas(current: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> dict[str, float]:
    if baseline is None:
        return {}
    return {k: current[k] - baseline[k] for k in current
            if k in baseline and is_num(current[k]) and is_num(baseline[k])}


def direction(metric: str, gate_metric: str = "", gate_direction: str = "higher") -> str | None:
    """"higher", "lower" or None (unknown: no verdict) for a flattened metric name."""
    if gate_metric and metric == gate_metric:
        return gate_direction
    words = set(re.split(r"[^a-z0-9]+", metric.rsplit(".", 1)[-1].lower()))
    if words & _LOWER_WORDS:
        return "lower"
    if words & _HIGHER_WORDS:
        return "higher"
    return None


def verdict(delta: float, way: str | None) -> str | None:
    """"better", "worse" or None (no change, or a metric of unknown direction)."""
    if way is None or delta == 0:
        return None
    return "better" if (delta > 0) == (way == "higher") else "worse"
