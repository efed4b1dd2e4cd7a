"""Real servers and tools for tests, on 127.0.0.1 only: S3 (moto), an OCI registry (Debian's
docker-registry), buildah with private storage and a Python package index (pypiserver). conftest.py wraps them in fixtures that
start and stop them; each skips with a reason when its program is not installed
(scripts/bootstrap.sh installs all of them, so CI runs them)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, headers: dict[str, str] | None = None,
              ok: tuple[int, ...] = (200,)) -> None:
    """Poll URL until it answers with a status in ok (bounded by timeout)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status in ok:
                    return
                last = resp.status
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
            last = exc.code
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s (last: {last})")


def wait_port(port: int, proc: subprocess.Popen, log: Path, what: str, timeout: float = 15.0) -> None:
    """Wait until PROC accepts connections on the loopback PORT; its log's tail if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start: " + log.read_text()[-500:]) from None
            time.sleep(0.05)


def end_process(proc: subprocess.Popen, log) -> None:
    """Terminate a server started by a fixture (killed after 10 s) and close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


# -- S3 -------------------------------------------------------------------------------------

@dataclass
class S3Server:
    endpoint_url: str
    bucket: str
    access_key_id: str = "testing"
    secret_access_key: str = "testing"
    region: str = "us-east-1"

    def client(self):  # boto3 only when a test asks for it
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key_id,
                            aws_secret_access_key=self.secret_access_key)

    @property
    def env(self) -> dict[str, str]:
        """What a DVC s3 remote needs to reach this server (ci-gen job dvc-auth reads these)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_DEFAULT_REGION": self.region}


def start_moto(bucket: str = "ci-gen-test"):
    """A ThreadedMotoServer on a free loopback port with BUCKET created; a generator that
    yields an S3Server and stops the server when closed."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(f"http://127.0.0.1:{port}", bucket)
        wait_http(f"{s3.endpoint_url}/moto-api/", timeout=20)
        # moto keeps its state per process, not per server: start every test from empty.
        urllib.request.urlopen(urllib.request.Request(f"{s3.endpoint_url}/moto-api/reset", method="POST"),
                               timeout=10).close()
        s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        server.stop()


# -- OCI registry ----------------------------------------------------------------------------

@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT, as used in image names
    root: Path
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _headers(self) -> dict[str, str]:
        if not self.username:
            return {}
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def get_json(self, path: str) -> object:
        import json

        req = urllib.request.Request(self.url + path, headers=self._headers())
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def tags(self, repository: str) -> list[str]:
        data = self.get_json(f"/v2/{repository}/tags/list")
        return sorted((data or {}).get("tags") or [])  # type: ignore[union-attr]


def start_registry(workdir: Path, auth: tuple[str, str] | None = None):
    """Debian's docker-registry (distribution 2.8) serving WORKDIR/storage on a free loopback
    port, optionally with htpasswd (bcrypt) auth; a generator yielding a Registry."""
    exe = shutil.which("docker-registry")
    if exe is None:
        pytest.skip("docker-registry not installed (Debian package docker-registry; scripts/bootstrap.sh installs it)")
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if auth:
        htpasswd = shutil.which("htpasswd")
        if htpasswd is None:
            pytest.skip("htpasswd not installed (Debian package apache2-utils)")
        user, password = auth
        hfile = workdir / "htpasswd"
        # -i: password on stdin, never on a command line.
        subprocess.run([htpasswd, "-Bic", str(hfile), user], input=password, text=True,
                       check=True, capture_output=True)
        lines += ["auth:", "  htpasswd:", "    realm: ci-gen-test", f"    path: {hfile}"]
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = open(workdir / "registry.log", "wb")
    # The registry reads REGISTRY_* variables as config overrides; buildah's REGISTRY_AUTH_FILE
    # (set by the buildah_env fixture) would become `auth: <path>` and break it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        reg = Registry(f"127.0.0.1:{port}", storage, *(auth or (None, None)))
        try:
            wait_http(f"{reg.url}/v2/", timeout=30, headers=reg._headers())
        except TimeoutError:
            proc.poll()
            raise RuntimeError("docker-registry did not start: "
                               + (workdir / "registry.log").read_text()[-500:]) from None
        yield reg
    finally:
        end_process(proc, log)


