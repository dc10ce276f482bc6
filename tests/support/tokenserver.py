"""A token server for docker-registry's ``auth: token`` mode, for tests.

``TokenServer`` is an ``http.server`` on 127.0.0.1 that answers the Docker token protocol
(``GET /token?service=..&scope=..`` with optional basic auth, and the OAuth2 refresh-token
``POST``) with RS256 JWTs. The signing key's self-signed certificate is written to
``cert_path``: give it to the registry as ``rootcertbundle``; each JWT carries the
certificate in its ``x5c`` header, which is how distribution 2.8 finds the key.

    with TokenServer(tmp, users={"alice": "pw"}) as tokens:
        registry = RegistryServer(dir, extra_config={"auth": tokens.registry_auth()})

Anonymous clients get ``pull`` (or nothing, with ``anonymous_pull=False``); known users get
what they asked for. ``requests`` records what came in, for assertions.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = ["TokenRequest", "TokenServer"]

SERVICE = "cellbox-test-registry"
ISSUER = "cellbox-test-tokens"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered."""

    method: str
    account: str | None  # the user of a valid basic auth, else None
    scopes: tuple[str, ...]
    status: int


class TokenServer:
    """An in-process token server; use as a context manager."""

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        refresh_tokens: dict[str, str] | None = None,
        anonymous_pull: bool = True,
        expires_in: int = 300,
    ) -> None:
        self.directory = Path(directory)
        self.users = users or {}
        self.refresh_tokens = refresh_tokens or {}  # refresh token -> user
        self.anonymous_pull = anonymous_pull
        self.expires_in = expires_in
        self.requests: list[TokenRequest] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._cert = self._self_signed()
        self.cert_path = self.directory / "token-cert.pem"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _self_signed(self) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    # ------------------------------------------------------------------ server

    @property
    def realm(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def registry_auth(self) -> str:
        """The value of the registry config's ``auth`` key (flow YAML)."""
        return (
            f"{{token: {{realm: {self.realm}, service: {SERVICE}, issuer: {ISSUER}, "
            f"rootcertbundle: {self.cert_path}}}}}"
        )

    def start(self) -> TokenServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.urlparse(self.path).query
                owner._answer(self, "GET", urllib.parse.parse_qs(query))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                owner._answer(self, "POST", form)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- tokens

    def _account(self, handler: BaseHTTPRequestHandler) -> tuple[str | None, bool]:
        """(user, refused): who the basic auth names, and whether it was wrong."""
        header = handler.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None, False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, True
        if self.users.get(user) == password:
            return user, False
        return None, True

    def _answer(
        self, handler: BaseHTTPRequestHandler, method: str, params: dict[str, list[str]]
    ) -> None:
        scopes = tuple(params.get("scope", []))
        if method == "POST":
            user = self.refresh_tokens.get(params.get("refresh_token", [""])[0])
            refused = user is None
        else:
            user, refused = self._account(handler)
        if refused or params.get("service", [SERVICE])[0] != SERVICE:
            self.requests.append(TokenRequest(method, None, scopes, 401))
            self._send(handler, 401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return
        self.requests.append(TokenRequest(method, user, scopes, 200))
        token = self.issue(user, scopes)
        key = "access_token" if method == "POST" else "token"
        self._send(handler, 200, {key: token, "expires_in": self.expires_in})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _access(self, user: str | None, scopes: tuple[str, ...]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            granted = wanted if user else [a for a in wanted if a == "pull" and self.anonymous_pull]
            if kind == "repository" and name and granted:
                access.append({"type": kind, "name": name, "actions": granted})
        return access

    def issue(self, user: str | None, scopes: tuple[str, ...], *, lifetime: int | None = None,
              ) -> str:
        """A signed JWT granting ``user`` (None: anonymous) what ``scopes`` ask for."""
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER))
                    .decode()],
        }
        claims = {
            "iss": ISSUER,
            "sub": user or "",
            "aud": SERVICE,
            "exp": now + (self.expires_in if lifetime is None else lifetime),
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": self._access(user, scopes),
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)
