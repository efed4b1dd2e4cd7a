"""Policy checks that GitLab's schema cannot express, on any GitLab CI configuration.

Pipeline checks: pinned images, `needs`/`dependencies` to existing jobs, declared stages,
`extends` targets that exist. Component checks (files with a `spec:` header): no global
keywords, described and constrained inputs, deploy jobs serialised by `resource_group`, a
`process` deploy (runner host) sent to a runner by `tags`.
GitLab's limits (each naming the GitLab file it is read from): needs per job, matrix size and
value types, `rules:changes` entries, tags.
Strict checks: train/eval jobs interruptible, commits from CI carry `[skip ci]`.
Project checks: the DVC remotes committed next to a pipeline are reachable from a runner; no
static cloud key in the pipeline file or the DVC config while `remote-auth: oidc` is available.
Each check reports key paths to a `Sink`, which turns them into located findings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ci_gen.lint.findings import ERROR, WARNING, Finding, Sink
from ci_gen.lint.merge import (DEFAULT_STAGES, ExtendsError, effective, extends_of, jobs,
                               script_lines, visible)
from ci_gen.inputs import GITLAB_MATRIX_LIMIT, matrix_size  # lib/gitlab/ci/config/entry/product/parallel.rb
from ci_gen.patterns import RE_DIGEST, RE_IMAGE_VAR_PREFIX, RE_VERSION_TAG

# Keywords a component must leave to the pipeline that includes it.
COMPONENT_FORBIDDEN = ("default", "stages", "workflow", "variables", "include",
                       "before_script", "after_script", "image", "services", "cache")
_VERSION_TAG = re.compile(RE_VERSION_TAG)
_DIGEST = re.compile(RE_DIGEST)
_VAR_PREFIX = re.compile(RE_IMAGE_VAR_PREFIX)
# `git [global options] commit|push`, e.g. `git -C repo -c user.name=ci commit -m ...`.
_GIT = r"\bgit(?:\s+(?:-[Cc]\s+\S+|--?[A-Za-z][\w-]*(?:=\S+)?))*\s+"
_GIT_COMMIT = re.compile(_GIT + r"commit\b")
_GIT_PUSH = re.compile(_GIT + r"push\b")
_SKIP_CI = re.compile(r"\[(skip ci|ci skip)\]", re.IGNORECASE)
_PUSH_SKIP = re.compile(r"(-o\s*|--push-option[= ]\s*)ci\.skip\b")
# `ci-gen job commit-pointers` needs no rule: it commits with `[skip ci]` by construction
# and runs no `git commit` that these patterns would see.


# -- images ---------------------------------------------------------------------------------

def image_problem(ref: str) -> tuple[str, str] | None:
    """(severity, message) when an image reference is not pinned to a version, else None."""
    # A registry prefix from a variable (the dependency proxy's
    # $CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX/, a mirror) leaves the tag checkable.
    shown = ref.strip()
    ref = _VAR_PREFIX.sub("", shown, count=1)
    if "$" in ref:
        return WARNING, (f"image {shown!r} comes from a variable; lint cannot check that it is "
                         "pinned to a version")
    name, _, digest = ref.partition("@")
    if digest:
        if _DIGEST.fullmatch(digest):
            return None
        return ERROR, f"image {shown!r} has a malformed digest (expected sha256:<64 hex digits>)"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return ERROR, f"image {shown!r} is not pinned: no tag means `latest`; use a version tag"
    tag = last.rsplit(":", 1)[1]
    if tag == "latest":
        return ERROR, f"image {shown!r} is not pinned: `latest` moves; use a version tag"
    if not _VERSION_TAG.match(tag):
        return ERROR, (f"image {shown!r} is not pinned: tag {tag!r} is not a version "
                       "(use a tag like 1.2.3, or a digest)")
    return None


def _image_refs(value: Any, key: tuple) -> list[tuple[tuple, str]]:
    if isinstance(value, str):
        return [(key, value)]
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return [(key + ("name",), value["name"])]
    return []


def check_images(config: dict, sink: Sink) -> None:
    """Every `image:` and `services:` entry (jobs, hidden jobs, `default:`, top level)."""
    places: list[tuple[tuple, dict]] = [((), config)]
    if isinstance(config.get("default"), dict):
        places.append((("default",), config["default"]))
    places.extend(((name,), job) for name, job in jobs(config).items())
    for key, node in places:
        refs = _image_refs(node.get("image"), key + ("image",))
        services = node.get("services")
        if isinstance(services, list):
            for i, svc in enumerate(services):
                refs.extend(_image_refs(svc, key + ("services", i)))
        owner = f"job {key[0]!r}" if key and key[0] != "default" else ("`default:`" if key else "top level")
        for where, ref in refs:
            problem = image_problem(ref)
            if problem:
                sink.add(where, f"{owner}: {problem[1]}", problem[0])


# -- structure: extends, stages, needs ------------------------------------------------------

def _effective_jobs(config: dict, sink: Sink | None) -> dict[str, dict]:
    """Visible jobs as they run; jobs whose `extends` is broken are reported and left out."""
    out = {}
    for name in jobs(config):
        if not visible(name):
            continue
        try:
            out[name] = effective(name, config)
        except ExtendsError as exc:
            if sink is not None:
                sink.add((name, "extends"), f"job {name!r}: {exc}")
    return out


def check_extends(config: dict, sink: Sink) -> None:
    """`extends` targets exist, with no cycle (hidden jobs too; visible ones are reported
    by `check_structure`)."""
    all_jobs = jobs(config)
    for name, job in all_jobs.items():
        if visible(name):
            continue
        for parent in extends_of(job):
            if parent not in all_jobs:
                sink.add((name, "extends"), f"job {name!r}: extends {parent!r}, which is not defined")


def check_structure(config: dict, sink: Sink, *, stages: bool = True, needs: bool = True) -> dict[str, dict]:
    """Stages declared, `needs`/`dependencies` pointing at jobs; returns the effective jobs."""
    eff = _effective_jobs(config, sink)
    check_extends(config, sink)
    declared = config.get("stages")
    if isinstance(declared, list):
        order = [".pre"] + [s for s in declared if isinstance(s, str) and s not in (".pre", ".post")] + [".post"]
    else:
        order = list(DEFAULT_STAGES)
    stage_of = {name: job.get("stage", "test") for name, job in eff.items()}
    if stages:
        hint = ("declare it in `stages:`" if isinstance(declared, list)
                else f"no `stages:` here, so only GitLab's defaults exist: {', '.join(DEFAULT_STAGES)}")
        for name, stage in stage_of.items():
            if isinstance(stage, str) and stage not in order:
                key = (name, "stage") if "stage" in config[name] else (name,)
                sink.add(key, f"job {name!r}: stage {stage!r} is not declared; {hint}")
    if needs:
        for name, job in eff.items():
            _check_needs(name, job, config, eff, stage_of, order, sink)
    for name, job in eff.items():
        env = job.get("environment")
        stop = env.get("on_stop") if isinstance(env, dict) else None
        if isinstance(stop, str) and "$" not in stop and stop not in eff:
            sink.add((name, "environment", "on_stop"),
                     f"job {name!r}: environment on_stop {stop!r} is not a job of this pipeline")
    return eff


def _needed(value: Any) -> list[tuple[int, str, bool]]:
    """(index, job name, optional) of each `needs:` entry on a job of this pipeline."""
    out = []
    if not isinstance(value, list):
        return out
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append((i, item, False))
        elif isinstance(item, dict) and isinstance(item.get("job"), str):
            if "project" in item or "pipeline" in item:
                continue  # another project's or the parent pipeline's job
            out.append((i, item["job"], item.get("optional") is True))
    return out


def _check_needs(name: str, job: dict, config: dict, eff: dict, stage_of: dict, order: list,
                 sink: Sink) -> None:
    own = config.get(name, {})
    entries: list[tuple[tuple, str, bool]] = []
    for i, target, optional in _needed(job.get("needs")):
        key = (name, "needs", i) if "needs" in own else (name,)
        entries.append((key, target, optional))
    rules = job.get("rules")
    if isinstance(rules, list):
        for r, rule in enumerate(rules):
            if isinstance(rule, dict):
                for i, target, optional in _needed(rule.get("needs")):
                    entries.append(((name, "rules", r, "needs", i), target, optional))
    for key, target, optional in entries:
        if "$" in target:
            continue  # a variable or matrix expression, known only when the pipeline runs
        if target not in eff:
            if optional:
                continue
            if target in config:
                sink.add(key, f"job {name!r}: needs {target!r}, a hidden job, which never runs")
            else:
                sink.add(key, f"job {name!r}: needs {target!r}, not a job of this pipeline "
                              "(add `optional: true` if rules may leave it out)")
            continue
        mine, theirs = stage_of.get(name), stage_of.get(target)
        if mine in order and theirs in order and order.index(theirs) > order.index(mine):
            sink.add(key, f"job {name!r} (stage {mine!r}): needs {target!r}, which runs in the "
                          f"later stage {theirs!r}")
    deps = job.get("dependencies")
    if isinstance(deps, list):
        for i, target in enumerate(deps):
            if isinstance(target, str) and target not in eff:
                key = (name, "dependencies", i) if "dependencies" in own else (name,)
                sink.add(key, f"job {name!r}: dependencies lists {target!r}, which is not a job "
                              "of this pipeline")


# -- GitLab's limits ------------------------------------------------------------------------
# Limits GitLab applies when it creates the pipeline, which GitLab's JSON schema (and so
# gitlab-ci-local) does not express. Each names the GitLab file it is read from.

# lib/gitlab/ci/pipeline/seed/build.rb (needs_errors): "one job can only need 50 others"
# (the project's ci_needs_size_limit, 50 by default); lib/gitlab/ci/config/normalizer.rb
# (expand_parallelized_needs) turns a need on a `parallel` job into one need per generated job.
MAX_NEEDS = 50
# lib/gitlab/ci/config/entry/rules/rule/changes.rb: `rules:changes` "has too many entries
# (maximum 50)".
MAX_CHANGES = 50
# lib/gitlab/ci/config/entry/tags.rb: TAGS_LIMIT = 50, refused from 50 on (`size >= TAGS_LIMIT`).
TAGS_LIMIT = 50


def _matrix_jobs(matrix: Any) -> int:
    """How many jobs a `parallel: matrix` makes (lib/gitlab/ci/config/entry/product/matrix.rb
    number_of_generated_jobs: per entry the product of its value counts, summed)."""
    if not isinstance(matrix, list):
        return 1
    entries = [{k: v if isinstance(v, list) else [v] for k, v in e.items()} for e in matrix if isinstance(e, dict)]
    return max(matrix_size(entries), 1)


def _jobs_of(job: Any) -> int:
    """How many jobs GitLab makes of one job: `parallel: N`, a matrix's cells, else 1."""
    parallel = job.get("parallel") if isinstance(job, dict) else None
    if isinstance(parallel, int) and not isinstance(parallel, bool) and parallel > 1:
        return parallel
    if isinstance(parallel, dict):
        return _matrix_jobs(parallel.get("matrix"))
    return 1


