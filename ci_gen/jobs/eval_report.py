"""`ci-gen job eval-report`: report.md + report.json from the metrics, vs. a baseline ref.

The baseline metrics come from `dvc.api.read(path, rev=REF)`, which finds the file in git,
the DVC cache or the remote, so the target branch never has to be checked out. The params
diff compares `git show REF:params.yaml` with the work tree.

Two kinds of "no baseline" are kept apart. A target branch that has no metrics yet (the first
model, a renamed file) is a note in the report. A baseline that cannot be computed (git missing
from the image, a ref missing from a shallow clone, a DVC remote that fails) is an error: a
report without its comparison would let the quality gate pass on nothing.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import posixpath
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping

from ci_gen import __version__
from ci_gen.components import NONE, given
from ci_gen.errors import CiGenError, UsageError
from ci_gen.jobs.gate import DIRECTIONS, METRIC

# A git ref as the job passes it: a branch, `origin/<branch>`, a tag, a SHA, `main~1`; never
# an option (it starts with a letter, digit or `_`).
_REF = re.compile(r"^(?!.*\.\.)(?!.*//)[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}(?<![./])([~^][0-9]{0,3}){0,5}$")
_PATH = re.compile(r"^/?[A-Za-z0-9_.][A-Za-z0-9_./ -]{0,299}$")

NO_MR = "no baseline: not a merge request pipeline"
_MISSING = object()
# Which way a metric is better, by the words of its last dotted part ("val_loss" -> loss).
_LOWER_WORDS = frozenset({"loss", "error", "err", "errors", "mse", "mae", "rmse", "mape", "msle",
                          "latency", "duration", "seconds", "ms", "perplexity", "fpr", "fnr",
                          "wer", "cer", "brier", "logloss", "hinge"})
_HIGHER_WORDS = frozenset({"accuracy", "acc", "precision", "recall", "f1", "auc", "roc", "map",
                           "iou", "dice", "r2", "bleu", "rouge", "ndcg", "specificity",
                           "sensitivity", "tpr", "tnr", "throughput"})


class BaselineError(CiGenError):
    """The baseline was asked for but cannot be computed (a tool or remote failed)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-report", help="write report.md and report.json (metrics, diff vs. a baseline)",
        description="Write DIR/report.md (metrics, comparison with the baseline ref, params "
        "diff, confusion matrix) and DIR/report.json (metrics, baseline, deltas). Baseline: "
        "--baseline, else the merge request's target branch, else none.")
    p.add_argument("--metrics", required=True, metavar="PATH", help="metrics file (JSON or YAML)")
    p.add_argument("--image", default="", metavar="PATH",
                   help="confusion matrix image copied next to the report (none: no image)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--baseline", default="", metavar="REF",
                   help="git ref to compare with (default: $CI_MERGE_REQUEST_TARGET_BRANCH_NAME)")
    p.add_argument("--params", default="params.yaml", metavar="PATH",
                   help="params file diffed against the baseline (default: params.yaml)")
    p.add_argument("--gate-metric", default="", metavar="NAME",
                   help="the quality gate's metric: its change is judged by --gate-direction")
    p.add_argument("--gate-direction", default="higher", choices=DIRECTIONS,
                   help="which way the gate metric is better (default: higher)")
    p.set_defaults(func=run)


# ---------------------------------------------------------------- reading and flattening

