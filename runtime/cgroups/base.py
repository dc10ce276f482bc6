"""What every cgroup driver does the same way: joining, listing, killing, removing.

A container's cgroup is ``<parent>/<id>`` in each hierarchy the driver uses. The v1 and v2
drivers (:mod:`.v1`, :mod:`.v2`) supply the directories, the limits and the stats; killing
is shared: freeze the cgroup (so no process can fork while we look), signal every pid,
thaw, and repeat until it is empty or the deadline passes.

Directories and files are strings: every container start makes a cgroup, and pathlib,
signal.py (enum), contextlib and collections.abc all cost imports (abc is loaded with
the interpreter anyway).
"""

from __future__ import annotations

import errno
import os
import time
from abc import ABC, abstractmethod

from ..errors import CgroupError
from . import fs
from .limits import Limits
from .memory import oom_kills
from .stats import CgroupStats

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable

    from ..paths import StrPath
else:
    import _signal as signal

__all__ = ["KILL_TIMEOUT", "Cgroup", "read_oom_kills", "remove_if_empty", "wait_until"]

KILL_TIMEOUT = 10.0
"""Seconds kill_all and remove wait for a cgroup to empty before giving up."""


def wait_until(done: Callable[[], bool], deadline: float) -> bool:
    """Poll ``done()`` with a growing pause (0.5 ms up to 20 ms) until it holds or time is up."""
    delay = 0.0005
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    return True


