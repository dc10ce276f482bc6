"""The cgroup v1 driver (pure v1 hosts and hybrid ones, where v1 holds the controllers).

A container's cgroup is a directory ``<parent>/<id>`` in each hierarchy it needs: memory,
cpu, cpuacct, pids and freezer (cpu and cpuacct may be one co-mounted hierarchy; cpuset,
devices and blkio are left alone: cpuset would need cpus and mems copied in before use).
A controller that is not mounted is skipped unless a limit needs it.
"""

from __future__ import annotations

import errno
import os

from ..errors import CgroupError
from ..paths import clean
from . import cpu, freezer, fs, memory, pids
from .base import Cgroup, remove_if_empty, wait_until
from .explain import cannot_create, unavailable
from .limits import Limits, format_mib
from .stats import CgroupStats, parse_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..paths import StrPath

__all__ = ["CONTROLLERS", "V1Cgroup", "create_v1", "open_v1"]

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")


class V1Cgroup(Cgroup):
    """A container's cgroup across the v1 hierarchies."""

    version = "v1"

    def __init__(self, container_id: str, parent: str, mounts: Mapping[str, StrPath]) -> None:
        super().__init__(container_id, parent)
        self._mounts = {c: clean(mounts[c]) for c in CONTROLLERS if c in mounts}
        self._dirs = {c: clean(os.path.join(m, parent, container_id))
                      for c, m in self._mounts.items()}
        self._unique = list(dict.fromkeys(self._dirs.values()))
        self._procs = [os.path.join(d, "cgroup.procs") for d in self._unique]

    def directories(self) -> list[str]:
        return list(self._unique)

    def parent_directories(self) -> list[str]:
        return [os.path.dirname(d) for d in self._unique]

    def procs_files(self) -> list[str]:
        return list(self._procs)

    def oom_kill_file(self) -> str | None:
        directory = self._dirs.get("memory")
        return None if directory is None else os.path.join(directory, "memory.oom_control")

    # -- limits --------------------------------------------------------------------------

    def set_limits(self, limits: Limits) -> None:
        self._apply(limits, fresh=False)

    def _apply(self, limits: Limits, *, fresh: bool) -> None:
        self._check_controllers(limits)
        self._write_memory(limits, memory.v1_writes(limits, fresh=fresh))
        for name, value in cpu.v1_writes(limits, fresh=fresh):
            self._write("cpu", name, value)
        for name, value in pids.writes(limits, fresh=fresh):
            self._write("pids", name, value)

    def _check_controllers(self, limits: Limits) -> None:
        missing = sorted(limits.controllers() - self._dirs.keys())
        if missing:
            raise CgroupError(unavailable(missing[0], "no cgroup v1 hierarchy has it mounted"))

    def _write_memory(self, limits: Limits, writes: list[tuple[str, str]]) -> None:
        if not writes:
            return
        (limit_file, limit), *rest = writes
        try:
            self._write("memory", limit_file, limit)
        except CgroupError as exc:
            # memsw must stay >= memory: raising memory above the old memsw needs memsw
            # raised first. Any other refusal is reported as it is.
            cause = exc.__cause__
            if not rest or not isinstance(cause, OSError) or cause.errno != errno.EINVAL:
                raise
            self._write_memsw(limits, *rest[0])
            self._write("memory", limit_file, limit)
        else:
            if rest:
                self._write_memsw(limits, *rest[0])

    def _write_memsw(self, limits: Limits, name: str, value: str) -> None:
        try:
            self._write("memory", name, value, missing_ok=False)
        except CgroupError as exc:
            if not isinstance(exc.__cause__, FileNotFoundError):
                raise
            # No memsw files: the kernel does not account swap (swapaccount=0).
            if limits.memory_swap is not None:
                self.warnings.append(
                    "--memory-swap is not enforced: this kernel does not account swap "
                    "(boot with swapaccount=1 to enable it)"
                )

    def _write(self, controller: str, name: str, value: str, *, missing_ok: bool = True) -> None:
        directory = self._dirs.get(controller)
        if directory is None:
            return  # unmounted controller: nothing is limited there (checked in _apply)
        try:
            fs.write_text(os.path.join(directory, name), value)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and missing_ok and value == "-1":
                return
            hint = ""
            if exc.errno == errno.EBUSY and name == "memory.limit_in_bytes":
                hint = (
                    f"; the container uses more than {format_mib(int(value))} that the "
                    "kernel could not reclaim: free memory in it first, or keep the limit"
                )
            raise CgroupError(
                f"cannot set {name} of cgroup {self.path} to {value}: "
                f"{os.strerror(exc.errno or 0)}{hint}"
            ) from exc

    # -- stats ---------------------------------------------------------------------------

    def _read(self, controller: str, name: str) -> str | None:
        directory = self._dirs.get(controller)
        return None if directory is None else fs.read_optional(os.path.join(directory, name))

    def stats(self) -> CgroupStats:
        usage = self._read("memory", "memory.usage_in_bytes")
        peak = self._read("memory", "memory.max_usage_in_bytes")
        limit = self._read("memory", "memory.limit_in_bytes")
        stat = self._read("memory", "memory.stat")
        oom = self._read("memory", "memory.oom_control")
        memsw_usage = self._read("memory", "memory.memsw.usage_in_bytes")
        memsw_limit = self._read("memory", "memory.memsw.limit_in_bytes")
        cpu_usage = self._read("cpuacct", "cpuacct.usage")
        quota = self._read("cpu", "cpu.cfs_quota_us")
        period = self._read("cpu", "cpu.cfs_period_us")
        pids_now = self._read("pids", "pids.current")
        pids_max = self._read("pids", "pids.max")

        current = None if usage is None else parse_int(usage, what="memory.usage_in_bytes")
        mem_limit = None if limit is None else memory.v1_limit(limit)
        swap_current = swap_limit = None
        if memsw_usage is not None and current is not None:
            both = parse_int(memsw_usage, what="memory.memsw.usage_in_bytes")
            swap_current = max(0, both - current)
        if memsw_limit is not None and mem_limit is not None:
            total = memory.v1_limit(memsw_limit, what="memory.memsw.limit_in_bytes")
            swap_limit = None if total is None else max(0, total - mem_limit)
        return CgroupStats(
            memory_current=current,
            memory_peak=None if peak is None else parse_int(peak, what="max_usage_in_bytes"),
            memory_limit=mem_limit,
            memory_cache=None if stat is None else memory.v1_cache(stat),
            swap_current=swap_current,
            swap_limit=swap_limit,
            cpu_usage_ns=None if cpu_usage is None else cpu.v1_usage_ns(cpu_usage),
            cpu_quota_cpus=(
                None if quota is None or period is None else cpu.v1_quota_cpus(quota, period)
            ),
            pids_current=None if pids_now is None else pids.current(pids_now),
            pids_limit=None if pids_max is None else pids.limit(pids_max),
            oom_kills=0 if oom is None else memory.oom_kills(oom),
            oom_events=None,
        )

    # -- freezing ------------------------------------------------------------------------

    def _freeze(self, frozen: bool, deadline: float) -> bool:
        directory = self._dirs.get("freezer")
        if directory is None:
            return False
        state = os.path.join(directory, "freezer.state")
        try:
            fs.write_text(state, freezer.FROZEN if frozen else freezer.THAWED)
        except FileNotFoundError:
            return False  # the cgroup is gone: nothing left to freeze
        if frozen:
            # FREEZING until every task reached the refrigerator; signalling a partly
            # frozen cgroup is still right, only less airtight, so a timeout is not fatal.
            wait_until(lambda: freezer.v1_is_frozen(fs.read_optional(state) or "FROZEN"), deadline)
        return True


