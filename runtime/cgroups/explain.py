"""Messages for the cgroup failures a user can do something about."""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..paths import StrPath

__all__ = ["FLAGS", "cannot_create", "unavailable"]

FLAGS = {"memory": "--memory", "cpu": "--cpus", "pids": "--pids-limit"}
"""The docker-style flag each controller enforces."""

_LIMIT_FLAGS = "--memory, --memory-swap, --cpus and --pids-limit"


def cannot_create(path: StrPath, exc: OSError, version: str) -> str:
    """Why ``path`` could not be made, and what to do about it."""
    reason = os.strerror(exc.errno or 0)
    uid = os.geteuid()
    if exc.errno == errno.EROFS:
        return (
            f"cannot create cgroup {path}: {reason}. The cgroup file system is mounted "
            f"read-only (inside a container?), so {_LIMIT_FLAGS} cannot be enforced; run "
            "cellbox where it may write /sys/fs/cgroup"
        )
    if exc.errno not in (errno.EACCES, errno.EPERM):
        return f"cannot create cgroup {path}: {reason}"
    if version == "v1":
        return (
            f"cannot create cgroup {path}: {reason}. Limits ({_LIMIT_FLAGS}) cannot be "
            f"enforced: cellbox runs as uid {uid} and cgroup v1 cannot be delegated to a "
            "user. Run cellbox as root, or on a cgroup v2 host with a delegated subtree"
        )
    return (
        f"cannot create cgroup {path}: {reason}. Limits ({_LIMIT_FLAGS}) cannot be "
        f"enforced: uid {uid} may not write there, the cgroup tree is not delegated to it. "
        "On a systemd host, systemd delegates user@UID.service to its user: set "
        f"CELLBOX_CGROUP_PARENT (or cgroup_parent in the config) to "
        f"user.slice/user-{uid}.slice/user@{uid}.service/cellbox.slice"
    )


def unavailable(controller: str, where: str) -> str:
    """A limit was asked for whose controller this host does not offer."""
    flag = FLAGS.get(controller, controller)
    return (
        f"{flag} cannot be enforced: the {controller} cgroup controller is not available "
        f"({where}). Run without {flag}, or enable the controller (on cgroup v2 it must be "
        "in cgroup.subtree_control of every ancestor of cellbox's cgroup parent)"
    )
