"""Signals to, and news from, the foreground job of the shell's terminal.

The kernel talks to the shell through a terminal, but two things cannot go through it:
interrupting the job that runs (a signal to the terminal's *foreground process group*, so
the shell survives), and learning that this job waits for keyboard input (so the kernel can
ask the notebook for it). A :class:`Controller` does both, in one of two ways:

``RelayController`` (containers)
    ``cellbox exec -it --control-fd N`` relays the container's own terminal and speaks JSON
    lines on fd N (runtime/ptyrelay.py): events ``{"event": "reading", "echo": bool,
    "pid": N}`` (``pid``: the reader, in the relay's -- the host's -- PID namespace) and
    ``{"event": "exit", "status": N}``; commands ``{"cmd": "signal", "signal": 2|9,
    "target": "foreground"}``.

``LocalController`` (a shell on this machine, for tests and development)
    The kernel holds the terminal's master side: ``tcgetpgrp`` names the foreground group,
    and a process of that group blocked in ``read`` on the terminal (``/proc/PID/syscall``)
    is waiting for input; the terminal's ``ECHO`` flag says whether it is a password.

Both report :class:`Reading` only while the shell says a cell runs (:meth:`watch`) and only
after the cell's output has been quiet for a moment (a process that prints is not
waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cellbox.runtime.blocked import KNOWN_ARCH, waiting_for_input

__all__ = ["ControlEvent", "Controller", "Exited", "LocalController", "Reading", "RelayController"]

QUIET = 0.05  # seconds of no output before a blocked read counts as "waiting for input"


@dataclass(frozen=True)
class Reading:
    """The foreground job is blocked reading the terminal."""

    echo: bool
    pid: int | None = None  # the reader, as this process's PID namespace sees it


@dataclass(frozen=True)
class Exited:
    """The shell (the relay's child) ended with ``status`` (128 + signal for a signal)."""

    status: int


ControlEvent = Reading | Exited


class Controller(Protocol):
    """What :class:`~cellbox.kernel.shell.Shell` needs besides the terminal itself."""

    def start(self, on_event: Callable[[ControlEvent], None]) -> None:
        """Begin delivering events (on the running event loop)."""

    def watch(self, active: bool, last_output: Callable[[], float]) -> None:
        """A cell runs (``active``); ``last_output`` is the monotonic time of its last output."""

    def signal_foreground(self, signum: int) -> None:
        """Send ``signum`` to the terminal's foreground process group."""

    def shell_at_prompt(self) -> bool | None:
        """Whether the shell holds its terminal and waits in read (None: cannot tell)."""

    def signal_shell(self, signum: int) -> bool:
        """Send ``signum`` to the shell itself (not its job); False when it is gone."""

    def close(self) -> None:
        """Stop delivering events and release what was opened."""


class LocalController:
    """A controller for a shell whose terminal master is in this process."""

    def __init__(self, master_fd: int, shell_pid: int, written: Callable[[], int]) -> None:
        self._fd = master_fd
        self._shell_pid = shell_pid
        self._written = written  # bytes typed so far: a new read after our input is news
        self._on_event: Callable[[ControlEvent], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_output: Callable[[], float] = time.monotonic
        self._reported: tuple[int, int] | None = None  # (pid, bytes written) last reported

    def start(self, on_event: Callable[[ControlEvent], None]) -> None:
        self._on_event = on_event

    def watch(self, active: bool, last_output: Callable[[], float]) -> None:
        self._last_output = last_output
        if active and self._task is None:
            self._reported = None
            self._task = asyncio.get_running_loop().create_task(self._poll())
        elif not active and self._task is not None:
            self._task.cancel()
            self._task = None

    def signal_foreground(self, signum: int) -> None:
        with contextlib.suppress(OSError):
            os.killpg(os.tcgetpgrp(self._fd), signum)

    def shell_at_prompt(self) -> bool | None:
        return shell_at_prompt(self._shell_pid)

    def signal_shell(self, signum: int) -> bool:
        try:
            os.kill(self._shell_pid, signum)  # our child: its pid is ours until we reap it
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(QUIET)
            if time.monotonic() - self._last_output() < QUIET:
                continue
            reader = self._blocked_reader()
            if reader is None:
                continue
            key = (reader, self._written())
            if key == self._reported:
                continue  # the same read we already reported
            self._reported = key
            try:
                echo = bool(termios.tcgetattr(self._fd)[3] & termios.ECHO)
            except termios.error:
                continue
            if self._on_event is not None:
                self._on_event(Reading(echo, reader))

    def _blocked_reader(self) -> int | None:
        """The pid of a foreground process blocked reading this terminal, if any."""
        try:
            pgrp = os.tcgetpgrp(self._fd)
            # The terminal's name as its processes see it: the shell's fd 0.
            tty = os.readlink(f"/proc/{self._shell_pid}/fd/0")
        except OSError:
            return None
        for pid in _group_members(pgrp):
            try:
                waiting = waiting_for_input(_read_proc, pid)
                if waiting is not None and os.readlink(f"/proc/{pid}/fd/{waiting[1]}") == tty:
                    return pid
            except OSError:
                continue
        return None


def _read_proc(path: str) -> str:
    with open(f"/proc/{path}", "rb") as f:
        return f.read().decode(errors="replace")


def _parent(pid: int) -> int | None:
    """The parent pid of ``pid`` (/proc/PID/stat field 4), None when it is gone."""
    try:
        stat = _read_proc(f"{pid}/stat")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def _group_members(pgrp: int) -> list[int]:
    """Pids whose process group is ``pgrp`` (the leader first)."""
    members = [pgrp]
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == pgrp:
            continue
        try:
            stat = _read_proc(f"{entry}/stat")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgrp:
            members.append(int(entry))
    return members


class RelayController:
    """A controller speaking the ``--control-fd`` JSON-lines protocol over a socket."""

    def __init__(self, sock: socket.socket, relay_pid: int | None = None) -> None:
        self._relay_pid = relay_pid
        self._shell_pid: int | None = None
        self._sock = sock
        self._sock.setblocking(False)
        self._buffer = b""
        self._on_event: Callable[[ControlEvent], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, on_event: Callable[[ControlEvent], None]) -> None:
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def watch(self, active: bool, last_output: Callable[[], float]) -> None:
        del active, last_output  # the relay watches by itself

    def signal_foreground(self, signum: int) -> None:
        self._send({"cmd": "signal", "signal": int(signum), "target": "foreground"})

    def shell_at_prompt(self) -> bool | None:
        pid = self._find_shell()
        return shell_at_prompt(pid) if pid else None

    def signal_shell(self, signum: int) -> bool:
        """Signal the relay's child, the shell in the container, through a pidfd.

        The pid is checked to still be the relay's child once the pidfd is open: from
        then on it cannot be reused, so the signal reaches the shell or nothing.
        """
        pid = self._find_shell()
        if pid is None or self._relay_pid is None:
            return False
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return False
        try:
            if _parent(pid) != self._relay_pid:
                return False
            signal.pidfd_send_signal(pidfd, signum)
        except OSError:
            return False
        finally:
            os.close(pidfd)
        return True

    def _find_shell(self) -> int | None:
        if self._shell_pid is None and self._relay_pid is not None:
            # The relay forks the shell (its only child) into the container: its pid in
            # our namespace is in the relay's children list.
            try:
                with open(f"/proc/{self._relay_pid}/task/{self._relay_pid}/children") as f:
                    children = f.read().split()
            except OSError:
                return None
            self._shell_pid = int(children[0]) if children else None
        return self._shell_pid

    def close(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
            self._loop = None
        self._sock.close()

    def _send(self, message: dict[str, object]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with contextlib.suppress(OSError):
            self._sock.send(data)

    def _readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > 65536:  # a line that long is not ours
            self._buffer = b""
        for line in lines:
            event = parse_event(line)
            if event is not None and self._on_event is not None:
                self._on_event(event)


def parse_event(line: bytes) -> ControlEvent | None:
    """One JSON line from the relay, or None for anything we do not understand."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("event")
    if kind == "reading":
        pid = message.get("pid")
        return Reading(
            echo=bool(message.get("echo", True)),
            pid=pid if isinstance(pid, int) and pid > 0 else None,
        )
    if kind == "exit":
        status = message.get("status")
        return Exited(status if isinstance(status, int) else -1)
    return None



@dataclass(frozen=True)
class ReaderState:
    """What /proc says about a reported reader now."""

    reading: bool  # still in a read-like system call
    ns_pid: int  # its pid in its own (innermost) PID namespace


def reader_state(pid: int) -> ReaderState | None:
    """Check a reading event against /proc now (None: /proc does not tell us).

    Events travel: by the time one arrives, the reader may have got its input (our
    typed line) and gone on. A reader still in read/poll is waiting for real. The
    innermost pid tells whether it is the shell itself (its ``read`` builtin, or its
    prompt after an aborted line).
    """
    try:
        status = _read_proc(f"{pid}/status")
        waiting = waiting_for_input(_read_proc, pid)
    except OSError:
        return None
    ns_pid = pid
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            ns_pid = int(line.split()[-1])
    return ReaderState(waiting is not None, ns_pid)


def shell_at_prompt(pid: int) -> bool | None:
    """Whether process ``pid`` (a shell) is its terminal's foreground and waits in read.

    That is a shell at its prompt, which has finished the line it was given: a job of
    the cell would hold the terminal, and the shell would wait for it in wait4. An end
    marker printed by anything else than the shell (a program that read the nonce out of
    the shell's memory) comes while the shell is *not* at its prompt. None when /proc does
    not tell (another user's process, a kernel without /proc/PID/syscall, an architecture
    whose system call numbers we do not know).
    """
    if not KNOWN_ARCH:
        return None
    try:
        stat = _read_proc(f"{pid}/stat")
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 6:
            return None
        if int(fields[2]) != int(fields[5]):  # its process group is not the terminal's
            return False
        waiting = waiting_for_input(_read_proc, pid)
    except OSError:
        return None
    return waiting is not None and waiting[1] == 0
