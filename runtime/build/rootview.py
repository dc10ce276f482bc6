"""An image's file system read straight from its layer dirs, the way overlayfs merges them.

COPY has to know what is already in the image (is the destination a directory? where does
``/usr/local`` really lead?), ``--chown=name`` reads the image's /etc/passwd, and
``COPY --from=stage`` reads a stage's files. Mounting an overlay for that would need root
and a mount namespace; reading the layer dirs (top first) directly needs neither:

* a name is looked up top-down in the layers where its parent is a directory; the first
  layer that has it decides; a whiteout (a character device 0:0) hides it;
* a directory merges the layers below it until one where it is opaque
  (``trusted.overlay.opaque=y``, or ``user.overlay.opaque=y`` for rootless stores) or not a
  directory;
* symlinks are followed inside the image's root, never out of it (absolute targets and
  ``..`` stop at the root), at most 40 of them, like the kernel.

Paths on the host are only ever built from components already seen to be real
directories in that layer, so a symlink in a layer is never followed on the host.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import BuildError
from .context import Entry, entry_of

__all__ = ["Node", "Resolved", "RootView", "StageSource"]

_MAX_SYMLINKS = 40
_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")


@dataclass(frozen=True)
class Node:
    """Something that exists in the merged view."""

    real: str  # absolute path with no symlink in it ("/" for the root)
    st: os.stat_result  # lstat of the top-most copy
    stack: tuple[int, ...]  # layers (index, top first) holding it; more than one only for dirs

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)


@dataclass(frozen=True)
class Resolved:
    """A path resolved as far as it exists: ``node`` is None when it does not (yet)."""

    real: str  # the path with every existing symlink followed
    node: Node | None


def _whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    for name in _OPAQUE:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class RootView:
    """The merged file system of ``lower_dirs`` (top first, as overlayfs takes them)."""

    def __init__(self, lower_dirs: Sequence[Path | str]) -> None:
        self.layers = [os.fspath(d) for d in lower_dirs]
        stack: list[int] = []
        for index, layer in enumerate(self.layers):
            stack.append(index)
            if _opaque(layer):
                break
        root_st = os.lstat(self.layers[0]) if self.layers else os.stat_result((0o40755,) + (0,) * 9)
        self.root = Node("/", root_st, tuple(stack))

    def _host(self, layer: int, real: str) -> str:
        return self.layers[layer] + real if real != "/" else self.layers[layer]

    def child(self, parent: Node, name: str) -> Node | None:
        """``name`` in the directory ``parent``, without following a symlink."""
        real = posixpath.join(parent.real, name)
        for position, layer in enumerate(parent.stack):
            host = self._host(layer, real)
            st = _lstat(host)
            if st is None:
                continue
            if _whiteout(st):
                return None
            if not stat.S_ISDIR(st.st_mode):
                return Node(real, st, (layer,))
            stack = [layer]
            if not _opaque(host):
                for lower in parent.stack[position + 1 :]:
                    lower_host = self._host(lower, real)
                    lower_st = _lstat(lower_host)
                    if lower_st is None:
                        continue
                    if _whiteout(lower_st) or not stat.S_ISDIR(lower_st.st_mode):
                        break
                    stack.append(lower)
                    if _opaque(lower_host):
                        break
            return Node(real, st, tuple(stack))
        return None

    def resolve(self, path: str, *, follow: bool = True) -> Resolved:
        """Follow ``path`` from the root; the last component's symlink only if ``follow``."""
        pending = [p for p in path.split("/") if p and p != "."]
        trail = [self.root]
        hops = 0
        while pending:
            name = pending.pop(0)
            current = trail[-1]
            if name == "..":
                if len(trail) > 1:
                    trail.pop()
                continue
            if not current.is_dir:
                raise BuildError(f"{path}: {current.real} is not a directory in the image")
            node = self.child(current, name)
            if node is None:
                rest = [name, *pending]
                if ".." in rest:
                    # "missing/../x" is "x": resolve what is left once the ".." cancels out
                    pending = posixpath.normpath("/".join(rest)).split("/")
                    continue
                return Resolved(posixpath.join(current.real, *rest), None)
            if node.is_symlink and (pending or follow):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise BuildError(f"{path}: too many levels of symbolic links in the image")
                target = os.readlink(self._host(node.stack[0], node.real))
                if target.startswith("/"):
                    trail = [self.root]
                pending = [p for p in target.split("/") if p and p != "."] + pending
                continue
            trail.append(node)
        return Resolved(trail[-1].real, trail[-1])

    def listdir(self, node: Node) -> list[str]:
        """The names in a directory, merged over its layers, sorted."""
        seen: set[str] = set()
        hidden: set[str] = set()
        for layer in node.stack:
            host = self._host(layer, node.real)
            try:
                names = os.listdir(host)
            except OSError:
                continue
            for name in names:
                if name in seen or name in hidden:
                    continue
                st = _lstat(os.path.join(host, name))
                if st is None:
                    continue
                if _whiteout(st):
                    hidden.add(name)
                else:
                    seen.add(name)
        return sorted(seen, key=os.fsencode)

    def open(self, node: Node) -> BinaryIO:
        """A regular file's content (opened without following anything)."""
        try:
            fd = os.open(self._host(node.stack[0], node.real),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise BuildError(f"cannot read {node.real} in the image: {exc.strerror}") from exc
        return open(fd, "rb")

    def readlink(self, node: Node) -> str:
        return os.readlink(self._host(node.stack[0], node.real))

    def read_text(self, path: str, *, limit: int = 4 << 20) -> str | None:
        """A small text file of the image (``/etc/passwd``), None if it is not there."""
        try:
            node = self.resolve(path).node
        except BuildError:
            return None
        if node is None or not stat.S_ISREG(node.st.st_mode):
            return None
        with self.open(node) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise BuildError(f"{path} in the image is over {limit >> 20} MiB")
        return data.decode("utf-8", "replace")


class StageSource:
    """A COPY --from source: a file or directory in a stage's (or an image's) file system."""

    def __init__(self, view: RootView, node: Node, name: str) -> None:
        self.view = view
        self.node = node
        self.name = name
        self.is_dir = node.is_dir

    def open(self, entry: Entry) -> BinaryIO:
        resolved = self.view.resolve(posixpath.join(self.node.real, entry.path), follow=False)
        if resolved.node is None:
            raise BuildError(f"{entry.path} vanished from the image")
        return self.view.open(resolved.node)

    def entries(self) -> Iterator[Entry]:
        yield from self._walk(self.node, "")

    def _walk(self, node: Node, path: str) -> Iterator[Entry]:
        link = self.view.readlink(node) if node.is_symlink else ""
        entry = entry_of(path, node.st, link)
        if entry is None:
            return
        yield entry
        if not node.is_dir:
            return
        for name in self.view.listdir(node):
            child = self.view.child(node, name)
            if child is not None:
                yield from self._walk(child, posixpath.join(path, name) if path else name)

