"""pull() against an in-memory registry (httpx.MockTransport): policies, progress, and
every failure leaving the store exactly as it was. The real registry is in
tests/integration/test_pull_*.py."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cellbox.runtime.errors import (
    AuthError,
    ImageNotFound,
    LayerError,
    RegistryUnavailable,
    UnsafeLayer,
)
from cellbox.runtime.layers import ApplyOptions
from cellbox.runtime.pull import PullEvent, pull
from cellbox.runtime.registry import RegistryClient
from cellbox.runtime.settings import Settings
from cellbox.runtime.store import Store

from tests.support.oci import File, tar_layer

REF = "registry.test/team/app:1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Body(httpx.SyncByteStream):
    """A streamed body in 64 KiB chunks, like a socket gives (content= is not a stream)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i in range(0, len(self.data), 65536):
            yield self.data[i : i + 65536]


def respond(status: int, data: bytes = b"", headers: dict[str, str] | None = None) -> (
    httpx.Response
):
    headers = {**(headers or {}), "Content-Length": str(len(data))}
    return httpx.Response(status, headers=headers, stream=Body(data))


class FakeRegistry:
    """Serves one image (a manifest, a config, gzip layers) and counts requests."""

    def __init__(self, tars: list[bytes], *, diff_ids: list[str] | None = None) -> None:
        self.blobs: dict[str, bytes] = {}
        layers = []
        for tar in tars:
            blob = gzip.compress(tar, mtime=0)
            self.blobs[digest(blob)] = blob
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": digest(blob), "size": len(blob)})
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "rootfs": {"type": "layers",
                       "diff_ids": diff_ids or [digest(t) for t in tars]},
            "history": [{"created_by": f"step {i}"} for i in range(len(tars))],
        }).encode()
        self.blobs[digest(config)] = config
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest(config), "size": len(config)},
            "layers": layers,
        }).encode()
        self.requests: Counter[str] = Counter()
        self.hook: Callable[[httpx.Request], httpx.Response | None] | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        kind = "blob" if "/blobs/" in path else "manifest" if "/manifests/" in path else "other"
        self.requests[f"{request.method} {kind}"] += 1
        if self.hook is not None and (answer := self.hook(request)) is not None:
            return answer
        if path == "/v2/":
            return httpx.Response(200, json={})
        if path.startswith("/v2/team/app/manifests/"):
            target = path.rsplit("/", 1)[1]
            if target not in ("1", digest(self.manifest)):
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            headers = {"Content-Type": OCI_MANIFEST,
                       "Docker-Content-Digest": digest(self.manifest)}
            if request.method == "HEAD":
                return httpx.Response(200, headers=headers)
            return respond(200, self.manifest, headers)
        if path.startswith("/v2/team/app/blobs/"):
            blob = self.blobs.get(path.rsplit("/", 1)[1])
            if blob is None:
                return httpx.Response(404)
            return respond(200, blob)
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})


def run_pull(fake: FakeRegistry, root: Path, **kwargs: object) -> tuple[object, list[PullEvent]]:
    settings = Settings(root=root)
    client = RegistryClient(settings, transport=httpx.MockTransport(fake.handler),
                            sleep=lambda s: None)
    events: list[PullEvent] = []
    store = Store(root, options=ApplyOptions(rootless=True))
    try:
        image = pull(REF, settings=settings, client=client, store=store,
                     progress=events.append, **kwargs)  # type: ignore[arg-type]
    finally:
        client.close()
    return image, events


def snapshot(root: Path) -> dict[str, int]:
    """Files and layer dirs of the store, not tmp/ and locks/ (invisible by design)."""
    out = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in ("tmp", "locks"):
            continue
        if not path.is_dir() or rel.parent == Path("layers"):
            out[str(rel)] = path.lstat().st_size
    return out


TARS = [tar_layer([File("base", b"b" * 1000)]), tar_layer([File("top", os.urandom(600_000))])]


def test_pull_stores_the_image_and_reports_progress(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)
    image, events = run_pull(fake, tmp_path / "root")
    assert image.reference == "registry.test/team/app:1"  # type: ignore[attr-defined]
    assert (image.layers[1].path / "top").stat().st_size == 600_000  # type: ignore[attr-defined]
    by_layer: dict[str, list[str]] = {}
    for event in events:
        by_layer.setdefault(event.layer, []).append(event.status)
    assert by_layer.pop("") == ["resolving"]
    for statuses in by_layer.values():
        assert statuses[0] == "waiting" and statuses[-1] == "done"
        assert "downloading" in statuses
    assert fake.requests["GET blob"] == 3  # config + two layers
    assert os.listdir(tmp_path / "root" / "tmp") == []


def test_missing_policy_heads_and_downloads_nothing_when_stored(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)
    run_pull(fake, tmp_path / "root")
    fake.requests.clear()
    _, events = run_pull(fake, tmp_path / "root")
    assert fake.requests == Counter({"HEAD manifest": 1})
    assert {e.status for e in events if e.layer} == {"exists"}


