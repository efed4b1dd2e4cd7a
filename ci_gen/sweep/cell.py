"""One sweep cell (`ci-gen job sweep-cell`): this cell's params written into the work tree's
params file (never committed), then the DVC pipeline brought back as the train job does it:
restored when dvc.lock matches, reused from the run cache when an earlier pipeline ran the
same params, else trained, and the run cache pushed so the next pipeline reuses it. The
cell's params, metrics, duration and how it got them go into OUT/cell-<index>.json.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ci_gen import yamlload
from ci_gen.errors import CiGenError
from ci_gen.evaluation.metrics import check_metric_name, flatten, is_num, load_metrics
from ci_gen.files import atomic_write
from ci_gen.sweep import grid


@dataclass
class Options:
    params: Path
    metrics: Path
    metric: str
    max_cells: int
    out: Path
    data: list[str]
    requirements: str | None = None
    root: Path = Path(".")


def prepare(opts: Options, env: Mapping[str, str]) -> tuple[int, int, dict[str, Any], str]:
    """(index, total, params, new params text): everything checked before anything runs."""
    check_metric_name(opts.metric, "--metric")
    index, total = grid.node(env, opts.max_cells)
    path = opts.root / opts.params
    try:
        text = yamlload.read_text(path, str(opts.params), what="params file")
    except yamlload.YamlError as exc:
        raise CiGenError(f"sweep: {exc}") from None
    params = grid.cell_params(env, grid.load(text, str(opts.params)), str(opts.params))
    return index, total, params, grid.apply(text, params, str(opts.params))


def run(opts: Options, env: Mapping[str, str] | None = None,
        say: Callable[[str], None] = print, reproduce: Callable[..., Any] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    index, total, params, text = prepare(opts, env)
    say(f"sweep: cell {index}/{total}: {grid.label(params)}")
    atomic_write(opts.root / opts.params, text)
    if reproduce is None:
        from ci_gen.dvcrepo.reproduce import reproduce  # imports DVC: only when a cell runs
    start = time.monotonic()
    outcome = reproduce(opts.root, data=opts.data, requirements=opts.requirements, push_run_cache=True)
    seconds = round(time.monotonic() - start, 2)
    metrics = flatten(load_metrics(opts.root / opts.metrics))
    if not is_num(metrics.get(opts.metric)):
        raise CiGenError(f"sweep: {opts.metrics} has no number named {opts.metric!r} "
                         f"(it has: {', '.join(sorted(metrics)) or 'nothing'})")
    result = {"index": index, "total": total, "params": params, "metrics": metrics,
              "seconds": seconds, "how": outcome.how, "summary": outcome.summary,
              "job": env.get("CI_JOB_NAME", ""), "job_url": env.get("CI_JOB_URL", "")}
    atomic_write(opts.root / opts.out / f"cell-{index}.json", json.dumps(result, indent=2) + "\n")
    say(f"sweep: cell {index}/{total}: {opts.metric} {metrics[opts.metric]} "
        f"({outcome.summary}, {seconds} s)")
    return result
