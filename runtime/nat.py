"""The bridge's nftables table: masquerade out, forwarding, and published ports as DNAT.

One table per bridge, ``ip <bridge>`` (``ip cellbox0`` by default), holds everything, so
removing the table removes every rule cellbox made and nothing else. Its base chains are
static (they depend only on the bridge and its subnet); what changes per container are the
elements of two maps, keyed by what a client connects to and mapping to the container's
address and port:

    publish_addr  host_ip . protocol . host_port : container_ip . container_port
    publish_any   protocol . host_port           : container_ip . container_port (0.0.0.0)

so publishing or withdrawing a container's ports is adding or deleting map elements (each
tagged with the container id in its comment, for prune), not finding rule handles.

Why DNAT and not a userspace proxy: a proxy process per container costs several MiB and the
density goal is 8 MiB per container; DNAT costs nothing per container. Reaching a DNAT'd
port on 127.0.0.1 from the host needs two extra things, both in here:
``route_localnet=1`` on the bridge (set by bridge.py) so the kernel routes a packet with
source 127.0.0.1 out of the bridge, and a masquerade of 127.0.0.0/8 towards the bridge so
the container answers to the bridge address. ``route_localnet`` alone would also let a
container send to the host's 127.0.0.1 services (CVE-2020-8558 in Kubernetes was that
mistake), so the ``guard`` chain drops anything arriving from the bridge for 127.0.0.0/8
before routing. It also drops TCP to the cloud metadata address 169.254.169.254, except
DNS: the instance's credentials are for the host, not for a notebook's container.

The ``forward`` chain accepts traffic from the bridge, replies to it, and DNAT'd traffic to
it. An accept here cannot overrule a drop in another table (a host firewall with a
forward policy of drop still applies); that is nftables' design, and the host's choice.

The rules are applied through :mod:`.nft` (libnftables, or the ``nft`` command when the
library is missing), one atomic batch per change: ≈ 0.3 ms per change with the library
against ≈ 4-16 ms per command; pyroute2's nftables has no helpers for maps with
concatenated keys and values. bench/network.py prints the figures.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass

from . import nft
from .errors import NetworkError
from .portmap import ANY_HOST_IP, PortMapping

__all__ = [
    "NftError",
    "Published",
    "delete_table",
    "list_published",
    "parse_published",
    "publish_script",
    "run_nft",
    "table_exists",
    "table_script",
    "unpublish_script",
]

FAMILY = "ip"
METADATA = "169.254.169.254"
MAP_ADDR = "publish_addr"
MAP_ANY = "publish_any"
ANY = ANY_HOST_IP


class NftError(NetworkError):
    """``nft`` refused a batch. ``missing`` / ``exists``: what the kernel said was wrong."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr

    @property
    def missing(self) -> bool:
        return "No such file or directory" in self.stderr

    @property
    def exists(self) -> bool:
        return "File exists" in self.stderr


@dataclass(frozen=True)
class Published:
    """One element of a publish map: a host port and where it leads."""

    port: PortMapping
    container_ip: ipaddress.IPv4Address
    container_id: str  # from the element's comment; "" when it has none


def _check_name(name: str) -> None:
    # Names end up in nft syntax unquoted (table) and quoted (ifname); refuse anything that
    # could break out of either. network.py validates too, this is the last line.
    if not name or len(name) > 15 or not name.replace("_", "").isalnum() or not name.isascii():
        raise NetworkError(f"refusing to write nft rules for the odd bridge name {name!r}")


def table_script(
    bridge: str, subnet: ipaddress.IPv4Network, published: Iterable[Published] = ()
) -> str:
    """An nft batch that (re)creates the table of ``bridge`` with ``published`` in its maps.

    It starts with ``add table; delete table`` so that it replaces an existing table in the
    same transaction: either the whole new table is in place or the old one is untouched.
    """
    _check_name(bridge)
    t = f"{FAMILY} {bridge}"
    br = f'"{bridge}"'
    lines = [
        f"add table {t}",
        f"delete table {t}",
        f"add table {t}",
        f"add map {t} {MAP_ADDR} {{ type ipv4_addr . inet_proto . inet_service : "
        "ipv4_addr . inet_service; }",
        f"add map {t} {MAP_ANY} {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}",
        f"add chain {t} guard {{ type filter hook prerouting priority raw; policy accept; }}",
        f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
        f"add chain {t} output {{ type nat hook output priority -100; policy accept; }}",
        f"add chain {t} publish",
        f"add chain {t} postrouting "
        "{ type nat hook postrouting priority srcnat; policy accept; }",
        f"add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}",
        # route_localnet is on for the bridge: nothing from a container may reach 127/8.
        f"add rule {t} guard iifname {br} ip daddr 127.0.0.0/8 drop",
        # A cloud's instance metadata service (AWS, GCP, Azure, OpenStack) hands the host's
        # credentials to whoever asks it over HTTP: no container asks. DNS on the same
        # address (GCP's resolver, copied into the container's resolv.conf) still works.
        f"add rule {t} guard iifname {br} ip daddr {METADATA} tcp dport != 53 drop",
        f"add rule {t} prerouting fib daddr type local jump publish",
        f"add rule {t} output fib daddr type local jump publish",
        f"add rule {t} publish dnat ip to ip daddr . meta l4proto . th dport map @{MAP_ADDR}",
        f"add rule {t} publish dnat ip to meta l4proto . th dport map @{MAP_ANY}",
        # out to the world, seen from outside as the host
        f"add rule {t} postrouting ip saddr {subnet} oifname != {br} masquerade",
        # the host's 127.0.0.1 -> container: the container must answer the bridge address
        f"add rule {t} postrouting oifname {br} ip saddr 127.0.0.0/8 masquerade",
        # hairpin: a container reaching a sibling through a published port of the host
        f"add rule {t} postrouting oifname {br} ct status dnat ip saddr {subnet} masquerade",
        f"add rule {t} forward iifname {br} accept",
        f"add rule {t} forward oifname {br} ct state established,related accept",
        f"add rule {t} forward oifname {br} ct status dnat accept",
    ]
    body = publish_script(bridge, published)
    return "\n".join(lines) + "\n" + body


