"""`ci-gen run` as a plain function: a project's pipeline, locally and offline.

The run, in order:
1. checks (gitlab-ci-local found, git work tree with a commit and an origin remote);
2. resolves the project's ci-gen component includes from the installed templates;
3. prepares the stand-ins for the GitLab side: a bare repository for pushes (CI_GEN_PUSH_URL),
   the merge request's target ref, the variables of a local run;
4. asks gitlab-ci-local which jobs this pipeline has, picks those to run, runs them with the
   shell executor and per-job isolation, and follows their progress;
5. stops what the run deployed (the environments' stop jobs), unless told to keep it;
6. prints a summary; the exit status is 1 when a job failed.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ci_gen import __version__
from ci_gen.errors import CiGenError
from ci_gen import glrun
from ci_gen.dvctool import LOCAL_ROOT_ENV
from ci_gen.localrun import (
    GITLAB_CI_LOCAL_VERSION,
    LocalOrigin,
    ProjectContext,
    check_host_tools,
    ensure_state_gitignore,
    find_gitlab_ci_local,
    git,
    identity_env,
    job_environment,
    match_job,
    project_context,
    resolve_includes,
    tool_version,
    uncommitted,
)

# Tokens that would let a local run post to a real GitLab: not handed to jobs unless given
# explicitly with --variable.
TOKENS = ("GITLAB_API_TOKEN", "REPO_TOKEN", "CI_JOB_TOKEN", "GITLAB_TOKEN")
# No Docker here: every job runs in a shell, each in its own rsync'ed copy of the work tree
# (.gitlab-ci-local/builds/<job>), so only artifacts flow between jobs; artifacts stay under
# .gitlab-ci-local/artifacts/ instead of being copied back into the work tree.
# `tags: []` (the components' default: any runner) fails GitLab's JSON schema (minItems 1)
# although GitLab runs it (firecow/gitlab-ci-local#1503): that one rule is not checked.
GCL_FLAGS = ("--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source",
             "--ignore-schema-paths", "#/definitions/tags/minItems")
# Predefined variables a local run sets on purpose: no "avoid overriding" warning for them.
OVERRIDDEN = ("CI_PIPELINE_SOURCE", "CI_COMMIT_BRANCH", "CI_REGISTRY", "CI_REGISTRY_IMAGE",
              "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD")
SKIP_BUILD_NO_REGISTRY = (
    "no container registry configured for local runs (pass --variable "
    "CI_REGISTRY_IMAGE=HOST:PORT/GROUP/NAME); the production base image cannot be pulled offline"
)
SKIP_BUILD_NO_BUILDAH = "buildah not found on PATH (Debian: apt-get install buildah)"


@dataclass
class RunOptions:
    directory: Path = Path(".")
    job: str | None = None
    mr: bool = False
    manual: bool = True
    keep_deployed: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    quiet: bool = False


@dataclass
class RunOutcome:
    exit_code: int
    results: list[glrun.JobResult]
    report: Path | None = None


class _Out:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def say(self, text: str) -> None:
        self.stream.write(f"ci-gen: {text}\n")
        self.stream.flush()


def run_variables(ctx: ProjectContext, opts: RunOptions, push_url: Path) -> tuple[dict[str, str], list[str]]:
    """CI/CD variables of a local run, and the predefined ones it replaces (to unset in jobs).

    The user's --variable values win over every default here.
    """
    user = dict(opts.variables)
    v = {
        "CI_GEN_DEPLOY_ENGINE": "process",
        "CI_GEN_DEPLOY_PORT": "0",
        "CI_GEN_STATE_DIR": str(ctx.state_dir / "ci-gen-state"),
        "CI_GEN_PUSH_URL": str(push_url),
    }
    registry = user.get("CI_REGISTRY")
    if registry and not user.get("CI_REGISTRY_IMAGE"):
        # GitLab's own formula for the project's image path.
        v["CI_REGISTRY_IMAGE"] = f"{registry}/{ctx.origin.path.lower()}"
    if not (user.get("CI_REGISTRY_IMAGE") or v.get("CI_REGISTRY_IMAGE")):
        v["CI_GEN_SKIP_BUILD"] = SKIP_BUILD_NO_REGISTRY
    elif shutil.which("buildah") is None:
        v["CI_GEN_SKIP_BUILD"] = SKIP_BUILD_NO_BUILDAH
    unset: list[str] = []
    if opts.mr:
        target = ctx.default_branch
        target_sha = git(ctx.root, "rev-parse", "-q", "--verify", f"refs/remotes/origin/{target}", check=False)
        base = git(ctx.root, "merge-base", "HEAD", target_sha, check=False) if target_sha else ""
        v.update({
            "CI_PIPELINE_SOURCE": "merge_request_event",
            # Not defined in merge request pipelines: empty for rules, unset in jobs.
            "CI_COMMIT_BRANCH": "",
            "CI_MERGE_REQUEST_ID": "1001",
            "CI_MERGE_REQUEST_IID": "1",
            "CI_MERGE_REQUEST_TITLE": f"Local merge request {ctx.branch} into {target}",
            "CI_MERGE_REQUEST_EVENT_TYPE": "detached",
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": ctx.branch,
            "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": ctx.head_sha,
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": target,
            "CI_MERGE_REQUEST_TARGET_BRANCH_SHA": target_sha,
            "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
            "CI_MERGE_REQUEST_PROJECT_PATH": ctx.origin.path,
            "CI_MERGE_REQUEST_PROJECT_ID": "1217",  # gitlab-ci-local's CI_PROJECT_ID
            "CI_MERGE_REQUEST_REF_PATH": "refs/merge-requests/1/head",
            "CI_OPEN_MERGE_REQUESTS": f"{ctx.origin.path}!1",
        })
        unset.append("CI_COMMIT_BRANCH")
    v.update(user)
    return v, [u for u in unset if u not in user]


def prepare_target_ref(ctx: ProjectContext, mr: bool) -> tuple[bool, str | None]:
    """Whether gitlab-ci-local should evaluate `rules: changes`, and a note for the user.

    gitlab-ci-local compares the work tree with refs/remotes/origin/<default branch>. A ref
    fetched from a real server is used as it is. Without one, a default-branch run is a first
    push (GitLab then runs every job), and a merge request targets the local default branch:
    ci-gen sets the ref to it and remembers doing so, so it may move it on later runs.
    """
    target = ctx.default_branch
    ref = f"refs/remotes/origin/{target}"
    marker = ctx.state_dir / "ci-gen-origin-ref"
    current = git(ctx.root, "rev-parse", "-q", "--verify", ref, check=False)
    owned = bool(current) and marker.is_file() and marker.read_text().strip() == current
    if current and not owned:
        return True, None
    if not mr:
        return False, (f"rules: changes not evaluated: origin/{target} was never fetched from a "
                       f"GitLab server, so this run is a first push and every job's changes match")
    local = git(ctx.root, "rev-parse", "-q", "--verify", f"refs/heads/{target}", check=False)
    if not local:
        raise CiGenError(f"--mr runs a merge request into {target}, but there is no branch {target} "
                         f"(nor origin/{target}) to diff against")
    git(ctx.root, "update-ref", ref, local)
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(local + "\n")
    return True, f"merge request target: origin/{target} set to the local {target} ({local[:8]})"


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


def run_local(opts: RunOptions, stream: IO[str] | None = None) -> RunOutcome:
    out = _Out(stream or sys.stdout)
    t_start = time.monotonic()
    ctx = project_context(opts.directory)
    if opts.mr:
        _check_mr(ctx)
    tool = find_gitlab_ci_local()
    check_host_tools(ctx.origin.schema)
    version = tool_version(tool)
    if version != GITLAB_CI_LOCAL_VERSION:
        out.say(f"warning: gitlab-ci-local {version} at {tool}; ci-gen is tested with "
                f"{GITLAB_CI_LOCAL_VERSION} (newer ones need Node 22)")
    # Includes and --job first: a wrong pin, input or job name fails before anything is written.
    includes = resolve_includes(ctx, opts.variables, write=False)
    job = match_job(opts.job, includes.jobs) if opts.job else None
    includes.write()
    resolved = includes.resolved
    ensure_state_gitignore(ctx)
    origin = LocalOrigin(ctx)
    origin.ensure()
    evaluate_changes, note = prepare_target_ref(ctx, opts.mr)
    variables, unset = run_variables(ctx, opts, origin.path)
    comps = [r for r in resolved if r.kind != "local-component"]
    if comps:
        out.say(f"{len(comps)} ci-gen template include(s) resolved offline from ci-gen {__version__}")
    if ctx.branch != "HEAD":
        origin.publish("HEAD", ctx.branch)
    kind = (f"merge request pipeline {ctx.branch} -> {ctx.default_branch}" if opts.mr
            else f"branch pipeline for {ctx.branch}")
    out.say(f"{kind} at {ctx.head_sha[:8]} in {ctx.root}")
    _say_uncommitted(ctx, out)
    if job and job != opts.job:
        out.say(f"--job {opts.job}: {job}")
    if note:
        out.say(note)
    if "CI_GEN_SKIP_BUILD" in variables:
        out.say(f"docker-build will be skipped: {variables['CI_GEN_SKIP_BUILD']}")

    extra = {f"GCL_VARIABLE_{k}": v for k, v in variables.items()}
    env = job_environment({**extra, LOCAL_ROOT_ENV: str(ctx.root)})  # relative DVC remotes: dvctool
    env.update(identity_env(ctx, env))
    withheld = [t for t in TOKENS if t in env and t not in opts.variables]
    for t in withheld:
        del env[t]
    if withheld:
        out.say(f"not passed to jobs: {', '.join(withheld)} (a local run posts nothing to GitLab; "
                f"pass --variable NAME=... to allow it)")
    common = [*GCL_FLAGS, "--ignore-predefined-vars", ",".join(OVERRIDDEN)]
    if not evaluate_changes:
        common.append("--no-evaluate-rule-changes")
    for name in unset:
        common += ["--unset-variable", name]

    stages, jobs = glrun.plan(tool, ctx.root, common, env)
    left: dict[str, str] = {}
    if job:
        if job not in jobs:
            raise CiGenError(f"{job} is not part of this {kind} (its rules leave it out); "
                             f"jobs: {', '.join(jobs) or 'none'}")
        chosen = glrun.needs_closure(jobs, job)
        manual = [n for n in chosen if jobs[n].when == "manual" and n != job]
        if manual and not opts.manual:
            raise CiGenError(f"{job} needs the manual job(s) {', '.join(manual)}; drop --no-manual")
        cmd = [tool, job, "--needs"]
    else:
        chosen, left = glrun.select(jobs, opts.manual)
        manual = [n for n in chosen if jobs[n].when == "manual"]
        cmd = [tool, *chosen, "--needs"]
    for m in manual:
        cmd += ["--manual", m]
    cmd += common

    artifacts = ctx.state_dir / "artifacts"
    progress = glrun.Progress(
        list(jobs), out.stream, opts.quiet, [p for j in jobs.values() for p in j.cache_paths],
        lambda name: glrun.environment_url(jobs[name], artifacts) if name in jobs else "")
    rc = 0
    stopped: dict[str, glrun.JobResult] = {}
    try:
        if chosen:
            out.say(f"running {len(chosen)} job(s): {', '.join(chosen)}")
            rc = glrun.execute(cmd, ctx.root, env, progress)
            if rc != 0 and not progress.started:
                raise CiGenError(f"gitlab-ci-local failed before any job ran: "
                                 f"{glrun.tool_error(chr(10).join(progress.tail))}")
        else:
            out.say("nothing to run: no job of this pipeline matches its rules"
                    + ("" if opts.mr or ctx.branch == ctx.default_branch else
                       f" (ci-gen's jobs run for merge requests and {ctx.default_branch}; try --mr)"))
    finally:
        # Environments deployed by this run are stopped after it, also when it was
        # interrupted (a stop job inside the pipeline would race the jobs using the deployment).
        stopped = _stop_environments(opts, ctx, tool, common, env, jobs, progress, out)

    results = _results(jobs, chosen, left, progress, stopped, bool(job))
    order = {s: i for i, s in enumerate(stages)}
    # Stage order (stable: file order within a stage); stop jobs that ran after the pipeline last.
    results.sort(key=lambda r: (r.name in stopped, order.get(r.stage, len(order))))
    # An allowed failure ("warning": manual jobs have allow_failure) leaves a GitLab pipeline
    # green, but a local run is a rehearsal the user asked for: it fails the run, and says so.
    failed = [r for r in results if r.status in ("failed", "warning")]
    report = _report_path(ctx, list(progress.started))
    total = time.monotonic() - t_start
    out.say(f"summary: {kind}, {len(progress.results)} job(s) ran in {glrun.fmt_seconds(total)}")
    for line in glrun.summary_lines(results):
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
    exit_code = 0
    if failed:
        for r in failed:
            log = ctx.state_dir / "output" / f"{r.name}.log"
            allowed = " (allowed to fail on GitLab)" if r.status == "warning" else ""
            out.say(f"{r.name} failed{allowed}; its log: {log}")
            if opts.quiet and log.is_file():
                for line in log.read_text(errors="replace").splitlines()[-8:]:
                    out.stream.write(f"  > {glrun.ANSI.sub('', line)}\n")
        out.say(f"pipeline failed: {', '.join(r.name for r in failed)}")
        exit_code = 1
    elif rc != 0:
        out.say(f"gitlab-ci-local exited with {rc}: {glrun.tool_error(chr(10).join(progress.tail))}")
        exit_code = 1
    return RunOutcome(exit_code, results, report)


def _stop_environments(opts: RunOptions, ctx: ProjectContext, tool: str, common: list[str],
                       env: dict[str, str], jobs: dict[str, glrun.PlannedJob],
                       progress: glrun.Progress, out: _Out) -> dict[str, glrun.JobResult]:
    stopped: dict[str, glrun.JobResult] = {}
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
        glrun.execute([tool, stop, *common], ctx.root, env, progress)
        status, secs = progress.results.get(stop, ("failed", None))
        stopped[stop] = glrun.JobResult(stop, jobs[stop].stage, status, secs, "after the pipeline")
    return stopped


def _results(jobs: dict[str, glrun.PlannedJob], chosen: list[str], left: dict[str, str],
             progress: glrun.Progress, stopped: dict[str, glrun.JobResult], one_job: bool) -> list[glrun.JobResult]:
    out = []
    for name, job in jobs.items():
        if name in stopped:
            out.append(stopped[name])
        elif name in progress.results:
            status, secs = progress.results[name]
            out.append(glrun.JobResult(name, job.stage, status, secs))
        elif name in chosen:
            note = "not started: a job it waits for failed" if name not in progress.started else "no end seen"
            out.append(glrun.JobResult(name, job.stage, "skipped", None, note))
        elif not one_job and name in left:
            reason = left[name]
            status = ("excluded" if job.when == "never" else
                      "manual" if reason.startswith("manual") or job.is_stop else "left out")
            out.append(glrun.JobResult(name, job.stage, status, None, reason))
    return out
