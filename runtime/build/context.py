"""The build context: the directory COPY and ADD read from, minus what the ignore file says.

The context is untrusted input like an image: a symlink in it may point anywhere. So it
is only ever read through a directory fd of its root: a source named by COPY is opened with
``openat2(RESOLVE_IN_ROOT)`` (its symlinks, absolute or not, resolve inside the context,
as BuildKit does), and everything under it with ``RESOLVE_NO_SYMLINKS`` (symlinks inside a
copied directory are copied as symlinks, never followed). Paths that leave the context
(``COPY ../x``) are refused, and so is a source the ignore file leaves out.

The ignore file is ``.containerignore`` in the context root, else ``.dockerignore``
(patterns: :mod:`.ignore`). Sources may be globs (``*.txt``, ``src/*/main.py``: Go's
``filepath.Match``, where ``*`` also matches names starting with a dot).

:meth:`ContextSource.digest` is what the build cache keys COPY and ADD on: names, kinds,
permission bits, sizes, link targets and the sha256 of every file's content — never
mtimes, so touching a file does not invalidate the cache, changing a byte does.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from .. import linux
from ..errors import BuildError
from .ignore import IgnoreRules

__all__ = [
    "IGNORE_FILES",
    "BuildContext",
    "ContextSource",
    "Entry",
    "TreeSource",
    "entry_of",
    "glob_component",
    "has_glob",
]

IGNORE_FILES = (".containerignore", ".dockerignore")
_MAX_IGNORE_FILE = 1 << 20
_GLOB = re.compile(r"(?<!\\)[*?\[]")
_IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
_NO_LINKS = linux.RESOLVE_BENEATH | linux.RESOLVE_NO_SYMLINKS | linux.RESOLVE_NO_MAGICLINKS
_READ_CHUNK = 1 << 20

Kind = Literal["dir", "file", "symlink"]


@dataclass(frozen=True)
class Entry:
    """One thing to copy, relative to its source ("" is the source itself)."""

    path: str
    kind: Kind
    mode: int  # permission bits, setuid/setgid/sticky included
    uid: int
    gid: int
    size: int = 0
    linkname: str = ""


class TreeSource(Protocol):
    """A file or directory tree COPY can read: from the context, or from a stage's files."""

    name: str  # the base name it is copied under into a directory
    is_dir: bool  # a directory: its contents are copied

    def entries(self) -> Iterator[Entry]:
        """The source itself, then (for a directory) everything under it, parents first."""
        ...

    def open(self, entry: Entry) -> BinaryIO:
        """A regular file entry's content."""
        ...


def has_glob(path: str) -> bool:
    """Whether ``path`` has an unescaped wildcard (``*``, ``?``, ``[``)."""
    return _GLOB.search(path) is not None


def glob_component(pattern: str) -> re.Pattern[str]:
    """Go's ``filepath.Match`` for one path component, as a regex (``[^...]`` negates)."""
    out = []
    pos = 0
    while pos < len(pattern):
        ch = pattern[pos]
        pos += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and pos < len(pattern):
            out.append(re.escape(pattern[pos]))
            pos += 1
        elif ch == "[":
            end = pattern.find("]", pos + 1)
            if end < 0:
                raise BuildError(f"bad wildcard {pattern!r}: '[' is never closed")
            body = pattern[pos:end]
            negate = body.startswith("^")  # Go's negation; "!" is an ordinary character
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            pos = end + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


class BuildContext:
    """A context directory, opened once. Use as a context manager, or :meth:`close`."""

    def __init__(self, root: Path, *, ignore: IgnoreRules | None = None) -> None:
        self.root = Path(root)
        try:
            self.fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise BuildError(
                f"cannot open the build context {self.root}: {exc.strerror}; give an "
                "existing directory"
            ) from exc
        self.real_root = os.readlink(f"/proc/self/fd/{self.fd}")
        self.ignore_file = ""
        if ignore is None:
            ignore = self._read_ignore()
        self.ignore = ignore

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_ignore(self) -> IgnoreRules:
        for name in IGNORE_FILES:
            try:
                fd = linux.openat2(self.fd, name, os.O_RDONLY | os.O_NOFOLLOW, resolve=_NO_LINKS)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ELOOP):
                    continue
                raise BuildError(f"cannot read {self.root / name}: {exc.strerror}") from exc
            with open(fd, "rb") as f:
                data = f.read(_MAX_IGNORE_FILE + 1)
            if len(data) > _MAX_IGNORE_FILE:
                raise BuildError(f"{self.root / name} is over 1 MiB; is it really an ignore file?")
            self.ignore_file = name
            return IgnoreRules.parse(data.decode("utf-8", "replace"), filename=name)
        return IgnoreRules()

    # -- sources --------------------------------------------------------------------------

    def sources(self, text: str) -> list[ContextSource]:
        """What the COPY source ``text`` names: one path, or every match of a glob."""
        rel = posixpath.normpath(text.lstrip("/") or ".")
        if rel == ".." or rel.startswith("../"):
            raise BuildError(f"{text}: the path is outside the build context {self.root}")
        if not has_glob(rel):
            if self.ignore.ignored(rel):
                raise BuildError(
                    f"{text}: it is excluded from the build context by {self.ignore_file}"
                )
            return [self._source(rel, text)]
        found = [self._source(path, text) for path in self._glob(rel)]
        if not found:
            raise BuildError(f"{text}: no file in the build context {self.root} matches")
        return found

    def _glob(self, pattern: str) -> list[str]:
        current = [""]
        for part in pattern.split("/"):
            if part in ("", "."):
                continue
            if not has_glob(part):
                current = [posixpath.join(c, part) for c in current]
                continue
            regex = glob_component(part)
            matched = []
            for directory in current:
                for name in self._listdir(directory):
                    path = posixpath.join(directory, name)
                    if regex.match(name) and not self.ignore.ignored(path):
                        matched.append(path)
            current = matched
        return sorted(path for path in current if self._exists(path))

    def _exists(self, rel: str) -> bool:
        try:
            os.close(linux.openat2(self.fd, rel, os.O_PATH, resolve=_IN_ROOT))
        except OSError:
            return False
        return True

    def _listdir(self, rel: str) -> list[str]:
        try:
            fd = linux.openat2(self.fd, rel or ".", os.O_RDONLY | os.O_DIRECTORY,
                               resolve=_IN_ROOT)
        except OSError:
            return []
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def _source(self, rel: str, text: str) -> ContextSource:
        try:
            fd = linux.openat2(self.fd, rel, os.O_PATH, resolve=_IN_ROOT)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise BuildError(
                    f"{text}: no such file or directory in the build context {self.root}"
                ) from None
            raise BuildError(f"{text}: cannot open it in the build context: {exc}") from exc
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
            st = os.fstat(fd)
        finally:
            os.close(fd)
        inside = os.path.relpath(real, self.real_root)
        if inside == ".." or inside.startswith("../"):
            raise BuildError(f"{text}: it resolves outside the build context")
        inside = "" if inside == "." else inside
        if inside and self.ignore.ignored(inside):
            raise BuildError(
                f"{text}: it leads to {inside}, which {self.ignore_file} excludes from the "
                "build context"
            )
        name = posixpath.basename(rel) if rel != "." else ""
        return ContextSource(self, inside, name, stat.S_ISDIR(st.st_mode))


