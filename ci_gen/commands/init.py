"""`ci-gen init DIR`: scaffold a project whose `.gitlab-ci.yml` includes the components."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from ci_gen import __version__
from ci_gen import scaffold
from ci_gen.errors import CiGenError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init", help="scaffold a project that uses the components",
        description="Write a .gitlab-ci.yml that includes the six components pinned to a version, "
        "and what the project needs around it. With --example, copy the example project, make it a "
        "git repository, add its training data with DVC, set up the data and model remotes and push "
        "the data. Refuses to overwrite files unless --force; on refusal nothing is written.")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--example", choices=scaffold.EXAMPLES, help="copy a complete example project")
    kind.add_argument("--minimal", action="store_true", help="only .gitlab-ci.yml and .gitignore (default)")
    p.add_argument("dir", metavar="DIR", type=Path, help="project directory (created if missing)")
    p.add_argument("--templates-project", default=scaffold.DEFAULT_TEMPLATES_PROJECT, metavar="GROUP/PROJECT",
                   help=f"GitLab project that publishes the components (default {scaffold.DEFAULT_TEMPLATES_PROJECT})")
    p.add_argument("--version", default=__version__, metavar="X.Y.Z",
                   help=f"component version to pin (default: this ci-gen, {__version__})")
    p.add_argument("--include-mode", choices=scaffold.INCLUDE_MODES, default="component",
                   help="component (default): include: component; project: include: project + inputs; "
                   "inline: rendered copies under .gitlab/ci-gen/")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    data = p.add_argument_group("example data (with --example)")
    data.add_argument("--data", type=Path, metavar="PATH",
                      help="directory with the four Fashion-MNIST .gz files (default: generate a small synthetic set)")
    data.add_argument("--remote", metavar="URL",
                      help="DVC storage base: a local directory (default DIR/.dvc-storage), s3://BUCKET/PREFIX "
                      "or oss://BUCKET/PREFIX; data and models go to BASE/data and BASE/models")
    data.add_argument("--endpoint-url", metavar="URL", help="endpoint of an S3-compatible or OSS store")
    p.set_defaults(func=run)


def _conflicts(target: Path, files: dict[str, bytes], example: bool) -> list[str]:
    names = [rel for rel in files if (target / rel).exists()]
    if example and (target / "train_data").exists():
        names.append("train_data")
    return names


def write_files(target: Path, files: dict[str, bytes]) -> None:
    """Write every file through a temporary name, so none is ever half-written."""
    for rel, content in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        src_mode = 0o755 if content.startswith(b"#!") else 0o644
        os.chmod(tmp, src_mode)
        os.replace(tmp, path)


def init(target: Path, example: str | None = None, templates_project: str = scaffold.DEFAULT_TEMPLATES_PROJECT,
         version: str = __version__, include_mode: str = "component", force: bool = False,
         data: Path | None = None, remote: str | None = None, endpoint_url: str | None = None,
         say=print) -> list[str]:
    """Scaffold `target`; returns the relative paths written."""
    from ci_gen import project_setup

    if example is None and (data or remote or endpoint_url):
        raise CiGenError("--data, --remote and --endpoint-url only apply with --example")
    plan = scaffold.plan(example, templates_project, version, include_mode)
    project_setup.check_remote(remote, endpoint_url)
    project_setup.check_data(data)
    if example is not None:
        project_setup.check_tools()
    if target.exists() and not target.is_dir():
        raise CiGenError(f"{target} exists and is not a directory")
    conflicts = _conflicts(target, plan.files, example is not None)
    if conflicts and not force:
        shown = ", ".join(conflicts[:3]) + (f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else "")
        raise CiGenError(f"{target}: {shown} already exist(s); use --force to overwrite (nothing was written)")
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
        if not os.access(target, os.W_OK):
            raise CiGenError(f"{target} is not writable")
        write_files(target, plan.files)
        say(f"wrote {len(plan.files)} files to {target}")
        if example is not None:
            project_setup.setup_example(target, data, remote, endpoint_url, say=say)
    except OSError as exc:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise CiGenError(f"cannot write to {target}: {exc.strerror or exc}") from None
    except BaseException:
        if created:  # a project we created and could not finish is removed, not left half-made
            shutil.rmtree(target, ignore_errors=True)
        raise
    return sorted(plan.files)


def run(args: argparse.Namespace) -> int:
    init(args.dir, args.example, args.templates_project, args.version, args.include_mode, args.force,
         args.data, args.remote, args.endpoint_url)
    print(f"next: cd {args.dir} && ci-gen lint && ci-gen run")
    return 0