class Cgroup(ABC):
    """One container's cgroup: join it, limit it, sample it, kill what is in it, remove it.

    Make one with :func:`~cellbox.runtime.cgroups.create` or find one with
    :func:`~cellbox.runtime.cgroups.open_cgroup`.
    """

    version: str
    """The driver: ``"v1"`` (pure v1 and hybrid hosts) or ``"v2"``."""

    def __init__(self, container_id: str, parent: str) -> None:
        self.id = container_id
        self.parent = parent
        self.warnings: list[str] = []
        """Limits that were asked for but could only partly be applied (swap accounting off)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    @property
    def path(self) -> str:
        """The cgroup's path in its hierarchies, as /proc/PID/cgroup shows it."""
        return f"/{self.parent}/{self.id}"

    # -- what the drivers supply -------------------------------------------------------

    @abstractmethod
    def directories(self) -> list[str]:
        """The cgroup's directory in every hierarchy it lives in (each one once)."""

    @abstractmethod
    def parent_directories(self) -> list[str]:
        """The parent's directory in every hierarchy (removed when it becomes empty)."""

    @abstractmethod
    def set_limits(self, limits: Limits) -> None:
        """Make the cgroup's limits ``limits`` (None fields lift that limit)."""

    @abstractmethod
    def stats(self) -> CgroupStats:
        """One sample of usage and limits."""

    @abstractmethod
    def oom_kill_file(self) -> str | None:
        """The file whose ``oom_kill N`` line counts OOM kills (None: no memory controller).

        v1 memory.oom_control, v2 memory.events; read it with :func:`read_oom_kills`.
        """

    @abstractmethod
    def _freeze(self, frozen: bool, deadline: float) -> bool:
        """Freeze (or thaw) every process; False when this cgroup cannot be frozen."""

    def _kill_atomically(self) -> bool:
        """SIGKILL everything in one kernel operation (v2 cgroup.kill); False if unsupported."""
        return False

    # -- shared --------------------------------------------------------------------------

    def procs_files(self) -> list[str]:
        """Every cgroup.procs a process writes its pid to, to join this cgroup."""
        return [os.path.join(d, "cgroup.procs") for d in self.directories()]

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into this cgroup."""
        for procs in self.procs_files():
            try:
                fs.write_text(procs, str(pid))
            except OSError as exc:
                hint = ""
                if exc.errno in (errno.EACCES, errno.EPERM):
                    hint = (
                        f" (uid {os.geteuid()} may not move processes there: moving needs "
                        "write access to the cgroup.procs of the common ancestor of the "
                        "process's cgroup and this one)"
                    )
                elif exc.errno == errno.ESRCH:
                    hint = " (no such process)"
                raise CgroupError(
                    f"cannot move process {pid} into cgroup {self.path} ({procs}): "
                    f"{os.strerror(exc.errno or 0)}{hint}"
                ) from exc

    def pids(self) -> list[int]:
        """The processes in the cgroup (in any of its hierarchies), sorted."""
        found: set[int] = set()
        for procs in self.procs_files():
            found.update(fs.read_pids(procs))
        return sorted(found)

    def oom_kills(self) -> int:
        """OOM kills in this cgroup since it was made (0 without a memory controller)."""
        path = self.oom_kill_file()
        return 0 if path is None else read_oom_kills(path)

    def oom_killed_since(self, count: int) -> bool:
        """True when the OOM killer struck after :meth:`oom_kills` returned ``count``."""
        return self.oom_kills() > count

    def kill_all(self, sig: int = signal.SIGKILL, *, timeout: float = KILL_TIMEOUT) -> None:
        """Send ``sig`` to every process in the cgroup.

        For SIGKILL, repeat until the cgroup is empty: v2's cgroup.kill when the kernel has
        it (5.14), else freeze, signal every pid, thaw — a fork bomb cannot outrun a
        frozen cgroup. Raises CgroupError if processes are left after ``timeout`` seconds.
        Any other signal is sent once to each process (the cgroup frozen meanwhile).
        """
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            if sig == signal.SIGKILL and self._kill_atomically():
                pass
            else:
                self._signal_frozen(sig, deadline)
            if sig != signal.SIGKILL:
                return
            # Killed processes leave the cgroup as they exit, within microseconds to a few
            # milliseconds; a short wait saves another round of freeze and signal.
            if wait_until(lambda: not self.pids(), min(deadline, time.monotonic() + 0.05)):
                return
            if time.monotonic() >= deadline:
                left = self.pids() or pids
                raise CgroupError(
                    f"cannot kill every process in cgroup {self.path}: {len(left)} still "
                    f"there after {timeout:g} s (pids {left[:10]}); a process stuck in the "
                    "kernel (state D in ps) cannot die until its I/O finishes"
                )

    def _signal_frozen(self, sig: int, deadline: float) -> None:
        # While frozen no process can fork or exit, so every pid we read stays valid (no
        # pid reuse) and no child appears after we read the list. Without a freezer (an
        # unusual v1 host, v2 before 5.2) the loop in kill_all catches late forks.
        frozen = self._freeze(True, min(deadline, time.monotonic() + 1.0))
        try:
            for pid in self.pids():
                try:  # noqa: SIM105 - contextlib costs an import on the start path
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                self._freeze(False, deadline)

    def remove(self, *, timeout: float = KILL_TIMEOUT) -> None:
        """Kill what is left, remove the cgroup everywhere, then the parent when empty.

        Removing a cgroup that is gone already is not an error.
        """
        deadline = time.monotonic() + timeout
        for directory in self.directories():
            try:
                try:
                    fs.rmdir(directory)  # the usual case: the processes are gone
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    # Populated (or just emptied, the kernel still releasing it).
                    if self.pids():
                        self.kill_all(timeout=max(0.0, deadline - time.monotonic()))
                    fs.rmdir(directory, deadline=deadline)
            except OSError as exc:
                raise CgroupError(
                    f"cannot remove cgroup {directory}: {os.strerror(exc.errno or 0)}"
                ) from exc
        remove_if_empty(self.parent_directories())


def remove_if_empty(directories: list[str]) -> None:
    """rmdir each directory that no cgroup is in any more; keep the ones still in use."""
    for directory in directories:
        try:
            fs.rmdir(directory)
        except OSError as exc:
            # ENOTEMPTY/EBUSY: another container is still there; ENOENT: removed already.
            if exc.errno not in (errno.ENOTEMPTY, errno.EBUSY, errno.ENOENT, errno.EEXIST):
                raise CgroupError(
                    f"cannot remove the cgroup parent {directory}: {os.strerror(exc.errno or 0)}"
                ) from exc


def read_oom_kills(path: StrPath) -> int:
    """``oom_kill`` from a v1 memory.oom_control or v2 memory.events file (0 if gone).

    Cheap and import-light, for a container's init to tell an OOM kill from other deaths.
    """
    text = fs.read_optional(path)
    return 0 if text is None else oom_kills(text)
