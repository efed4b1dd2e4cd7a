"""Small pieces around the `dvc` tool shared by commands: the meaningful line of a DVC failure,
the plugin a remote needs, and the remotes a project commits in `.dvc/config`.

Importing this module does not import DVC (lint and `--help` stay fast).
"""

from __future__ import annotations

import configparser
import os
import importlib
import re
from pathlib import Path

from ci_gen.errors import CiGenError

# DVC closes every failure with a support footer; it never says what went wrong.
_FOOTER = re.compile(r"^Having any troubles\?|^Hit us up at|dvc\.org/support")
# remote scheme -> (module, PyPI package) of the DVC plugin that implements it.
PLUGINS = {"s3": ("dvc_s3", "dvc-s3"), "oss": ("dvc_oss", "dvc-oss")}
_SECTION = re.compile(r"""^\s*\[\s*'?remote\s+"([^"]+)"'?\s*\]""")


def error_line(output: str, returncode: int = 1) -> str:
    """DVC's own `ERROR:` line of a failed command (the first one), else its last line that
    is not the support footer."""
    lines = [ln.strip() for ln in (output or "").splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("ERROR:"):
            return line[len("ERROR:"):].strip()
    meaningful = [ln for ln in lines if not _FOOTER.search(ln)]
    return meaningful[-1] if meaningful else f"exit code {returncode}"


def scheme(url: str) -> str:
    """`s3`, `oss`, ... of a remote URL; `local` for a path (or a file:// URL)."""
    kind, sep, _ = url.partition("://")
    kind = kind.lower() if sep else "local"
    return "local" if kind == "file" else kind


def check_plugin(url: str, option: str = "--remote") -> None:
    """The DVC plugin a remote needs can be imported, else one line naming the pip extra."""
    kind = scheme(url)
    if kind not in PLUGINS:
        return
    module, package = PLUGINS[kind]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise CiGenError(f"{option} {kind}://...: DVC's {kind.upper()} plugin {package} cannot be "
                         f"imported ({exc}); pip install 'ci-gen[dvc]' (or pip install {package})") from None


def committed_remotes(project: Path) -> list[tuple[str, str, int]]:
    """(name, url, line) of each remote in the project's `.dvc/config`, the config a clone or
    a runner gets (`.dvc/config.local` never leaves the machine). [] when there is none."""
    path = project / ".dvc" / "config"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return []
    lines = {}
    for number, line in enumerate(text.splitlines(), 1):
        m = _SECTION.match(line)
        if m:
            lines.setdefault(m.group(1), number)
    out = []
    for section in parser.sections():
        m = _SECTION.match(f"[{section}]")
        url = parser.get(section, "url", fallback=None)
        if m and url:
            out.append((m.group(1), url.strip().strip("'\""), lines.get(m.group(1), 1)))
    return out


# Set by `ci-gen run` for its jobs: the project a local pipeline runs from.
LOCAL_ROOT_ENV = "CI_GEN_DVC_ROOT"


def local_run_urls(remotes: dict, copy_root: Path, env) -> dict[str, dict[str, str]]:
    """remote name -> {"url": absolute path} for the remotes `.dvc/config` gives as paths
    relative to the project, when a job runs in a copy of the project (`copy_root`) during
    `ci-gen run`: they resolve against the real project ($CI_GEN_DVC_ROOT), not the copy.
    Empty anywhere else (a runner has no such variable)."""
    from dvc.config_schema import RelPath

    root = env.get(LOCAL_ROOT_ENV)
    if not root:
        return {}
    if not (os.path.isabs(root) and os.path.isdir(root)):
        raise CiGenError(f"{LOCAL_ROOT_ENV} must be the absolute path of a directory, got {root!r}")
    out = {}
    for name, conf in remotes.items():
        url = conf.get("url")
        if isinstance(url, RelPath):  # DVC's mark for a path written relative to its config file
            rel = os.path.relpath(url, copy_root)
            out[name] = {"url": os.path.normpath(os.path.join(root, rel))}
    return out
