"""The container's init: ``python -I -S runtime/_boot.py _init SPEC UP DOWN``.

Spawned by :func:`cellbox.runtime.sandbox.start_sandbox` — or forked ahead of time by the
``cellbox`` command (:mod:`.initfork`), then started by :func:`preforked` with the same
arguments over its pipe — which describes the protocol on the pipes UP (to the host) and
DOWN (from the host). Two processes:

* the *setup* process joins the cgroups (:mod:`.cgroupjoin`), unshares
  the namespaces (with the user namespace first when rootless, and waits for the host to
  write the id maps), forks PID 1, tells the host its pid and exits;
* *PID 1* waits for the host's go (the network is attached meanwhile), builds the rootfs
  (:mod:`mounts`), pivot_roots, sets the hostname, brings ``lo`` up, forks the workload
  (:mod:`workload`) and reports; then it drops every capability but CAP_KILL, takes
  no_new_privs and the workload's seccomp filter, is not dumpable (so the workload can
  neither ptrace it nor follow /proc/1/fd, /proc/1/exe or /proc/1/root) and becomes the
  supervisor (its heap frozen and trimmed once the workload has run 100 ms, so that a
  short workload's exit does not wait for that): it reaps every zombie in the container,
  forwards SIGHUP/INT/QUIT/USR1/USR2/TERM/CONT/ALRM/WINCH to the workload, ships the
  workload's stdout and stderr (pipes, or a pty in the container's devpts) to the
  JSON-lines log (rotated at the cap, partial lines flushed after 100 ms) and, when
  attached, to its own stdout/stderr. When the workload exits it writes ``exit.json``
  (code, 128+signal, OOM from the cgroup's ``oom_kill`` counter) and exits, which kills
  whatever else was left in the PID namespace.

With no workload (``process.args`` empty) PID 1 only reaps and waits; SIGTERM, SIGINT or
SIGHUP make it exit with status 0 (a clean stop).

Rootless, the setup process first enters a new user namespace, has the host write its
id maps, and executes itself again inside it (see :func:`_enter_userns` for why).

Imports are what starts and stays in every container (``python -X importtime``: ~9 ms;
PID 1 idles at ~4 MiB PSS): os, ctypes, struct, select, fcntl, termios, gc, time and the C
modules ``_signal``, ``_json`` (via :mod:`_leanjson`) and ``_socket`` — not json, signal,
typing or collections (re, enum, functools), and never dataclasses, asyncio, httpx or
pyroute2.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import select
import sys
import termios
import time

# Everything PID 1 will ever import is imported here: after pivot_root the package is gone.
from . import _leanjson as json
from . import caps, cgroupjoin, linux, mounts, seccomp, workload
from .loopback import loopback_up

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from typing import Any
else:
    import _signal as signal  # the C module: signal.py would import enum (and functools...)

__all__ = ["main"]

FORWARDED = (
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGTERM, signal.SIGCONT, signal.SIGALRM, signal.SIGWINCH,
)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PARTIAL_FLUSH_S = 0.1
TIDY_AFTER_S = 0.1  # PID 1 trims its heap once the container has run this long
MAX_LINE = 16 << 10
_READ = 65536


class _Channel:
    """The init's end of the sync pipes with the host (JSON lines)."""

    def __init__(self, up: int, down: int) -> None:
        self.up = up
        self.down = down
        self._buf = b""

    def send(self, message: dict[str, Any]) -> None:
        if self.up >= 0:
            os.write(self.up, json.dumps(message).encode() + b"\n")

    def recv(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = os.read(self.down, 4096)
            if not chunk:
                raise SystemExit(125)  # the host went away: give up quietly
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise SystemExit(125)
        return message

    def close(self) -> None:
        for fd in (self.up, self.down):
            if fd >= 0:
                os.close(fd)
        self.up = self.down = -1


def _timestamp() -> str:
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


class _Log:
    """Appends records to the container log, with the locking and rotation of :mod:`logs`.

    Everything is relative to a directory fd opened before pivot_root.
    """

    def __init__(self, path: str, max_bytes: int) -> None:
        directory, self.name = os.path.split(path)
        stem = self.name.rpartition(".")[0] or self.name
        self.rotated = f"{stem}.1"
        self.max_bytes = max(max_bytes, 4096)
        self.dir_fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.lock_fd = os.open(f"{stem}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600,
                               dir_fd=self.dir_fd)
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                       0o600, dir_fd=self.dir_fd)

    def write(self, stream: str, lines: list[tuple[bytes, bool]]) -> None:
        t = _timestamp()
        out: list[bytes] = []
        for raw, partial in lines:
            record: dict[str, Any] = {"t": t, "stream": stream,
                                      "line": raw.decode("utf-8", "replace")}
            if partial:
                record["partial"] = True
            out.append((json.dumps(record) + "\n").encode("utf-8", "replace"))
        # Append in batches well under the cap, so that rotation can keep the file small.
        batch: list[bytes] = []
        size = 0
        for item in out:
            if batch and size + len(item) > self.max_bytes // 4:
                self._append(b"".join(batch))
                batch, size = [], 0
            batch.append(item)
            size += len(item)
        if batch:
            self._append(b"".join(batch))

    def _append(self, data: bytes) -> None:
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            st = os.fstat(self.fd)
            try:
                now = os.stat(self.name, dir_fd=self.dir_fd)
                moved = (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev)
            except FileNotFoundError:
                moved = True
            if moved:  # the kernel's log writer rotated it
                os.close(self.fd)
                self.fd = self._open()
                st = os.fstat(self.fd)
            if st.st_size > 0 and st.st_size + len(data) > self.max_bytes:
                os.rename(self.name, self.rotated, src_dir_fd=self.dir_fd,
                          dst_dir_fd=self.dir_fd)
                os.close(self.fd)
                self.fd = self._open()
            _write_all(self.fd, data)
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)


