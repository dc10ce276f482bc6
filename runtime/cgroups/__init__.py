"""Container cgroups on cgroup v1, v2 and hybrid hosts: limits, stats, kill, remove.

::

    from cellbox.runtime import cgroups

    group = cgroups.create(container_id, cgroups.Limits(memory=64 << 20, cpus=0.5, pids=100))
    spec.cgroup_procs = [str(p) for p in group.procs_files()]  # init writes its pid to each
    group.stats()            # CgroupStats: memory_current, memory_peak, memory_limit, ...
    group.oom_kills()        # before start; afterwards oom_killed_since(that) says "OOM"
    group.kill_all()         # SIGKILL everything, fork bombs included
    group.remove()           # kill what is left, rmdir everywhere, parent too when empty

    cgroups.open_cgroup(container_id)   # from another process: the Cgroup, or None

Layouts (:func:`detect`): on **v1** and **hybrid** hosts (this project's machines) the
container gets ``<mount>/<parent>/<id>`` in the memory, cpu, cpuacct, pids and freezer
hierarchies; the hybrid's cgroup2 mount holds no controllers and is left alone. On **v2**
it gets one leaf ``<mount>/<parent>/<id>``, with memory, pids (and cpu for a quota)
enabled in cgroup.subtree_control from the root down to the parent.

Parent: ``Settings.cgroup_parent`` (``cellbox``; ``$CELLBOX_CGROUP_PARENT``), a path from
the hierarchy's root. It is made on demand and removed with its last container, so nothing
of cellbox stays in /sys/fs/cgroup while no container exists.

Without root: cgroup v1 cannot be delegated, so :func:`create` raises CgroupError saying
that limits cannot be enforced. On a systemd host with cgroup v2, systemd delegates
``user@UID.service`` to user UID (``Delegate=yes``; memory and pids, and cpu on recent
systemd): set the parent to ``user.slice/user-UID.slice/user@UID.service/cellbox.slice``
and rootless containers get real limits.

The per-controller modules (:mod:`.memory`, :mod:`.cpu`, :mod:`.pids`, :mod:`.freezer`)
are pure: the files to write for some limits, and the figures in the files read back.
"""

from .api import create, default_layout, open_cgroup
from .base import KILL_TIMEOUT, Cgroup, read_oom_kills
from .detect import CgroupLayout, CgroupMount, detect, parse_mountinfo
from .limits import Limits
from .stats import CgroupStats

__all__ = [
    "KILL_TIMEOUT",
    "Cgroup",
    "CgroupLayout",
    "CgroupMount",
    "CgroupStats",
    "Limits",
    "create",
    "default_layout",
    "detect",
    "open_cgroup",
    "parse_mountinfo",
    "read_oom_kills",
]
