"""The ``bridge`` mode behind :mod:`.network`: attach, detach, inspect and prune for real.

Every operation holds the bridge's lease lock for its whole length and follows one order:
read the lease table, change the kernel (links over rtnetlink in :mod:`.rtnl`, the nft
table in :mod:`.nat`), then save the table. Should a step fail, attach undoes what it made
and the saved table is untouched; should the process die midway, the kernel holds more
than the table says, and :func:`prune` (or attaching that container again) removes it —
the veth's name and alias and the nft elements' comments say whose each thing is.

Imported only for ``bridge`` work: it pulls in pyroute2 (≈ 200 ms) through :mod:`.rtnl`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import nat, network, rtnl
from .errors import ConfigError, NetworkError
from .ipam import Lease, LeaseStore, LeaseTable, Subnet
from .portmap import PortMapping

if TYPE_CHECKING:
    from .network import NetworkInfo
    from .settings import Settings

__all__ = ["attach", "detach", "inspect", "prune"]


def _store(settings: Settings) -> LeaseStore:
    return LeaseStore(network.state_dir(settings), Subnet.parse(settings.subnet))


def _info(lease: Lease, subnet: Subnet, bridge: str) -> NetworkInfo:
    return network.NetworkInfo(
        mode="bridge",
        ip=str(lease.ip),
        prefix=subnet.prefix,
        gateway=str(subnet.gateway),
        bridge=bridge,
        veth_host=lease.veth,
        ports=list(lease.ports),
    )


def _published(table: LeaseTable) -> list[nat.Published]:
    return [
        nat.Published(port, lease.ip, lease.container_id)
        for lease in table.leases.values()
        for port in lease.ports
    ]


# -- published ports ------------------------------------------------------------------------


def _probe(port: PortMapping) -> int:
    """Bind ``port``'s host socket once to prove no program holds it; the port number.

    DNAT would silently win over a program listening on the same port, so cellbox refuses
    instead. Nothing is held afterwards: a program that binds the port later is shadowed
    for connections that go through the DNAT (documented limitation).
    """
    import socket

    kind = socket.SOCK_STREAM if port.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # a TIME_WAIT leftover is no owner; a listener still makes bind fail
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((port.host_ip, port.host_port))
        except OSError as exc:
            if exc.errno == 98:  # EADDRINUSE
                raise NetworkError(
                    f"cannot publish {port}: {port.host_ip}:{port.host_port}/{port.protocol} "
                    "is already in use on the host; choose another host port"
                ) from exc
            if exc.errno == 99:  # EADDRNOTAVAIL
                raise NetworkError(
                    f"cannot publish {port}: {port.host_ip} is not an address of this host"
                ) from exc
            raise NetworkError(f"cannot publish {port}: {exc}") from exc
        bound: int = sock.getsockname()[1]
        return bound


def _resolve_ports(
    ports: Iterable[PortMapping], table: LeaseTable, container_id: str
) -> tuple[PortMapping, ...]:
    """Check ``ports`` against each other, other containers and the host; fill in port 0."""
    resolved: list[PortMapping] = []
    for port in ports:
        resolved.append(_resolve_port(port, table, container_id, resolved))
    return tuple(resolved)


def _resolve_port(
    port: PortMapping, table: LeaseTable, container_id: str, taken: list[PortMapping]
) -> PortMapping:
    if port.host_port:
        if any(port.clashes(other) for other in taken):
            raise ConfigError(f"port {port} is published twice")
        other = table.port_conflict(container_id, port)
        if other is not None:
            raise NetworkError(
                f"cannot publish {port}: container {other.container_id[:12]} already "
                "publishes that host port; choose another host port"
            )
        _probe(port)
        return port
    # any free port: the kernel's choice is free of host programs, but may be one another
    # container publishes (nothing listens on a DNAT'd port), so check and try again
    for _attempt in range(20):
        chosen = replace(port, host_port=_probe(port))
        if table.port_conflict(container_id, chosen) is None and not any(
            chosen.clashes(other) for other in taken
        ):
            return chosen
    raise NetworkError(f"found no free host port for {port}")


# -- attach ---------------------------------------------------------------------------------


def attach(
    container_id: str, pid: int, ports: list[PortMapping], settings: Settings
) -> NetworkInfo:
    """:func:`.network.attach` for ``bridge`` (arguments already checked)."""
    store = _store(settings)
    with store.locked():
        table = store.load()
        lease = rtnl.call_off_loop(lambda: _attach(container_id, pid, ports, store, table))
        return _info(lease, store.subnet, store.directory.name)


def _ensure_bridge(host: Any, bridge: str, subnet: Subnet, others: bool) -> tuple[int, bool]:
    """The bridge's index and whether it was (re)made, so the nft table must be too."""
    gateway = ipaddress.IPv4Interface(f"{subnet.gateway}/{subnet.prefix}")
    link = host.link(bridge)
    if link is not None and link["kind"] != "bridge":
        raise NetworkError(
            f"{bridge} exists but is a {link['kind'] or 'plain'} link, not a bridge; set "
            "CELLBOX_BRIDGE to another name"
        )
    if link is None:
        clashes = host.conflicting_routes(subnet.network, bridge)
        if clashes:
            raise NetworkError(
                f"the bridge subnet {subnet} overlaps routes already on this host "
                f"({', '.join(clashes)}); set CELLBOX_SUBNET to a free range"
            )
        return host.create_bridge(bridge, gateway), True
    if gateway in host.addresses(link["index"]) and link["up"]:
        return link["index"], False
    if others:
        raise NetworkError(
            f"bridge {bridge} lost its address {gateway} while containers use it; stop them "
            "and run `cellbox prune`"
        )
    host.set_address(link["index"], bridge, gateway)  # e.g. the subnet setting changed
    return link["index"], True


