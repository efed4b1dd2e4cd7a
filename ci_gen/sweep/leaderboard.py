"""The sweep's leaderboard (`ci-gen job sweep-collect`): every cell's params, metric, duration
and how it got its model, best first by the metric and its direction; OUT/leaderboard.json,
OUT/leaderboard.md and the section eval-report appends to its one MR note.

A sweep with a missing, duplicated or foreign cell is refused: a leaderboard that silently
drops a cell would name the wrong best.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from pydantic import Field

from ci_gen.errors import CiGenError
from ci_gen.evaluation.metrics import check_metric_name, is_num
from ci_gen.files import TooLarge, atomic_write, read_limited
from ci_gen.inputs import GITLAB_MATRIX_LIMIT
from ci_gen.parse import Model, ParseError, parse_json
from ci_gen.sweep import grid

DIRECTIONS = ("higher", "lower")
MAX_CELL_BYTES = 1024 * 1024  # a cell's params and metrics: a few KiB


class CellResult(Model):
    """OUT/cell-<index>.json as `ci-gen job sweep-cell` writes it (the fields read here)."""

    index: int = Field(ge=1)
    total: int = Field(ge=1)
    params: dict[str, Any]
    metrics: dict[str, Any]
    seconds: float = Field(ge=0)
    how: str
    summary: str = ""
    job: str = ""
    job_url: str = ""


def read_cells(cells: Path, max_cells: int = GITLAB_MATRIX_LIMIT) -> list[dict[str, Any]]:
    """The cells' results, checked to be one complete sweep of at most `max_cells` cells.
    Every number a file claims is checked against `max_cells` before anything is built from
    it: a file claiming 10**12 cells is one line, not a set of 10**12 numbers."""
    files = sorted(cells.glob("cell-*.json")) if cells.is_dir() else []
    if not files:
        raise CiGenError(f"sweep-collect: no cell results in {cells} (did the sweep's cells run and "
                         f"keep their artifacts?)")
    if len(files) > max_cells:
        raise CiGenError(f"sweep-collect: the sweep has {len(files)} cells, more than "
                         f"max-cells ({max_cells})")
    found: dict[int, dict[str, Any]] = {}
    for path in files:
        cell = _cell(path)
        for field, value in (("index", cell.index), ("total", cell.total)):
            if value > max_cells:
                raise CiGenError(f"sweep-collect: {path}: {field} is {_count(value)}, more than "
                                 f"max-cells ({max_cells})")
        if cell.index in found:
            raise CiGenError(f"sweep-collect: two results for cell {cell.index}")
        found[cell.index] = cell.model_dump()
    totals = {c["total"] for c in found.values()}
    total = max(totals)
    missing = sorted(set(range(1, total + 1)) - set(found))
    if len(totals) != 1 or missing or len(found) != total:
        raise CiGenError(f"sweep-collect: the sweep has {total} cells but "
                         f"{'cell(s) ' + ', '.join(map(str, missing)) + ' are' if missing else 'results disagree'}"
                         f" missing from {cells}")
    return [found[i] for i in sorted(found)]


def _cell(path: Path) -> CellResult:
    """One cell file, parsed: a wrong shape is one line naming the file and the field."""
    try:
        raw = read_limited(path, MAX_CELL_BYTES)
    except TooLarge:
        raise CiGenError(f"sweep-collect: {path} is larger than {MAX_CELL_BYTES // 1024} KiB: "
                         f"not a cell result of ci-gen job sweep-cell") from None
    except OSError as exc:
        raise CiGenError(f"sweep-collect: cannot read {path}: {exc.strerror}") from None
    try:
        return parse_json(CellResult, raw, f"sweep-collect: cell result {path}")
    except ParseError as exc:
        raise CiGenError(str(exc)) from None


def _count(value: int) -> str:
    return str(value) if value < 10 ** 15 else f"a {len(str(value))}-digit number"


def build(cells: Path, *, metric: str, direction: str, max_cells: int) -> dict[str, Any]:
    """The leaderboard: rows best first, the best marked."""
    check_metric_name(metric, "--metric")
    if direction not in DIRECTIONS:
        raise CiGenError(f"sweep-collect: --direction must be higher or lower, got {direction!r}")
    if not 1 <= max_cells <= GITLAB_MATRIX_LIMIT:
        raise CiGenError(f"sweep-collect: --max-cells must be from 1 to {GITLAB_MATRIX_LIMIT}, got {max_cells}")
    rows = read_cells(cells, max_cells)
    if len(rows) > max_cells:
        raise CiGenError(f"sweep-collect: the sweep has {len(rows)} cells, more than max-cells ({max_cells})")
    for row in rows:
        if not is_num(row["metrics"].get(metric)):
            raise CiGenError(f"sweep-collect: cell {row['index']} has no number named {metric!r}")
    sign = -1 if direction == "higher" else 1
    ranked = sorted(rows, key=lambda r: (sign * r["metrics"][metric], r["index"]))
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank
    return {"metric": metric, "direction": direction, "cells": ranked, "best": ranked[0]}


def markdown(board: Mapping[str, Any]) -> str:
    metric, cells = board["metric"], board["cells"]
    names = list(dict.fromkeys(p for c in cells for p in c["params"]))
    best = board["best"]
    lines = [
        "## Hyperparameter sweep",
        "",
        f"{len(cells)} cells, ranked by `{metric}` ({board['direction']} is better). Best: "
        f"**{grid.label(best['params'])}** with {metric} {_fmt(best['metrics'][metric])}; the manual "
        f"sweep-apply job opens a merge request with these params.",
        "",
        "| rank | " + " | ".join(f"`{n}`" for n in names) + f" | `{metric}` | duration | model |",
        "|" + "---|" * (len(names) + 4),
    ]
    for c in cells:
        mark = " 🏆" if c["index"] == best["index"] else ""
        values = " | ".join(_param(c["params"].get(n)) for n in names)
        lines.append(f"| {c['rank']}{mark} | {values} | {_fmt(c['metrics'][metric])} | "
                     f"{c['seconds']:.1f} s | {c['how']} |")
    return "\n".join(lines + [""])


def _param(value: Any) -> str:
    """A cell's param as the grid wrote it: 0.003 stays `0.003` (the shortest form that reads
    back as the same number), never padded to a metric's four decimals."""
    if isinstance(value, float) and not isinstance(value, bool):
        return repr(value)
    return _fmt(value)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"
    return "—" if value is None else str(value)


def collect(cells: Path, out: Path, section: Path, *, metric: str, direction: str,
            max_cells: int) -> dict[str, Any]:
    """Build the leaderboard and write it (JSON, markdown, the report section)."""
    board = build(cells, metric=metric, direction=direction, max_cells=max_cells)
    text = markdown(board)
    atomic_write(out / "leaderboard.json", json.dumps(board, indent=2) + "\n")
    atomic_write(out / "leaderboard.md", text)
    atomic_write(section, text)
    return board
