"""Running a pipeline with gitlab-ci-local: plan the jobs, run them, follow their progress.

gitlab-ci-local 4.73.0 writes no machine-readable report of a run, only its console output
and per-job files under .gitlab-ci-local/ (output/<job>.log, artifacts/<job>/). So:
- the plan comes from its own evaluation of the pipeline (`--list-json`: when/needs/stage
  after `rules:`; `--preview`: the merged YAML, for `environment:`), run with the same
  variables as the real run;
- progress comes from its console lines, which always start with the job name:
  `<job> starting shell (<stage>)`, `<job> finished in <t>` and, on failure,
  `<job> finished in <t> FAIL <code>` (WARN for allowed failures).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import yaml

from ci_gen.errors import CiGenError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ENV_LINE = re.compile(r"^(?P<job>\S+) environment: \{ name: (?P<env>[^,}]+), url:\s*\}\s*$")
# The first command of a job's own work, as gitlab-ci-local echoes it: what comes before is
# setup (the image stand-in, installing ci-gen, cache and artifacts copied in).
_OWN_WORK = re.compile(r"^\$ ci-gen job \S")
# Printed on every run when refs/remotes/origin/HEAD is missing (a project never cloned from
# a server); the fallback, `main`, is what ci-gen expects, so these lines say nothing.
NOISE = (
    "Unable to retrieve default remote branch, falling back to",
    "  Command failed with exit code 128: git symbolic-ref --short refs/remotes/origin/HEAD",
    "fatal: ref refs/remotes/origin/HEAD is not a symbolic ref",
)
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


def common_flags(evaluate_changes: bool, unset: Sequence[str]) -> list[str]:
    """The flags of every gitlab-ci-local call of a run (plan, jobs, stop jobs)."""
    common = [*GCL_FLAGS, "--ignore-predefined-vars", ",".join(OVERRIDDEN)]
    if not evaluate_changes:
        common.append("--no-evaluate-rule-changes")
    for name in unset:
        common += ["--unset-variable", name]
    return common


@dataclass
class PlannedJob:
    name: str
    stage: str
    when: str
    allow_failure: bool
    needs: list[dict[str, Any]] | None  # None: stage order
    environment: dict[str, Any] = field(default_factory=dict)
    cache_paths: list[str] = field(default_factory=list)
    image: str = ""  # as written after includes, variables not expanded
    changes: bool = False  # one of its rules has `changes:`
    script: str = ""  # before_script + script, one line each

    @property
    def is_stop(self) -> bool:
        return self.environment.get("action") == "stop"

    @property
    def on_stop(self) -> str | None:
        return self.environment.get("on_stop")


@dataclass
class JobResult:
    name: str
    stage: str
    status: str  # passed | failed | warning | skipped | manual | left out | excluded
    seconds: float | None = None
    note: str = ""
    setup: float | None = None  # job start -> its first `ci-gen job` command


def _run_capture(cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CiGenError(f"gitlab-ci-local cannot read the pipeline: {tool_error(proc.stderr + proc.stdout)}")
    return proc.stdout


def tool_error(output: str) -> str:
    """The message of a gitlab-ci-local failure (its last red lines), as one line."""
    lines = [ANSI.sub("", ln).strip() for ln in output.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("at ")]
    return " ".join(lines[-3:]) if lines else "no output"


def plan(tool: str, cwd: Path, common: Sequence[str], env: dict[str, str]) -> tuple[list[str], dict[str, PlannedJob]]:
    """Stages and jobs (in file order) as gitlab-ci-local evaluates them for this run."""
    procs = [subprocess.Popen([tool, flag, *common], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for flag in ("--list-json", "--preview")]
    outs = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise CiGenError(f"gitlab-ci-local cannot read the pipeline: {tool_error(err + out)}")
        outs.append(out)
    list_out, preview_out = outs
    # Warnings may precede the JSON on stdout; the array starts at the first line opening with "[".
    start = re.search(r"^\[", list_out, re.M)
    try:
        listed = json.loads(list_out[start.start():]) if start else []
    except json.JSONDecodeError:
        raise CiGenError("unexpected --list-json output from gitlab-ci-local") from None
    body = preview_out[preview_out.find("---"):] if "---" in preview_out else preview_out
    try:
        preview = yaml.safe_load(body) or {}
    except yaml.YAMLError:
        raise CiGenError("unexpected --preview output from gitlab-ci-local") from None
    stages = [str(s) for s in preview.get("stages", [])]
    jobs: dict[str, PlannedJob] = {}
    for item in listed:
        data = _preview_of(preview, item["name"])
        env_ = data.get("environment")
        env_ = {"name": env_} if isinstance(env_, str) else (env_ or {})
        jobs[item["name"]] = PlannedJob(
            name=item["name"], stage=item.get("stage", ""), when=item.get("when", "on_success"),
            allow_failure=bool(item.get("allow_failure")), needs=item.get("needs"), environment=env_,
            cache_paths=_cache_paths(data.get("cache")), image=_image(data.get("image")),
            changes=any(isinstance(r, dict) and "changes" in r for r in data.get("rules") or []),
            script="\n".join(_lines(data.get("before_script")) + _lines(data.get("script"))))
    return stages, jobs


_CELL = re.compile(r": \[[^\]]*\]$")  # a `parallel: matrix` cell: "BASE: [v1,v2]"


def _preview_of(preview: dict[str, Any], name: str) -> dict[str, Any]:
    """NAME's job in --preview, which keeps a matrix job once under its base name."""
    data = preview.get(name)
    if data is None and _CELL.search(name):
        data = preview.get(_CELL.sub("", name))
    return data if isinstance(data, dict) else {}