def test_always_policy_resolves_again_but_reuses_layers(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)
    run_pull(fake, tmp_path / "root")
    fake.requests.clear()
    run_pull(fake, tmp_path / "root", policy="always")
    assert fake.requests["GET manifest"] == 1
    assert fake.requests["GET blob"] == 0


def test_never_policy_only_looks_in_the_store(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)
    with pytest.raises(ImageNotFound, match="cellbox pull"):
        run_pull(fake, tmp_path / "root", policy="never")
    assert sum(fake.requests.values()) == 0


def test_a_stored_image_is_used_when_the_registry_is_down(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)
    first, _ = run_pull(fake, tmp_path / "root")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake.hook = down
    again, _ = run_pull(fake, tmp_path / "root")
    assert again == first


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (404, ImageNotFound, "not found"),
        (401, AuthError, "cellbox login"),
    ],
)
def test_registry_refusals_leave_the_store_unchanged(
    tmp_path: Path, status: int, error: type[Exception], message: str
) -> None:
    fake = FakeRegistry(TARS)
    fake.hook = lambda request: respond(status) if request.url.path != "/v2/" else None
    root = tmp_path / "root"
    with pytest.raises(error, match=message):
        run_pull(fake, root)
    assert snapshot(root) == {}


def test_registry_down_is_a_clear_error(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake.hook = down
    with pytest.raises(RegistryUnavailable, match=r"cannot reach registry\.test"):
        run_pull(fake, tmp_path / "root")
    assert snapshot(tmp_path / "root") == {}


def test_429_then_success(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)
    limited = Counter[str]()

    def rate_limit(request: httpx.Request) -> httpx.Response | None:
        if "/blobs/" in request.url.path and limited[request.url.path] < 2:
            limited[request.url.path] += 1
            return respond(429, b"slow down", {"Retry-After": "0"})
        return None

    fake.hook = rate_limit
    image, _ = run_pull(fake, tmp_path / "root")
    assert len(image.layers) == 2  # type: ignore[attr-defined]
    assert fake.requests["GET blob"] == 3 * 3


def test_a_config_that_lies_about_diff_ids_is_refused(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS, diff_ids=[digest(TARS[0]), "sha256:" + "0" * 64])
    root = tmp_path / "root"
    with pytest.raises(LayerError, match="diff_id"):
        run_pull(fake, root)
    assert snapshot(root) == {}
    assert os.listdir(root / "tmp") == []


def test_a_hostile_top_layer_leaves_nothing_not_even_the_good_base(tmp_path: Path) -> None:
    evil = tar_layer([File("../../../escape", b"x")])
    fake = FakeRegistry([TARS[0], evil])
    root = tmp_path / "root"
    with pytest.raises(UnsafeLayer, match=r"\.\./\.\./\.\./escape"):
        run_pull(fake, root)
    assert snapshot(root) == {}
    assert not (tmp_path / "escape").exists()


def test_a_corrupt_blob_is_refused(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)
    layer_digest = json.loads(fake.manifest)["layers"][1]["digest"]
    good = fake.blobs[layer_digest]
    fake.blobs[layer_digest] = good[:-10] + bytes(10)
    with pytest.raises(Exception, match=r"digest|corrupt|gzip"):
        run_pull(fake, tmp_path / "root")
    assert snapshot(tmp_path / "root") == {}


def test_a_pinned_digest_already_stored_needs_no_network(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)
    run_pull(fake, tmp_path / "root")
    fake.requests.clear()
    settings = Settings(root=tmp_path / "root")
    client = RegistryClient(settings, transport=httpx.MockTransport(fake.handler))
    store = Store(tmp_path / "root", options=ApplyOptions(rootless=True))
    image = pull(f"registry.test/team/app@{digest(fake.manifest)}", settings=settings,
                 client=client, store=store)
    client.close()
    assert image.digest == digest(fake.manifest)
    assert sum(fake.requests.values()) == 0


def test_compression_is_told_by_the_bytes_not_the_media_type(tmp_path: Path) -> None:
    import zstandard

    tar = tar_layer([File("z", b"zstd inside")])
    fake = FakeRegistry([tar])
    manifest = json.loads(fake.manifest)
    blob = zstandard.ZstdCompressor().compress(tar)
    fake.blobs[digest(blob)] = blob
    manifest["layers"][0].update(digest=digest(blob), size=len(blob))  # still says gzip
    fake.manifest = json.dumps(manifest).encode()
    image, _ = run_pull(fake, tmp_path / "root")
    assert (image.layers[0].path / "z").read_bytes() == b"zstd inside"  # type: ignore[attr-defined]


def test_an_image_pulled_by_digest_keeps_that_name_and_survives_prune(tmp_path: Path) -> None:
    fake = FakeRegistry(TARS)
    settings = Settings(root=tmp_path / "root")
    client = RegistryClient(settings, transport=httpx.MockTransport(fake.handler))
    store = Store(tmp_path / "root", options=ApplyOptions(rootless=True))
    pinned = f"registry.test/team/app@{digest(fake.manifest)}"
    image = pull(pinned, settings=settings, client=client, store=store)
    client.close()
    assert image.reference == pinned
    assert not store.prune().images
    assert store.get_image(pinned).digest == digest(fake.manifest)
