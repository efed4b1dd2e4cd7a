"""Injection, in gitlab-ci-local 4.73.0 (what `ci-gen run` uses): the components' real
`spec: inputs:` headers and script lines, so its own regex enforcement is exercised too.
Accepted dangerous-looking values pass through as literal arguments (recorded by the same
stand-ins as tests/test_injection_render.py); values the regexes refuse stop the pipeline
before any job starts; and the gap ci-gen's array-item rule closes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_gen import components as desc
from ci_gen.errors import CiGenError, InputError
from ci_gen.inputs import resolve
from ci_gen.render import body, header
from support.git import make_project
from support.pipeline import gitlab_ci_local
from support.injection import assert_one_line, check_component
from support.payloads import MARKER_DIR, NASTY_ITEMS, NASTY_VALID, marker_stays_absent  # noqa: F401  (fixture)
from support.shell import (CI_ENV, ENV_REF, PLACEHOLDER, PRELUDE, map_back, parse_records, run_items,
                           script_items, sentinels, substitute)

GCL_FLAGS = ["--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source"]
NUMBER_CASES = [0, -1, 2.5, 65535]
# Refused by the regex (GitLab's and ci-gen's), each would create the marker if a shell ran it.
REFUSED = [
    ("train", "data", 'train_data.dvc"; touch {m}; echo "'),
    ("train", "requirements", "r.txt$(touch {m})"),
    ("dvc-upload", "remote", "$(touch {m})"),
    ("docker-build", "build-args", "A=$(touch {m})"),
    ("docker-build", "context", ". ; touch {m}"),
    ("inference", "client", "python x.py; touch {m}"),
    ("inference", "client", "python `touch {m}`"),
    ("deploy", "host", "h\ntouch {m}"),
    ("deploy", "health-path", '/x"; touch {m}; "'),
    ("deploy", "env", "A=b,C=$(touch {m})"),
    ("deploy", "engine", "docker; touch {m}"),
    ("eval-report", "gate-metric", "a`touch {m}`"),
    ("eval-report", "max-drop", "1; touch {m}"),
]


def derived_component(comp: desc.Component) -> tuple[str, dict[str, list[str]]]:
    """A local include: the component's REAL `spec: inputs:` header, and one job per job of
    the component that has script items with inputs, running exactly those items (after the
    recording prelude). Returns the file text and, per derived job suffix, the items."""
    doc = yaml.safe_load(body(comp))
    jobs: dict[str, Any] = {}
    items_by_job: dict[str, list[str]] = {}
    for n, (key, job) in enumerate(doc.items()):
        if not isinstance(job, dict) or not isinstance(job.get("script"), list):
            continue
        items = [it for it in job["script"] if PLACEHOLDER.search(it)]
        if not items:
            continue
        refs = sorted({v for it in items for v in ENV_REF.findall(it)})
        env_header = "__rec __env " + " ".join(f'"{r}=${{{r}:-}}"' for r in refs)
        suffix = f"{comp.name}-{n}"
        derived: dict[str, Any] = {
            "stage": "inj",
            "variables": {k: CI_ENV[k] for k in ("CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD", "DEPLOY_URL")},
            "script": ['INJ_LOG="$INJ_LOG_DIR/$CI_JOB_NAME.rec"', PRELUDE, env_header, *items],
        }
        if "$[[" in json.dumps(job.get("artifacts", {})):
            derived["artifacts"] = job["artifacts"]  # train: paths from the `artifacts` input
        jobs[f"$[[ inputs.job-prefix ]]-{suffix}"] = derived
        items_by_job[suffix] = items
    return header(comp) + "---\n" + yaml.safe_dump(jobs, sort_keys=False, width=1000), items_by_job


def accepted_cases() -> list[tuple[str, dict[str, Any]]]:
    """(component, inputs) for the gitlab-ci-local run: every script input, nasty values."""
    out = []
    for name in desc.ORDER:
        comp = desc.COMPONENTS[name]
        in_scripts = sorted({n for it in script_items(yaml.safe_load(body(comp)))
                             for n in PLACEHOLDER.findall(it)} - {"job-prefix"})
        per_input: dict[str, list[Any]] = {}
        for n in in_scripts:
            inp = comp.input(n)
            if inp.options is not None:
                per_input[n] = list(inp.options)
            elif inp.type == "number":  # the odd numbers this input's own check lets through
                per_input[n] = [v for v in NUMBER_CASES if _accepted(comp, n, v)]
            elif inp.type == "boolean":
                per_input[n] = [False, True]
            else:
                per_input[n] = NASTY_VALID[inp.regex]
        if name == "train":
            per_input["artifacts"] = [NASTY_ITEMS[:4], NASTY_ITEMS[4:8], NASTY_ITEMS[8:]]
        rounds = max(len(v) for v in per_input.values())
        for k in range(rounds):
            out.append((name, {n: vals[k] for n, vals in per_input.items() if k < len(vals)}))
    return out


def _accepted(comp: desc.Component, name: str, value: Any) -> bool:
    try:
        resolve(comp, {name: value})
    except InputError:
        return False
    return True


def make_repo(root: Path, includes: list[tuple[str, dict[str, Any]]]) -> Path:
    """A scratch project: origin on gitlab.example.com, one commit, include files tracked."""
    files = {".gitignore": ".gitlab-ci-local/\n"}
    entries = []
    for k, (name, inputs) in enumerate(includes):
        rel = f"inj/{name}-{k}.yml"
        files[rel], _ = derived_component(desc.COMPONENTS[name])
        entries.append({"local": rel, "inputs": {"job-prefix": f"c{k}", **inputs}})
    ci = yaml.safe_dump({"stages": ["inj"], "include": entries}, sort_keys=False, width=1000)
    return make_project(root, ci, files, message="injection payloads")


def run_gcl(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([gitlab_ci_local(), *GCL_FLAGS], cwd=repo, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=900)


def expected_records(items: list[str], values: dict[str, Any], comp: desc.Component,
                     env: dict[str, str]) -> list[list[str]]:
    """argv the items give, run here, when every free-form input is an inert sentinel."""
    sentinel, tokens = sentinels(comp, values, set(values))
    ref, status = run_items([substitute(it, values, sentinel) for it in items], env)
    assert set(status) <= {0}, status
    return map_back(ref, tokens)


@pytest.mark.slow
def test_accepted_payloads_are_inert_in_gitlab_ci_local(tmp_path):
    """One pipeline, one job per (component job, round of nasty accepted values)."""
    cases = accepted_cases()
    for name, inputs in cases:  # ci-gen accepts them all (else the case list is wrong)
        assert not check_component(name, inputs).refused
    repo = make_repo(tmp_path / "repo", cases)
    logs = tmp_path / "argv"
    logs.mkdir()
    proc = run_gcl(repo, {"INJ_LOG_DIR": str(logs)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert not list(MARKER_DIR.iterdir())
    checked = 0
    for k, (name, inputs) in enumerate(cases):
        comp = desc.COMPONENTS[name]
        values = resolve(comp, {"job-prefix": f"c{k}", **inputs})
        _, items_by_job = derived_component(comp)
        for suffix, items in items_by_job.items():
            job = f"c{k}-{suffix}"
            assert f"PASS  {job}" in out, job
            records = parse_records((logs / f"{job}.rec").read_text())
            env = dict(kv.split("=", 1) for kv in records[0][1:])
            assert records[0][0] == "__env"
            assert records[1:] == expected_records(items, values, comp, env), job
            checked += 1
    assert checked >= 2 * len(desc.ORDER)


def _refused_run(args: tuple[Path, int, str, str, str]) -> tuple[str, str, subprocess.CompletedProcess]:
    root, k, name, inp, payload = args
    repo = make_repo(root / f"r{k}", [(name, {inp: payload})])
    return name, inp, run_gcl(repo, {"INJ_LOG_DIR": str(root)})


@pytest.mark.slow
def test_refused_payloads_are_refused_by_gitlab_ci_local_too(tmp_path):
    """Values the regexes refuse: ci-gen says so in one line, and gitlab-ci-local (like GitLab)
    refuses the pipeline before any job runs, so the marker never appears."""
    marker = tmp_path / "PWNED"
    cases = []
    for k, (name, inp, payload) in enumerate(REFUSED):
        value = payload.format(m=marker)
        with pytest.raises(InputError) as exc:
            resolve(desc.COMPONENTS[name], {inp: value})
        assert_one_line(str(exc.value))
        cases.append((tmp_path, k, name, inp, value))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_refused_run, cases))
    for name, inp, proc in results:
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, (name, inp, out[-2000:])
        assert re.search(r"does not match required regex|not in the list of allowed options|"
                         r"provided value is not a number", out), (name, inp, out[-2000:])
        assert " starting shell " not in out, (name, inp)
    assert not marker.exists()


@pytest.mark.slow
def test_gitlab_ci_local_runs_shell_syntax_in_artifact_paths(tmp_path):
    """The gap ci-gen's array-item rule closes: given the raw value, gitlab-ci-local executes
    `$(...)` in an artifacts path on the host. ci-gen refuses the value (render, lint)."""
    marker = tmp_path / "PWNED"
    value = [f"model/$(touch {marker})"]
    with pytest.raises(InputError, match="items must be single words"):
        resolve(desc.COMPONENTS["train"], {"artifacts": value})
    repo = make_project(tmp_path / "repo", yaml.safe_dump({
        "stages": ["inj"],
        "j": {"stage": "inj", "script": ["mkdir -p model"], "artifacts": {"paths": value}}}),
        message="artifact path")
    proc = run_gcl(repo, {})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.exists(), "gitlab-ci-local no longer runs artifact paths through bash: " \
        "the array-item rule may be relaxed"


def test_ci_gen_run_refuses_shell_syntax_in_component_inputs(tmp_path):
    from ci_gen import __version__
    from ci_gen.local.includes import resolve_includes
    from ci_gen.local.project import project_context

    repo = make_project(tmp_path / "repo", yaml.safe_dump({
        "stages": desc.default_stages(),
        "include": [{"component": f"$CI_SERVER_FQDN/mlops/ci-gen/train@{__version__}",
                     "inputs": {"artifacts": [f"model/$(touch {tmp_path / 'PWNED'})"]}}]}),
        message="bad input")
    with pytest.raises(CiGenError, match="artifacts"):
        resolve_includes(project_context(repo), {})
