"""`ci-gen run` as a plain function: a project's pipeline, locally and offline.

The run, in order:
1. checks (gitlab-ci-local found, git work tree with a commit and an origin remote);
2. resolves the project's ci-gen component includes from the installed templates;
3. prepares the stand-ins for the GitLab side: a bare repository for pushes (CI_GEN_PUSH_URL),
   the merge request's target ref, the variables of a local run, and (runner-like mode, the
   default) ci-gen's wheel in a local index and a stand-in for each job's image (jobenv);
4. asks gitlab-ci-local which jobs this pipeline has, picks those to run, runs them with the
   shell executor and per-job isolation, and follows their progress;
5. stops what the run deployed (the environments' stop jobs), unless told to keep it;
6. prints a summary; the exit status is 1 when a job failed.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

from ci_gen import __version__
from ci_gen.dvcrepo.tool import LOCAL_ROOT_ENV
from ci_gen.errors import CiGenError
from ci_gen.local import gitlab_ci_local as gcl
from ci_gen.local import registry as local_registry
from ci_gen.local.environment import check_tag, identity_env, job_environment, run_variables
from ci_gen.local.includes import expand, match_job, resolve_includes
from ci_gen.local.origin import LocalOrigin, prepare_target_ref
from ci_gen.local.project import ProjectContext, ensure_state_gitignore, project_context, uncommitted
from ci_gen.local.tool import GITLAB_CI_LOCAL_VERSION, check_host_tools, find_gitlab_ci_local, tool_version


@dataclass
class RunOptions:
    directory: Path = Path(".")
    job: str | None = None
    mr: bool = False
    schedule: bool = False  # CI_PIPELINE_SOURCE=schedule (the monitor's pipeline)
    tag: str = ""  # a tag pipeline: CI_COMMIT_TAG set, CI_COMMIT_BRANCH not
    # Manual jobs: None leaves them out of a whole-pipeline run (a person starts them on
    # GitLab) and runs those a --job needs; True (--manual) runs them; False (--no-manual) never.
    manual: bool | None = None
    keep_deployed: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    host_env: bool = False  # jobs see the caller's venv (fast) instead of their image's stand-in


@dataclass
class RunOutcome:
    exit_code: int
    results: list[gcl.JobResult]
    report: Path | None = None


class _Out:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def say(self, text: str) -> None:
        self.stream.write(f"ci-gen: {text}\n")
        self.stream.flush()


@dataclass
class _Run:
    """What the steps of one run share, once it is prepared."""

    opts: RunOptions
    out: _Out
    ctx: ProjectContext
    tool: str
    job: str | None  # the job --job names, matched
    kind: str  # "branch pipeline for main", for the user
    origin: LocalOrigin
    env: dict[str, str] = field(default_factory=dict)
    common: list[str] = field(default_factory=list)  # gitlab-ci-local flags of every call
    variables: dict[str, str] = field(default_factory=dict)
    wheel: Path | None = None  # ci-gen's own wheel (runner-like mode)
    changes_note: str | None = None  # about `rules: changes`, said if a job has them


def run_local(opts: RunOptions, stream: IO[str] | None = None) -> RunOutcome:
    out = _Out(stream or sys.stdout)
    t_start = time.monotonic()
    run = _prepare(opts, out)
    stages, jobs = gcl.plan(run.tool, run.ctx.root, run.common, run.env)
    chosen, left, cmd = _choose(run, jobs, stages)
    _say_pipeline_notes(run, jobs, chosen)
    if run.wheel is not None:
        _stand_in_images(run, jobs, chosen)
    registry = local_registry.for_run(run.ctx.state_dir, chosen, opts.variables, run.env, out.say)
    progress = gcl.Progress(
        list(jobs), out.stream, opts.quiet, [p for j in jobs.values() for p in j.cache_paths],
        _env_url(jobs, run.ctx.state_dir / "artifacts"))
    try:
        rc = _execute(run, chosen, cmd, progress)
    finally:
        # Environments deployed by this run are stopped after it, also when it was
        # interrupted (a stop job inside the pipeline would race the jobs using the deployment).
        stopped = _stop_environments(run, jobs, progress)
        if registry:
            registry.stop()
    results = _results(jobs, chosen, left, progress, stopped, bool(run.job))
    order = {s: i for i, s in enumerate(stages)}
    # Stage order (stable: file order within a stage); stop jobs that ran after the pipeline last.
    results.sort(key=lambda r: (r.name in stopped, order.get(r.stage, len(order))))
    outcome = _summarise(run, results, progress, rc, time.monotonic() - t_start)
    if registry:
        registry.report(out.say, run.ctx.state_dir / "artifacts")
    return outcome


def _prepare(opts: RunOptions, out: _Out) -> _Run:
    """Checks, includes, the GitLab stand-ins and the jobs' environment; the header lines."""
    ctx = project_context(opts.directory)
    if opts.mr:
        _check_mr(ctx)
    if opts.tag:
        check_tag(ctx, opts.tag)
    tool = _tool(ctx, out)
    # Includes and --job first: a wrong pin, input or job name fails before anything is written.
    includes = resolve_includes(ctx, opts.variables, write=False)
    job = match_job(opts.job, includes.jobs) if opts.job else None
    includes.write()
    ensure_state_gitignore(ctx)
    origin = LocalOrigin(ctx)
    origin.ensure()
    evaluate_changes, note = prepare_target_ref(ctx, opts.mr)
    variables, unset = run_variables(ctx, opts.variables, opts.mr, origin.path, opts.schedule, opts.tag)
    comps = [r for r in includes.resolved if r.kind != "local-component"]
    if comps:
        out.say(f"{len(comps)} ci-gen template include(s) resolved offline from ci-gen {__version__}")
    if ctx.branch != "HEAD":
        origin.publish("HEAD", ctx.branch)
    kind = (f"merge request pipeline {ctx.branch} -> {ctx.default_branch}" if opts.mr
            else f"scheduled pipeline for {ctx.branch}" if opts.schedule
            else f"tag pipeline for {opts.tag}" if opts.tag
            else f"branch pipeline for {ctx.branch}")
    out.say(f"{kind} at {ctx.head_sha[:8]} in {ctx.root}")
    _say_uncommitted(ctx, out)
    if job and job != opts.job:
        out.say(f"--job {opts.job}: {job}")
    wheel = None if opts.host_env else _runner_variables(ctx, opts, variables, out)
    env = _job_env(ctx, opts, variables, out, wheel)
    return _Run(opts, out, ctx, tool, job, kind, origin, env, gcl.common_flags(evaluate_changes, unset),
                variables, wheel, note)


