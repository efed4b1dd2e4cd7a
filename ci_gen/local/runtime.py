"""What a runner-like `ci-gen run` hands its jobs instead of images: ci-gen's own wheel, a
PEP 503 index holding it, and the runtime environment built from it.

- the wheel is the installed ci-gen, re-made: from the source of an editable checkout
  (`pip wheel`), or from the installed files listed in the dist-info RECORD;
- the index is a static directory (`file://`), what `$CI_GEN_INDEX_URL` names on a runner;
- the runtime environment stands for the runtime image `RUNTIME_IMAGE_REPO:<version>`: a venv
  built once per ci-gen version under the per-user cache, with the `dvc` extra, its
  dependencies pinned by ci-gen's own tested constraints (constraints.txt, shipped in the
  wheel, as the runtime image is built with them), never by what the caller's venv holds, and
  ci-gen itself in an overlay per wheel, layered first: a run whose checkout differs from
  another's (an edit, a second clone) gets its own overlay, and never changes the ci-gen
  under the other run's jobs.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import fcntl
import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Iterator

from ci_gen import __version__
from ci_gen.components import RUNTIME_EXTRAS
from ci_gen.errors import CiGenError
from ci_gen.files import atomic_write, user_cache_dir
from ci_gen.gitcmd import last_line

DIST = "ci-gen"
# Files of an installed dist-info that an installer writes, not the wheel.
_INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")


def base_python() -> str:
    """The interpreter a fresh venv is made from: the caller venv's base Python, not the venv."""
    base = getattr(sys, "_base_executable", "") or sys.executable
    return base if os.access(base, os.X_OK) else sys.executable


def _dist() -> metadata.Distribution:
    try:
        return metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise CiGenError("ci-gen is not installed as a distribution (pip install ci-gen, or "
                         "pip install -e . in a checkout): no wheel to hand to the jobs") from None


def _editable_source(dist: metadata.Distribution) -> Path | None:
    """The source directory of an editable install, else None."""
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    info = json.loads(raw)
    if not (info.get("dir_info") or {}).get("editable"):
        return None
    url = str(info.get("url", ""))
    return Path(url[len("file://"):]) if url.startswith("file://") else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on PATH.lock: two runs build one thing once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def own_wheel(out: IO[str]) -> Path:
    """The wheel of the installed ci-gen, made once per content under the cache."""
    dist = _dist()
    source = _editable_source(dist)
    dest = user_cache_dir() / "wheels"
    if source is not None:
        key = _tree_digest(source)
        target = dest / key
        with _locked(target):
            found = sorted(target.glob("*.whl"))
            if found:
                return found[0]
            out.write(f"ci-gen: building the ci-gen {__version__} wheel from {source}\n")
            out.flush()
            return _pip_wheel(source, target)
    files = [f for f in dist.files or [] if _wheel_member(f)]
    key = hashlib.sha256("\n".join(f"{f}:{f.hash.value if f.hash else ''}" for f in sorted(files, key=str))
                         .encode()).hexdigest()[:16]
    target = dest / key
    with _locked(target):
        found = sorted(target.glob("*.whl"))
        return found[0] if found else _wheel_from_record(dist, files, target)


