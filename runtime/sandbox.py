"""The sandbox, host side: a :class:`SandboxSpec` in, a running isolated container out.

::

    spec = SandboxSpec(id=..., hostname=..., lower_dirs=[...], upper_dir=..., work_dir=...,
                       process=ProcessSpec(args=["sh", "-c", "echo hi"], env=[...]),
                       log_path=".../log.jsonl", state_dir=".../containers/<id>")
    handle = start_sandbox(spec, on_created=lambda pid: network.attach(..., pid, ...))
    status = handle.wait()          # ExitStatus(code=0, signal=None, oom_killed=False)

:func:`start_sandbox` writes the spec to ``state_dir/sandbox.json`` and starts the init:
the one the ``cellbox`` command forked ahead, if there is one to take (:mod:`.initfork`:
a single-threaded command forks first thing; the start message gives it the spec's path
and its stdio), else it spawns one (``python -I -S runtime/_boot.py _init SPEC UP DOWN``:
``-S`` skips site and the editable install's import hook, ~20 ms; ``_boot`` imports
``cellbox.runtime._init`` from this package's own directory) with subprocess — never
``preexec_fn``, callers may be multithreaded — in a new session with every other fd
closed. The sync protocol over two pipes (JSON lines):

1. the init joins the cgroups; rootless, it enters a new user namespace and says
   ``{"userns": pid}``, the host writes the id maps (:mod:`userns`) and answers
   ``{"mapped": true}``, and the init executes itself again inside; then it unshares the
   other namespaces;
2. the init forks PID 1 and says ``{"pid": host_pid}``, then exits; the host runs
   ``on_created(pid)`` (network attach) while PID 1 waits, then says ``{"go": true}``;
3. PID 1 builds the rootfs (:mod:`mounts`), pivot_roots, starts the workload
   (:mod:`workload`), and says ``{"ok": true}`` once execve succeeded — or
   ``{"error": "...", "exit_code": 127}``, which :func:`start_sandbox` raises as
   :class:`SandboxError`.

PID 1 then stays as reaper, signal forwarder and log shipper (see :mod:`_init`) and
writes ``state_dir/exit.json`` when the workload exits. Its parent has exited, so the host
follows it with a pidfd: :meth:`SandboxHandle.wait`.

Attached (``attach=True``, ``cellbox run`` without ``-d``): PID 1 inherits the caller's
stdout and stderr (and stdin with ``stdin=True``) and echoes the workload's output there
as well as logging it; with ``process.tty`` it relays the caller's terminal to the
container's pty (send SIGWINCH to PID 1 — :meth:`SandboxHandle.resize` — after the
caller's window changed). PID 1 puts that terminal in raw mode and restores it when the
workload exits; a caller that may kill PID 1 should save and restore it too.

Kernel: Linux 5.12+ (open_tree, move_mount, fsopen, mount_setattr, close_range); on
kernels before 6.8 the overlay falls back to mount(2) with relative lower dirs (about 50
layers with store-length paths); setns with a pidfd (5.8) falls back to /proc/PID/ns.
"""

from __future__ import annotations

import errno
import os
import select
import sys
import time

from . import _leanjson as json
from . import initfork
from .ctx import suppress
from .errors import SandboxError, SyscallError
from .records import asdict, field, fields, record

# `cellbox run` pays for every import here: no json (the C scanner does), typing,
# signal.py (its enums), contextlib, ctypes (os and _signal have the pidfd calls) or
# subprocess (only to spawn an init; a pre-forked one needs none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    import subprocess
    from collections.abc import Callable
    from typing import Any, Protocol

    class InitProcess(Protocol):
        """The container's init process as the host sees it (``subprocess.Popen`` or
        :class:`.initfork.ForkedInit`): it exits once it has forked PID 1."""

        pid: int

        def poll(self) -> int | None: ...
        def wait(self) -> int: ...
        def kill(self) -> None: ...
else:
    import _signal as signal

__all__ = [
    "DEFAULT_NAMESPACES",
    "ExitStatus",
    "MountSpec",
    "ProcessSpec",
    "SandboxHandle",
    "SandboxSpec",
    "read_exit_status",
    "signal_container",
    "start_sandbox",
]

DEFAULT_NAMESPACES = ("mount", "uts", "ipc", "pid", "net", "cgroup")
SPEC_NAME = "sandbox.json"
EXIT_NAME = "exit.json"
INIT_LOG_NAME = "init.log"
ROOTFS_NAME = "rootfs"
ETC_DIR_NAME = "etc"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@record
class MountSpec:
    """A bind mount of a host path, or a tmpfs, at ``destination`` inside the container.

    The destination is resolved inside the rootfs (symlinks in the image cannot point it
    at the host) and created when missing. Binds are recursive and ``nodev``; read-only
    ones are also ``nosuid``.
    """

    source: str
    destination: str
    readonly: bool = False
    kind: str = "bind"  # "bind" | "tmpfs"
    options: list[str] = field(default_factory=list)  # tmpfs: "size=64m", "mode=1777"


