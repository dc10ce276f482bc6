"""Freezing a cgroup, so that signalling every process cannot be outrun by forks.

v1: the freezer controller's freezer.state (``THAWED``, ``FREEZING``, ``FROZEN``).
v2 (5.2+): cgroup.freeze (``1``/``0``), confirmed by ``frozen 1`` in cgroup.events, whose
``populated`` also says whether any process is left.
"""

from __future__ import annotations

from .stats import parse_keyed

__all__ = ["FROZEN", "THAWED", "v1_is_frozen", "v2_is_frozen", "v2_is_populated"]

FROZEN = "FROZEN"
THAWED = "THAWED"


def v1_is_frozen(state: str) -> bool:
    """freezer.state says every task is frozen (not merely FREEZING)."""
    return state.strip() == FROZEN


def v2_is_frozen(events: str) -> bool:
    """cgroup.events says the cgroup is frozen."""
    return parse_keyed(events).get("frozen") == 1


def v2_is_populated(events: str) -> bool:
    """cgroup.events says a process is still in the cgroup (or below it)."""
    return parse_keyed(events).get("populated", 0) == 1
