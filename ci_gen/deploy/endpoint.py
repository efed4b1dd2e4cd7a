"""Where a container engine's API is: the deploy target, from CI/CD variables.

`DEPLOY_ENGINE_HOST` names it (unset: the runner's own engine socket, runner-host mode):

    unix:///run/podman/podman.sock   a socket on the job's host (runner-host mode, or forwarded)
    tcp://HOST:PORT                  TLS with client certificates: DEPLOY_ENGINE_TLS_CA,
                                     DEPLOY_ENGINE_TLS_CERT, DEPLOY_ENGINE_TLS_KEY (file variables)
    ssh://USER@HOST[:PORT]           `docker|podman system dial-stdio` over ssh: the key from
                                     DEPLOY_SSH_KEY, the host key pinned by
                                     DEPLOY_SSH_KNOWN_HOSTS (each a File variable or its text)

`Endpoint.connect()` gives a connected socket that speaks HTTP to the engine. Nothing here
prints a key or a file's content; the ssh key is copied to a private file that is removed
when the endpoint is closed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ci_gen.errors import CiGenError, shown
from ci_gen.patterns import RE_ENGINE_HOST

HOST_VARIABLE = "DEPLOY_ENGINE_HOST"
TLS_VARIABLES = ("DEPLOY_ENGINE_TLS_CA", "DEPLOY_ENGINE_TLS_CERT", "DEPLOY_ENGINE_TLS_KEY")
SSH_KEY_VARIABLE = "DEPLOY_SSH_KEY"
KNOWN_HOSTS_VARIABLE = "DEPLOY_SSH_KNOWN_HOSTS"
# The runner's own engine, when no target is named (runner-host mode, shell runners).
LOCAL_SOCKETS = {"docker": "unix:///var/run/docker.sock", "podman": "unix:///run/podman/podman.sock"}
CONNECT_TIMEOUT = 15.0
_ENGINE_HOST = re.compile(RE_ENGINE_HOST)


@dataclass
class Endpoint:
    """A parsed DEPLOY_ENGINE_HOST and what it needs to connect."""

    url: str
    engine: str  # docker or podman: whose dial-stdio runs over ssh
    scheme: str
    address: str  # socket path, or host
    port: int = 0
    user: str = ""
    tls: tuple[str, str, str] | None = None
    ssh_key: str = ""
    known_hosts: str = ""
    runner_host: bool = False  # no DEPLOY_ENGINE_HOST: the runner's own engine
    _tmp: str | None = field(default=None, repr=False)
    _procs: list[subprocess.Popen] = field(default_factory=list, repr=False)

    def connect(self) -> socket.socket:
        """A connected socket to the engine's API (a new one per call)."""
        try:
            if self.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(CONNECT_TIMEOUT)
                try:
                    sock.connect(self.address)
                except OSError:
                    sock.close()
                    raise
                return sock
            if self.scheme == "tcp":
                return self._tls()
            return self._ssh()
        except OSError as exc:
            raise self.unreachable(exc.strerror or str(exc)) from None

    def unreachable(self, why: str) -> CiGenError:
        hint = (f" (runner-host mode: no {HOST_VARIABLE} is set)" if self.runner_host else "")
        return CiGenError(f"deploy target {self.url} is unreachable: {why[:200]}{hint}")

    def _tls(self) -> socket.socket:
        import ssl

        assert self.tls is not None
        ca, cert, key = self.tls
        ctx = ssl.create_default_context(cafile=ca)
        # Without a password callback OpenSSL asks for a key's passphrase on the terminal,
        # and a CI job has none to answer: refuse such a key in one line instead.
        ctx.load_cert_chain(cert, key, password=_no_passphrase)
        raw = socket.create_connection((self.address, self.port), timeout=CONNECT_TIMEOUT)
        return ctx.wrap_socket(raw, server_hostname=self.address)

    def _ssh(self) -> socket.socket:
        """ssh running the engine's `system dial-stdio`, its stdio one end of a socket pair."""
        ssh = shutil.which("ssh")
        if not ssh:
            raise CiGenError(f"{HOST_VARIABLE} is an ssh:// target but ssh is not installed in the "
                             "job's image (Debian: openssh-client)")
        ours, theirs = socket.socketpair()
        argv = [ssh, "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "IdentitiesOnly=yes", "-o", f"ConnectTimeout={int(CONNECT_TIMEOUT)}",
                "-o", "LogLevel=ERROR", "-i", self.ssh_key, "-p", str(self.port or 22),
                "--", f"{self.user}@{self.address}", self.engine, "system", "dial-stdio"]
        proc = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE,
                                close_fds=True)
        theirs.close()
        self._procs.append(proc)
        ours.settimeout(None)
        return ours

    def ssh_error(self) -> str:
        """What the last ssh said before it ended (host key, auth, command), one line."""
        for proc in reversed(self._procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)  # the connection is gone: ssh is ending, or hangs
            if proc.poll() is not None and proc.stderr is not None:
                lines = proc.stderr.read().decode(errors="replace").strip().splitlines()
                if lines:
                    return lines[-1][:200]
                return f"ssh exited with code {proc.returncode}"
        return ""

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        self._procs.clear()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _no_passphrase() -> bytes:
    raise CiGenError(f"{TLS_VARIABLES[2]} is protected by a passphrase, which a CI job cannot "
                     f"type: store the key without one (openssl pkey -in KEY -out PLAIN) in the "
                     f"masked File variable")


