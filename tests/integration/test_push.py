"""``cellbox push``, ``login`` and ``logout`` against real registries (no root needed).

Each test has a docker-registry of its own with the access log on, so the requests a push
makes can be counted: an upload is a ``POST .../blobs/uploads/`` answered 202, a
cross-repository mount one answered 201. The image pushed is the busybox test image with a
layer added on top through the store, as ``cellbox build`` or ``commit`` would add one.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cellbox.runtime import push as push_module
from cellbox.runtime.errors import AuthError, StoreError
from cellbox.runtime.images import Image
from cellbox.runtime.push import PushEvent, push
from cellbox.runtime.settings import Settings
from cellbox.runtime.store import Store

from tests.support.containers import store_image
from tests.support.oci import File, tar_layer
from tests.support.registry import RegistryServer
from tests.support.tokenserver import TokenServer

ACCESS_LOG = {"log": "{level: info, accesslog: {disabled: false}}"}
USER, PASSWORD = "gocloudcoder", "s3cret pass"


def cellbox(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", "-m", "cellbox.runtime", *args], input=input,
                          capture_output=True, text=True, timeout=120)


class Requests:
    """The registry's access log, read back as (method, path, status)."""

    def __init__(self, server: RegistryServer) -> None:
        self.path = server.directory / "registry.log"
        self.start = 0

    def mark(self) -> None:
        self.start = len(self._all())

    def _all(self) -> list[tuple[str, str, int]]:
        pattern = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d+)')
        return [(m[1], m[2], int(m[3])) for m in pattern.finditer(self.path.read_text())]

    def since_mark(self) -> list[tuple[str, str, int]]:
        return self._all()[self.start:]

    def uploads(self) -> int:
        return sum(1 for method, path, status in self.since_mark()
                   if method == "POST" and "/blobs/uploads/" in path and "mount=" not in path
                   and status == 202)

    def mounts(self) -> int:
        return sum(1 for method, path, status in self.since_mark()
                   if method == "POST" and "mount=" in path and status == 201)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CELLBOX_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("CELLBOX_RUN", str(tmp_path / "run"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return Settings.load()


@pytest.fixture
def image(settings: Settings) -> Image:
    """busybox plus one layer of our own, named app:1."""
    store = Store.from_settings(settings)
    base = store_image(settings.root, "busybox")
    layer = store.add_layer(iter([tar_layer([File("srv/hello.txt", b"hello\n")])]),
                            base.layers[-1].chain_id, "gzip")
    config = dict(base.config)
    config.pop("rootfs", None)
    config["history"] = [*config.get("history", []), {"created_by": "COPY hello.txt /srv/"}]
    return store.add_image("app:1", config, [*base.layers, layer])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path / "registry", extra_config=ACCESS_LOG) as running:
        yield running


def skopeo_digest(ref: str, *creds: str) -> str:
    args = ["skopeo", "inspect", "--tls-verify=false", *creds, "--format", "{{.Digest}}",
            f"docker://{ref}"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def test_push_then_nothing_twice_then_mounts(settings: Settings, image: Image,
                                             server: RegistryServer, tmp_path: Path) -> None:
    requests = Requests(server)
    dest = f"localhost:{server.port}/team/app:1"
    events: list[PushEvent] = []
    requests.mark()
    result = push("app:1", dest, progress=events.append)
    assert result.digest == image.digest  # the same manifest bytes: the same image
    assert len(result.uploaded) == 3 and requests.uploads() == 3  # 2 layers + config
    assert ("PUT", "/v2/team/app/manifests/1", 201) in requests.since_mark()
    assert [e.status for e in events if e.kind == "manifest"] == ["pushed"]
    # skopeo sees the same image, and copies it out intact
    assert skopeo_digest(dest) == image.digest
    layout = tmp_path / "copied"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{dest}",
                    f"oci:{layout}:x"], check=True, capture_output=True)
    index = json.loads((layout / "index.json").read_text())
    manifest_blob = layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]
    layers = [d["digest"] for d in json.loads(manifest_blob.read_text())["layers"]]
    assert layers == [layer.digest for layer in image.layers]

    # again: every blob is already there
    requests.mark()
    again = push("app:1", dest)
    assert requests.uploads() == 0 and again.uploaded == [] and len(again.existing) == 3

    # another repository of the same registry: mounted, not uploaded
    requests.mark()
    other = push("app:1", f"localhost:{server.port}/other/copy:2")
    assert requests.uploads() == 0 and requests.mounts() == 3 and len(other.mounted) == 3
    assert skopeo_digest(f"localhost:{server.port}/other/copy:2") == image.digest


