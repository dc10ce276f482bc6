"""Apply one layer tar to a fresh directory, safely: the tar is hostile until proven not.

``tarfile`` is used only to parse headers; nothing here calls ``extract``. Every entry's
parent directory is opened with ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`` on the layer root, and the entry itself is
created with ``*at`` calls on that directory fd under a single-component name with
``O_NOFOLLOW``/``O_EXCL``. So:

- ``..`` components and absolute names are refused (:class:`UnsafeLayer`), as is a path
  through a symlink (even one that would stay inside: a layer that writes through its own
  symlink is up to no good), a hardlink whose target is outside the layer or not yet in
  it, a character device 0:0 (a whiteout in disguise), and anything over the caps;
- whiteouts become what overlayfs reads: ``.wh.NAME`` a character device 0:0 at NAME,
  ``.wh..wh..opq`` the ``trusted.overlay.opaque=y`` xattr on its directory
  (``user.overlay.opaque`` rootless, for an overlay mounted with ``userxattr``);
- a duplicate entry replaces the earlier one (later wins, like Docker), except that a
  directory over a directory keeps the contents;
- ownership is applied as root only; setuid/setgid bits are kept only as root; xattrs only
  ``user.*`` (never ``user.overlay.*``) and ``security.capability`` — never ``trusted.*``
  from an image; device nodes only as root (skipped rootless); mtimes kept (directories'
  at the end, since creating their entries changes them).

The directory is a layer of its own (overlayfs stacks it), so a layer never looks into
another one and layers of an image can be applied in parallel.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from . import linux
from .errors import LayerError, SyscallError, UnsafeLayer
from .layerio import LayerReader, iter_file

__all__ = [
    "MAX_LAYER_BYTES",
    "MAX_LAYER_ENTRIES",
    "MAX_PATH_BYTES",
    "ApplyOptions",
    "LayerStats",
    "apply_layer",
    "clean_path",
]

MAX_LAYER_BYTES = 16 << 30
MAX_LAYER_ENTRIES = 1_000_000
MAX_PATH_BYTES = 4096  # PATH_MAX: the kernel would refuse a longer one anyway
_MAX_NAME_BYTES = 255  # NAME_MAX
_MAX_EXT_HEADER = 1 << 20  # one PAX or GNU long-name header
_MAX_GLOBAL_PAX = 1 << 20  # all global PAX headers together
_MAX_EXT_CHAIN = 8  # extension headers in a row before a real entry
_MAX_XATTR_VALUE = 64 << 10
_MAX_ID = 0xFFFFFFFE  # (uid_t)-1 means "leave unchanged" to chown

WHITEOUT = b".wh."
OPAQUE = b".wh..wh..opq"
_RESOLVE = (
    linux.RESOLVE_IN_ROOT
    | linux.RESOLVE_NO_SYMLINKS
    | linux.RESOLVE_NO_MAGICLINKS
    | linux.RESOLVE_NO_XDEV
)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_XATTR_PREFIX = "SCHILY.xattr."


@dataclass(frozen=True)
class ApplyOptions:
    """How to apply a layer. ``rootless`` defaults to "not running as root"."""

    rootless: bool = False
    max_bytes: int = MAX_LAYER_BYTES
    max_entries: int = MAX_LAYER_ENTRIES

    @property
    def opaque_xattr(self) -> str:
        return "user.overlay.opaque" if self.rootless else "trusted.overlay.opaque"

    @classmethod
    def default(cls) -> ApplyOptions:
        return cls(rootless=os.geteuid() != 0)


@dataclass(frozen=True)
class LayerStats:
    """What a layer held: entries applied and the bytes of its regular files."""

    entries: int
    content_bytes: int
    skipped: tuple[str, ...] = ()


def clean_path(name: str) -> tuple[bytes, ...]:
    """The components of an entry name, or :class:`UnsafeLayer` if it is not a safe one.

    ``./a//b/`` → ``(b"a", b"b")``; ``.``, ``./`` → ``()`` (the layer root). Absolute
    names, ``..`` anywhere, NUL bytes and over-long names or components are refused.
    """
    raw = os.fsencode(name)
    if b"\0" in raw:
        raise UnsafeLayer(f"entry {name!r}: the name contains a NUL byte")
    if raw.startswith(b"/"):
        raise UnsafeLayer(f"entry {name!r}: absolute path (entries must be relative)")
    if len(raw) > MAX_PATH_BYTES:
        raise UnsafeLayer(
            f"entry {name[:60]!r}...: the path is {len(raw)} bytes, over {MAX_PATH_BYTES}"
        )
    parts = tuple(p for p in raw.split(b"/") if p and p != b".")
    for part in parts:
        if part == b"..":
            raise UnsafeLayer(f"entry {name!r}: '..' would leave the layer")
        if len(part) > _MAX_NAME_BYTES:
            raise UnsafeLayer(
                f"entry {name[:60]!r}...: a path component is over {_MAX_NAME_BYTES} bytes"
            )
    return parts


def _show(parts: tuple[bytes, ...]) -> str:
    return os.fsdecode(b"/".join(parts)) or "."


class _SafeTarInfo(tarfile.TarInfo):
    """TarInfo whose extension headers cannot make tarfile read unbounded data.

    tarfile reads a whole PAX or GNU long-name header into memory and recurses once per
    chained header; a hostile size or chain would exhaust memory or the stack.
    """

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        state: dict[str, int] = tarfile_.__dict__.setdefault(
            "_cellbox_ext", {"chain": 0, "global": 0}
        )
        if self.type in (tarfile.GNUTYPE_SPARSE,):
            raise UnsafeLayer(f"entry {self.name!r}: sparse files are not supported")
        if self.type in (
            tarfile.GNUTYPE_LONGNAME,
            tarfile.GNUTYPE_LONGLINK,
            tarfile.XHDTYPE,
            tarfile.XGLTYPE,
            tarfile.SOLARIS_XHDTYPE,
        ):
            if self.size > _MAX_EXT_HEADER:
                raise UnsafeLayer(
                    f"entry {self.name!r}: an extended header of {self.size} bytes "
                    f"(over {_MAX_EXT_HEADER})"
                )
            state["chain"] += 1
            if state["chain"] > _MAX_EXT_CHAIN:
                raise UnsafeLayer(f"entry {self.name!r}: too many extended headers in a row")
            if self.type == tarfile.XGLTYPE:
                state["global"] += self.size
                if state["global"] > _MAX_GLOBAL_PAX:
                    raise UnsafeLayer("global PAX headers over 1 MiB in total")
        else:
            state["chain"] = 0
        return super()._proc_member(tarfile_)  # type: ignore[misc]

    # GNU sparse files in PAX form: version 1.0 reads an unbounded map from the data.
    def _proc_gnusparse_00(self, *args: Any) -> None:
        raise UnsafeLayer(f"entry {self.name!r}: sparse files are not supported")

    _proc_gnusparse_01 = _proc_gnusparse_00
    _proc_gnusparse_10 = _proc_gnusparse_00


def _umask() -> int | None:
    """The process umask, read without changing it (os.umask would, racing threads)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _mtime_ns(info: tarfile.TarInfo) -> int:
    try:
        ns = int(float(info.mtime) * 1_000_000_000)
    except (ValueError, OverflowError):
        return 0
    return max(min(ns, (1 << 62)), -(1 << 62))


