"""Container usage figures and their ``docker stats`` rendering. Pure.

:class:`StatsSample` holds the raw figures of one moment (cgroup counters plus the network
counters of the container's netns); the percentages need two samples:

* CPU %: CPU time used between two samples over the wall time between them, in percent of
  one CPU, as Docker prints it (two busy CPUs read 200 %). A ``--cpus 0.5`` container
  peaks at about 50 %.
* MEM USAGE / LIMIT and MEM %: against the cgroup limit, or the host's memory when the
  container has none.
* PIDS: current count, with `` / limit`` when there is one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .units import format_bytes

__all__ = [
    "StatsRow",
    "StatsSample",
    "cpu_percent",
    "format_decimal_bytes",
    "render_table",
    "stats_row",
]


@dataclass(frozen=True)
class StatsSample:
    """One reading of a container's usage. Counters are cumulative."""

    id: str
    name: str
    monotonic_ns: int  # when it was taken (time.monotonic_ns), for CPU %
    cpu_usage_ns: int = 0
    cpu_limit: float | None = None  # --cpus
    online_cpus: int = 1
    memory_usage: int = 0
    memory_peak: int = 0
    memory_limit: int | None = None  # None: unlimited
    host_memory: int = 0
    pids: int = 0
    pids_limit: int | None = None
    oom_kills: int = 0
    net_rx: int = 0
    net_tx: int = 0
    running: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_percent(previous: StatsSample | None, current: StatsSample) -> float:
    """CPU use between two samples, in percent of one CPU (0 without a previous one)."""
    if previous is None:
        return 0.0
    wall = current.monotonic_ns - previous.monotonic_ns
    used = current.cpu_usage_ns - previous.cpu_usage_ns
    if wall <= 0 or used <= 0:
        return 0.0
    ceiling = min(float(current.online_cpus), current.cpu_limit or float("inf"))
    # Counters are read a moment apart from the clock: never show more than is possible.
    return min(used / wall, ceiling) * 100.0


def format_decimal_bytes(size: float) -> str:
    """Docker's NET I/O style: decimal units (``1.2kB``, ``648B``)."""
    units = ("B", "kB", "MB", "GB", "TB")
    value, index = float(size), 0
    while value >= 1000 and index < len(units) - 1:
        value /= 1000
        index += 1
    return f"{value:.3g}{units[index]}"


@dataclass(frozen=True)
class StatsRow:
    """One printed line of ``cellbox stats``."""

    id: str
    name: str
    cpu: str
    mem_usage: str
    mem_percent: str
    net_io: str
    pids: str


def stats_row(previous: StatsSample | None, current: StatsSample) -> StatsRow:
    """The docker-style cells of one container."""
    if not current.running:
        return StatsRow(current.id[:12], current.name, "--", "-- / --", "--", "--", "--")
    limit = current.memory_limit or current.host_memory
    mem_pct = 100.0 * current.memory_usage / limit if limit else 0.0
    pids = str(current.pids)
    if current.pids_limit:
        pids += f" / {current.pids_limit}"
    return StatsRow(
        id=current.id[:12],
        name=current.name,
        cpu=f"{cpu_percent(previous, current):.2f}%",
        mem_usage=f"{format_bytes(current.memory_usage)} / {format_bytes(limit)}",
        mem_percent=f"{mem_pct:.2f}%",
        net_io=f"{format_decimal_bytes(current.net_rx)} / {format_decimal_bytes(current.net_tx)}",
        pids=pids,
    )


_HEADERS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "PIDS")


def render_table(rows: list[StatsRow]) -> str:
    """The rows under docker's headers, in aligned columns."""
    table = [_HEADERS] + [
        (r.id, r.name, r.cpu, r.mem_usage, r.mem_percent, r.net_io, r.pids) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADERS))]
    lines = [
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in table
    ]
    return "\n".join(lines)
