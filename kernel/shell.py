"""One persistent shell behind a terminal, driven by pexpect: the place where cells run.

A :class:`Shell` is started from a :class:`ShellCommand`, "the argv that gives me a shell":
locally ``["bash", "--norc", "--noprofile", "--noediting", "-i"]``; in a container
``[python, "-I", "-m", "cellbox.runtime", "exec", "-it", "--control-fd", "{control_fd}",
NAME, "/bin/sh", "-c", ...]``. It is interactive (``-i``) so that job control puts every
command in its own process group: an interrupt kills the job, not the shell. readline is
off (``--noediting``): the kernel types whole lines, and the terminal's own line
discipline is all the editing needed.

The wire format (markers, prompts, echo) is in :mod:`cellbox.kernel.protocol`. Here is the
I/O around it:

* The terminal's master fd is read by the event loop (``add_reader``) in 64 KiB reads; each
  read goes through :class:`~cellbox.kernel.protocol.ShellOutput` and its events go to the
  running cell's :class:`CellIO` as they come. No per-line delay anywhere: a cell costs one
  file write, one line written and the reads of its output.
* A cell is written to the exchange directory as a file and sourced by one typed line.
* Interrupt (:meth:`Shell.interrupt`): SIGINT to the terminal's foreground process group,
  SIGKILL to it after ``kill_after`` seconds, and if the shell still does not come back,
  the shell is ended (the next cell starts a new one). The shell answers an aborted line
  with its prompt and no end marker; the kernel then types a resync line with a new nonce
  and ends the cell when that marker arrives.
* Input: when the controller reports that the foreground job waits on the terminal, the
  cell's :class:`CellIO` is asked (``password`` when the terminal does not echo) and the
  answer is typed, or ``^D`` (end of file) when there is none.
* The shell ending (``exit``, a crash, the container stopping or being OOM-killed) ends the
  running cell with :attr:`CellResult.shell_exit`; :attr:`Shell.alive` turns false and the
  owner starts a new shell for the next cell.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pexpect
import ptyprocess
from cellbox.runtime import linux
from cellbox.runtime.errors import CellboxError

from .controller import (
    ControlEvent,
    Controller,
    Exited,
    LocalController,
    Reading,
    RelayController,
    reader_state,
)
from .protocol import (
    DisplayRequest,
    EndMarker,
    Event,
    Output,
    Prompt,
    ShellOutput,
    cell_file,
    cell_line,
    init_line,
    new_nonce,
    parse_init,
    resync_line,
)

__all__ = [
    "CellIO",
    "CellResult",
    "Shell",
    "ShellCommand",
    "ShellError",
    "local_bash",
]

READ_SIZE = 1 << 16
BETWEEN_CELLS_CAP = 1 << 20  # output of background jobs kept for the next cell
CONFIRM_READING = 0.02  # seconds between a reading event and checking it still holds


class ShellError(CellboxError):
    """The shell could not be started or stopped answering."""


@dataclass(frozen=True)
class ShellCommand:
    """How to get a shell, and where its cell files go.

    ``argv`` may contain the placeholder ``{control_fd}``: the kernel then makes a socket
    pair, passes one end to the child under that number and speaks the relay's control
    protocol on the other (:class:`~cellbox.kernel.controller.RelayController`). Without it,
    the terminal is the shell's own and is controlled locally.
    """

    argv: list[str]
    exchange_dir: Path  # where the kernel writes cell files
    exchange_path: str  # the same directory as the shell sees it
    env: dict[str, str] | None = None
    cwd: str | None = None
    dimensions: tuple[int, int] = (24, 120)
    setup: str = ""  # extra shell code for the first line (e.g. PATH additions)

    @property
    def relayed(self) -> bool:
        return any("{control_fd}" in arg for arg in self.argv)


def local_bash(exchange_dir: Path, **kwargs: Any) -> ShellCommand:
    """A bash on this machine (tests, development): the exchange dir is seen as it is."""
    return ShellCommand(
        ["bash", "--norc", "--noprofile", "--noediting", "-i"],
        exchange_dir,
        str(exchange_dir),
        **kwargs,
    )


class CellIO(Protocol):
    """Where a running cell's output goes and where its input comes from."""

    def output(self, text: str) -> None:
        """Text the cell printed (already decoded; may end in the middle of a line)."""

    def display(self, request: DisplayRequest) -> None:
        """The cell ran ``display``; the file is in the exchange directory."""

    async def read_input(self, password: bool) -> str | None:
        """A line for the waiting process, or None for end of file."""