def _wait_writable(fd: int) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    poller.poll(1000)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            _wait_writable(fd)
        except OSError:
            return  # a closed terminal must not kill the container's init


class _Stream:
    """One output stream of the workload: line splitting and where the bytes go."""

    def __init__(self, name: str, echo_fd: int | None) -> None:
        self.name = name
        self.echo_fd = echo_fd
        self.partial = b""
        self.flush_at = 0.0

    def feed(self, log: _Log | None, data: bytes) -> None:
        if self.echo_fd is not None:
            _write_all(self.echo_fd, data)
        if log is None:
            return
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        lines = [(line.removesuffix(b"\r"), False) for line in complete]
        if len(self.partial) >= MAX_LINE:
            lines.append((self.partial, True))
            self.partial = b""
        if lines:
            log.write(self.name, lines)
        self.flush_at = time.monotonic() + PARTIAL_FLUSH_S if self.partial else 0.0

    def flush(self, log: _Log | None) -> None:
        if self.partial and log is not None:
            log.write(self.name, [(self.partial, True)])
        self.partial = b""
        self.flush_at = 0.0


def _read_oom_kills(fd: int) -> int:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace")
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def _oom_file(spec: dict[str, Any]) -> str | None:
    if spec.get("oom_file"):
        return str(spec["oom_file"])
    for procs in spec.get("cgroup_procs") or []:
        base = os.path.dirname(procs)
        for name in ("memory.oom_control", "memory.events"):
            if os.path.exists(os.path.join(base, name)):
                return os.path.join(base, name)
    return None


# -------------------------------------------------------------------- the setup side


def _setup_process(spec: dict[str, Any], channel: _Channel, argv: list[str]) -> None:
    """Join cgroups, unshare, fork PID 1; runs in the process the host spawned."""
    linux.set_dumpable(False)
    # PID 1 as `ps` shows it in the container (and on the host): not the command line of
    # whatever forked or spawned it, with the host's paths in it.
    linux.set_process_title("cellbox-init")
    namespaces = spec["namespaces"]
    flags = 0
    for name in namespaces:
        if name not in linux.NAMESPACE_FLAGS:
            raise ValueError(f"unknown namespace {name!r}")
        flags |= linux.NAMESPACE_FLAGS[name]
    if "mount" not in namespaces or "pid" not in namespaces:
        raise ValueError("a container needs its own mount and pid namespaces")
    in_userns = argv[3:] == [_IN_USERNS]
    if not in_userns:
        cgroupjoin.join(spec.get("cgroup_procs") or [])
        if "user" in namespaces:
            _enter_userns(channel, argv)  # executes this program again; never returns
    linux.unshare(flags & ~linux.CLONE_NEWUSER)
    child = os.fork()
    if child == 0:
        _pid1(spec, channel)  # never returns
    channel.send({"pid": child})
    os._exit(0)