def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {"a.b.c": leaf}. Lists are leaves (shown as JSON)."""
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten(value, name))
        return out
    return {prefix: data} if prefix else {}


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_metrics(text: str, name: str) -> dict[str, Any]:
    """Metrics text (JSON, or YAML for .yaml/.yml) -> nested dict; errors name the file."""
    import yaml

    try:
        data = yaml.safe_load(text) if name.endswith((".yaml", ".yml")) else json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CiGenError(f"eval-report: {name} is not valid "
                         f"{'YAML' if name.endswith(('.yaml', '.yml')) else 'JSON'}: "
                         f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise CiGenError(f"eval-report: {name} must hold a mapping of metric names to values")
    return data


def load_metrics(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CiGenError(f"eval-report: metrics file {path} not found "
                         "(did the train job run and keep it as an artifact?)")
    return parse_metrics(path.read_text(encoding="utf-8"), str(path))


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    except OSError as exc:  # e.g. python:3.11-slim images ship without git
        raise BaselineError("eval-report: cannot compute the baseline: git is not installed "
                            f"({exc.strerror}); use a job image with git") from None


def resolve_baseline(explicit: str, env: Mapping[str, str], repo: Path) -> tuple[str | None, str | None]:
    """(ref, note): the ref to compare with, or None and why not."""
    ref = explicit or ""
    if not ref:
        target = env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "")
        if not target:
            return None, NO_MR
        if not _REF.match(target):
            return None, f"no baseline: target branch name {target[:80]!r} is not usable as a ref"
        # In CI the target branch exists only as a remote-tracking ref (GIT_DEPTH 0 fetches it).
        remote = f"origin/{target}"
        ok = _git(repo, "rev-parse", "--verify", "--quiet", f"refs/remotes/{remote}^{{commit}}")
        ref = remote if ok.returncode == 0 else target
    elif not _REF.match(ref):
        raise UsageError(f"eval-report: --baseline {ref[:80]!r} is not a git ref name")
    ok = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if ok.returncode != 0:
        why = ok.stderr.strip().splitlines()[-1][:200] if ok.stderr.strip() else (
            "shallow clone? set GIT_DEPTH: 0 or fetch the target branch")
        raise BaselineError(f"eval-report: cannot compute the baseline: ref {ref} not found "
                            f"in this clone ({why})")
    return ref, None


def _dvc_outs(text: str) -> list[str]:
    """The `outs` paths of a dvc.lock or a .dvc file's text (malformed: none)."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    if not isinstance(doc, dict):
        return []
    stages = doc.get("stages") if isinstance(doc.get("stages"), dict) else {"": doc}
    outs = [stage.get("outs") for stage in stages.values() if isinstance(stage, dict)]
    return [o["path"] for group in outs if isinstance(group, list)
            for o in group if isinstance(o, dict) and isinstance(o.get("path"), str)]


def _tracked_at(rel: str, ref: str, repo: Path) -> bool:
    """Does `ref` hold `rel`, in git or as an output of a dvc.lock or *.dvc file there?"""
    listed = _git(repo, "ls-tree", "-r", "--name-only", "-z", ref)
    if listed.returncode != 0:
        raise BaselineError(f"eval-report: cannot compute the baseline: git ls-tree {ref} "
                            f"failed ({(listed.stderr.strip() or 'no output')[:200]})")
    files = listed.stdout.split("\0")
    if rel in files:
        return True
    for pointer in (f for f in files if f.endswith((".dvc", "/dvc.lock")) or f == "dvc.lock"):
        shown = _git(repo, "show", f"{ref}:{pointer}")
        base = posixpath.dirname(pointer)
        for out in _dvc_outs(shown.stdout) if shown.returncode == 0 else ():
            path = posixpath.normpath(posixpath.join(base, out)).rstrip("/")
            if rel == path or rel.startswith(path + "/"):
                return True
    return False


def read_baseline(metrics: Path, ref: str, repo: Path) -> tuple[dict[str, Any] | None, str | None]:
    """Baseline metrics at `ref` via DVC (git, cache or remote), or (None, note)."""
    try:
        import dvc.api
    except ImportError:
        raise BaselineError("eval-report: cannot compute the baseline: DVC is not installed "
                            "(pip install 'ci-gen[dvc]')") from None
    rel = Path(os.path.relpath(metrics.resolve(), repo.resolve())).as_posix()
    if rel.startswith(".."):
        raise BaselineError(f"eval-report: cannot compute the baseline: {metrics} is outside "
                            "the repository")
    if not _tracked_at(rel, ref, repo):
        return None, f"no baseline: {ref} has no {rel} (no metrics on the target branch yet)"
    try:
        text = dvc.api.read(rel, repo=os.fspath(repo), rev=ref, encoding="utf-8")
    except Exception as exc:  # noqa: BLE001 - DVC raises many types; each means "cannot read"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BaselineError(f"eval-report: cannot compute the baseline: DVC could not read "
                            f"{rel} at {ref} ({first[:200]}); is the DVC remote reachable, "
                            "with its credentials set?") from None
    try:
        return parse_metrics(text, rel), None
    except CiGenError as exc:
        return None, f"no baseline: {str(exc).removeprefix('eval-report: ')} at {ref}"


def params_diff(params: Path, ref: str | None, repo: Path) -> tuple[list[dict], str | None]:
    """Changed params [{param, baseline, current}] between `ref` and the work tree."""
    import yaml

    if ref is None:
        return [], None
    current_text = params.read_text(encoding="utf-8") if params.is_file() else None
    rel = os.path.relpath(params.resolve(), repo.resolve())
    old = _git(repo, "show", f"{ref}:./{rel}")
    old_text = old.stdout if old.returncode == 0 else None
    if current_text is None and old_text is None:
        return [], None
    try:
        cur = flatten(yaml.safe_load(current_text or "") or {})
        base = flatten(yaml.safe_load(old_text or "") or {})
    except yaml.YAMLError:
        return [], f"params diff skipped: {rel} is not valid YAML"
    rows = []
    for key in sorted(set(cur) | set(base)):
        if cur.get(key, _MISSING) != base.get(key, _MISSING):
            rows.append({"param": key, "baseline": base.get(key), "current": cur.get(key)})
    return rows, None