def from_environ(engine: str, environ: dict[str, str]) -> Endpoint:
    """The endpoint DEPLOY_ENGINE_HOST names (validated), or the runner's own engine socket."""
    value = environ.get(HOST_VARIABLE, "")
    runner_host = not value
    if runner_host:
        value = _local_socket(engine, environ)
    if not _ENGINE_HOST.fullmatch(value):
        raise CiGenError(f"{HOST_VARIABLE} {shown(value)} is not unix:///PATH, tcp://HOST:PORT "
                         "or ssh://USER@HOST[:PORT]")
    scheme, rest = value.split("://", 1)
    if scheme == "unix":
        return Endpoint(value, engine, scheme, rest, runner_host=runner_host)
    userhost, _, port = rest.partition(":")
    if scheme == "tcp":
        return Endpoint(value, engine, scheme, userhost, int(port), tls=_tls_files(environ))
    user, _, host = userhost.partition("@")
    ep = Endpoint(value, engine, scheme, host, int(port or 22), user=user)
    _ssh_files(ep, environ)
    return ep


def _local_socket(engine: str, environ: dict[str, str]) -> str:
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if engine == "podman" and os.getuid() != 0 and runtime:
        return f"unix://{runtime}/podman/podman.sock"  # rootless podman's socket
    return LOCAL_SOCKETS[engine]


def _file_variable(name: str, environ: dict[str, str]) -> str:
    path = environ.get(name, "")
    if not path:
        raise CiGenError(f"{name} is not set: add it as a CI/CD variable of type File")
    if not Path(path).is_file():
        raise CiGenError(f"{name} is not a file: make it a CI/CD variable of type File "
                         "(its value is then a path the job reads)")
    return path


def _tls_files(environ: dict[str, str]) -> tuple[str, str, str]:
    # A plain TCP engine API is root on the target for whoever reaches it: TLS or nothing.
    ca, cert, key = (_file_variable(name, environ) for name in TLS_VARIABLES)
    return ca, cert, key


def _file_or_text(name: str, environ: dict[str, str], is_text: bool) -> str:
    """The content of variable NAME: its own text (`is_text`), or the file a File variable
    names."""
    value = environ.get(name, "")
    if is_text:
        return value
    try:
        return Path(_file_variable(name, environ)).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CiGenError(f"cannot read the file of {name}: {exc.strerror}") from None


def _ssh_files(ep: Endpoint, environ: dict[str, str]) -> None:
    """A private copy of the key (ssh refuses group-readable keys, and a pasted key may lack
    its final newline) and of the pinned host keys. Each variable may be a File variable or
    hold the text itself."""
    key = environ.get(SSH_KEY_VARIABLE, "")
    text = _file_or_text(SSH_KEY_VARIABLE, environ, "PRIVATE KEY" in key)
    if "PRIVATE KEY" not in text:
        raise CiGenError(f"{SSH_KEY_VARIABLE} does not hold a private key (expected a File "
                         "variable with -----BEGIN ... PRIVATE KEY-----)")
    known = environ.get(KNOWN_HOSTS_VARIABLE, "")
    if not known:
        raise CiGenError(f"{KNOWN_HOSTS_VARIABLE} is not set: pin the target's host key "
                         f"(the output of `ssh-keyscan -p PORT HOST`, checked by hand)")
    # A known_hosts line is `HOST KEYTYPE KEY`: with a blank it is text, else a file's path.
    known_text = _file_or_text(KNOWN_HOSTS_VARIABLE, environ, any(c.isspace() for c in known))
    tmp = tempfile.mkdtemp(prefix="ci-gen-ssh-")
    ep._tmp = tmp
    ep.ssh_key, ep.known_hosts = os.path.join(tmp, "key"), os.path.join(tmp, "known_hosts")
    fd = os.open(ep.ssh_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text.rstrip("\n") + "\n")
    with open(ep.known_hosts, "w") as fh:
        fh.write(known_text.rstrip("\n") + "\n")
