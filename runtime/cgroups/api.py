"""Making and finding a container's cgroup on whatever layout this host has."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Cgroup
from .detect import CgroupLayout, detect
from .limits import Limits

# The driver is imported when used: a host needs one of v1 and v2, never both.

__all__ = ["check_name", "create", "default_layout", "open_cgroup", "parent_path"]

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@:+")


_layout: CgroupLayout | None = None


def default_layout() -> CgroupLayout:
    """This host's layout, detected once per process (mounts do not move under us)."""
    global _layout
    if _layout is None:  # a race of two threads only detects twice: no lock needed
        _layout = detect()
    return _layout


def check_name(name: str, what: str) -> str:
    """``name`` if it is one safe path component of a cgroup path, else ConfigError."""
    if not name or name in (".", "..") or len(name) > 255 or not set(name) <= _NAME_CHARS:
        raise ConfigError(
            f"{what} {name!r} is not a usable cgroup name: use letters, digits and - _ . @ : + "
            "(at most 255), not . or .."
        )
    if name.startswith("cgroup."):
        raise ConfigError(f"{what} {name!r} would clash with the kernel's cgroup.* files")
    return name


def parent_path(parent: str | None) -> str:
    """The cgroup parent as a relative path (``a/b``); None means the configured one."""
    if parent is None:
        from ..settings import Settings  # only here: reading the config costs a little

        parent = Settings.load().cgroup_parent
    parts = [part for part in parent.split("/") if part]
    if not parts:
        raise ConfigError(
            "the cgroup parent must name a cgroup below the root (for example cellbox), "
            f"not {parent!r}"
        )
    return "/".join(check_name(part, "cgroup parent component") for part in parts)


def create(
    container_id: str,
    limits: Limits,
    *,
    parent: str | None = None,
    layout: CgroupLayout | None = None,
) -> Cgroup:
    """Make the cgroup of ``container_id`` under ``parent`` and apply ``limits``.

    ``parent`` defaults to ``Settings.load().cgroup_parent`` (``cellbox``, or
    ``$CELLBOX_CGROUP_PARENT``) and is a path from the hierarchy's root; ``layout`` to this
    host's. Join it by writing a pid to each of :meth:`Cgroup.procs_files` (or with
    :meth:`Cgroup.add`). Raises CgroupError when the cgroup cannot be made or a limit
    cannot be enforced (saying why: no root, no delegation, a missing controller).
    """
    check_name(container_id, "container id")
    where = parent_path(parent)
    layout = layout or default_layout()
    if layout.driver == "v2":
        from .v2 import create_v2

        assert layout.v2 is not None  # a v2 layout always has its mount
        return create_v2(container_id, limits, where, layout.v2)
    from .v1 import create_v1

    return create_v1(container_id, limits, where, layout.v1)


def open_cgroup(
    container_id: str, *, parent: str | None = None, layout: CgroupLayout | None = None
) -> Cgroup | None:
    """The cgroup of ``container_id`` if it exists (in any hierarchy), else None."""
    check_name(container_id, "container id")
    where = parent_path(parent)
    layout = layout or default_layout()
    if layout.driver == "v2":
        from .v2 import open_v2

        assert layout.v2 is not None
        return open_v2(container_id, where, layout.v2)
    from .v1 import open_v1

    return open_v1(container_id, where, layout.v1)
