"""The address allocator of the cellbox bridge: one lease per container, kept under a flock.

The pure part (:class:`Subnet`, :class:`Lease`, :class:`LeaseTable`) decides which address a
container gets and which published ports collide; it does no I/O and is unit-tested with
plain values. :class:`LeaseStore` is the I/O part: the table lives in one JSON file in
``$CELLBOX_RUN/network/<bridge>/leases.json`` (it dies with the machine, like the bridge and
the veths it describes), read and rewritten atomically while an exclusive ``flock`` on a
sibling lock file is held. Every caller that changes the bridge, its veths or its nft table
holds that lock, so two ``cellbox run`` processes never hand out one address twice nor race
a ``prune`` that is removing the bridge.

Addresses are handed out round-robin after the last one given, not lowest-first: an address
just released may still sit in a peer's ARP cache or in conntrack, and reusing it at once
would send that traffic to the wrong container.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, NetworkError
from .portmap import PortMapping

__all__ = ["Lease", "LeaseStore", "LeaseTable", "Subnet"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Subnet:
    """The bridge's IPv4 network; the gateway (the bridge's own address) is its first host."""

    network: ipaddress.IPv4Network

    @classmethod
    def parse(cls, text: str) -> Subnet:
        """``"10.89.0.0/16"`` → a Subnet; :class:`ConfigError` when it cannot be one."""
        try:
            network = ipaddress.IPv4Network(text.strip(), strict=True)
        except ValueError as exc:
            raise ConfigError(
                f"bad bridge subnet {text!r}: {exc}; give an IPv4 network such as 10.89.0.0/16"
                " (CELLBOX_SUBNET or `subnet` in the config file)"
            ) from exc
        if network.prefixlen > 29:
            raise ConfigError(
                f"bridge subnet {network} is too small: it needs room for the bridge and "
                "containers; use a prefix of /29 or shorter"
            )
        if network.is_loopback or network.is_multicast or network.is_link_local:
            raise ConfigError(f"bridge subnet {network} is not usable for containers")
        return cls(network)

    @property
    def prefix(self) -> int:
        return self.network.prefixlen

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 1

    @property
    def first(self) -> ipaddress.IPv4Address:
        """The lowest address a container can get (the one after the gateway)."""
        return self.network.network_address + 2

    @property
    def last(self) -> ipaddress.IPv4Address:
        return self.network.broadcast_address - 1

    def __contains__(self, address: object) -> bool:
        return isinstance(address, ipaddress.IPv4Address) and (self.first <= address <= self.last)

    def __str__(self) -> str:
        return str(self.network)


@dataclass(frozen=True)
class Lease:
    """What one container holds on the bridge: its address, host-side veth, published ports."""

    container_id: str
    ip: ipaddress.IPv4Address
    veth: str
    ports: tuple[PortMapping, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": str(self.ip),
            "veth": self.veth,
            "ports": [port.to_json() for port in self.ports],
        }

    @classmethod
    def from_json(cls, container_id: str, data: object) -> Lease:
        if not isinstance(data, dict):
            raise ValueError(f"lease of {container_id} is not an object")
        veth = data.get("veth")
        ports = data.get("ports", [])
        if not isinstance(veth, str) or not isinstance(ports, list):
            raise ValueError(f"lease of {container_id} lacks veth or ports")
        return cls(
            container_id=container_id,
            ip=ipaddress.IPv4Address(str(data.get("ip"))),
            veth=veth,
            ports=tuple(PortMapping.from_json(port) for port in ports),
        )


@dataclass
class LeaseTable:
    """Every lease on one bridge. Pure: :class:`LeaseStore` loads and saves it."""

    subnet: Subnet
    leases: dict[str, Lease] = field(default_factory=dict)
    last: ipaddress.IPv4Address | None = None

    def get(self, container_id: str) -> Lease | None:
        return self.leases.get(container_id)

    def next_address(self) -> ipaddress.IPv4Address:
        """The first free address after the last one handed out, wrapping around."""
        used = {lease.ip for lease in self.leases.values()}
        size = int(self.subnet.last) - int(self.subnet.first) + 1
        start = self.last + 1 if self.last is not None and self.last in self.subnet else None
        offset = int(start) - int(self.subnet.first) if start is not None else 0
        for step in range(size):
            candidate = self.subnet.first + (offset + step) % size
            if candidate not in used:
                return candidate
        raise NetworkError(
            f"no free address left in bridge subnet {self.subnet} ({len(used)} in use); "
            "remove stopped containers' networks with `cellbox prune` or configure a larger "
            "CELLBOX_SUBNET"
        )

    def port_conflict(self, container_id: str, port: PortMapping) -> Lease | None:
        """The lease of another container that already publishes ``port``'s host socket."""
        for lease in self.leases.values():
            if lease.container_id == container_id:
                continue
            if any(port.clashes(theirs) for theirs in lease.ports):
                return lease
        return None

    def allocate(self, container_id: str, veth: str, ports: tuple[PortMapping, ...] = ()) -> Lease:
        """Give ``container_id`` an address (its old one if it still holds a lease)."""
        for port in ports:
            other = self.port_conflict(container_id, port)
            if other is not None:
                raise NetworkError(
                    f"cannot publish {port}: container {other.container_id[:12]} already "
                    "publishes that host port; choose another host port"
                )
        old = self.leases.get(container_id)
        ip = old.ip if old is not None else self.next_address()
        lease = Lease(container_id, ip, veth, ports)
        self.leases[container_id] = lease
        if old is None:
            self.last = ip
        return lease

    def release(self, container_id: str) -> Lease | None:
        return self.leases.pop(container_id, None)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "subnet": str(self.subnet),
            "last": str(self.last) if self.last is not None else None,
            "leases": {cid: lease.to_json() for cid, lease in sorted(self.leases.items())},
        }

    @classmethod
    def from_json(cls, data: object) -> LeaseTable:
        """Parse a saved table; ``ValueError`` on anything malformed."""
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError("not a version 1 lease table")
        network = ipaddress.IPv4Network(str(data.get("subnet")))
        raw = data.get("leases")
        if not isinstance(raw, dict):
            raise ValueError("leases is not an object")
        last = data.get("last")
        table = cls(
            subnet=Subnet(network),
            leases={cid: Lease.from_json(cid, value) for cid, value in raw.items()},
            last=ipaddress.IPv4Address(last) if isinstance(last, str) else None,
        )
        return table


