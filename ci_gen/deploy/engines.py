"""How a release runs on the runner host: `process`, the project's serve script detached in
its own session. (Container releases live on their target: ci_gen.deploy.target.)"""

from __future__ import annotations

import abc
import dataclasses
import datetime as _dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ci_gen.deploy.health import bind_addr
from ci_gen.deploy.spec import Spec
from ci_gen.deploy.state import Release
from ci_gen.errors import CiGenError

# What a detached serve process inherits: enough to run Python, never the job's secrets.
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH",
             "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES")


class Engine(abc.ABC):
    """How releases are started, checked, stopped and started again."""

    name = ""

    def check(self, spec: Spec) -> None:
        """Raise a clear error when this engine cannot work here."""

    @abc.abstractmethod
    def prepare(self, spec: Spec, rel: Release, rdir: Path) -> Release:
        """The release with what this engine needs to start it (and start it again)."""

    @abc.abstractmethod
    def start(self, rel: Release) -> Release:
        """Start the prepared release; the release with what identifies it running."""

    @abc.abstractmethod
    def alive(self, rel: Release) -> tuple[bool, str]:
        """Whether the release still runs, and why not when it does not."""

    @abc.abstractmethod
    def stop(self, rel: Release, remove: bool) -> bool:
        """Stop the release; True when something was running."""

    @abc.abstractmethod
    def restart(self, rel: Release) -> Release:
        """Start a stopped release again (a rollback)."""

    @abc.abstractmethod
    def log_tail(self, rel: Release, lines: int = 30) -> str:
        """The last lines the release logged, for an error message."""

    def describe(self, rel: Release) -> str:
        return rel.release


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a pid, or None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


class ProcessEngine(Engine):
    name = "process"

    def __init__(self, environ: dict[str, str] | None = None):
        self.environ = os.environ if environ is None else environ
        self.children: dict[int, subprocess.Popen] = {}

    def check(self, spec: Spec) -> None:
        if not Path(spec.serve_script).is_file():
            raise CiGenError(f"serve script {spec.serve_script} not found (input serve-script)")
        if not Path(spec.model_path).is_dir():
            raise CiGenError(f"model directory {spec.model_path} not found "
                             "(input model-path; does the job get the train job's artifacts?)")
        python = self.python()
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise CiGenError(f"CI_GEN_DEPLOY_PYTHON {python[:100]!r} is not an executable file")

    def python(self) -> str:
        return self.environ.get("CI_GEN_DEPLOY_PYTHON") or sys.executable

    def prepare(self, spec: Spec, rel: Release, rdir: Path) -> Release:
        # The release owns its copy: the job's workspace is wiped after the job. The script's
        # sibling modules come along, since a serve script may import them (the example's
        # serve.py takes its metric buckets from fmnist_profile.py).
        script = rdir / Path(spec.serve_script).name
        for module in Path(spec.serve_script).resolve().parent.glob("*.py"):
            shutil.copy2(module, rdir / module.name)
        shutil.copytree(spec.model_path, rdir / "model", symlinks=False)
        cmd = [self.python(), str(script), "--model_name", spec.model_name,
               "--model_base_path", str(rdir / "model"), "--rest_api_port", str(rel.port)]
        bind = bind_addr(spec.host)
        if bind:
            cmd += ["--rest_api_host", bind]
        env = {k: self.environ[k] for k in _PASS_ENV if k in self.environ}
        env.update(spec.env, MODEL_NAME=spec.model_name)
        return dataclasses.replace(rel, cmd=cmd, cwd=str(rdir), log=str(rdir / "serve.log"), env=env)

    def start(self, rel: Release) -> Release:
        try:
            with open(rel.log, "ab") as log:
                log.write(f"--- ci-gen: starting release {rel.release} at "
                          f"{_dt.datetime.now().isoformat(timespec='seconds')}\n".encode())
                log.flush()
                # Own session: it outlives the job, and stop can kill its whole group.
                proc = subprocess.Popen(rel.cmd, cwd=rel.cwd, env=rel.env,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        start_new_session=True, close_fds=True)
        except OSError as exc:
            raise CiGenError(f"cannot start release {rel.release}: "
                             f"{exc.strerror or exc} ({exc.filename or rel.cmd[0]})") from None
        self.children[proc.pid] = proc
        stat = _proc_stat(proc.pid)
        return dataclasses.replace(rel, pid=proc.pid, start_ticks=stat[1] if stat else None)

    def alive(self, rel: Release) -> tuple[bool, str]:
        pid = rel.pid
        if not pid:
            return False, "not started"
        child = self.children.get(pid)
        if child is not None:
            code = child.poll()
            return (True, "running") if code is None else (False, f"process exited with code {code}")
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False, "process is gone"
        if rel.start_ticks is not None and stat[1] != rel.start_ticks:
            return False, "process is gone (pid reused)"
        return True, "running"

    def stop(self, rel: Release, remove: bool = True) -> bool:
        running, _ = self.alive(rel)
        if not running:
            return False
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            self._signal(rel.pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not self.alive(rel)[0]:
                    return True
                time.sleep(0.05)
        raise CiGenError(f"release {rel.release} (pid {rel.pid}) did not stop")

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            if os.getpgid(pid) == pid:  # its own group: the server and anything it spawned
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def restart(self, rel: Release) -> Release:
        return self.start(rel)

    def log_tail(self, rel: Release, lines: int = 30) -> str:
        try:
            text = Path(rel.log).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe(self, rel: Release) -> str:
        return f"{rel.release} (pid {rel.pid})"


def engine_for(name: str, environ: dict[str, str] | None = None) -> Engine:
    if name == "process":
        return ProcessEngine(environ)
    if name in ("docker", "podman"):
        # ci-gen 0.1 recorded container releases on the runner; they now live on the target.
        raise CiGenError(f"the deploy state under {environ_state_hint(environ)} records a {name} release "
                         f"of ci-gen 0.1: remove its container with `{name} rm -f` and that state")
    raise CiGenError(f"unknown deploy engine {name[:40]!r} in the deploy state")


def environ_state_hint(environ: dict[str, str] | None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("CI_GEN_STATE_DIR") or "~/.local/state/ci-gen"

