"""The memory controller: limit files to write, and its figures parsed (v1 and v2).

v1 files: memory.limit_in_bytes, memory.memsw.limit_in_bytes (memory + swap; only when
swap accounting is on), memory.usage_in_bytes, memory.max_usage_in_bytes,
memory.memsw.usage_in_bytes, memory.stat (total_inactive_file), memory.oom_control
(``oom_kill N`` since 4.13).
v2 files: memory.max, memory.swap.max (swap alone), memory.current, memory.peak (5.19),
memory.swap.current, memory.stat (inactive_file), memory.events (``oom``, ``oom_kill``).
"""

from __future__ import annotations

from .limits import Limits
from .stats import parse_int, parse_keyed

__all__ = [
    "V1_UNLIMITED",
    "oom_events",
    "oom_kills",
    "v1_cache",
    "v1_limit",
    "v1_writes",
    "v2_cache",
    "v2_limit",
    "v2_writes",
]

V1_UNLIMITED = 1 << 62
"""v1 shows "no limit" as the largest page-aligned counter (9223372036854771712 on 4 KiB
pages); anything this large is no limit on any page size."""

Writes = list[tuple[str, str]]


def v1_limit(text: str, *, what: str = "memory.limit_in_bytes") -> int | None:
    """A v1 byte limit; None when unlimited."""
    value = parse_int(text, what=what)
    return None if value >= V1_UNLIMITED else value


def v2_limit(text: str, *, what: str = "memory.max") -> int | None:
    """A v2 byte limit (``max`` or bytes); None when unlimited."""
    return None if text.strip() == "max" else parse_int(text, what=what)


def oom_kills(text: str) -> int:
    """``oom_kill`` of v1 memory.oom_control or v2 memory.events (0 when absent)."""
    return parse_keyed(text).get("oom_kill", 0)


def oom_events(text: str) -> int | None:
    """``oom`` of v2 memory.events: how often the limit could not be kept by reclaim."""
    return parse_keyed(text).get("oom")


def v1_cache(stat: str) -> int | None:
    """Inactive file cache from a v1 memory.stat (hierarchical ``total_`` figure)."""
    return parse_keyed(stat).get("total_inactive_file")


def v2_cache(stat: str) -> int | None:
    """Inactive file cache from a v2 memory.stat."""
    return parse_keyed(stat).get("inactive_file")


def v1_writes(limits: Limits, *, fresh: bool) -> Writes:
    """(file, value) pairs for v1, memory first, then memory + swap.

    The kernel keeps memsw >= memory at every moment, so this order is right on a fresh
    cgroup and whenever the new memory limit fits under the current memsw one; the driver
    retries memsw first when the kernel refuses (raising memory above the old memsw).
    A fresh cgroup is unlimited already: unlimited values are not written to it.
    """
    if fresh and limits.memory is None:
        return []
    total = limits.swap_total()
    writes = [("memory.limit_in_bytes", str(-1 if limits.memory is None else limits.memory))]
    if total is not None or not fresh:
        writes.append(("memory.memsw.limit_in_bytes", str(-1 if total is None else total)))
    return writes


def v2_writes(limits: Limits, *, fresh: bool) -> Writes:
    """(file, value) pairs for v2: memory.max, then memory.swap.max (swap alone).

    docker's memory_swap is memory + swap; v2's memory.swap.max is swap only.
    """
    if fresh and limits.memory is None:
        return []
    total = limits.swap_total()
    swap = "max" if total is None or limits.memory is None else str(total - limits.memory)
    writes = [("memory.max", "max" if limits.memory is None else str(limits.memory))]
    if swap != "max" or not fresh:
        writes.append(("memory.swap.max", swap))
    return writes