def _check_own_netns(pid: int) -> None:
    """The container must have a netns of its own, or its eth0 would land on the host."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/net")
        ours = os.stat("/proc/thread-self/ns/net")
    except OSError as exc:
        raise NetworkError(
            f"cannot see the network namespace of pid {pid}: {exc}; the container's init is gone"
        ) from exc
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        raise NetworkError(
            f"pid {pid} shares the host's network namespace; --network bridge needs the "
            "container's own (was it started with --network host?)"
        )


def _attach(
    container_id: str, pid: int, ports: list[PortMapping], store: LeaseStore, table: LeaseTable
) -> Lease:
    _check_own_netns(pid)
    bridge = store.directory.name
    veth = network.veth_name(container_id)
    others = any(cid != container_id for cid in table.leases)
    with rtnl.Host() as host:
        index, made = _ensure_bridge(host, bridge, store.subnet, others)
        rtnl.write_sysctl("net/ipv4/ip_forward", "1")
        rtnl.write_sysctl(f"net/ipv4/conf/{bridge}/route_localnet", "1")
        old = table.get(container_id)
        if old is not None:  # attached before and never detached: clear what is left
            _withdraw(host, bridge, old)
        resolved = _resolve_ports(ports, table, container_id)
        if old is None and network.link_exists(veth):  # a crash lost the lease, not the veth
            _delete_own_veth(host, veth, bridge)
        lease = table.allocate(container_id, veth, resolved)
        try:
            host.add_veth(veth, index, pid, network.veth_alias(container_id, lease.ip))
            rtnl.configure_container(
                pid,
                ipaddress.IPv4Interface(f"{lease.ip}/{store.subnet.prefix}"),
                store.subnet.gateway,
            )
            if made or not others:
                # a new bridge, or nobody else on it: (re)install the whole table, which also
                # clears anything a crash left in it
                nat.run_nft(
                    nat.table_script(bridge, store.subnet.network, _published(table)),
                    what=f"install the NAT table of bridge {bridge}",
                )
            elif lease.ports:
                _publish(bridge, store.subnet, table, lease)
            store.save(table)
        except BaseException:
            table.release(container_id)
            with contextlib.suppress(NetworkError):  # report the error that got us here
                host.delete_link(veth)
            raise
    return lease


def _publish(bridge: str, subnet: Subnet, table: LeaseTable, lease: Lease) -> None:
    mine = [nat.Published(port, lease.ip, lease.container_id) for port in lease.ports]
    try:
        nat.run_nft(nat.publish_script(bridge, mine), what=f"publish {_ports_text(lease)}")
    except nat.NftError as exc:
        if not (exc.missing or exc.exists):
            raise
        # the table is gone (a flushed ruleset) or holds elements of containers that no
        # longer have a lease (a crash): rebuild it from the leases, which are the truth
        nat.run_nft(
            nat.table_script(bridge, subnet.network, _published(table)),
            what=f"rebuild the NAT table of bridge {bridge}",
        )


def _ports_text(lease: Lease) -> str:
    return ", ".join(str(port) for port in lease.ports)


# -- detach ---------------------------------------------------------------------------------


def _withdraw(host: Any, bridge: str, lease: Lease) -> None:
    """Remove a lease's veth and published ports (whatever of them still exists)."""
    host.delete_link(lease.veth)
    if not lease.ports:
        return
    try:
        nat.run_nft(
            nat.unpublish_script(bridge, lease.ports), what=f"withdraw {_ports_text(lease)}"
        )
    except nat.NftError as exc:
        if not exc.missing:
            raise
        # some element (or the table) is already gone: delete what is left, one by one
        for item in nat.list_published(bridge) or []:
            if item.container_id == lease.container_id:
                nat.run_nft(nat.unpublish_script(bridge, [item.port]), what=f"withdraw {item.port}")


def detach(container_id: str, settings: Settings) -> None:
    """:func:`.network.detach` once there is a lease file or a veth to look at."""
    store = _store(settings)
    veth = network.veth_name(container_id)
    with store.locked():
        try:
            table = store.load()
        except NetworkError:
            _detach_without_leases(container_id, store.directory.name)
            return  # the damaged file stays for prune, which rebuilds it
        lease = table.release(container_id)
        if lease is None and not network.link_exists(veth):
            return

        def work() -> None:
            with rtnl.Host() as host:
                if lease is not None:
                    _withdraw(host, store.directory.name, lease)
                else:
                    _delete_own_veth(host, veth, store.directory.name)

        rtnl.call_off_loop(work)
        store.save(table)