def _say_pipeline_notes(run: _Run, jobs: dict[str, gcl.PlannedJob], chosen: list[str]) -> None:
    """What concerns this pipeline only: the `rules: changes` note when one of its jobs has
    such rules, the docker-build skip when a chosen job is a build. A schedule has no push to
    compare (GitLab's `changes` are then always true) and runs no docker-build."""
    if run.opts.schedule:
        return
    if run.changes_note and any(j.changes for j in jobs.values()):
        run.out.say(run.changes_note)
    skip = run.variables.get("CI_GEN_SKIP_BUILD")
    if skip and any("CI_GEN_SKIP_BUILD" in jobs[n].script for n in chosen if n in jobs):
        run.out.say(f"docker-build will be skipped: {skip}")


def _tool(ctx: ProjectContext, out: _Out) -> str:
    tool = find_gitlab_ci_local(out.stream)
    check_host_tools(ctx.origin.schema)
    version = tool_version(tool)
    if version != GITLAB_CI_LOCAL_VERSION:
        out.say(f"warning: gitlab-ci-local {version} at {tool}; ci-gen is tested with "
                f"{GITLAB_CI_LOCAL_VERSION} (newer ones need Node 22)")
    return tool


def _job_env(ctx: ProjectContext, opts: RunOptions, variables: dict[str, str], out: _Out,
             wheel: Path | None) -> dict[str, str]:
    extra = {f"GCL_VARIABLE_{k}": v for k, v in variables.items()}
    extra[LOCAL_ROOT_ENV] = str(ctx.root)  # relative DVC remotes: dvcrepo.tool
    env, withheld = job_environment(extra, opts.host_env)
    env.update(identity_env(ctx, env))
    if wheel is None:  # --host-env
        from ci_gen.files import atomic_write
        from ci_gen.local.jobenv import host_setup_script

        _setup_path(ctx).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(_setup_path(ctx), host_setup_script(os.path.dirname(sys.executable)))
    env["BASH_ENV"] = str(_setup_path(ctx))
    if withheld:
        shown = ", ".join(withheld[:6]) + (f" and {len(withheld) - 6} more" if len(withheld) > 6 else "")
        out.say(f"not passed to jobs: the caller's {shown} (CI/CD variables and tokens; a local run "
                f"posts nothing to GitLab; pass --variable NAME=... to give one)")
    return env


def _setup_path(ctx: ProjectContext) -> Path:
    return ctx.state_dir / "ci-gen-env" / "setup.sh"


def _runner_variables(ctx: ProjectContext, opts: RunOptions, variables: dict[str, str], out: _Out) -> Path:
    """ci-gen's wheel and the index holding it ($CI_GEN_INDEX_URL); the variables of a
    runner-like run that --variable did not set."""
    from ci_gen.components import INDEX_URL_VARIABLE
    from ci_gen.local.runtime import own_wheel, write_index

    wheel = own_wheel(out.stream)
    defaults = {
        INDEX_URL_VARIABLE: write_index(wheel, ctx.state_dir / "ci-gen-env" / "index"),
        # A process deployment stands for the serving image built by docker-build (it holds the
        # model's requirements): it runs with the caller's interpreter, not the job's.
        "CI_GEN_DEPLOY_PYTHON": sys.executable,
    }
    for k, v in defaults.items():
        if k not in opts.variables:
            variables[k] = v
    return wheel


