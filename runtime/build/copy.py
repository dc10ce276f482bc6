"""COPY and ADD: lay the copied files out in a staging dir that becomes the step's layer.

The staging dir plays the part of a container's upper dir: what it holds is written as a
deterministic layer tar by :func:`cellbox.runtime.commit.write_layer`. Docker's rules:

* a relative destination is relative to WORKDIR; a destination ending in ``/``, or one
  that is a directory in the image, receives the sources by their base names; several
  sources need such a directory (and a ``/`` at the end);
* a directory source has its *contents* copied, not itself;
* the destination is resolved in the image (:class:`.rootview.RootView`): a symlinked
  ``/usr/local`` leads where it leads in the image. Its existing parent directories are
  repeated in the layer with the image's owner and mode (overlayfs takes a directory's
  attributes from the top-most layer); missing ones are created ``root:root 0755``;
* files from the context belong to 0:0, files from ``--from`` keep their owner, and
  ``--chown``/``--chmod`` override both;
* ``ADD`` unpacks a local tar (plain, gzip, bzip2, xz or zstd) into the destination
  directory, through the store's safe layer applier: an archive in a build context is as
  untrusted as a layer from a registry.

The staging dir is only written through directory fds opened with
``RESOLVE_NO_SYMLINKS``, so a symlink one source copied in cannot redirect where another
source's files land.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import lzma
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .. import linux
from ..errors import BuildError, LayerError
from ..layers import ApplyOptions, apply_layer
from .context import Entry, TreeSource
from .rootview import RootView

__all__ = ["CopyRequest", "InlineSource", "archive_kind", "stage_copy"]

_NO_LINKS = linux.RESOLVE_BENEATH | linux.RESOLVE_NO_SYMLINKS | linux.RESOLVE_NO_MAGICLINKS
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}


@dataclass(frozen=True)
class CopyRequest:
    """One COPY or ADD, with its arguments substituted and its sources found."""

    sources: Sequence[TreeSource]
    dest: str  # absolute (WORKDIR applied), a trailing "/" kept
    owner: tuple[int, int] | None  # --chown, resolved to ids
    chmod: int | None  # --chmod
    keep_owner: bool  # --from: files keep their uid/gid
    unpack: bool  # ADD: local archives are unpacked
    what: str  # "COPY" or "ADD", for messages


class InlineSource:
    """A file made from a heredoc (``COPY <<EOF /etc/motd``)."""

    is_dir = False

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data

    def entries(self) -> Iterator[Entry]:
        yield Entry("", "file", 0o644, 0, 0, len(self.data))

    def open(self, entry: Entry) -> BinaryIO:
        return io.BytesIO(self.data)


def archive_kind(head: bytes) -> str | None:
    """``plain``, ``gzip``, ``bzip2``, ``xz`` or ``zstd`` if ``head`` starts a tar, else None."""
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            block = _decompress_head(kind, head)
            return kind if block is not None and _tar_header(block) else None
    return "plain" if _tar_header(head[:512]) else None


def _decompress_head(kind: str, head: bytes) -> bytes | None:
    try:
        if kind == "gzip":
            import zlib

            return zlib.decompressobj(31).decompress(head, 512)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(head, 512)
        if kind == "xz":
            return lzma.LZMADecompressor().decompress(head, 512)
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(head)[:512]
    except Exception:  # any malformed stream: not an archive, copy it as a file
        return None


def _tar_header(block: bytes) -> bool:
    """Whether ``block`` is a tar header with a valid checksum."""
    if len(block) < 512 or not block[:100].strip(b"\0"):
        return False
    try:
        stored = int(block[148:156].strip(b"\0 ") or b"-1", 8)
    except ValueError:
        return False
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    return stored == computed


# ---------------------------------------------------------------------------- staging

class _Staging:
    """Writes into the staging dir through dir fds that never follow a symlink."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd = os.open(root, _DIR_FLAGS | os.O_CLOEXEC)
        self.made: set[str] = set()  # real paths created so far

    def close(self) -> None:
        os.close(self.fd)

    @contextlib.contextmanager
    def parent(self, real: str) -> Iterator[tuple[int, str]]:
        """(fd of the parent dir, base name) of the absolute ``real`` path."""
        parent, name = posixpath.split(real)
        try:
            fd = linux.openat2(self.fd, parent.lstrip("/") or ".", os.O_RDONLY | os.O_DIRECTORY,
                               resolve=_NO_LINKS)
        except OSError as exc:
            raise BuildError(
                f"cannot copy to {real}: {parent} is not a directory here (a symlink or a file "
                "copied by this same instruction is in the way)"
            ) from exc
        try:
            yield fd, name
        finally:
            os.close(fd)

    def _clear(self, fd: int, name: str, *, keep_dir: bool) -> bool:
        """Remove what is at ``name``; a directory stays if ``keep_dir``. True if it stayed."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)
        return False

    def mkdir(self, real: str, mode: int, uid: int, gid: int) -> None:
        with self.parent(real) as (fd, name):
            if not self._clear(fd, name, keep_dir=True):
                os.mkdir(name, 0o700, dir_fd=fd)
            self._own(fd, name, mode, uid, gid)
        self.made.add(real)

    def write(self, real: str, source: BinaryIO, mode: int, uid: int, gid: int) -> None:
        with self.parent(real) as (fd, name):
            self._clear(fd, name, keep_dir=False)
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o600, dir_fd=fd)
            with open(out, "wb") as f:
                shutil.copyfileobj(source, f, 1 << 20)
            self._own(fd, name, mode, uid, gid)
        self.made.add(real)

    def symlink(self, real: str, target: str, uid: int, gid: int) -> None:
        with self.parent(real) as (fd, name):
            self._clear(fd, name, keep_dir=False)
            os.symlink(target, name, dir_fd=fd)
            with contextlib.suppress(PermissionError):
                os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
        self.made.add(real)

    @staticmethod
    def _own(fd: int, name: str, mode: int, uid: int, gid: int) -> None:
        try:
            os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
        except PermissionError:
            if os.geteuid() == 0:
                raise
        # after chown, which clears setuid/setgid
        os.chmod(name, mode, dir_fd=fd, follow_symlinks=False)


def _ensure_parents(staging: _Staging, view: RootView, real: str) -> None:
    """Repeat the image's dirs above ``real`` in the staging dir (or create them)."""
    parts = [p for p in real.split("/") if p]
    path = ""
    for part in parts[:-1]:
        path = f"{path}/{part}"
        if path in staging.made:
            continue
        node = view.resolve(path, follow=False).node
        if node is None:
            staging.mkdir(path, 0o755, 0, 0)
        elif node.is_dir:
            staging.mkdir(path, stat.S_IMODE(node.st.st_mode), node.st.st_uid, node.st.st_gid)
        else:
            raise BuildError(f"cannot copy to {real}: {path} is not a directory in the image")


