"""DVC remote credentials from masked CI/CD variables (`ci-gen job dvc-auth`, and
`ci-gen init --example` before its first push).

In a job, secrets stay in the environment: DVC's S3 plugin (botocore) reads AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN there, its OSS plugin OSS_ACCESS_KEY_ID and
OSS_ACCESS_KEY_SECRET (dvc_oss `_prepare_credentials`). A shell runner's build directory
outlives the job, so `dvc-auth` writes only what is not secret (endpoints, a local run's
remote paths) into `.dvc/config.local`. `ci-gen init` writes the secrets too, into the
user's own project, so that their later `dvc push` works.

Values go through DVC's own config API straight into the file (mode 0600, ignored by git since
`dvc init`), never onto a command line, into a log or into an exception message. Only remote
names and setting and variable names are printed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from ci_gen.dvcrepo import tool as dvctool
from ci_gen.errors import CiGenError

# remote type -> (environment variable, DVC setting), in the order they are reported.
SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "s3": (
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
        ("AWS_SESSION_TOKEN", "session_token"),
        ("AWS_ENDPOINT_URL", "endpointurl"),
    ),
    "oss": (
        ("OSS_ACCESS_KEY_ID", "oss_key_id"),
        ("OSS_ACCESS_KEY_SECRET", "oss_key_secret"),
        ("OSS_ENDPOINT", "oss_endpoint"),
    ),
}


# Settings that are secrets: read by DVC from the environment, written only by `ci-gen init`.
SECRET = frozenset({"access_key_id", "secret_access_key", "session_token", "oss_key_id", "oss_key_secret"})


def find_dvc_dir(repo: str | os.PathLike) -> Path:
    """The `.dvc` directory of the project containing `repo`, or a clear error."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    if not Path(repo).is_dir():
        raise CiGenError(f"dvc-auth: {repo} is not a directory")
    try:
        root = Repo.find_root(os.fspath(repo))
    except NotDvcRepoError:
        raise CiGenError(f"dvc-auth: {os.path.abspath(repo)} is not inside a DVC project "
                         "(no .dvc directory; run `dvc init` first)") from None
    return Path(root) / Repo.DVC_DIR


def plan(remotes: Mapping[str, Mapping], env: Mapping[str, str],
         secrets: bool = True) -> dict[str, dict[str, str]]:
    """remote name -> {setting: value} to write, for the remotes the environment covers
    (without the secret settings unless `secrets`)."""
    out: dict[str, dict[str, str]] = {}
    for name, conf in remotes.items():
        pairs = SETTINGS.get(dvctool.scheme(str(conf.get("url", ""))), ())
        values = {setting: env[var] for var, setting in pairs
                  if env.get(var) and (secrets or setting not in SECRET)}
        if values:
            out[name] = values
    return out


def write_credentials(repo: str | os.PathLike = ".", env: Mapping[str, str] | None = None,
                      out=sys.stdout, secrets: bool = True) -> dict[str, list[str]]:
    """Write the credentials (the secret ones only if `secrets`); returns remote name ->
    setting names written."""
    env = os.environ if env is None else env
    dvc_dir = find_dvc_dir(repo)
    config, remotes = _read_config(dvc_dir)
    if not remotes:
        print("dvc-auth: the project has no DVC remote; nothing to do", file=out)
        return {}
    todo = plan(remotes, env, secrets)
    for name, values in dvctool.local_run_urls(remotes, dvc_dir.parent, env).items():  # `ci-gen run` only
        todo.setdefault(name, {}).update(values)
    from_env = {} if secrets else _read_from_env(remotes, env)
    _say_left_as_is(remotes, {**from_env, **todo}, out)
    for name, names in sorted(from_env.items()):
        kind = dvctool.scheme(str(remotes[name].get("url", "")))
        print(f"dvc-auth: remote '{name}' ({kind}): DVC reads {', '.join(names)} from the "
              f"environment (no secret written to disk)", file=out)
    if not todo:
        if from_env:
            return {}
        print("dvc-auth: no credentials in the environment; .dvc/config.local unchanged", file=out)
        return {}
    local = _write_local(config, dvc_dir, todo)
    written = {name: sorted(values) for name, values in todo.items()}
    for name, settings in sorted(written.items()):
        kind = dvctool.scheme(str(remotes[name].get("url", "")))
        print(f"dvc-auth: remote '{name}' ({kind}): wrote {', '.join(settings)} "
              f"to .dvc/{local.name}", file=out)
    return written


def _read_from_env(remotes: Mapping[str, Mapping], env: Mapping[str, str]) -> dict[str, list[str]]:
    """remote name -> the secret variables DVC will read from the environment for it."""
    out = {}
    for name, conf in remotes.items():
        pairs = SETTINGS.get(dvctool.scheme(str(conf.get("url", ""))), ())
        found = [var for var, setting in pairs if setting in SECRET and env.get(var)]
        if found:
            out[name] = found
    return out


def _read_config(dvc_dir: Path):
    """(DVC's Config, its remotes merged over the system, global, repo and local levels)."""
    from dvc.config import Config, ConfigError

    try:
        config = Config(dvc_dir=os.fspath(dvc_dir), validate=False)
        return config, config.read()["remote"]
    except ConfigError:
        # DVC's message may quote a config line, which could hold a secret: name the file only.
        raise CiGenError(f"dvc-auth: cannot read the DVC config in {dvc_dir}") from None


def _say_left_as_is(remotes: Mapping[str, Mapping], todo: Mapping[str, dict], out) -> None:
    """One line for each remote that gets nothing, saying why."""
    for name in sorted(remotes):
        kind = dvctool.scheme(str(remotes[name].get("url", "")))
        if name in todo:
            continue
        if kind in SETTINGS:
            wanted = ", ".join(var for var, _ in SETTINGS[kind])
            print(f"dvc-auth: remote '{name}' ({kind}): none of {wanted} is set; left as is",
                  file=out)
        else:
            print(f"dvc-auth: remote '{name}' ({kind}): needs no credentials from ci-gen", file=out)


def _write_local(config, dvc_dir: Path, todo: Mapping[str, dict[str, str]]) -> Path:
    """Merge `todo` into `.dvc/config.local`, created 0600 before anything is written, so a
    secret never sits in a readable file."""
    from dvc.config import Config, ConfigError

    local = dvc_dir / Config.CONFIG_LOCAL
    try:
        os.close(os.open(local, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(local, 0o600)
        with config.edit("local", validate=False) as conf:
            for name, values in todo.items():
                conf["remote"].setdefault(name, {}).update(values)
    except OSError as exc:
        raise CiGenError(f"dvc-auth: cannot write {local}: {exc.strerror}") from None
    except ConfigError:
        raise CiGenError(f"dvc-auth: cannot update {local}: it is not a valid DVC config") from None
    return local
