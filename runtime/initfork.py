"""A container init forked ahead of time by the ``cellbox`` command itself.

Spawning the init (``python -I -S _boot.py _init``) costs a second interpreter start and
its imports, ≈ 20 ms of every ``cellbox run``. A single-threaded program can fork instead
— but forking when the container starts would hand PID 1 every page the command has
touched by then (≈ 11 MiB of imported modules, private to PID 1 once ``run -d`` exits,
against the ≤ 8 MiB per idle container that density asks for). So the command forks as
the very first thing it does, while it is still a bare interpreter (:func:`prefork`):

* the child closes every fd but stdio and its two pipes, starts a new session, imports
  the init (:mod:`._init`, lean) — on the other core, while the command parses its
  arguments, reads the image and makes the cgroup — and blocks reading its pipe;
* :func:`~.sandbox.start_sandbox` takes it (:func:`take`) and sends the start message
  ``{"spec": PATH, "log": PATH | null, "stdin": bool}``; from there on the child is the
  spawned init exactly (same protocol, see :mod:`.sandbox`): it joins the cgroups,
  unshares, forks PID 1 and exits.

A command that ends without starting a container closes the pipe (:func:`discard`); the
child reads end-of-file and exits. Multithreaded callers (the Jupyter kernel) never get
here: :func:`prefork` refuses unless the process has one thread, and ``start_sandbox``
spawns when there is nothing to take.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ForkedInit", "discard", "prefork", "single_threaded", "take"]


class ForkedInit:
    """The host's end of a pre-forked init: its pid and the two sync pipes."""

    def __init__(self, pid: int, up_r: int, down_w: int) -> None:
        self.pid = pid
        self.up_r = up_r  # init -> host
        self.down_w = down_w  # host -> init
        self.owner = os.getpid()
        self.returncode: int | None = None

    # The subset of subprocess.Popen that start_sandbox uses for its init.

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:  # noqa: SIM105 - contextlib is not imported here
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass

    def hand_over(self) -> tuple[int, int]:
        """(up_r, down_w) for the caller to own (and close) from now on."""
        pipes = (self.up_r, self.down_w)
        self.up_r = self.down_w = -1
        return pipes

    def close_pipes(self) -> None:
        for fd in (self.up_r, self.down_w):
            if fd >= 0:
                os.close(fd)
        self.up_r = self.down_w = -1


_pending: ForkedInit | None = None


def single_threaded() -> bool:
    """Whether this process has exactly one thread (Python's or any library's)."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Threads:"):
                return int(line.split()[1]) == 1
    return False


def prefork() -> bool:
    """Fork the init of the next container start now, if this process is single-threaded.

    Call it as early as possible (before importing much): the child keeps a copy of every
    page this process has at the time. Returns whether a child was forked.
    """
    global _pending
    if _pending is not None or not single_threaded():
        return False
    up_r, up_w = os.pipe2(os.O_CLOEXEC)
    down_r, down_w = os.pipe2(os.O_CLOEXEC)
    if min(up_r, up_w, down_r, down_w) < 3:  # started with stdio closed: leave it be
        for fd in (up_r, up_w, down_r, down_w):
            os.close(fd)
        return False
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()  # nothing buffered may be written twice
    pid = os.fork()
    if pid == 0:
        try:
            _child(up_w, down_r)
        finally:
            os._exit(125)
    os.close(up_w)
    os.close(down_r)
    _pending = ForkedInit(pid, up_r, down_w)
    return True


def _child(up: int, down: int) -> None:
    os.setsid()  # like the spawned init: no signals from the caller's terminal
    low, high = sorted((up, down))
    os.closerange(3, low)
    os.closerange(low + 1, high)
    os.closerange(high + 1, 1 << 20)  # close_range(2): one syscall
    from . import _init

    _init.preforked(up, down)


def take() -> ForkedInit | None:
    """The pre-forked init for a container start, once (None: spawn one)."""
    global _pending
    forked, _pending = _pending, None
    if forked is None or forked.owner != os.getpid():
        return None
    if forked.poll() is not None:  # it died meanwhile (killed?): spawn instead
        forked.close_pipes()
        return None
    return forked


def discard() -> None:
    """End an unused pre-forked init (it reads end-of-file and exits) and reap it."""
    forked = take()
    if forked is not None:
        forked.close_pipes()
        forked.wait()