def _lines(script: Any) -> list[str]:
    return [str(x) for x in script] if isinstance(script, list) else [str(script)] if script else []


def _image(image: Any) -> str:
    return str(image.get("name") or "") if isinstance(image, dict) else str(image or "")


def _cache_paths(cache: Any) -> list[str]:
    caches = cache if isinstance(cache, list) else [cache] if isinstance(cache, dict) else []
    return [str(p) for c in caches if isinstance(c, dict) for p in c.get("paths") or []]


def environment_url(job: PlannedJob, artifacts: Path) -> str:
    """A job's `environment:url` as GitLab shows it: expanded with the job's own dotenv report
    (gitlab-ci-local prints it before reading that report, so empty)."""
    from ci_gen.dotenv import parse_dotenv
    from ci_gen.local.includes import expand

    url = str(job.environment.get("url") or "")
    if "$" not in url:
        return url
    values: dict[str, str] = {}
    for path in sorted((artifacts / job.name / ".gitlab-ci-reports" / "dotenv").glob("*")):
        try:
            values.update((e.key, e.value) for e in parse_dotenv(path.read_text(), str(path)))
        except (OSError, UnicodeDecodeError, CiGenError):
            continue  # an unreadable report: the URL stays unexpanded
    url = expand(url, values)
    return "" if "$" in url else url


def select(jobs: dict[str, PlannedJob], run_manual: bool) -> tuple[list[str], dict[str, str]]:
    """The jobs of a pipeline run, and why each other job is left out.

    Manual jobs run only when run_manual is on (`--manual`: a person starts them on GitLab;
    environment stop jobs run after the pipeline anyway); a job that needs a job left out is left out too, as GitLab would keep
    it waiting (gitlab-ci-local would refuse the whole pipeline instead).
    """
    left: dict[str, str] = {}
    chosen: list[str] = []
    for job in jobs.values():
        if job.when == "never":
            left[job.name] = "excluded by its rules"
        elif job.is_stop:
            left[job.name] = "environment stop job: runs after the pipeline"
        elif job.when == "manual" and not run_manual:
            left[job.name] = "manual (--manual runs it)"
        else:
            chosen.append(job.name)
    changed = True
    while changed:
        changed = False
        for name in list(chosen):
            for need in jobs[name].needs or []:
                dep = next((d for d in named(jobs, need.get("job")) if d not in chosen), None)
                if dep is not None and not need.get("optional"):
                    chosen.remove(name)
                    left[name] = f"needs {dep}, which is not run"
                    changed = True
                    break
    return chosen, left


def log_path(state_dir: Path, name: str) -> Path:
    """Where gitlab-ci-local keeps a job's log: each run of characters other than word
    characters and `-` in the name (a matrix cell's `: [a,b]`) written as unpadded base64."""
    import base64

    safe = re.sub(r"[^\w-]+", lambda m: base64.urlsafe_b64encode(m.group().encode()).decode().rstrip("="), name)
    return state_dir / "output" / f"{safe}.log"


def named(jobs: dict[str, PlannedJob], name: str | None) -> list[str]:
    """The jobs `needs: NAME` means: NAME, or every cell of a `parallel: matrix` job NAME
    (gitlab-ci-local, like GitLab, names each cell `NAME: [value, ...]`)."""
    if not name:
        return []
    return [j for j in jobs if j == name or j.startswith(f"{name}: [")]


def needs_closure(jobs: dict[str, PlannedJob], name: str, stages: Sequence[str] = ()) -> list[str]:
    """NAME and every job it needs, transitively (what `--needs` runs). A job without `needs:`
    waits for the earlier stages, as gitlab-ci-local's `--needs` runs it: their jobs count, but
    for manual ones (the sweep's collect job takes its cells that way, through `dependencies:`)."""
    order = {s: i for i, s in enumerate(stages)}
    out, todo = [], [name]
    while todo:
        cur = todo.pop()
        if cur in out or cur not in jobs:
            continue
        out.append(cur)
        job = jobs[cur]
        if job.needs is None and job.stage in order:
            todo.extend(n for n, j in jobs.items()
                        if order.get(j.stage, len(order)) < order[job.stage] and j.when not in ("manual", "never"))
        else:
            todo.extend(j for n in job.needs or [] for j in named(jobs, n.get("job")))
    return out


