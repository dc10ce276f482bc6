"""What a container may use: memory (and swap), CPU time and processes.

``None`` everywhere means "no limit", so ``Limits()`` is an unlimited container and
``cgroup.set_limits(Limits())`` lifts every limit. The figures follow docker's flags:

    memory        --memory        bytes of RAM (at least 6 MiB, docker's minimum)
    memory_swap   --memory-swap   RAM + swap in bytes; -1 for unlimited swap; when only
                                  ``memory`` is given, swap may be as large as memory again
    cpus          --cpus          CPUs' worth of time per 100 ms period (0.5 = half a CPU)
    pids          --pids-limit    processes and threads (positive; None for unlimited)

Parsing what people type (``64m``, ``-1``) is :mod:`cellbox.runtime.units`' job; this
module checks the combination and raises :class:`ConfigError` naming the flag.
"""

from __future__ import annotations

import math

from ..errors import ConfigError
from ..records import record

__all__ = ["MIN_MEMORY", "Limits", "format_mib"]

MIN_MEMORY = 6 << 20
"""Below this a container cannot even start its init (docker refuses it too)."""


def format_mib(size: int) -> str:
    """``67108864`` -> ``64 MiB`` (for messages; exact sizes keep their decimals)."""
    mib = size / (1 << 20)
    return f"{mib:g} MiB" if mib >= 1 else f"{size} bytes"


@record(frozen=True)
class Limits:
    """Per-container limits; see the module docstring for units and docker semantics."""

    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    pids: int | None = None

    def __post_init__(self) -> None:
        if self.memory is not None and self.memory < MIN_MEMORY:
            raise ConfigError(
                f"--memory: {format_mib(self.memory)} is below the minimum of "
                f"{format_mib(MIN_MEMORY)}; a container needs at least that much to start"
            )
        if self.memory_swap is not None:
            if self.memory is None:
                raise ConfigError(
                    "--memory-swap needs --memory: it is the total of memory and swap "
                    "(for example --memory 512m --memory-swap 1g)"
                )
            if self.memory_swap != -1 and self.memory_swap < self.memory:
                raise ConfigError(
                    f"--memory-swap: {format_mib(self.memory_swap)} is less than --memory "
                    f"{format_mib(self.memory)}; it is memory plus swap, so it must be at "
                    "least as large (or -1 for unlimited swap)"
                )
        if self.cpus is not None and not (math.isfinite(self.cpus) and self.cpus >= 0.01):
            raise ConfigError(f"--cpus: {self.cpus!r} must be a number of CPUs, at least 0.01")
        if self.pids is not None and self.pids < 1:
            raise ConfigError(
                f"--pids-limit: {self.pids!r} must be a positive number of processes "
                "(None for unlimited)"
            )

    @property
    def any(self) -> bool:
        """True when at least one limit is set."""
        return any(v is not None for v in (self.memory, self.memory_swap, self.cpus, self.pids))

    def swap_total(self) -> int | None:
        """Memory plus swap allowed, in bytes, docker's way; None for unlimited."""
        if self.memory_swap == -1:
            return None
        if self.memory_swap is not None:
            return self.memory_swap
        return None if self.memory is None else 2 * self.memory

    def controllers(self) -> frozenset[str]:
        """The cgroup controllers these limits need."""
        needed = set()
        if self.memory is not None:
            needed.add("memory")
        if self.cpus is not None:
            needed.add("cpu")
        if self.pids is not None:
            needed.add("pids")
        return frozenset(needed)
