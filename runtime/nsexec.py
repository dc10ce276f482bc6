"""``cellbox exec``: run a process inside a running container.

::

    status = exec_in(pid, ProcessSpec(args=["sh"], env=[...], tty=True),
                     cgroup_procs=[...], start_time=ticks, control_fd=3)

Call it from a single-threaded process (the ``cellbox exec`` command; the kernel spawns
that, it never calls this in its own multithreaded process): setns into a mount namespace
is refused to a process whose threads share its file-system context. In order:

1. pin the container's PID 1 with a pidfd and check its start time (no pid reuse);
2. ``PR_SET_DUMPABLE`` off (the container must not ptrace us or read /proc/<us>/fd);
3. join the container's cgroups (before the fork, so the command is charged there);
4. open the host's /proc (for the relay's reading detection), then enter every
   namespace of PID 1 that differs from ours in one atomic ``setns(pidfd, flags)`` (Linux
   5.8+; a per-namespace fallback opens all /proc/PID/ns files first). Entering the mount
   namespace resets our root and cwd to the container's root (the kernel looks up the
   namespace's root with LOOKUP_DOWN, which lands on the pivot_root'ed rootfs);
5. with a tty: open the container's /dev/pts/ptmx (no symlinks followed; checked to be a
   ptmx node) and its slave by TIOCGPTPEER;
6. fork: the child is in the container's PID namespace and becomes the command exactly
   like the workload (:func:`workload.become`: user, caps, no_new_privs, seccomp);
7. relay (:mod:`ptyrelay`) until it exits; return its status (128+N for signal N).
"""

from __future__ import annotations

import errno
import os
import stat

from . import _leanjson as json
from . import cgroupjoin, linux, workload
from .errors import ContainerStateError, SandboxError

# The plain exec (no tty, no control fd) is the hot path: no typing, json, signal.py or
# ptyrelay (with its json, enum and typing) is imported for it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Sequence
    from typing import Any

    from .ptyrelay import Relay
else:
    import _signal as signal

__all__ = ["exec_in", "namespace_flags"]

# /proc/PID/ns names, user first (it must be entered before the others when separate).
_NS_FILES = (
    ("user", linux.CLONE_NEWUSER), ("mnt", linux.CLONE_NEWNS), ("uts", linux.CLONE_NEWUTS),
    ("ipc", linux.CLONE_NEWIPC), ("net", linux.CLONE_NEWNET),
    ("cgroup", linux.CLONE_NEWCGROUP), ("pid", linux.CLONE_NEWPID),
)
_PTMX_RDEV = os.makedev(5, 2)


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[19])


def _single_threaded() -> bool:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Threads:"):
                return int(line.split()[1]) == 1
    return False


def namespace_flags(pid: int) -> int:
    """The CLONE_NEW* flags of the namespaces of ``pid`` that differ from ours."""
    flags = 0
    for name, flag in _NS_FILES:
        try:
            theirs = os.stat(f"/proc/{pid}/ns/{name}")
            ours = os.stat(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            continue
        except PermissionError:
            # Rootless: PID 1 is not dumpable and its mm belongs to the host's user
            # namespace, so we may not look; a container we cannot look into has all of
            # its own namespaces (rootless containers always do).
            return sum(flag for _, flag in _NS_FILES)
        if (theirs.st_ino, theirs.st_dev) != (ours.st_ino, ours.st_dev):
            flags |= flag
    return flags


def _enter(pid: int, pidfd: int, flags: int) -> None:
    try:
        linux.setns(pidfd, flags, f"the namespaces of container PID {pid}")
        return
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # a kernel before 5.8 takes no pidfd here
            raise
    fds = []
    try:
        for name, flag in _NS_FILES:
            if flags & flag:
                fds.append((os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC),
                            flag, name))
        if _start_time(pid) is None:
            raise ContainerStateError(f"the container's init {pid} exited")
        for fd, flag, name in fds:
            linux.setns(fd, flag, f"the {name} namespace of container PID {pid}")
    finally:
        for fd, _, _ in fds:
            os.close(fd)


def _join_cgroups(cgroup_procs: Sequence[str]) -> None:
    for path in cgroup_procs:
        try:
            cgroupjoin.join([path])
        except OSError as exc:
            raise SandboxError(f"cannot join the container's cgroup {path}: {exc}") from exc


