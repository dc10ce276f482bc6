"""The context managers of the container start path, without contextlib.

``import contextlib`` brings collections and functools along (≈ 5 ms of every ``cellbox
run``); the start path needs only two small things from it, written out here:
:class:`suppress` (as ``contextlib.suppress``) and :class:`Flock` (an ``flock`` held for a
``with`` block, the way containers' files are locked).
"""

from __future__ import annotations

import fcntl
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

    from .paths import StrPath

__all__ = ["Flock", "suppress"]


class suppress:  # named after contextlib.suppress, which it stands in for
    """``with suppress(E1, E2): ...`` ignores those exceptions, as contextlib's does."""

    __slots__ = ("_exceptions",)

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self._exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        return kind is not None and issubclass(kind, self._exceptions)


class Flock:
    """An ``flock`` on ``path`` for a ``with`` block; ``__enter__`` gives the fd.

    The file is created when missing (mode 0600, ``O_CLOEXEC``; with ``nofollow`` never
    through a symlink) — with ``make_parent`` its directory too. Closing the fd at the
    end of the block releases the lock.
    """

    __slots__ = ("_fd", "make_parent", "nofollow", "path", "shared")

    def __init__(self, path: StrPath, *, shared: bool = False, nofollow: bool = False,
                 make_parent: bool = False) -> None:
        self.path = os.fspath(path)
        self.shared = shared
        self.nofollow = nofollow
        self.make_parent = make_parent
        self._fd = -1

    def __enter__(self) -> int:
        if self.make_parent:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (os.O_NOFOLLOW if self.nofollow else 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
