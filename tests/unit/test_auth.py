"""Registry auth: WWW-Authenticate parsing, credentials, and the token dance (no network)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cellbox.runtime.auth import (
    Challenge,
    Credentials,
    RegistryAuth,
    TokenCache,
    credential_key,
    forget_credentials,
    is_loopback,
    load_credentials,
    parse_www_authenticate,
    save_credentials,
)
from cellbox.runtime.errors import AuthError, ConfigError

# ---------------------------------------------------------------- WWW-Authenticate

HUB = (
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
    'scope="repository:library/ubuntu:pull"'
)

PARSE = [
    (HUB, [Challenge("bearer", {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/ubuntu:pull",
    })]),
    # the scope holds commas inside the quotes
    ('Bearer realm="r",scope="repository:a/b:pull,push"',
     [Challenge("bearer", {"realm": "r", "scope": "repository:a/b:pull,push"})]),
    # two challenges in one value
    ('Basic realm="reg", Bearer realm="https://t/token", service="s"',
     [Challenge("basic", {"realm": "reg"}),
      Challenge("bearer", {"realm": "https://t/token", "service": "s"})]),
    # case-insensitive scheme and parameter names, spaces around '='
    ('BEARER Realm = "x" , Service="y"', [Challenge("bearer", {"realm": "x", "service": "y"})]),
    # escapes in quoted strings
    (r'Basic realm="a \"quoted\" realm\\"', [Challenge("basic", {"realm": 'a "quoted" realm\\'})]),
    # unquoted values, a URL among them (not RFC tokens, but registries send them)
    ("Bearer realm=https://t.example/token,service=reg",
     [Challenge("bearer", {"realm": "https://t.example/token", "service": "reg"})]),
    # token68 forms, then another challenge
    ("Negotiate abc+/9==, Basic realm=x",
     [Challenge("negotiate", {}, "abc+/9=="), Challenge("basic", {"realm": "x"})]),
    ("Basic", [Challenge("basic", {})]),
    ("", []),
    (", ,", []),
    # several header values
    (["Basic realm=x", 'Bearer realm="y"'],
     [Challenge("basic", {"realm": "x"}), Challenge("bearer", {"realm": "y"})]),
]


@pytest.mark.parametrize(("header", "expected"), PARSE)
def test_parse_www_authenticate(header: str | list[str], expected: list[Challenge]) -> None:
    assert parse_www_authenticate(header) == expected


@pytest.mark.parametrize("header", ['Bearer realm="unterminated', "=x", 'Bearer realm="a", "b"'])
def test_parse_www_authenticate_refuses_garbage(header: str) -> None:
    with pytest.raises(ValueError):
        parse_www_authenticate(header)


# ---------------------------------------------------------------------- credentials


def write_config(directory: Path, auths: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"auths": auths}))
    return directory


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://ghcr.io/v2/", "ghcr.io"),
        ("GHCR.io", "ghcr.io"),
    ],
)
def test_credential_keys(key: str, registry: str) -> None:
    assert credential_key(key) == credential_key(registry)


def test_credentials_from_docker_config(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "docker", {
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hub:pass")},
        "127.0.0.1:5000": {"username": "alice", "password": "secret"},
        "ghcr.io": {"identitytoken": "refresh-me"},
        "empty.example": {},
    })
    assert load_credentials(cfg, "docker.io") == Credentials("hubuser", "hub:pass")
    assert load_credentials(cfg, "127.0.0.1:5000") == Credentials("alice", "secret")
    ghcr = load_credentials(cfg, "ghcr.io")
    assert ghcr is not None and ghcr.identity_token == "refresh-me"
    assert load_credentials(cfg, "empty.example") is None
    assert load_credentials(cfg, "quay.io") is None
    assert load_credentials(tmp_path / "nowhere", "docker.io") is None
    assert "secret" not in repr(load_credentials(cfg, "127.0.0.1:5000"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"auths": {"x.io": {"auth": "%%%"}}}), "not base64"),
        (json.dumps({"auths": {"x.io": {"auth": b64("nocolon")}}}), "user:password"),
        (json.dumps({"auths": {"x.io": "str"}}), "not an object"),
    ],
)
def test_bad_docker_config_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError) as info:
        load_credentials(tmp_path, "x.io")
    assert message in str(info.value) and str(tmp_path / "config.json") in str(info.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.1:5000", True), ("127.9.9.9", True), ("localhost:80", True),
     ("[::1]:5000", True), ("::1", True), ("10.0.0.1", False), ("example.com", False),
     ("localhost.example.com", False), ("[::2]", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# ---------------------------------------------------------------------- token dance

REG = "https://reg.example"
REALM = "https://auth.example/token"


class Streamed(httpx.SyncByteStream):
    """A body delivered as a stream (MockTransport pre-reads plain content)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


