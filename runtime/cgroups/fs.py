"""The file operations a cgroup file system needs, each one or two system calls.

An interface file is written with a single ``write(2)``: the kernel parses each write as a
whole, so a value must never be split. Files are opened with ``O_CLOEXEC`` and never with
``O_CREAT``: a missing file means a missing controller or kernel feature, not a file for us
to make (``O_TRUNC`` is harmless on cgroupfs and keeps fixture trees of plain files honest).
Paths are strings (or any path-like): this is on the container start path, and pathlib
costs ≈ 14 ms to import.
"""

from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..paths import StrPath

__all__ = [
    "makedirs",
    "mkdir",
    "read_optional",
    "read_pids",
    "read_text",
    "rmdir",
    "write_text",
]

def read_text(path: StrPath) -> str:
    """The whole content of ``path`` (cgroup files are small; cgroup.procs may not be)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def read_optional(path: StrPath) -> str | None:
    """Like :func:`read_text`, but None when the file does not exist (feature absent)."""
    try:
        return read_text(path)
    except FileNotFoundError:
        return None


def write_text(path: StrPath, value: str) -> None:
    """Write ``value`` with one ``write(2)``."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_pids(path: StrPath) -> list[int]:
    """The pids listed in a cgroup.procs file; [] when the cgroup is gone."""
    text = read_optional(path)
    return [int(word) for word in text.split()] if text else []


def mkdir(path: StrPath) -> bool:
    """Make a directory; False (and no error) when it exists already."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return False
    return True


def makedirs(path: StrPath) -> None:
    """Make ``path`` and any missing ancestors (each one a cgroup: the kernel fills it)."""
    try:
        mkdir(path)
    except FileNotFoundError:
        makedirs(os.path.dirname(os.fspath(path)) or ".")
        mkdir(path)


def rmdir(path: StrPath, *, deadline: float = 0.0) -> bool:
    """Remove a cgroup directory; False when it did not exist.

    The kernel can answer EBUSY for a moment after the last process left (its css is still
    being released), so that is retried until ``deadline`` (``time.monotonic()``).
    """
    delay = 0.0005
    while True:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        else:
            return True