def _need_count(needs: Any, eff: dict[str, dict]) -> tuple[int, list[str]]:
    """(needs after GitLab expands them, the parallel jobs that count more than once)."""
    total, expanded = 0, []
    for item in needs if isinstance(needs, list) else []:
        target = item if isinstance(item, str) else item.get("job") if isinstance(item, dict) else None
        if not isinstance(target, str):
            total += 1
            continue
        own = item.get("parallel") if isinstance(item, dict) else None
        count = _matrix_jobs(own.get("matrix")) if isinstance(own, dict) else _jobs_of(eff.get(target))
        if count > 1:
            expanded.append(f"{target!r} x{count}")
        total += count
    return total, expanded


def _changes(rule: Any) -> Any:
    changes = rule.get("changes") if isinstance(rule, dict) else None
    return changes.get("paths") if isinstance(changes, dict) else changes


def check_gitlab_limits(config: dict, eff: dict[str, dict], sink: Sink) -> None:
    """Needs (a parallel job counted once per job it makes), matrix value types, `rules:changes`
    and `tags` sizes, as GitLab checks them."""
    places: list[tuple[tuple, Any]] = []
    workflow = config.get("workflow")
    if isinstance(workflow, dict) and isinstance(workflow.get("rules"), list):
        places += [(("workflow", "rules", r), rule) for r, rule in enumerate(workflow["rules"])]
    for name, job in eff.items():
        own = config.get(name, {}) if isinstance(config.get(name), dict) else {}
        lists = [((name, "needs") if "needs" in own else (name,), job.get("needs"))]
        rules = job.get("rules") if isinstance(job.get("rules"), list) else []
        lists += [((name, "rules", r, "needs"), rule.get("needs"))
                  for r, rule in enumerate(rules) if isinstance(rule, dict) and "needs" in rule]
        for key, needs in lists:
            count, expanded = _need_count(needs, eff)
            if count > MAX_NEEDS:
                why = f" ({', '.join(expanded)}: a need on a parallel job counts once per job it makes)" \
                    if expanded else ""
                sink.add(key, f"job {name!r} needs {count} jobs{why}; GitLab allows at most {MAX_NEEDS} "
                              "(lib/gitlab/ci/pipeline/seed/build.rb): need fewer, or drop `needs:` and "
                              "take the artifacts of the earlier stages")
        places += [((name, "rules", r) if "rules" in own else (name,), rule) for r, rule in enumerate(rules)]
        _check_matrix_values(name, job, own, sink)
        parallel = job.get("parallel")
        if isinstance(parallel, dict) and _jobs_of(job) > GITLAB_MATRIX_LIMIT:
            sink.add((name, "parallel") if "parallel" in own else (name,),
                     f"job {name!r}: parallel:matrix makes {_jobs_of(job)} jobs; GitLab allows at most "
                     f"{GITLAB_MATRIX_LIMIT} (lib/gitlab/ci/config/entry/product/matrix.rb)")
        tags = job.get("tags")
        if isinstance(tags, list) and len(tags) >= TAGS_LIMIT:
            sink.add((name, "tags") if "tags" in own else (name,),
                     f"job {name!r} has {len(tags)} tags; GitLab wants fewer than {TAGS_LIMIT} "
                     "(lib/gitlab/ci/config/entry/tags.rb)")
    for key, rule in places:
        changes = _changes(rule)
        if isinstance(changes, list) and len(changes) > MAX_CHANGES:
            owner = "workflow" if key[0] == "workflow" else f"job {key[0]!r}"
            sink.add(key + ("changes",) if len(key) == 3 else key,
                     f"{owner}: `rules:changes` lists {len(changes)} paths; GitLab allows at most "
                     f"{MAX_CHANGES} (lib/gitlab/ci/config/entry/rules/rule/changes.rb): use globs")


