"""`ci-gen build [--check]`: regenerate `templates/` from the sources, or check for drift."""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.errors import CiGenError, DriftError
from ci_gen.files import atomic_write

# yaml, jinja2 (through ci_gen.render) and the docs are imported by the functions that use
# them: `ci-gen --help` imports this module (issue 22).


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="regenerate templates/ from the Jinja sources",
                       description="Render every component into DIR/<name>.yml (the published "
                       "GitLab CI/CD components). --check changes nothing and exits 1 on drift.")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the files differ from what the sources render")
    p.add_argument("--dir", default="templates", type=Path, metavar="DIR",
                   help="output directory (default: templates)")
    p.add_argument("--readme", default=Path("README.md"), type=Path, metavar="FILE",
                   help="README whose inputs tables are regenerated, if it exists (default: README.md)")
    p.add_argument("--examples", default=Path("examples"), type=Path, metavar="DIR",
                   help="examples whose .gitlab-ci.yml is regenerated, if it exists (default: examples)")
    p.set_defaults(func=run)


def _root_parser() -> argparse.ArgumentParser:
    """`ci-gen`'s own parser, for the README's CLI table (imported here: cli imports commands)."""
    from ci_gen.cli import build_parser

    return build_parser()


def expected() -> dict[str, str]:
    from ci_gen.render import render

    return {f"{name}.yml": render(name) for name in desc.ORDER}


def refused_by_gitlab(want: dict[str, str]) -> list[str]:
    """What GitLab would refuse in the rendered headers: a regex RE2 cannot compile, a default
    that breaks its own regex (an empty one included), and what the CI/CD Catalog's schema
    refuses at release time (a decimal default). gitlab-ci-local checks regexes with
    JavaScript's engine and has no Catalog: it would notice neither."""
    import yaml

    from ci_gen.lint import catalog, spec

    problems = []
    for fname, text in want.items():
        header = yaml.safe_load(text.split("\n---\n", 1)[0])
        problems += [f"{fname} would be refused by GitLab: {message}"
                     for _key, message in spec.header_problems(spec.declared(header))]
        problems += [f"{fname} would be refused by the CI/CD Catalog: {message}"
                     for _key, message in catalog.problems(header.get("spec"))]
    return problems


def example_pipelines(examples: Path | None) -> dict[Path, str]:
    """Each shipped example's `.gitlab-ci.yml`, exactly as `ci-gen init --example` writes it."""
    from ci_gen.scaffold import plan

    if examples is None or not examples.is_dir():
        return {}
    return {
        examples / name / ".gitlab-ci.yml": plan.pipeline(
            plan.DEFAULT_TEMPLATES_PROJECT, __version__, "component", plan.EXAMPLE_INPUTS.get(name))
        for name in plan.EXAMPLES if (examples / name).is_dir()
    }


def check(out_dir: Path, readme: Path | None = None, examples: Path | None = None) -> list[str]:
    """Names of files that are missing, stale or unexpected."""
    from ci_gen import docs

    want = expected()
    problems = refused_by_gitlab(want)
    for path, text in example_pipelines(examples).items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            problems.append(f"{path} differs from what `ci-gen init` writes")
    if readme is not None and readme.is_file():
        text = readme.read_text(encoding="utf-8")
        if docs.update_readme(text, _root_parser()) != text:
            problems.append(f"{readme} generated tables (inputs, CLI) differ from the descriptor "
                            "and the CLI")
    for fname, text in want.items():
        path = out_dir / fname
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path} differs from its source")
    if out_dir.is_dir():
        for path in sorted(out_dir.glob("*.yml")):
            if path.name not in want:
                problems.append(f"{path} has no source")
    return problems


def write(out_dir: Path, readme: Path | None = None, examples: Path | None = None) -> list[Path]:
    """Write every component; each file is replaced atomically, so none is half-written."""
    from ci_gen import docs

    want = expected()  # render everything first: a failing source writes nothing
    refused = refused_by_gitlab(want)
    if refused:
        raise CiGenError(refused[0])
    old_readme = readme.read_text(encoding="utf-8") if readme is not None and readme.is_file() else None
    pipelines = example_pipelines(examples)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CiGenError(f"cannot create {out_dir}: {exc.strerror}") from None
    written = []
    for fname, text in want.items():
        path = out_dir / fname
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        atomic_write(path, text)
        written.append(path)
    for path, text in pipelines.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write(path, text)
            written.append(path)
    if old_readme is not None:
        new = docs.update_readme(old_readme, _root_parser())
        if new != old_readme:
            atomic_write(readme, new)
            written.append(readme)
    return written


def run(args: argparse.Namespace) -> int:
    if args.check:
        problems = check(args.dir, args.readme, args.examples)
        if problems:
            for line in problems:
                print(f"drift: {line}")
            raise DriftError(f"{len(problems)} generated file(s) out of date; run `ci-gen build`")
        print(f"{args.dir}: {len(desc.ORDER)} components up to date")
        return 0
    written = write(args.dir, args.readme, args.examples)
    for path in written:
        print(f"wrote {path}")
    print(f"{args.dir}: {len(desc.ORDER)} components, {len(written)} file(s) written")
    return 0
