"""The OCI distribution client: manifests, blobs and pushes over one keep-alive httpx.Client.

``RegistryClient`` resolves a reference to a platform image manifest (through an index,
nested ones included), streams blobs with their size and digest verified as the bytes
arrive, resumes a dropped download with ``Range``, retries 429 and 5xx with jittered
exponential backoff that honours ``Retry-After``, and follows redirects (httpx drops
``Authorization`` when one leads to another host). For docker.io it tries the configured
mirrors first and falls back to the upstream. Plain http is used only for loopback hosts
and ``Settings.insecure_registries``.

Nothing a registry sends is trusted: manifests are hashed as received and size-capped,
blobs are cut off at their promised size, error bodies are read with a cap.

A client is safe to use from several threads at once (one connection pool, a locked token
cache); C's pull downloads layers in parallel threads with it.
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from . import mediatypes as mt
from .auth import (
    Credentials,
    RegistryAuth,
    TokenCache,
    credential_key,
    is_loopback,
    load_credentials,
)
from .errors import (
    AuthError,
    BlobError,
    ConfigError,
    ImageNotFound,
    InvalidReference,
    ManifestError,
    RateLimited,
    RegistryError,
    RegistryUnavailable,
)
from .manifest import (
    MAX_MANIFEST_SIZE,
    Descriptor,
    Platform,
    manifest_config,
    manifest_layers,
    parse_manifest,
    select_platform,
    validate_image_manifest,
)
from .reference import DOCKER_HUB, Reference, api_host, check_digest
from .registry_http import registry_transport
from .settings import Settings

__all__ = ["MAX_CONFIG_SIZE", "RegistryClient", "ResolvedManifest", "compute_digest"]

log = logging.getLogger(__name__)

MAX_CONFIG_SIZE = 16 << 20
_MAX_ERROR_BODY = 64 << 10
_MAX_INDEX_DEPTH = 4
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_USER_AGENT = "cellbox/0.1"


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """``algorithm:hex`` of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _clean(text: str, limit: int = 300) -> str:
    """A registry's text made safe to show: printable, one line, bounded."""
    text = re.sub(r"[^\x20-\x7e]+", " ", text).strip()
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class ResolvedManifest:
    """A reference resolved to the image manifest for one platform."""

    reference: Reference  # what was asked for
    source: str  # base URL actually used (a mirror or the upstream)
    index_digest: str | None  # digest of the index/list, when the tag pointed to one
    digest: str  # digest of the platform image manifest
    media_type: str
    raw: bytes  # the manifest exactly as received
    manifest: dict[str, Any]  # parsed and validated image manifest

    @property
    def config(self) -> Descriptor:
        """The config descriptor."""
        return manifest_config(self.manifest)

    @property
    def layers(self) -> list[Descriptor]:
        """The layer descriptors, bottom first."""
        return manifest_layers(self.manifest)


class _Download:
    """One blob download in progress: bytes so far and their running hash."""

    def __init__(self, ref: Reference, digest: str, size: int) -> None:
        self.ref, self.digest, self.size = ref, digest, size
        self.algorithm, _, self.expected = digest.partition(":")
        self.hasher = hashlib.new(self.algorithm)
        self.received = 0

    def consume(self, response: httpx.Response, skip: int, source: str) -> Iterator[bytes]:
        """Yield the response's body, hashed and counted; ``skip`` leading bytes dropped."""
        for chunk in response.iter_raw():
            if skip:
                # the server ignored Range: drop what was already received
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
                if not chunk:
                    continue
            self.received += len(chunk)
            if self.received > self.size:
                raise BlobError(
                    f"blob {self.digest} of {self.ref.familiar} from {source} is longer than "
                    f"the {self.size} bytes its descriptor promised"
                )
            self.hasher.update(chunk)
            yield chunk

    def finish(self, source: str) -> None:
        """Raise BlobError unless exactly the promised bytes, with the promised digest, came."""
        if self.received != self.size:
            raise BlobError(
                f"blob {self.digest} of {self.ref.familiar} from {source} ended after "
                f"{self.received} of {self.size} bytes"
            )
        if self.hasher.hexdigest() != self.expected:
            raise BlobError(
                f"blob {self.digest} of {self.ref.familiar} from {source} has digest "
                f"{self.algorithm}:{self.hasher.hexdigest()}; the download is corrupt or was "
                "tampered with"
            )


