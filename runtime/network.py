"""Container networking: ``none``, ``bridge`` and ``host``, attach, detach and prune.

Modes
    ``none``    the container's own network namespace with only ``lo``, brought up by the
                container's PID 1 itself with :func:`loopback_up` (no pyroute2 involved).
    ``bridge``  a veth pair per container: ``cbx<id[:12]>`` on the host, enslaved to the
                cellbox bridge (``Settings.bridge``, default ``cellbox0``, created on first
                use), and ``eth0`` created directly inside the container's netns with an
                address from the bridge subnet (``Settings.subnet``, default 10.89.0.0/16 —
                not podman's 10.88.0.0/16) and a default route via the bridge. Traffic out
                is masqueraded; published ports are DNAT (see :mod:`.nat`), bound to
                127.0.0.1 unless another host address is asked for (see :mod:`.portmap`).
    ``host``    no network namespace: nothing to do.

The container's host-side owner calls :func:`attach` with the host pid of the container's
PID 1 while PID 1 waits, :func:`detach` when the container stops (idempotent), and
:func:`prune` after a crash. All changes to one bridge happen under its lease lock
(:class:`.ipam.LeaseStore`), so concurrent ``cellbox`` processes and a kernel's threads
can attach, detach and prune at once. One bridge belongs to one ``CELLBOX_RUN``.

Machine-wide settings touched by ``bridge`` (like Docker and podman, and left in place):
``net.ipv4.ip_forward=1`` (needed for traffic out through NAT) and, on the bridge only,
``route_localnet=1`` (needed for published ports on 127.0.0.1; guarded in :mod:`.nat`).

This module is the lean front: ``none`` and ``host`` import nothing more. The bridge's
machinery (:mod:`.bridge`, with the lease file, nftables and pyroute2 at ≈ 200 ms) is
imported on the first bridge operation; :func:`preload` starts that in the background.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .loopback import loopback_up
from .portmap import PortMapping, parse_port

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "MODES",
    "NetworkInfo",
    "PortMapping",
    "attach",
    "detach",
    "inspect",
    "loopback_up",
    "parse_alias",
    "parse_port",
    "preload",
    "prune",
    "veth_alias",
    "veth_name",
]

MODES = ("none", "bridge", "host")
VETH_PREFIX = "cbx"
CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
BRIDGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,14}")


@dataclass(frozen=True)
class NetworkInfo:
    """What :func:`attach` set up: for ``bridge`` the address, gateway, veth and ports."""

    mode: str
    ip: str | None = None
    prefix: int | None = None
    gateway: str | None = None
    bridge: str | None = None
    veth_host: str | None = None
    ports: list[PortMapping] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ip": self.ip,
            "prefix": self.prefix,
            "gateway": self.gateway,
            "bridge": self.bridge,
            "veth_host": self.veth_host,
            "ports": [port.to_json() for port in self.ports],
        }


def veth_name(container_id: str) -> str:
    """The host-side veth of a container: ``cbx`` + the first 12 hex digits of its id."""
    return VETH_PREFIX + container_id[:12]


def veth_alias(container_id: str, ip: ipaddress.IPv4Address) -> str:
    """The alias of a container's host-side veth: enough to rebuild its lease."""
    return f"cellbox {container_id} {ip}"


def parse_alias(alias: str) -> tuple[str, ipaddress.IPv4Address] | None:
    """(container id, address) from a veth alias cellbox wrote; None for anything else."""
    parts = alias.split()
    if len(parts) != 3 or parts[0] != "cellbox" or not CONTAINER_ID.fullmatch(parts[1]):
        return None
    try:
        return parts[1], ipaddress.IPv4Address(parts[2])
    except ValueError:
        return None


def check_id(container_id: str) -> None:
    """:class:`ConfigError` unless ``container_id`` is 12-64 lower-case hex digits."""
    if not CONTAINER_ID.fullmatch(container_id):
        raise ConfigError(f"bad container id {container_id!r}: expected 12-64 hex digits")