def _open_pty() -> tuple[int, int]:
    """A pty from the container's devpts (we are inside its mount namespace)."""
    try:
        master = linux.openat2(linux.AT_FDCWD, "/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY,
                               resolve=linux.RESOLVE_NO_SYMLINKS | linux.RESOLVE_NO_MAGICLINKS)
    except OSError as exc:
        raise SandboxError(f"cannot open the container's /dev/pts/ptmx: {exc}") from exc
    st = os.fstat(master)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != _PTMX_RDEV:
        os.close(master)
        raise SandboxError("the container's /dev/pts/ptmx is not a pty multiplexer")
    linux.pty_unlock(master)
    return master, linux.pty_peer(master)


def _process_dict(process: Any) -> dict[str, Any]:
    if isinstance(process, dict):
        return dict(process)
    to_dict = getattr(process, "to_dict", None)
    if to_dict is None:
        raise TypeError("process must be a ProcessSpec or a dict")
    result: dict[str, Any] = to_dict()
    return result


_FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
              signal.SIGUSR2)


def _wait_forwarding(child: int) -> int:
    """Wait for ``child`` (it uses our stdio), forwarding the signals the relay forwards.

    What :class:`.ptyrelay.Relay` does without a pty or control fd, without its imports.
    """

    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - no contextlib on the exec path
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    old = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        # PEP 475: a signal interrupts waitpid, runs `forward`, and the wait goes on.
        _, status = os.waitpid(child, 0)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def exec_in(
    pid: int,
    process: Any,
    *,
    cgroup_procs: Sequence[str] = (),
    start_time: int | None = None,
    control_fd: int | None = None,
) -> int:
    """Run ``process`` (a ProcessSpec or its dict) in the container whose PID 1 is ``pid``.

    stdin/stdout/stderr are this process's (with ``process.tty``: relayed through a pty
    of the container). Returns the exit status; raises :class:`SandboxError` when the
    command could not be started (``exit_code`` 126/127 as Docker) and
    :class:`ContainerStateError` when the container is not running.
    """
    spec = _process_dict(process)
    if not spec.get("args"):
        raise SandboxError("exec needs a command")
    if not _single_threaded():
        raise SandboxError("exec_in must run in a single-threaded process (cellbox exec)")
    try:
        pidfd = linux.pidfd_open(pid)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
        raise ContainerStateError(f"the container is not running (no process {pid})") from None
    master = slave = host_proc = -1
    try:
        if start_time is not None and _start_time(pid) != start_time:
            raise ContainerStateError(f"the container is not running (pid {pid} was reused)")
        linux.set_dumpable(False)
        _join_cgroups(cgroup_procs)
        relay_type: type[Relay] | None = None
        if spec.get("tty") or control_fd is not None:
            # Imported here, while the package is still reachable: not once we are in the
            # container's mount namespace. The plain exec needs no relay (nor its imports).
            from .ptyrelay import Relay as relay_type
            host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _enter(pid, pidfd, namespace_flags(pid))
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise
            raise ContainerStateError(f"the container is not running (PID 1 {pid} exited)") \
                from None
        os.chdir("/")
        hostname = os.uname().nodename
        if spec.get("tty"):
            master, slave = _open_pty()
            linux.copy_winsize((0, 1), master)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        child = os.fork()
        if child == 0:
            workload.become(spec, stdio=(0, 1, 2), tty=slave if slave >= 0 else None,
                            error_fd=err_w, create_cwd=False, hostname=hostname)
        os.close(err_w)
        slave_rdev = 0
        if slave >= 0:
            slave_rdev = os.fstat(slave).st_rdev
            os.close(slave)
            slave = -1
        report = b""
        while chunk := os.read(err_r, 65536):
            report += chunk
        os.close(err_r)
        if report:
            os.waitpid(child, 0)
            failure = json.loads(report)
            code = int(failure["exit_code"])
            if control_fd is not None:  # the caller learns the status on the usual channel
                try:  # noqa: SIM105 - no contextlib on the exec path
                    os.write(control_fd, json.dumps({"event": "exit", "status": code}).encode()
                             + b"\n")
                except OSError:
                    pass
            raise SandboxError(str(failure["error"]), code)
        if relay_type is None:
            return _wait_forwarding(child)
        return relay_type(child, master=master if master >= 0 else None, control_fd=control_fd,
                          host_proc=host_proc, slave_rdev=slave_rdev).run()
    finally:
        for fd in (pidfd, master, slave, host_proc):
            if fd >= 0:
                os.close(fd)