_IN_USERNS = "--in-userns"


def _enter_userns(channel: _Channel, argv: list[str]) -> None:
    """Rootless: enter a new user namespace, have the host map it, and execve again.

    The execve matters: a process's memory belongs to the user namespace it last
    executed in, and PID 1, not dumpable, may only be inspected (and its namespaces
    entered by exec) with CAP_SYS_PTRACE there. Executed inside the container's user
    namespace, its owner — the user running cellbox — has that; the workload does not.
    """
    linux.unshare(linux.CLONE_NEWUSER)
    channel.send({"userns": os.getpid()})
    channel.recv()
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.set_inheritable(channel.up, True)
    os.set_inheritable(channel.down, True)
    boot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_boot.py")
    os.execv(sys.executable, [sys.executable, "-I", "-S", boot, "_init", *argv[:3],
                              _IN_USERNS])


# --------------------------------------------------------------------------- PID 1


def _write_exit(state_fd: int, code: int, sig: int | None, oom: bool) -> None:
    data = json.dumps({"code": code, "signal": sig, "oom_killed": oom,
                       "finished_at": _timestamp()}).encode()
    tmp = f"exit.json.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644,
                 dir_fd=state_fd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, "exit.json", src_dir_fd=state_fd, dst_dir_fd=state_fd)


def _pid1(spec: dict[str, Any], channel: _Channel) -> None:
    state_fd = -1
    try:
        linux.set_dumpable(False)
        go = channel.recv()
        if not go.get("go"):
            os._exit(125)
        state_dir = spec["state_dir"]
        state_fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        supervisor = _prepare(spec, go, state_dir)
    except BaseException as exc:
        code = exc.exit_code if isinstance(exc, workload.WorkloadError) else 125
        if isinstance(exc, SystemExit):
            os._exit(125)
        try:
            if state_fd >= 0:
                _write_exit(state_fd, code, None, False)
            channel.send({"error": _describe(exc), "exit_code": code})
        finally:
            os._exit(code)
    channel.send({"ok": True})
    channel.close()
    supervisor.state_fd = state_fd
    del spec, go
    supervisor.run()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, workload.WorkloadError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror and not str(exc).startswith("["):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _prepare(spec: dict[str, Any], go: dict[str, Any], state_dir: str) -> _Supervisor:
    namespaces = set(spec["namespaces"])
    rootless = "user" in namespaces
    process = spec["process"]
    attach = bool(go.get("attach"))
    stdin = bool(go.get("stdin"))
    log = _Log(spec["log_path"], int(spec.get("log_max_bytes") or 10 << 20))
    oom_path = _oom_file(spec)
    oom_fd = os.open(oom_path, os.O_RDONLY | os.O_CLOEXEC) if oom_path else -1
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    etc = {path: os.path.join(state_dir, "etc", path.strip("/").replace("/", "_"))
           for path in spec.get("etc_files") or {}}
    root = mounts.build_rootfs(spec, os.path.join(state_dir, "rootfs"), etc,
                               rootless=rootless)
    mounts.pivot(root)
    os.close(root)
    if "uts" in namespaces:
        linux.sethostname(spec["hostname"])
    if "net" in namespaces:
        loopback_up()

    supervisor = _Supervisor(log, oom_fd, attach=attach)
    if process.get("args"):
        supervisor.start_workload(process, stdin_fd=0 if stdin else devnull,
                                  hostname=spec["hostname"], relay_stdin=stdin)
    os.close(devnull)
    return supervisor