class Progress:
    """Follows gitlab-ci-local's console output: passes it through (unless quiet) and
    prints one ci-gen line per job start and end."""

    def __init__(self, names: Sequence[str], out: IO[str], quiet: bool,
                 cache_paths: Sequence[str] = (), env_url: Callable[[str], str] | None = None) -> None:
        self.out = out
        self.quiet = quiet
        alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        self._line = re.compile(rf"^(?P<name>{alt})\s+(?P<rest>.*)$") if names else None
        # gitlab-ci-local's lines about `cache: paths` (a warning when a job left a cache
        # directory empty, e.g. no pip install on a warm run, then a file count): not signal.
        paths = "|".join(re.escape(p.rstrip("/")) for p in sorted(set(cache_paths), key=len, reverse=True))
        self._cache_line = re.compile(
            rf"^(WARNING: (?:{paths})(?:/\*\*)?: no matching files\b.*"
            rf"|(?:{paths}): found \d+ artifact files and directories)$") if paths else None
        self.env_url = env_url
        self.started: dict[str, float] = {}
        self.results: dict[str, tuple[str, float]] = {}
        self.codes: dict[str, int] = {}  # exit code of each job that failed (allowed or not)
        self.setup: dict[str, float] = {}
        self.tail: list[str] = []

    def feed(self, raw: str) -> None:
        line = ANSI.sub("", raw.rstrip("\n"))
        if any(line.startswith(n) for n in NOISE):
            return
        if self._cache_line and self._cache_line.match(line):
            return
        env = _ENV_LINE.match(line) if self.env_url else None
        if env:  # printed with an empty url: the one the deploy job's dotenv report gives
            url = self.env_url(env["job"])  # type: ignore[misc]
            raw = f"{env['job']} environment: {{ name: {env['env']}" + (f", url: {url} }}" if url else " }")
            line = raw
        self.tail = (self.tail + [line])[-20:]
        if not self.quiet:
            self.out.write(raw if raw.endswith("\n") else raw + "\n")
        m = self._line.match(line) if self._line else None
        if not m:
            return
        name, rest = m["name"], m["rest"]
        if rest.startswith("starting ") and name not in self.started:
            self.started[name] = time.monotonic()
            stage = re.search(r"\(([^)]*)\)\s*$", rest)
            if self.quiet:  # otherwise gitlab-ci-local's own "starting" line is shown
                self.say(f"{name}: started" + (f" (stage {stage.group(1)})" if stage else ""))
            return
        if name in self.started and name not in self.setup and _OWN_WORK.match(rest):
            self.setup[name] = time.monotonic() - self.started[name]
            return
        fin = re.match(r"finished in (?P<dur>.+?)(?:\s+(?P<st>FAIL|WARN)\s+(?P<code>-?\d+))?\s*(?P<after>after_script)?\s*$", rest)
        if fin and not fin["after"] and name not in self.results:
            secs = time.monotonic() - self.started.get(name, time.monotonic())
            status = {"FAIL": "failed", "WARN": "warning"}.get(fin["st"] or "", "passed")
            self.results[name] = (status, secs)
            if fin["code"]:
                self.codes[name] = int(fin["code"])
            code = f", exit code {fin['code']}" if fin["code"] else ""
            self.say(f"{name}: {status} in {fmt_seconds(secs)}{code}")

    def say(self, text: str) -> None:
        self.out.write(f"ci-gen: {text}\n")
        self.out.flush()


def execute(cmd: Sequence[str], cwd: Path, env: dict[str, str], progress: Progress) -> int:
    """Run gitlab-ci-local, feeding its merged output to progress; its exit code."""
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace")
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            progress.feed(raw)
    except BaseException:
        proc.terminate()  # gitlab-ci-local cleans up its jobs on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    return proc.wait()


def fmt_seconds(secs: float | None) -> str:
    if secs is None:
        return "-"
    if secs < 60:
        return f"{secs:.1f} s"
    return f"{int(secs // 60)} min {secs % 60:04.1f} s"


def summary_lines(results: list[JobResult]) -> list[str]:
    width = max([len(r.name) for r in results] + [4])
    swidth = max([len(r.stage) for r in results] + [5])
    with_setup = any(r.setup is not None for r in results)
    lines = []
    for r in results:
        dur = fmt_seconds(r.seconds) if r.seconds is not None else ""
        setup = f"  {'setup ' + fmt_seconds(r.setup) if r.setup is not None else '':>16}" if with_setup else ""
        note = f"  ({r.note})" if r.note else ""
        lines.append(f"  {r.status:<9} {r.name:<{width}}  {r.stage:<{swidth}}  {dur:>10}{setup}{note}".rstrip())
    return lines
