"""Thin ctypes wrappers over the Linux system calls that the os module lacks.

This is the only module of cellbox.runtime that uses ctypes. Every wrapper raises
:class:`~cellbox.runtime.errors.SyscallError` (an ``OSError`` carrying errno) whose message
names the call and its target; every fd it returns is close-on-exec.

    namespaces     unshare, setns, pidfd_open, pidfd_send_signal, pidfd_exit_code
    mounts         mount, umount2, pivot_root, fsopen, fsconfig_*, fsmount, move_mount,
                   open_tree, mount_setattr
    paths          openat2 (+ RESOLVE_*)
    credentials    capget, capset, prctl, cap_bound_drop, cap_ambient_clear, set_no_new_privs,
                   set_dumpable
    process        seccomp_set_filter, close_range, sethostname, malloc_trim, set_process_title
    terminals      tty_set_controlling, pty_peer, pty_unlock, get_winsize, set_winsize,
                   copy_winsize

It is imported by the container's init process, so it imports nothing but ctypes, errno,
fcntl, os and struct.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

from .errors import SyscallError

TYPE_CHECKING = False  # the container's init does not import typing
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AT_EMPTY_PATH",
    "AT_FDCWD",
    "AT_RECURSIVE",
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "MOUNT_ATTR_NODEV",
    "MOUNT_ATTR_NOEXEC",
    "MOUNT_ATTR_NOSUID",
    "MOUNT_ATTR_RDONLY",
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "NAMESPACE_FLAGS",
    "OPEN_TREE_CLONE",
    "RESOLVE_BENEATH",
    "RESOLVE_CACHED",
    "RESOLVE_IN_ROOT",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "RESOLVE_NO_XDEV",
    "cap_ambient_clear",
    "cap_bound_drop",
    "cap_bound_has",
    "capget",
    "capset",
    "close_range",
    "copy_winsize",
    "fsconfig_create",
    "fsconfig_flag",
    "fsconfig_string",
    "fsmount",
    "fsopen",
    "get_winsize",
    "malloc_trim",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "openat2",
    "pidfd_exit_code",
    "pidfd_open",
    "pidfd_send_signal",
    "pivot_root",
    "prctl",
    "pty_peer",
    "pty_unlock",
    "seccomp_set_filter",
    "set_dumpable",
    "set_no_new_privs",
    "set_process_title",
    "set_winsize",
    "sethostname",
    "setns",
    "tty_set_controlling",
    "umount2",
    "unshare",
]

# --------------------------------------------------------------------------- constants

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# The names used in SandboxSpec.namespaces and /proc/PID/ns/<name>.
NAMESPACE_FLAGS = {
    "user": CLONE_NEWUSER,
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "net": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
    "pid": CLONE_NEWPID,
}

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 0x2

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
OPEN_TREE_CLONE = 0x1
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SECCOMP_SET_MODE_FILTER = 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CLOSE_RANGE_CLOEXEC = 0x4

TIOCSCTTY = 0x540E
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
_PIDFD_GET_INFO = 0xC040FF0B  # _IOWR(0xFF, 11, struct pidfd_info) (64 bytes, Linux 6.15)
_PIDFD_INFO_EXIT = 1 << 3

# Numbers that differ between architectures; everything from 424 on is shared.
_ARCH_NUMBERS = {
    "x86_64": {"pivot_root": 155, "seccomp": 317, "rt_sigaction": 13},
    "aarch64": {"pivot_root": 41, "seccomp": 277, "rt_sigaction": 134},
}
_NR = _ARCH_NUMBERS.get(os.uname().machine, _ARCH_NUMBERS["x86_64"])
_NR_PIVOT_ROOT = _NR["pivot_root"]
_NR_RT_SIGACTION = _NR["rt_sigaction"]
_NR_SECCOMP = _NR["seccomp"]
_NR_PIDFD_SEND_SIGNAL = 424
_NR_OPEN_TREE = 428
_NR_MOVE_MOUNT = 429
_NR_FSOPEN = 430
_NR_FSCONFIG = 431
_NR_FSMOUNT = 432
_NR_PIDFD_OPEN = 434
_NR_CLOSE_RANGE = 436
_NR_OPENAT2 = 437
_NR_MOUNT_SETATTR = 442

# ------------------------------------------------------------------------------ libc

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_c_int = ctypes.c_int
_c_long = ctypes.c_long
_c_ulong = ctypes.c_ulong
_c_char_p = ctypes.c_char_p


def _fn(name: str, restype: object, *argtypes: object) -> Any:
    func = getattr(_libc, name)
    func.restype = restype
    func.argtypes = argtypes
    return func


_unshare = _fn("unshare", _c_int, _c_int)
_setns = _fn("setns", _c_int, _c_int, _c_int)
_mount = _fn("mount", _c_int, _c_char_p, _c_char_p, _c_char_p, _c_ulong, _c_char_p)
_umount2 = _fn("umount2", _c_int, _c_char_p, _c_int)
_sethostname = _fn("sethostname", _c_int, _c_char_p, ctypes.c_size_t)
_prctl = _fn("prctl", _c_int, _c_int, _c_ulong, _c_ulong, _c_ulong, _c_ulong)
_capget = _fn("capget", _c_int, ctypes.c_void_p, ctypes.c_void_p)
_capset = _fn("capset", _c_int, ctypes.c_void_p, ctypes.c_void_p)


def _check(result: int, what: str) -> int:
    if result < 0:
        raise SyscallError(ctypes.get_errno(), what)
    return int(result)


def _path(value: str | bytes) -> bytes:
    return os.fsencode(value)


def _call(nr: int, what: str, *args: object) -> int:
    while True:
        result = _syscall(_c_long(nr), *args)
        if result >= 0:
            return int(result)
        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise SyscallError(err, what)


def default_signal(sig: int) -> None:
    """rt_sigaction(2) to SIG_DFL straight to the kernel.

    glibc refuses its own signals 32 and 33 (sigaction says EINVAL), yet a parent that
    ignored them leaves them ignored across exec; only the raw system call resets them.
    """
    action = ctypes.create_string_buffer(32)  # handler, flags, restorer, mask: all zero
    _call(_NR_RT_SIGACTION, f"rt_sigaction({sig}, SIG_DFL)", _c_int(sig), action, None,
          ctypes.c_size_t(8))


# ------------------------------------------------------------------------ namespaces

def unshare(flags: int) -> None:
    """unshare(2): move the calling process into new namespaces (``CLONE_NEW*``)."""
    _check(_unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0, what: str = "") -> None:
    """setns(2) into the namespace ``fd`` (an ns file or, Linux 5.8+, a pidfd with flags)."""
    _check(_setns(fd, nstype), f"setns into {what or 'namespace'} ({nstype:#x})")


def pidfd_open(pid: int) -> int:
    """pidfd_open(2): a close-on-exec fd that refers to process ``pid`` for its whole life."""
    return _call(_NR_PIDFD_OPEN, f"pidfd_open({pid})", _c_int(pid), ctypes.c_uint(0))


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """pidfd_send_signal(2): signal the process behind ``pidfd`` (no pid-reuse race)."""
    _call(_NR_PIDFD_SEND_SIGNAL, f"pidfd_send_signal(sig {sig})", _c_int(pidfd), _c_int(sig),
          ctypes.c_void_p(None), ctypes.c_uint(0))


def pidfd_exit_code(pidfd: int) -> int | None:
    """The wait status of an exited process, from its pidfd (Linux 6.15+), else None.

    Works for processes that are not our children, which is the point: the container's
    PID 1 is reparented when its short-lived parent exits.
    """
    buf = bytearray(64)
    struct.pack_into("Q", buf, 0, _PIDFD_INFO_EXIT)
    try:
        fcntl.ioctl(pidfd, _PIDFD_GET_INFO, buf, True)
    except OSError:
        return None
    mask = struct.unpack_from("Q", buf, 0)[0]
    if not mask & _PIDFD_INFO_EXIT:
        return None
    return int(struct.unpack_from("i", buf, 56)[0])


# ---------------------------------------------------------------------------- mounts

def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2). Prefer the fd-based calls below; this is the fallback and for remounts."""
    _check(
        _mount(None if source is None else _path(source), _path(target),
               None if fstype is None else fstype.encode(), flags,
               None if data is None else data.encode()),
        f"mount {fstype or source or ''} on {target}",
    )


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_umount2(_path(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    _call(_NR_PIVOT_ROOT, f"pivot_root({new_root}, {put_old})", _c_char_p(_path(new_root)),
          _c_char_p(_path(put_old)))


def fsopen(fstype: str) -> int:
    """fsopen(2): a file system context fd for ``fstype`` (configure, then fsmount)."""
    return _call(_NR_FSOPEN, f"fsopen({fstype})", _c_char_p(fstype.encode()),
                 ctypes.c_uint(FSOPEN_CLOEXEC))


def fsconfig_string(fd: int, key: str, value: str | bytes, what: str = "") -> None:
    """fsconfig(FSCONFIG_SET_STRING, key, value)."""
    _call(_NR_FSCONFIG, f"{what or 'fsconfig'}: {key}={os.fsdecode(value)}", _c_int(fd),
          ctypes.c_uint(FSCONFIG_SET_STRING), _c_char_p(key.encode()),
          _c_char_p(_path(value)), _c_int(0))


def fsconfig_flag(fd: int, key: str, what: str = "") -> None:
    """fsconfig(FSCONFIG_SET_FLAG, key)."""
    _call(_NR_FSCONFIG, f"{what or 'fsconfig'}: {key}", _c_int(fd),
          ctypes.c_uint(FSCONFIG_SET_FLAG), _c_char_p(key.encode()), _c_char_p(None),
          _c_int(0))


def fsconfig_create(fd: int, what: str = "") -> None:
    """fsconfig(FSCONFIG_CMD_CREATE): make the superblock from the configured context."""
    _call(_NR_FSCONFIG, f"{what or 'fsconfig'}: create", _c_int(fd),
          ctypes.c_uint(FSCONFIG_CMD_CREATE), _c_char_p(None), _c_char_p(None), _c_int(0))


def fsmount(fd: int, attr: int = 0, what: str = "") -> int:
    """fsmount(2): a detached mount of the created context; returns its fd."""
    return _call(_NR_FSMOUNT, f"fsmount {what}", _c_int(fd), ctypes.c_uint(FSMOUNT_CLOEXEC),
                 ctypes.c_uint(attr))


def open_tree(dirfd: int, path: str, flags: int, what: str = "") -> int:
    """open_tree(2); with ``OPEN_TREE_CLONE`` a detached copy (bind) of the mount at path."""
    return _call(_NR_OPEN_TREE, f"open_tree {what or path}", _c_int(dirfd),
                 _c_char_p(_path(path)), ctypes.c_uint(flags | os.O_CLOEXEC))


def move_mount(from_fd: int, to_fd: int, what: str = "") -> None:
    """move_mount(2) of the (detached) mount ``from_fd`` onto the object ``to_fd`` is."""
    _call(_NR_MOVE_MOUNT, f"move_mount onto {what}", _c_int(from_fd), _c_char_p(b""),
          _c_int(to_fd), _c_char_p(b""),
          ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def mount_setattr(fd: int, attr_set: int, *, recursive: bool = False,
                  propagation: int = 0, what: str = "") -> None:
    """mount_setattr(2) on the mount ``fd`` refers to (its whole tree if ``recursive``)."""
    attr = _MountAttr(attr_set, 0, propagation, 0)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _call(_NR_MOUNT_SETATTR, f"mount_setattr {what}", _c_int(fd), _c_char_p(b""),
          ctypes.c_uint(flags), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))


# ------------------------------------------------------------------------------ paths

class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def openat2(dirfd: int, path: str | bytes, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dirfd`` under the ``resolve`` restrictions.

    ``O_CLOEXEC`` is always added. Returns the new fd; raises :class:`SyscallError` (an
    ``OSError`` carrying the errno, e.g. ``ELOOP`` when a symlink was refused, ``EXDEV``
    when the path tried to leave the root) naming the path. ``EAGAIN`` (a concurrent
    rename raced the lookup) is retried.
    """
    raw = os.fsencode(path)
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    while True:
        fd = _syscall(
            _c_long(_NR_OPENAT2),
            _c_int(dirfd),
            _c_char_p(raw),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EINTR):
            continue
        raise SyscallError(err, f"openat2 {raw.decode(errors='replace')!r}")


# ------------------------------------------------------------------------ credentials

def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    return _check(_prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def set_process_title(title: str) -> None:
    """What ``ps`` shows for this process: ``title`` as its name (PR_SET_NAME) and its whole
    command line, written over the argv area the kernel reports (never grown, so a title
    longer than the original command line is cut)."""
    data = title.encode()
    name = ctypes.create_string_buffer(data[:15])
    prctl(PR_SET_NAME, ctypes.addressof(name))
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2:].split()  # fields[0] is field 3 of proc(5)
    start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48 and 49
    if end > start:
        ctypes.memset(start, 0, end - start)
        ctypes.memmove(start, data, min(len(data), end - start - 1))


def set_dumpable(value: bool) -> None:
    """PR_SET_DUMPABLE: off makes /proc/PID/* root-owned and the process unptraceable."""
    prctl(PR_SET_DUMPABLE, int(value))


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: execve can never grant more privilege (setuid, file caps)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def cap_bound_drop(cap: int) -> None:
    """PR_CAPBSET_DROP: remove ``cap`` from the bounding set (needs CAP_SETPCAP)."""
    try:
        prctl(PR_CAPBSET_DROP, cap)
    except SyscallError as exc:
        if exc.errno != errno.EINVAL:  # a capability this kernel does not know
            raise


def cap_bound_has(cap: int) -> bool:
    """PR_CAPBSET_READ."""
    try:
        return prctl(PR_CAPBSET_READ, cap) == 1
    except SyscallError:
        return False


def cap_ambient_clear() -> None:
    """Empty the ambient capability set."""
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capget() -> tuple[int, int, int]:
    """The calling thread's (effective, permitted, inheritable) as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_capget(ctypes.byref(header), data), "capget")
    return tuple(
        getattr(data[0], f) | (getattr(data[1], f) << 32)
        for f in ("effective", "permitted", "inheritable")
    )


def capset(effective: int, permitted: int, inheritable: int = 0) -> None:
    """capset(2) for the calling thread, with 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_capset(ctypes.byref(header), data), "capset")


# ---------------------------------------------------------------------------- process

def seccomp_set_filter(program: bytes) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER) with a classic BPF ``program`` (8 bytes/insn)."""
    count = len(program) // 8
    buf = ctypes.create_string_buffer(program, len(program))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    fprog = struct.pack("HxxxxxxP", count, ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    _call(_NR_SECCOMP, "seccomp(SET_MODE_FILTER)", ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
          ctypes.c_uint(0), fbuf)


def close_range(first: int, last: int = 0xFFFFFFFF, *, cloexec: bool = False) -> None:
    """close_range(2): close (or with ``cloexec`` mark close-on-exec) fds first..last."""
    _call(_NR_CLOSE_RANGE, "close_range", ctypes.c_uint(first), ctypes.c_uint(last),
          ctypes.c_uint(_CLOSE_RANGE_CLOEXEC if cloexec else 0))


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_sethostname(raw, len(raw)), f"sethostname({name!r})")


def malloc_trim() -> None:
    """Give free heap pages back to the kernel (glibc's malloc_trim(0)); best effort."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


# -------------------------------------------------------------------------- terminals

def tty_set_controlling(fd: int) -> None:
    """TIOCSCTTY: make the terminal ``fd`` the controlling tty of this (new) session."""
    fcntl.ioctl(fd, TIOCSCTTY, 0)


def pty_unlock(master: int) -> None:
    """unlockpt(3): allow the slave side of ``master`` to be opened."""
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))


def pty_peer(master: int) -> int:
    """TIOCGPTPEER: open the slave of ``master`` without a path lookup (no /dev/pts race)."""
    return int(fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))


def get_winsize(fd: int) -> tuple[int, int]:
    """(rows, columns) of the terminal ``fd``."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, TIOCGWINSZ, bytes(8)))
    return rows, cols


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """Set the window size of the terminal ``fd`` (its foreground group gets SIGWINCH)."""
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def copy_winsize(sources: tuple[int, ...], target: int) -> None:
    """Give the terminal ``target`` the size of the first of ``sources`` that is a sized
    terminal; nothing when none is."""
    for fd in sources:
        try:
            rows, cols = get_winsize(fd)
        except OSError:
            continue
        if rows and cols:
            set_winsize(target, rows, cols)
            return
