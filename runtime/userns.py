"""Rootless containers: the id maps of a user namespace, written from the host side.

The container's root is the user who runs cellbox. When ``/etc/subuid`` and
``/etc/subgid`` give the user a range, ids 1..N inside map onto it (written by the setuid
helpers ``newuidmap``/``newgidmap`` from the uidmap package), so image files owned by
other users and ``--user 1000`` work; without a range, only root exists inside (a single
mapping the user may write directly, with setgroups denied as the kernel requires).

:func:`default_id_maps` computes the maps (pure parsing of the subordinate id files),
:func:`write_id_maps` writes them for the process that unshared the namespace.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Sequence

from .errors import SandboxError

__all__ = ["IdMap", "default_id_maps", "parse_subid", "write_id_maps"]

IdMap = list[tuple[int, int, int]]  # (inside, outside, count)


def parse_subid(text: str, name: str, uid: int) -> list[tuple[int, int]]:
    """The (start, count) ranges of ``name`` (or its numeric ``uid``) in /etc/subuid text."""
    ranges = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (name, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if count > 0:
            ranges.append((start, count))
    return ranges


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _map(own: int, ranges: list[tuple[int, int]]) -> IdMap:
    entries = [(0, own, 1)]
    inside = 1
    for start, count in ranges:
        entries.append((inside, start, count))
        inside += count
    return entries


def default_id_maps(uid: int | None = None, gid: int | None = None, *,
                    subuid: str | None = None, subgid: str | None = None,
                    name: str | None = None) -> tuple[IdMap, IdMap]:
    """(uid_map, gid_map) for a rootless container of the current (or given) user.

    Subordinate ranges are used only when ``newuidmap`` and ``newgidmap`` exist, since
    only they may write such maps.
    """
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
    helpers = all(_which(tool) for tool in ("newuidmap", "newgidmap"))
    uranges = parse_subid(_read("/etc/subuid") if subuid is None else subuid, name, uid)
    granges = parse_subid(_read("/etc/subgid") if subgid is None else subgid, name, uid)
    if not (helpers and uranges and granges):
        return [(0, uid, 1)], [(0, gid, 1)]
    return _map(uid, uranges), _map(gid, granges)


def _which(tool: str) -> str | None:
    for directory in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        path = os.path.join(directory, tool)
        if os.access(path, os.X_OK):
            return path
    return None


def _format(entries: Sequence[tuple[int, int, int]]) -> str:
    return "".join(f"{inside} {outside} {count}\n" for inside, outside, count in entries)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _only_self(entries: Sequence[tuple[int, int, int]], own: int) -> bool:
    return len(entries) == 1 and entries[0][1] == own and entries[0][2] == 1


def write_id_maps(pid: int, uid_map: IdMap | None, gid_map: IdMap | None) -> None:
    """Write the id maps of the user namespace that process ``pid`` has just unshared."""
    if uid_map is None or gid_map is None:
        uid_map, gid_map = default_id_maps()
    try:
        if os.geteuid() == 0:
            _write(f"/proc/{pid}/uid_map", _format(uid_map))
            _write(f"/proc/{pid}/gid_map", _format(gid_map))
            return
        if _only_self(uid_map, os.geteuid()) and _only_self(gid_map, os.getegid()):
            # An unprivileged process may map just itself, after denying setgroups.
            _write(f"/proc/{pid}/setgroups", "deny")
            _write(f"/proc/{pid}/uid_map", _format(uid_map))
            _write(f"/proc/{pid}/gid_map", _format(gid_map))
            return
    except OSError as exc:
        raise SandboxError(f"cannot write the id maps of user namespace of {pid}: {exc}") \
            from exc
    for tool, entries in (("newuidmap", uid_map), ("newgidmap", gid_map)):
        args = [str(v) for entry in entries for v in entry]
        result = subprocess.run([tool, str(pid), *args], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise SandboxError(
                f"{tool} failed for the container's user namespace: "
                f"{result.stderr.strip() or result.returncode}; check /etc/subuid and "
                "/etc/subgid for your user"
            )
