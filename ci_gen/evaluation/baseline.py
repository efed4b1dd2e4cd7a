"""The baseline of eval-report: which ref to compare with, its metrics, and the params diff.

The baseline metrics come from `dvc.api.read(path, rev=REF)`, which finds the file in git,
the DVC cache or the remote, so the target branch never has to be checked out. The params
diff compares `git show REF:params.yaml` with the work tree.

Two kinds of "no baseline" are kept apart. A target branch that has no metrics yet (the first
model, a renamed file) is a note in the report. A baseline that cannot be computed (git missing
from the image, a ref missing from a shallow clone, a DVC remote that fails) is an error: a
report without its comparison would let the quality gate pass on nothing.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import subprocess
from pathlib import Path
from typing import Any, Mapping

from ci_gen import gitcmd
from ci_gen.errors import CiGenError, UsageError
from ci_gen.evaluation.metrics import flatten, parse_metrics
from ci_gen.patterns import RE_GIT_REF

NO_MR = "no baseline: not a merge request pipeline"
_MISSING = object()


class BaselineError(CiGenError):
    """The baseline was asked for but cannot be computed (a tool or remote failed)."""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return gitcmd.run(repo, *args)
    except gitcmd.GitMissing:  # e.g. python:3.11-slim images ship without git
        raise BaselineError("eval-report: cannot compute the baseline: git is not installed "
                            f"({os.strerror(errno.ENOENT)}); use a job image with git") from None


def resolve_baseline(explicit: str, env: Mapping[str, str], repo: Path) -> tuple[str | None, str | None]:
    """(ref, note): the ref to compare with, or None and why not."""
    ref = explicit or ""
    if not ref:
        target = env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "")
        if not target:
            return None, NO_MR
        if not re.fullmatch(RE_GIT_REF, target):
            return None, f"no baseline: target branch name {target[:80]!r} is not usable as a ref"
        # In CI the target branch exists only as a remote-tracking ref (GIT_DEPTH 0 fetches it).
        remote = f"origin/{target}"
        ok = _git(repo, "rev-parse", "--verify", "--quiet", f"refs/remotes/{remote}^{{commit}}")
        ref = remote if ok.returncode == 0 else target
    elif not re.fullmatch(RE_GIT_REF, ref):
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
    from ci_gen import yamlload

    try:
        doc = yamlload.load(text, "dvc file")
    except yamlload.YamlError:
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
    from ci_gen import yamlload

    if ref is None:
        return [], None
    try:
        current_text = yamlload.read_text(params, str(params)) if params.is_file() else None
    except yamlload.YamlError as exc:
        return [], f"params diff skipped: {exc}"
    rel = os.path.relpath(params.resolve(), repo.resolve())
    old = _git(repo, "show", f"{ref}:./{rel}")
    old_text = old.stdout if old.returncode == 0 else None
    if current_text is None and old_text is None:
        return [], None
    try:
        cur = flatten(yamlload.load(current_text or "", rel) or {})
        base = flatten(yamlload.load(old_text or "", f"{ref}:{rel}") or {})
    except yamlload.YamlError as exc:
        return [], f"params diff skipped: {exc}"
    rows = []
    for key in sorted(set(cur) | set(base)):
        if cur.get(key, _MISSING) != base.get(key, _MISSING):
            rows.append({"param": key, "baseline": base.get(key), "current": cur.get(key)})
    return rows, None
