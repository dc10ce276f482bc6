"""Which system call a sleeping process waits in, read from /proc without being fooled.

``/proc/PID/syscall`` shows a number whenever the task is not running, in a system call or
not: a task asleep in a page fault shows the fault's error code there (on x86_64, 7 --
poll -- for a write to a copy-on-write page, right after a shell forked), a frozen task
or one waiting for a lock (uninterruptible, ``D``) shows the call it was in, and a task
may wake, run and sleep elsewhere between two reads of /proc. "The shell waits in read"
must not be believed then: the kernel ends a cell on it (kernel/shell.py).

So a call is believed only if the task slept interruptibly (``State: S``, as a wait for
input does) before and after its syscall file was read, and did not run in between (its
context switch counts did not move). The call numbers are the machine's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["KNOWN_ARCH", "blocked_call", "input_fd", "waiting_for_input"]

# Calls that mean "waiting for terminal input", per architecture: read, pread64, readv,
# preadv ... and poll, select, pselect6, ppoll, epoll_wait, epoll_pwait(2) (busybox's
# `read` polls first; what a poll waits on is in its memory, so stdin is taken for it).
_READ_CALLS = {"x86_64": frozenset({0, 17, 19, 295}), "aarch64": frozenset({63, 65, 67, 69})}
_WAIT_CALLS = {
    "x86_64": frozenset({7, 23, 232, 270, 271, 281, 441}),
    "aarch64": frozenset({22, 72, 73, 441}),
}
_ARCH = os.uname().machine
KNOWN_ARCH = _ARCH in _READ_CALLS  # elsewhere nothing is known to wait for input


def blocked_call(read: Callable[[str], str], pid: int) -> str | None:
    """The ``/proc/PID/syscall`` line of ``pid`` if it sleeps in a system call, else None.

    ``read`` gives the text of a file under /proc ("PID/status"): callers read their own
    /proc or the host's through a directory fd. OSError when /proc does not tell (the
    process is gone, or is not ours to look at).
    """
    before = _asleep(read(f"{pid}/status"))
    line = read(f"{pid}/syscall").strip()
    after = _asleep(read(f"{pid}/status"))
    if before is None or before != after:
        return None
    words = line.split()
    if len(words) < 2 or not words[0].isdigit():
        return None  # "running", or "-1": not in a system call
    return line


def waiting_for_input(read: Callable[[str], str], pid: int) -> tuple[str, int] | None:
    """(its /proc/PID/syscall line, the fd it reads) if ``pid`` sleeps waiting for input.

    ``read`` as for :func:`blocked_call`; OSError when /proc does not tell.
    """
    line = blocked_call(read, pid)
    fd = input_fd(line) if line is not None else None
    return None if line is None or fd is None else (line, fd)


def input_fd(line: str) -> int | None:
    """The fd a blocked call (a line of :func:`blocked_call`) reads, None if it does not."""
    words = line.split()
    nr = int(words[0])
    if nr in _READ_CALLS.get(_ARCH, ()):
        return int(words[1], 16)
    if nr in _WAIT_CALLS.get(_ARCH, ()):
        return 0
    return None


def _asleep(status: str) -> tuple[int, int] | None:
    """A task's (voluntary, involuntary) context switches if it sleeps, None if not."""
    state = voluntary = involuntary = None
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == "State":
            state = value.split()[0] if value.split() else None
        elif key == "voluntary_ctxt_switches" and value.strip().isdigit():
            voluntary = int(value)
        elif key == "nonvoluntary_ctxt_switches" and value.strip().isdigit():
            involuntary = int(value)
    if state != "S" or voluntary is None or involuntary is None:
        return None
    return voluntary, involuntary
