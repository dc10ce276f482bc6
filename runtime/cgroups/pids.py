"""The pids controller (same files on v1 and v2): pids.max, pids.current, pids.events."""

from __future__ import annotations

from .limits import Limits
from .stats import parse_int, parse_keyed

__all__ = ["current", "fork_failures", "limit", "writes"]

Writes = list[tuple[str, str]]


def limit(text: str) -> int | None:
    """pids.max: a number, or ``max`` (None)."""
    return None if text.strip() == "max" else parse_int(text, what="pids.max")


def current(text: str) -> int:
    """pids.current: processes and threads in the cgroup now."""
    return parse_int(text, what="pids.current")


def fork_failures(events: str) -> int:
    """pids.events' ``max``: how many forks the limit refused."""
    return parse_keyed(events).get("max", 0)


def writes(limits: Limits, *, fresh: bool) -> Writes:
    """(file, value) pairs: pids.max."""
    if limits.pids is not None:
        return [("pids.max", str(limits.pids))]
    return [] if fresh else [("pids.max", "max")]