def _tree_digest(source: Path) -> str:
    """A digest of the files a wheel of SOURCE holds (git's view when it is a work tree)."""
    h = hashlib.sha256(__version__.encode())
    for rel in sorted(_source_files(source)):
        p = source / rel
        if p.is_file():
            h.update(rel.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def _source_files(source: Path) -> list[str]:
    proc = subprocess.run(["git", "-C", str(source), "ls-files", "-co", "--exclude-standard",
                           "pyproject.toml", "ci_gen", "examples/fashion-mnist"],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return [ln for ln in proc.stdout.splitlines() if ln]
    return [str(p.relative_to(source)) for d in ("ci_gen", "examples/fashion-mnist")
            for p in (source / d).rglob("*") if "__pycache__" not in p.parts]


def _pip_wheel(source: Path, target: Path) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp), str(source)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CiGenError(f"cannot build the ci-gen wheel from {source}: "
                             f"{last_line(proc.stderr or proc.stdout)}")
        target.mkdir(parents=True, exist_ok=True)
        wheel = next(tmp.glob("*.whl"))
        os.replace(wheel, target / wheel.name)
        return target / wheel.name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _wheel_member(f: metadata.PackagePath) -> bool:
    parts = f.parts
    if not parts or parts[0] == ".." or "__pycache__" in parts or f.suffix == ".pyc":
        return False
    return not (parts[0].endswith(".dist-info") and parts[-1] in _INSTALLER_FILES)


def _wheel_from_record(dist: metadata.Distribution, files: list[metadata.PackagePath], target: Path) -> Path:
    """Zip the installed files back into a wheel, with a fresh RECORD."""
    info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    if info is None:
        raise CiGenError("the installed ci-gen has no dist-info in its RECORD: cannot re-make its wheel")
    name = f"{info[:-len('.dist-info')]}-py3-none-any.whl"
    buf, rows = io.BytesIO(), []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(files, key=str):
            data = Path(dist.locate_file(f)).read_bytes()
            zf.writestr(str(f), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append((str(f), f"sha256={digest}", str(len(data))))
        record = io.StringIO()
        csv.writer(record, lineterminator="\n").writerows([*rows, (f"{info}/RECORD", "", "")])
        zf.writestr(f"{info}/RECORD", record.getvalue())
    atomic_write(target / name, buf.getvalue())
    return target / name


def write_index(wheel: Path, root: Path) -> str:
    """A PEP 503 simple index under ROOT holding WHEEL; its file:// URL."""
    simple = root / "simple"
    page = simple / DIST / "index.html"
    shutil.copy2(wheel, _mkdir(root / "files") / wheel.name)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    link = f"../../files/{html.escape(wheel.name)}#sha256={digest}"
    atomic_write(page, f"<!DOCTYPE html>\n<html><body>\n<a href=\"{link}\">{html.escape(wheel.name)}</a>\n"
                       f"</body></html>\n")
    atomic_write(simple / "index.html", f"<!DOCTYPE html>\n<html><body>\n<a href=\"{DIST}/\">{DIST}</a>\n"
                                        f"</body></html>\n")
    return simple.as_uri() + "/"


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


CONSTRAINTS = "constraints.txt"


def tested_pins() -> str:
    """ci-gen's tested constraints: in the wheel (force-included beside this module), or at
    the root of an editable checkout."""
    from ci_gen.local.tool import checkout_root

    here = Path(__file__).resolve().parent / CONSTRAINTS
    root = checkout_root()
    for path in (here, root / CONSTRAINTS if root else None):
        if path is not None and path.is_file():
            return path.read_text()
    raise CiGenError(f"this ci-gen ships no {CONSTRAINTS}: cannot pin the runtime environment "
                     f"(reinstall ci-gen from its wheel)")


_CONFLICT = re.compile(r"^ERROR: (Cannot install .*? because these package versions have conflicting "
                       r"dependencies)\.?$", re.M)


def pip_failure(stdout: str, stderr: str) -> str:
    """pip's failure in one line. A resolution conflict names its packages (pip's "The conflict
    is caused by" lines), not only the closing "ResolutionImpossible"."""
    output = f"{stdout}\n{stderr}"
    lines = output.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "The conflict is caused by:")
    except StopIteration:
        return last_line(stderr or stdout)
    causes = []
    for ln in lines[start + 1:]:
        if not ln.startswith((" ", "\t")) or not ln.strip():
            break
        causes.append(ln.strip())
    head = _CONFLICT.search(output)
    lead = head.group(1) if head else "conflicting dependencies"
    return f"{lead}: {'; '.join(dict.fromkeys(causes))}"


@dataclass(frozen=True)
class Runtime:
    """The runtime environment of one run: the shared venv, and this wheel's ci-gen."""
    venv: Path
    overlay: Path

    @property
    def site_dirs(self) -> tuple[Path, ...]:
        """What a job's sys.path gets, in order: this ci-gen first, then the dependencies."""
        return self.overlay, purelib(self.venv)


NO_RUNTIME = Runtime(Path("/nonexistent"), Path("/nonexistent"))
OVERLAY_DAYS = 7  # an overlay unused this long is removed when another is made


def runtime_env(wheel: Path, out: IO[str]) -> Runtime:
    """The environment standing for the runtime image. Its venv is built once per version,
    interpreter and tested pins; each wheel (an edited checkout) gets its own overlay, made
    once in seconds and never changed afterwards, so concurrent runs cannot disturb each other."""
    pins = tested_pins()
    key = hashlib.sha256(f"{base_python()}\n{RUNTIME_EXTRAS}\n{pins}".encode()).hexdigest()[:12]
    target = user_cache_dir() / "runtime" / f"{__version__}-{key}"
    done = target / ".ci-gen-wheel"
    with _locked(target):
        if not done.is_file():
            out.write(f"ci-gen: building the runtime environment (stands for the runtime image "
                      f"{__version__}) in {target}; once per version\n")
            out.flush()
            # A venv is not relocatable (its scripts name their interpreter): built in place,
            # marked complete last, removed when anything fails.
            shutil.rmtree(target, ignore_errors=True)
            try:
                _build_venv(target, wheel, pins)
                atomic_write(done, _wheel_id(wheel))
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
    return Runtime(target, _overlay(target, wheel))


def _overlay(target: Path, wheel: Path) -> Path:
    """WHEEL's ci-gen alone (`pip install --target`), made in a scratch directory and renamed
    into place: it exists whole or not at all, and is never written again."""
    overlays = target / "overlays"
    dest = overlays / hashlib.sha256(wheel.read_bytes()).hexdigest()[:16]
    with _locked(dest):
        if not dest.is_dir():
            scratch = Path(tempfile.mkdtemp(prefix=".new-", dir=overlays))
            try:
                _run([str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input",
                      "--no-deps", "--no-compile", "--target", str(scratch), str(wheel)],
                     "install ci-gen into the runtime environment's overlay")
                scratch.rename(dest)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            _prune_overlays(overlays, keep=dest)
        os.utime(dest)  # in use: not pruned
    return dest


def _prune_overlays(overlays: Path, keep: Path) -> None:
    """Overlays no run has used for OVERLAY_DAYS (each edit of a checkout makes one), and
    scratch directories a killed run left behind."""
    def unused(path: Path) -> bool:
        return path.is_dir() and path.stat().st_mtime < time.time() - OVERLAY_DAYS * 86400

    for path in overlays.iterdir():
        if path != keep and unused(path):
            with _locked(path):  # a run may be taking it up meanwhile: decided again under the lock
                if unused(path):
                    shutil.rmtree(path, ignore_errors=True)


def _wheel_id(wheel: Path) -> str:
    return f"{wheel.parent.name}/{wheel.name}\n"


def _build_venv(where: Path, wheel: Path, pins: str) -> None:
    _run([base_python(), "-m", "venv", str(where)], "create the runtime venv")
    constraints = where / "ci-gen-pins.txt"
    # ci-gen itself is the wheel being installed, never a pin.
    atomic_write(constraints, "".join(ln + "\n" for ln in pins.splitlines()
                                      if not re.match(rf"\s*{DIST}\s*(==|$)", ln, re.I)))
    _run([str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input",
          "--constraint", str(constraints), f"{DIST}[{RUNTIME_EXTRAS}] @ {wheel.as_uri()}"],
         f"install ci-gen[{RUNTIME_EXTRAS}] into the runtime venv")
    _job_bin(where)


def purelib(venv: Path) -> Path:
    """The site-packages directory of a venv made from this Python."""
    return Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))


