"""Shared fixtures. Servers are real, bound to 127.0.0.1, started and stopped by the fixture
(see servers.py); a fixture whose program is not installed skips its tests with the reason."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402


@pytest.fixture
def moto_server():
    """S3 on a free loopback port with a bucket created: .endpoint_url, .bucket, .env
    (AWS_* variables for DVC), .client() (boto3)."""
    yield from servers.start_moto()


@pytest.fixture
def docker_registry(tmp_path_factory):
    """An OCI registry (Debian's docker-registry) on a free loopback port, no auth:
    .host (127.0.0.1:PORT), .url, .tags(repository)."""
    yield from servers.start_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture
def docker_registry_auth(tmp_path_factory):
    """Like docker_registry, with htpasswd auth: .username / .password."""
    yield from servers.start_registry(tmp_path_factory.mktemp("registry-auth"),
                                      auth=("ci-gen", "registry-test-password"))


@pytest.fixture
def buildah_env(tmp_path_factory, monkeypatch):
    """buildah with private vfs storage and chroot isolation; its variables are also set in
    os.environ for the test, so subprocesses (pipeline jobs) use the same storage."""
    b = servers.make_buildah(tmp_path_factory.mktemp("buildah"))
    for key, value in b.env.items():
        monkeypatch.setenv(key, value)
    return b


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow 3.17.2 tracking server on a free loopback port (SQLite store, proxied
    artifacts), started once per session by the code `ci-gen run` uses: .url, .root."""
    from ci_gen.local import registry

    server = registry.start(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def httpserver_listen_address():
    """pytest-httpserver's one server binds 127.0.0.1 (it binds `localhost` otherwise), for
    every module: the first module to start it decides its address for the whole session."""
    return ("127.0.0.1", 0)