class _Supervisor:
    """PID 1 after set-up: reaper, signal forwarder and log shipper."""

    def __init__(self, log: _Log, oom_fd: int, *, attach: bool) -> None:
        self.log = log
        self.oom_fd = oom_fd
        self.oom_before = _read_oom_kills(oom_fd) if oom_fd >= 0 else 0
        self.attach = attach
        self.state_fd = -1
        self.tidy_at = 0.0
        self.workload = 0
        self.streams: dict[int, _Stream] = {}
        self.master = -1
        self.stdin_fd = -1
        self.saved_tty: list[Any] | None = None
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_w = wake_w
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in (*FORWARDED, signal.SIGCHLD):
            signal.signal(sig, _ignore)

    # ------------------------------------------------------------------ start-up

    def start_workload(self, process: dict[str, Any], *, stdin_fd: int, hostname: str,
                       relay_stdin: bool) -> None:
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        child_fds: list[int] = []
        if process.get("tty"):
            self.master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            linux.pty_unlock(self.master)
            slave = linux.pty_peer(self.master)
            child_fds.append(slave)
            self._tty_size()
            pid = os.fork()
            if pid == 0:
                workload.become(process, stdio=(slave, slave, slave), tty=slave,
                                error_fd=err_w, create_cwd=True, hostname=hostname)
            self.streams[self.master] = _Stream("stdout", 1 if self.attach else None)
            if self.attach and relay_stdin:
                self.stdin_fd = 0
                self._raw_stdin()
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err2_r, err2_w = os.pipe2(os.O_CLOEXEC)
            child_fds += [out_w, err2_w]
            pid = os.fork()
            if pid == 0:
                workload.become(process, stdio=(stdin_fd, out_w, err2_w), tty=None,
                                error_fd=err_w, create_cwd=True, hostname=hostname)
            self.streams[out_r] = _Stream("stdout", 1 if self.attach else None)
            self.streams[err2_r] = _Stream("stderr", 2 if self.attach else None)
        self.workload = pid
        for fd in (err_w, *child_fds):
            os.close(fd)
        report = b""
        while chunk := os.read(err_r, 65536):
            report += chunk
        os.close(err_r)
        if report:
            os.waitpid(pid, 0)
            failure = json.loads(report)
            raise workload.WorkloadError(str(failure["error"]), int(failure["exit_code"]))
        for fd in self.streams:
            os.set_blocking(fd, False)

    def _tty_size(self) -> None:
        if self.master >= 0:
            linux.copy_winsize((0, 1), self.master)

    def _raw_stdin(self) -> None:
        try:
            self.saved_tty = termios.tcgetattr(0)
        except termios.error:
            return
        mode = termios.tcgetattr(0)
        mode[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP
                     | termios.IXON)
        mode[1] &= ~termios.OPOST
        mode[2] = (mode[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        mode[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(0, termios.TCSAFLUSH, mode)

    # --------------------------------------------------------------------- loop

    def run(self) -> None:
        # PID 1 keeps only what it needs from here on: CAP_KILL, to signal a workload
        # that changed its uid; and it takes the workload's seccomp filter too (it never
        # mounts, unshares or execs again).
        caps.drop_to(1 << caps.CAPABILITIES["CAP_KILL"])
        linux.set_no_new_privs()
        linux.seccomp_set_filter(seccomp.program())
        # Tidying the heap (gc, malloc_trim: ≈ 1-10 ms) waits until the workload has run a
        # moment: `run --rm IMG true` is over by then and should not wait for it.
        self.tidy_at = time.monotonic() + TIDY_AFTER_S
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        for fd in self.streams:
            poller.register(fd, select.POLLIN)
        if self.stdin_fd >= 0:
            poller.register(self.stdin_fd, select.POLLIN)
        status: int | None = None
        stop = False
        while status is None and not stop:
            timeout = self._timeout()
            for fd, _event in poller.poll(timeout):
                if fd == self.wake_r:
                    status, stop = self._signals(status)
                elif fd == self.stdin_fd:
                    self._relay_stdin(poller)
                elif fd in self.streams and not self._pump(fd):
                    poller.unregister(fd)
            self._flush_due()
            if self.tidy_at and status is None and time.monotonic() >= self.tidy_at:
                self._tidy()
        for fd in list(self.streams):
            while self._pump(fd):
                pass
        for stream in self.streams.values():
            stream.flush(self.log)
        self._finish(status)

    def _tidy(self) -> None:
        """Give back what set-up used: PID 1 idles at ≈ 4 MiB for as long as it lives."""
        self.tidy_at = 0.0
        gc.collect()
        gc.freeze()
        linux.malloc_trim()

    def _timeout(self) -> int | None:
        due = [s.flush_at for s in self.streams.values() if s.flush_at]
        if self.tidy_at:
            due.append(self.tidy_at)
        if not due:
            return None
        return max(0, int((min(due) - time.monotonic()) * 1000) + 1)

    def _flush_due(self) -> None:
        now = time.monotonic()
        for stream in self.streams.values():
            if stream.flush_at and stream.flush_at <= now:
                stream.flush(self.log)

    def _pump(self, fd: int) -> bool:
        """Move what is readable on ``fd`` to the log; False at EOF (or EIO for a pty)."""
        try:
            data = os.read(fd, _READ)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            return False
        self.streams[fd].feed(self.log, data)
        return True

    def _relay_stdin(self, poller: select.poll) -> None:
        try:
            data = os.read(self.stdin_fd, _READ)
        except OSError:
            data = b""
        if not data:
            poller.unregister(self.stdin_fd)
            self.stdin_fd = -1
            return
        _write_all(self.master, data)

    def _signals(self, status: int | None) -> tuple[int | None, bool]:
        try:
            numbers = os.read(self.wake_r, 512)
        except BlockingIOError:
            return status, False
        stop = False
        for sig in numbers:
            if sig == signal.SIGCHLD:
                status = self._reap(status)
            elif sig == signal.SIGWINCH and self.master >= 0 and self.attach:
                self._tty_size()
            elif self.workload:
                try:  # noqa: SIM105 - no contextlib import in PID 1
                    os.kill(self.workload, sig)
                except ProcessLookupError:
                    pass
            elif sig in STOP_SIGNALS:
                stop = True
        return status, stop

    def _reap(self, status: int | None) -> int | None:
        while True:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return status
            if pid == 0:
                return status
            if pid == self.workload:
                status = raw

    def _finish(self, status: int | None) -> None:
        if self.saved_tty is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, self.saved_tty)
        oom = self.oom_fd >= 0 and _read_oom_kills(self.oom_fd) > self.oom_before
        if status is None:
            code, sig = 0, None
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = 128 + sig
        else:
            code, sig = os.waitstatus_to_exitcode(status), None
        try:
            _write_exit(self.state_fd, code, sig, oom)
        finally:
            os._exit(code)


def _ignore(signum: int, frame: object) -> None:
    """A handler, so the signal is delivered to PID 1 and noted on the wakeup fd."""


def main(argv: list[str]) -> int:
    """The spawned init: ``SPEC UP DOWN`` (see :func:`.sandbox.start_sandbox`)."""
    spec_path, up, down = argv[0], int(argv[1]), int(argv[2])
    return _run(spec_path, _Channel(up, down), argv)


def _run(spec_path: str, channel: _Channel, argv: list[str]) -> int:
    try:
        with open(spec_path, "rb") as f:
            spec = json.loads(f.read())
        _setup_process(spec, channel, argv)
    except SystemExit:
        raise
    except BaseException as exc:
        channel.send({"error": _describe(exc), "exit_code": 125})
        return 125
    return 0


def preforked(up: int, down: int) -> None:
    """The pre-forked init (see :mod:`.initfork`): wait for the start message, then be
    the spawned init exactly — with the stdio that spawning would have given it."""
    channel = _Channel(up, down)
    start = channel.recv()  # end-of-file (the command did not start a container): exit
    spec_path = str(start["spec"])
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    if not start.get("stdin"):
        os.dup2(devnull, 0)
    if start.get("log"):  # detached: complaints (a traceback) go to init.log
        log = os.open(str(start["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                      0o600)
        os.dup2(devnull, 1)
        os.dup2(log, 2)
        os.close(log)
    os.close(devnull)
    os._exit(_run(spec_path, channel, [spec_path, str(up), str(down)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
