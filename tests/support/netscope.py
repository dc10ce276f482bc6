"""A bridge and subnet of its own for each test session, and their removal at its end.

Several sessions share the machine. Were they all to use the default ``cellbox0`` bridge on
10.89.0.0/16, each with its own lease file (CELLBOX_RUN differs), they would hand out the
same addresses and prune each other's bridge. tests/conftest.py therefore sets
CELLBOX_BRIDGE to the session's scope name and CELLBOX_SUBNET to a /24 that no route on the
machine uses yet, and removes that bridge and its nft table when the session ends.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import subprocess
from pathlib import Path

__all__ = ["cleanup_bridge", "free_subnet", "routes"]

# 10.200.0.0 - 10.239.255.0: 10240 /24s, clear of podman (10.88/16) and cellbox (10.89/16)
_FIRST = int(ipaddress.IPv4Address("10.200.0.0")) >> 8
_COUNT = 40 * 256


def routes(path: Path = Path("/proc/net/route")) -> list[ipaddress.IPv4Network]:
    """The IPv4 destinations (other than default) in the main routing table."""
    found = []
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
        network = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        if network.prefixlen:
            found.append(network)
    return found


def free_subnet(seed: int, taken: list[ipaddress.IPv4Network] | None = None) -> str:
    """A /24 in 10.200-239.x.0 overlapping no route, starting at a ``seed``-chosen place."""
    used = routes() if taken is None else taken
    for step in range(_COUNT):
        index = _FIRST + (seed + step) % _COUNT
        candidate = ipaddress.IPv4Network((index << 8, 24))
        if not any(candidate.overlaps(route) for route in used):
            return str(candidate)
    raise RuntimeError("no free /24 left in 10.200.0.0 - 10.239.255.0 for the test bridge")


def cleanup_bridge(name: str) -> list[str]:
    """Remove bridge ``name`` and nft table ``ip name`` if present; what was removed."""
    removed = []
    if os.path.lexists(f"/sys/class/net/{name}"):
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)
        removed.append(f"bridge {name}")
    done = subprocess.run(["nft", "delete", "table", "ip", name], check=False, capture_output=True)
    if done.returncode == 0:
        removed.append(f"nft table ip {name}")
    return removed
