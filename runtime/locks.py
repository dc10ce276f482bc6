"""File locks (``flock``) that serialise work between processes and threads.

An ``flock`` belongs to an open file description, so two ``open`` calls of the same lock
file conflict even inside one process: a lock taken here also keeps another thread out.
The lock files themselves are never deleted (deleting one while somebody waits on it
would let a third process lock a fresh file of the same name), so their names must come
from a small set: digests, chain ids, fixed names.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .errors import StoreError

__all__ = ["FileLock", "hold_all", "locked"]


class FileLock:
    """An ``flock`` on ``path`` (created when missing). Not reentrant.

    ``acquire(shared=False, blocking=True)`` returns False only when ``blocking`` is
    False and somebody else holds a conflicting lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open lock file {self.path}: {exc.strerror}") from exc

    def acquire(self, *, shared: bool = False, blocking: bool = True) -> bool:
        """Take the lock (or convert a held one between shared and exclusive)."""
        fd = self._fd if self._fd is not None else self._open()
        op = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, op)
        except BlockingIOError:
            if self._fd is None:
                os.close(fd)
            return False
        except OSError as exc:
            if self._fd is None:
                os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from exc
        self._fd = fd
        return True

    def release(self) -> None:
        """Drop the lock; closing the fd releases the flock."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def locked(path: Path, *, shared: bool = False) -> Iterator[FileLock]:
    """Hold an ``flock`` on ``path`` for the ``with`` block."""
    lock = FileLock(path)
    lock.acquire(shared=shared)
    try:
        yield lock
    finally:
        lock.release()


@contextmanager
def hold_all(paths: Iterable[Path]) -> Iterator[None]:
    """Hold exclusive locks on all ``paths``, taken in sorted order.

    Every process takes its locks in the same global order, so two pulls that share
    layers cannot deadlock: the second one waits for the first to commit.
    """
    with ExitStack() as stack:
        for path in sorted(set(paths)):
            stack.enter_context(locked(path))
        yield
