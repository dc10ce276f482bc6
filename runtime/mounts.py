"""The container's root file system, built by PID 1 inside its new mount namespace.

:func:`build_rootfs` mounts, in order, with the fd-based mount API (fsopen/fsmount,
open_tree, mount_setattr, move_mount) so that every target is an fd resolved inside the
rootfs and every mount gets its flags before it becomes visible:

* the overlay rootfs (``nodev``): one ``lowerdir+`` per layer — mount(2) silently
  truncates its options at 4095 bytes and would stack the wrong layers — with a fallback
  to mount(2) with relative lower dirs on kernels without ``lowerdir+``; ``userxattr``
  when rootless;
* /proc (a new instance for the container's PID namespace; nosuid, nodev, noexec) with
  the paths runc masks (/dev/null over files, an empty read-only tmpfs over directories)
  and makes read-only;
* /dev: a fresh tmpfs, never the image's, with only null, zero, full, random, urandom and
  tty, each a read-only bind of the host's node (the tmpfs itself is ``nodev``, so a node
  made with CAP_MKNOD inside the container cannot be opened, with or without a devices
  cgroup; read-only so that chmod on them cannot touch the host's inode), devpts
  (newinstance, ptmxmode=0666) with /dev/ptmx -> pts/ptmx, /dev/shm, /dev/mqueue and the
  usual symlinks;
* /sys read-only (a new sysfs when the container has its own network namespace, else a
  read-only recursive bind), /sys/firmware and /sys/devices/virtual/powercap masked, and
  /sys/fs/cgroup: the cgroup hierarchies mounted afresh read-only inside the cgroup
  namespace (v1: a tmpfs with one mount per hierarchy, like the host's);
* the /etc files (hostname, hosts, resolv.conf) and the spec's binds and tmpfs mounts,
  their destinations resolved inside the rootfs by :func:`resolve_in_root` — symlinks are
  followed as if the rootfs were /, so an image's ``/etc/evil -> /root`` cannot send a
  mount to the host — and created (in the upper dir) when missing.

:func:`pivot` then makes the rootfs ``/`` with ``pivot_root(".", ".")`` and detaches the
old root, so nothing of the host stays reachable.
"""

from __future__ import annotations

import errno
import os
import stat

from . import linux
from .errors import SandboxError, SyscallError

TYPE_CHECKING = False  # typing and collections.abc are not imported by the container's init
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = [
    "DEVICES",
    "MASKED_PATHS",
    "READONLY_PATHS",
    "build_rootfs",
    "make_root_private",
    "pivot",
    "resolve_in_root",
]

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_DEV_LINKS = (
    ("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore"),
)
_V1_OPTIONS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio",
    "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc", "noprefix",
})
_RO_ATTRS = (linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV
             | linux.MOUNT_ATTR_NOEXEC)
_SAFE_ATTRS = linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV | linux.MOUNT_ATTR_NOEXEC
_O_PATH = os.O_PATH | os.O_CLOEXEC
_MAX_SYMLINKS = 40


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


# ---------------------------------------------------------------- path resolution


def resolve_in_root(root_fd: int, path: str, *, create: str | None = None,
                    follow_last: bool = True) -> int:
    """An O_PATH fd for ``path`` inside the tree ``root_fd``, as if ``root_fd`` were /.

    Symlinks (absolute or relative) and ``..`` never leave the root. With ``create``
    ("dir" or "file") missing components are made: directories for the parents, and the
    last one as ``create`` says; a dangling symlink's target is created, as runc does for
    /etc/resolv.conf. ``follow_last=False`` refuses a symlink as the last component.
    """
    stack = [os.dup(root_fd)]
    todo = _split(path)
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            parent = stack[-1]
            last = not todo
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    raise
                _create(parent, name, "file" if last and create == "file" else "dir")
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                if last and not follow_last:
                    raise SyscallError(errno.ELOOP, f"{path} is a symlink")
                links += 1
                if links > _MAX_SYMLINKS:
                    raise SyscallError(errno.ELOOP, f"resolving {path}")
                target = os.readlink(name, dir_fd=parent)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo[:0] = _split(target)
                continue
            if not last and not stat.S_ISDIR(st.st_mode):
                raise SyscallError(errno.ENOTDIR, f"resolving {path}: {name}")
            stack.append(os.open(name, _O_PATH | os.O_NOFOLLOW, dir_fd=parent))
        return stack.pop()
    finally:
        _close(*stack)