def _stand_in_images(run: _Run, jobs: dict[str, gcl.PlannedJob], chosen: list[str]) -> None:
    """The setup script standing in for each job's image (see local/jobenv)."""
    from ci_gen.files import atomic_write
    from ci_gen.local.jobenv import JobImage, is_runtime_image, setup_script
    from ci_gen.local.runtime import NO_RUNTIME, base_python, runtime_env

    images = [JobImage(j.name, expand(j.image, run.variables), is_runtime_image(j.image, run.variables))
              for j in jobs.values()]
    wanted = set(chosen) | {j.on_stop for j in jobs.values() if j.on_stop}
    n_rt = sum(i.runtime for i in images if i.job in wanted)
    # Built (once per version) only when a job of this run needs it.
    runtime = runtime_env(run.wheel, run.out.stream) if n_rt and run.wheel else NO_RUNTIME
    path = _setup_path(run.ctx)
    atomic_write(path, setup_script(images, runtime, path.parent / "venvs", base_python()))
    run.out.say(f"runner-like jobs (--host-env to opt out): {n_rt} on the ci-gen runtime environment, "
                f"{len(wanted & set(jobs)) - n_rt} in a fresh empty Python environment each")


def _check_mr(ctx: ProjectContext) -> None:
    if ctx.branch == "HEAD":
        raise CiGenError("--mr needs a checked-out branch (HEAD is detached): the merge request's source")
    if ctx.branch == ctx.default_branch:
        raise CiGenError(f"--mr runs a merge request from the current branch into {ctx.default_branch}; "
                         f"check out a feature branch first (git switch -c my-change)")


def _say_uncommitted(ctx: ProjectContext, out: _Out) -> None:
    dirty = uncommitted(ctx)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        out.say(f"uncommitted changes are part of this run: {shown} (jobs get the work tree as it "
                f"is, not commit {ctx.head_sha[:8]}; untracked files are left out)")


def _report_path(ctx: ProjectContext, ran: list[str]) -> Path | None:
    base = ctx.state_dir / "artifacts"
    found = sorted(p for job in ran for p in (base / job).glob("**/report.md"))
    return found[0] if found else None


