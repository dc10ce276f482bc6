"""The cgroup v2 driver (a pure v2 host: one unified hierarchy).

A container's cgroup is the leaf ``<mount>/<parent>/<id>``. cgroup v2's rules shape it:

- Controllers flow down: a child can use a controller only when every ancestor lists it in
  cgroup.subtree_control. So before the leaf is made, memory and pids (for stats and
  limits) and cpu (only when a quota is asked for) are enabled in each ancestor, from the
  mount root down to the parent, where not enabled already. Ancestors that are not ours
  to write (above a delegated subtree) already have them, or the limit is refused with a
  clear message.
- No internal processes: a cgroup that hands controllers to its children may hold no
  processes itself. Processes only ever go into the leaf; never into the parent.
- Killing: cgroup.kill (5.14) kills everything at once; before it, cgroup.freeze (5.2).

On a systemd host as root the default parent (``cellbox`` at the root) works like docker's
cgroupfs driver. Without root, systemd delegates ``user@UID.service`` to its user, so a
parent such as ``user.slice/user-1000.slice/user@1000.service/cellbox.slice`` works there;
anywhere else :func:`create_v2` says that limits cannot be enforced, and why.
"""

from __future__ import annotations

import errno
import os

from ..errors import CgroupError
from ..paths import clean
from . import cpu, freezer, fs, memory, pids
from .base import Cgroup, remove_if_empty, wait_until
from .explain import FLAGS, cannot_create, unavailable
from .limits import Limits
from .stats import CgroupStats, parse_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..paths import StrPath

__all__ = ["ALWAYS", "V2Cgroup", "create_v2", "enable_controllers", "open_v2"]

ALWAYS = frozenset({"memory", "pids"})
"""Enabled for every container when the host offers them: their files are the stats.
cpu is enabled only for a quota (cpu.stat's usage is there without it)."""


class V2Cgroup(Cgroup):
    """A container's cgroup in the unified hierarchy."""

    version = "v2"

    def __init__(self, container_id: str, parent: str, mount: StrPath) -> None:
        super().__init__(container_id, parent)
        self.mount = clean(mount)
        self.directory = clean(os.path.join(self.mount, parent, container_id))
        self._peak_seen = 0
        self._has_kill: bool | None = None

    def directories(self) -> list[str]:
        return [self.directory]

    def parent_directories(self) -> list[str]:
        return [clean(os.path.join(self.mount, self.parent))]

    def oom_kill_file(self) -> str | None:
        return os.path.join(self.directory, "memory.events")

    # -- limits --------------------------------------------------------------------------

    def set_limits(self, limits: Limits) -> None:
        missing = limits.controllers() - _enabled(os.path.dirname(self.directory))
        if missing:
            # e.g. a quota on a container made without one: cpu was not enabled then.
            enable_controllers(self.mount, self.parent, required=missing)
        self._apply(limits, fresh=False)

    def _apply(self, limits: Limits, *, fresh: bool) -> None:
        for name, value in memory.v2_writes(limits, fresh=fresh):
            self._write(name, value, limits)
        for name, value in cpu.v2_writes(limits, fresh=fresh):
            self._write(name, value, limits)
        for name, value in pids.writes(limits, fresh=fresh):
            self._write(name, value, limits)

    def _write(self, name: str, value: str, limits: Limits) -> None:
        try:
            fs.write_text(os.path.join(self.directory, name), value)
        except FileNotFoundError as exc:
            if value.startswith("max"):
                return  # controller not enabled here: nothing to lift
            if name == "memory.swap.max":
                if limits.memory_swap is not None:
                    self.warnings.append(
                        "--memory-swap is not enforced: this kernel does not account swap "
                        "(CONFIG_MEMCG_SWAP, or swapaccount=0 on the kernel command line)"
                    )
                return
            controller = name.partition(".")[0]
            raise CgroupError(unavailable(controller, f"{self.directory} has no {name}")) from exc
        except OSError as exc:
            raise CgroupError(
                f"cannot set {name} of cgroup {self.path} to {value!r}: "
                f"{os.strerror(exc.errno or 0)}"
            ) from exc

    # -- stats ---------------------------------------------------------------------------

    def _read(self, name: str) -> str | None:
        return fs.read_optional(os.path.join(self.directory, name))

    def stats(self) -> CgroupStats:
        current_text = self._read("memory.current")
        peak_text = self._read("memory.peak")
        limit = self._read("memory.max")
        swap_now = self._read("memory.swap.current")
        swap_max = self._read("memory.swap.max")
        stat = self._read("memory.stat")
        events = self._read("memory.events")
        cpu_stat = self._read("cpu.stat")
        cpu_max = self._read("cpu.max")
        pids_now = self._read("pids.current")
        pids_max = self._read("pids.max")

        current = None if current_text is None else parse_int(current_text, what="memory.current")
        if peak_text is not None:
            peak: int | None = parse_int(peak_text, what="memory.peak")
        elif current is not None:
            # memory.peak arrived in 5.19; before that the best is the highest we sampled.
            self._peak_seen = peak = max(self._peak_seen, current)
        else:
            peak = None
        return CgroupStats(
            memory_current=current,
            memory_peak=peak,
            memory_limit=None if limit is None else memory.v2_limit(limit),
            memory_cache=None if stat is None else memory.v2_cache(stat),
            swap_current=(
                None if swap_now is None else parse_int(swap_now, what="memory.swap.current")
            ),
            swap_limit=(
                None if swap_max is None else memory.v2_limit(swap_max, what="memory.swap.max")
            ),
            cpu_usage_ns=None if cpu_stat is None else cpu.v2_usage_ns(cpu_stat),
            cpu_quota_cpus=None if cpu_max is None else cpu.v2_quota_cpus(cpu_max),
            pids_current=None if pids_now is None else pids.current(pids_now),
            pids_limit=None if pids_max is None else pids.limit(pids_max),
            oom_kills=0 if events is None else memory.oom_kills(events),
            oom_events=None if events is None else memory.oom_events(events),
        )

    # -- killing -------------------------------------------------------------------------

    def _kill_atomically(self) -> bool:
        if self._has_kill is False:
            return False
        try:
            fs.write_text(os.path.join(self.directory, "cgroup.kill"), "1")
        except FileNotFoundError:
            # No cgroup.kill before 5.14 (remember that); or the cgroup itself is gone, and
            # the caller finds it empty on its next look.
            if os.path.isdir(self.directory):
                self._has_kill = False
            return False
        self._has_kill = True
        return True

    def _freeze(self, frozen: bool, deadline: float) -> bool:
        try:
            fs.write_text(os.path.join(self.directory, "cgroup.freeze"), "1" if frozen else "0")
        except FileNotFoundError:
            return False  # before 5.2, or the cgroup is gone
        if frozen:
            events = os.path.join(self.directory, "cgroup.events")
            # A cgroup that vanished counts as frozen: there is nothing left to wait for.
            wait_until(
                lambda: freezer.v2_is_frozen(fs.read_optional(events) or "frozen 1"), deadline
            )
        return True


