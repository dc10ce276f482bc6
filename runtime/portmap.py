"""Published ports: ``-p [ip:][host_port:]container_port[/tcp|udp]``. Pure.

Unlike Docker, a port published without an address is bound to 127.0.0.1, not to every
address of the host: cellbox runs on notebook machines and classroom servers, where a
student's web app reachable from the whole network is a surprise, not a feature. Ask for
``0.0.0.0:8080:80`` (every address) or a specific host address to expose it further.

A host port of 0 (``-p 80`` or ``-p 127.0.0.1::80``) means "any free port": attach picks one
and reports it in ``NetworkInfo.ports``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["ANY_HOST_IP", "DEFAULT_HOST_IP", "PROTOCOLS", "PortMapping", "parse_port"]

DEFAULT_HOST_IP = "127.0.0.1"
ANY_HOST_IP = "0.0.0.0"
PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class PortMapping:
    """One published port: ``host_ip:host_port`` on the host forwards to ``container_port``.

    ``host_ip`` defaults to 127.0.0.1 (loopback only; see the module docstring); 0.0.0.0
    means every address of the host. ``host_port`` 0 means "pick a free port at attach".
    """

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = DEFAULT_HOST_IP

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"bad protocol {self.protocol!r} in a port mapping: use tcp or udp")
        if not 0 <= self.host_port <= 65535:
            raise ConfigError(f"bad host port {self.host_port}: use 1-65535 (or 0 for any)")
        if not 1 <= self.container_port <= 65535:
            raise ConfigError(f"bad container port {self.container_port}: use 1-65535")
        _check_host_ip(self.host_ip)

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.protocol}"

    def clashes(self, other: PortMapping) -> bool:
        """Whether both claim one host socket (0.0.0.0 claims every address)."""
        if self.protocol != other.protocol or self.host_port != other.host_port:
            return False
        return self.host_ip == other.host_ip or ANY_HOST_IP in (self.host_ip, other.host_ip)

    def to_json(self) -> dict[str, Any]:
        return {
            "host_ip": self.host_ip,
            "host_port": self.host_port,
            "container_port": self.container_port,
            "protocol": self.protocol,
        }

    @classmethod
    def from_json(cls, data: object) -> PortMapping:
        """The inverse of :meth:`to_json`; ``ConfigError`` on a malformed value."""
        if not isinstance(data, dict):
            raise ConfigError(f"a port mapping must be an object, not {data!r}")
        try:
            return cls(
                host_ip=str(data["host_ip"]),
                host_port=int(data["host_port"]),
                container_port=int(data["container_port"]),
                protocol=str(data["protocol"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad port mapping {data!r}: {exc}") from exc


def _check_host_ip(text: str) -> None:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise ConfigError(
            f"bad host address {text!r} in a port mapping: give an IPv4 address such as "
            "127.0.0.1 or 0.0.0.0 (IPv6 is not supported)"
        ) from exc
    if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        raise ConfigError(f"host address {text} in a port mapping is not a unicast address")


def _port_number(text: str, what: str, spec: str) -> int:
    if "-" in text:
        raise ConfigError(f"port ranges are not supported: {spec!r}; publish each port")
    if not text.isdigit() or len(text) > 5:
        raise ConfigError(f"bad {what} {text!r} in {spec!r}: expected a number 1-65535")
    return int(text)


def parse_port(text: str) -> PortMapping:
    """Parse a ``-p`` value: ``80``, ``8080:80``, ``127.0.0.1:8080:80/udp``, ``0.0.0.0::80``.

    Raises :class:`ConfigError` naming the bad part.
    """
    spec = text.strip()
    if not spec:
        raise ConfigError("empty port mapping: use [ip:][host_port:]container_port[/tcp|udp]")
    body, slash, protocol = spec.partition("/")
    protocol = protocol.lower() if slash else "tcp"
    if protocol not in PROTOCOLS:
        raise ConfigError(f"bad protocol {protocol!r} in {spec!r}: use tcp or udp")
    if body.startswith("["):
        raise ConfigError(f"IPv6 host addresses are not supported: {spec!r}")
    parts = body.split(":")
    if len(parts) == 1:
        host_ip, host, container = DEFAULT_HOST_IP, "", parts[0]
    elif len(parts) == 2:
        host_ip, (host, container) = DEFAULT_HOST_IP, parts
    elif len(parts) == 3:
        host_ip, host, container = parts
        host_ip = host_ip or DEFAULT_HOST_IP
    else:
        raise ConfigError(
            f"bad port mapping {spec!r}: use [ip:][host_port:]container_port[/tcp|udp]"
        )
    container_port = _port_number(container, "container port", spec)
    host_port = _port_number(host, "host port", spec) if host else 0
    if container_port == 0 or (host and host_port == 0):
        raise ConfigError(f"port 0 is not a port in {spec!r}: use 1-65535")
    return PortMapping(
        host_ip=host_ip, host_port=host_port, container_port=container_port, protocol=protocol
    )