@dataclass(frozen=True)
class _Endpoint:
    """One base URL to talk to for a registry."""

    url: str  # "https://registry-1.docker.io", "http://127.0.0.1:5000"
    registry: str  # the registry's name for messages: "docker.io", "127.0.0.1:5000"
    credential_host: str  # the key to look credentials up with
    mirror: bool = False

    @property
    def label(self) -> str:
        return f"mirror {self.url} of {self.registry}" if self.mirror else self.registry


class RegistryClient:
    """A client for OCI distribution registries. Use as a context manager, or ``close()``.

    ``settings`` supplies mirrors, insecure registries and the docker config directory.
    ``transport`` replaces the network (tests use ``httpx.MockTransport``). ``retries``,
    ``backoff``, ``max_backoff`` and ``max_retry_after`` shape the retry policy; ``sleep``
    is how it waits (tests pass a recorder). Clients that share a ``token_cache`` share
    their Bearer tokens.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 8,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 60.0,
        token_cache: TokenCache | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.load()
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 15.0))
        self._mirrors = [self._mirror_endpoint(m) for m in self.settings.registry_mirrors]
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.Client(
            transport=transport if transport is not None else registry_transport(limits),
            limits=limits,
            timeout=self._timeout,
            follow_redirects=True,
            headers={"User-Agent": _USER_AGENT},
        )
        self._tokens = token_cache if token_cache is not None else TokenCache()
        self._credentials: dict[str, Credentials | None] = {}
        self._served_by: dict[tuple[str, str], _Endpoint] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ endpoints

    def _insecure(self, host: str) -> bool:
        """Plain http is allowed: loopback, or listed (host[:port], or a CIDR range)."""
        if is_loopback(host):
            return True
        bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        bare = bare.strip("[]")
        for entry in self.settings.insecure_registries:
            if host == entry or bare == entry:
                return True
            if "/" in entry:
                with suppress(ValueError):
                    if ipaddress.ip_address(bare) in ipaddress.ip_network(entry, strict=False):
                        return True
        return False

    def _scheme(self, host: str) -> str:
        return "http" if self._insecure(host) else "https"

    def _mirror_endpoint(self, mirror: str) -> _Endpoint:
        text = mirror.strip().rstrip("/")
        if "://" not in text:
            text = f"{self._scheme(text.split('/', 1)[0])}://{text}"
        try:
            url = httpx.URL(text)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"registry mirror {mirror!r} is not a URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"registry mirror {mirror!r} must be an http(s) URL")
        netloc = url.netloc.decode("ascii")
        if url.scheme == "http" and not self._insecure(netloc):
            raise ConfigError(
                f"registry mirror {mirror} uses plain http; use https, or list {netloc} "
                "in insecure_registries (CELLBOX_INSECURE_REGISTRIES)"
            )
        return _Endpoint(text, DOCKER_HUB, netloc, mirror=True)

    def _upstream(self, ref: Reference) -> _Endpoint:
        host = ref.api_host
        return _Endpoint(f"{self._scheme(host)}://{host}", ref.registry, ref.registry)

    def _endpoints(self, ref: Reference) -> list[_Endpoint]:
        mirrors = self._mirrors if ref.registry == DOCKER_HUB else []
        return [*mirrors, self._upstream(ref)]

    def _blob_endpoints(self, ref: Reference) -> list[_Endpoint]:
        # Blobs come from where the manifest came from; the others are a fallback only.
        endpoints = self._endpoints(ref)
        served = self._served_by.get((ref.registry, ref.repository))
        if served is not None:
            endpoints = [served, *(e for e in endpoints if e != served)]
        return endpoints

    def _creds(self, host: str) -> Credentials | None:
        with self._lock:
            if host not in self._credentials:
                self._credentials[host] = load_credentials(self.settings.docker_config, host)
            return self._credentials[host]

    def _auth(self, endpoint: _Endpoint, scopes: Sequence[str]) -> RegistryAuth:
        return RegistryAuth(
            endpoint=endpoint.url,
            registry=endpoint.registry,
            scopes=scopes,
            credentials=self._creds(endpoint.credential_host),
            cache=self._tokens,
            timeout=self._timeout,
            user_agent=_USER_AGENT,
        )

    # ---------------------------------------------------------------- requests

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """How long to wait before retry ``attempt`` (0-based): Retry-After or backoff."""
        if response is not None and (after := _retry_after(response)) is not None:
            return after
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads parallel retries

    def _send(
        self,
        endpoint: _Endpoint,
        method: str,
        url: str | httpx.URL,
        *,
        scopes: Sequence[str],
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        retry: bool = True,
        authorize: bool = True,
        ref: Reference | None = None,
    ) -> httpx.Response:
        """Send one request with auth and retries; return the (streamed, open) response.

        429 and 5xx are retried (when ``retry``) and then raised; any other status is
        returned for the caller to judge. The caller closes the response.
        """
        auth = self._auth(endpoint, scopes) if authorize else None
        attempt = 0
        while True:
            request = self._client.build_request(method, url, headers=headers, content=content)
            try:
                response = self._client.send(request, auth=auth, stream=True)
            except httpx.TransportError as exc:
                # A refused connection fails at once (the mirror fallback should be quick);
                # a timeout or a reset mid-way is worth another try.
                if retry and attempt < self.retries and not isinstance(exc, httpx.ConnectError):
                    self._wait(endpoint, attempt, None, f"{type(exc).__name__}: {exc}")
                    attempt += 1
                    continue
                raise _unreachable(endpoint, request.url, exc) from exc
            if response.status_code not in _RETRY_STATUSES:
                return response
            delay = self._delay(attempt, response)
            body = _read_error(response)
            if not retry or attempt >= self.retries or delay > self.max_retry_after:
                raise self._status_error(
                    endpoint, response, body, what=str(request.url), ref=ref, tries=attempt + 1
                )
            self._wait(endpoint, attempt, delay, f"HTTP {response.status_code}")
            attempt += 1

    @contextmanager
    def _request(
        self, endpoint: _Endpoint, method: str, url: str | httpx.URL, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        """:meth:`_send` as a context manager that closes the response."""
        response = self._send(endpoint, method, url, **kwargs)
        try:
            yield response
        finally:
            response.close()

    def _wait(self, endpoint: _Endpoint, attempt: int, delay: float | None, why: str) -> None:
        delay = self._delay(attempt, None) if delay is None else delay
        log.info("%s: %s; retry %d in %.1f s", endpoint.label, why, attempt + 1, delay)
        self._sleep(delay)

    def _status_error(
        self,
        endpoint: _Endpoint,
        response: httpx.Response,
        body: str,
        *,
        what: str,
        ref: Reference | None = None,
        tries: int = 1,
    ) -> RegistryError:
        """The error for a response whose status means failure (after ``tries`` tries)."""
        status, registry = response.status_code, endpoint.label
        detail = f" ({body})" if body else ""
        name = ref.familiar if ref is not None else what
        if status == 404:
            return ImageNotFound(
                f"{name} not found on {registry}{detail}; check the name, or "
                f"`cellbox login {endpoint.registry}` if it is private"
            )
        if status == 401:
            creds = self._creds(endpoint.credential_host)
            if creds is None:
                return AuthError(
                    f"{registry} wants credentials for {name}{detail}: the repository may "
                    f"not exist, or it is private; run `cellbox login {endpoint.registry}`"
                )
            url = httpx.URL(endpoint.url)
            if url.scheme == "http" and not is_loopback(url.host):
                return AuthError(
                    f"{registry} wants credentials for {name}, and cellbox does not send "
                    "them over plain http; use https for this registry"
                )
            return AuthError(
                f"{registry} refused the credentials of {creds.username!r} for {name}"
                f"{detail}; run `cellbox login {endpoint.registry}` again"
            )
        if status == 403:
            return AuthError(f"{registry} denied access to {name}{detail}")
        if status == 429:
            after = _retry_after(response)
            hint = f" (it asks to wait {after:.0f} s)" if after else ""
            return RateLimited(
                f"{registry} is rate-limiting requests for {name}{hint} ({_tries(tries)}); "
                f"wait and try again, `cellbox login {endpoint.registry}` for a higher "
                "limit, or configure a registry mirror"
            )
        if status >= 500:
            return RegistryUnavailable(
                f"{registry} keeps failing with HTTP {status} for {name}{detail} "
                f"({_tries(tries)}); try again later"
            )
        return RegistryError(f"{registry} answered HTTP {status} for {name}{detail}")

    # ---------------------------------------------------------------- manifests

    def _pull_scopes(self, ref: Reference) -> list[str]:
        return [f"repository:{ref.repository}:pull"]

    def _read_manifest(
        self, endpoint: _Endpoint, ref: Reference, target: str
    ) -> tuple[bytes, str | None, str | None]:
        """GET a manifest; return (raw bytes, Content-Type, Docker-Content-Digest)."""
        url = f"{endpoint.url}/v2/{ref.repository}/manifests/{target}"
        with self._request(
            endpoint,
            "GET",
            url,
            scopes=self._pull_scopes(ref),
            headers={"Accept": mt.ACCEPT_MANIFESTS},
            ref=ref,
        ) as response:
            if response.status_code != 200:
                raise self._status_error(
                    endpoint, response, _read_error(response), what=url, ref=ref
                )
            raw = _read_capped(
                response,
                MAX_MANIFEST_SIZE,
                lambda n: ManifestError(
                    f"the manifest of {ref.familiar} from {endpoint.label} is over the "
                    f"{MAX_MANIFEST_SIZE} byte cap ({n} bytes or more); refusing it"
                ),
            )
            return (
                raw,
                response.headers.get("content-type"),
                response.headers.get("docker-content-digest"),
            )

    def _fetch_document(
        self,
        endpoint: _Endpoint,
        ref: Reference,
        target: str,
        *,
        expected: Descriptor | None = None,
    ) -> tuple[str, str, bytes, dict[str, Any]]:
        """A manifest or index, verified: returns (digest, media type, raw, document)."""
        raw, content_type, header_digest = self._read_manifest(endpoint, ref, target)
        what = f"{ref.familiar} ({target})" if target != ref.manifest_ref else ref.familiar
        pinned = expected.digest if expected else (target if ":" in target else None)
        algorithm = pinned.split(":", 1)[0] if pinned else "sha256"
        digest = compute_digest(raw, algorithm)
        if pinned is not None and digest != pinned:
            raise ManifestError(
                f"the manifest of {what} from {endpoint.label} has digest {digest}, not the "
                f"{pinned} asked for; refusing it (the registry or a proxy altered it)"
            )
        if header_digest and _valid_digest(header_digest):
            header_algorithm = header_digest.split(":", 1)[0]
            if compute_digest(raw, header_algorithm) != header_digest:
                raise ManifestError(
                    f"the manifest of {what} from {endpoint.label} does not match the "
                    f"Docker-Content-Digest {header_digest} the registry sent with it"
                )
        if expected is not None and len(raw) != expected.size:
            raise ManifestError(
                f"the manifest {expected.digest} of {what} is {len(raw)} bytes; its index "
                f"says {expected.size}"
            )
        media_type, doc = parse_manifest(raw, content_type, what=what)
        if (
            expected is not None
            and expected.media_type in mt.INDEX_TYPES | mt.MANIFEST_TYPES
            and media_type != expected.media_type
        ):
            raise ManifestError(
                f"{what}: the index lists {expected.digest} as {expected.media_type}, but it "
                f"is a {media_type}"
            )
        return digest, media_type, raw, doc

    def _resolve(
        self, endpoint: _Endpoint, ref: Reference, wanted: Platform | None
    ) -> ResolvedManifest:
        digest, media_type, raw, doc = self._fetch_document(endpoint, ref, ref.manifest_ref)
        index_digest: str | None = None
        depth = 0
        while media_type in mt.INDEX_TYPES:
            if depth >= _MAX_INDEX_DEPTH:
                raise ManifestError(
                    f"{ref.familiar}: indexes nested more than {_MAX_INDEX_DEPTH} deep"
                )
            index_digest = index_digest or digest
            choice = select_platform(doc, wanted, what=ref.familiar)
            digest, media_type, raw, doc = self._fetch_document(
                endpoint, ref, choice.digest, expected=choice
            )
            depth += 1
        validate_image_manifest(doc, what=ref.familiar)
        return ResolvedManifest(ref, endpoint.url, index_digest, digest, media_type, raw, doc)

    def _each_endpoint(self, ref: Reference, action: Callable[[_Endpoint], Any]) -> Any:
        """Run ``action`` on each endpoint in turn until one answers; mirrors may fail."""
        endpoints = self._endpoints(ref)
        not_found: ImageNotFound | None = None
        for endpoint in endpoints[:-1]:
            try:
                return action(endpoint)
            except (ImageNotFound, RegistryUnavailable, AuthError, RateLimited) as exc:
                log.info("%s: %s; trying the next endpoint", endpoint.label, exc)
                if isinstance(exc, ImageNotFound) and not_found is None:
                    not_found = exc
        try:
            return action(endpoints[-1])
        except RegistryUnavailable as exc:
            # Offline with a mirror: "not found on the mirror" is the useful news, not the
            # upstream's DNS failure.
            if not_found is None:
                raise
            raise ImageNotFound(
                f"{not_found} (and {endpoints[-1].label} could not be reached: {exc})"
            ) from exc

    def get_manifest(self, ref: Reference, *, platform: str | None = None) -> ResolvedManifest:
        """Resolve ``ref`` to the image manifest for ``platform`` (default: this machine).

        Follows an index (nested ones too) with :func:`~cellbox.runtime.manifest.select_platform`,
        verifies every document's digest and size, and remembers which endpoint served it
        so that the blobs come from the same place.
        """
        wanted = Platform.parse(platform) if platform else None

        def resolve(endpoint: _Endpoint) -> ResolvedManifest:
            return self._resolve(endpoint, ref, wanted)

        resolved: ResolvedManifest = self._each_endpoint(ref, resolve)
        endpoint = next(e for e in self._endpoints(ref) if e.url == resolved.source)
        self._served_by[(ref.registry, ref.repository)] = endpoint
        return resolved

    def head_manifest(self, ref: Reference) -> str | None:
        """The digest ``ref`` points at now (``Docker-Content-Digest``), None if not said.

        A HEAD does not count against Docker Hub's pull quota. Raises ImageNotFound when
        the tag does not exist.
        """

        def head(endpoint: _Endpoint) -> str | None:
            url = f"{endpoint.url}/v2/{ref.repository}/manifests/{ref.manifest_ref}"
            with self._request(
                endpoint,
                "HEAD",
                url,
                scopes=self._pull_scopes(ref),
                headers={"Accept": mt.ACCEPT_MANIFESTS},
                ref=ref,
            ) as response:
                if response.status_code != 200:
                    raise self._status_error(endpoint, response, "", what=url, ref=ref)
                digest = response.headers.get("docker-content-digest")
                return digest if digest and _valid_digest(digest) else None

        result: str | None = self._each_endpoint(ref, head)
        return result

    # -------------------------------------------------------------------- blobs

    def iter_blob(self, ref: Reference, digest: str, size: int) -> Iterator[bytes]:
        """Stream blob ``digest`` of ``size`` bytes from ``ref``'s repository.

        Yields chunks of up to 1 MiB as they arrive, hashing each; stops with BlobError as
        soon as more than ``size`` bytes come, and at the end when the size or digest is
        wrong. A dropped connection is resumed with ``Range`` from where it broke; an
        endpoint that lacks the blob or fails gives way to the next (mirror, then upstream).
        Memory use does not grow with the blob.
        """
        _check_blob_digest(digest)
        if size < 0:
            raise BlobError(f"blob {digest}: negative size {size}")
        download = _Download(ref, digest, size)
        endpoints = self._blob_endpoints(ref)
        drops = 0
        while True:
            endpoint = endpoints[0]
            try:
                response, skip = self._open_blob(endpoint, download)
            except (ImageNotFound, RegistryUnavailable, RateLimited, AuthError) as exc:
                if len(endpoints) == 1:
                    raise
                log.info("%s: %s; trying the next endpoint", endpoint.label, exc)
                endpoints = endpoints[1:]
                continue
            before = download.received
            try:
                yield from download.consume(response, skip, endpoint.label)
            except httpx.TransportError as exc:
                drops = 0 if download.received > before else drops + 1
                if drops >= self.retries:
                    raise RegistryUnavailable(
                        f"the download of blob {digest} from {endpoint.label} broke off "
                        f"{drops} times in a row at byte {download.received} of {size}: {exc}"
                    ) from exc
                why = f"download broke off at {download.received}: {exc}"
                self._wait(endpoint, drops, None, why)
                continue
            finally:
                response.close()
            download.finish(endpoint.label)
            return

    def _open_blob(self, endpoint: _Endpoint, download: _Download) -> tuple[httpx.Response, int]:
        """GET the blob from where ``download`` stands; the response and bytes to skip."""
        ref = download.ref
        url = f"{endpoint.url}/v2/{ref.repository}/blobs/{download.digest}"
        headers = {"Accept-Encoding": "identity"}
        if download.received:
            headers["Range"] = f"bytes={download.received}-"
        response = self._send(
            endpoint, "GET", url, scopes=self._pull_scopes(ref), headers=headers, ref=ref
        )
        try:
            skip = self._check_blob_response(
                endpoint, response, ref, download.digest, download.size, download.received
            )
        except BaseException:
            response.close()
            raise
        return response, skip

    def _check_blob_response(
        self,
        endpoint: _Endpoint,
        response: httpx.Response,
        ref: Reference,
        digest: str,
        size: int,
        received: int,
    ) -> int:
        """Judge a blob response; return how many leading bytes to skip."""
        status = response.status_code
        if status == 416 and received:
            raise BlobError(
                f"blob {digest} of {ref.familiar} on {endpoint.label} is shorter than the "
                f"{size} bytes promised (resume at {received} refused)"
            )
        if status not in (200, 206):
            what = f"blob {digest} of {ref.familiar}"
            raise self._status_error(endpoint, response, _read_error(response), what=what)
        length = response.headers.get("content-length")
        if status == 200:
            if length is not None and length.isdigit() and int(length) != size:
                raise BlobError(
                    f"blob {digest} of {ref.familiar} on {endpoint.label} is {length} bytes; "
                    f"its descriptor says {size}"
                )
            return received
        start = _content_range_start(response.headers.get("content-range", ""))
        if start != received:
            raise BlobError(
                f"resuming blob {digest} at byte {received}, {endpoint.label} answered with "
                f"the range {_clean(response.headers.get('content-range', ''), 80)!r}"
            )
        return 0

    def get_blob_bytes(
        self, ref: Reference, digest: str, size: int, *, max_size: int = MAX_CONFIG_SIZE
    ) -> bytes:
        """A small blob (an image config) in memory, verified; refused above ``max_size``."""
        if size > max_size:
            raise BlobError(
                f"blob {digest} of {ref.familiar} is {size} bytes, over the {max_size} byte "
                "cap for configs"
            )
        return b"".join(self.iter_blob(ref, digest, size))

    def fetch_blob(
        self,
        ref: Reference,
        digest: str,
        size: int,
        dest: Path,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Download a blob into the new file ``dest``, verified; ``dest`` is removed on error.

        ``progress`` is called with the number of bytes written so far after each chunk.
        """
        done = 0
        try:
            with open(dest, "wb") as out:  # Python opens every fd O_CLOEXEC
                for chunk in self.iter_blob(ref, digest, size):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done)
        except BaseException:
            with suppress(OSError):
                Path(dest).unlink()
            raise

    # -------------------------------------------------------------------- login

    def ping(self, registry: str, credentials: Credentials | None = None) -> None:
        """Check that ``registry`` answers and accepts ``credentials`` (else the saved ones).

        ``registry`` may be written as in docker's config (``https://index.docker.io/v1/``)
        or as a host. Raises AuthError when the credentials are refused or needed, and
        RegistryUnavailable when the registry cannot be reached. For ``cellbox login``.
        """
        name = credential_key(registry)
        host = api_host(name)
        endpoint = _Endpoint(f"{self._scheme(host)}://{host}", name, name)
        creds = credentials if credentials is not None else self._creds(name)
        auth = RegistryAuth(
            endpoint=endpoint.url,
            registry=name,
            scopes=[],
            credentials=creds,
            cache=TokenCache(),
            timeout=self._timeout,
            user_agent=_USER_AGENT,
        )
        request = self._client.build_request("GET", f"{endpoint.url}/v2/")
        try:
            response = self._client.send(request, auth=auth, stream=True)
        except httpx.TransportError as exc:
            raise _unreachable(endpoint, request.url, exc) from exc
        response.close()  # the body says nothing we need
        if response.status_code == 401:
            who = f"the credentials of {creds.username!r}" if creds else "anonymous access"
            raise AuthError(f"{name} refused {who}")
        if response.status_code != 200:
            raise self._status_error(endpoint, response, "", what=f"{endpoint.url}/v2/")

    # --------------------------------------------------------------------- push

    def _push_scopes(self, ref: Reference) -> list[str]:
        return [f"repository:{ref.repository}:pull,push"]

    def blob_exists(self, ref: Reference, digest: str) -> bool:
        """True if ``ref``'s repository already has blob ``digest`` (a HEAD)."""
        _check_blob_digest(digest)
        endpoint = self._upstream(ref)
        url = f"{endpoint.url}/v2/{ref.repository}/blobs/{digest}"
        with self._request(endpoint, "HEAD", url, scopes=self._push_scopes(ref)) as response:
            if response.status_code == 200:
                return True
            if response.status_code == 404:
                return False
            raise self._status_error(endpoint, response, "", what=f"blob {digest}")

    def mount_blob(self, ref: Reference, digest: str, from_repository: str) -> bool:
        """Ask the registry to link blob ``digest`` from another repository of it.

        True when mounted. False when the registry would not (it opened an upload
        instead, which is cancelled): the caller then uploads the blob.
        """
        _check_blob_digest(digest)
        endpoint = self._upstream(ref)
        scopes = [*self._push_scopes(ref), f"repository:{from_repository}:pull"]
        url = httpx.URL(f"{endpoint.url}/v2/{ref.repository}/blobs/uploads/").copy_merge_params(
            {"mount": digest, "from": from_repository}
        )
        with self._request(endpoint, "POST", url, scopes=scopes, retry=False) as response:
            if response.status_code == 201:
                return True
            if response.status_code == 202:
                location = self._location(endpoint, response)
                with suppress(RegistryError):
                    self._send(
                        endpoint,
                        "DELETE",
                        location,
                        scopes=scopes,
                        retry=False,
                        authorize=_same_origin(location, endpoint),
                    ).close()
                return False
            raise self._status_error(
                endpoint, response, _read_error(response), what=f"mount of {digest}"
            )

    def upload_blob(
        self,
        ref: Reference,
        digest: str,
        size: int,
        source: Path | bytes,
        *,
        chunk_size: int = 32 << 20,
    ) -> None:
        """Upload a blob: one PUT up to ``chunk_size`` bytes, else PATCH chunks and a PUT.

        ``source`` is the blob's bytes or a file holding them; a failed upload is started
        again from the beginning (up to ``retries`` times).
        """
        _check_blob_digest(digest)
        attempt = 0
        while True:
            try:
                self._upload_once(ref, digest, size, source, chunk_size)
                return
            except (RegistryUnavailable, RateLimited, httpx.StreamConsumed) as exc:
                if attempt >= self.retries:
                    raise
                self._wait(self._upstream(ref), attempt, None, f"upload failed: {exc}")
                attempt += 1

    def _upload_once(
        self, ref: Reference, digest: str, size: int, source: Path | bytes, chunk_size: int
    ) -> None:
        endpoint = self._upstream(ref)
        scopes = self._push_scopes(ref)
        start_url = f"{endpoint.url}/v2/{ref.repository}/blobs/uploads/"
        with self._request(endpoint, "POST", start_url, scopes=scopes, retry=False) as response:
            if response.status_code != 202:
                raise self._status_error(
                    endpoint, response, _read_error(response), what=f"upload of {digest}"
                )
            location = self._location(endpoint, response)
        body = b""
        if size <= chunk_size:
            body = _read_source(source, size)
        else:
            sent = 0
            for offset, chunk in _chunks(source, chunk_size):
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                }
                with self._request(
                    endpoint,
                    "PATCH",
                    location,
                    scopes=scopes,
                    headers=headers,
                    content=chunk,
                    retry=False,
                    authorize=_same_origin(location, endpoint),
                ) as response:
                    if response.status_code != 202:
                        raise self._status_error(
                            endpoint, response, _read_error(response), what=f"upload of {digest}"
                        )
                    location = self._location(endpoint, response)
                sent += len(chunk)
            if sent != size:
                raise BlobError(f"the blob to upload is {sent} bytes, not {size}")
        put_url = location.copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        with self._request(
            endpoint,
            "PUT",
            put_url,
            scopes=scopes,
            headers=headers,
            content=body,
            retry=False,
            authorize=_same_origin(location, endpoint),
        ) as response:
            if response.status_code not in (201, 204):
                raise self._status_error(
                    endpoint, response, _read_error(response), what=f"upload of {digest}"
                )
            echoed = response.headers.get("docker-content-digest")
            if echoed and echoed != digest:
                raise BlobError(f"{endpoint.label} stored the upload of {digest} as {echoed}")

    def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> str:
        """Upload a manifest under ``ref``'s tag (or digest); return its digest."""
        endpoint = self._upstream(ref)
        digest = compute_digest(raw)
        if ref.digest and ref.digest != digest:
            raise ManifestError(f"the manifest to push has digest {digest}, not {ref.digest}")
        url = f"{endpoint.url}/v2/{ref.repository}/manifests/{ref.tag or digest}"
        with self._request(
            endpoint,
            "PUT",
            url,
            scopes=self._push_scopes(ref),
            headers={"Content-Type": media_type},
            content=raw,
        ) as response:
            if response.status_code not in (200, 201):
                raise self._status_error(
                    endpoint, response, _read_error(response), what=f"manifest of {ref.familiar}"
                )
            echoed = response.headers.get("docker-content-digest")
            if echoed and echoed != digest:
                raise ManifestError(
                    f"{endpoint.label} stored the manifest as {echoed}, not {digest}"
                )
        return digest

    def _location(self, endpoint: _Endpoint, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            raise RegistryError(f"{endpoint.label} opened an upload without a Location")
        url = httpx.URL(endpoint.url).join(location)
        if url.scheme not in ("http", "https"):
            raise RegistryError(f"{endpoint.label} sent an upload Location {location!r}")
        return url


# ------------------------------------------------------------------------- helpers


def _tries(tries: int) -> str:
    return "1 try" if tries == 1 else f"{tries} tries"


def _valid_digest(digest: str) -> bool:
    try:
        check_digest(digest)
    except InvalidReference:
        return False
    return True


def _check_blob_digest(digest: str) -> None:
    try:
        check_digest(digest, what="blob digest")
    except InvalidReference as exc:
        raise BlobError(str(exc)) from None


def _same_origin(url: httpx.URL, endpoint: _Endpoint) -> bool:
    base = httpx.URL(endpoint.url)
    return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds (it may be seconds or an HTTP-date); None if absent/bad."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _content_range_start(value: str) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*", value)
    return int(match.group(1)) if match else None