def _words(path: str) -> frozenset[str]:
    text = fs.read_optional(path)
    return frozenset(text.split()) if text else frozenset()


def _enabled(directory: str) -> frozenset[str]:
    return _words(os.path.join(directory, "cgroup.subtree_control"))


def _ancestors(mount: str, parent: str) -> list[str]:
    """The mount root, then each directory down to the parent."""
    levels = [mount]
    for part in parent.split("/"):
        levels.append(clean(os.path.join(levels[-1], part)))
    return levels


def _cannot_enable(level: str, wanted: set[str], exc: OSError) -> CgroupError:
    what = " ".join(sorted(wanted))
    reason = os.strerror(exc.errno or 0)
    if exc.errno == errno.EBUSY:
        return CgroupError(
            f"cannot enable {what} in {level}/cgroup.subtree_control: {reason}. That cgroup "
            "has processes of its own, and cgroup v2 lets only a cgroup without processes "
            "give controllers to its children (the no-internal-processes rule); set "
            "CELLBOX_CGROUP_PARENT (cgroup_parent in the config) to a cgroup no process is in"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CgroupError(cannot_create(os.path.join(level, "cgroup.subtree_control"), exc, "v2"))
    flags = ", ".join(FLAGS.get(c, c) for c in sorted(wanted))
    return CgroupError(
        f"cannot enable {what} in {level}/cgroup.subtree_control: {reason}, so {flags} "
        "cannot be enforced"
    )


def enable_controllers(
    mount: StrPath, parent: str, *, required: frozenset[str], optional: frozenset[str] = ALWAYS
) -> None:
    """Make ``<mount>/<parent>`` (and its ancestors) and hand the controllers down to it.

    ``required`` controllers must arrive (the limits need them) or CgroupError says why;
    ``optional`` ones are enabled where the host allows and quietly left out where not.
    Each subtree_control is written only when something is missing, so ancestors outside a
    delegated subtree, already set up by their owner, are only read.
    """
    wanted = set(optional | required)
    for depth, level in enumerate(_ancestors(clean(mount), parent)):
        if depth:
            try:
                fs.mkdir(level)
            except OSError as exc:
                raise CgroupError(cannot_create(level, exc, "v2")) from exc
        available = _words(os.path.join(level, "cgroup.controllers"))
        for controller in sorted(required - available):
            offered = " ".join(sorted(available)) or "none"
            raise CgroupError(
                unavailable(controller, f"{level}/cgroup.controllers offers {offered}")
            )
        wanted &= available
        missing = wanted - _enabled(level)
        if not missing:
            continue
        try:
            fs.write_text(
                os.path.join(level, "cgroup.subtree_control"),
                " ".join(f"+{c}" for c in sorted(missing)),
            )
        except OSError as exc:
            if missing & required:
                raise _cannot_enable(level, missing & required, exc) from exc
            wanted -= missing  # optional: live without them below this level


def create_v2(container_id: str, limits: Limits, parent: str, mount: StrPath) -> V2Cgroup:
    """Make the container's leaf cgroup under ``parent`` and apply ``limits``.

    An existing cgroup of that id (left by a crash) is reused and its limits reset.
    On failure, whatever this call created is removed again.
    """
    group = V2Cgroup(container_id, parent, mount)
    created = False
    try:
        for _ in range(3):
            enable_controllers(mount, parent, required=limits.controllers())
            try:
                created = fs.mkdir(group.directory)
            except FileNotFoundError:
                continue  # the parent was removed by the last container's remove(): redo
            except OSError as exc:
                raise CgroupError(cannot_create(group.directory, exc, "v2")) from exc
            if not created and not os.path.isdir(group.directory):
                raise CgroupError(f"cannot create cgroup {group.directory}: a file has that name")
            break
        else:
            raise CgroupError(f"cannot create cgroup {group.directory}: its parent keeps vanishing")
        group._apply(limits, fresh=created)
    except BaseException:
        if created:
            try:  # noqa: SIM105 - contextlib costs an import on the start path
                fs.rmdir(group.directory)
            except OSError:
                pass
        remove_if_empty(group.parent_directories())
        raise
    return group


def open_v2(container_id: str, parent: str, mount: StrPath) -> V2Cgroup | None:
    """The container's cgroup if it exists, else None."""
    group = V2Cgroup(container_id, parent, mount)
    return group if os.path.isdir(group.directory) else None
