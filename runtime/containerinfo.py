"""What a container looks like from outside: ``inspect`` and usage samples.

:func:`inspect_container` shapes a container's config and state like ``docker inspect``;
:func:`sample_stats` reads its cgroup's counters and its netns's byte counters into a
:class:`~.stats.StatsSample` (the kernel's usage reply and the panel use it directly;
``cellbox stats`` turns two of them into docker-stats rows). Both are methods of
:class:`~.container.Container` (``inspect()``, ``stats()``).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .container import Container
    from .stats import StatsSample

__all__ = ["host_memory", "inspect_container", "net_counters", "online_cpus", "sample_stats"]


def online_cpus() -> int:
    """CPUs this process may run on (what --cpus is checked against)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def host_memory() -> int:
    """The host's memory in bytes: the MEM LIMIT of a container without one."""
    with open("/proc/meminfo", "rb") as f:
        for line in f:
            if line.startswith(b"MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def net_counters(pid: int) -> tuple[int, int]:
    """Bytes received and sent on every interface but lo in the netns of ``pid``."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev", "rb") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, data = line.partition(b":")
        if name.strip() == b"lo":
            continue
        fields = data.split()
        if len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def sample_stats(container: Container) -> StatsSample:
    """Usage figures now: cgroup counters and the netns's byte counters."""
    from .cgroups import open_cgroup
    from .stats import StatsSample

    running = container.running
    base = StatsSample(
        id=container.id, name=container.name, monotonic_ns=time.monotonic_ns(),
        online_cpus=online_cpus(), host_memory=host_memory(), running=running,
        cpu_limit=container.config.cpus, pids_limit=container.config.pids_limit,
        memory_limit=container.config.memory,
    )
    cgroup = open_cgroup(container.id, parent=container.settings.cgroup_parent) if running else None
    if cgroup is None:
        return base
    figures = cgroup.stats()
    rx, tx = net_counters(container.state.pid) if container.config.network != "host" else (0, 0)
    return replace(
        base,
        monotonic_ns=int(figures.sampled_at * 1e9),
        cpu_usage_ns=figures.cpu_usage_ns or 0,
        cpu_limit=figures.cpu_quota_cpus or container.config.cpus,
        memory_usage=figures.memory_usage or 0,
        memory_peak=figures.memory_peak or 0,
        memory_limit=figures.memory_limit,
        pids=figures.pids_current or 0,
        pids_limit=figures.pids_limit,
        oom_kills=figures.oom_kills,
        net_rx=rx,
        net_tx=tx,
    )


def inspect_container(container: Container) -> dict[str, Any]:
    """Everything about the container, shaped like ``docker inspect``."""
    cfg, st = container.config, container.state
    running = container.running
    network = st.network if running else {}
    layers = os.path.join(container.settings.root, "layers")
    return {
        "Id": cfg.id,
        "Name": cfg.name,
        "Created": cfg.created,
        "Path": cfg.argv[0] if cfg.argv else "",
        "Args": cfg.argv[1:],
        "State": {
            "Status": container.status,
            "Running": running,
            "Pid": st.pid if running else 0,
            "ExitCode": st.exit_code if st.exit_code is not None else 0,
            "OOMKilled": st.oom_killed,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "Image": cfg.image_digest,
        "ImageName": cfg.image,
        "Layers": list(cfg.layers),
        "Config": {
            "Hostname": cfg.hostname,
            "User": cfg.user,
            "Env": list(cfg.env),
            "Entrypoint": list(cfg.entrypoint or []),
            "Cmd": list(cfg.command or []),
            "WorkingDir": cfg.workdir,
            "Labels": dict(cfg.labels),
            "Tty": cfg.tty,
            "OpenStdin": cfg.interactive,
            "Keep": cfg.keep,
        },
        "HostConfig": {
            "Memory": cfg.memory or 0,
            "MemorySwap": cfg.memory_swap or 0,
            "NanoCpus": round((cfg.cpus or 0) * 1e9),
            "PidsLimit": cfg.pids_limit or 0,
            "NetworkMode": cfg.network,
            "PortBindings": [p.to_json() for p in cfg.ports],
            "Binds": [
                f"{v.source}:{v.destination}{':ro' if v.readonly else ''}"
                for v in cfg.volumes
            ],
            "AutoRemove": cfg.auto_remove,
        },
        "NetworkSettings": {
            "IPAddress": network.get("ip") or "",
            "IPPrefixLen": network.get("prefix") or 0,
            "Gateway": network.get("gateway") or "",
            "Ports": network.get("ports", []),
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": ":".join(
                    os.path.join(layers, c.removeprefix("sha256:"), "diff")
                    for c in reversed(cfg.layers)
                ),
                "UpperDir": str(container.directory / "upper"),
                "WorkDir": str(container.directory / "work"),
            },
        },
        "LogPath": str(container.directory / "log.jsonl"),
    }
