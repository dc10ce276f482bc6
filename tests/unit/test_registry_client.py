"""RegistryClient against an in-memory registry (httpx.MockTransport): no network.

The real registry is exercised in tests/integration/test_registry_*.py; these tests cover
what a real one does not do on demand: dropped connections, 429s, redirects to a CDN,
lying manifests and blobs, dead mirrors.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cellbox.runtime import mediatypes as mt
from cellbox.runtime.errors import (
    AuthError,
    BlobError,
    ConfigError,
    ImageNotFound,
    ManifestError,
    PlatformNotFound,
    RateLimited,
    RegistryUnavailable,
)
from cellbox.runtime.reference import Reference
from cellbox.runtime.registry import RegistryClient, compute_digest
from cellbox.runtime.settings import Settings

Handler = Callable[[httpx.Request], httpx.Response | None]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class CutStream(httpx.SyncByteStream):
    """A body that breaks off after ``cut`` bytes, like a dropped connection."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut = data, cut

    def __iter__(self) -> Iterator[bytes]:
        yield self.data[: self.cut]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


class Body(httpx.SyncByteStream):
    """A body that arrives as a stream, the way a real transport delivers one."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data


def blob_response(status: int, data: bytes, headers: dict[str, str] | None = None
                  ) -> httpx.Response:
    headers = {"Content-Length": str(len(data)), **(headers or {})}
    return httpx.Response(status, headers=headers, stream=Body(data))


class FakeRegistry:
    """Enough of the distribution API, in memory, for one or more hosts."""

    def __init__(self, token: str | None = None) -> None:
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.log: list[tuple[str, str, str | None, str | None]] = []  # method, url, auth, range
        self.before: list[Handler] = []  # hooks that may answer first
        self.token = token
        self.uploads: dict[str, bytearray] = {}
        self.down: set[str] = set()  # hosts that refuse connections
        self.empty: set[str] = set()  # hosts that have nothing (404 everything)

    # ------------------------------------------------------------- content

    def add_blob(self, data: bytes) -> dict[str, Any]:
        self.blobs[sha(data)] = data
        return {"mediaType": mt.OCI_LAYER_GZIP, "digest": sha(data), "size": len(data)}

    def add_image(
        self, repo: str, tag: str | None, *, arch: str = "amd64", layer: bytes = b"layer",
        media_type: str = mt.OCI_MANIFEST,
    ) -> tuple[str, bytes]:
        config = json.dumps({"architecture": arch, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        doc = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {**self.add_blob(config), "mediaType": mt.OCI_CONFIG},
            "layers": [self.add_blob(layer)],
        }
        return self.put(repo, tag, json.dumps(doc).encode(), media_type)

    def add_index(
        self, repo: str, tag: str, entries: list[tuple[str, bytes, str | None]],
        media_type: str = mt.OCI_INDEX,
    ) -> tuple[str, bytes]:
        manifests = []
        for entry_type, raw, platform in entries:
            item: dict[str, Any] = {"mediaType": entry_type, "digest": sha(raw), "size": len(raw)}
            if platform:
                os_name, arch = platform.split("/")[:2]
                item["platform"] = {"os": os_name, "architecture": arch}
            manifests.append(item)
        doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
        return self.put(repo, tag, json.dumps(doc).encode(), media_type)

    def put(self, repo: str, tag: str | None, raw: bytes, content_type: str) -> tuple[str, bytes]:
        self.manifests[(repo, sha(raw))] = (raw, content_type)
        if tag:
            self.manifests[(repo, tag)] = (raw, content_type)
        return sha(raw), raw

    # ------------------------------------------------------------- protocol

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.log.append((request.method, str(request.url), request.headers.get("authorization"),
                         request.headers.get("range")))
        if host in self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        for hook in self.before:
            if (answer := hook(request)) is not None:
                return answer
        if host == "auth.example":
            return httpx.Response(200, json={"token": self.token, "expires_in": 300})
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return httpx.Response(401, headers={"WWW-Authenticate": (
                'Bearer realm="https://auth.example/token",service="fake"'
            )})
        if host in self.empty:
            return self.error(404, "NAME_UNKNOWN", "repository name not known to registry")
        path = request.url.path
        if m := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path):
            return self.manifest(request, m.group(1), m.group(2))
        if m := re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]+)", path):
            return self.blob(request, m.group(2))
        if m := re.fullmatch(r"/v2/(.+)/blobs/uploads/(.*)", path):
            return self.upload(request, m.group(1), m.group(2))
        return self.error(404, "UNSUPPORTED", "no such route")

    @staticmethod
    def error(status: int, code: str, message: str) -> httpx.Response:
        return httpx.Response(status, json={"errors": [{"code": code, "message": message}]})

    def manifest(self, request: httpx.Request, repo: str, ref: str) -> httpx.Response:
        if request.method == "PUT":
            raw = request.content
            self.put(repo, ref if ":" not in ref else None, raw,
                     request.headers["content-type"])
            return httpx.Response(201, headers={"Docker-Content-Digest": sha(raw)})
        if (repo, ref) not in self.manifests:
            return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        raw, content_type = self.manifests[(repo, ref)]
        headers = {"Content-Type": content_type, "Docker-Content-Digest": sha(raw)}
        return httpx.Response(200, headers=headers,
                              content=b"" if request.method == "HEAD" else raw)

    def blob(self, request: httpx.Request, digest: str) -> httpx.Response:
        if digest not in self.blobs:
            return self.error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        data = self.blobs[digest]
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Length": str(len(data))})
        if rng := request.headers.get("range"):
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                return httpx.Response(416)
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return blob_response(206, data[start:], headers)
        return blob_response(200, data)

    def upload(self, request: httpx.Request, repo: str, session: str) -> httpx.Response:
        if request.method == "POST":
            if (mount := request.url.params.get("mount")) and mount in self.blobs:
                return httpx.Response(201)
            sid = f"u{len(self.uploads)}"
            self.uploads[sid] = bytearray()
            location = f"/v2/{repo}/blobs/uploads/{sid}?_state=x"
            return httpx.Response(202, headers={"Location": location})
        if request.method == "DELETE":
            self.uploads.pop(session, None)
            return httpx.Response(204)
        buffer = self.uploads[session]
        if request.method == "PATCH":
            start = int(request.headers["content-range"].split("-")[0])
            assert start == len(buffer)
            buffer += request.content
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{session}"})
        assert request.method == "PUT"
        buffer += request.content
        digest = request.url.params["digest"]
        if sha(bytes(buffer)) != digest:
            return self.error(400, "DIGEST_INVALID", "provided digest did not match")
        self.blobs[digest] = bytes(buffer)
        return httpx.Response(201, headers={"Docker-Content-Digest": digest})


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(root=tmp_path / "root", run=tmp_path / "run",
                    docker_config=tmp_path / "docker")


Sleeps = list[float]


@pytest.fixture
def sleeps() -> Sleeps:
    return []


def make_client(
    fake: FakeRegistry, settings: Settings, sleeps: Sleeps, **kw: Any
) -> RegistryClient:
    return RegistryClient(settings, transport=httpx.MockTransport(fake), sleep=sleeps.append, **kw)


@pytest.fixture
def client(fake: FakeRegistry, settings: Settings, sleeps: Sleeps) -> Iterator[RegistryClient]:
    with make_client(fake, settings, sleeps) as c:
        yield c


REF = Reference.parse("reg.example/team/app:1.0")

# ----------------------------------------------------------------- manifests


def test_get_manifest_of_a_single_image(fake: FakeRegistry, client: RegistryClient) -> None:
    digest, raw = fake.add_image("team/app", "1.0")
    resolved = client.get_manifest(REF)
    assert resolved.reference == REF
    assert resolved.source == "https://reg.example"
    assert resolved.digest == digest and resolved.raw == raw
    assert resolved.index_digest is None
    assert resolved.media_type == mt.OCI_MANIFEST
    assert resolved.manifest == json.loads(raw)
    assert resolved.config.media_type == mt.OCI_CONFIG
    assert [layer.digest for layer in resolved.layers] == [sha(b"layer")]
    assert client.head_manifest(REF) == digest


def test_manifest_requests_accept_every_type(fake: FakeRegistry, client: RegistryClient) -> None:
    accepts: list[str] = []
    fake.before.append(lambda r: accepts.append(r.headers.get("accept", "")) or None)
    fake.add_image("team/app", "1.0")
    client.get_manifest(REF)
    for media_type in (mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST):
        assert media_type in accepts[0]
    assert mt.DOCKER_SCHEMA1 not in accepts[0] and mt.DOCKER_SCHEMA1_SIGNED not in accepts[0]


@pytest.mark.parametrize("list_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_get_manifest_through_an_index(
    fake: FakeRegistry, client: RegistryClient, list_type: str
) -> None:
    amd_digest, amd = fake.add_image("team/app", None, arch="amd64", layer=b"amd")
    arm_digest, arm = fake.add_image("team/app", None, arch="arm64", layer=b"arm")
    index_digest, _ = fake.add_index("team/app", "1.0", [
        (mt.OCI_MANIFEST, amd, "linux/amd64"), (mt.OCI_MANIFEST, arm, "linux/arm64"),
    ], list_type)
    arm_resolved = client.get_manifest(REF, platform="linux/arm64/v8")
    assert (arm_resolved.index_digest, arm_resolved.digest) == (index_digest, arm_digest)
    assert arm_resolved.layers[0].digest == sha(b"arm")
    amd_resolved = client.get_manifest(REF, platform="linux/x86_64")
    assert amd_resolved.digest == amd_digest
    assert client.head_manifest(REF) == index_digest
    with pytest.raises(PlatformNotFound, match=r"offers linux/amd64, linux/arm64"):
        client.get_manifest(REF, platform="linux/s390x")


def test_nested_index(fake: FakeRegistry, client: RegistryClient) -> None:
    digest, arm = fake.add_image("team/app", None, arch="arm64")
    _, inner = fake.add_index("team/app", "inner", [(mt.OCI_MANIFEST, arm, "linux/arm64")])
    outer, _ = fake.add_index("team/app", "1.0", [(mt.OCI_INDEX, inner, None)])
    resolved = client.get_manifest(REF, platform="linux/arm64")
    assert resolved.digest == digest
    assert resolved.index_digest == outer


def test_pinned_digest_is_fetched_and_checked(fake: FakeRegistry, client: RegistryClient) -> None:
    digest, _ = fake.add_image("team/app", "1.0")
    resolved = client.get_manifest(REF.with_digest(digest))
    assert resolved.digest == digest
    assert any(url.endswith(f"/manifests/{digest}") for _, url, _, _ in fake.log)


def replace_body(fake: FakeRegistry, path_end: str, body: bytes,
                 headers: dict[str, str] | None = None) -> None:
    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith(path_end):
            return httpx.Response(200, content=body, headers=headers or {})
        return None

    fake.before.append(hook)


def test_digest_mismatch_for_a_pinned_reference(fake: FakeRegistry, client: RegistryClient) -> None:
    digest, raw = fake.add_image("team/app", "1.0")
    tampered = raw.replace(b'"layers"', b' "layers"')
    replace_body(fake, digest, tampered, {"Content-Type": mt.OCI_MANIFEST})
    with pytest.raises(ManifestError, match=f"not the {digest} asked for"):
        client.get_manifest(REF.with_digest(digest))


def test_docker_content_digest_mismatch(fake: FakeRegistry, client: RegistryClient) -> None:
    _, raw = fake.add_image("team/app", "1.0")
    replace_body(fake, "/1.0", raw, {"Content-Type": mt.OCI_MANIFEST,
                                     "Docker-Content-Digest": "sha256:" + "0" * 64})
    with pytest.raises(ManifestError, match=r"does not match the Docker-Content-Digest"):
        client.get_manifest(REF)


def test_index_entry_that_lies_about_its_child(fake: FakeRegistry, client: RegistryClient) -> None:
    _, amd = fake.add_image("team/app", None)
    fake.add_index("team/app", "1.0", [(mt.OCI_MANIFEST, amd, "linux/amd64")])
    replace_body(fake, sha(amd), amd + b" ", {"Content-Type": mt.OCI_MANIFEST})
    with pytest.raises(ManifestError, match=r"asked for"):
        client.get_manifest(REF, platform="linux/amd64")


def test_index_entry_with_the_wrong_media_type(fake: FakeRegistry, client: RegistryClient) -> None:
    _, amd = fake.add_image("team/app", None)
    fake.add_index("team/app", "1.0", [(mt.DOCKER_MANIFEST, amd, "linux/amd64")])
    with pytest.raises(ManifestError, match=r"lists .* as application/vnd.docker"):
        client.get_manifest(REF, platform="linux/amd64")


def test_schema1_is_refused(fake: FakeRegistry, client: RegistryClient) -> None:
    body = json.dumps({"schemaVersion": 1, "name": "team/app", "fsLayers": []}).encode()
    fake.put("team/app", "1.0", body, mt.DOCKER_SCHEMA1_SIGNED)
    with pytest.raises(ManifestError, match=r"schema 1"):
        client.get_manifest(REF)


def test_contradicting_media_type_is_refused(fake: FakeRegistry, client: RegistryClient) -> None:
    _, raw = fake.add_image("team/app", None)
    fake.put("team/app", "1.0", raw, mt.DOCKER_MANIFEST)
    with pytest.raises(ManifestError, match=r"Content-Type .* but the manifest says"):
        client.get_manifest(REF)


def test_oversize_manifest_is_refused_unread(fake: FakeRegistry, client: RegistryClient) -> None:
    served: list[int] = []

    def big(request: httpx.Request) -> httpx.Response | None:
        def body() -> Iterator[bytes]:
            for _ in range(64):
                served.append(1)
                yield b" " * (1 << 20)

        return httpx.Response(200, content=body(), headers={"Content-Type": mt.OCI_MANIFEST})

    fake.before.append(big)
    with pytest.raises(ManifestError, match=r"over the 4194304 byte cap"):
        client.get_manifest(REF)
    assert len(served) <= 5  # stopped reading right after the cap

    fake.before[:] = [lambda r: httpx.Response(
        200, headers={"Content-Length": str(5 << 20), "Content-Type": mt.OCI_MANIFEST},
        content=b" " * (5 << 20))]
    with pytest.raises(ManifestError, match=r"over the 4194304 byte cap"):
        client.get_manifest(REF)


def test_not_an_image_is_refused(fake: FakeRegistry, client: RegistryClient) -> None:
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                      "digest": sha(b"c"), "size": 1}, "layers": []}
    fake.put("team/app", "1.0", json.dumps(doc).encode(), mt.OCI_MANIFEST)
    with pytest.raises(ManifestError, match=r"not a container image"):
        client.get_manifest(REF)


# -------------------------------------------------------------------- errors


def test_unknown_image(fake: FakeRegistry, client: RegistryClient) -> None:
    with pytest.raises(ImageNotFound) as info:
        client.get_manifest(REF)
    message = str(info.value)
    assert "reg.example/team/app:1.0 not found on reg.example" in message
    assert "MANIFEST_UNKNOWN" in message
    assert "`cellbox login reg.example`" in message
    with pytest.raises(ImageNotFound):
        client.head_manifest(REF)


def test_401_without_credentials(fake: FakeRegistry, client: RegistryClient) -> None:
    fake.before.append(lambda r: httpx.Response(401, json={"errors": [
        {"code": "UNAUTHORIZED", "message": "authentication required"}]}))
    with pytest.raises(AuthError) as info:
        client.get_manifest(REF)
    assert "reg.example wants credentials for reg.example/team/app:1.0" in str(info.value)
    assert "cellbox login reg.example" in str(info.value)


def test_401_with_refused_credentials(
    fake: FakeRegistry, settings: Settings, sleeps: Sleeps
) -> None:
    Path(settings.docker_config).mkdir()
    (Path(settings.docker_config) / "config.json").write_text(json.dumps(
        {"auths": {"reg.example": {"username": "ann", "password": "pw"}}}))
    fake.before.append(lambda r: httpx.Response(401, headers={"WWW-Authenticate": "Basic"}))
    with make_client(fake, settings, sleeps) as c, pytest.raises(AuthError) as info:
        c.get_manifest(REF)
    assert "refused the credentials of 'ann'" in str(info.value)
    assert "pw" not in str(info.value).replace("app", "")


def test_403_is_an_auth_error(fake: FakeRegistry, client: RegistryClient) -> None:
    fake.before.append(lambda r: FakeRegistry.error(403, "DENIED", "requested access denied"))
    with pytest.raises(AuthError, match=r"denied access .*DENIED"):
        client.get_manifest(REF)


def test_connection_refused(fake: FakeRegistry, client: RegistryClient, sleeps: Sleeps) -> None:
    fake.down.add("reg.example")
    with pytest.raises(RegistryUnavailable) as info:
        client.get_manifest(REF)
    assert "cannot reach reg.example at https://reg.example" in str(info.value)
    assert "Connection refused" in str(info.value)
    assert sleeps == []  # no retries on a refused connection


def test_tls_failure_says_what_to_do(fake: FakeRegistry, client: RegistryClient) -> None:
    def tls(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed",
            request=request)

    fake.before.append(tls)
    with pytest.raises(RegistryUnavailable, match=r"TLS with reg.example .* CA certificate"):
        client.get_manifest(REF)


# ------------------------------------------------------------------- retries


def test_429_with_retry_after_then_success(
    fake: FakeRegistry, client: RegistryClient, sleeps: Sleeps
) -> None:
    fake.add_image("team/app", "1.0")
    answers = [httpx.Response(429, headers={"Retry-After": "7"}),
               httpx.Response(503, headers={"Retry-After": email.utils.formatdate(
                   time.time() + 30, usegmt=True)})]
    fake.before.append(lambda r: answers.pop(0) if answers else None)
    client.get_manifest(REF)
    assert sleeps[0] == 7.0
    assert 28 <= sleeps[1] <= 30


def test_5xx_is_retried_with_jittered_exponential_backoff(
    fake: FakeRegistry, client: RegistryClient, sleeps: Sleeps
) -> None:
    fake.add_image("team/app", "1.0")
    answers = [httpx.Response(502), httpx.Response(500), httpx.Response(504),
               httpx.Response(503)]
    fake.before.append(lambda r: answers.pop(0) if answers else None)
    client.get_manifest(REF)
    assert len(sleeps) == 4
    for attempt, delay in enumerate(sleeps):
        ceiling = 0.5 * 2**attempt
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_is_capped(fake: FakeRegistry, settings: Settings, sleeps: Sleeps) -> None:
    fake.before.append(lambda r: httpx.Response(500))
    with make_client(fake, settings, sleeps, retries=8, max_backoff=3.0) as c, pytest.raises(
        RegistryUnavailable, match=r"HTTP 500 for reg.example/team/app:1.0 \(9 tries\)"
    ):
        c.get_manifest(REF)
    assert len(sleeps) == 8 and max(sleeps) <= 3.0


def test_429_forever_is_rate_limited(
    fake: FakeRegistry, client: RegistryClient, sleeps: Sleeps
) -> None:
    fake.before.append(lambda r: httpx.Response(429, headers={"Retry-After": "1"}))
    with pytest.raises(RateLimited) as info:
        client.get_manifest(REF)
    assert sleeps == [1.0] * 5
    assert "reg.example is rate-limiting" in str(info.value)
    assert "registry mirror" in str(info.value)


def test_a_too_long_retry_after_fails_at_once(
    fake: FakeRegistry, client: RegistryClient, sleeps: Sleeps
) -> None:
    fake.before.append(lambda r: httpx.Response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimited, match=r"asks to wait 3600 s"):
        client.get_manifest(REF)
    assert sleeps == []


# --------------------------------------------------------------------- blobs


def blob_ref() -> Reference:
    return REF


def test_iter_blob_streams_and_verifies(fake: FakeRegistry, client: RegistryClient) -> None:
    data = bytes(range(256)) * 40000
    desc = fake.add_blob(data)
    assert b"".join(client.iter_blob(REF, desc["digest"], len(data))) == data
    assert client.get_blob_bytes(REF, desc["digest"], len(data), max_size=len(data)) == data


def test_blob_with_the_wrong_digest(fake: FakeRegistry, client: RegistryClient) -> None:
    desc = fake.add_blob(b"good data")
    fake.blobs[desc["digest"]] = b"evil data"
    with pytest.raises(BlobError, match=r"has digest sha256:.*corrupt or was tampered"):
        list(client.iter_blob(REF, desc["digest"], 9))


def test_blob_shorter_than_promised(fake: FakeRegistry, client: RegistryClient) -> None:
    desc = fake.add_blob(b"0123456789")
    with pytest.raises(BlobError, match=r"is 10 bytes; its descriptor says 20"):
        list(client.iter_blob(REF, desc["digest"], 20))

    def chunked(request: httpx.Request) -> httpx.Response:  # no Content-Length to judge by
        return httpx.Response(200, content=iter([b"01234", b"56789"]))

    fake.before.append(chunked)
    with pytest.raises(BlobError, match=r"ended after 10 of 20 bytes"):
        list(client.iter_blob(REF, desc["digest"], 20))


def test_blob_longer_than_promised_stops_at_once(
    fake: FakeRegistry, client: RegistryClient
) -> None:
    desc = fake.add_blob(b"x" * 100)
    sent: list[int] = []

    def endless(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            while True:
                sent.append(1)
                yield b"x" * 1000

        return httpx.Response(200, content=body())

    fake.before.append(endless)
    got: list[bytes] = []
    with pytest.raises(BlobError, match=r"longer than the 5000 bytes"):
        for chunk in client.iter_blob(REF, desc["digest"], 5000):
            got.append(chunk)
    assert sum(map(len, got)) <= 5000
    assert len(sent) <= 6


def test_resume_after_a_dropped_connection(
    fake: FakeRegistry, client: RegistryClient, sleeps: Sleeps
) -> None:
    data = hashlib.sha256(b"seed").digest() * 100_000
    desc = fake.add_blob(data)
    cuts = [len(data) // 2, len(data) // 2 + 1000]

    def drop(request: httpx.Request) -> httpx.Response | None:
        if not cuts:
            return None
        cut = cuts.pop(0)
        start = int((request.headers.get("range") or "bytes=0-")[6:-1])
        headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        return httpx.Response(
            206 if start else 200, headers=headers if start else {},
            stream=CutStream(data[start:], cut - start),
        )

    fake.before.append(drop)
    assert b"".join(client.iter_blob(REF, desc["digest"], len(data))) == data
    ranges = [rng for _, url, _, rng in fake.log if "/blobs/" in url]
    assert ranges == [None, f"bytes={len(data) // 2}-", f"bytes={len(data) // 2 + 1000}-"]
    assert len(sleeps) == 2


def test_resume_when_the_server_ignores_range(
    fake: FakeRegistry, client: RegistryClient
) -> None:
    data = b"abcdefghij" * 1000
    desc = fake.add_blob(data)
    calls = [0]

    def full_each_time(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        if calls[0] == 1:
            return httpx.Response(200, stream=CutStream(data, 4321))
        return blob_response(200, data)  # Range ignored: the whole blob again

    fake.before.append(full_each_time)
    assert b"".join(client.iter_blob(REF, desc["digest"], len(data))) == data


def test_a_connection_that_keeps_dropping_gives_up(
    fake: FakeRegistry, client: RegistryClient, sleeps: Sleeps
) -> None:
    data = b"z" * 1000
    desc = fake.add_blob(data)
    fake.before.append(lambda r: httpx.Response(200, stream=CutStream(data, 0)))
    with pytest.raises(RegistryUnavailable, match=r"broke off 5 times in a row at byte 0"):
        list(client.iter_blob(REF, desc["digest"], len(data)))


def test_blob_redirect_to_a_cdn_drops_authorization(settings: Settings, sleeps: Sleeps) -> None:
    fake = FakeRegistry(token="T0K")
    data = b"layer bytes" * 1000
    desc = fake.add_blob(data)

    def cdn(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "reg.example" and "/blobs/" in request.url.path and (
            request.headers.get("authorization") == "Bearer T0K"
        ):
            return httpx.Response(307, headers={
                "Location": f"https://cdn.example/blobs/{desc['digest']}?sig=abc"})
        if request.url.host == "cdn.example":
            return blob_response(200, data)
        return None

    fake.before.append(cdn)
    with make_client(fake, settings, sleeps) as c:
        assert b"".join(c.iter_blob(REF, desc["digest"], len(data))) == data
    to_registry = [auth for _, url, auth, _ in fake.log if "reg.example" in url]
    to_cdn = [auth for _, url, auth, _ in fake.log if "cdn.example" in url]
    assert to_registry[-1] == "Bearer T0K"
    assert to_cdn == [None]


def test_a_challenge_from_a_redirect_target_is_not_answered(
    settings: Settings, sleeps: Sleeps
) -> None:
    Path(settings.docker_config).mkdir()
    (Path(settings.docker_config) / "config.json").write_text(json.dumps(
        {"auths": {"reg.example": {"username": "ann", "password": "secret"}}}))
    fake = FakeRegistry(token="T0K")
    desc = fake.add_blob(b"data")

    def cdn(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "reg.example" and "/blobs/" in request.url.path and (
            request.headers.get("authorization") == "Bearer T0K"
        ):
            return httpx.Response(307, headers={"Location": "https://cdn.example/x"})
        if request.url.host == "cdn.example":
            return httpx.Response(401, headers={
                "WWW-Authenticate": 'Bearer realm="https://evil.example/token"'})
        return None

    fake.before.append(cdn)
    with make_client(fake, settings, sleeps) as c, pytest.raises(AuthError):
        list(c.iter_blob(REF, desc["digest"], 4))
    assert all("evil.example" not in url for _, url, _, _ in fake.log)


def test_fetch_blob_writes_the_file_and_reports_progress(
    fake: FakeRegistry, client: RegistryClient, tmp_path: Path
) -> None:
    data = b"q" * 300_000
    desc = fake.add_blob(data)
    seen: list[int] = []
    dest = tmp_path / "blob"
    client.fetch_blob(REF, desc["digest"], len(data), dest, progress=seen.append)
    assert dest.read_bytes() == data
    assert seen[-1] == len(data) and seen == sorted(seen)

    fake.blobs[desc["digest"]] = b"Q" * len(data)
    bad = tmp_path / "bad"
    with pytest.raises(BlobError):
        client.fetch_blob(REF, desc["digest"], len(data), bad)
    assert not bad.exists()  # nothing half-written is left


def test_config_over_the_cap_is_refused(fake: FakeRegistry, client: RegistryClient) -> None:
    desc = fake.add_blob(b"{}")
    with pytest.raises(BlobError, match=r"over the 16777216 byte cap"):
        client.get_blob_bytes(REF, desc["digest"], 17 << 20)


def test_bad_blob_digest_is_refused(client: RegistryClient) -> None:
    with pytest.raises(BlobError, match=r"invalid blob digest"):
        list(client.iter_blob(REF, "sha256:../../etc/passwd", 1))


# ------------------------------------------------------------------- mirrors


HUB_REF = Reference.parse("busybox")


def mirrored(tmp_path: Path, *mirrors: str) -> Settings:
    return Settings(root=tmp_path / "root", docker_config=tmp_path / "docker",
                    registry_mirrors=mirrors)


def test_mirror_serves_docker_io(fake: FakeRegistry, tmp_path: Path, sleeps: Sleeps) -> None:
    fake.add_image("library/busybox", "latest")
    fake.empty.add("registry-1.docker.io")
    settings = mirrored(tmp_path, "http://127.0.0.1:5999")
    with make_client(fake, settings, sleeps) as c:
        resolved = c.get_manifest(HUB_REF)
        assert resolved.source == "http://127.0.0.1:5999"
        layer = resolved.layers[0]
        assert b"".join(c.iter_blob(HUB_REF, layer.digest, layer.size)) == b"layer"
    hosts = {httpx.URL(url).host for _, url, _, _ in fake.log}
    assert hosts == {"127.0.0.1"}  # blobs from the endpoint that served the manifest


@pytest.mark.parametrize("failure", ["404", "down", "500"])
def test_mirror_falls_back_to_the_upstream(
    fake: FakeRegistry, tmp_path: Path, sleeps: Sleeps, failure: str
) -> None:
    fake.add_image("library/busybox", "latest")
    if failure == "404":
        fake.empty.add("127.0.0.1")
    elif failure == "down":
        fake.down.add("127.0.0.1")
    else:
        fake.before.append(
            lambda r: httpx.Response(500) if r.url.host == "127.0.0.1" else None)
    settings = mirrored(tmp_path, "http://127.0.0.1:5999", "https://mirror.example")
    fake.empty.add("mirror.example")
    with make_client(fake, settings, sleeps, retries=1) as c:
        resolved = c.get_manifest(HUB_REF)
        assert resolved.source == "https://registry-1.docker.io"
        layer = resolved.layers[0]
        list(c.iter_blob(HUB_REF, layer.digest, layer.size))
    blob_hosts = {httpx.URL(url).host for _, url, _, _ in fake.log if "/blobs/" in url}
    assert blob_hosts == {"registry-1.docker.io"}


def test_a_mirror_that_dies_after_the_manifest_gives_way_for_blobs(
    fake: FakeRegistry, tmp_path: Path, sleeps: Sleeps
) -> None:
    fake.add_image("library/busybox", "latest", layer=b"L" * 100_000)
    with make_client(fake, mirrored(tmp_path, "http://127.0.0.1:5999"), sleeps) as c:
        layer = c.get_manifest(HUB_REF).layers[0]
        cut = [True]

        def die_mid_blob(request: httpx.Request) -> httpx.Response | None:
            if request.url.host == "127.0.0.1" and "/blobs/" in request.url.path and cut:
                cut.clear()
                fake.down.add("127.0.0.1")  # the mirror goes away after 40 000 bytes
                return httpx.Response(200, stream=CutStream(b"L" * 100_000, 40_000))
            return None

        fake.before.append(die_mid_blob)
        assert b"".join(c.iter_blob(HUB_REF, layer.digest, layer.size)) == b"L" * 100_000
    blob_requests = [(httpx.URL(url).host, rng) for _, url, _, rng in fake.log
                     if "/blobs/" in url]
    assert blob_requests == [
        ("127.0.0.1", None), ("127.0.0.1", "bytes=40000-"),
        ("registry-1.docker.io", "bytes=40000-"),
    ]


def test_mirrors_are_only_for_docker_io(fake: FakeRegistry, tmp_path: Path,
                                        sleeps: Sleeps) -> None:
    fake.add_image("team/app", "1.0")
    with make_client(fake, mirrored(tmp_path, "http://127.0.0.1:5999"), sleeps) as c:
        assert c.get_manifest(REF).source == "https://reg.example"
    assert all("127.0.0.1" not in url for _, url, _, _ in fake.log)


def test_upstream_failure_is_reported_after_the_mirrors(
    fake: FakeRegistry, tmp_path: Path, sleeps: Sleeps
) -> None:
    fake.empty.update({"127.0.0.1", "registry-1.docker.io"})
    with make_client(fake, mirrored(tmp_path, "http://127.0.0.1:5999"), sleeps) as c, \
            pytest.raises(ImageNotFound, match=r"busybox:latest not found on docker.io"):
        c.get_manifest(HUB_REF)


def test_offline_a_mirrors_not_found_beats_the_upstreams_unreachable(
    fake: FakeRegistry, tmp_path: Path, sleeps: Sleeps
) -> None:
    fake.empty.add("127.0.0.1")
    fake.down.add("registry-1.docker.io")
    with make_client(fake, mirrored(tmp_path, "http://127.0.0.1:5999"), sleeps) as c, \
            pytest.raises(ImageNotFound, match=r"not found.*could not be reached"):
        c.get_manifest(HUB_REF)


# -------------------------------------------------------------- plain http


@pytest.mark.parametrize(
    ("text", "insecure", "url"),
    [
        ("reg.example/a", (), "https://reg.example/v2/a/manifests/latest"),
        ("busybox", (), "https://registry-1.docker.io/v2/library/busybox/manifests/latest"),
        ("127.0.0.1:5000/a", (), "http://127.0.0.1:5000/v2/a/manifests/latest"),
        ("localhost:5000/a", (), "http://localhost:5000/v2/a/manifests/latest"),
        ("[::1]:5000/a", (), "http://[::1]:5000/v2/a/manifests/latest"),
        ("reg.example:5000/a", ("reg.example:5000",), "http://reg.example:5000/v2/a/manifests/latest"),
        ("reg.example:5000/a", ("reg.example",), "http://reg.example:5000/v2/a/manifests/latest"),
        ("reg.example:5000/a", ("other.example",), "https://reg.example:5000/v2/a/manifests/latest"),
        ("10.1.2.3:5000/a", ("10.0.0.0/8",), "http://10.1.2.3:5000/v2/a/manifests/latest"),
        ("11.1.2.3:5000/a", ("10.0.0.0/8",), "https://11.1.2.3:5000/v2/a/manifests/latest"),
    ],
)
def test_plain_http_only_for_loopback_or_insecure(
    fake: FakeRegistry, tmp_path: Path, sleeps: Sleeps, text: str, insecure: tuple[str, ...],
    url: str,
) -> None:
    settings = Settings(root=tmp_path, docker_config=tmp_path / "d", insecure_registries=insecure)
    with make_client(fake, settings, sleeps) as c, pytest.raises(ImageNotFound):
        c.get_manifest(Reference.parse(text))
    assert fake.log[0][1] == url


def test_plain_http_mirror_must_be_loopback_or_insecure(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"uses plain http; use https, or list mirror.example"):
        RegistryClient(mirrored(tmp_path, "http://mirror.example"))
    RegistryClient(mirrored(tmp_path, "https://mirror.example", "127.0.0.1:5000")).close()
    insecure = Settings(root=tmp_path, registry_mirrors=("http://mirror.example",),
                        insecure_registries=("mirror.example",))
    RegistryClient(insecure).close()


# ---------------------------------------------------------------------- push


def test_push_primitives(fake: FakeRegistry, client: RegistryClient, tmp_path: Path) -> None:
    small, big = b"s" * 1000, bytes(range(256)) * 4000
    path = tmp_path / "big"
    path.write_bytes(big)
    assert not client.blob_exists(REF, sha(small))
    client.upload_blob(REF, sha(small), len(small), small)
    client.upload_blob(REF, sha(big), len(big), path, chunk_size=300_000)
    assert client.blob_exists(REF, sha(small)) and fake.blobs[sha(big)] == big
    patches = [rng for method, _, _, rng in fake.log if method == "PATCH"]
    assert len(patches) == 4  # 1 024 000 bytes in 300 000 byte chunks

    other = Reference.parse("reg.example/team/other:1")
    assert client.mount_blob(other, sha(small), "team/app")
    assert not client.mount_blob(other, sha(b"never uploaded"), "team/app")
    assert any(method == "DELETE" for method, _, _, _ in fake.log)  # the opened upload

    _, raw = fake.add_image("team/app", None)
    digest = client.put_manifest(REF.with_tag("2.0"), raw, mt.OCI_MANIFEST)
    assert digest == compute_digest(raw)
    assert fake.manifests[("team/app", "2.0")] == (raw, mt.OCI_MANIFEST)


def test_upload_with_the_wrong_digest_fails(fake: FakeRegistry, client: RegistryClient) -> None:
    with pytest.raises(Exception, match=r"DIGEST_INVALID"):
        client.upload_blob(REF, sha(b"other"), 4, b"data")


def test_push_asks_for_a_push_scope(settings: Settings, sleeps: Sleeps) -> None:
    fake = FakeRegistry(token="T")
    scopes: list[list[str]] = []
    fake.before.append(lambda r: scopes.append(r.url.params.get_list("scope")) or None
                       if r.url.host == "auth.example" else None)
    with make_client(fake, settings, sleeps) as c:
        c.upload_blob(REF, sha(b"x"), 1, b"x")
        c.mount_blob(Reference.parse("reg.example/team/b"), sha(b"x"), "team/app")
    assert scopes[0] == ["repository:team/app:pull,push"]
    assert scopes[1] == ["repository:team/b:pull,push", "repository:team/app:pull"]
