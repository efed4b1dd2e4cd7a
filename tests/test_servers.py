"""The server fixtures work: S3 stores and returns an object; buildah builds an image and
pushes it to the registry, whose API then lists the tag."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest


def test_moto_server_put_get(moto_server):
    s3 = moto_server.client()
    s3.put_object(Bucket=moto_server.bucket, Key="dir/hello.txt", Body=b"hello s3")
    body = s3.get_object(Bucket=moto_server.bucket, Key="dir/hello.txt")["Body"].read()
    assert body == b"hello s3"
    assert moto_server.endpoint_url.startswith("http://127.0.0.1:")


def _build_scratch(buildah_env, tmp_path, image: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello image\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    buildah_env.run("bud", "--isolation", "chroot", "-t", image, str(ctx))


def test_buildah_push_to_registry(buildah_env, docker_registry, tmp_path):
    image = f"{docker_registry.host}/group/app:abc123"
    _build_scratch(buildah_env, tmp_path, image)
    buildah_env.run("push", "--tls-verify=false", image)
    assert docker_registry.tags("group/app") == ["abc123"]
    # The storage is the fixture's own, not the machine's.
    images = buildah_env.run("images", "--format", "{{.Name}}:{{.Tag}}").stdout
    assert f"{docker_registry.host}/group/app:abc123" in images
    assert any(buildah_env.root.iterdir())


def test_registry_with_auth_needs_login(buildah_env, docker_registry_auth, tmp_path):
    reg = docker_registry_auth
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{reg.url}/v2/", timeout=10)
    assert err.value.code == 401
    image = f"{reg.host}/group/app:v1"
    _build_scratch(buildah_env, tmp_path, image)
    denied = buildah_env.run("push", "--tls-verify=false", image, check=False)
    assert denied.returncode != 0
    buildah_env.run("login", "--tls-verify=false", "-u", reg.username, "--password-stdin", reg.host,
                    input=reg.password)
    buildah_env.run("push", "--tls-verify=false", image)
    assert reg.tags("group/app") == ["v1"]
