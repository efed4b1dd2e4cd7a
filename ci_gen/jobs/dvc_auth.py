"""`ci-gen job dvc-auth`: credentials from masked CI/CD variables into `.dvc/config.local`.

The values go through DVC's own config API straight into the file (mode 0600, ignored by
git since `dvc init`), never onto a command line, into a log or into an exception message.
Only remote names and setting names are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping

from ci_gen import dvctool
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dvc-auth", help="write DVC remote credentials from env vars into .dvc/config.local",
        description="For every s3:// and oss:// remote of the DVC project, write the "
        "credentials found in AWS_* / OSS_* environment variables into .dvc/config.local "
        "(mode 0600, never tracked). Prints setting names only, never values.")
    p.add_argument("--repo", default=".", metavar="DIR", help="DVC project directory (default: .)")
    p.set_defaults(func=run)


def remote_type(url: str) -> str:
    """`s3`, `oss`, ... from a remote URL; `local` for a path."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else "local"


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


def plan(remotes: Mapping[str, Mapping], env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """remote name -> {setting: value} to write, for the remotes the environment covers."""
    out: dict[str, dict[str, str]] = {}
    for name, conf in remotes.items():
        pairs = SETTINGS.get(remote_type(str(conf.get("url", ""))), ())
        values = {setting: env[var] for var, setting in pairs if env.get(var)}
        if values:
            out[name] = values
    return out


def write_credentials(repo: str | os.PathLike = ".", env: Mapping[str, str] | None = None,
                      out=sys.stdout) -> dict[str, list[str]]:
    """Write the credentials; returns remote name -> setting names written."""
    from dvc.config import Config, ConfigError

    env = os.environ if env is None else env
    dvc_dir = find_dvc_dir(repo)
    try:
        config = Config(dvc_dir=os.fspath(dvc_dir), validate=False)
        remotes = config.read()["remote"]  # merged: system, global, repo and local levels
    except ConfigError:
        # DVC's message may quote a config line, which could hold a secret: name the file only.
        raise CiGenError(f"dvc-auth: cannot read the DVC config in {dvc_dir}") from None
    if not remotes:
        print("dvc-auth: the project has no DVC remote; nothing to do", file=out)
        return {}
    todo = plan(remotes, env)
    todo.update(dvctool.local_run_urls(remotes, dvc_dir.parent, env))  # `ci-gen run` only
    for name in sorted(remotes):
        kind = remote_type(str(remotes[name].get("url", "")))
        if name in todo:
            continue
        if kind in SETTINGS:
            wanted = ", ".join(var for var, _ in SETTINGS[kind])
            print(f"dvc-auth: remote '{name}' ({kind}): none of {wanted} is set; left as is",
                  file=out)
        else:
            print(f"dvc-auth: remote '{name}' ({kind}): needs no credentials from ci-gen", file=out)
    if not todo:
        print("dvc-auth: no credentials in the environment; .dvc/config.local unchanged", file=out)
        return {}

    local = dvc_dir / Config.CONFIG_LOCAL
    # Create it 0600 before anything is written, so the secret never sits in a readable file.
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

    written = {name: sorted(values) for name, values in todo.items()}
    for name, settings in sorted(written.items()):
        kind = remote_type(str(remotes[name].get("url", "")))
        print(f"dvc-auth: remote '{name}' ({kind}): wrote {', '.join(settings)} "
              f"to .dvc/{Config.CONFIG_LOCAL}", file=out)
    return written


def run(args: argparse.Namespace) -> int:
    write_credentials(args.repo)
    return 0