def _check_matrix_values(name: str, job: dict, own: dict, sink: Sink) -> None:
    """`parallel: matrix` values are strings or integers: GitLab refuses a decimal or a boolean
    (validate_array_value_variables -> AlphanumericValidator, lib/gitlab/config/entry/
    legacy_validation_helpers.rb and validators.rb, used by entry/product/variables.rb)."""
    parallel = job.get("parallel")
    matrix = parallel.get("matrix") if isinstance(parallel, dict) else None
    if not isinstance(matrix, list):
        return
    for i, entry in enumerate(matrix):
        for var, values in (entry.items() if isinstance(entry, dict) else ()):
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, bool) or isinstance(value, float):
                    key = (name, "parallel", "matrix", i, var) if "parallel" in own else (name,)
                    text = str(value).lower() if isinstance(value, bool) else repr(value)
                    sink.add(key, f"job {name!r}: parallel:matrix {var}: {text} is a "
                                  f"{'boolean' if isinstance(value, bool) else 'decimal'}; GitLab takes only "
                                  f"strings and integers there (validate_alphanumeric, lib/gitlab/config/entry/"
                                  f"legacy_validation_helpers.rb): quote it, \"{text}\"")


# -- components -----------------------------------------------------------------------------

def _anchored(regex: str) -> bool:
    """`^...$` with no top-level `|` (`^a|b$` anchors only one side of each branch)."""
    if not (regex.startswith("^") and regex.endswith("$") and not regex.endswith("\\$")):
        return False
    depth, in_class, escaped = 0, False, False
    for ch in regex[1:-1]:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return False
    return True