# ---------------------------------------------------------------- building the report

def deltas(current: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> dict[str, float]:
    if baseline is None:
        return {}
    return {k: current[k] - baseline[k] for k in current
            if k in baseline and _is_num(current[k]) and _is_num(baseline[k])}


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _fmt_delta(delta: float | None) -> str:
    if delta is None:
        return "—"
    if delta == 0:
        return "= 0"
    arrow = "▲" if delta > 0 else "▼"
    if isinstance(delta, int):
        return f"{arrow} {delta:+d}"
    return f"{arrow} {delta:+.4f}" if abs(delta) >= 1e-3 else f"{arrow} {delta:+.3g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def split_blocks(nested: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, dict]]]:
    """Scalars (flattened) and per-class style blocks: {name: {row: {col: number}}}.

    A block is a top-level mapping whose values are all mappings of numbers (per class,
    per label...); it reads better as one compact row-by-column table.
    """
    scalars: dict[str, Any] = {}
    blocks: dict[str, dict[str, dict]] = {}
    for key, value in nested.items():
        if (isinstance(value, Mapping) and len(value) > 1
                and all(isinstance(v, Mapping) and v and all(_is_num(x) for x in v.values())
                        for v in value.values())):
            blocks[str(key)] = {str(r): dict(v) for r, v in value.items()}
        else:
            scalars.update(flatten({key: value}))
    return scalars, blocks


def _union(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[str]:
    return list(first) + [k for k in second if k not in first]


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


def _change(k: str, report: Mapping[str, Any]) -> str:
    cur, base, delta = report["metrics"], report["baseline"], report["deltas"]
    if k not in base:
        return "new"
    if k not in cur:
        return "removed"
    if k not in delta:
        return "=" if cur[k] == base[k] else "changed"
    said = report["verdicts"].get(k)
    return _fmt_delta(delta[k]) + (f" {said}" if said else "")


def _diff_table(names: list[str], report: Mapping[str, Any], ref: str) -> list[str]:
    cur, base = report["metrics"], report["baseline"]
    rows = [[f"`{k}`", _fmt(base.get(k)), _fmt(cur.get(k)), _change(k, report)] for k in names]
    return _table(["metric", f"`{ref}`", "current", "change"], rows)


def pipeline_link(env: Mapping[str, str]) -> str | None:
    """"[pipeline #N](URL)" with N read from the URL itself, so the two always agree.

    GitLab's CI_PIPELINE_URL ends in CI_PIPELINE_ID, gitlab-ci-local's in CI_PIPELINE_IID.
    """
    url = env.get("CI_PIPELINE_URL", "")
    if url:
        tail = url.rstrip("/").rsplit("/", 1)[-1]
        return f"[pipeline #{tail}]({url})" if tail.isdigit() else f"[pipeline]({url})"
    number = env.get("CI_PIPELINE_ID") or env.get("CI_PIPELINE_IID")
    return f"pipeline #{number}" if number else None


def _footer(env: Mapping[str, str]) -> str:
    parts = [f"Generated by ci-gen {__version__}"]
    sha = env.get("CI_COMMIT_SHORT_SHA") or env.get("CI_COMMIT_SHA", "")[:8]
    if sha:
        ref = env.get("CI_COMMIT_REF_NAME")
        parts.append(f"commit `{sha}`" + (f" on `{ref}`" if ref else ""))
    link = pipeline_link(env)
    if link:
        parts.append(link)
    if env.get("CI_JOB_URL"):
        parts.append(f"[job]({env['CI_JOB_URL']})")
    return " · ".join(parts)


def render_markdown(report: Mapping[str, Any], nested: Mapping[str, Any],
                    env: Mapping[str, str]) -> str:
    lines = ["# Model evaluation report", ""]
    scalars, blocks = split_blocks(nested)
    lines += ["## Metrics", ""]
    if scalars:
        lines += _table(["metric", "value"], [[f"`{k}`", _fmt(v)] for k, v in scalars.items()])
    else:
        lines.append("_no scalar metrics_")
    for name, block in blocks.items():
        cols: list[str] = []
        for row in block.values():
            cols += [c for c in row if c not in cols]
        lines += ["", f"### {name}", ""]
        lines += _table([name.replace("_", " ")] + cols,
                        [[_fmt(r)] + [_fmt(vals.get(c)) for c in cols] for r, vals in block.items()])

    base, ref = report["baseline"], report["baseline_ref"]
    lines += [""]
    if ref is None:
        lines += ["## Comparison", "", f"_{report['baseline_note'] or NO_MR}_"]
    else:
        lines += [f"## Compared with `{ref}`", ""]
        if base is None:
            lines.append(f"_{report['baseline_note']}_")
        else:
            in_block = {k for name, block in blocks.items() for k in flatten({name: block})}
            main = [k for k in _union(report["metrics"], base) if k not in in_block]
            lines += _diff_table(main, report, ref) if main else ["_no metrics_"]
            changed = [k for k in _union(report["metrics"], base)
                       if k in in_block and report["deltas"].get(k, 1) != 0]
            if changed:
                lines += ["", f"<details><summary>{len(changed)} changed per-class "
                          "values</summary>", ""]
                lines += _diff_table(changed, report, ref) + ["", "</details>"]

        lines += ["", "### Params changed", ""]
        if report["params_note"]:
            lines.append(f"_{report['params_note']}_")
        elif report["params_diff"]:
            lines += _table(["param", f"`{ref}`", "current"],
                            [[f"`{d['param']}`", _fmt(d["baseline"]), _fmt(d["current"])]
                             for d in report["params_diff"]])
        else:
            lines.append("_no params changed_")

    if report["image"]:
        lines += ["", "## Confusion matrix", "", f"![confusion matrix]({report['image']})"]
    elif report["image_note"]:
        lines += ["", "## Confusion matrix", "", f"_{report['image_note']}_"]
    lines += ["", "---", "", _footer(env), ""]
    return "\n".join(lines)


def build(metrics: Path, out: Path, image: str = "", baseline: str = "",
          params: Path = Path("params.yaml"), repo: Path = Path("."),
          env: Mapping[str, str] | None = None, gate_metric: str = "",
          gate_direction: str = "higher") -> dict[str, Any]:
    """Write out/report.md and out/report.json; return the JSON document."""
    env = os.environ if env is None else env
    image, gate_metric = given(image, NONE), given(gate_metric, NONE)
    if not METRIC.fullmatch(gate_metric):
        raise UsageError(f"eval-report: --gate-metric {gate_metric[:60]!r} is not a metric name")
    for flag, value in (("--metrics", str(metrics)), ("--out", str(out)), ("--params", str(params)),
                        ("--image", image)):
        if value and not _PATH.fullmatch(value):
            raise UsageError(f"eval-report: {flag} {value[:80]!r} is not a plain path")
    nested = load_metrics(metrics)
    current = flatten(nested)

    ref, note = resolve_baseline(baseline, env, repo)
    base_nested = None
    if ref is not None:
        base_nested, note = read_baseline(metrics, ref, repo)
    base = flatten(base_nested) if base_nested is not None else None
    rows, params_note = params_diff(params, ref, repo)

    try:
        has_image = bool(image) and Path(image).is_file()  # before anything is created
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CiGenError(f"eval-report: cannot create {out}: {exc.strerror}") from None
    image_name, image_note = None, None
    if image:
        src = Path(image)
        if has_image:
            image_name = src.name
            if src.resolve() != (out / image_name).resolve():
                shutil.copyfile(src, out / image_name)
        else:
            image_note = f"image {image} not found"

    changes = deltas(current, base)
    report = {
        "metrics": current,
        "baseline": base,
        "baseline_ref": ref,
        "baseline_note": note,
        "deltas": changes,
        "verdicts": {k: verdict(d, direction(k, gate_metric, gate_direction))
                     for k, d in changes.items()},
        "params_diff": rows,
        "params_note": params_note,
        "image": image_name,
        "image_note": image_note,
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": env.get("CI_COMMIT_SHA") or None,
        "pipeline_url": env.get("CI_PIPELINE_URL") or None,
    }
    _write(out / "report.md", render_markdown(report, nested, env))
    _write(out / "report.json", json.dumps(report, indent=2, sort_keys=False) + "\n")
    return report


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise CiGenError(f"eval-report: cannot write {path}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    report = build(Path(args.metrics), out, image=given(args.image, NONE), baseline=args.baseline,
                   params=Path(args.params), gate_metric=args.gate_metric,
                   gate_direction=args.gate_direction)
    print(f"eval-report: wrote {out / 'report.md'} and {out / 'report.json'} "
          f"({len(report['metrics'])} metrics)")
    if report["baseline"] is not None:
        print(f"eval-report: compared with {report['baseline_ref']}")
    else:
        print(f"eval-report: {report['baseline_note']}")
    return 0
