"""The exec relay: terminal bytes both ways, and the ``--control-fd`` protocol.

:class:`Relay` runs in the ``cellbox exec`` process after it forked the command into the
container. With a pty it copies the caller's stdin to the pty master and the master to
the caller's stdout (large reads, poll, no sleeps: every notebook cell goes through here),
puts the caller's terminal in raw mode, and propagates window size changes (SIGWINCH).
Without a pty the command uses the caller's stdio directly and the relay only waits,
forwarding SIGHUP/INT/QUIT/TERM/USR1/USR2 to it.

The control fd (a socket, or any fd open for reading and writing) carries JSON lines:

    relay -> caller  {"event": "reading", "echo": true, "pid": 123}
                     the pty's foreground process group is blocked reading the terminal
                     (checked 50 ms after the last output, then every 50-250 ms while
                     the terminal stays quiet); once per read; ``echo`` is the
                     terminal's ECHO flag (false for ``read -s`` and password prompts);
                     ``pid`` is the reader, as seen from the relay's PID namespace
                     {"event": "exit", "status": 0}
                     the command ended: its exit status, 128+N for signal N
    caller -> relay  {"cmd": "signal", "signal": 2, "target": "foreground"}
                     signal the pty's foreground process group (without a pty: the
                     command's process group)
                     {"cmd": "foreground"}
                     answered with {"event": "foreground", "pgrp": N, "command": bool}:
                     the pty's foreground process group now, and whether it is the
                     exec'd command's own (a shell back at its prompt) rather than a job
                     it started — so a caller can tell a shell's real output from text a
                     job printed to look like it

"Reading" means: a process of the foreground group (searched among the command's
descendants, in the host's /proc opened before entering the container) sleeps in
read/readv/pread on the pty slave, or in select/poll on fd 0 when fd 0 is the slave.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import termios
import time
from typing import Any

from . import linux
from .blocked import waiting_for_input

__all__ = ["Relay", "wait_status_code"]

IDLE_CHECK_S = 0.05
IDLE_MAX_CHECK_S = 0.25
_READ = 65536
_FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
              signal.SIGUSR2)


def wait_status_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _ignore(signum: int, frame: object) -> None:
    """Handler so the signal is noted on the wakeup fd."""


class Relay:
    """Copy bytes and control messages until the command ``child`` exits.

    ``master`` is the pty master (None without a pty); ``host_proc`` an fd of the host's
    /proc (for finding readers); ``slave_rdev`` the pty slave's device number.
    """

    def __init__(self, child: int, *, master: int | None, control_fd: int | None,
                 host_proc: int, slave_rdev: int = 0, stdin_fd: int = 0,
                 stdout_fd: int = 1) -> None:
        self.child = child
        self.child_fd = linux.pidfd_open(child)
        self.master = master
        self.control_fd = control_fd
        self.host_proc = host_proc
        self.slave_rdev = slave_rdev
        self.stdin_fd = stdin_fd if master is not None else -1
        self.stdout_fd = stdout_fd
        self.pending = b""
        self.control_buf = b""
        self.last_activity = time.monotonic()
        self.next_check = self.last_activity + IDLE_CHECK_S
        self.reported: tuple[int, str] | None = None
        self.saved_tty: list[Any] | None = None
        self.status: int | None = None

    # ------------------------------------------------------------------ set-up

    def _raw_mode(self) -> None:
        try:
            self.saved_tty = termios.tcgetattr(self.stdin_fd)
        except (termios.error, OSError):
            return
        mode = termios.tcgetattr(self.stdin_fd)
        mode[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP
                     | termios.IXON)
        mode[1] &= ~termios.OPOST
        mode[2] = (mode[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        mode[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.stdin_fd, termios.TCSAFLUSH, mode)

    def _resize(self) -> None:
        if self.master is not None:
            linux.copy_winsize((self.stdin_fd, self.stdout_fd), self.master)

    # --------------------------------------------------------------------- loop

    def run(self) -> int:
        """Relay until the command exits; returns its exit status (128+N for signal N)."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        handled = (*_FORWARDED, signal.SIGWINCH)
        old_handlers = {sig: signal.signal(sig, _ignore) for sig in handled}
        if self.master is not None:
            self._raw_mode()
            os.set_blocking(self.master, False)
        try:
            self._loop(wake_r)
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)
            if self.saved_tty is not None:
                termios.tcsetattr(self.stdin_fd, termios.TCSADRAIN, self.saved_tty)
            os.close(self.child_fd)
        assert self.status is not None
        code = wait_status_code(self.status)
        self._send({"event": "exit", "status": code})
        return code

    def _loop(self, wake_r: int) -> None:
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        poller.register(self.child_fd, select.POLLIN)
        if self.master is not None:
            poller.register(self.master, select.POLLIN)
        if self.stdin_fd >= 0:
            poller.register(self.stdin_fd, select.POLLIN)
        if self.control_fd is not None:
            poller.register(self.control_fd, select.POLLIN)
        master_open = self.master is not None
        while self.status is None:
            for fd, event in poller.poll(self._timeout()):
                if fd == self.master:
                    if event & select.POLLOUT:
                        self._write_pending(poller)
                    readable = event & (select.POLLIN | select.POLLHUP | select.POLLERR)
                    if readable and not self._pump():
                        poller.unregister(self.master)
                        master_open = False
                elif fd == self.stdin_fd:
                    self._read_stdin(poller)
                elif fd == self.control_fd:
                    self._read_control(poller)
                elif fd == wake_r:
                    self._signals(wake_r)
                elif fd == self.child_fd:
                    _, self.status = os.waitpid(self.child, 0)
            if self.status is None and self._idle():
                self._check_reading()
        if master_open:
            while self._pump():  # what the command wrote just before it exited
                pass

    def _timeout(self) -> int | None:
        if self.master is None or self.control_fd is None or self.reported is not None:
            return None
        left = self.next_check - time.monotonic()
        return max(0, int(left * 1000) + 1)

    def _idle(self) -> bool:
        return (self.master is not None and self.control_fd is not None
                and self.reported is None and time.monotonic() >= self.next_check)

    def _pump(self) -> bool:
        """Master -> stdout; False when the pty is closed (EIO) or drained."""
        assert self.master is not None
        try:
            data = os.read(self.master, _READ)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno == errno.EIO:
                return False
            raise
        if not data:
            return False
        self._activity()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.stdout_fd, view):]
            except BlockingIOError:
                waiter = select.poll()
                waiter.register(self.stdout_fd, select.POLLOUT)
                waiter.poll()
        return True

    def _activity(self) -> None:
        self.last_activity = time.monotonic()
        self.next_check = self.last_activity + IDLE_CHECK_S
        self.reported = None

    def _read_stdin(self, poller: select.poll) -> None:
        try:
            data = os.read(self.stdin_fd, _READ)
        except OSError:
            data = b""
        if not data:
            poller.unregister(self.stdin_fd)
            self.stdin_fd = -1
            return
        self._activity()
        self.pending += data
        self._write_pending(poller)

    def _write_pending(self, poller: select.poll) -> None:
        assert self.master is not None
        try:
            written = os.write(self.master, self.pending)
        except BlockingIOError:
            written = 0
        except OSError:
            written = len(self.pending)  # the pty is gone; drop the input
        self.pending = self.pending[written:]
        events = select.POLLIN | (select.POLLOUT if self.pending else 0)
        poller.modify(self.master, events)

    def _signals(self, wake_r: int) -> None:
        try:
            numbers = os.read(wake_r, 512)
        except BlockingIOError:
            return
        for sig in numbers:
            if sig == signal.SIGWINCH:
                self._resize()
            elif self.master is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.child, sig)

    # ------------------------------------------------------------------ control

    def _send(self, message: dict[str, Any]) -> None:
        if self.control_fd is None:
            return
        try:
            os.write(self.control_fd, json.dumps(message).encode() + b"\n")
        except OSError:
            self.control_fd = None  # the caller stopped listening

    def _read_control(self, poller: select.poll) -> None:
        assert self.control_fd is not None
        try:
            data = os.read(self.control_fd, 65536)
        except OSError:
            data = b""
        if not data:
            poller.unregister(self.control_fd)
            self.control_fd = None
            return
        self.control_buf += data
        while b"\n" in self.control_buf:
            line, _, self.control_buf = self.control_buf.partition(b"\n")
            try:
                command = json.loads(line)
            except ValueError:
                continue
            if not isinstance(command, dict):
                continue
            if command.get("cmd") == "signal":
                self._signal_foreground(command)
            elif command.get("cmd") == "foreground":
                self._send(self._foreground())

    def _foreground(self) -> dict[str, Any]:
        """Who holds the terminal now: the command itself (a shell at its prompt) or a job."""
        try:
            own = os.getpgid(self.child)
            pgrp = os.tcgetpgrp(self.master) if self.master is not None else own
        except OSError:
            return {"event": "foreground", "pgrp": 0, "command": False}
        return {"event": "foreground", "pgrp": pgrp, "command": pgrp == own}

    def _signal_foreground(self, command: dict[str, Any]) -> None:
        try:
            sig = int(command.get("signal", signal.SIGINT))
            pgrp = os.tcgetpgrp(self.master) if self.master is not None else os.getpgid(self.child)
            os.killpg(pgrp, sig)
        except (OSError, ValueError):
            pass

    # ----------------------------------------------------------- reading detection

    def _check_reading(self) -> None:
        assert self.master is not None
        try:
            pgrp = os.tcgetpgrp(self.master)
        except OSError:
            return
        for pid in self._descendants():
            state = self._reading_state(pid, pgrp)
            if state is None:
                continue
            key = (pid, state)
            if key == self.reported:
                return
            self.reported = key
            try:
                echo = bool(termios.tcgetattr(self.master)[3] & termios.ECHO)
            except termios.error:
                echo = True
            self._send({"event": "reading", "echo": echo, "pid": pid})
            return
        # Nothing reads yet (`sleep 1; read x` prints nothing before it reads): look again,
        # less often the longer the terminal stays quiet.
        quiet = time.monotonic() - self.last_activity
        self.next_check = time.monotonic() + min(IDLE_MAX_CHECK_S, max(IDLE_CHECK_S, quiet / 8))

    def _read_proc(self, path: str) -> str:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.host_proc)
        try:
            return os.read(fd, 4096).decode(errors="replace")
        finally:
            os.close(fd)

    def _descendants(self) -> list[int]:
        found: list[int] = []
        todo = [self.child]
        while todo and len(found) < 4096:
            pid = todo.pop()
            found.append(pid)
            try:
                for tid in self._tasks(pid):
                    todo += [int(c) for c in
                             self._read_proc(f"{pid}/task/{tid}/children").split()]
            except OSError:
                continue
        return found

    def _tasks(self, pid: int) -> list[str]:
        fd = os.open(f"{pid}/task", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC,
                     dir_fd=self.host_proc)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def _reading_state(self, pid: int, pgrp: int) -> str | None:
        """The /proc/PID/syscall line if ``pid`` (in group ``pgrp``) waits on the tty."""
        try:
            stat = self._read_proc(f"{pid}/stat")
            if int(stat[stat.rindex(")") + 2:].split()[2]) != pgrp:
                return None
            waiting = waiting_for_input(self._read_proc, pid)
        except (OSError, ValueError, IndexError):
            return None
        return waiting[0] if waiting is not None and self._is_slave(pid, waiting[1]) else None

    def _is_slave(self, pid: int, fd: int) -> bool:
        try:
            st = os.stat(f"{pid}/fd/{fd}", dir_fd=self.host_proc)
        except OSError:
            return False
        return st.st_rdev == self.slave_rdev and self.slave_rdev != 0
