"""Cleaning up without a daemon: ``--rm`` of detached containers, and crash leftovers.

``cellbox run -d --rm`` starts :func:`spawn_remove_on_exit`'s watcher, ``python -I -m
cellbox.runtime rm --on-exit ID`` in its own session: it waits on a pidfd of the
container's PID 1 (exact for a process that is not its child; the start time is checked
once the pidfd pins it) and then removes the container. A watcher costs a process only
while its container runs, and only for ``-d --rm``. If it dies too (a reboot), the next
``cellbox ps`` removes exited ``--rm`` containers it finds (:meth:`Container.list`).

:func:`prune_leftovers` is what ``cellbox prune`` runs first: after a crash of everything,
it releases cgroups and networking that no running container owns.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from .container import Container, _containers_dir
from .containerstate import list_ids, wait_pid
from .errors import CellboxError, ContainerNotFound
from .settings import Settings

__all__ = ["prune_leftovers", "remove_on_exit", "spawn_remove_on_exit"]


def spawn_remove_on_exit(container: Container) -> None:
    """Start the detached watcher that removes a ``--rm -d`` container when it ends."""
    subprocess.Popen(
        [sys.executable, "-I", "-m", "cellbox.runtime", "rm", "--on-exit", container.id],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )


def remove_on_exit(key: str, *, settings: Settings | None = None) -> None:
    """The watcher's body: wait for the container's PID 1, then remove the container."""
    container = Container.load(key, settings=settings)
    if container.running:
        wait_pid(container.state.pid, container.state.start_ticks, None)
    with contextlib.suppress(ContainerNotFound):
        Container.load(container.id, settings=settings).remove(force=True)


def _cgroup_ids(parent: str) -> set[str]:
    """Container ids that have a cgroup under ``parent`` in any hierarchy on this host."""
    import glob
    import re

    found: set[str] = set()
    pattern = re.compile(r"[0-9a-f]{64}")
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/*"):
        for path in glob.glob(f"{base}/{glob.escape(parent)}/*"):
            name = os.path.basename(path)
            if pattern.fullmatch(name) and os.path.isdir(path):
                found.add(name)
    return found


def prune_leftovers(settings: Settings | None = None) -> list[str]:
    """Clean up after crashes; what ``cellbox prune`` runs before pruning the store.

    Finishes containers whose PID 1 died unseen (their network and cgroup are released),
    removes exited ``--rm`` containers, then releases networking (veths, leases, NAT
    rules) and cgroups that belong to no running container, and half-removed container
    dirs. Stopped containers and their files are kept. Returns what was cleaned, for
    people to read.
    """
    settings = settings or Settings.load()
    report: list[str] = []
    before = set(list_ids(_containers_dir(settings)))
    live = {c.id for c in Container.list(all=True, settings=settings) if c.running}
    gone = before - set(list_ids(_containers_dir(settings)))
    report += [f"removed exited --rm container {cid[:12]}" for cid in sorted(gone)]
    from .cgroups import open_cgroup

    for cid in sorted(_cgroup_ids(settings.cgroup_parent) - live):
        with contextlib.suppress(CellboxError):
            cgroup = open_cgroup(cid, parent=settings.cgroup_parent)
            if cgroup is not None:
                cgroup.remove()
                report.append(f"removed cgroup of {cid[:12]}")
    with contextlib.suppress(ImportError):
        from .network import prune as network_prune

        report += network_prune(live, settings)
    containers = _containers_dir(settings)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(containers):
            if entry.startswith(".removing-"):
                import shutil

                shutil.rmtree(os.path.join(containers, entry), ignore_errors=True)
                report.append(f"removed half-removed container dir {entry[10:22]}")
    return report