# -- Python package index --------------------------------------------------------------------

@dataclass
class PackageIndex:
    url: str  # where twine uploads
    root: Path  # the files it serves

    @property
    def simple(self) -> str:
        """The PEP 503 simple index pip installs from."""
        return f"{self.url}simple/"


def start_pypiserver(workdir: Path):
    """pypiserver on a free loopback port serving WORKDIR/packages; uploads need no password
    (`-a . -P .`) and an unknown name is a 404, never a redirect to the public index
    (`--disable-fallback`). A generator yielding a PackageIndex."""
    exe = Path(sys.executable).with_name("pypi-server")
    if not exe.is_file():
        pytest.skip("pypiserver not installed (test extra; scripts/bootstrap.sh installs it)")
    port = free_port()
    root = workdir / "packages"
    root.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "pypiserver.log", "wb")
    proc = subprocess.Popen([str(exe), "run", "-p", str(port), "-i", "127.0.0.1", "-a", ".", "-P", ".",
                             "--disable-fallback", str(root)], stdout=log, stderr=subprocess.STDOUT)
    try:
        index = PackageIndex(f"http://127.0.0.1:{port}/", root)
        wait_http(index.simple, timeout=30)
        yield index
    finally:
        end_process(proc, log)


# -- buildah ---------------------------------------------------------------------------------

@dataclass
class Buildah:
    """buildah with private storage (vfs, under a temp dir) and chroot isolation.

    `env` holds the variables that point buildah at that storage; the fixture also sets them
    in os.environ, so subprocesses (gitlab-ci-local jobs included) use the same storage.
    """

    root: Path
    runroot: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["buildah", *args], env={**os.environ, **self.env}, input=input,
                              capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"buildah {args[0]} failed ({proc.returncode}): {proc.stderr[-1500:]}")
        return proc


def make_buildah(workdir: Path) -> Buildah:
    if shutil.which("buildah") is None:
        pytest.skip("buildah not installed (Debian package buildah; scripts/bootstrap.sh installs it)")
    root, runroot = workdir / "root", workdir / "runroot"
    root.mkdir(parents=True, exist_ok=True)
    runroot.mkdir(parents=True, exist_ok=True)
    conf = workdir / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\nrunroot = "{runroot}"\ngraphroot = "{root}"\n')
    auth = workdir / "auth.json"
    auth.write_text('{"auths": {}}\n')  # buildah refuses a REGISTRY_AUTH_FILE that does not exist
    env = {
        "CONTAINERS_STORAGE_CONF": str(conf),
        "STORAGE_DRIVER": "vfs",
        "BUILDAH_ISOLATION": "chroot",
        # `buildah login` writes here instead of the user's runtime dir.
        "REGISTRY_AUTH_FILE": str(auth),
    }
    return Buildah(root, runroot, env)


# -- a container engine: podman's Docker-compatible API service ------------------------------

@dataclass
class PodmanService:
    """`podman system service` on a unix socket, with private storage: a deploy target."""

    socket: Path
    args: list[str]  # podman's global flags for this storage
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["podman", *self.args, *args], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {args[0]} failed: {proc.stderr[-1000:]}")
        return proc