def check_inputs(header: Any, sink: Sink) -> None:
    """Every input described; every string input constrained by `options` or an anchored `regex`."""
    spec = header.get("spec") if isinstance(header, dict) else None
    inputs = spec.get("inputs") if isinstance(spec, dict) else None
    if not isinstance(inputs, dict):
        return
    for name, conf in inputs.items():
        key = ("spec", "inputs", name)
        conf = conf if isinstance(conf, dict) else {}
        if not str(conf.get("description") or "").strip():
            sink.add(key, f"input {name!r} has no description")
        if conf.get("type", "string") != "string":
            continue
        options, regex = conf.get("options"), conf.get("regex")
        if options is None and regex is None:
            sink.add(key, f"string input {name!r} is unconstrained: add `options` or an "
                          "anchored `regex` (^...$); inputs reach shells")
        # Whether the regex compiles (RE2) and the default passes is checked for every header
        # by lint.spec.header_problems; here only the style rule.
        if isinstance(regex, str) and not _anchored(regex):
            sink.add(key + ("regex",), f"input {name!r}: regex {regex!r} must be anchored "
                                       "as ^...$ (group alternatives: ^(a|b)$)")


def check_component_body(body: dict, sink: Sink) -> None:
    """No global keywords: the pipeline that includes a component owns them."""
    for key in body:
        if key in COMPONENT_FORBIDDEN:
            sink.add((key,), f"global keyword {key!r} in a component: it changes every job of "
                             "the pipeline that includes it; set it per job (or leave it to the pipeline)")