def _create(parent: int, name: str, kind: str) -> None:
    try:
        if kind == "dir":
            os.mkdir(name, 0o755, dir_fd=parent)
        else:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=parent)
            os.close(fd)
    except FileExistsError:
        pass


def _is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def _mountpoint(root_fd: int, path: str, kind: str, *, follow_last: bool = True) -> int:
    """A mountpoint inside the rootfs for a ``kind`` ("dir"/"file") mount, made if missing."""
    try:
        fd = resolve_in_root(root_fd, path, create=kind, follow_last=follow_last)
    except OSError as exc:
        raise SandboxError(f"cannot make the mountpoint {path} in the rootfs: {exc}") from exc
    if _is_dir(fd) != (kind == "dir"):
        _close(fd)
        what = "a directory" if kind == "dir" else "a file"
        raise SandboxError(f"cannot mount {what} on {path}: the image has something else there")
    return fd


# ------------------------------------------------------------------------ mounting


def _attach(mount_fd: int, target_fd: int, what: str) -> None:
    try:
        linux.move_mount(mount_fd, target_fd, what)
    finally:
        _close(target_fd)


def _new_fs(fstype: str, *, source: str | None = None, strings: Sequence[tuple[str, str]] = (),
            flags: Sequence[str] = (), attrs: int = 0, what: str = "") -> int:
    """A detached mount of a new ``fstype`` superblock (fsopen, fsconfig, fsmount)."""
    what = what or fstype
    fs = linux.fsopen(fstype)
    try:
        if source is not None:
            linux.fsconfig_string(fs, "source", source, what)
        for key, value in strings:
            linux.fsconfig_string(fs, key, value, what)
        for key in flags:
            linux.fsconfig_flag(fs, key, what)
        linux.fsconfig_create(fs, what)
        return linux.fsmount(fs, attrs, what)
    finally:
        os.close(fs)


def _clone_tree(dirfd: int, path: str, attrs: int, *, recursive: bool = False) -> int:
    """A detached bind of ``path`` (relative to ``dirfd``) with ``attrs`` set."""
    flags = linux.OPEN_TREE_CLONE | (linux.AT_RECURSIVE if recursive else 0)
    tree = linux.open_tree(dirfd, path, flags)
    try:
        if attrs:
            linux.mount_setattr(tree, attrs, recursive=recursive, what=path)
    except BaseException:
        os.close(tree)
        raise
    return tree


def make_root_private() -> None:
    """Stop mount events from propagating between the host and the container."""
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)


def mount_overlay(lower_dirs: Sequence[str], upper_dir: str, work_dir: str, target: str, *,
                  userxattr: bool) -> int:
    """Mount the overlay rootfs on ``target``; returns an O_PATH fd of its root."""
    if not lower_dirs:
        raise SandboxError("the image has no layers")
    try:
        fs = linux.fsopen("overlay")
    except SyscallError as exc:
        if exc.errno != errno.ENOSYS:
            raise SandboxError(f"cannot mount the overlay rootfs: {exc}") from exc
        return _mount_overlay_legacy(lower_dirs, upper_dir, work_dir, target, userxattr)
    try:
        try:
            linux.fsconfig_string(fs, "lowerdir+", lower_dirs[0], "overlay")
        except SyscallError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _close(fs)
            fs = -1  # a kernel before 6.8: no lowerdir+
            return _mount_overlay_legacy(lower_dirs, upper_dir, work_dir, target, userxattr)
        for lower in lower_dirs[1:]:
            linux.fsconfig_string(fs, "lowerdir+", lower, "overlay")
        # The device name /proc/mounts shows: "overlay", as with mount(2), Docker and podman.
        linux.fsconfig_string(fs, "source", "overlay", "overlay")
        linux.fsconfig_string(fs, "upperdir", upper_dir, "overlay")
        linux.fsconfig_string(fs, "workdir", work_dir, "overlay")
        if userxattr:
            linux.fsconfig_flag(fs, "userxattr", "overlay")
        linux.fsconfig_create(fs, "overlay")
        mnt = linux.fsmount(fs, linux.MOUNT_ATTR_NODEV, "overlay")
    except SyscallError as exc:
        raise SandboxError(f"cannot mount the overlay rootfs: {exc}") from exc
    finally:
        _close(fs)
    try:
        _attach(mnt, os.open(target, _O_PATH | os.O_DIRECTORY), target)
    except BaseException:
        os.close(mnt)
        raise
    return mnt