class FakeRegistry:
    """A registry on reg.example with a token server on auth.example, in memory."""

    def __init__(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        scheme: str = "bearer",
        expires_in: object = 300,
        token_body: Callable[[int], bytes] | None = None,
    ) -> None:
        self.user, self.password, self.scheme = user, password, scheme
        self.expires_in = expires_in
        self.token_body = token_body
        self.valid: set[str] = set()
        self.token_requests: list[httpx.Request] = []
        self.registry_requests: list[httpx.Request] = []
        self.sent: list[str | None] = []  # Authorization as sent (the flow reuses requests)

    def _basic_ok(self, request: httpx.Request) -> bool:
        if self.user is None:
            return True
        wanted = "Basic " + b64(f"{self.user}:{self.password}")
        return request.headers.get("authorization") == wanted

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            self.token_requests.append(request)
            if not self._basic_ok(request):
                return httpx.Response(401, json={"details": "bad credentials"})
            n = len(self.token_requests)
            if self.token_body is not None:  # streamed, as a real transport delivers it
                return httpx.Response(200, stream=Streamed(
                    iter([self.token_body(n)])))
            token = f"tok{n}"
            self.valid.add(f"Bearer {token}")
            return httpx.Response(200, json={"token": token, "expires_in": self.expires_in})
        self.registry_requests.append(request)
        auth = request.headers.get("authorization")
        self.sent.append(auth)
        if self.scheme == "basic":
            if auth is not None and self._basic_ok(request):
                return httpx.Response(200, json={"ok": True})
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
        if auth in self.valid:
            return httpx.Response(200, json={"ok": True})
        challenge = (
            f'Bearer realm="{REALM}",service="reg.example",scope="repository:a/b:pull"'
        )
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})


def auth_for(
    creds: Credentials | None = None,
    cache: TokenCache | None = None,
    endpoint: str = REG,
    scopes: tuple[str, ...] = ("repository:a/b:pull",),
) -> RegistryAuth:
    return RegistryAuth(
        endpoint=endpoint, registry="reg.example", scopes=list(scopes), credentials=creds,
        cache=cache or TokenCache(), timeout=httpx.Timeout(5.0),
    )


def client(server: FakeRegistry) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server))


def test_401_then_token_then_retry_and_the_token_is_cached() -> None:
    server = FakeRegistry()
    auth = auth_for()
    with client(server) as http:
        assert http.get(f"{REG}/v2/a/b/manifests/1", auth=auth).status_code == 200
        assert http.get(f"{REG}/v2/a/b/blobs/x", auth=auth).status_code == 200
    assert len(server.token_requests) == 1
    token_request = server.token_requests[0]
    assert token_request.url.params.get_list("scope") == ["repository:a/b:pull"]
    assert token_request.url.params["service"] == "reg.example"
    assert "authorization" not in token_request.headers  # anonymous
    # first try without, retry with the token, then the cached token straight away
    assert server.sent == [
        None, "Bearer tok1", "Bearer tok1"
    ]


def test_a_refused_token_is_renewed_once() -> None:
    server = FakeRegistry()
    auth = auth_for()
    with client(server) as http:
        http.get(f"{REG}/v2/a/b/manifests/1", auth=auth)
        server.valid.clear()  # the registry revokes tok1
        assert http.get(f"{REG}/v2/a/b/manifests/1", auth=auth).status_code == 200
    assert len(server.token_requests) == 2
    assert server.sent[-2:] == [
        "Bearer tok1", "Bearer tok2"
    ]


def test_a_token_that_keeps_failing_gives_the_401_back() -> None:
    server = FakeRegistry()
    server.valid = set()

    def never_valid(request: httpx.Request) -> httpx.Response:
        response = server(request)
        server.valid.clear()
        return response

    with httpx.Client(transport=httpx.MockTransport(never_valid)) as http:
        assert http.get(f"{REG}/v2/a/b/manifests/1", auth=auth_for()).status_code == 401
    assert len(server.token_requests) == 1  # no loop


