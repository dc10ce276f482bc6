"""Joining a container's cgroups from the process that is to be in them.

The container's init and ``cellbox exec`` each put themselves into the container's
cgroup (one directory per v1 hierarchy) before they fork what runs inside. Writing our
pid to ``cgroup.procs`` migrates the whole thread group, for which the kernel takes
``cgroup_threadgroup_rwsem`` for writing — an RCU grace period, ≈ 5-15 ms, whenever no
other migration happened just before (so: on nearly every container start). A
single-threaded process can instead write ``0`` (itself) to the v1 ``tasks`` file: moving
the current thread needs no threadgroup lock (Linux 6.0+, and cheap before as well), and
for a process with one thread the result is the same. v2 has no such file for domain
cgroups; there ``cgroup.procs`` is written as before.

Imports nothing but ``os``: the init loads this.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["join"]


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def join(procs_files: Iterable[str]) -> None:
    """Move this single-threaded process into each cgroup whose ``cgroup.procs`` is given.

    Raises OSError naming the file that refused.
    """
    pid = str(os.getpid()).encode()
    for procs in procs_files:
        tasks = os.path.join(os.path.dirname(procs), "tasks")
        try:
            try:
                _write(tasks, b"0")
                continue
            except FileNotFoundError:  # cgroup v2 (or no such cgroup: procs says so)
                pass
            _write(procs, pid)
        except OSError as exc:
            raise OSError(exc.errno, f"joining the cgroup {procs}: {exc.strerror}") from None
