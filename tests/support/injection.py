"""The injection property for one value: refused with one clear line, or rendered so that
the YAML reads back exactly and no shell runs any part of it (tests/test_injection_*.py).
Also the fixed corpus behind the README's injection figures (test_injection_corpus.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from ci_gen import components as desc
from ci_gen.deploy import spec as deploy_spec
from ci_gen.dotenv import parse_assignments
from ci_gen.errors import CiGenError, InputError, UsageError
from ci_gen.inputs import resolve
from ci_gen.render import body, render
from ci_gen.scaffold import example as project_setup
from ci_gen.scaffold import plan as scaffold

from .payloads import ALL_BITS, NASTY_ITEMS, NASTY_VALID
from .shell import PLACEHOLDER, assert_inert_in, differential, placeholder_contexts, script_items, text_of


def assert_one_line(msg: str) -> None:
    """What the CLI prints after `ci-gen: error: `: one printable line, no escape codes."""
    assert msg and msg.isprintable(), repr(msg)
    assert len(msg.splitlines()) == 1, repr(msg)


def _walk(tmpl: Any, got: Any, values: dict[str, Any], path: str = "") -> None:
    """(a): the inline YAML, parsed back, holds exactly the values GitLab would put there."""
    if isinstance(tmpl, dict):
        assert isinstance(got, dict) and len(got) == len(tmpl), path
        for (tk, tv), (gk, gv) in zip(tmpl.items(), got.items()):
            assert gk == PLACEHOLDER.sub(lambda m: text_of(values[m.group(1)]), tk), (path, gk)
            _walk(tv, gv, values, f"{path}/{gk}")
    elif isinstance(tmpl, list):
        assert isinstance(got, list) and len(got) == len(tmpl), path
        for k, (tv, gv) in enumerate(zip(tmpl, got)):
            _walk(tv, gv, values, f"{path}[{k}]")
    elif isinstance(tmpl, str):
        whole = PLACEHOLDER.fullmatch(tmpl.strip())
        if whole:
            want = values[whole.group(1)]
            assert got == want and type(got) is type(want), (path, got, want)
        else:
            assert got == PLACEHOLDER.sub(lambda m: text_of(values[m.group(1)]), tmpl), (path, got)
    else:
        assert got == tmpl, path


@dataclass
class Outcome:
    refused: bool
    items_run: int = 0
    message: str = ""


def check_component(name: str, given: dict[str, Any]) -> Outcome:
    """The injection property for one component and one set of given inputs."""
    comp = desc.get(name)
    try:
        text = render(name, given, mode="inline")
    except InputError as exc:
        assert_one_line(str(exc))
        with pytest.raises(InputError):
            render(name, given, mode="component")
        return Outcome(True, message=str(exc))
    values = resolve(comp, given)
    tmpl_doc = yaml.safe_load(body(comp))
    inline_doc = yaml.safe_load(text)
    _walk(tmpl_doc, inline_doc, values)
    # Component mode: the body is untouched, the given values come back as header defaults.
    head, sep, rest = render(name, given).partition("\n---\n")
    assert sep and rest == body(comp)
    spec = yaml.safe_load(head)["spec"]["inputs"]
    for key in given:
        got = spec[key]["default"]
        assert got == values[key] and type(got) is type(values[key]), (key, got)
    # (b), statically: every placeholder's quoting context holds the value inertly ...
    for item in script_items(tmpl_doc):
        assert "`" not in item  # gitlab-ci-local's echo of a script line runs backticks
        for ctx in placeholder_contexts(item):
            assert_inert_in(ctx, comp.input(ctx.name), values[ctx.name])
    # ... and by running the real lines.
    return Outcome(False, differential(comp, values, inline_doc, set(given)))



def check_init_options(project: str, version: str, mode: str) -> bool:
    """`init --templates-project/--version/--include-mode`, which end up in the YAML include
    lines: refused in one line (True), or plain words that parse back exactly (False)."""
    try:
        plan = scaffold.plan(None, project, version, mode)
    except UsageError as exc:
        assert_one_line(str(exc))
        return True
    # Plain words only: nothing GitLab would expand ($), nothing YAML or a shell reads.
    for text in (project, version):
        assert re.fullmatch(r"[A-Za-z0-9_./-]+", text), text
    doc = yaml.safe_load(plan.files[".gitlab-ci.yml"])
    for name, inc in zip(desc.INCLUDED, doc["include"]):
        if mode == "component":
            assert inc["component"] == f"$CI_SERVER_FQDN/{project}/{name}@{version}"
        elif mode == "project":
            assert (inc["project"], inc["ref"]) == (project, version)
    return False



def check_remote_options(remote: str | None, endpoint: str | None) -> bool:
    """`init --remote/--endpoint-url`, which reach `dvc remote add/modify` argv and
    .dvc/config: refused in one line (True), or plain URLs/paths (False)."""
    try:
        project_setup.check_remote(remote, endpoint)
    except UsageError as exc:
        assert_one_line(str(exc))
        return True
    for url in project_setup.remote_urls(Path("/nonexistent/project"), remote):
        assert url.isprintable() and not url.startswith("-"), url
        assert not set(url) & set(" \t\n;|&$`'\"\\<>(){}*?#"), url
    if endpoint is not None:
        assert re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?", endpoint)
    return False


# `~user/...` for a user that does not exist is a known bug (a traceback from expanduser and a


def check_render_pairs(name: str, pairs: list[str]) -> bool:
    """`ci-gen render NAME --input K=V`: the CLI path (every value arrives as a string)."""
    try:
        given_values = parse_assignments(pairs, "--input")
    except UsageError as exc:
        assert_one_line(str(exc))
        return True
    return check_component(name, given_values).refused



_SPEC_PATTERN = {"environment": "environment", "host": "host", "model_name": "model_name",
                 "model_path": "path", "serve_script": "path", "health_path": "health_path",
                 "image": "image", "dotenv": "path"}


def check_deploy_flags(engine: str, kwargs: dict[str, str]) -> bool:
    """`ci-gen job deploy` flags reach the engine's API (container config), argv of the serve
    script, file names and the dotenv file: refused in one line (True; a bad flag, or a missing
    `--host` for a container engine), or each matches its pattern exactly (False)."""
    kwargs = dict(kwargs)
    environment = kwargs.pop("environment", "production")
    try:
        spec = deploy_spec.make_spec(environment, engine, environ={}, **kwargs)
    except CiGenError as exc:
        assert_one_line(str(exc))
        return True
    for attr, pattern in _SPEC_PATTERN.items():
        value = getattr(spec, attr)
        if attr == "dotenv" and not value:
            continue
        assert deploy_spec.PATTERNS[pattern].fullmatch(value), (attr, value)
        assert value.isprintable() and not value.startswith("-"), (attr, value)
    for key, value in spec.env.items():
        assert deploy_spec.PATTERNS["env_key"].fullmatch(key) and deploy_spec.PATTERNS["env_value"].fullmatch(value)
    assert 0 <= spec.port <= 65535 and spec.health_timeout > 0
    return False



def iter_corpus() -> Iterator[tuple[str, dict[str, Any]]]:
    """A fixed corpus for the counts script: every input x every payload bit (alone, after a
    valid value, doubled), long strings and the nasty accepted values."""
    for name in desc.ORDER:
        comp = desc.COMPONENTS[name]
        for inp in comp.inputs:
            base = str(inp.default) if inp.type == "string" and not inp.required else "a"
            pool: list[Any] = []
            for bit in ALL_BITS:
                pool += [bit, base + bit, bit + base + bit]
            pool += ["a" * 300, "x" * 5000, "é" * 64]
            if inp.type == "string" and inp.options is None and inp.regex in NASTY_VALID:
                pool += NASTY_VALID[inp.regex]
            if inp.type == "array":
                pool = [[p] for p in pool if isinstance(p, str)] + [NASTY_ITEMS]
            for value in pool:
                yield name, {inp.name: value}


def option_corpus() -> list[tuple[str, Callable[[], bool]]]:
    """(label, zero-argument check) for ci-gen's own options that reach files and shells."""
    out: list[tuple[str, Callable[[], bool]]] = []
    for bit in ALL_BITS + ["a" * 300]:
        out.append((f"init --templates-project {bit!r}",
                    lambda b=bit: check_init_options("mlops/ci-gen" + b, "1.2.3", "component")))
        out.append((f"init --version {bit!r}",
                    lambda b=bit: check_init_options("mlops/ci-gen", "1.2.3" + b, "project")))
        out.append((f"init --remote {bit!r}",
                    lambda b=bit: check_remote_options("s3://bucket/p" + b, None)))
        out.append((f"init --remote (local) {bit!r}",
                    lambda b=bit: check_remote_options("storage" + b, None)))
        out.append((f"init --endpoint-url {bit!r}",
                    lambda b=bit: check_remote_options("s3://bucket/p", "http://127.0.0.1:9000" + b)))
        for flag, default in (("environment", "production"), ("host", "127.0.0.1"), ("port", "8501"),
                              ("model_name", "m"), ("model_path", "model"), ("serve_script", "serve.py"),
                              ("health_path", "/v1/models/m"), ("health_timeout", "120"),
                              ("env", "A=b"), ("dotenv", "deploy.env"), ("image", "app:1.0")):
            out.append((f"job deploy --{flag} {bit!r}",
                        lambda f=flag, d=default, b=bit: check_deploy_flags("process", {f: d + b})))
        out.append((f"job deploy --engine {bit!r}",
                    lambda b=bit: check_deploy_flags("process" + b, {})))
        for name in desc.ORDER:
            out.append((f"render {name} --input {bit!r}",
                        lambda n=name, b=bit: check_render_pairs(n, [f"job-prefix{b}=x", f"stage=a{b}"])))
    assert deploy_spec.ENGINES  # the deploy checks above use the real engine list
    return out


