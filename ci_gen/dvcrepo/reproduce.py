"""End with the DVC pipeline's outputs in the workspace, and say how (`ci-gen job train`).

A CI job starts from a clean checkout: dvc.lock may match the code, data and params while no
output is in the workspace. `dvc repro --pull --allow-missing` then skips the stages and leaves
nothing behind, so each stage is brought back the cheapest way that is exact, in DVC's own
terms (`Stage.changed`, `StageCache.restore`), before anything is installed:

1. dvc.lock matches the stage's command, deps and params: its outputs are pulled from the
   remote ("restored");
2. else the run cache (fetched from the remote once) has a run with the same command, deps
   and params: its outputs are checked out and dvc.lock updated, as `dvc repro` does
   ("reused");
3. else the project's requirements are installed and `dvc repro` runs the rest ("trained").

Stages are visited in `dvc repro`'s order, so a stage is judged with its upstream outputs
already in place. Any DVC failure is one line: DVC's own `ERROR:` message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from ci_gen.errors import CiGenError

RESTORED = "restored from the remote (dvc.lock matches)"
REUSED = "reused from the run cache (deps and params match an earlier run)"


@dataclass
class Outcome:
    restored: list[str] = field(default_factory=list)  # stage names, pulled (lock matched)
    reused: list[str] = field(default_factory=list)  # from the run cache
    ran: list[str] = field(default_factory=list)  # reproduced by `dvc repro`
    reason: str = ""  # why the first stage that ran could not be restored
    updated: list[str] = field(default_factory=list)  # imported data pointers refreshed first

    @property
    def how(self) -> str:
        return "trained" if self.ran else "reused" if self.reused else "restored"

    @property
    def summary(self) -> str:
        if self.ran:
            kept = [f"{', '.join(s)} {w}" for s, w in ((self.restored, "restored"),
                                                      (self.reused, "reused")) if s]
            extra = f"; {'; '.join(kept)}" if kept else ""
            return f"trained (ran {', '.join(self.ran)}: {self.reason}{extra})"
        return REUSED if self.reused else RESTORED


def reproduce(root: Path, *, data: list[str], requirements: str | None = None,
              push_run_cache: bool = False, refresh: bool = False, out: IO[str] | None = None,
              install: Callable[[Path, str], None] | None = None) -> Outcome:
    """Bring the pipeline's outputs into ROOT's workspace; see the module docstring.

    `refresh` (a retraining pipeline): first `dvc update` the data pointers that are imports
    (`dvc import`, `dvc import-url`), so the stages see the source's newest data.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    out = out or sys.stdout
    install = install or pip_install
    outcome = Outcome()
    with _dvc_log(out) as log, _cwd(root):  # DVC reads targets relative to the cwd
        step = "open the DVC project"
        try:
            with Repo(".") as repo:
                repo.scm_context.quiet = True  # no "git add dvc.lock" hints in a job log
                if requirements and not (Path(repo.root_dir) / requirements).is_file():
                    raise CiGenError(f"train: requirements file {requirements} not found")
                if data:
                    step = f"pull {', '.join(data)}"
                    repo.pull(targets=list(data))
                if refresh and data:
                    step = f"update the imported data of {', '.join(data)}"
                    outcome.updated = _update_imports(repo, data)
                step = "restore the stages"
                pending = _restore_stages(repo, outcome, log)
                if pending:
                    if requirements:
                        install(Path(repo.root_dir), requirements)
                    step = "reproduce " + ", ".join(pending)
                    with _interpreter_first():
                        ran = repo.reproduce()
                    outcome.ran = [s.addressing for s in ran] or pending
                if push_run_cache:
                    step = "push the outputs and the run cache"
                    repo.push(run_cache=True)
        except DvcException as exc:
            # The cause DVC logged (e.g. the connection error) says more than its summary.
            detail = log.errors[-1] if log.errors else dvc_error(exc)
            raise CiGenError(f"train: cannot {step}: {detail}") from None
        for line in log.errors:  # logged but not fatal: shown as DVC would
            out.write(line + "\n")
    return outcome


def _update_imports(repo: Any, data: list[str]) -> list[str]:
    """`dvc update` the pointers among `data` that are imports; their paths."""
    imports = [s.relpath for target in data for s in repo.stage.collect(target) if s.is_import]
    if imports:
        repo.update(targets=imports)
    return imports


def dvc_error(exc: BaseException) -> str:
    """DVC's `ERROR:` line for an exception, as its CLI prints it (without the footer)."""
    parts: list[str] = []
    cur: BaseException | None = exc
    while cur is not None:
        text = " ".join(str(cur).split())  # CheckoutError and friends span several lines
        if text and text not in parts:
            parts.append(text)
        cur = cur.__cause__
    return "ERROR: " + (": ".join(parts) or type(exc).__name__)


def _restore_stages(repo: Any, outcome: Outcome, log: _Writer) -> list[str]:
    """Restore stages in repro order; the names left to run (from the first that must)."""
    from dvc.repo import lock_repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    with lock_repo(repo):
        graph = get_active_graph(repo.index.graph)
        steps = plan_repro(graph, collect_stages(repo, ["dvc.yaml"]))
        stages = [s for s in steps if s.cmd and not s.frozen]
        fetched = False
        for i, stage in enumerate(stages):
            upstream = list(graph.successors(stage))
            if not stage.changed(allow_missing=True, upstream=upstream):
                if _pull_outputs(repo, stage, log):
                    outcome.restored.append(stage.addressing)
                    continue
            _pull_missing_deps(repo, stage)
            reason = why_changed(stage)  # before the run cache takes in the new dep hashes
            if not fetched:
                _fetch_run_cache(repo)
                fetched = True
            if _restore_from_run_cache(repo, stage):
                outcome.reused.append(stage.addressing)
                continue
            outcome.reason = reason
            return [s.addressing for s in stages[i:]]
    return []