class LeaseStore:
    """The lease file of one bridge and its lock. Use :meth:`locked` around every change."""

    def __init__(self, directory: Path, subnet: Subnet) -> None:
        self.directory = directory
        self.subnet = subnet
        self.path = directory / "leases.json"
        self._lock_path = directory / "lock"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the bridge's exclusive lock (blocking) for the duration of the block."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise NetworkError(
                f"cannot open the network lock {self._lock_path}: {exc}; is CELLBOX_RUN writable?"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def load(self) -> LeaseTable:
        """The current table (empty when there is none yet). Call with the lock held."""
        try:
            with open(self.path, "rb") as f:  # Python opens files O_CLOEXEC
                data = json.load(f)
        except FileNotFoundError:
            return LeaseTable(self.subnet)
        except (OSError, ValueError) as exc:
            raise NetworkError(
                f"cannot read the lease file {self.path}: {exc}; run `cellbox prune` to "
                "rebuild it from the running containers"
            ) from exc
        try:
            table = LeaseTable.from_json(data)
        except (ValueError, TypeError) as exc:
            raise NetworkError(
                f"the lease file {self.path} is damaged ({exc}); run `cellbox prune` to "
                "rebuild it from the running containers"
            ) from exc
        if table.subnet != self.subnet and table.leases:
            raise NetworkError(
                f"the bridge's containers use subnet {table.subnet} but the settings now say "
                f"{self.subnet}; stop those containers (or run `cellbox prune`) before "
                "changing CELLBOX_SUBNET"
            )
        table.subnet = self.subnet
        return table

    def save(self, table: LeaseTable) -> None:
        """Write ``table`` atomically (temp file + rename). Call with the lock held."""
        tmp = self.path.with_name(f".leases.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(table.to_json(), f, indent=1)
                f.write("\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            raise NetworkError(f"cannot write the lease file {self.path}: {exc}") from exc

    def remove(self) -> None:
        """Forget the table (after the bridge is gone). Call with the lock held.

        The lock file stays: unlinking a file others may be waiting to flock would let a
        waiter and a newcomer each hold "the" lock on two different inodes.
        """
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise NetworkError(f"cannot remove the lease file {self.path}: {exc}") from exc