def check_resource_groups(eff: dict[str, dict], sink: Sink) -> None:
    """Jobs that deploy to an environment run one at a time (`resource_group`)."""
    for name, job in eff.items():
        env = job.get("environment")
        if env is None:
            continue
        action = env.get("action", "start") if isinstance(env, dict) else "start"
        if action == "start" and not job.get("resource_group"):
            sink.add((name, "environment"), f"job {name!r} deploys to an environment but has no "
                                            "`resource_group`, so two deployments can overlap")


_RUNNER_HOST_DEPLOY = re.compile(r"""\bci-gen\s+job\s+deploy\b.*\s--engine[= ]["']?process\b""")


def check_runner_host_deploys(eff: dict[str, dict], sink: Sink) -> None:
    """A `process` deploy runs on the runner host: only a shell runner chosen by `tags` keeps it
    (a docker-executor job's container, and what it started, is removed after the job)."""
    for name, job in eff.items():
        if job.get("tags") or not any(_RUNNER_HOST_DEPLOY.search(line) for line in script_lines(job)):
            continue
        sink.add((name,), f"job {name!r} deploys with engine `process` on the runner host but has "
                          "no `tags`: on a docker-executor or shared runner the release dies with the "
                          "job; set the deploy input `tags` to your shell runner's tag (or deploy to a "
                          "target: see Deploy targets in ci-gen's README)", WARNING)


# -- strict ---------------------------------------------------------------------------------

def check_strict(eff: dict[str, dict], sink: Sink) -> None:
    """Train/eval jobs are interruptible; commits pushed from CI carry `[skip ci]`."""
    for name, job in eff.items():
        if name.endswith("-train") or name.endswith("-eval-report") or name in ("train", "eval-report"):
            if job.get("interruptible") is not True:
                sink.add((name,), f"job {name!r}: train/eval jobs must be `interruptible: true`, "
                                  "so a newer pipeline cancels a stale run")
        _check_commits(name, job, sink)


