"""Registry authentication: challenges, credentials, and the token dance as an httpx.Auth.

The flow (:class:`RegistryAuth`) follows the Docker token spec: send the request (with a
cached token for its scope when there is one); on 401 read ``WWW-Authenticate``; for a
``Bearer`` challenge, get a token from the realm (with the user's credentials as basic auth
when there are some, or an OAuth2 refresh token) and retry once; for a ``Basic`` challenge
retry once with the credentials. A token that is refused later is dropped and renewed.

It is an ``httpx.Auth`` generator (requests out, responses in), so every step is unit
tested with ``httpx.MockTransport``; the only I/O is reading the token response body,
which is size-capped.

Credentials are never sent over plain http to a host that is not loopback, and a token
fetched with credentials is never sent there either. (httpx itself drops Authorization
when a redirect goes to another host.)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .errors import AuthError, ConfigError
from .reference import DOCKER_HUB

__all__ = [
    "Challenge",
    "Credentials",
    "RegistryAuth",
    "TokenCache",
    "credential_key",
    "forget_credentials",
    "is_loopback",
    "load_credentials",
    "parse_www_authenticate",
    "save_credentials",
]

_MAX_TOKEN_RESPONSE = 1 << 20
_DEFAULT_EXPIRY = 60.0
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68 = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_Params = list[tuple[str, str | int | float | bool | None]]
_HUB_KEYS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


# ---------------------------------------------------------------------- WWW-Authenticate


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: scheme (lower case) and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None


class _Scanner:
    """A cursor over one header value, for RFC 7235's challenge grammar."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def skip_separators(self) -> None:
        while self.peek() in (" ", "\t", ","):
            self.pos += 1

    def token(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def bare(self) -> str:
        """An unquoted parameter value; lenient (up to a comma or space) as registries vary."""
        start = self.pos
        while self.peek() and self.peek() not in ", \t":
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        self.pos += 1  # the opening quote
        out: list[str] = []
        while (ch := self.peek()) and ch != '"':
            if ch == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
                ch = self.text[self.pos]
            out.append(ch)
            self.pos += 1
        if ch != '"':
            raise ValueError("unterminated quoted string")
        self.pos += 1
        return "".join(out)

    def token68(self) -> str | None:
        """A token68 (``abc==``) if one ends here at a comma or the end, else None."""
        end = self.pos
        while end < len(self.text) and self.text[end] in _TOKEN68:
            end += 1
        if end == self.pos:
            return None
        while end < len(self.text) and self.text[end] == "=":
            end += 1
        rest = self.text[end:].lstrip(" \t")
        if rest and rest[0] != ",":
            return None
        value, self.pos = self.text[self.pos : end], end
        return value


def parse_www_authenticate(headers: str | Sequence[str]) -> list[Challenge]:
    """Parse one or more ``WWW-Authenticate`` values into challenges.

    Handles quoted values with escapes and commas (a Bearer ``scope`` can hold commas, as
    in ``repository:a:pull,push``), several challenges in one value, and token68 forms.
    Raises ``ValueError`` on a value that does not follow the grammar.
    """
    values = [headers] if isinstance(headers, str) else list(headers)
    challenges: list[Challenge] = []
    for value in values:
        scan = _Scanner(value)
        current: Challenge | None = None
        while True:
            scan.skip_separators()
            if not scan.peek():
                break
            start = scan.pos
            name = scan.token()
            if not name:
                raise ValueError(f"unexpected {scan.peek()!r} at {start} in {value[:120]!r}")
            scan.skip_space()
            if scan.peek() == "=" and current is not None:
                scan.pos += 1
                scan.skip_space()
                param = scan.quoted() if scan.peek() == '"' else scan.bare()
                current.params[name.lower()] = param
                continue
            if scan.peek() == "=":
                raise ValueError(f"a parameter before any scheme in {value[:120]!r}")
            current = Challenge(name.lower(), {})
            challenges.append(current)
            scan.skip_space()
            if scan.peek() and scan.peek() != ",":
                token68 = scan.token68()
                if token68 is not None:
                    current = Challenge(current.scheme, {}, token68)
                    challenges[-1] = current
    return challenges


# ----------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """A user's credentials for one registry, as ``docker login`` stores them."""

    username: str
    password: str
    identity_token: str | None = None  # an OAuth2 refresh token ("identitytoken")

    def __repr__(self) -> str:
        # never print a secret by accident (tracebacks, logs)
        return f"Credentials(username={self.username!r}, password=***)"


def credential_key(key: str) -> str:
    """The host a ``config.json`` ``auths`` key stands for (Docker's ``ConvertToHostname``).

    ``https://index.docker.io/v1/`` and ``index.docker.io`` both mean ``docker.io``.
    """
    host = key.strip()
    for prefix in ("https://", "http://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix) :]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _HUB_KEYS else host


def _entry_credentials(key: str, entry: object, path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: auths[{key!r}] is not an object")
    identity = entry.get("identitytoken") or None
    username, password = entry.get("username"), entry.get("password")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(
                f"{path}: auths[{key!r}].auth is not base64 of user:password"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError(f"{path}: auths[{key!r}].auth does not hold user:password")
    if not isinstance(username, str) or not isinstance(password, str):
        if identity:
            return Credentials("<token>", "", str(identity))
        return None
    if not username and not identity:
        return None
    return Credentials(username, password, str(identity) if identity else None)


def load_credentials(docker_config: str | os.PathLike[str], registry: str) -> Credentials | None:
    """Credentials for ``registry`` (a host[:port]) from ``docker_config``/config.json.

    Reads the ``auths`` map (base64 ``auth`` or ``username``/``password``, and
    ``identitytoken``). None when there is no file or no entry. Credential helpers
    (``credsStore``) are not run.
    """
    path = Path(docker_config) / "config.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read registry credentials from {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = credential_key(registry)
    for key, entry in auths.items():
        if credential_key(key) == wanted:
            return _entry_credentials(key, entry, path)
    return None


def _config_key(registry: str) -> str:
    # Docker keeps Docker Hub's credentials under its old v1 URL; other tools look there.
    host = credential_key(registry)
    return "https://index.docker.io/v1/" if host == DOCKER_HUB else host


def _rewrite_config(
    docker_config: str | os.PathLike[str], change: Callable[[dict[str, Any]], None]
) -> None:
    path = Path(docker_config) / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        data = {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    change(data)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # written beside and renamed: a crash never leaves half a config; 0600 as it holds secrets
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent="\t")
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_credentials(
    docker_config: str | os.PathLike[str], registry: str, username: str, password: str
) -> None:
    """Store credentials for ``registry`` in ``docker_config``/config.json, as docker login.

    Other entries and keys of the file are kept; an older entry for the same registry
    (under any of its key spellings) is replaced.
    """

    def change(data: dict[str, Any]) -> None:
        auths = data.get("auths")
        if not isinstance(auths, dict):
            auths = data["auths"] = {}
        for key in [k for k in auths if credential_key(k) == credential_key(registry)]:
            del auths[key]
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        auths[_config_key(registry)] = {"auth": token}

    _rewrite_config(docker_config, change)


def forget_credentials(docker_config: str | os.PathLike[str], registry: str) -> bool:
    """Remove ``registry``'s credentials from config.json; False if there were none."""
    removed: list[str] = []

    def change(data: dict[str, Any]) -> None:
        auths = data.get("auths")
        if isinstance(auths, dict):
            removed.extend(k for k in auths if credential_key(k) == credential_key(registry))
            for key in removed:
                del auths[key]

    if not (Path(docker_config) / "config.json").exists():
        return False
    _rewrite_config(docker_config, change)
    return bool(removed)


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (a port, or brackets, may be attached)."""
    host = host.strip()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _safe_for_secrets(url: httpx.URL) -> bool:
    return url.scheme == "https" or (url.scheme == "http" and is_loopback(url.host))


# --------------------------------------------------------------------------------- tokens


@dataclass
class _Token:
    value: str
    expires: float  # time.monotonic()


class TokenCache:
    """Bearer tokens per (registry endpoint, scope), with their expiry. Thread-safe."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, endpoint: str, scope: str) -> str | None:
        """A token still valid for a few seconds, or None."""
        with self._lock:
            token = self._tokens.get((endpoint, scope))
            if token is None or token.expires <= self._clock():
                return None
            return token.value

    def put(self, endpoint: str, scope: str, value: str, expires_in: float) -> None:
        # renew a little early: a token that expires in flight costs a 401 round trip
        margin = min(10.0, expires_in / 10)
        with self._lock:
            self._tokens[(endpoint, scope)] = _Token(value, self._clock() + expires_in - margin)

    def drop(self, endpoint: str, scope: str, value: str) -> None:
        """Forget a token the registry refused (unless another thread already renewed it)."""
        with self._lock:
            token = self._tokens.get((endpoint, scope))
            if token is not None and token.value == value:
                del self._tokens[(endpoint, scope)]


# ------------------------------------------------------------------------------- the flow


class RegistryAuth(httpx.Auth):
    """Anonymous, Bearer-token and basic auth for requests to one repository scope.

    ``endpoint`` is the base URL the requests go to (the cache key with ``scopes``);
    ``scopes`` are what to ask the token server for, like
    ``["repository:library/busybox:pull"]``. ``registry`` names the registry in errors.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        registry: str,
        scopes: Sequence[str],
        credentials: Credentials | None,
        cache: TokenCache,
        timeout: httpx.Timeout,
        user_agent: str = "cellbox",
    ) -> None:
        self.endpoint = endpoint
        self.registry = registry
        self.scopes = list(scopes)
        self.credentials = credentials
        self.cache = cache
        self.timeout = timeout
        self.user_agent = user_agent
        self._scope_key = " ".join(self.scopes)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        creds = self.credentials if _safe_for_secrets(request.url) else None
        cached = self.cache.get(self.endpoint, self._scope_key)
        if cached is not None:
            request.headers["Authorization"] = cached
        response = yield request
        if response.status_code != 401:
            return
        if _origin(response.request.url) != _origin(request.url):
            # a 401 from where a redirect led (a CDN) is not the registry's challenge to
            # answer: a realm named there must not receive the user's credentials
            return
        # httpx reads every response of a flow but the last; cap what it reads.
        _read_capped(response, self.registry)
        if cached is not None:
            # refused or expired early: renew it once
            self.cache.drop(self.endpoint, self._scope_key, cached)
        try:
            challenges = parse_www_authenticate(response.headers.get_list("www-authenticate"))
        except ValueError as exc:
            raise AuthError(
                f"{self.registry} sent a WWW-Authenticate header cellbox cannot read: {exc}"
            ) from None
        by_scheme = {c.scheme: c for c in challenges}
        if "bearer" in by_scheme:
            token, expires_in = yield from self._fetch_token(by_scheme["bearer"], creds)
            value = f"Bearer {token}"
            self.cache.put(self.endpoint, self._scope_key, value, expires_in)
            request.headers["Authorization"] = value
        elif "basic" in by_scheme and creds is not None:
            value = self._basic_for(creds)
            self.cache.put(self.endpoint, self._scope_key, value, 3600.0)
            request.headers["Authorization"] = value
        else:
            return  # nothing we can answer with; the caller turns the 401 into AuthError
        yield request

    def _token_request(self, challenge: Challenge, creds: Credentials | None) -> httpx.Request:
        realm = challenge.params.get("realm", "")
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL:
            url = httpx.URL("")
        if url.scheme not in ("http", "https") or not url.host:
            raise AuthError(f"{self.registry} sent a token realm that is not a URL: {realm!r}")
        if url.scheme == "http" and not is_loopback(url.host):
            creds = None  # a token server on plain http never sees a password
        scopes = list(self.scopes)
        if challenge.params.get("scope") and challenge.params["scope"] not in scopes:
            scopes.append(challenge.params["scope"])
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        extensions = {"timeout": self.timeout.as_dict()}
        service = challenge.params.get("service")
        if creds is not None and creds.identity_token:
            form: _Params = [
                ("grant_type", "refresh_token"),
                ("refresh_token", creds.identity_token),
                ("client_id", "cellbox"),
            ]
            form += [("service", service)] if service else []
            form += [("scope", s) for s in scopes]
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return httpx.Request(
                "POST", url, content=_urlencode(form), headers=headers, extensions=extensions
            )
        params: _Params = [("service", service)] if service else []
        params += [("scope", s) for s in scopes]
        if creds is not None:
            params.append(("account", creds.username))
            headers["Authorization"] = self._basic_for(creds)
        return httpx.Request(
            "GET", url.copy_merge_params(params), headers=headers, extensions=extensions
        )

    @staticmethod
    def _basic_for(creds: Credentials) -> str:
        raw = f"{creds.username}:{creds.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _fetch_token(
        self, challenge: Challenge, creds: Credentials | None
    ) -> Generator[httpx.Request, httpx.Response, tuple[str, float]]:
        token_request = self._token_request(challenge, creds)
        response = yield token_request
        body = _read_capped(response, f"the token server of {self.registry}")
        if response.status_code in (401, 403):
            who = f"as {creds.username!r}" if creds is not None else "anonymously"
            raise AuthError(
                f"the token server of {self.registry} refused a token {who} for "
                f"{' '.join(self.scopes)} (HTTP {response.status_code}); "
                f"run `cellbox login {self.registry}` with valid credentials"
            )
        if response.status_code != 200:
            raise AuthError(
                f"the token server of {self.registry} ({token_request.url.host}) answered "
                f"HTTP {response.status_code} to a token request"
            )
        return _parse_token(body, self.registry)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise NotImplementedError("RegistryAuth reads token responses synchronously")
        yield request  # pragma: no cover - makes this an async generator


class _CappedStream(httpx.SyncByteStream):
    """A response body that raises AuthError once it grows past a cap."""

    def __init__(self, stream: httpx.SyncByteStream, cap: int, who: str) -> None:
        self._stream, self._cap, self._who = stream, cap, who

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._stream:
            seen += len(chunk)
            if seen > self._cap:
                raise AuthError(f"{self._who} sent an answer over {self._cap} bytes")
            yield chunk

    def close(self) -> None:
        self._stream.close()


def _read_capped(response: httpx.Response, who: str) -> bytes:
    """Read a response of the flow through a size cap; httpx's own later read() reuses it."""
    if isinstance(response.stream, httpx.SyncByteStream):
        response.stream = _CappedStream(response.stream, _MAX_TOKEN_RESPONSE, who)
    return response.read()


def _urlencode(form: _Params) -> bytes:
    return str(httpx.QueryParams(form)).encode()


def _parse_token(body: bytes, registry: str) -> tuple[str, float]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        raise AuthError(f"the token server of {registry} sent an answer that is not JSON")
    token = data.get("token") or data.get("access_token")
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
        raise AuthError(f"the token server of {registry} sent no usable token")
    expires_in = data.get("expires_in")
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        expires_in = _DEFAULT_EXPIRY
    # the spec: "a minimum of 60 seconds"; and never trust a huge lifetime blindly
    return token, min(max(float(expires_in), _DEFAULT_EXPIRY), 24 * 3600.0)