def _pull_outputs(repo: Any, stage: Any, log: _Writer) -> bool:
    """Pull a stage's outputs; False when the remote does not have them all."""
    from dvc.exceptions import CheckoutError, DownloadError

    try:
        repo.pull(targets=[stage.addressing])
    except (CheckoutError, DownloadError) as exc:
        if log.errors:  # the remote failed (DVC logged why), not just lacking the files
            raise
        log.out.write(f"ci-gen: train: dvc.lock matches {stage.addressing!r} but the remote "
                      f"lacks its outputs ({dvc_error(exc)}); trying the run cache\n")
        return False
    return True


def _fetch_run_cache(repo: Any) -> None:
    """The remote's run cache into the local one (what `dvc pull --run-cache` fetches)."""
    from dvc.exceptions import DvcException
    from dvc.stage.cache import RunCacheNotSupported

    try:
        repo.stage_cache.pull(None)
    except RunCacheNotSupported:
        return  # e.g. an http remote: DVC's repro goes on without it too
    except DvcException:
        raise
    except Exception as exc:  # noqa: BLE001 - the storage library's own errors (botocore, ...)
        raise DvcException(f"failed to fetch the run cache - {exc}") from None


def _pull_missing_deps(repo: Any, stage: Any) -> None:
    """What `dvc repro --pull` does before running a stage: fetch deps that are not here."""
    from dvc.dependency import ParamsDependency

    for dep in stage.deps:
        if not isinstance(dep, ParamsDependency) and dep.is_in_repo and not dep.exists:
            repo.pull(targets=[dep.def_path])


def _restore_from_run_cache(repo: Any, stage: Any) -> bool:
    """A run-cache hit checked out, and dvc.lock updated, as `dvc repro` does after one."""
    from dvc.stage.cache import RunCacheNotFoundError

    try:
        repo.stage_cache.restore(stage, pull=True)
    except RunCacheNotFoundError:
        return False
    stage.save()
    stage.commit()
    stage.dump(update_pipeline=False)
    return True


def why_changed(stage: Any) -> str:
    """Why dvc.lock does not describe this stage as it is now, briefly."""
    if not any(entry.hash_info for entry in [*stage.deps, *stage.outs]):
        return "no dvc.lock entry, and no earlier run with these deps and params"
    changed: list[str] = []
    if stage.changed_stage():
        changed.append("its command")
    for dep in stage.deps:
        for path, status in dep.status().items():
            if isinstance(status, dict):  # params: {name: modified|new|deleted}
                changed.extend(f"{path}:{name}" for name in status)
            else:
                changed.append(str(path))
    what = ", ".join(changed) or "its outputs"
    return f"changed since dvc.lock: {what}; no earlier run with these deps and params"


def pip_install(root: Path, requirements: str, job: str = "train") -> None:
    """Install the project's requirements with this interpreter's pip; one line on failure."""
    why = "a stage must run" if job == "train" else "a model must be converted"
    print(f"ci-gen: {job}: installing {requirements} ({why})", flush=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", requirements],
                          cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR:")]
        raise CiGenError(f"{job}: pip install -r {requirements} failed: "
                         f"{(errors or lines or ['exit ' + str(proc.returncode)])[-1]}")


_DVC_LOGGERS = ("dvc", "dvc_objects", "dvc_data")  # those dvc.logger.setup() configures


class _Writer(logging.Handler):
    """DVC's messages into OUT, as its CLI shows them; errors are held for the one-line
    failure (DVC logs the cause, e.g. "failed to connect to s3", then raises a summary)."""

    def __init__(self, out: IO[str]) -> None:
        super().__init__(logging.INFO)
        self.out = out
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = " ".join(record.getMessage().split()) if record.levelno >= logging.ERROR \
            else record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            cause = dvc_error(record.exc_info[1]).removeprefix("ERROR: ")
            msg = f"{msg} - {cause}" if msg else cause
        if record.levelno >= logging.ERROR:
            self.errors.append(f"ERROR: {msg}")
            return
        if record.levelno >= logging.WARNING:
            msg = f"{record.levelname}: {msg}"
        if msg:
            self.out.write(msg + "\n")
            self.out.flush()


@contextlib.contextmanager
def _interpreter_first() -> Iterator[None]:
    """The stages' `python` is this interpreter, the one `pip_install` installed the
    requirements into: its bin directory first on PATH (Debian itself has no `python`)."""
    before = os.environ.get("PATH")
    os.environ["PATH"] = os.pathsep.join(p for p in (os.path.dirname(sys.executable), before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _dvc_log(out: IO[str]) -> Iterator[_Writer]:
    """DVC's messages into OUT instead of the handlers it set up on import."""
    writer = _Writer(out)
    saved = []
    for name in _DVC_LOGGERS:
        log = logging.getLogger(name)
        saved.append((log, log.handlers[:], log.level))
        log.handlers = [writer]
        log.setLevel(logging.INFO)
    try:
        yield writer
    finally:
        for log, handlers, level in saved:
            log.handlers = handlers
            log.setLevel(level)