def _check_commits(name: str, job: dict, sink: Sink) -> None:
    lines = [ln for ln in script_lines(job) if not ln.lstrip().startswith("#")]
    commits = [ln for ln in lines if _GIT_COMMIT.search(ln)]
    pushes = [ln for ln in lines if _GIT_PUSH.search(ln)]
    bad_commits = [ln for ln in commits if not _SKIP_CI.search(ln)]
    for line in bad_commits:
        sink.add((name, "script"), f"job {name!r}: `{_short(line)}` commits without `[skip ci]` "
                                   "in the message; pushed, it starts another pipeline "
                                   "(or use `ci-gen job commit-pointers`)")
    for line in pushes:
        if _PUSH_SKIP.search(line) or (commits and not bad_commits):
            continue
        sink.add((name, "script"), f"job {name!r}: `{_short(line)}` pushes commits not marked "
                                   "`[skip ci]` (nor `-o ci.skip`); it starts another pipeline")


def _short(line: str) -> str:
    line = line.strip()
    return line if len(line) <= 80 else line[:77] + "..."


# -- the project around a pipeline ------------------------------------------------------------

def check_dvc_remotes(project: Path, shown: str) -> list[Finding]:
    """One warning when the DVC remotes committed in `project/.dvc/config` (`shown`, as the
    user names it) are local paths: a GitLab runner has none of this machine's directories."""
    from ci_gen.dvcrepo import tool as dvctool

    local = [(name, url, line) for name, url, line in dvctool.committed_remotes(project)
             if dvctool.scheme(url) == "local"]
    if not local:
        return []
    names = ", ".join(f"{name!r} ({url})" for name, url, _ in local)
    first = local[0][0]
    return [Finding(shown, f"{local[0][2]}:1",
                    f"DVC remote(s) {names} are local paths: fine for `ci-gen run` on this machine, "
                    f"but a GitLab runner cannot reach them; point each at S3 or OSS, e.g. "
                    f"`dvc remote modify {first} url s3://BUCKET/PREFIX/{first}` (credentials in masked "
                    "AWS_* / OSS_* CI/CD variables, never in .dvc/config)", WARNING)]


# -- static cloud keys while keyless credentials are available ---------------------------------

# Long-lived keys DVC's remotes read; `remote-auth: oidc` makes them unnecessary.
STATIC_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET",
               "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
# DVC settings that hold such a key (dvc-s3, dvc-oss).
_DVC_KEY_SETTINGS = re.compile(r"^\s*(access_key_id|secret_access_key|oss_key_id|oss_key_secret)\s*=",
                               re.M)
_KEYS_MODE = "-remote-auth-keys"


def keys_mode_jobs(config: dict) -> list[str]:
    """Jobs of ci-gen components that could use `remote-auth: oidc` but use `keys`."""
    return [name for name, job in jobs(config).items()
            if visible(name) and any(e.endswith(_KEYS_MODE) for e in extends_of(job))]


def check_static_keys(config: dict, project: Path, dvc_config_shown: str, sink: Sink) -> None:
    """A warning for each static cloud key the pipeline file or the committed `.dvc/config`
    holds while its DVC jobs could exchange the job's ID token instead (`remote-auth: oidc`).
    Names only: a value is never read into a message."""
    keyed = keys_mode_jobs(config)
    if not keyed:
        return
    hint = (f"the DVC jobs ({', '.join(sorted(keyed)[:3])}{', ...' if len(keyed) > 3 else ''}) can use "
            "`remote-auth: oidc` instead: short-lived credentials from the job's ID token, no stored key "
            "(see Keyless credentials in ci-gen's README)")
    places: list[tuple[tuple, Any]] = [(("variables",), config.get("variables"))]
    places += [((name, "variables"), job.get("variables")) for name, job in jobs(config).items()]
    for key, variables in places:
        if not isinstance(variables, dict):
            continue
        for var in STATIC_KEYS:
            if var in variables:
                sink.add(key + (var,), f"static cloud key {var} in the pipeline file: a secret in the "
                                       f"repository; {hint}", WARNING)
    try:
        text = (project / ".dvc" / "config").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    for m in _DVC_KEY_SETTINGS.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        sink.extend([Finding(dvc_config_shown, f"{line}:1",
                             f"static cloud key `{m.group(1)}` committed in the DVC config: a secret in "
                             f"the repository; {hint}", WARNING)])