def _mount_overlay_legacy(lower_dirs: Sequence[str], upper_dir: str, work_dir: str,
                          target: str, userxattr: bool) -> int:
    # mount(2) truncates its data at one page: relative lower dirs after chdir to their
    # common parent keep the options short.
    base = os.path.commonpath(list(lower_dirs))
    relative = [os.path.relpath(d, base) for d in lower_dirs]
    for path in [*relative, upper_dir, work_dir]:
        if any(c in path for c in ",:\\"):
            raise SandboxError(f"cannot mount the overlay rootfs: unsupported path {path!r}")
    data = f"lowerdir={':'.join(relative)},upperdir={upper_dir},workdir={work_dir}"
    if userxattr:
        data += ",userxattr"
    if len(data) > 4000:
        raise SandboxError(
            f"cannot mount the overlay rootfs: {len(lower_dirs)} layers do not fit in "
            "mount(2)'s options on this kernel (Linux 6.8+ has no such limit)"
        )
    cwd = os.open(".", _O_PATH | os.O_DIRECTORY)
    try:
        os.chdir(base)
        linux.mount("overlay", target, "overlay", linux.MS_NODEV, data)
    except SyscallError as exc:
        raise SandboxError(f"cannot mount the overlay rootfs: {exc}") from exc
    finally:
        os.fchdir(cwd)
        os.close(cwd)
    return os.open(target, _O_PATH | os.O_DIRECTORY)


def _mount_proc(root_fd: int) -> int:
    mnt = _new_fs("proc", attrs=_SAFE_ATTRS, what="/proc")
    _attach(mnt, _mountpoint(root_fd, "/proc", "dir", follow_last=False), "/proc")
    return mnt


def _mount_dev(root_fd: int, *, own_ipc: bool, rootless: bool) -> int:
    dev = _new_fs("tmpfs", source="tmpfs", strings=[("mode", "755"), ("size", "65536k")],
                  attrs=linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV, what="/dev")
    _attach(dev, _mountpoint(root_fd, "/dev", "dir", follow_last=False), "/dev")
    for name in DEVICES:
        tree = _clone_tree(linux.AT_FDCWD, f"/dev/{name}", _RO_ATTRS & ~linux.MOUNT_ATTR_NODEV)
        _create(dev, name, "file")
        try:
            _attach(tree, os.open(name, _O_PATH | os.O_NOFOLLOW, dir_fd=dev), f"/dev/{name}")
        finally:
            os.close(tree)
    for name in ("pts", "shm", "mqueue"):
        _create(dev, name, "dir")
    pts_options = [("ptmxmode", "0666"), ("mode", "0620")]
    if not rootless or _gid_mapped(5):  # group tty, when the user namespace has it
        pts_options.append(("gid", "5"))
    pts = _new_fs("devpts", source="devpts", strings=pts_options, flags=["newinstance"],
                  attrs=linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NOEXEC, what="/dev/pts")
    _attach_closing(pts, os.open("pts", _O_PATH, dir_fd=dev), "/dev/pts")
    shm = _new_fs("tmpfs", source="shm", strings=[("mode", "1777"), ("size", "65536k")],
                  attrs=_SAFE_ATTRS, what="/dev/shm")
    _attach_closing(shm, os.open("shm", _O_PATH, dir_fd=dev), "/dev/shm")
    if own_ipc:
        mq = _new_fs("mqueue", source="mqueue", attrs=_SAFE_ATTRS, what="/dev/mqueue")
        _attach_closing(mq, os.open("mqueue", _O_PATH, dir_fd=dev), "/dev/mqueue")
    for name, target in _DEV_LINKS:
        os.symlink(target, name, dir_fd=dev)
    return dev


def _gid_mapped(gid: int) -> bool:
    try:
        with open("/proc/self/gid_map") as f:
            ranges = [line.split() for line in f]
    except OSError:
        return False
    return any(int(inside) <= gid < int(inside) + int(count)
               for inside, _outside, count in ranges)