@record
class ProcessSpec:
    """What runs in the container, and with which privileges.

    ``args`` empty means no workload: PID 1 just waits until it is stopped (the kernel's
    containers, entered with exec). ``user`` ("name", "uid", "name:group", "uid:gid") is
    resolved against the image's /etc/passwd and /etc/group inside the container and
    overrides ``uid``/``gid``/``additional_gids``. ``capabilities`` None is Docker's
    default set.
    """

    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: str = ""
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    tty: bool = False
    capabilities: list[str] | None = None
    no_new_privs: bool = True
    seccomp: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessSpec:
        known = {k: v for k, v in data.items() if k in fields(cls)}
        return cls(**known)


@record
class SandboxSpec:
    """Everything the init needs to build one container. JSON via to_json/from_json.

    ``lower_dirs`` top first (overlayfs order). ``etc_files`` maps a container path
    (/etc/hostname, /etc/hosts, /etc/resolv.conf) to its content: the files are written
    under ``state_dir/etc/`` and bind-mounted. ``namespaces``: DEFAULT_NAMESPACES; without
    "net" the container shares the host's network; with "user" it is rootless and
    ``uid_map``/``gid_map`` ((inside, outside, count) triples) are written by the host.
    ``cgroup_procs``: the cgroup.procs files (one per v1 hierarchy) the init joins before
    unsharing the cgroup namespace. ``oom_file``: the cgroup's memory.oom_control (v1)
    or memory.events (v2), whose ``oom_kill`` counter tells PID 1 whether the workload was
    OOM-killed. The log is ``log_path`` (JSON lines, rotated to ``.1`` at
    ``log_max_bytes``; the protocol of :mod:`logs`).
    """

    id: str
    hostname: str
    lower_dirs: list[str]
    upper_dir: str
    work_dir: str
    state_dir: str
    log_path: str
    process: ProcessSpec = field(default_factory=ProcessSpec)
    mounts: list[MountSpec] = field(default_factory=list)
    etc_files: dict[str, str] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=lambda: list(DEFAULT_NAMESPACES))
    cgroup_procs: list[str] = field(default_factory=list)
    oom_file: str | None = None
    log_max_bytes: int = 10 << 20
    readonly_rootfs: bool = False
    uid_map: list[tuple[int, int, int]] | None = None
    gid_map: list[tuple[int, int, int]] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SandboxSpec:
        data = json.loads(text)
        data["process"] = ProcessSpec.from_dict(data.get("process") or {})
        mount_fields = fields(MountSpec)
        data["mounts"] = [MountSpec(**{k: v for k, v in m.items() if k in mount_fields})
                          for m in data.get("mounts") or []]
        for key in ("uid_map", "gid_map"):
            if data.get(key) is not None:
                data[key] = [tuple(entry) for entry in data[key]]
        known = {k: v for k, v in data.items() if k in fields(cls)}
        return cls(**known)


@record(frozen=True)
class ExitStatus:
    """How a container's workload ended: ``code`` is 128+signal for a signal, like a shell."""

    code: int
    signal: int | None = None
    oom_killed: bool = False

    @classmethod
    def from_wait_status(cls, status: int, oom_killed: bool = False) -> ExitStatus:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return cls(128 + sig, sig, oom_killed)
        return cls(os.waitstatus_to_exitcode(status), None, oom_killed)