def start_podman_service(workdir: Path, insecure_registry: str):
    """Debian's podman serving its API on WORKDIR/podman.sock (root, runc, the ulimits this
    machine needs), pulling from INSECURE_REGISTRY over plain HTTP; a generator yielding a
    PodmanService. Every container is removed when it closes."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("podman or runc not installed (Debian packages podman, runc; scripts/bootstrap.sh)")
    (workdir / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]\n'
        '[engine]\nruntime = "runc"\n')
    (workdir / "registries.conf").write_text(
        f'[[registry]]\nlocation = "{insecure_registry}"\ninsecure = true\n')
    env = {"CONTAINERS_CONF": str(workdir / "containers.conf"),
           "CONTAINERS_REGISTRIES_CONF": str(workdir / "registries.conf")}
    # podman refuses a runroot longer than 50 characters: a short one of its own under /tmp.
    runroot = Path(tempfile.mkdtemp(prefix="ci-gen-podman-"))
    args = ["--root", str(workdir / "root"), "--runroot", str(runroot),
            "--tmpdir", str(workdir / "tmp"), "--storage-driver", "vfs"]
    sock = workdir / "podman.sock"
    svc = PodmanService(sock, args, env)
    log = open(workdir / "service.log", "wb")
    proc = subprocess.Popen(["podman", *args, "system", "service", "--time=0", f"unix://{sock}"],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("podman system service did not start: "
                                   + (workdir / "service.log").read_text()[-500:])
            time.sleep(0.05)
        yield svc
    finally:
        svc.podman("rm", "-a", "-f", "-t", "0", check=False)
        end_process(proc, log)
        shutil.rmtree(runroot, ignore_errors=True)


# -- sshd on loopback ----------------------------------------------------------------------

@dataclass
class SSHServer:
    port: int
    user: str
    key: Path  # the client's private key
    known_hosts: Path  # the server's host key, pinned


def start_sshd(workdir: Path, environment: dict[str, str]):
    """Debian's openssh-server on a free loopback port, one client key allowed for the current
    user, ENVIRONMENT set for its sessions (authorized_keys `environment=`); a generator
    yielding an SSHServer."""
    import getpass

    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd) or shutil.which("ssh") is None:
        pytest.skip("openssh-server / openssh-client not installed (scripts/bootstrap.sh)")
    for name in ("hostkey", "userkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)],
                       check=True, capture_output=True)
    opts = ",".join(f'environment="{k}={v}"' for k, v in environment.items())
    (workdir / "authorized_keys").write_text(f"{opts} {(workdir / 'userkey.pub').read_text()}")
    port = free_port()
    (workdir / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {workdir / 'hostkey'}",
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        f"PermitUserEnvironment {','.join(environment) or 'no'}", "StrictModes no",
        f"PidFile {workdir / 'sshd.pid'}", ""]))
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation directory
    hostkey = (workdir / "hostkey.pub").read_text().split()
    (workdir / "known_hosts").write_text(f"[127.0.0.1]:{port} {hostkey[0]} {hostkey[1]}\n")
    log = open(workdir / "sshd.log", "wb")
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(workdir / "sshd_config")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, workdir / "sshd.log", "sshd")
        yield SSHServer(port, getpass.getuser(), workdir / "userkey", workdir / "known_hosts")
    finally:
        end_process(proc, log)


# -- an engine API behind TLS with client certificates ------------------------------------

@dataclass
class TLSFiles:
    ca: Path
    cert: Path  # the client's
    key: Path


def make_tls_files(workdir: Path) -> tuple[TLSFiles, Path, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl); returns
    the client's files and the server's certificate and key."""
    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ci-gen test CA")
    (workdir / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    (workdir / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return (TLSFiles(workdir / "ca.pem", workdir / "client.pem", workdir / "client.key"),
            workdir / "server.pem", workdir / "server.key")


def start_tls_forwarder(workdir: Path, unix_socket: Path):
    """socat: TLS on a free loopback port, client certificates required, forwarding to
    UNIX_SOCKET (an engine API as `dockerd --tlsverify` serves it); a generator yielding
    (port, TLSFiles)."""
    if shutil.which("socat") is None or shutil.which("openssl") is None:
        pytest.skip("socat or openssl not installed (Debian packages socat, openssl; scripts/bootstrap.sh)")
    client, cert, key = make_tls_files(workdir)
    port = free_port()
    listen = (f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={cert},key={key},"
              f"cafile={client.ca},verify=1")
    log = open(workdir / "socat.log", "wb")
    proc = subprocess.Popen(["socat", listen, f"UNIX-CONNECT:{unix_socket}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, workdir / "socat.log", "socat")
        yield port, client
    finally:
        end_process(proc, log)