@dataclass
class Tally:
    """Payloads of the fixed corpus: refused, rendered safely, or unsafe (with why)."""
    tried: int = 0
    refused: int = 0
    safe: int = 0
    script_lines_run: int = 0
    unsafe: list[str] = field(default_factory=list)

    def add(self, what: str, check: Callable[[], bool | Outcome]) -> None:
        self.tried += 1
        try:
            refused = check()
        except AssertionError as exc:  # the property broke: count it, keep going
            self.unsafe.append(f"{what}: {str(exc)[:200]}")
            return
        if isinstance(refused, Outcome):
            self.script_lines_run += refused.items_run
            refused = refused.refused
        if refused:
            self.refused += 1
        else:
            self.safe += 1


def run_corpus(marker_dir: Path) -> Tally:
    """Every payload of the fixed corpus through its check; a marker left in MARKER_DIR (a
    payload that ran) is counted unsafe, and removed so later checks start clean."""
    tally = Tally()
    for name, given in iter_corpus():
        tally.add(f"{name} {given!r}"[:120], lambda n=name, g=given: check_component(n, g))
    for label, check in option_corpus():
        tally.add(label, check)
    for hit in marker_dir.iterdir():
        tally.unsafe.append(f"marker file created: {hit}")
        hit.unlink()
    return tally
