"""The cpu (and v1 cpuacct) controller: quota files to write, usage and quota parsed.

A quota of ``cpus`` CPUs is ``cpus * period`` microseconds of CPU time per period of
100 ms (docker's period). v1: cpu.cfs_period_us, cpu.cfs_quota_us (-1 unlimited) and
cpuacct.usage (ns). v2: cpu.max (``max 100000`` or ``50000 100000``) and cpu.stat
(``usage_usec``, present even without the cpu controller enabled).
"""

from __future__ import annotations

from .limits import Limits
from .stats import parse_int, parse_keyed

__all__ = [
    "MIN_QUOTA_US",
    "PERIOD_US",
    "quota_us",
    "v1_quota_cpus",
    "v1_usage_ns",
    "v1_writes",
    "v2_quota_cpus",
    "v2_usage_ns",
    "v2_writes",
]

PERIOD_US = 100_000
MIN_QUOTA_US = 1_000
"""The kernel refuses a quota under 1 ms."""

Writes = list[tuple[str, str]]


def quota_us(cpus: float) -> int:
    """Microseconds of CPU time per period for ``cpus`` CPUs."""
    return max(MIN_QUOTA_US, round(cpus * PERIOD_US))


def v1_writes(limits: Limits, *, fresh: bool) -> Writes:
    """(file, value) pairs for v1: the period first, so the quota is read against it."""
    if limits.cpus is not None:
        return [
            ("cpu.cfs_period_us", str(PERIOD_US)),
            ("cpu.cfs_quota_us", str(quota_us(limits.cpus))),
        ]
    return [] if fresh else [("cpu.cfs_quota_us", "-1")]


def v2_writes(limits: Limits, *, fresh: bool) -> Writes:
    """(file, value) pairs for v2's cpu.max."""
    if limits.cpus is not None:
        return [("cpu.max", f"{quota_us(limits.cpus)} {PERIOD_US}")]
    return [] if fresh else [("cpu.max", f"max {PERIOD_US}")]


def v1_quota_cpus(quota: str, period: str) -> float | None:
    """CPUs from cpu.cfs_quota_us and cpu.cfs_period_us; None when unlimited."""
    q = parse_int(quota, what="cpu.cfs_quota_us")
    p = parse_int(period, what="cpu.cfs_period_us")
    return None if q < 0 or p <= 0 else q / p


def v2_quota_cpus(cpu_max: str) -> float | None:
    """CPUs from cpu.max; None when unlimited."""
    words = cpu_max.split()
    if not words or words[0] == "max":
        return None
    quota = parse_int(words[0], what="cpu.max")
    period = parse_int(words[1], what="cpu.max") if len(words) > 1 else PERIOD_US
    return quota / period if period > 0 else None


def v1_usage_ns(text: str) -> int:
    """cpuacct.usage: CPU time in nanoseconds."""
    return parse_int(text, what="cpuacct.usage")


def v2_usage_ns(cpu_stat: str) -> int | None:
    """cpu.stat's usage_usec, in nanoseconds."""
    usec = parse_keyed(cpu_stat).get("usage_usec")
    return None if usec is None else usec * 1000
