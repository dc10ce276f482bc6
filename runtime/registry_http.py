"""The HTTP transport of the registry client: httpx with large socket reads.

httpcore reads a response body 64 KiB at a time, and each read passes through several
layers of Python generators; for a layer of hundreds of MB that per-read cost was half the
download time. This transport hands httpcore a network stream that reads up to 1 MiB at a
time (h11 takes any amount), which roughly doubled the throughput on loopback.

TLS uses the system's trust store (``ssl.create_default_context``, honouring
``SSL_CERT_FILE``/``SSL_CERT_DIR``), so a private registry's CA added to the system works
as it does for docker and podman.
"""

from __future__ import annotations

import ssl
import typing

import httpcore
import httpx

__all__ = ["READ_SIZE", "registry_transport"]

READ_SIZE = 1 << 20


class _LargeReadStream(httpcore.NetworkStream):
    """A network stream that reads at least :data:`READ_SIZE` bytes when asked to read."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max(max_bytes, READ_SIZE), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _LargeReadStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _LargeReadBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _LargeReadStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _LargeReadStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def registry_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport`` with 1 MiB reads and the system's CA certificates."""
    context = ssl.create_default_context()
    transport = httpx.HTTPTransport(verify=context, limits=limits)
    # httpx has no parameter for a network backend, so its pool is replaced by an equal
    # one that has ours (httpx is pinned to 0.28 in pyproject.toml).
    transport._pool.close()
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_LargeReadBackend(),
    )
    return transport