@dataclass
class CellResult:
    """How a cell ended."""

    status: int | None  # the cell's $?; None when the shell ended first
    interrupted: bool = False
    shell_exit: int | None = None  # the shell's exit status when it ended during the cell
    killed: bool = False  # the job was SIGKILLed after it ignored SIGINT


@dataclass
class _Cell:
    io: CellIO
    done: asyncio.Future[CellResult]
    nonces: set[str] = field(default_factory=set)
    starting: bool = False  # the shell's first line: nobody to ask for input yet
    interrupted: bool = False
    killed: bool = False
    resync_pending: bool = False
    status: int | None = None  # from the latest end marker, until the shell confirms it
    line_nonce: str = ""  # the nonce typed with the cell's line (the others: resyncs)
    line_marked: bool = False  # the marker of the cell's own line came (not a resync's)
    prompted: bool = False  # our prompt came after the latest end marker
    confirm: asyncio.TimerHandle | None = None
    input_task: asyncio.Task[None] | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


if TYPE_CHECKING:
    _SpawnBase = pexpect.spawn[bytes]
else:
    _SpawnBase = pexpect.spawn


class _Spawn(_SpawnBase):
    """pexpect.spawn that can hand one extra fd (the control socket) to the child."""

    def __init__(self, *args: Any, pass_fds: tuple[int, ...] = (), **kwargs: Any) -> None:
        self._pass_fds = pass_fds
        super().__init__(*args, **kwargs)

    def _spawnpty(self, args: list[str], **kwargs: Any) -> ptyprocess.PtyProcess:
        return ptyprocess.PtyProcess.spawn(args, pass_fds=self._pass_fds, **kwargs)


# Signals a shell must start with at their defaults: an ignored signal stays ignored
# across exec, and Python ignores SIGPIPE and SIGXFSZ, a kernel started under nohup or as a
# background job SIGINT and SIGQUIT (then an interrupt would have to escalate to SIGKILL).
_DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE, signal.SIGXFSZ,
                    signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)


def _child_setup(inherit: int | None) -> None:
    """In the shell's process, after fork, before exec."""
    for sig in _DEFAULT_SIGNALS:
        linux.default_signal(sig)  # the raw call: signal.signal needs the main thread
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if inherit is not None:
        # The socket is O_CLOEXEC like every fd of ours; only the child's copy is
        # made inheritable.
        os.set_inheritable(inherit, True)