class ContextSource:
    """One COPY source in the context: a file or a directory (its contents are copied)."""

    def __init__(self, context: BuildContext, rel: str, name: str, is_dir: bool) -> None:
        self.context = context
        self.rel = rel  # the real path inside the context ("" for the root)
        self.name = name
        self.is_dir = is_dir

    def _open(self, path: str, flags: int) -> int:
        full = posixpath.join(self.rel, path) if path else (self.rel or ".")
        try:
            return linux.openat2(self.context.fd, full, flags | os.O_NOFOLLOW,
                                 resolve=_NO_LINKS)
        except OSError as exc:
            raise BuildError(
                f"cannot read {full} in the build context: {exc.strerror}; was it changed "
                "during the build?"
            ) from exc

    def open(self, entry: Entry) -> BinaryIO:
        fd = self._open(entry.path, os.O_RDONLY)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise BuildError(f"{entry.path} in the build context changed during the build")
        return open(fd, "rb")

    def entries(self) -> Iterator[Entry]:
        fd = self._open("", os.O_PATH)
        try:
            st = os.fstat(fd)
            if not stat.S_ISDIR(st.st_mode):
                entry = entry_of("", st, "")
                if entry is not None:
                    yield entry
                return
        finally:
            os.close(fd)
        yield from self._walk("", hidden=False)

    def _walk(self, path: str, *, hidden: bool) -> list[Entry]:
        """The dir at ``path`` and what is under it. A ``hidden`` dir (ignored itself) is
        only walked when a "!" pattern may bring back something in it, and only listed
        when it did."""
        ignore = self.context.ignore
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            directory = entry_of(path, os.fstat(fd), "")
            assert directory is not None
            children = []
            for name in sorted(os.listdir(fd), key=os.fsencode):
                child = posixpath.join(path, name) if path else name
                try:
                    child_st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                link = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(child_st.st_mode) else ""
                children.append((child, child_st, link))
        finally:
            os.close(fd)
        kept: list[Entry] = []
        for child, child_st, link in children:
            ignored = ignore.ignored(posixpath.join(self.rel, child))
            if stat.S_ISDIR(child_st.st_mode):
                if not ignored or ignore.has_exclusions:
                    kept += self._walk(child, hidden=ignored)
            elif not ignored and (entry := entry_of(child, child_st, link)) is not None:
                kept.append(entry)
        if hidden and not kept:
            return []
        return [directory, *kept]

    def digest(self) -> str:
        """sha256 over names, kinds, modes, sizes, link targets and contents (not mtimes)."""
        total = hashlib.sha256()
        for entry in self.entries():
            header = f"{entry.path}\0{entry.kind}\0{entry.mode:o}\0{entry.size}\0{entry.linkname}"
            total.update(header.encode("utf-8", "surrogateescape") + b"\0")
            if entry.kind == "file":
                with self.open(entry) as f:
                    content = hashlib.sha256()
                    while chunk := f.read(_READ_CHUNK):
                        content.update(chunk)
                total.update(content.digest())
        return "sha256:" + total.hexdigest()


def entry_of(path: str, st: os.stat_result, link: str) -> Entry | None:
    """The Entry of a stat result; None for what a layer does not hold (sockets, fifos...)."""
    mode = st.st_mode
    perms = stat.S_IMODE(mode)
    if stat.S_ISDIR(mode):
        return Entry(path, "dir", perms, st.st_uid, st.st_gid)
    if stat.S_ISREG(mode):
        return Entry(path, "file", perms, st.st_uid, st.st_gid, st.st_size)
    if stat.S_ISLNK(mode):
        return Entry(path, "symlink", perms, st.st_uid, st.st_gid, linkname=link)
    return None