def bridge_name(settings: Settings) -> str:
    """The configured bridge name, checked (it ends up in netlink and nft)."""
    if not BRIDGE_NAME.fullmatch(settings.bridge):
        raise ConfigError(
            f"bad bridge name {settings.bridge!r}: use up to 15 letters, digits and _, "
            "starting with a letter (CELLBOX_BRIDGE or `bridge` in the config file)"
        )
    return settings.bridge


def state_dir(settings: Settings) -> Path:
    """Where the bridge's lease file and lock live: ``$CELLBOX_RUN/network/<bridge>``."""
    return Path(settings.run) / "network" / bridge_name(settings)


def link_exists(name: str) -> bool:
    return os.path.lexists(f"/sys/class/net/{name}")


def preload() -> None:
    """Start importing the bridge machinery (pyroute2) in the background; returns at once.

    Call it before starting a ``--network bridge`` container, so that :func:`attach` does
    not wait ≈ 200 ms for the import while the container's init waits for the network.
    """
    from . import rtnl

    rtnl.preload()


def attach(
    container_id: str, pid: int, mode: str, ports: list[PortMapping], settings: Settings
) -> NetworkInfo:
    """Connect the container whose PID 1 has host pid ``pid`` to the network ``mode``.

    ``none`` and ``host`` need nothing here (``ports`` must be empty: there is nothing to
    publish to). ``bridge`` creates the bridge and its nft table on first use, a veth pair
    into the container's netns, its address, default route and published ports. Safe to
    call again for a container whose previous attach was never detached (a crash): its
    leftovers are replaced and it keeps its address. Raises :class:`NetworkError` (nothing
    is left half-made) or :class:`ConfigError` for bad arguments.
    """
    check_id(container_id)
    if mode not in MODES:
        raise ConfigError(f"unknown network mode {mode!r}: use none, bridge or host")
    if mode != "bridge":
        if ports:
            why = "the container has no network" if mode == "none" else "the ports are the host's"
            raise ConfigError(
                f"cannot publish ports with --network {mode}: {why}; use --network bridge "
                "or drop -p"
            )
        return NetworkInfo(mode=mode)
    if pid <= 0:
        raise ConfigError(f"bad pid {pid} for the container's init")
    if os.geteuid() != 0:
        raise ConfigError(
            "--network bridge needs root (it creates a bridge, veths and nft rules); "
            "rootless containers use --network none"
        )
    from . import bridge

    return bridge.attach(container_id, pid, ports, settings)


def detach(container_id: str, settings: Settings) -> None:
    """Undo :func:`attach`: remove the veth, release the address, withdraw published ports.

    Idempotent, and cheap for containers that were never on the bridge (no lease, no
    veth: nothing is imported). The veth is deleted explicitly rather than left to the
    netns's death: the kernel removes it asynchronously, and a quick restart would find
    the name still taken.
    """
    check_id(container_id)
    if not (state_dir(settings) / "leases.json").exists() and not link_exists(
        veth_name(container_id)
    ):
        return
    from . import bridge

    bridge.detach(container_id, settings)


def inspect(container_id: str, settings: Settings) -> NetworkInfo | None:
    """The bridge network of a container, from its lease (None if it holds none)."""
    check_id(container_id)
    if not (state_dir(settings) / "leases.json").exists():
        return None
    from . import bridge

    return bridge.inspect(container_id, settings)


def prune(live_ids: set[str], settings: Settings) -> list[str]:
    """Remove the networking of containers not in ``live_ids``; say what was removed.

    Leases, veths on the bridge and published ports of containers that no longer exist go;
    when no container is left on the bridge, the bridge and its nft table go too. A damaged
    lease file is rebuilt from what the kernel holds: each veth's alias names its container
    and address, each published port's comment its container.
    """
    bridge_name(settings)
    from . import bridge

    return bridge.prune(live_ids, settings)