def test_large_blobs_go_in_chunks(settings: Settings, image: Image, server: RegistryServer,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(push_module, "CHUNK_SIZE", 256 << 10)
    requests = Requests(server)
    requests.mark()
    push("app:1", f"127.0.0.1:{server.port}/chunked/app")
    patches = [r for r in requests.since_mark() if r[0] == "PATCH"]
    busybox_layer = image.layers[0].size
    assert busybox_layer > 256 << 10
    assert len(patches) == -(-busybox_layer // (256 << 10))
    assert skopeo_digest(f"127.0.0.1:{server.port}/chunked/app:latest") == image.digest


def test_cli_push_output(settings: Settings, image: Image, server: RegistryServer) -> None:
    dest = f"localhost:{server.port}/cli/app:v1"
    first = cellbox("push", "app:1", dest)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [localhost:{server.port}/cli/app]"
    assert sum(line.endswith(": Pushed") for line in lines) == 3
    size = len(Store(settings.root).manifest_bytes(image))
    assert lines[-1] == f"v1: digest: {image.digest} size: {size}"
    second = cellbox("push", "app:1", dest)
    assert sum(line.endswith(": Layer already exists") for line in second.stdout.splitlines()) == 3
    assert cellbox("push", "-q", "app:1", dest).stdout == image.digest + "\n"
    missing = cellbox("push", "nosuch:1", dest)
    assert missing.returncode == 1 and "not in the store" in missing.stderr


def test_a_blob_missing_from_the_store_is_a_clear_error(settings: Settings, image: Image,
                                                         server: RegistryServer) -> None:
    Store(settings.root).blob_path(image.layers[-1].digest).unlink()
    with pytest.raises(StoreError, match="is not in the store"):
        push("app:1", f"127.0.0.1:{server.port}/x/y")


def test_login_push_logout_with_basic_auth(settings: Settings, image: Image,
                                           tmp_path: Path) -> None:
    with RegistryServer(tmp_path / "private", htpasswd={USER: PASSWORD},
                        extra_config=ACCESS_LOG) as server:
        host = f"localhost:{server.port}"
        with pytest.raises(AuthError, match="cellbox login"):
            push("app:1", f"{host}/{USER}/app:1")
        config = Path(settings.docker_config) / "config.json"
        config.parent.mkdir()
        config.write_text(json.dumps({"auths": {"other.example": {"auth": "eDp5"}},
                                      "detachKeys": "ctrl-q"}))
        wrong = cellbox("login", "-u", USER, "--password-stdin", host, input="wrong\n")
        assert wrong.returncode == 1 and "refused" in wrong.stderr
        assert host not in json.loads(config.read_text())["auths"]  # nothing written

        good = cellbox("login", "-u", USER, "--password-stdin", host, input=PASSWORD + "\n")
        assert good.returncode == 0, good.stderr
        assert good.stdout.endswith("Login Succeeded\n")
        saved = json.loads(config.read_text())
        assert saved["detachKeys"] == "ctrl-q" and "other.example" in saved["auths"]
        token = base64.b64decode(saved["auths"][host]["auth"]).decode()
        assert token == f"{USER}:{PASSWORD}"
        assert config.stat().st_mode & 0o777 == 0o600

        result = cellbox("push", "app:1", f"{host}/{USER}/app:1")
        assert result.returncode == 0, result.stderr
        creds = ["--creds", f"{USER}:{PASSWORD}"]
        assert skopeo_digest(f"{host}/{USER}/app:1", *creds) == image.digest

        out = cellbox("logout", host)
        assert out.stdout == f"Removing login credentials for {host}\n"
        saved = json.loads(config.read_text())
        assert host not in saved["auths"] and saved["detachKeys"] == "ctrl-q"
        assert cellbox("logout", host).stdout == f"Not logged in to {host}\n"
        with pytest.raises(AuthError):
            push("app:1", f"{host}/{USER}/app:1")


def test_push_with_bearer_tokens(settings: Settings, image: Image, tmp_path: Path) -> None:
    with TokenServer(tmp_path / "tokens", users={USER: PASSWORD}) as tokens, RegistryServer(
        tmp_path / "token-registry", extra_config={"auth": tokens.registry_auth()}
    ) as server:
        host = f"127.0.0.1:{server.port}"
        login = cellbox("login", "-u", USER, "--password-stdin", host, input=PASSWORD)
        assert login.returncode == 0, login.stderr
        result = push("app:1", f"{host}/{USER}/app:1")
        assert len(result.uploaded) == 3
        pushes = [r for r in tokens.requests if any(s.endswith(":pull,push") for s in r.scopes)]
        assert pushes and all(r.account == USER and r.status == 200 for r in pushes)
        assert f"repository:{USER}/app:pull,push" in pushes[0].scopes