def _attach_closing(mount_fd: int, target_fd: int, what: str) -> None:
    try:
        _attach(mount_fd, target_fd, what)
    finally:
        os.close(mount_fd)


def _mask(root_fd: int, dev_fd: int) -> None:
    for path in MASKED_PATHS:
        try:
            target = resolve_in_root(root_fd, path, follow_last=False)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except SyscallError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise
        if _is_dir(target):
            mnt = _new_fs("tmpfs", source="tmpfs", strings=[("size", "0")],
                          attrs=_RO_ATTRS, what=path)
        else:
            mnt = _clone_tree(dev_fd, "null", 0)
        _attach_closing(mnt, target, path)
    for path in READONLY_PATHS:
        try:
            target = resolve_in_root(root_fd, path, follow_last=False)
        except FileNotFoundError:
            continue
        tree = linux.open_tree(target, "", linux.OPEN_TREE_CLONE | linux.AT_RECURSIVE
                               | linux.AT_EMPTY_PATH)
        try:
            linux.mount_setattr(tree, _RO_ATTRS, recursive=True, what=path)
        except BaseException:
            _close(tree, target)
            raise
        _attach_closing(tree, target, path)


def _host_cgroup_mounts(mountinfo: str) -> list[tuple[str, str, list[str]]]:
    """(mount point, fstype, super options) of the host's cgroup file systems."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].replace("\\040", " ")
        if point == "/sys/fs/cgroup" or point.startswith("/sys/fs/cgroup/"):
            found.append((point, tail[0], tail[2].split(",")))
    return found


def _mount_cgroups(sys_fd: int, mountinfo: str, rootless: bool) -> None:
    hierarchies = _host_cgroup_mounts(mountinfo)
    target = resolve_in_root(sys_fd, "fs/cgroup")
    if any(point == "/sys/fs/cgroup" and fstype == "cgroup2"
           for point, fstype, _ in hierarchies):
        _mount_cgroup(target, "cgroup2", [], "/sys/fs/cgroup")
        return
    tmpfs = _new_fs("tmpfs", source="tmpfs", strings=[("mode", "755")], attrs=_SAFE_ATTRS,
                    what="/sys/fs/cgroup")
    try:
        _attach(tmpfs, target, "/sys/fs/cgroup")
        for point, fstype, options in hierarchies:
            name = point[len("/sys/fs/cgroup/"):]
            if not name or "/" in name:
                continue
            _create(tmpfs, name, "dir")
            sub = os.open(name, _O_PATH | os.O_NOFOLLOW, dir_fd=tmpfs)
            _mount_cgroup(sub, fstype, options, f"/sys/fs/cgroup/{name}", rootless=rootless)
        for entry in os.scandir("/sys/fs/cgroup"):
            if entry.is_symlink():  # cpu -> cpu,cpuacct on some hosts
                os.symlink(os.readlink(entry.path), entry.name, dir_fd=tmpfs)
        linux.mount_setattr(tmpfs, _RO_ATTRS, what="/sys/fs/cgroup")
    finally:
        os.close(tmpfs)


def _mount_cgroup(target: int, fstype: str, options: list[str], what: str, *,
                  rootless: bool = False) -> None:
    strings = []
    flags = []
    for option in options:
        key, sep, value = option.partition("=")
        if key == "name" and sep:
            strings.append(("name", value))
        elif option in _V1_OPTIONS:
            flags.append(option)
    try:
        mnt = _new_fs(fstype, source="cgroup", strings=strings, flags=flags, attrs=_RO_ATTRS,
                      what=what)
    except SyscallError as exc:
        _close(target)
        if rootless and exc.errno in (errno.EPERM, errno.EBUSY, errno.EINVAL):
            return  # not every hierarchy may be mounted from a user namespace
        raise
    _attach_closing(mnt, target, what)


def _mount_sys(root_fd: int, *, own_net: bool, mountinfo: str, rootless: bool) -> None:
    target = _mountpoint(root_fd, "/sys", "dir", follow_last=False)
    if own_net:
        mnt = _new_fs("sysfs", source="sysfs", attrs=_RO_ATTRS, what="/sys")
    else:
        # Without its own network namespace a new sysfs would show the host's devices
        # anyway (and is refused): a read-only recursive bind of the host's /sys.
        mnt = _clone_tree(linux.AT_FDCWD, "/sys", _RO_ATTRS, recursive=True)
    try:
        _attach(mnt, target, "/sys")
        _mount_cgroups(mnt, mountinfo, rootless)
    finally:
        os.close(mnt)


def _user_mountpoint(root_fd: int, destination: str, kind: str, kernel_dirs: Sequence[str]) -> int:
    """A mountpoint for a spec's mount: never inside /proc or /sys.

    A symlink left in a persistent upper dir (/etc/hosts -> /proc/sys/kernel/...) must not
    put a writable host file over a kernel interface, even inside the container.
    """
    fd = _mountpoint(root_fd, destination, kind)
    where = os.readlink(f"/proc/self/fd/{fd}")
    if any(where == d or where.startswith(d + "/") for d in kernel_dirs):
        os.close(fd)
        raise SandboxError(f"mount destination {destination} resolves into /proc or /sys "
                           "of the container, which cellbox does not allow")
    return fd


def _bind(root_fd: int, source: str, destination: str, attrs: int,
          kernel_dirs: Sequence[str]) -> None:
    try:
        st = os.stat(source)
    except OSError as exc:
        raise SandboxError(f"bind mount source {source}: {exc.strerror}") from exc
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
    tree = _clone_tree(linux.AT_FDCWD, source, attrs, recursive=True)
    try:
        _attach(tree, _user_mountpoint(root_fd, destination, kind, kernel_dirs), destination)
    finally:
        os.close(tree)


def _tmpfs(root_fd: int, destination: str, options: Sequence[str], readonly: bool,
           kernel_dirs: Sequence[str]) -> None:
    strings = [("mode", "1777")]
    for option in options:
        key, _, value = option.partition("=")
        strings = [s for s in strings if s[0] != key] + [(key, value)]
    attrs = linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV
    if readonly:
        attrs |= linux.MOUNT_ATTR_RDONLY
    target = _user_mountpoint(root_fd, destination, "dir", kernel_dirs)
    mnt = _new_fs("tmpfs", source="tmpfs", strings=strings, attrs=attrs, what=destination)
    _attach_closing(mnt, target, destination)


def build_rootfs(spec: Mapping[str, Any], rootfs_dir: str, etc_sources: Mapping[str, str], *,
                 rootless: bool) -> int:
    """Build the container's rootfs on ``rootfs_dir``; returns an fd of its root.

    ``spec`` is a SandboxSpec as a dict; ``etc_sources`` maps a container path to the host
    file to bind there. Call in the new mount namespace, before :func:`pivot`.
    """
    namespaces = set(spec["namespaces"])
    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read()
    make_root_private()
    root = mount_overlay(spec["lower_dirs"], spec["upper_dir"], spec["work_dir"], rootfs_dir,
                         userxattr=rootless)
    try:
        proc = _mount_proc(root)
        dev = _mount_dev(root, own_ipc="ipc" in namespaces, rootless=rootless)
        try:
            _mount_sys(root, own_net="net" in namespaces, mountinfo=mountinfo,
                       rootless=rootless)
            _mask(root, dev)
        finally:
            _close(proc, dev)
        base = os.readlink(f"/proc/self/fd/{root}").rstrip("/")
        kernel_dirs = (f"{base}/proc", f"{base}/sys")
        for destination, source in etc_sources.items():
            _bind(root, source, destination, _SAFE_ATTRS, kernel_dirs)
        user_mounts = sorted(spec.get("mounts") or [],
                             key=lambda m: len(_split(m["destination"])))
        for m in user_mounts:
            if m.get("kind", "bind") == "tmpfs":
                _tmpfs(root, m["destination"], m.get("options") or [], bool(m.get("readonly")),
                       kernel_dirs)
            else:
                attrs = linux.MOUNT_ATTR_NODEV
                if m.get("readonly"):
                    attrs |= linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                _bind(root, m["source"], m["destination"], attrs, kernel_dirs)
        if spec.get("readonly_rootfs"):
            linux.mount_setattr(root, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NODEV,
                                what="the rootfs")
    except BaseException:
        os.close(root)
        raise
    return root


def pivot(root_fd: int) -> None:
    """Make ``root_fd`` the root of this mount namespace and detach the old one."""
    os.fchdir(root_fd)
    linux.pivot_root(".", ".")
    # The old root is now stacked on top of "."; detaching it leaves only the rootfs.
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")