def _read_capped(response: httpx.Response, cap: int, error: Callable[[int], Exception]) -> bytes:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise error(int(length))
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > cap:
            raise error(len(body))
    return bytes(body)


def _read_error(response: httpx.Response) -> str:
    """The registry's error message from a failed response, capped and cleaned."""
    try:
        body = _read_capped(response, _MAX_ERROR_BODY, lambda n: ValueError(n))
    except (ValueError, httpx.HTTPError):
        return ""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for item in errors[:3]:
        if isinstance(item, dict):
            code, message = item.get("code"), item.get("message")
            parts.append(": ".join(str(p) for p in (code, message) if p))
    return _clean("; ".join(p for p in parts if p))


def _unreachable(endpoint: _Endpoint, url: httpx.URL, exc: httpx.TransportError) -> RegistryError:
    reason = _clean(str(exc) or type(exc).__name__)
    if "CERTIFICATE_VERIFY_FAILED" in reason or "SSL" in reason or "TLS" in reason:
        return RegistryUnavailable(
            f"TLS with {endpoint.label} at {url.scheme}://{url.netloc.decode()} failed: "
            f"{reason}; if it is a private registry, add its CA certificate to the system "
            f"store, or list it in insecure_registries to use plain http"
        )
    return RegistryUnavailable(
        f"cannot reach {endpoint.label} at {url.scheme}://{url.netloc.decode()}: {reason}; "
        "check the network and that the registry is running"
    )


def _chunks(source: Path | bytes, chunk_size: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` pieces of ``source``, ``chunk_size`` at a time."""
    if isinstance(source, bytes):
        for offset in range(0, len(source), chunk_size):
            yield offset, source[offset : offset + chunk_size]
        return
    with open(source, "rb") as handle:
        offset = 0
        while piece := handle.read(chunk_size):
            yield offset, piece
            offset += len(piece)


def _read_source(source: Path | bytes, size: int) -> bytes:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(data) != size:
        raise BlobError(f"the blob to upload is {len(data)} bytes, not {size}")
    return data
