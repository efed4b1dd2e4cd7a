"""The flags of `ci-gen job deploy` validated into a Spec.

Every value here reaches a process (argv, file names): tight patterns, no shell words. The
patterns are the descriptor's where the job gets the input as written, and the job's own
(`RE_JOB_*` in ci_gen.patterns) where GitLab hands it over expanded.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field

from ci_gen.components import AUTO, NONE, given
from ci_gen.dotenv import parse_kv_list
from ci_gen.errors import CiGenError, UsageError
from ci_gen.inputs import NOT_A_PATH, check_flag, parse_number
from ci_gen.patterns import (
    KV_MAX_ITEMS,
    RE_ENV_NAME,
    RE_HOST,
    RE_JOB_HEALTH_PATH,
    RE_JOB_IMAGE,
    RE_KV_KEY,
    RE_KV_VALUE,
    RE_MODEL_NAME,
    RE_MODEL_VERSION,
    RE_PATH,
)

ENGINES = ("docker", "podman", "process")
LATEST = "latest"  # model-version: the highest registered version
CONTAINER_ENGINES = ("docker", "podman")

# The pattern of each kind of value, by the name the checks and error messages use.
PATTERNS = {
    "environment": re.compile(RE_ENV_NAME),
    "image": re.compile(RE_JOB_IMAGE),
    "host": re.compile(RE_HOST),
    "model_name": re.compile(RE_MODEL_NAME),
    "model_version": re.compile(RE_MODEL_VERSION),
    "path": re.compile(RE_PATH),
    "health_path": re.compile(RE_JOB_HEALTH_PATH),
    "env_key": re.compile(RE_KV_KEY),
    "env_value": re.compile(RE_KV_VALUE),
}


@dataclass
class Spec:
    """A validated deploy request."""

    environment: str
    engine: str
    image: str = "local"
    host: str = "127.0.0.1"
    port: int = 8501
    model_name: str = "model"
    model_path: str = "model"
    serve_script: str = "serve.py"
    health_path: str = ""
    health_timeout: float = 120.0
    env: dict[str, str] = field(default_factory=dict)
    dotenv: str = ""
    engine_note: str = ""  # why the engine differs from --engine, when it does
    # The registered version this release runs ("" when unknown). With `from_registry` it is
    # the one asked for (a SemVer or `latest`) until ci_gen.deploy.by_version fetches it.
    model_version: str = ""
    from_registry: bool = False

    @property
    def health(self) -> str:
        return self.health_path or f"/v1/models/{self.model_name}"


def check(name: str, value: str, flag: str) -> str:
    """`value` when it fully matches the pattern `name`; else a UsageError naming `flag`."""
    pattern = PATTERNS[name].pattern
    return check_flag(flag, value, pattern, NOT_A_PATH if name == "path" else f"is not allowed (expected {pattern})")


def parse_env(text: str) -> dict[str, str]:
    """`K=V,K2=V2` -> dict; plain words only (values reach the service's environment)."""
    return parse_kv_list(text, "--env", PATTERNS["env_key"], PATTERNS["env_value"], KV_MAX_ITEMS)


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise UsageError(f"engine {engine[:40]!r} is not one of {', '.join(ENGINES)}")
    return engine


def _port(text: str) -> int:
    # Numbers arrive as GitLab writes them (8501, 120, 1.0e+02): one parser for all of ci-gen.
    value = parse_number(text, "--port (or CI_GEN_DEPLOY_PORT)")
    if value != int(value):
        raise UsageError(f"--port {text[:20]} is not a whole number")
    if not 0 <= value <= 65535:
        raise UsageError(f"--port {text[:20]} is out of range 0-65535")
    return int(value)


def parse_health_timeout(text: str) -> float:
    timeout = float(parse_number(text, "--health-timeout"))
    if not 0 < timeout <= 99999:
        raise UsageError("--health-timeout must be > 0 and at most 99999 seconds")
    return timeout


def _host(host: str, engine: str) -> str:
    if host != AUTO:
        return check("host", host, "--host")
    if engine in CONTAINER_ENGINES:
        # The URL the inference job and GitLab's environment link use: only the user knows it.
        # Not a malformed flag (exit 2) but a setting the project has not made yet.
        raise CiGenError(f"--host (input host) is required with engine {engine}: the name or "
                         "address the deploy target is reached at")
    return "127.0.0.1"  # the process engine serves on the runner itself


def make_spec(environment: str, engine: str, *, image: str = "local", host: str = AUTO,
              port: str | int = "8501", model_name: str = "model", model_path: str = "model",
              serve_script: str = "serve.py", health_path: str = "", health_timeout: str | float = "120",
              env: str = "", dotenv: str = "", model_version: str = NONE,
              environ: dict[str, str] | None = None) -> Spec:
    """Validate every flag (and the CI_GEN_DEPLOY_ENGINE / _PORT / _MODEL_VERSION overrides)
    into a Spec."""
    environ = os.environ if environ is None else environ
    flag_engine, engine = engine, environ.get("CI_GEN_DEPLOY_ENGINE") or engine
    # The job log echoes the component's --engine; say which engine really runs, and why.
    note = f"CI_GEN_DEPLOY_ENGINE overrides --engine {flag_engine[:40]}" if engine != flag_engine else ""
    check_engine(engine)
    port_value = _port(environ.get("CI_GEN_DEPLOY_PORT") or str(port))
    timeout = parse_health_timeout(str(health_timeout))
    spec = Spec(
        environment=check("environment", environment, "--environment"),
        engine=engine,
        image=check("image", image, "--image"),
        host=check("host", host, "--host"),
        port=port_value,
        model_name=check("model_name", model_name, "--model-name"),
        model_path=check("path", model_path, "--model-path"),
        serve_script=check("path", serve_script, "--serve-script"),
        health_path=check("health_path", given(health_path, AUTO), "--health-path"),
        health_timeout=timeout,
        env=parse_env(given(env, NONE)),
        dotenv=check("path", dotenv, "--dotenv") if dotenv else "",
        engine_note=note,
        **_model_version(model_version, model_name, environ),
    )
    # Last, so a bad value of any other flag is named first.
    return dataclasses.replace(spec, host=_host(spec.host, engine))


def _model_version(value: str, model_name: str, environ: dict[str, str]) -> dict[str, object]:
    """A registered version to fetch (the flag, or CI_GEN_DEPLOY_MODEL_VERSION set when the
    pipeline is run), or else the version this pipeline's register job gave its model
    (register.env), recorded but not fetched."""
    override = environ.get("CI_GEN_DEPLOY_MODEL_VERSION", "")
    flag = "CI_GEN_DEPLOY_MODEL_VERSION" if override else "--model-version"
    wanted = given(check("model_version", override or value or NONE, flag), NONE)
    if wanted:
        return {"model_version": wanted, "from_registry": True}
    mine = environ.get("CI_GEN_MODEL_VERSION", "")
    if environ.get("CI_GEN_MODEL_NAME") == model_name and PATTERNS["model_version"].fullmatch(mine) \
            and mine not in (NONE, LATEST):
        return {"model_version": mine}
    return {}
