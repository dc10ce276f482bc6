"""Auth against real registries: htpasswd basic auth, and Bearer tokens from a token server.

The token registry is docker-registry in ``auth: token`` mode trusting the certificate of
tests/support/tokenserver.py, so the whole Docker token flow runs for real: 401 with a
challenge, a token request (anonymous, with credentials, or with a refresh token), a JWT
the registry verifies, and the retry.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cellbox.runtime import mediatypes as mt
from cellbox.runtime.auth import Credentials, TokenCache
from cellbox.runtime.errors import AuthError
from cellbox.runtime.reference import Reference
from cellbox.runtime.registry import RegistryClient
from cellbox.runtime.settings import Settings

from tests.support import images
from tests.support.registry import RegistryServer
from tests.support.tokenserver import TokenServer

USER, PASSWORD = "alice", "wonder land:pw"


def settings_for(tmp_path: Path, auths: dict[str, dict[str, str]] | None = None) -> Settings:
    docker = tmp_path / "docker"
    if auths is not None:
        docker.mkdir(parents=True, exist_ok=True)
        (docker / "config.json").write_text(json.dumps({"auths": auths}))
    return Settings(root=tmp_path / "root", run=tmp_path / "run", docker_config=docker)


def basic_entry(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def pull_all(client: RegistryClient, ref: Reference) -> str:
    resolved = client.get_manifest(ref)
    for desc in (resolved.config, *resolved.layers):
        for _ in client.iter_blob(ref, desc.digest, desc.size):
            pass
    return resolved.digest


# ------------------------------------------------------------------ htpasswd


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    directory = tmp_path_factory.mktemp("registry-basic")
    with RegistryServer(directory, htpasswd={USER: PASSWORD}) as server:
        server.push(images.layout("busybox"), "latest", "library/busybox:latest",
                    creds=f"{USER}:{PASSWORD}")
        yield server


def test_htpasswd_registry_without_credentials(
    basic_registry: RegistryServer, tmp_path: Path
) -> None:
    with RegistryClient(settings_for(tmp_path)) as c, pytest.raises(AuthError) as info:
        c.get_manifest(Reference.parse(f"{basic_registry.host}/library/busybox"))
    assert f"{basic_registry.host} wants credentials" in str(info.value)
    assert f"cellbox login {basic_registry.host}" in str(info.value)


@pytest.mark.parametrize(
    "entry",
    [basic_entry(), {"username": USER, "password": PASSWORD}],
    ids=["auth", "username-password"],
)
def test_htpasswd_registry_with_credentials(
    basic_registry: RegistryServer, tmp_path: Path, entry: dict[str, str]
) -> None:
    settings = settings_for(tmp_path, {f"http://{basic_registry.host}": entry})
    with RegistryClient(settings) as c:
        pull_all(c, Reference.parse(f"{basic_registry.host}/library/busybox"))


def test_htpasswd_registry_with_a_wrong_password(
    basic_registry: RegistryServer, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, {basic_registry.host: basic_entry(password="nope")})
    with RegistryClient(settings) as c, pytest.raises(AuthError) as info:
        c.get_manifest(Reference.parse(f"{basic_registry.host}/library/busybox"))
    assert "refused the credentials of 'alice'" in str(info.value)
    assert "nope" not in str(info.value)


def test_ping_checks_credentials(basic_registry: RegistryServer, tmp_path: Path) -> None:
    with RegistryClient(settings_for(tmp_path)) as c:
        c.ping(basic_registry.host, Credentials(USER, PASSWORD))
        with pytest.raises(AuthError, match="refused the credentials of 'alice'"):
            c.ping(f"http://{basic_registry.host}/", Credentials(USER, "wrong"))
        with pytest.raises(AuthError, match="refused anonymous access"):
            c.ping(basic_registry.host)


# --------------------------------------------------------------------- token


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    directory = tmp_path_factory.mktemp("tokens")
    with TokenServer(directory, users={USER: PASSWORD},
                     refresh_tokens={"refresh-alice": USER}) as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(
    tokens: TokenServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    directory = tmp_path_factory.mktemp("registry-token")
    with RegistryServer(directory, extra_config={"auth": tokens.registry_auth()}) as server:
        server.push(images.layout("busybox"), "latest", "library/busybox:latest",
                    creds=f"{USER}:{PASSWORD}")
        yield server


@pytest.fixture
def private(tokens: TokenServer) -> Iterator[None]:
    tokens.anonymous_pull = False
    try:
        yield
    finally:
        tokens.anonymous_pull = True


def test_anonymous_bearer_pull_and_the_token_cache(
    tokens: TokenServer, token_registry: RegistryServer, tmp_path: Path
) -> None:
    ref = Reference.parse(f"{token_registry.host}/library/busybox")
    before = len(tokens.requests)
    with RegistryClient(settings_for(tmp_path)) as c:
        digest = pull_all(c, ref)
        assert pull_all(c, ref) == digest
        assert c.head_manifest(ref) == digest
    asked = tokens.requests[before:]
    # one token for the repository, reused for the manifest, the blobs and the second pull
    assert [(r.account, r.scopes) for r in asked] == [
        (None, ("repository:library/busybox:pull",))
    ]


def test_private_repository_needs_credentials(
    tokens: TokenServer, token_registry: RegistryServer, tmp_path: Path, private: None
) -> None:
    ref = Reference.parse(f"{token_registry.host}/library/busybox")
    with RegistryClient(settings_for(tmp_path)) as c, pytest.raises(AuthError) as info:
        c.get_manifest(ref)
    assert f"{token_registry.host} wants credentials for {ref.familiar}" in str(info.value)

    before = len(tokens.requests)
    settings = settings_for(tmp_path / "creds", {token_registry.host: basic_entry()})
    with RegistryClient(settings) as c:
        pull_all(c, ref)
    assert [r.account for r in tokens.requests[before:]] == [USER]


def test_ping_a_token_registry(token_registry: RegistryServer, tmp_path: Path) -> None:
    with RegistryClient(settings_for(tmp_path)) as c:
        c.ping(token_registry.host, Credentials(USER, PASSWORD))
        c.ping(token_registry.host)  # anonymous tokens are fine here
        with pytest.raises(AuthError, match="refused a token as 'alice'"):
            c.ping(token_registry.host, Credentials(USER, "wrong"))


def test_wrong_credentials_at_the_token_server(
    token_registry: RegistryServer, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, {token_registry.host: basic_entry(password="bad")})
    with RegistryClient(settings) as c, pytest.raises(AuthError) as info:
        c.get_manifest(Reference.parse(f"{token_registry.host}/library/busybox"))
    assert "refused a token as 'alice'" in str(info.value)


def test_identity_token_refresh_grant(
    tokens: TokenServer, token_registry: RegistryServer, tmp_path: Path, private: None
) -> None:
    settings = settings_for(tmp_path, {token_registry.host: {"identitytoken": "refresh-alice"}})
    before = len(tokens.requests)
    with RegistryClient(settings) as c:
        pull_all(c, Reference.parse(f"{token_registry.host}/library/busybox"))
    assert [(r.method, r.account) for r in tokens.requests[before:]] == [("POST", USER)]


def test_an_expired_token_is_renewed(
    tokens: TokenServer, token_registry: RegistryServer, tmp_path: Path
) -> None:
    scope = "repository:library/busybox:pull"
    cache = TokenCache()
    # a token the client still thinks valid, which the registry refuses as expired
    stale = tokens.issue(None, (scope,), lifetime=-600)
    cache.put(f"http://{token_registry.host}", scope, f"Bearer {stale}", 300)
    before = len(tokens.requests)
    with RegistryClient(settings_for(tmp_path), token_cache=cache) as c:
        pull_all(c, Reference.parse(f"{token_registry.host}/library/busybox"))
    assert len(tokens.requests) == before + 1
    assert cache.get(f"http://{token_registry.host}", scope) != f"Bearer {stale}"


def test_push_with_a_token(
    tokens: TokenServer, token_registry: RegistryServer, tmp_path: Path
) -> None:
    source = Reference.parse(f"{token_registry.host}/library/busybox")
    target = Reference.parse(f"{token_registry.host}/cellbox/pushed:v1")
    settings = settings_for(tmp_path, {token_registry.host: basic_entry()})
    with RegistryClient(settings) as c:
        resolved = c.get_manifest(source)
        layer = resolved.layers[0]
        # the layer is mounted from the other repository, the config uploaded
        assert not c.blob_exists(target, layer.digest)
        assert c.mount_blob(target, layer.digest, source.repository)
        assert c.blob_exists(target, layer.digest)
        config = c.get_blob_bytes(source, resolved.config.digest, resolved.config.size)
        c.upload_blob(target, resolved.config.digest, len(config), config)
        # a blob uploaded in PATCH chunks
        data = hashlib.sha256(b"x").digest() * 40_000
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = tmp_path / "blob"
        path.write_bytes(data)
        c.upload_blob(target, digest, len(data), path, chunk_size=500_000)
        assert b"".join(c.iter_blob(target, digest, len(data))) == data
        pushed = c.put_manifest(target, resolved.raw, mt.OCI_MANIFEST)
        assert pushed == resolved.digest
    with RegistryClient(settings_for(tmp_path / "anon")) as anonymous:
        assert pull_all(anonymous, target) == resolved.digest
        with pytest.raises(AuthError):
            anonymous.upload_blob(target, digest, len(data), data)