def _choose(run: _Run, jobs: dict[str, gcl.PlannedJob],
            stages: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """The jobs to run, why each other one is left out, and the gitlab-ci-local command."""
    left: dict[str, str] = {}
    if run.job:
        cells = gcl.named(jobs, run.job)  # a `parallel: matrix` job is all its cells
        if not cells:
            raise CiGenError(f"{run.job} is not part of this {run.kind} (its rules leave it out); "
                             f"jobs: {', '.join(jobs) or 'none'}")
        chosen = list(dict.fromkeys(n for cell in cells for n in gcl.needs_closure(jobs, cell, stages)))
        manual = [n for n in chosen if jobs[n].when == "manual" and n != run.job]
        if manual and run.opts.manual is False:
            raise CiGenError(f"{run.job} needs the manual job(s) {', '.join(manual)}; drop --no-manual")
        cmd = [run.tool, run.job, "--needs"]
    else:
        chosen, left = gcl.select(jobs, bool(run.opts.manual))
        manual = [n for n in chosen if jobs[n].when == "manual"]
        cmd = [run.tool, *chosen, "--needs"]
    for m in manual:
        cmd += ["--manual", m]
    return chosen, left, cmd + run.common


def _env_url(jobs: dict[str, gcl.PlannedJob], artifacts: Path) -> Callable[[str], str]:
    return lambda name: gcl.environment_url(jobs[name], artifacts) if name in jobs else ""


def _execute(run: _Run, chosen: list[str], cmd: list[str], progress: gcl.Progress) -> int:
    """Run the chosen jobs; gitlab-ci-local's exit code."""
    out, ctx = run.out, run.ctx
    if not chosen:
        out.say("nothing to run: no job of this pipeline matches its rules"
                + ("" if run.opts.mr or ctx.branch == ctx.default_branch else
                   f" (ci-gen's jobs run for merge requests and {ctx.default_branch}; try --mr)"))
        return 0
    out.say(f"running {len(chosen)} job(s): {', '.join(chosen)}")
    rc = gcl.execute(cmd, ctx.root, run.env, progress)
    if rc != 0 and not progress.started:
        raise CiGenError(f"gitlab-ci-local failed before any job ran: "
                         f"{gcl.tool_error(chr(10).join(progress.tail))}")
    return rc


def _summarise(run: _Run, results: list[gcl.JobResult], progress: gcl.Progress, rc: int,
               total: float) -> RunOutcome:
    """The summary lines, where to look next, and the run's exit status."""
    out, ctx, origin = run.out, run.ctx, run.origin
    report = _report_path(ctx, list(progress.started))
    out.say(f"summary: {run.kind}, {len(progress.results)} job(s) ran in {gcl.fmt_seconds(total)}")
    for line in gcl.summary_lines(results):
        out.stream.write(line + "\n")
    if report:
        out.say(f"report: {report}")
    if progress.started:
        out.say(f"artifacts: {ctx.state_dir / 'artifacts'}/<job>/ ; job logs: {ctx.state_dir / 'output'}/<job>.log")
    moved = origin.head_of(ctx.branch) if ctx.branch != "HEAD" else ""
    if moved and moved != ctx.head_sha:
        rel = os.path.relpath(origin.path, ctx.root)
        out.say(f"the pipeline pushed {moved[:8]} to {ctx.branch} of the local origin {origin.path} "
                f"(e.g. dvc-upload's pointer commit); take it with: git -C {ctx.root} pull --ff-only {rel} {ctx.branch}")
    # An allowed failure ("warning": manual jobs have allow_failure) leaves a GitLab pipeline
    # green, but a local run is a rehearsal the user asked for: it fails the run, and says so.
    failed = [r for r in results if r.status in ("failed", "warning")]
    if failed:
        _say_failed(run, failed, progress.codes)
        return RunOutcome(1, results, report)
    if rc != 0:
        out.say(f"gitlab-ci-local exited with {rc}: {gcl.tool_error(chr(10).join(progress.tail))}")
        return RunOutcome(1, results, report)
    return RunOutcome(0, results, report)


def _say_failed(run: _Run, failed: list[gcl.JobResult], codes: dict[str, int]) -> None:
    out = run.out
    for r in failed:
        log = gcl.log_path(run.ctx.state_dir, r.name)
        if r.status == "warning":  # e.g. monitor's exit 3 (drift): a warning on GitLab
            code = f" with exit code {codes[r.name]}" if r.name in codes else ""
            out.say(f"{r.name} failed{code}, which it is allowed to (a warning on GitLab); its log: {log}")
        else:
            out.say(f"{r.name} failed; its log: {log}")
        if run.opts.quiet and log.is_file():
            for line in log.read_text(errors="replace").splitlines()[-8:]:
                out.stream.write(f"  > {gcl.ANSI.sub('', line)}\n")
    out.say(f"pipeline failed: {', '.join(r.name for r in failed)}")


def _stop_environments(run: _Run, jobs: dict[str, gcl.PlannedJob],
                       progress: gcl.Progress) -> dict[str, gcl.JobResult]:
    """Run the stop job of each environment the run deployed (unless --keep-deployed)."""
    opts, ctx, out = run.opts, run.ctx, run.out
    stopped: dict[str, gcl.JobResult] = {}
    for name in list(progress.started):
        job = jobs.get(name)
        stop = job.on_stop if job else None
        if not stop or stop not in jobs or stop in stopped or stop == name:
            continue
        env_name = job.environment.get("name")
        if opts.keep_deployed:
            out.say(f"environment {env_name} left running (--keep-deployed); "
                    f"stop it with: ci-gen run {ctx.root} --job {stop}")
            continue
        out.say(f"stopping environment {env_name} with {stop}")
        gcl.execute([run.tool, stop, *run.common], ctx.root, run.env, progress)
        status, secs = progress.results.get(stop, ("failed", None))
        stopped[stop] = gcl.JobResult(stop, jobs[stop].stage, status, secs, "after the pipeline",
                                      progress.setup.get(stop))
    return stopped


def _results(jobs: dict[str, gcl.PlannedJob], chosen: list[str], left: dict[str, str],
             progress: gcl.Progress, stopped: dict[str, gcl.JobResult], one_job: bool) -> list[gcl.JobResult]:
    out = []
    for name, job in jobs.items():
        if name in stopped:
            out.append(stopped[name])
        elif name in progress.results:
            status, secs = progress.results[name]
            out.append(gcl.JobResult(name, job.stage, status, secs, setup=progress.setup.get(name)))
        elif name in chosen:
            note = "not started: a job it waits for failed" if name not in progress.started else "no end seen"
            out.append(gcl.JobResult(name, job.stage, "skipped", None, note))
        elif not one_job and name in left:
            reason = left[name]
            status = ("excluded" if job.when == "never" else
                      "manual" if reason.startswith("manual") or job.is_stop else "left out")
            out.append(gcl.JobResult(name, job.stage, status, None, reason))
    return out
