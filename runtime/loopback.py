"""Bring ``lo`` up in the current network namespace, with two ioctls and nothing heavy.

A new network namespace starts with ``lo`` down. The container's PID 1 calls
:func:`loopback_up` right after unsharing its netns (``--network none`` needs nothing else),
on the container start path, where every import shows in the start time: this module
imports only ``fcntl``, ``sys`` and ``_socket`` (the C module, without the ``socket``
wrapper's enum machinery) — no pyroute2, no asyncio.
"""

from __future__ import annotations

import _socket
import fcntl
import sys

from .errors import NetworkError

__all__ = ["loopback_up"]

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFNAMSIZ = 16
IFREQ_SIZE = 40  # struct ifreq: the name, then a 24-byte union (ifr_flags is a short)


def _ifreq(name: bytes, flags: int) -> bytes:
    return (
        name.ljust(IFNAMSIZ, b"\0")
        + flags.to_bytes(2, sys.byteorder)
        + bytes(IFREQ_SIZE - IFNAMSIZ - 2)
    )


def loopback_up() -> None:
    """Set ``IFF_UP`` on ``lo`` in the calling thread's network namespace (idempotent)."""
    try:
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"cannot open a socket to bring up the loopback: {exc}") from exc
    try:
        reply = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, _ifreq(b"lo", 0))
        flags = int.from_bytes(reply[IFNAMSIZ : IFNAMSIZ + 2], sys.byteorder)
        if not flags & IFF_UP:
            fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, _ifreq(b"lo", flags | IFF_UP))
    except OSError as exc:
        raise NetworkError(
            f"cannot bring up the loopback interface lo: {exc}; the container needs "
            "CAP_NET_ADMIN in its network namespace at this point"
        ) from exc
    finally:
        sock.close()