def read_exit_status(state_dir: str) -> ExitStatus | None:
    """The ``exit.json`` PID 1 wrote into ``state_dir``, or None if there is none."""
    try:
        with open(os.path.join(state_dir, EXIT_NAME), "rb") as f:
            data = json.loads(f.read(65536))
        return ExitStatus(int(data["code"]), data.get("signal"), bool(data.get("oom_killed")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pidfd_open(pid: int) -> int:
    """pidfd_open(2), as :func:`.linux.pidfd_open` (errors included), without ctypes."""
    try:
        return os.pidfd_open(pid)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, f"pidfd_open({pid})") from None


def _pidfd_send_signal(pidfd: int, sig: int) -> None:
    """pidfd_send_signal(2), as :func:`.linux.pidfd_send_signal`, without ctypes."""
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except OSError as exc:
        raise SyscallError(exc.errno or 0, f"pidfd_send_signal(sig {sig})") from None


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


class SandboxHandle:
    """A started container: its PID 1 as seen from the host.

    ``pid`` is the host pid of the container's PID 1 and ``start_time`` its start time in
    clock ticks (/proc/PID/stat field 22): together they name the process for good.
    ``pidfd`` refers to it without any pid-reuse race.
    """

    def __init__(self, spec: SandboxSpec, pid: int, pidfd: int,
                 init_process: InitProcess) -> None:
        self.spec = spec
        self.pid = pid
        self.pidfd = pidfd
        self.init_process = init_process
        self.start_time = _start_time(pid)
        self._status: ExitStatus | None = None

    def poll(self) -> ExitStatus | None:
        """The exit status if PID 1 has exited, else None."""
        return self.wait(timeout=0)

    def wait(self, timeout: float | None = None) -> ExitStatus | None:
        """Wait until PID 1 exits (None after ``timeout`` seconds) and return the status.

        The status comes from ``exit.json``; if PID 1 died without writing one (SIGKILL),
        from the pidfd (Linux 6.15+), else it is reported as killed by SIGKILL.
        """
        if self._status is not None:
            return self._status
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        ms = None if timeout is None else int(timeout * 1000)
        while not poller.poll(ms):
            if ms is not None:
                return None
        status = read_exit_status(self.spec.state_dir)
        if status is None:
            from .linux import pidfd_exit_code  # ctypes: only for this rare case

            raw = pidfd_exit_code(self.pidfd)
            if raw is not None:
                status = ExitStatus.from_wait_status(raw)
            else:
                status = ExitStatus(128 + signal.SIGKILL, signal.SIGKILL)
        self._status = status
        return status

    def signal(self, sig: int) -> None:
        """Send ``sig`` to PID 1, which forwards it to the workload."""
        try:
            _pidfd_send_signal(self.pidfd, sig)
        except OSError as exc:
            if exc.errno != errno.ESRCH:  # ESRCH: it has exited already
                raise

    def resize(self) -> None:
        """Tell an attached tty container that the caller's window size changed."""
        self.signal(signal.SIGWINCH)

    def close(self) -> None:
        """Release the pidfd (the container keeps running)."""
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def signal_container(pid: int, sig: int, start_time: int | None = None) -> bool:
    """Send ``sig`` to the container whose PID 1 is host ``pid``; False if it is gone.

    With ``start_time`` the process is checked to be the same PID 1 (not a reused pid)
    after a pidfd pinned it.
    """
    try:
        pidfd = _pidfd_open(pid)
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise
    try:
        if start_time is not None and _start_time(pid) != start_time:
            return False
        _pidfd_send_signal(pidfd, sig)
        return True
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise
    finally:
        os.close(pidfd)


# ------------------------------------------------------------------------ start-up


def _write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def etc_file_source(state_dir: str, container_path: str) -> str:
    """Where the host keeps the file bind-mounted at ``container_path`` (/etc/hosts...)."""
    return os.path.join(state_dir, ETC_DIR_NAME, container_path.strip("/").replace("/", "_"))


def _prepare_state(spec: SandboxSpec) -> str:
    state = spec.state_dir
    os.makedirs(os.path.join(state, ETC_DIR_NAME), exist_ok=True)
    os.makedirs(os.path.join(state, ROOTFS_NAME), exist_ok=True)
    for path, content in spec.etc_files.items():
        _write_atomic(etc_file_source(state, path), content.encode())
    for name in (EXIT_NAME,):
        with suppress(FileNotFoundError):
            os.unlink(os.path.join(state, name))
    spec_path = os.path.join(state, SPEC_NAME)
    _write_atomic(spec_path, spec.to_json().encode(), 0o600)
    return spec_path


class _Channel:
    """The host's end of the sync pipes: JSON lines both ways, reads with a deadline."""

    def __init__(self, read_fd: int, write_fd: int, deadline: float) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.deadline = deadline
        self._buf = b""

    def recv(self) -> dict[str, Any] | None:
        while b"\n" not in self._buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            # poll, not select: a long-running caller (the kernel) may have fds past 1024
            poller = select.poll()
            poller.register(self.read_fd, select.POLLIN)
            if not poller.poll(int(left * 1000) + 1):
                continue
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError(f"unexpected message from the container's init: {line!r}")
        return message

    def send(self, message: dict[str, Any]) -> None:
        # A BrokenPipeError means the init died; recv() will say so.
        with suppress(BrokenPipeError):
            os.write(self.write_fd, json.dumps(message).encode() + b"\n")

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            os.close(fd)


def _init_log_tail(state_dir: str) -> str:
    try:
        with open(os.path.join(state_dir, INIT_LOG_NAME), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 2000))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


