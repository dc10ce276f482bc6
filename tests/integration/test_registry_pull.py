"""RegistryClient against a real docker-registry serving real images (the `registry` fixture).

Everything talks to 127.0.0.1 only: docker.io references go to the session registry as a
mirror, never to the internet.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cellbox.runtime import mediatypes as mt
from cellbox.runtime.errors import ImageNotFound, PlatformNotFound, RegistryUnavailable
from cellbox.runtime.manifest import Platform
from cellbox.runtime.reference import Reference
from cellbox.runtime.registry import RegistryClient, ResolvedManifest
from cellbox.runtime.settings import Settings

from tests.support import images
from tests.support.registry import RegistryServer, free_port


def settings_for(tmp_path: Path, *mirrors: str) -> Settings:
    return Settings(root=tmp_path / "root", run=tmp_path / "run",
                    docker_config=tmp_path / "docker", registry_mirrors=mirrors)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[RegistryClient]:
    with RegistryClient(settings_for(tmp_path)) as c:
        yield c


def ref_on(registry: RegistryServer, name: str) -> Reference:
    return Reference.parse(f"{registry.host}/{name}")


def check_blobs(client: RegistryClient, ref: Reference, resolved: ResolvedManifest) -> None:
    for desc in (resolved.config, *resolved.layers):
        hasher = hashlib.sha256()
        size = 0
        for chunk in client.iter_blob(ref, desc.digest, desc.size):
            hasher.update(chunk)
            size += len(chunk)
        assert (f"sha256:{hasher.hexdigest()}", size) == (desc.digest, desc.size)


@pytest.mark.parametrize("name", ["library/busybox:latest", "library/debian:bookworm"])
def test_resolve_and_stream_real_images(
    registry: RegistryServer, client: RegistryClient, name: str
) -> None:
    ref = ref_on(registry, name)
    resolved = client.get_manifest(ref)
    assert resolved.source == registry.url
    assert resolved.media_type == mt.OCI_MANIFEST
    assert resolved.digest == "sha256:" + hashlib.sha256(resolved.raw).hexdigest()
    assert client.head_manifest(ref) == resolved.digest
    config = json.loads(client.get_blob_bytes(ref, resolved.config.digest, resolved.config.size))
    assert config["os"] == "linux"
    assert len(config["rootfs"]["diff_ids"]) == len(resolved.layers) >= 1
    check_blobs(client, ref, resolved)
    # the same manifest by digest
    assert client.get_manifest(ref.with_digest(resolved.digest)).raw == resolved.raw


def test_docker_io_through_a_mirror(registry: RegistryServer, tmp_path: Path) -> None:
    with RegistryClient(settings_for(tmp_path, registry.url)) as c:
        ref = Reference.parse("busybox")
        resolved = c.get_manifest(ref)
        assert resolved.source == registry.url
        check_blobs(c, ref, resolved)


def test_a_dead_mirror_is_skipped_for_the_next(registry: RegistryServer, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with RegistryClient(settings_for(tmp_path, dead, registry.url)) as c:
        assert c.get_manifest(Reference.parse("debian:bookworm")).source == registry.url


def test_parallel_downloads_from_threads(
    registry: RegistryServer, client: RegistryClient, tmp_path: Path
) -> None:
    jobs: list[tuple[Reference, str, int]] = []
    for name in ("library/busybox:latest", "library/debian:bookworm",
                 "library/hello-world:latest"):
        ref = ref_on(registry, name)
        resolved = client.get_manifest(ref)
        jobs += [(ref, d.digest, d.size) for d in (resolved.config, *resolved.layers)]

    def fetch(numbered: tuple[int, tuple[Reference, str, int]]) -> bool:
        n, (ref, digest, size) = numbered
        dest = tmp_path / f"{n}-{digest.replace(':', '-')}"
        client.fetch_blob(ref, digest, size, dest)
        return "sha256:" + hashlib.sha256(dest.read_bytes()).hexdigest() == digest

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(fetch, enumerate(jobs * 2)))


def test_unknown_repository_and_tag(registry: RegistryServer, client: RegistryClient) -> None:
    with pytest.raises(ImageNotFound) as info:
        client.get_manifest(ref_on(registry, "library/nosuchimage"))
    assert f"{registry.host}/library/nosuchimage:latest not found on {registry.host}" in str(
        info.value)
    assert "MANIFEST_UNKNOWN" in str(info.value)  # distribution 2.8 says so for a repo too
    with pytest.raises(ImageNotFound, match="MANIFEST_UNKNOWN"):
        client.get_manifest(ref_on(registry, "library/busybox:nosuchtag"))
    with pytest.raises(ImageNotFound):
        client.head_manifest(ref_on(registry, "library/busybox:nosuchtag"))
    with pytest.raises(ImageNotFound, match="BLOB_UNKNOWN"):
        list(client.iter_blob(ref_on(registry, "library/busybox"), "sha256:" + "0" * 64, 1))


def test_registry_down(tmp_path: Path, client: RegistryClient) -> None:
    server = RegistryServer(tmp_path / "stopped").start()
    server.stop()
    with pytest.raises(RegistryUnavailable) as info:
        client.get_manifest(Reference.parse(f"{server.host}/library/busybox"))
    message = str(info.value)
    assert f"cannot reach {server.host} at http://{server.host}" in message
    assert "refused" in message.lower()


# ----------------------------------------------------------------- multi-arch


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def multiarch_layout(out: Path) -> Path:
    """The busybox layout plus an index over amd64/arm64/arm/v7 manifests and an attestation.

    The manifests share busybox's layer; only their configs' architecture differs, which is
    all that selection looks at.
    """
    shutil.copytree(images.layout("busybox"), out)
    blobs = out / "blobs" / "sha256"
    top = json.loads((out / "index.json").read_text())["manifests"][0]
    manifest = json.loads((blobs / top["digest"].split(":")[1]).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())
    entries = []
    for arch, variant in (("amd64", None), ("arm64", "v8"), ("arm", "v7")):
        cfg = {**config, "architecture": arch, **({"variant": variant} if variant else {})}
        child = {**manifest, "config": {**manifest["config"],
                                        **_blob(out, json.dumps(cfg).encode())}}
        plat = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
        entries.append({"mediaType": mt.OCI_MANIFEST,
                        **_blob(out, json.dumps(child).encode()), "platform": plat})
    statement = _blob(out, b'{"_type": "https://in-toto.io/Statement/v0.1"}')
    attestation = {
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, **_blob(out, b"{}")},
        "layers": [{"mediaType": "application/vnd.in-toto+json", **statement}],
    }
    entries.insert(0, {
        "mediaType": mt.OCI_MANIFEST, **_blob(out, json.dumps(attestation).encode()),
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": entries[0]["digest"]},
    })
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    desc = {"mediaType": mt.OCI_INDEX, **_blob(out, json.dumps(index).encode()),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}}
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return out


@pytest.fixture(scope="module")
def multiarch(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    layout = multiarch_layout(tmp_path_factory.mktemp("multiarch") / "layout")
    dest = f"{registry.host}/cellbox/multi:latest"
    # every manifest of the index (tests.support.registry.skopeo_push copies one platform)
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false",
         f"oci:{layout}:multi", f"docker://{dest}"],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return Reference.parse(dest)


@pytest.mark.parametrize(
    ("wanted", "arch"),
    [("linux/arm64", "arm64"), ("linux/aarch64", "arm64"), ("linux/amd64", "amd64"),
     ("linux/arm/v7", "arm"), ("linux/armhf", "arm"), ("linux/arm/v8", "arm")],
)
def test_platform_selection_on_a_real_index(
    multiarch: Reference, client: RegistryClient, wanted: str, arch: str
) -> None:
    resolved = client.get_manifest(multiarch, platform=wanted)
    assert resolved.index_digest == client.head_manifest(multiarch)
    assert resolved.index_digest != resolved.digest
    config = json.loads(client.get_blob_bytes(multiarch, resolved.config.digest,
                                              resolved.config.size))
    assert config["architecture"] == arch
    check_blobs(client, multiarch, resolved)


def test_default_platform_is_this_machine(multiarch: Reference, client: RegistryClient) -> None:
    resolved = client.get_manifest(multiarch)
    config = json.loads(client.get_blob_bytes(multiarch, resolved.config.digest,
                                              resolved.config.size))
    assert config["architecture"] == Platform.of("linux", platform.machine()).architecture


def test_platform_not_on_offer(multiarch: Reference, client: RegistryClient) -> None:
    with pytest.raises(PlatformNotFound) as info:
        client.get_manifest(multiarch, platform="linux/s390x")
    assert "has no image for linux/s390x" in str(info.value)
    assert "it offers linux/amd64, linux/arm/v7, linux/arm64;" in str(info.value)