class Shell:
    """A persistent shell. ``start`` it, ``run`` cells one at a time, ``close`` it."""

    def __init__(
        self,
        command: ShellCommand,
        *,
        kill_after: float = 1.0,
        give_up_after: float = 3.0,
        on_exit: Callable[[int | None], None] | None = None,
    ) -> None:
        self.command = command
        self.kill_after = kill_after
        self.give_up_after = give_up_after
        self.pid: int | None = None  # the shell's pid as its own pid namespace sees it
        self.is_bash = False  # other shells get the terminal's echo off at their prompt
        self.exit_status: int | None = None
        self._on_exit = on_exit
        self._child: _Spawn | None = None
        self._fd = -1
        self._controller: Controller | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shell_nonce = new_nonce()
        self._scanner = ShellOutput(self._shell_nonce)
        self._cell: _Cell | None = None
        self._lock = asyncio.Lock()
        self._in_flight = 0  # typed lines whose prompt has not come back yet
        self._prompted = asyncio.Event()  # set while no typed line still owes its prompt
        self._prompted.set()
        self._written = 0
        self._last_output = time.monotonic()
        self._between: list[str] = []
        self._between_size = 0
        self._counter = 0
        self._eof = False
        self._spoke = asyncio.Event()  # the shell printed its first bytes
        self._gone = asyncio.Event()  # the shell ended or was closed
        self._closing: asyncio.Task[None] | None = None  # an aclose() of our own
        self._init_text: list[str] = []
        self._files: list[Path] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def alive(self) -> bool:
        """Whether the shell runs (false after it ended or was closed)."""
        return self._child is not None and not self._eof

    @property
    def busy(self) -> bool:
        """Whether a cell runs now."""
        return self._cell is not None

    async def start(self, timeout: float = 30.0) -> None:
        """Spawn the shell and wait until it has taken our settings."""
        self._loop = asyncio.get_running_loop()
        command = self.command
        argv = list(command.argv)
        pass_fds: tuple[int, ...] = ()
        ours: socket.socket | None = None
        theirs: socket.socket | None = None
        if command.relayed:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            argv = [arg.replace("{control_fd}", str(theirs.fileno())) for arg in argv]
            pass_fds = (theirs.fileno(),)
        inherit = theirs.fileno() if theirs is not None else None
        try:
            self._child = _Spawn(
                argv[0],
                argv[1:],
                env=command.env,
                cwd=command.cwd,
                echo=True,
                dimensions=command.dimensions,
                pass_fds=pass_fds,
                preexec_fn=lambda: _child_setup(inherit),
            )
        except (OSError, pexpect.ExceptionPexpect) as exc:
            if ours is not None:
                ours.close()
            raise ShellError(f"cannot start the shell {argv[0]}: {exc}") from exc
        finally:
            if theirs is not None:
                theirs.close()
        self._fd = self._child.child_fd
        os.set_blocking(self._fd, False)
        if ours is not None:
            self._controller = RelayController(ours, self._child.pid)
        else:
            pid = self._child.pid
            assert pid is not None
            self._controller = LocalController(self._fd, pid, lambda: self._written)
        self._controller.start(self._on_control)
        self._loop.add_reader(self._fd, self._on_readable)

        nonce = new_nonce()
        line = init_line(nonce, self._shell_nonce, command.setup)
        done = self._loop.create_future()
        self._cell = _Cell(_InitIO(self._init_text), done, {nonce}, starting=True)
        self._scanner.expect(nonce)
        self._scanner.strip_echo(line.encode(), sticky=True)
        deadline = time.monotonic() + timeout
        try:
            # Type only once the shell has printed something (its prompt): a relay sets
            # its terminal to raw mode with TCSAFLUSH, which drops input typed earlier.
            await asyncio.wait_for(self._spoke.wait(), timeout)
            if not done.done():
                await self._type_line(line)
            result = await asyncio.wait_for(done, max(deadline - time.monotonic(), 0.1))
            if result.status is not None:
                # The marker comes just before the shell prints our prompt. A line typed in
                # between is echoed by the terminal at once, the prompt lands inside that
                # echo, and the echo (nonce and all) would be shown as the first cell's
                # output: the first cell is typed only once the prompt is out.
                await asyncio.wait_for(
                    self._prompted.wait(), max(deadline - time.monotonic(), 0.1)
                )
        except TimeoutError:
            text = "".join(self._init_text)[-2000:]
            self.close()
            raise ShellError(
                f"the shell {argv[0]} did not answer within {timeout:.0f} s; it printed:\n{text}"
            ) from None
        finally:
            self._cell = None
        if result.status is None:
            text = "".join(self._init_text)[-2000:].strip()
            raise ShellError(f"the shell ended as it started (status {result.shell_exit}): {text}")
        self.pid, self.is_bash = parse_init("".join(self._init_text))
        self._init_text.clear()
        # The shell's start-up output can interleave with the echo of the first line: an
        # echo not found by now never will be, and must not hold up the next ones.
        self._scanner.forget_echoes()

    async def aclose(self, grace: float = 0.3) -> None:
        """End the shell as closing its terminal window would, then :meth:`close`.

        SIGHUP goes to the shell itself (it hangs up its jobs and exits), SIGKILL when it
        is still there ``grace`` seconds later, :meth:`close` last. Why not :meth:`close`
        alone: the shell's parent is the ``cellbox exec`` relay, outside the container's
        PID namespace. Killed first, the relay leaves the shell to the host's init to reap,
        and the container's PID 1 cannot finish exiting until that zombie is reaped: where
        init reaps lazily, stopping the container took 1-2 s more. Ended this way, the
        shell is reaped by the relay, which then exits by itself.
        """
        if self.alive and self._controller is not None:
            for signum in (signal.SIGHUP, signal.SIGKILL):
                if not self._controller.signal_shell(signum) or await self._ends_within(grace):
                    break
        self.close()

    async def _ends_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone.wait(), seconds)
        return self._gone.is_set()

    def close(self) -> None:
        """End the shell now (SIGKILL: the relay ignores hangups) and stop reading it.

        Killing the relay closes the container terminal's master side, so the shell there
        gets SIGHUP and ends with its jobs, as when a terminal window is closed.
        """
        if self._loop is not None and self._fd >= 0:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
        if self._controller is not None:
            self._controller.close()
            self._controller = None
        child = self._child
        if child is not None:
            if not self._eof and child.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(child.pid, signal.SIGKILL)
                self._reap()
            # pexpect would sleep and try gentler signals first: not needed any more.
            child.delayafterclose = 0
            ptyproc = getattr(child, "ptyproc", None)
            if ptyproc is not None:
                ptyproc.delayafterclose = 0
            with contextlib.suppress(Exception):
                child.close(force=True)
            if self.exit_status is None:
                self.exit_status = _status(child)
            self._child = None
        self._eof = True
        self._gone.set()
        self._fd = -1
        for path in self._files:
            with contextlib.suppress(OSError):
                path.unlink()
        self._files.clear()
        cell = self._cell
        if cell is not None and not cell.done.done():
            self._finish(cell, CellResult(None, cell.interrupted, self.exit_status, cell.killed))

    # ------------------------------------------------------------------ cells

    async def run(self, code: str, io: CellIO, *, trace: bool = True) -> CellResult:
        """Run ``code`` as one cell; stream its output to ``io``; return how it ended.

        ``trace=False`` is for the kernel's own queries: the user's ``set -x`` does not trace
        them.
        """
        async with self._lock:
            if not self.alive or self._loop is None:
                raise ShellError("the shell is not running")
            path = self._write_cell(code, trace)
            nonce = new_nonce()
            cell = _Cell(io, self._loop.create_future(), {nonce}, line_nonce=nonce)
            self._cell = cell
            if self._between:
                io.output("".join(self._between))
                self._between.clear()
                self._between_size = 0
            self._scanner.expect(nonce)
            toggle = not self.is_bash
            line = cell_line(f"{self.command.exchange_path}/{path.name}", nonce, toggle)
            if not toggle:  # the others' prompt does not echo
                self._scanner.strip_echo(line.encode(), sticky=True)
            assert self._controller is not None
            self._controller.watch(True, lambda: self._last_output)
            try:
                await self._type_line(line)
                # Output already waiting (a fast cell) is read before the loop polls again.
                self._drain()
                return await cell.done
            finally:
                if self._controller is not None:
                    self._controller.watch(False, lambda: self._last_output)
                for timer in cell.timers:
                    timer.cancel()
                if cell.confirm is not None:
                    cell.confirm.cancel()
                if cell.input_task is not None:
                    cell.input_task.cancel()
                self._scanner.forget_echoes()
                self._cell = None
                with contextlib.suppress(OSError):
                    path.unlink()
                self._files.remove(path)

    def interrupt(self) -> None:
        """Interrupt the running cell: SIGINT, then SIGKILL, then end the shell."""
        cell = self._cell
        if cell is None or cell.done.done() or self._controller is None or self._loop is None:
            return
        if cell.input_task is not None:
            cell.input_task.cancel()
            cell.input_task = None
        first = not cell.interrupted
        cell.interrupted = True
        self._controller.signal_foreground(signal.SIGINT)
        if first:
            cell.timers.append(self._loop.call_later(self.kill_after, self._escalate, cell))
            cell.timers.append(
                self._loop.call_later(self.kill_after + self.give_up_after, self._give_up, cell)
            )

    def _escalate(self, cell: _Cell) -> None:
        if cell.done.done() or self._controller is None:
            return
        cell.killed = True
        self._controller.signal_foreground(signal.SIGKILL)

    def _give_up(self, cell: _Cell) -> None:
        if not cell.done.done() and self._loop is not None:
            self._closing = self._loop.create_task(self.aclose())

    # ------------------------------------------------------------------ internals

    def _write_cell(self, code: str, trace: bool) -> Path:
        self._counter += 1
        path = self.command.exchange_dir / f"{self._shell_nonce[:8]}-{self._counter}.sh"
        text = cell_file(code) if trace else code + "\n${__cbx_x:+set -x}\n"
        data = text.encode()
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        try:
            os.fchmod(fd, 0o644)  # whatever the umask, a container user must read it
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        self._files.append(path)
        return path

    async def _type(self, text: str) -> None:
        """Write ``text`` to the terminal (it is short; retry while the buffer is full)."""
        data = memoryview(text.encode())
        deadline = time.monotonic() + 10
        while data:
            if self._fd < 0:
                return
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ShellError("the shell does not read its input") from None
                await asyncio.sleep(0.005)
                continue
            except OSError:
                return  # the shell is gone: the reader notices and ends the cell
            self._written += sent
            data = data[sent:]

    async def _type_line(self, line: str) -> None:
        """Type a command line for the shell itself; it answers with one prompt."""
        self._in_flight += 1
        self._prompted.clear()
        await self._type(line)

    def _on_readable(self) -> None:
        self._drain()

    def _drain(self) -> None:
        """Read everything the terminal has now and hand out the events."""
        while self._fd >= 0:
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno not in (errno.EIO, errno.EBADF):
                    raise
                data = b""
            if not data:
                self._spoke.set()
                self._ended()
                return
            self._spoke.set()
            self._last_output = time.monotonic()
            self._handle(self._scanner.feed(data))

    def _handle(self, events: list[Event]) -> None:
        while events:
            for event in events:
                self._dispatch(event)
            if not isinstance(events[-1], EndMarker):
                return
            events = self._scanner.feed(b"")

    def _dispatch(self, event: Event) -> None:
        cell = self._cell
        if isinstance(event, Output):
            if cell is not None:
                cell.io.output(event.text)
            elif self._between_size < BETWEEN_CELLS_CAP:
                self._between.append(event.text)
                self._between_size += len(event.text)
        elif isinstance(event, EndMarker):
            if cell is not None and event.nonce in cell.nonces and not cell.done.done():
                # The last marker wins (the shell's own is last), but a resync typed after
                # a forged prompt runs *after* the cell's line, and its $? is the trailer's
                # 0: once the cell line's own marker came, a resync's status is not taken.
                own = event.nonce == cell.line_nonce
                if own or not cell.line_marked:
                    cell.status = event.status
                cell.line_marked = cell.line_marked or own
                cell.prompted = False
                if cell.starting:
                    self._settle(cell)
                elif cell.confirm is None:
                    self._confirm(cell)
        elif isinstance(event, Prompt):
            if cell is not None:
                cell.prompted = True
            self._in_flight = max(0, self._in_flight - 1)
            if self._in_flight == 0:
                self._prompted.set()
            if cell is not None and not cell.done.done() and self._in_flight == 0:
                if cell.status is not None:
                    self._confirm(cell)  # a marker came: the shell is back, confirm it now
                else:
                    self._resync(cell)
        elif isinstance(event, DisplayRequest) and cell is not None:
            cell.io.display(event)

    def _confirm(self, cell: _Cell, delay: float = 0.0) -> None:
        """End the cell once the shell itself is back at its prompt.

        An end marker proves the nonce, not who printed it: a program of the cell can read
        the nonce from the shell's memory (same user, ptrace-able) and print it early. So
        the cell ends only when the shell holds the terminal and waits in read -- at once
        for the shell's own marker, after the job for a forged one (and then with the
        status of the shell's own marker, which comes last). Output in between is the
        cell's. The prompt the shell prints after its own marker must have been read too:
        the shell at its prompt has printed everything, but the bytes may still be on
        their way (in the terminal, in the exec relay), the marker with the real status
        among them. Where /proc cannot tell, the marker is taken at its word.
        """
        if cell.confirm is not None:
            cell.confirm.cancel()
            cell.confirm = None
        if cell.done.done() or self._controller is None or self._loop is None:
            return
        state = self._controller.shell_at_prompt()
        if state is False or (state and not cell.prompted):
            self._drain()  # the shell's own marker may be waiting in the terminal
            if cell.done.done():
                return
            # The shell's own marker is followed by its prompt and its read within a
            # fraction of a millisecond: look again soon, then less and less often.
            wait = min(max(delay * 1.5, 0.0002), 0.02)
            cell.confirm = self._loop.call_later(wait, self._confirm, cell, wait)
            return
        self._settle(cell)

    def _settle(self, cell: _Cell) -> None:
        self._scanner.settle()  # markers of this cell still to come are swallowed
        if cell.confirm is not None:
            cell.confirm.cancel()
            cell.confirm = None
        self._finish(cell, CellResult(cell.status, cell.interrupted, None, cell.killed))

    def _resync(self, cell: _Cell) -> None:
        """The shell is back at its prompt but the line never finished: ask again."""
        nonce = new_nonce()
        cell.nonces.add(nonce)
        self._scanner.expect(nonce)
        line = resync_line(nonce)
        self._scanner.strip_echo(line.encode(), sticky=True)  # an aborted cell leaves echo on
        assert self._loop is not None
        self._loop.create_task(self._type_line(line))

    def _finish(self, cell: _Cell, result: CellResult) -> None:
        if not cell.done.done():
            cell.done.set_result(result)

    def _ended(self) -> None:
        """End of file on the terminal: the shell is gone."""
        if self._eof:
            return
        for event in self._scanner.finish():
            self._dispatch(event)
        if self._loop is not None and self._fd >= 0:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
        self._eof = True
        self._gone.set()
        status = self._reap()
        self.exit_status = status
        cell = self._cell
        if cell is not None:
            self._finish(cell, CellResult(None, cell.interrupted, status, cell.killed))
        if self._on_exit is not None:
            self._on_exit(status)

    def _reap(self) -> int | None:
        child = self._child
        if child is None:
            return None
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                if not child.isalive():
                    break
            except pexpect.ExceptionPexpect:
                break
            time.sleep(0.005)
        return _status(child)

    def _on_control(self, event: ControlEvent) -> None:
        if isinstance(event, Exited):
            self.exit_status = event.status
            return
        cell = self._cell
        if cell is None or cell.done.done() or cell.starting or self._loop is None:
            return
        # Look again a moment later: the event may be about a read our last typed line
        # has already satisfied (the shell at its prompt just before the cell's line).
        cell.timers.append(self._loop.call_later(CONFIRM_READING, self._reading, cell, event))

    def _reading(self, cell: _Cell, event: Reading) -> None:
        self._drain()  # the end marker may be in the terminal already
        if cell.done.done() or self._cell is not cell:
            return
        state = reader_state(event.pid) if event.pid is not None else None
        if state is not None and not state.reading:
            return  # stale: it got its input
        is_shell = state is not None and state.ns_pid == self.pid
        if cell.interrupted:
            # A hostile PS1 hides our prompt: the shell itself reading says "back".
            if is_shell and not cell.resync_pending:
                cell.resync_pending = True
                self._resync(cell)
            return
        if (cell.input_task is None or cell.input_task.done()) and self._loop is not None:
            cell.input_task = self._loop.create_task(self._answer(cell, event))

    async def _answer(self, cell: _Cell, event: Reading) -> None:
        answer = await cell.io.read_input(password=not event.echo)
        if cell.done.done() or self._cell is not cell:
            return
        if answer is None:
            await self._type("\x04")  # VEOF at the start of a line: read() returns 0
            return
        data = answer.replace("\r\n", "\n").replace("\r", "\n").split("\n")[0] + "\n"
        if event.echo:
            self._scanner.strip_echo(data.encode())
        await self._type(data)


def _status(child: _Spawn) -> int | None:
    """The child's exit status as a shell reports it (128 + signal), if it has ended."""
    if child.signalstatus is not None:
        return 128 + int(child.signalstatus)
    return int(child.exitstatus) if child.exitstatus is not None else None


class _InitIO:
    """Collects what the shell prints while it starts (for the pid and for errors)."""

    def __init__(self, sink: list[str]) -> None:
        self._sink = sink

    def output(self, text: str) -> None:
        if sum(map(len, self._sink)) < 1 << 16:
            self._sink.append(text)

    def display(self, request: DisplayRequest) -> None:
        del request

    async def read_input(self, password: bool) -> str | None:
        del password
        return None
