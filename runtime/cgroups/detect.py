"""Which cgroup hierarchies this host has, from /proc/self/mountinfo.

    v1       only cgroup (v1) mounts, one per controller or co-mounted ("cpu,cpuacct")
    v2       one cgroup2 mount (the unified hierarchy) with the controllers
    hybrid   v1 controller mounts plus a cgroup2 mount (systemd's /sys/fs/cgroup/unified)
             that holds few or no controllers: the v1 controllers are authoritative

A mountinfo line (proc(5))::

    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
    id parent dev root mount-point options [optional...] - fstype source super-options

For v1, the controllers are the super options (after ``-``) that are not mount flags.
Paths in mountinfo escape space, tab, newline and backslash as octal (``\\040``).

Directories are strings (any path-like is accepted): this runs on every container start.
"""

from __future__ import annotations

import os

from ..errors import CgroupError
from ..paths import clean
from ..records import field, record
from . import fs

# typing, collections.abc, dataclasses and pathlib cost imports on the container start
# path; mypy reads this block, Python skips it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Literal

    from ..paths import StrPath

    Version = Literal["v1", "v2", "hybrid"]

__all__ = ["CgroupLayout", "CgroupMount", "detect", "layout_from_mounts", "parse_mountinfo"]

# Super options of a v1 cgroup mount that are flags, not controllers; "name=..." (a named
# hierarchy such as name=systemd) and "release_agent=..." carry "=" and are skipped too.
_NOT_CONTROLLERS = frozenset(
    {
        "rw",
        "ro",
        "noprefix",
        "xattr",
        "clone_children",
        "cpuset_v2_mode",
        "favordynmods",
        "none",
        "all",
    }
)


@record(frozen=True)
class CgroupMount:
    """One cgroup or cgroup2 mount."""

    mount_point: str
    """Where it is mounted, as mountinfo says (unescaped)."""
    root: str
    """Which cgroup of the hierarchy is at the mount point ("/" unless in a namespace)."""
    fstype: Literal["cgroup", "cgroup2"]
    controllers: frozenset[str]
    """v1: the controllers of the hierarchy (empty for a named one); v2: empty."""
    name: str | None = None
    """v1 named hierarchy (``name=systemd``), or None."""


@record(frozen=True)
class CgroupLayout:
    """Where each controller lives on this host.

    ``v1`` maps a controller to the directory its hierarchy is mounted on (co-mounted
    controllers map to the same directory); ``v2`` is the unified mount and
    ``v2_controllers`` what its root offers (cgroup.controllers). Directories are strings;
    path-likes given are turned into them.
    """

    version: Version
    v1: Mapping[str, str] = field(default_factory=dict)
    v2: str | None = None
    v2_controllers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if any(not isinstance(path, str) for path in self.v1.values()):
            object.__setattr__(self, "v1", {c: clean(p) for c, p in self.v1.items()})
        if self.v2 is not None and not isinstance(self.v2, str):
            object.__setattr__(self, "v2", clean(self.v2))

    @property
    def driver(self) -> Literal["v1", "v2"]:
        """The driver that sets limits: v1 on v1 and hybrid hosts, v2 on pure v2."""
        return "v2" if self.version == "v2" else "v1"


def _unescape(text: str) -> str:
    r"""Undo mountinfo's octal escapes (``\040`` is a space)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        code = text[i + 1 : i + 4]
        if text[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts in a mountinfo text, in mount order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue  # not a mountinfo line
        if len(fields) < sep + 3:
            continue
        fstype = fields[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        options = fields[sep + 3].split(",")
        name = next((o[5:] for o in options if o.startswith("name=")), None)
        controllers: frozenset[str] = frozenset()
        if fstype == "cgroup":
            controllers = frozenset(
                o for o in options if o not in _NOT_CONTROLLERS and "=" not in o
            )
        mounts.append(
            CgroupMount(
                mount_point=_unescape(fields[4]),
                root=_unescape(fields[3]),
                fstype="cgroup" if fstype == "cgroup" else "cgroup2",
                controllers=controllers,
                name=name,
            )
        )
    return mounts


def _under(root: str, mount_point: str) -> str:
    return clean(os.path.join(root, mount_point.lstrip("/"))) if mount_point != "/" else root


def layout_from_mounts(
    mounts: list[CgroupMount], *, root: StrPath = "/", v2_controllers: str | None = None
) -> CgroupLayout:
    """The layout for these mounts. ``v2_controllers`` is the unified root's
    cgroup.controllers text; when None it is read from the mount (under ``root``)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    base = clean(root)
    for mount in mounts:
        path = _under(base, mount.mount_point)
        if mount.fstype == "cgroup2":
            v2 = v2 or path  # the first one; later ones are bind mounts or namespaces
            continue
        for controller in mount.controllers:
            v1.setdefault(controller, path)
    if v2 is not None and v2_controllers is None:
        v2_controllers = fs.read_optional(os.path.join(v2, "cgroup.controllers")) or ""
    available = frozenset((v2_controllers or "").split())
    if v1:
        return CgroupLayout("hybrid" if v2 else "v1", v1, v2, available)
    if v2 is not None:
        return CgroupLayout("v2", {}, v2, available)
    raise CgroupError(
        "no cgroup file system is mounted (none in /proc/self/mountinfo): container limits "
        "and stats need one; mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none "
        "/sys/fs/cgroup)"
    )


def detect(
    mountinfo: StrPath = "/proc/self/mountinfo", *, root: StrPath = "/"
) -> CgroupLayout:
    """Read ``mountinfo`` and say which cgroup layout this host has.

    ``root`` is prepended to every mount point, so a test can describe a host in a
    directory tree of its own.
    """
    try:
        text = fs.read_text(mountinfo)
    except OSError as exc:
        raise CgroupError(f"cannot read {mountinfo} to find the cgroup mounts: {exc}") from exc
    return layout_from_mounts(parse_mountinfo(text), root=root)
