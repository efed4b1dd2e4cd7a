"""Command-line entry point: parse, dispatch, and turn CiGenError into one line + exit code.

Each command lives in its own module under `ci_gen.commands` (and `ci_gen.jobs` for the
commands the components' jobs call). A module exposes `register(subparsers)`, which adds its
parser and sets `func`, a plain function of the parsed arguments returning an exit code.
Command modules import heavy libraries (dvc, gitlab, tensorflow, jinja2, yaml) only inside
their functions, so `ci-gen --help` stays fast; a module whose parser alone costs imports (`job`:
one module per job) also exposes `register_stub(subparsers)`, used when another command is run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from ci_gen import __version__
from ci_gen.errors import CiGenError, printable

# Order of `ci-gen --help`; command modules not named here come last, alphabetically.
ORDER = ("list", "render", "build", "init", "lint", "run", "report", "variables", "job")


def _command_modules() -> list[str]:
    from ci_gen import commands

    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (exit 2), pointing at --help instead of dumping usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _asked_for(argv: list[str]) -> str:
    """The command named on the command line ("" for none, e.g. `ci-gen --help`)."""
    return next((a for a in argv if not a.startswith("-")), "")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given the command line (`argv`), a command module that has a
    `register_stub` and is not the one asked for adds only its line of `--help`, so start-up
    does not import what only that command needs."""
    asked = None if argv is None else _asked_for(argv)
    parser = _Parser(
        prog="ci-gen",
        description="Versioned GitLab CI/CD components for MLOps: scaffold, check and run "
        "a project's pipeline locally, and talk to GitLab.",
    )
    parser.add_argument("--version", action="version", version=f"ci-gen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _command_modules():
        module = importlib.import_module(f"ci_gen.commands.{name}")
        if asked is not None and asked != name and hasattr(module, "register_stub"):
            module.register_stub(sub)
        else:
            module.register(sub)
    return parser


# Exit status of a command whose reader went away (`ci-gen list | head -1`): what a shell
# reports for a process ended by SIGPIPE, as `yes | head -1` does.
EXIT_BROKEN_PIPE = 128 + 13


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader closed the pipe: nothing more to say. stdout goes to /dev/null so the
        # interpreter's final flush does not raise again ("Exception ignored ...").
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CiGenError as exc:
        # printable: whatever server text a message carries, it stays one harmless line.
        print(f"ci-gen: error: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        raise  # not the file system's: see main()
    except OSError as exc:
        # The file system said no (name too long, permission, disk full): the user's to fix.
        name = str(exc.filename) if exc.filename else ""
        name = name if len(name) <= 80 else name[:77] + "..."
        text = f"{exc.strerror or exc}: {name}" if name else f"{exc.strerror or exc}"
        print(f"ci-gen: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ci-gen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