def _detach_without_leases(container_id: str, bridge: str) -> None:
    """Detach by what the kernel says is the container's: its veth and commented ports."""

    def work() -> None:
        with rtnl.Host() as host:
            _delete_own_veth(host, network.veth_name(container_id), bridge)
        mine = [p.port for p in nat.list_published(bridge) or [] if p.container_id == container_id]
        nat.run_nft(nat.unpublish_script(bridge, mine), what="withdraw published ports")

    rtnl.call_off_loop(work)


def _delete_own_veth(host: Any, name: str, bridge: str) -> bool:
    """Delete ``name`` only if it is a veth on our bridge (never someone else's link)."""
    link = host.link(name)
    owner = host.link(bridge)
    if link is None or link["kind"] != "veth":
        return False
    if owner is not None and link["master"] not in (None, owner["index"]):
        return False
    return bool(host.delete_link(name))


def inspect(container_id: str, settings: Settings) -> NetworkInfo | None:
    """:func:`.network.inspect`: the container's lease as a NetworkInfo."""
    store = _store(settings)
    with store.locked():
        lease = store.load().get(container_id)
    return None if lease is None else _info(lease, store.subnet, store.directory.name)


# -- prune ----------------------------------------------------------------------------------


def prune(live_ids: set[str], settings: Settings) -> list[str]:
    """:func:`.network.prune`."""
    store = _store(settings)
    bridge = store.directory.name
    if not store.path.exists() and not network.link_exists(bridge):
        # nothing of ours on this machine, unless a crash left the table alone
        return [f"nft table ip {bridge}"] if _delete_table_if_any(bridge) else []
    with store.locked():
        removed: list[str] = []
        try:
            table: LeaseTable | None = store.load()
        except NetworkError:
            table = None
            removed.append(f"damaged lease file {store.path}")
        table, bridge_left, more = rtnl.call_off_loop(
            lambda: _prune_links(bridge, store.subnet, table, live_ids)
        )
        removed += more
        if bridge_left:
            removed += _prune_published(bridge, store.subnet, table)
            store.save(table)
            return removed
        if _delete_table_if_any(bridge):
            removed.append(f"nft table ip {bridge}")
        if table.leases:
            store.save(table)  # live containers whose bridge someone removed: keep their
        else:  # addresses, a new attach makes the bridge again
            store.remove()
        return removed


def _delete_table_if_any(bridge: str) -> bool:
    try:
        return nat.delete_table(bridge)
    except NetworkError as exc:
        if "nftables is missing" in str(exc):
            return False  # no nft, so no table either
        raise


def _recover(subnet: Subnet, ports: dict[str, str], live_ids: set[str], bridge: str) -> LeaseTable:
    """A lease table rebuilt from the veth aliases and the nft comments of live containers."""
    table = LeaseTable(subnet)
    published = nat.list_published(bridge) or []
    for name, alias in ports.items():
        found = network.parse_alias(alias)
        if found is None or found[0] not in live_ids or found[1] not in subnet:
            continue
        cid, ip = found
        mine = tuple(item.port for item in published if item.container_id == cid)
        table.leases[cid] = Lease(cid, ip, name, mine)
    return table


def _prune_links(
    bridge: str, subnet: Subnet, table: LeaseTable | None, live_ids: set[str]
) -> tuple[LeaseTable, bool, list[str]]:
    """Drop leases and veths of dead containers, and the bridge once nobody uses it.

    Returns the pruned table, whether the bridge is still there, and what went.
    """
    removed: list[str] = []
    with rtnl.Host() as host:
        link = host.link(bridge)
        is_bridge = link is not None and link["kind"] == "bridge"
        ports = host.ports(link["index"]) if link is not None and is_bridge else {}
        if table is None:
            table = _recover(subnet, ports, live_ids, bridge)
        for cid in [cid for cid in table.leases if cid not in live_ids]:
            lease = table.leases.pop(cid)
            removed.append(f"lease {lease.ip} of container {cid[:12]}")
        if not is_bridge or link is None:
            return table, False, removed
        keep = {lease.veth for lease in table.leases.values()}
        for name in ports:
            if name.startswith(network.VETH_PREFIX) and name not in keep and host.delete_link(name):
                removed.append(f"veth {name}")
        if not table.leases and not host.ports(link["index"]) and host.delete_link(bridge):
            removed.append(f"bridge {bridge}")
            return table, False, removed
    return table, True, removed


def _prune_published(bridge: str, subnet: Subnet, table: LeaseTable) -> list[str]:
    published = nat.list_published(bridge)
    if published is None:
        nat.run_nft(
            nat.table_script(bridge, subnet.network, _published(table)),
            what=f"reinstall the NAT table of bridge {bridge}",
        )
        return [f"(reinstalled the missing nft table ip {bridge})"]
    stale = [item for item in published if item.container_id not in table.leases]
    if stale:
        nat.run_nft(
            nat.unpublish_script(bridge, [item.port for item in stale]),
            what="withdraw stale published ports",
        )
    return [f"published port {item.port}" for item in stale]