def job_bin(venv: Path) -> Path:
    return venv / "job-bin"


def _job_bin(venv: Path) -> None:
    """The runtime's console scripts (ci-gen, dvc, pip...) with `#!/usr/bin/env python`: run
    from a job's own venv layered over the runtime (see jobenv), they use the job's
    interpreter, so what a job installs lands in its own venv, never in the shared runtime."""
    out = job_bin(venv)
    out.mkdir(exist_ok=True)
    python = f"{venv / 'bin'}/python".encode()
    for script in sorted((venv / "bin").iterdir()):
        if not script.is_file() or script.name.startswith(("python", "activate", "Activate")):
            continue
        body = script_body(script.read_bytes(), python)
        if body is not None:
            atomic_write(out / script.name, b"#!/usr/bin/env python\n" + body, mode=0o755)


_TRAMPOLINE_END = b"' " + b"'" * 3  # the third line of pip's /bin/sh trampoline


def script_body(data: bytes, python: bytes) -> bytes | None:
    """A console script's code after the lines that start PYTHON; None for any other file.
    pip writes `#!PYTHON`, or, for a path too long for a shebang line (127 bytes on Linux)
    or one with spaces, a /bin/sh trampoline: `#!/bin/sh`, an `exec` of PYTHON, then a line
    that closes the trampoline's Python string."""
    first, _, rest = data.partition(b"\n")
    if first.startswith(b"#!" + python):
        return rest
    if first == b"#!/bin/sh":
        second, _, after = rest.partition(b"\n")
        third, _, body = after.partition(b"\n")
        execs = (b"'" * 3 + b"exec' " + python, b"'" * 3 + b"exec' \"" + python)
        if second.startswith(execs) and third == _TRAMPOLINE_END:
            return body
    return None


def _run(cmd: list[str], what: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise CiGenError(f"cannot {what}: {pip_failure(proc.stdout, proc.stderr)}")