def _make(directory: str) -> bool:
    """mkdir the cgroup; True when it is new. Remakes a parent removed under our feet."""
    for _ in range(3):
        try:
            if fs.mkdir(directory):
                return True
            if not os.path.isdir(directory):
                raise CgroupError(f"cannot create cgroup {directory}: a file has that name")
            return False
        except FileNotFoundError:
            # The parent does not exist yet, or the last container's remove() just took
            # it away; make it (again) and retry.
            parent = os.path.dirname(directory)
            try:
                fs.makedirs(parent)
            except OSError as exc:
                raise CgroupError(cannot_create(parent, exc, "v1")) from exc
        except OSError as exc:
            raise CgroupError(cannot_create(directory, exc, "v1")) from exc
    raise CgroupError(f"cannot create cgroup {directory}: its parent keeps disappearing")


def create_v1(
    container_id: str, limits: Limits, parent: str, mounts: Mapping[str, StrPath]
) -> V1Cgroup:
    """Make the container's cgroup in every v1 hierarchy it needs and apply ``limits``.

    An existing cgroup of that id (left by a crash) is reused and its limits reset.
    On failure, whatever this call created is removed again.
    """
    group = V1Cgroup(container_id, parent, mounts)
    group._check_controllers(limits)
    if not group.directories():
        raise CgroupError(
            "no cgroup v1 hierarchy for memory, cpu, cpuacct, pids or freezer is mounted; "
            "cellbox cannot make a cgroup for the container"
        )
    created: list[str] = []
    try:
        for directory in group.directories():
            if _make(directory):
                created.append(directory)
        group._apply(limits, fresh=len(created) == len(group.directories()))
    except BaseException:
        for directory in created:
            try:  # noqa: SIM105 - contextlib costs an import on the start path
                fs.rmdir(directory)
            except OSError:
                pass
        remove_if_empty(group.parent_directories())
        raise
    return group


def open_v1(
    container_id: str, parent: str, mounts: Mapping[str, StrPath]
) -> V1Cgroup | None:
    """The container's cgroup if it exists in any hierarchy, else None."""
    group = V1Cgroup(container_id, parent, mounts)
    return group if any(os.path.isdir(d) for d in group.directories()) else None