def test_tokens_expire() -> None:
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    server = FakeRegistry(expires_in=100)
    auth = auth_for(cache=cache)
    with client(server) as http:
        http.get(f"{REG}/v2/a/b/manifests/1", auth=auth)
        assert cache.get(REG, "repository:a/b:pull") == "Bearer tok1"
        now[0] += 85  # renewed a little before the end (here: 10 s early)
        assert cache.get(REG, "repository:a/b:pull") == "Bearer tok1"
        now[0] += 10
        assert cache.get(REG, "repository:a/b:pull") is None
        http.get(f"{REG}/v2/a/b/manifests/1", auth=auth)
    assert len(server.token_requests) == 2


@pytest.mark.parametrize(("given", "lifetime"), [(None, 60), (5, 60), ("x", 60), (7200, 7200)])
def test_token_lifetime_defaults_to_at_least_60_s(given: object, lifetime: float) -> None:
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0])
    server = FakeRegistry(expires_in=given)
    with client(server) as http:
        http.get(f"{REG}/v2/a/b/manifests/1", auth=auth_for(cache=cache))
    now[0] = lifetime - min(10, lifetime / 10) - 0.5
    assert cache.get(REG, "repository:a/b:pull") is not None
    now[0] += 1
    assert cache.get(REG, "repository:a/b:pull") is None


def test_tokens_are_cached_per_scope() -> None:
    server = FakeRegistry()
    cache = TokenCache()
    with client(server) as http:
        http.get(f"{REG}/v2/a/b/manifests/1", auth=auth_for(cache=cache))
        http.get(f"{REG}/v2/c/d/manifests/1",
                 auth=auth_for(cache=cache, scopes=("repository:c/d:pull",)))
    assert len(server.token_requests) == 2
    assert server.token_requests[1].url.params.get_list("scope") == [
        "repository:c/d:pull", "repository:a/b:pull"  # ours, then the challenge's
    ]


def test_credentials_go_to_the_token_server_as_basic_auth() -> None:
    server = FakeRegistry(user="alice", password="s3cret")
    with client(server) as http:
        response = http.get(
            f"{REG}/v2/a/b/manifests/1", auth=auth_for(Credentials("alice", "s3cret"))
        )
    assert response.status_code == 200
    request = server.token_requests[0]
    assert request.headers["authorization"] == "Basic " + b64("alice:s3cret")
    assert request.url.params["account"] == "alice"
    # the password never reaches the registry itself
    assert all("Basic" not in (sent or "") for sent in server.sent)


def test_refused_credentials_are_an_auth_error() -> None:
    server = FakeRegistry(user="alice", password="right")
    with client(server) as http, pytest.raises(AuthError) as info:
        http.get(f"{REG}/v2/a/b/manifests/1", auth=auth_for(Credentials("alice", "wrong")))
    message = str(info.value)
    assert "refused a token as 'alice'" in message
    assert "cellbox login reg.example" in message
    assert "wrong" not in message


def test_identity_token_uses_the_oauth2_refresh_grant() -> None:
    server = FakeRegistry()
    creds = Credentials("<token>", "", "refresh-123")
    with client(server) as http:
        assert http.get(f"{REG}/v2/a/b/manifests/1", auth=auth_for(creds)).status_code == 200
    request = server.token_requests[0]
    assert request.method == "POST"
    form = httpx.QueryParams(request.content.decode())
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == "refresh-123"
    assert form["service"] == "reg.example"
    assert form.get_list("scope") == ["repository:a/b:pull"]


def test_basic_auth_registry() -> None:
    server = FakeRegistry(user="bob", password="pw", scheme="basic")
    auth = auth_for(Credentials("bob", "pw"))
    with client(server) as http:
        assert http.get(f"{REG}/v2/", auth=auth).status_code == 200
        assert http.get(f"{REG}/v2/x", auth=auth).status_code == 200
    assert server.sent == [
        None, "Basic " + b64("bob:pw"), "Basic " + b64("bob:pw")
    ]
    assert server.token_requests == []


def test_basic_auth_registry_without_credentials_gives_the_401_back() -> None:
    server = FakeRegistry(user="bob", password="pw", scheme="basic")
    with client(server) as http:
        assert http.get(f"{REG}/v2/", auth=auth_for()).status_code == 401
    assert len(server.registry_requests) == 1


def test_no_credentials_over_plain_http_to_another_host() -> None:
    creds = Credentials("bob", "pw")
    basic = FakeRegistry(user="bob", password="pw", scheme="basic")
    with client(basic) as http:
        response = http.get("http://reg.example/v2/", auth=auth_for(creds, endpoint="http://reg.example"))
    assert response.status_code == 401
    assert basic.sent == [None]

    bearer = FakeRegistry()
    with client(bearer) as http:
        http.get("http://reg.example/v2/a/b/manifests/1",
                 auth=auth_for(creds, endpoint="http://reg.example"))
    assert "authorization" not in bearer.token_requests[0].headers
    assert "account" not in bearer.token_requests[0].url.params