def _key(port: PortMapping) -> tuple[str, str]:
    if port.host_ip == ANY:
        return MAP_ANY, f"{port.protocol} . {port.host_port}"
    return MAP_ADDR, f"{port.host_ip} . {port.protocol} . {port.host_port}"


def _comment(container_id: str) -> str:
    if not container_id.isalnum() or not container_id.isascii():
        raise NetworkError(f"refusing the odd container id {container_id!r} in an nft comment")
    return f'comment "{container_id}"'


def publish_script(bridge: str, published: Iterable[Published]) -> str:
    """An nft batch adding one map element per published port."""
    _check_name(bridge)
    lines = []
    for item in published:
        name, key = _key(item.port)
        value = f"{item.container_ip} . {item.port.container_port}"
        comment = _comment(item.container_id) if item.container_id else ""
        lines.append(f"add element {FAMILY} {bridge} {name} {{ {key} {comment} : {value} }}")
    return "".join(line + "\n" for line in lines)


def unpublish_script(bridge: str, ports: Iterable[PortMapping]) -> str:
    """An nft batch deleting the map elements of ``ports`` (fails if one is absent)."""
    _check_name(bridge)
    lines = []
    for port in ports:
        name, key = _key(port)
        lines.append(f"delete element {FAMILY} {bridge} {name} {{ {key} }}")
    return "".join(line + "\n" for line in lines)


def _protocol(value: object) -> str:
    names = {6: "tcp", 17: "udp"}
    if isinstance(value, int) and value in names:
        return names[value]
    if isinstance(value, str) and value in ("tcp", "udp"):
        return value
    raise ValueError(f"unexpected protocol {value!r}")


def _published(map_name: str, element: list[object]) -> Published:
    key, value = element
    comment = ""
    if isinstance(key, dict) and "elem" in key:
        comment = str(key["elem"].get("comment", ""))
        key = key["elem"]["val"]
    if not isinstance(key, dict) or not isinstance(value, dict):
        raise ValueError(f"unexpected map element {element!r}")
    parts, target = key["concat"], value["concat"]
    if map_name == MAP_ADDR:
        host_ip, proto, host_port = parts
    else:
        host_ip, (proto, host_port) = ANY, parts
    container_ip, container_port = target
    port = PortMapping(
        host_ip=str(host_ip),
        host_port=int(host_port),
        container_port=int(container_port),
        protocol=_protocol(proto),
    )
    return Published(port, ipaddress.IPv4Address(str(container_ip)), comment)


def parse_published(listing: str) -> list[Published]:
    """The elements of both publish maps in ``nft -j list table`` output."""
    try:
        document = json.loads(listing)
        found = []
        for entry in document.get("nftables", []):
            table_map = entry.get("map")
            if not table_map or table_map.get("name") not in (MAP_ADDR, MAP_ANY):
                continue
            for element in table_map.get("elem", []):
                found.append(_published(table_map["name"], element))
        return found
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NetworkError(f"cannot understand nft's listing of the publish maps: {exc}") from exc


def run_nft(script: str, *, what: str) -> None:
    """Apply ``script`` as one atomic nft transaction; :class:`NftError` if refused."""
    if not script:
        return
    result = nft.run(script)
    if not result.ok:
        detail = " ".join(result.error.strip().splitlines()[:2])
        raise NftError(f"nft refused to {what}: {detail}", result.error)


def _list_table(bridge: str) -> str | None:
    _check_name(bridge)
    result = nft.run(f"list table {FAMILY} {bridge}\n", json_output=True)
    if result.ok:
        return result.output
    if "No such file or directory" in result.error:
        return None
    raise NetworkError(f"nft cannot list table {FAMILY} {bridge}: {result.error.strip()}")


def table_exists(bridge: str) -> bool:
    """Whether the nft table of ``bridge`` is in the kernel."""
    return _list_table(bridge) is not None


def list_published(bridge: str) -> list[Published] | None:
    """Every published port in the table of ``bridge``; None when there is no table."""
    listing = _list_table(bridge)
    return None if listing is None else parse_published(listing)


def delete_table(bridge: str) -> bool:
    """Remove the table of ``bridge`` and every rule in it; False if it was not there."""
    _check_name(bridge)
    try:
        run_nft(f"delete table {FAMILY} {bridge}\n", what=f"remove table {FAMILY} {bridge}")
    except NftError as exc:
        if exc.missing:
            return False
        raise
    return True