def _copy_tree(staging: _Staging, source: TreeSource, target: str, request: CopyRequest,
               *, existing_dir: bool) -> None:
    for entry in source.entries():
        real = posixpath.join(target, entry.path) if entry.path else target
        if request.owner is not None:
            uid, gid = request.owner
        elif request.keep_owner:
            uid, gid = entry.uid, entry.gid
        else:
            uid = gid = 0
        mode = entry.mode if request.chmod is None else request.chmod
        if entry.kind == "dir":
            # An existing destination dir keeps the image's owner and mode.
            keep = not entry.path and existing_dir
            if keep:
                continue
            staging.mkdir(real, mode, uid, gid)
        elif entry.kind == "file":
            with source.open(entry) as f:
                staging.write(real, f, mode, uid, gid)
        else:
            staging.symlink(real, entry.linkname, uid, gid)


def _archive(source: TreeSource) -> str | None:
    """The compression of a file source that is a tar archive; None for anything else."""
    if source.is_dir:
        return None
    entries = list(source.entries())
    if len(entries) != 1 or entries[0].kind != "file":
        return None
    with source.open(entries[0]) as f:
        return archive_kind(f.read(4096))


def _unpack(staging: _Staging, source: TreeSource, kind: str, target: str,
            options: ApplyOptions) -> None:
    """Unpack the archive ``source`` into the directory ``target`` of the staging dir."""
    entry = next(iter(source.entries()))
    scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=staging.root.parent))
    try:
        with source.open(entry) as raw, contextlib.ExitStack() as stack:
            stream: BinaryIO | bz2.BZ2File | lzma.LZMAFile = raw
            if kind == "bzip2":
                stream = stack.enter_context(bz2.BZ2File(raw))
            elif kind == "xz":
                stream = stack.enter_context(lzma.LZMAFile(raw))
            try:
                apply_layer(stream, scratch / "tree", options)  # type: ignore[arg-type]
            except LayerError as exc:
                raise BuildError(f"ADD {source.name}: the archive was refused: {exc}") from exc
        _merge(staging, scratch / "tree", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _merge(staging: _Staging, tree: Path, target: str) -> None:
    """Move an unpacked tree into the staging dir at ``target`` (a directory)."""
    src = os.open(tree, _DIR_FLAGS | os.O_CLOEXEC)
    try:
        with staging.parent(posixpath.join(target, "x")) as (dst, _):
            _merge_fds(src, dst)
    finally:
        os.close(src)


def _merge_fds(src: int, dst: int) -> None:
    for name in sorted(os.listdir(src)):
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        try:
            there = os.stat(name, dir_fd=dst, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if there is not None and stat.S_ISDIR(there.st_mode) and stat.S_ISDIR(st.st_mode):
            sub_src = os.open(name, _DIR_FLAGS | os.O_CLOEXEC, dir_fd=src)
            sub_dst = os.open(name, _DIR_FLAGS | os.O_CLOEXEC, dir_fd=dst)
            try:
                _merge_fds(sub_src, sub_dst)
            finally:
                os.close(sub_src)
                os.close(sub_dst)
            continue
        if there is not None:
            if stat.S_ISDIR(there.st_mode):
                shutil.rmtree(name, dir_fd=dst)
            else:
                os.unlink(name, dir_fd=dst)
        os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)


def stage_copy(staging_dir: Path, view: RootView, request: CopyRequest,
               options: ApplyOptions) -> None:
    """Lay out ``request`` in ``staging_dir`` (empty) over the image seen by ``view``."""
    dest = request.dest
    several = len(request.sources) > 1
    wants_dir = dest.endswith("/") or dest.endswith("/.")
    if several and not wants_dir:
        raise BuildError(
            f"{request.what} with more than one source needs a directory as destination, "
            f"written with a / at the end: {dest.rstrip('/')}/"
        )
    resolved = view.resolve(dest, follow=True)
    dest_is_dir = resolved.node is not None and resolved.node.is_dir
    if resolved.node is not None and not dest_is_dir and wants_dir:
        raise BuildError(f"{request.what}: {dest} is not a directory in the image")
    into = dest_is_dir or wants_dir or several
    staging = _Staging(staging_dir)
    try:
        for source in request.sources:
            kind = _archive(source) if request.unpack else None
            if kind is not None:
                # an archive is unpacked into the destination, which is a directory
                _ensure_parents(staging, view, posixpath.join(resolved.real, "x"))
                _unpack(staging, source, kind, resolved.real, options)
                continue
            if source.is_dir or not into:
                target, existing = resolved.real, dest_is_dir
            else:
                target = posixpath.join(resolved.real, source.name)
                node = view.resolve(target, follow=False).node
                existing = node is not None and node.is_dir
            # an existing destination dir is repeated with the image's owner and mode
            _ensure_parents(staging, view, posixpath.join(target, "x") if existing else target)
            _copy_tree(staging, source, target, request, existing_dir=existing)
    except OSError as exc:
        raise BuildError(f"{request.what} to {dest}: {exc}") from exc
    finally:
        staging.close()