def test_credentials_over_plain_http_to_loopback_are_fine() -> None:
    server = FakeRegistry(user="bob", password="pw", scheme="basic")
    with client(server) as http:
        response = http.get("http://127.0.0.1:5000/v2/",
                            auth=auth_for(Credentials("bob", "pw"), endpoint="http://127.0.0.1:5000"))
    assert response.status_code == 200


def test_a_token_realm_on_plain_http_gets_no_password() -> None:
    server = FakeRegistry()

    def handler(request: httpx.Request) -> httpx.Response:
        response = server(request)
        if response.status_code == 401 and request.url.host == "reg.example":
            response.headers["WWW-Authenticate"] = 'Bearer realm="http://auth.example/token"'
        return response

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        http.get(f"{REG}/v2/a/b/manifests/1", auth=auth_for(Credentials("bob", "pw")))
    assert "authorization" not in server.token_requests[0].headers


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (lambda n: b"<html>", "not JSON"),
        (lambda n: b'{"token": ""}', "no usable token"),
        (lambda n: b'{"token": "a\\r\\nX-Evil: 1"}', "no usable token"),
        (lambda n: b'{"token": "' + b"a" * (2 << 20) + b'"}', "answer over 1048576 bytes"),
    ],
)
def test_bad_token_answers(body: Callable[[int], bytes], message: str) -> None:
    server = FakeRegistry(token_body=body)
    with client(server) as http, pytest.raises(AuthError, match=message):
        http.get(f"{REG}/v2/a/b/manifests/1", auth=auth_for())


@pytest.mark.parametrize("realm", ["file:///etc/passwd", "", "not a url", "/relative"])
def test_a_realm_that_is_not_an_http_url_is_refused(realm: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})

    with httpx.Client(transport=httpx.MockTransport(handler)) as http, pytest.raises(
        AuthError, match="realm that is not a URL"
    ):
        http.get(f"{REG}/v2/", auth=auth_for())


def test_an_endless_401_body_is_not_read_forever() -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://a/t"'},
                              stream=Streamed(endless()))

    with httpx.Client(transport=httpx.MockTransport(handler)) as http, pytest.raises(
        AuthError, match="over 1048576 bytes"
    ):
        http.get(f"{REG}/v2/", auth=auth_for())


def test_unreadable_challenge_is_an_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="x'})

    with httpx.Client(transport=httpx.MockTransport(handler)) as http, pytest.raises(
        AuthError, match="cannot read"
    ):
        http.get(f"{REG}/v2/", auth=auth_for())


def test_save_and_forget_credentials(tmp_path: Path) -> None:
    cfg = tmp_path / "docker"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({
        "auths": {"index.docker.io": {"auth": b64("old:old")}, "quay.io": {"auth": b64("q:q")}},
        "credHelpers": {"gcr.io": "gcloud"},
    }))
    save_credentials(cfg, "docker.io", "new", "p:w")
    save_credentials(cfg, "127.0.0.1:5000", "alice", "pw")
    data = json.loads((cfg / "config.json").read_text())
    assert set(data["auths"]) == {"https://index.docker.io/v1/", "quay.io", "127.0.0.1:5000"}
    assert data["credHelpers"] == {"gcr.io": "gcloud"}  # the rest of the file is kept
    assert (cfg / "config.json").stat().st_mode & 0o777 == 0o600
    assert load_credentials(cfg, "docker.io") == Credentials("new", "p:w")
    assert load_credentials(cfg, "127.0.0.1:5000") == Credentials("alice", "pw")
    assert forget_credentials(cfg, "https://index.docker.io/v1/")
    assert not forget_credentials(cfg, "docker.io")
    assert load_credentials(cfg, "docker.io") is None
    assert load_credentials(cfg, "quay.io") == Credentials("q", "q")
    assert not forget_credentials(tmp_path / "none", "docker.io")
    assert [p.name for p in cfg.iterdir()] == ["config.json"]  # no temp file left


def test_save_credentials_creates_the_directory(tmp_path: Path) -> None:
    save_credentials(tmp_path / "new" / "docker", "ghcr.io", "u", "p")
    assert load_credentials(tmp_path / "new" / "docker", "ghcr.io") == Credentials("u", "p")
