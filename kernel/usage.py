"""``usage_request``: the current container's cgroup figures, as jupyter-resource-usage reads them.

jupyter-resource-usage's kernel panel shows ``kernel_cpu`` (percent of one CPU),
``kernel_memory`` (bytes) and the "host" figures. For a cellbox kernel the interesting
machine is the container: memory is its cgroup's usage against its limit (the host's
memory when it has none), CPUs its ``--cpus`` limit (the host's CPUs otherwise). The raw
figures are added under ``cellbox``. Pure: the kernel passes the sample and the previous
CPU reading.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from cellbox.runtime.stats import StatsSample

__all__ = ["usage_reply"]


def usage_reply(
    sample: StatsSample, now_ns: int, previous: tuple[int, int] | None
) -> dict[str, Any]:
    """The usage_reply content; ``previous`` is (monotonic ns, cpu ns) of the last request."""
    cpu_percent = 0.0
    if previous is not None:
        wall = now_ns - previous[0]
        used = sample.cpu_usage_ns - previous[1]
        if wall > 0 and used > 0:
            cpu_percent = 100.0 * used / wall
    limit = sample.memory_limit or sample.host_memory
    cpus = sample.cpu_limit or sample.online_cpus
    free = max(limit - sample.memory_usage, 0)
    return {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "kernel_cpu": round(cpu_percent, 1),
        "kernel_memory": sample.memory_usage,
        "cpu_count": cpus,
        "host_cpu_percent": round(cpu_percent / max(cpus, 0.01), 1),
        "host_virtual_memory": {
            "total": limit,
            "available": free,
            "used": sample.memory_usage,
            "free": free,
            "percent": round(100.0 * sample.memory_usage / limit, 1) if limit else 0.0,
        },
        "cellbox": {
            "container": sample.name,
            "memory_limit": sample.memory_limit,
            "memory_peak": sample.memory_peak,
            "cpu_limit": sample.cpu_limit,
            "pids": sample.pids,
            "pids_limit": sample.pids_limit,
            "oom_kills": sample.oom_kills,
        },
    }