def _owner(info: tarfile.TarInfo, what: str) -> tuple[int, int]:
    uid, gid = info.uid, info.gid
    if not (0 <= uid <= _MAX_ID and 0 <= gid <= _MAX_ID):
        raise UnsafeLayer(f"entry {what!r}: owner {uid}:{gid} is out of range")
    return uid, gid


class _Applier:
    def __init__(self, reader: LayerReader, dest: Path, options: ApplyOptions) -> None:
        self.reader = reader
        self.options = options
        self.root = os.open(dest, _DIR_FLAGS)
        self.entries = 0
        self.content = 0
        self.skipped: list[str] = []
        self._cached: tuple[bytes, int] | None = None
        self._dirs: dict[bytes, tuple[int, int]] = {}  # path -> (mode, mtime ns)
        self._root_meta: tuple[int, int] | None = None
        # What a new inode gets without chown: ours, unless a setgid root dir hands its
        # group down (directories are made without setgid until the end, see finish()).
        root_st = os.fstat(self.root)
        gid = root_st.st_gid if root_st.st_mode & stat.S_ISGID else os.getegid()
        self._creator = (os.geteuid(), gid)
        self._umask = _umask()

    # -- parents ----------------------------------------------------------------------

    def close(self) -> None:
        self._forget()
        os.close(self.root)

    def _forget(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _parent(self, parts: tuple[bytes, ...], what: str, *, create: bool = True) -> int:
        """An fd of the directory that holds ``parts[-1]`` (borrowed: do not close)."""
        key = b"/".join(parts[:-1])
        if not key:
            return self.root
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        for part in parts[:-1]:
            if part.startswith(WHITEOUT):
                raise UnsafeLayer(f"entry {what!r}: a whiteout name used as a directory")
        try:
            fd = linux.openat2(self.root, key, _DIR_FLAGS, 0, _RESOLVE)
        except SyscallError as exc:
            if exc.errno == errno.ENOENT and create:
                fd = self._make_parents(parts[:-1], what)
            else:
                raise self._resolve_error(exc, what, self._culprit(parts[:-1])) from exc
        self._forget()
        self._cached = (key, fd)
        return fd

    def _make_parents(self, parts: tuple[bytes, ...], what: str) -> int:
        # A tar may omit parent directories; create them (0755, like Docker) walking one
        # component at a time with O_NOFOLLOW, so a symlink on the way is refused.
        fd = os.dup(self.root)
        try:
            for part in parts:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    self._count(what)
                except FileExistsError:
                    pass
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise self._resolve_error(exc, what, self._culprit(parts)) from exc
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _culprit(self, parts: tuple[bytes, ...]) -> tuple[str, bool]:
        """The first of ``parts`` that is not a directory, and whether it is a symlink."""
        for i in range(1, len(parts) + 1):
            try:
                st = os.stat(b"/".join(parts[:i]), dir_fd=self.root, follow_symlinks=False)
            except OSError:
                break
            if not stat.S_ISDIR(st.st_mode):
                return os.fsdecode(b"/".join(parts[:i])), stat.S_ISLNK(st.st_mode)
        return os.fsdecode(b"/".join(parts)), False

    @staticmethod
    def _resolve_error(exc: OSError, what: str, culprit: tuple[str, bool]) -> LayerError:
        parent, is_link = culprit
        if exc.errno == errno.ELOOP or is_link:
            return UnsafeLayer(f"entry {what!r}: its parent {parent!r} is a symlink")
        if exc.errno == errno.EXDEV:
            return UnsafeLayer(f"entry {what!r}: its path leaves the layer")
        if exc.errno == errno.ENOTDIR:
            return LayerError(f"entry {what!r}: its parent {parent!r} is not a directory")
        if exc.errno == errno.ENOENT:
            return UnsafeLayer(f"entry {what!r}: {parent!r} is not in this layer")
        return LayerError(f"entry {what!r}: cannot open {parent!r}: {exc.strerror}")

    def _clear(self, pfd: int, name: bytes, *, keep_dir: bool = False) -> bool:
        """Remove an earlier entry of this name; True when it is a directory to keep."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            # Any cached fd may be inside the tree that goes away.
            cached_is_pfd = self._cached is not None and self._cached[1] == pfd
            if not cached_is_pfd:
                self._forget()
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        return False

    def _count(self, what: str) -> None:
        self.entries += 1
        if self.entries > self.options.max_entries:
            raise UnsafeLayer(
                f"entry {what!r}: the layer has more than {self.options.max_entries} entries"
            )

    # -- entries ----------------------------------------------------------------------

    def apply(self, info: tarfile.TarInfo) -> None:
        what = info.name
        parts = clean_path(info.name)
        if not parts:
            if not info.isdir():
                raise UnsafeLayer(f"entry {what!r}: the layer root must be a directory")
            self._apply_root(info, what)
            return
        name = parts[-1]
        if name.startswith(WHITEOUT):
            self._whiteout(parts, what)
            return
        self._count(what)
        if info.isreg():
            self._file(parts, info, what)
        elif info.isdir():
            self._dir(parts, info, what)
        elif info.issym():
            self._symlink(parts, info, what)
        elif info.islnk():
            self._hardlink(parts, info, what)
        elif info.ischr() or info.isblk() or info.isfifo():
            self._special(parts, info, what)
        else:
            raise UnsafeLayer(f"entry {what!r}: unsupported tar entry type {info.type!r}")

    def _mode(self, info: tarfile.TarInfo) -> int:
        mode = info.mode & 0o7777
        if self.options.rootless:
            mode &= ~(stat.S_ISUID | stat.S_ISGID) | (stat.S_ISGID if info.isdir() else 0)
        return mode

    def _fd_meta(self, fd: int, info: tarfile.TarInfo, what: str) -> None:
        """Owner, then xattrs, on an open regular file or directory."""
        if not self.options.rootless:
            owner = _owner(info, what)
            if owner != self._creator:
                os.fchown(fd, *owner)
        for key, value in info.pax_headers.items():
            if key.startswith(_XATTR_PREFIX):
                self._xattr(fd, key[len(_XATTR_PREFIX) :], value, what)

    def _xattr(self, fd: int, attr: str, value: str, what: str) -> None:
        allowed = attr == "security.capability" or (
            attr.startswith("user.") and not attr.startswith("user.overlay.")
        )
        if not allowed:
            # trusted.*, security.selinux, system.* and overlay's own: never from an image
            self.skipped.append(f"{what}: xattr {attr}")
            return
        data = value.encode("utf-8", "surrogateescape")
        if len(data) > _MAX_XATTR_VALUE:
            raise UnsafeLayer(f"entry {what!r}: xattr {attr} is over {_MAX_XATTR_VALUE} bytes")
        try:
            os.setxattr(fd, attr, data)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                self.skipped.append(f"{what}: xattr {attr} ({exc.strerror})")
            else:
                raise

    def _file(self, parts: tuple[bytes, ...], info: tarfile.TarInfo, what: str) -> None:
        if info.sparse is not None:
            raise UnsafeLayer(f"entry {what!r}: sparse files are not supported")
        size = info.size
        if size < 0 or self.content + size > self.options.max_bytes:
            raise UnsafeLayer(
                f"entry {what!r}: {size} bytes would take the layer over its cap of "
                f"{self.options.max_bytes} bytes"
            )
        pfd = self._parent(parts, what)
        name = parts[-1]
        mode = self._mode(info)
        # Created with its final permissions when the umask cannot change them: one
        # fchmod less per file (setuid/setgid always go through fchmod, after fchown).
        exact = self._umask is not None and not mode & (0o7000 | self._umask)
        try:
            fd = os.open(name, _FILE_FLAGS, mode & 0o777, dir_fd=pfd)
        except FileExistsError:
            self._clear(pfd, name)
            fd = os.open(name, _FILE_FLAGS, mode & 0o777, dir_fd=pfd)
        try:
            self.reader.copy_to(fd, size)
            self.content += size
            self._fd_meta(fd, info, what)
            if not exact:
                os.fchmod(fd, mode)  # after chown, which clears setuid
            mtime = _mtime_ns(info)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)

    def _dir(self, parts: tuple[bytes, ...], info: tarfile.TarInfo, what: str) -> None:
        pfd = self._parent(parts, what)
        name = parts[-1]
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
        except FileExistsError:
            if not self._clear(pfd, name, keep_dir=True):
                os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            self._fd_meta(fd, info, what)
        except BaseException:
            os.close(fd)
            raise
        key = b"/".join(parts)
        self._dirs[key] = (self._mode(info), _mtime_ns(info))
        # The entries that follow are most likely this directory's.
        self._forget()
        self._cached = (key, fd)

    def _apply_root(self, info: tarfile.TarInfo, what: str) -> None:
        self._fd_meta(self.root, info, what)
        self._root_meta = (self._mode(info), _mtime_ns(info))

    def _symlink(self, parts: tuple[bytes, ...], info: tarfile.TarInfo, what: str) -> None:
        target = os.fsencode(info.linkname)
        if not target or b"\0" in target or len(target) >= MAX_PATH_BYTES:
            raise UnsafeLayer(f"entry {what!r}: bad symlink target {info.linkname[:80]!r}")
        pfd = self._parent(parts, what)
        name = parts[-1]
        try:
            os.symlink(target, name, dir_fd=pfd)
        except FileExistsError:
            self._clear(pfd, name)
            os.symlink(target, name, dir_fd=pfd)
        self._link_meta(pfd, name, info, what)

    def _link_meta(self, pfd: int, name: bytes, info: tarfile.TarInfo, what: str) -> None:
        if not self.options.rootless:
            owner = _owner(info, what)
            if owner != self._creator:
                os.chown(name, *owner, dir_fd=pfd, follow_symlinks=False)
        mtime = _mtime_ns(info)
        os.utime(name, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, parts: tuple[bytes, ...], info: tarfile.TarInfo, what: str) -> None:
        try:
            target = clean_path(info.linkname)
        except UnsafeLayer as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise UnsafeLayer(
                f"entry {what!r}: hardlink target {info.linkname!r} is refused: {reason}"
            ) from exc
        shown = _show(target)
        if not target or target[-1].startswith(WHITEOUT):
            raise UnsafeLayer(f"entry {what!r}: hardlink to {shown!r} is not allowed")
        if target == parts:
            raise UnsafeLayer(f"entry {what!r}: hardlink to itself")
        tkey = b"/".join(target[:-1])
        try:
            tfd = (
                os.dup(self.root)
                if not tkey
                else linux.openat2(self.root, tkey, _DIR_FLAGS, 0, _RESOLVE)
            )
        except SyscallError as exc:
            raise self._resolve_error(exc, what, self._culprit(target[:-1])) from exc
        try:
            try:
                st = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise UnsafeLayer(
                    f"entry {what!r}: hardlink target {shown!r} is not in this layer "
                    "(a hardlink may only point to a file the same layer made before it)"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeLayer(f"entry {what!r}: hardlink to the directory {shown!r}")
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                raise UnsafeLayer(f"entry {what!r}: hardlink to the whiteout {shown!r}")
            pfd = self._parent(parts, what)
            name = parts[-1]
            try:
                os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except FileExistsError:
                self._clear(pfd, name)
                pfd = self._parent(parts, what)
                os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _special(self, parts: tuple[bytes, ...], info: tarfile.TarInfo, what: str) -> None:
        if info.isfifo():
            kind = stat.S_IFIFO
            device = 0
        else:
            if info.ischr() and info.devmajor == 0 and info.devminor == 0:
                raise UnsafeLayer(f"entry {what!r}: a character device 0:0 (a whiteout)")
            if self.options.rootless:
                # Not created (as with rootless Docker): only root may make device nodes,
                # and a container gets a fresh /dev anyway.
                self.skipped.append(f"{what}: device node (rootless)")
                return
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            try:
                device = os.makedev(info.devmajor, info.devminor)
            except (ValueError, OverflowError) as exc:
                raise UnsafeLayer(f"entry {what!r}: bad device number") from exc
        pfd = self._parent(parts, what)
        name = parts[-1]
        try:
            os.mknod(name, kind | 0o600, device, dir_fd=pfd)
        except FileExistsError:
            self._clear(pfd, name)
            os.mknod(name, kind | 0o600, device, dir_fd=pfd)
        self._link_meta(pfd, name, info, what)
        # chmod of a node that must not be opened: through an O_PATH fd's /proc link.
        node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            os.chmod(f"/proc/self/fd/{node}", self._mode(info))
        finally:
            os.close(node)
        mtime = _mtime_ns(info)
        os.utime(name, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)

    def _whiteout(self, parts: tuple[bytes, ...], what: str) -> None:
        name = parts[-1]
        if name == OPAQUE:
            self._count(what)
            if len(parts) == 1:
                os.setxattr(self.root, self.options.opaque_xattr, b"y")
                return
            pfd = self._parent(parts, what)
            os.setxattr(pfd, self.options.opaque_xattr, b"y")
            return
        hidden = name[len(WHITEOUT) :]
        if not hidden or hidden in (b".", b"..") or hidden.startswith(WHITEOUT):
            raise UnsafeLayer(f"entry {what!r}: not a valid whiteout name")
        self._count(what)
        pfd = self._parent(parts, what)
        try:
            os.mknod(hidden, stat.S_IFCHR, 0, dir_fd=pfd)
        except FileExistsError:
            self._clear(pfd, hidden)
            os.mknod(hidden, stat.S_IFCHR, 0, dir_fd=pfd)

    # -- the end ----------------------------------------------------------------------

    def finish(self) -> None:
        """Directory modes and mtimes, deepest first, then the root's."""
        self._forget()
        for key in sorted(self._dirs, key=lambda k: k.count(b"/"), reverse=True):
            mode, mtime = self._dirs[key]
            try:
                fd = linux.openat2(self.root, key, _DIR_FLAGS, 0, _RESOLVE)
            except SyscallError:
                continue  # replaced by a later entry of another type
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
        if self._root_meta is not None:
            mode, mtime = self._root_meta
            os.fchmod(self.root, mode)
            os.utime(self.root, ns=(mtime, mtime))


def _members(stream: LayerReader) -> Iterator[tarfile.TarInfo]:
    """The tar's entries, parsed by tarfile, one at a time (nothing kept)."""
    try:
        tar = tarfile.TarFile(
            fileobj=stream,  # type: ignore[arg-type]
            mode="r",
            tarinfo=_SafeTarInfo,
            encoding="utf-8",
            errors="surrogateescape",
        )
    except tarfile.ReadError:
        if stream.at_eof() and stream.tell() == 0:
            return  # an empty stream is an empty layer (Go's tar reader agrees)
        raise
    while True:
        try:
            info = tar.next()
        except tarfile.ReadError:
            # Go's tar writer used without Close() (umoci does this) ends the stream
            # right after the last file's data: no padding, no end-of-archive blocks.
            if stream.at_eof():
                return
            raise
        if info is None:
            return
        # TarFile keeps every member it read: memory would grow with the layer.
        tar.members.clear()  # type: ignore[attr-defined]
        yield info


def apply_layer(
    stream: LayerReader | BinaryIO,
    dest: Path,
    options: ApplyOptions | None = None,
) -> LayerStats:
    """Apply the layer tar in ``stream`` to the directory ``dest`` (empty or missing).

    ``stream`` is a :class:`LayerReader` (already decompressing) or any binary file of a
    plain, gzip or zstd layer. The stream is read to its end, so a reader's digests are
    ready afterwards. Raises :class:`UnsafeLayer` naming the entry that tried to escape or
    exceed a cap, :class:`LayerError` for a corrupt tar; ``dest`` may then hold part of
    the layer, and the caller throws it away.
    """
    options = options or ApplyOptions.default()
    if not isinstance(stream, LayerReader):
        stream = LayerReader(iter_file(stream), max_bytes=options.max_bytes)
    dest.mkdir(mode=0o755, exist_ok=True)
    if any(dest.iterdir()):
        raise LayerError(f"cannot apply a layer to {dest}: the directory is not empty")
    applier = _Applier(stream, dest, options)
    current = "(first header)"
    try:
        try:
            for info in _members(stream):
                current = info.name
                applier.apply(info)
            current = "(end of archive)"
            garbage = stream.drain()
        except UnsafeLayer as exc:
            if current in str(exc) or current.startswith("("):
                raise
            raise UnsafeLayer(f"entry {current!r}: {exc}") from exc
        except (tarfile.TarError, EOFError) as exc:
            raise LayerError(f"the layer is not a valid tar (at {current!r}): {exc}") from exc
        except RecursionError as exc:
            raise UnsafeLayer(f"entry {current!r}: nested tar headers") from exc
        except LayerError:
            raise
        except OSError as exc:
            raise LayerError(
                f"cannot apply entry {current!r} of the layer in {dest}: {exc.strerror or exc}"
            ) from exc
        except (ValueError, OverflowError) as exc:
            raise UnsafeLayer(f"entry {current!r}: {exc}") from exc
        if garbage:
            raise LayerError(
                f"the layer has data after its end-of-archive marker ({garbage[:16]!r}...): "
                "a corrupt or tampered tar"
            )
        applier.finish()
    finally:
        applier.close()
    return LayerStats(applier.entries, applier.content, tuple(applier.skipped))