def start_sandbox(
    spec: SandboxSpec,
    *,
    on_created: Callable[[int], None] | None = None,
    attach: bool = False,
    stdin: bool = False,
    timeout: float = 60.0,
) -> SandboxHandle:
    """Start the container described by ``spec``; return when its workload runs.

    ``on_created(pid)`` runs on the host with the host pid of the container's PID 1 once
    its namespaces exist and before anything runs in them (attach the network there).
    Raises :class:`SandboxError` with the init's reason when set-up or the workload's
    execve failed (``exit_code`` 127 for a command not found, 126 not executable), or
    when it took longer than ``timeout`` seconds; nothing of the container is left running
    then.
    """
    spec_path = _prepare_state(spec)
    log_path = None if attach else os.path.join(spec.state_dir, INIT_LOG_NAME)
    proc: InitProcess
    forked = initfork.take()
    if forked is not None and _send_start(forked, spec_path, log_path, stdin):
        proc = forked
        up_r, down_w = forked.hand_over()
    else:
        proc, up_r, down_w = _spawn_init(spec_path, log_path, stdin)
    channel = _Channel(up_r, down_w, time.monotonic() + timeout)
    pidfd = -1
    try:
        pid, pidfd = _handshake(spec, channel, proc, on_created,
                                {"go": True, "attach": attach, "stdin": stdin})
    except BaseException:
        if pidfd >= 0:
            with suppress(OSError):
                _pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
    finally:
        channel.close()
    return SandboxHandle(spec, pid, pidfd, proc)


def _send_start(forked: initfork.ForkedInit, spec_path: str, log_path: str | None,
                stdin: bool) -> bool:
    """Hand the pre-forked init its container; False (pipes closed) if it is gone."""
    message = {"spec": spec_path, "log": log_path, "stdin": stdin}
    try:
        os.write(forked.down_w, json.dumps(message).encode() + b"\n")
    except BrokenPipeError:
        forked.close_pipes()
        forked.wait()
        return False
    return True


def _spawn_init(spec_path: str, log_path: str | None,
                stdin: bool) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start ``python -I -S _boot.py _init SPEC UP DOWN``; (process, up_r, down_w)."""
    import subprocess

    up_r, up_w = os.pipe()
    down_r, down_w = os.pipe()
    log_fd = -1
    if log_path is None:  # attached: the init shares our stdio
        stdio: dict[str, Any] = {"stdin": None if stdin else subprocess.DEVNULL,
                                 "stdout": None, "stderr": None}
    else:
        # The init's own complaints (a Python traceback) go to init.log in the state dir.
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        stdio = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": log_fd}
    argv = [sys.executable, "-I", "-S", os.path.join(_PACKAGE_DIR, "_boot.py"), "_init",
            spec_path, str(up_w), str(down_r)]
    try:
        proc = subprocess.Popen(argv, pass_fds=(up_w, down_r), close_fds=True,
                                start_new_session=True, **stdio)
    except BaseException:
        os.close(up_r)
        os.close(down_w)
        raise
    finally:
        os.close(up_w)
        os.close(down_r)
        if log_fd >= 0:
            os.close(log_fd)
    return proc, up_r, down_w


def _handshake(spec: SandboxSpec, channel: _Channel, proc: InitProcess,
               on_created: Callable[[int], None] | None,
               go: dict[str, Any]) -> tuple[int, int]:
    pid = 0
    pidfd = -1
    try:
        while True:
            message = channel.recv()
            if message is None:
                status = proc.wait()
                detail = _init_log_tail(spec.state_dir)
                raise SandboxError(
                    f"container {spec.id}: its init exited with status {status} during "
                    f"set-up" + (f": {detail}" if detail else "")
                )
            if "error" in message:
                raise SandboxError(f"container {spec.id}: {message['error']}",
                                   int(message.get("exit_code", 125)))
            if "userns" in message:
                from .userns import write_id_maps

                write_id_maps(int(message["userns"]), spec.uid_map, spec.gid_map)
                channel.send({"mapped": True})
            elif "pid" in message:
                pid = int(message["pid"])
                pidfd = _pidfd_open(pid)
                proc.wait()  # the init exits right after forking PID 1
                if on_created is not None:
                    on_created(pid)
                channel.send(go)
            elif message.get("ok"):
                return pid, pidfd
    except TimeoutError:
        raise SandboxError(
            f"container {spec.id}: its init did not finish set-up in time; see "
            f"{os.path.join(spec.state_dir, INIT_LOG_NAME)}"
        ) from None
    except BaseException:
        if pidfd >= 0:
            with suppress(OSError):
                _pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
        raise
