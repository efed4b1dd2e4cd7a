"""How GitLab combines configuration: includes, `extends`, `default:` and `!reference`.

Only what the policy checks need is modelled: hashes merge deeply, everything else
(arrays included) is replaced by the later value.
"""

from __future__ import annotations

import copy
from typing import Any

from ci_gen.includes import Reference

# Top-level keys that are not jobs (https://docs.gitlab.com/ci/yaml/#global-keywords).
GLOBAL_KEYS = frozenset({
    "default", "include", "stages", "variables", "workflow", "spec",
    "image", "services", "cache", "before_script", "after_script", "$schema",
})
# Keys a job inherits from `default:` unless `inherit: default:` says otherwise.
DEFAULT_KEYS = ("after_script", "artifacts", "before_script", "cache", "hooks", "id_tokens",
                "image", "interruptible", "retry", "services", "tags", "timeout")
# Stages GitLab uses when a pipeline declares none; .pre and .post always exist.
DEFAULT_STAGES = (".pre", "build", "test", "deploy", ".post")
MAX_EXTENDS_DEPTH = 11


def deep_merge(base: Any, over: Any) -> Any:
    """`over` merged into `base` the way GitLab merges includes and `extends`."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return over


def jobs(config: dict) -> dict[str, dict]:
    """Every job and hidden job: top-level mappings that are not global keywords."""
    return {k: v for k, v in config.items()
            if isinstance(k, str) and k not in GLOBAL_KEYS and isinstance(v, dict)}


def visible(name: str) -> bool:
    return not name.startswith(".")


def extends_of(job: dict) -> list[str]:
    value = job.get("extends")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


class ExtendsError(Exception):
    """An `extends` chain that cannot be resolved (missing target, cycle, too deep)."""


def resolve_extends(name: str, all_jobs: dict[str, dict], _chain: tuple[str, ...] = ()) -> dict:
    """The job with its `extends` targets merged in, as GitLab computes it."""
    if name in _chain:
        raise ExtendsError(f"circular extends: {' -> '.join(_chain + (name,))}")
    if len(_chain) > MAX_EXTENDS_DEPTH:
        raise ExtendsError(f"extends nests deeper than {MAX_EXTENDS_DEPTH} levels: "
                           f"{' -> '.join(_chain + (name,))}")
    job = all_jobs[name]
    merged: dict = {}
    for parent in extends_of(job):
        if parent not in all_jobs:
            raise ExtendsError(f"extends {parent!r}, which is not defined")
        merged = deep_merge(merged, resolve_extends(parent, all_jobs, _chain + (name,)))
    merged = deep_merge(merged, {k: v for k, v in job.items() if k != "extends"})
    return merged


def _inherits(job: dict, key: str) -> bool:
    inherit = job.get("inherit")
    if not isinstance(inherit, dict) or "default" not in inherit:
        return True
    rule = inherit["default"]
    if isinstance(rule, bool):
        return rule
    return isinstance(rule, list) and key in rule


def effective(name: str, config: dict) -> dict:
    """A job as it runs: extends resolved, `default:` (and old top-level keys) filled in,
    `!reference` tags replaced. Raises ExtendsError."""
    all_jobs = jobs(config)
    job = resolve_extends(name, all_jobs)
    defaults = config.get("default") if isinstance(config.get("default"), dict) else {}
    for key in DEFAULT_KEYS:
        if key in job or not _inherits(job, key):
            continue
        if key in defaults:
            job[key] = copy.deepcopy(defaults[key])
        elif key in config and key in ("image", "services", "cache", "before_script", "after_script"):
            job[key] = copy.deepcopy(config[key])
    return resolve_references(job, config)


def resolve_references(node: Any, config: dict, depth: int = 0) -> Any:
    """Replace `!reference [.job, key, ...]` with what it points at, when it exists."""
    if isinstance(node, Reference):
        target: Any = config
        for part in node:
            if not isinstance(target, dict) or part not in target:
                return list(node)
            target = target[part]
        return resolve_references(target, config, depth + 1) if depth < 10 else target
    if isinstance(node, dict):
        return {k: resolve_references(v, config, depth) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_references(v, config, depth) for v in node]
    return node


def script_lines(job: dict, keys: tuple[str, ...] = ("before_script", "script", "after_script")) -> list[str]:
    """The shell lines of a job, nested lists flattened and `\\` continuations joined."""
    items: list[str] = []

    def flatten(value: Any) -> None:
        if isinstance(value, str):
            items.append(value)
        elif isinstance(value, list):
            for v in value:
                flatten(v)

    for key in keys:
        flatten(job.get(key))
    lines: list[str] = []
    for item in items:
        lines.extend(item.replace("\\\n", " ").splitlines())
    return lines
