"""What a cgroup reports, and the two shapes its files come in.

cgroup interface files are either a single value (``memory.current``: ``1234``) or flat
keyed lines (``memory.stat``, ``memory.events``, ``cpu.stat``, v1 ``memory.oom_control``:
``key value``). The per-controller modules (:mod:`.memory`, :mod:`.cpu`, :mod:`.pids`,
:mod:`.freezer`) build on the two parsers here. Everything is pure: text in, figures out.
"""

from __future__ import annotations

import time

from ..errors import CgroupError
from ..records import asdict, field, record

TYPE_CHECKING = False  # typing costs an import on the start path; mypy reads this block
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CgroupStats", "parse_int", "parse_keyed"]


def parse_int(text: str, *, what: str = "cgroup file") -> int:
    """The single integer of a one-value file (``"1234\\n"``)."""
    try:
        return int(text.strip())
    except ValueError:
        raise CgroupError(f"{what}: expected a number, the kernel wrote {text[:40]!r}") from None


def parse_keyed(text: str) -> dict[str, int]:
    """``key value`` lines as a dict; lines that are not ``word integer`` are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


@record(frozen=True)
class CgroupStats:
    """One sample of a container's usage. ``None``: not available on this host or kernel.

    Memory figures are bytes, CPU time nanoseconds. Limits are ``None`` when unlimited.
    """

    memory_current: int | None = None
    """All memory charged to the cgroup, page cache included (memory.current)."""
    memory_peak: int | None = None
    """Highest memory_current seen (kernel's peak; on v2 before 5.19: highest sampled)."""
    memory_limit: int | None = None
    memory_cache: int | None = None
    """Inactive file cache, which the kernel reclaims first (docker subtracts it)."""
    swap_current: int | None = None
    swap_limit: int | None = None
    """Swap allowed beyond memory_limit; None when unlimited or swap is not accounted."""
    cpu_usage_ns: int | None = None
    cpu_quota_cpus: float | None = None
    pids_current: int | None = None
    pids_limit: int | None = None
    oom_kills: int = 0
    """Processes the OOM killer killed in this cgroup since it was made."""
    oom_events: int | None = None
    """Times the memory limit was hit so hard that allocation failed (v2 only)."""
    sampled_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when sampled: CPU % is the usage delta over this delta."""

    @property
    def memory_usage(self) -> int | None:
        """Memory in use as ``docker stats`` shows it: current minus inactive file cache."""
        if self.memory_current is None:
            return None
        return max(0, self.memory_current - (self.memory_cache or 0))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures (for the kernel's usage reply and the panel)."""
        data = asdict(self)
        data["memory_usage"] = self.memory_usage
        return data
