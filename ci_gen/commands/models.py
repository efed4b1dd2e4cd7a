"""`ci-gen models`: what the model registry holds (GitLab's or an MLflow server), with lineage."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ci_gen.errors import CiGenError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list, show or download registered models and versions",
        description="Read the model registry: GitLab's (MLFLOW_TRACKING_URI="
        "$CI_API_V4_URL/projects/ID/ml/mlflow, token in MLFLOW_TRACKING_TOKEN) or an MLflow "
        "tracking server (e.g. the one `ci-gen run` starts).")
    what = p.add_subparsers(dest="action", metavar="ACTION")
    what.required = True
    for name, text in (("list", "list models, or the versions of NAME"),
                       ("show", "show a version (default: the highest) with its lineage"),
                       ("download", "download a version's files, checking every hash")):
        q = what.add_parser(name, help=text, description=text)
        q.add_argument("name", nargs="?" if name == "list" else None, default="",
                       metavar="NAME", help="registered model name")
        if name != "list":
            q.add_argument("version", nargs="?", default="", metavar="VERSION",
                           help="SemVer version (default: the highest)")
        if name == "download":
            q.add_argument("--out", default=".", metavar="DIR",
                           help="directory the model is unpacked into (default: .)")
        where = q.add_mutually_exclusive_group()
        where.add_argument("--tracking-uri", default="", metavar="URL",
                           help="registry URL (default: $MLFLOW_TRACKING_URI)")
        where.add_argument("--project", default="", metavar="DIR",
                           help="the local registry `ci-gen run` keeps for the project in DIR "
                           "(started for this command; the default inside such a project when "
                           "no tracking URI is set)")
        q.set_defaults(func=run)


NO_REGISTRY = ("no model registry: run inside a project `ci-gen run` registered models in, or pass "
               "--project DIR (that project's local registry), --tracking-uri URL, or set "
               "MLFLOW_TRACKING_URI (GitLab: $CI_API_V4_URL/projects/$CI_PROJECT_ID/ml/mlflow)")


def run(args: argparse.Namespace) -> int:
    from ci_gen.local import registry as local_registry

    project = args.project
    if not project and not (args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        # Inside the project, its local registry is the one meant (what `ci-gen run` printed).
        if not local_registry.has_project_store(Path(".")):
            raise CiGenError(NO_REGISTRY)
        project = "."
    if not project:
        return _run(args, args.tracking_uri, ours=False)
    server = local_registry.open_project(Path(project))
    try:
        return _run(args, server.url, ours=True)
    finally:
        server.stop()


def _run(args: argparse.Namespace, uri: str, ours: bool) -> int:
    from ci_gen.errors import printable
    from ci_gen.registry import catalog
    from ci_gen.registry.client import Registry

    reg = Registry.from_env(uri)
    if args.action == "list":
        print("\n".join(catalog.list_lines(reg, args.name)))
        return 0
    version = catalog.find(reg, args.name, args.version)
    if args.action == "show":
        print("\n".join(catalog.show_lines(reg, version)))
        if not ours:  # a server started for this command is gone when it returns: no dead link
            print(printable(f"  see: {reg.version_url(version)}"))
        return 0
    path, manifest = catalog.download(reg, version, Path(args.out))
    print(printable(f"models: {version.name} {version.semver} downloaded to {path} "
                    f"({len(manifest['contents'])} files, sha256 checked)"))
    edge = manifest.get("edge") or []
    if edge:
        print(f"models: edge models in {path.parent / 'edge'}: {', '.join(edge)} (sha256 checked)")
    return 0
