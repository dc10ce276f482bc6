"""A container's log: JSON lines with rotation, written by two parties and read by many.

Each line of ``containers/<id>/log.jsonl`` is one record::

    {"t": "2024-05-01T12:00:00.123456789Z", "stream": "stdout", "line": "hello"}
    {"t": "...", "stream": "stderr", "line": "oops", "cell": "7"}
    {"t": "...", "stream": "stdout", "line": "50%", "partial": true}

``line`` has no trailing newline; ``partial`` marks a piece of a line flushed before its
newline arrived (a progress bar), so a reader prints it without one. ``cell`` tags output
the kernel logged for a notebook cell. Writers: the container's PID 1 (the workload's
stdout and stderr) and the kernel (:meth:`Container.log`). Both go through
:class:`LogWriter`, whose protocol keeps them consistent:

1. take ``flock(LOCK_EX)`` on ``log.lock`` in the container dir;
2. if ``log.jsonl`` is no longer the file our fd points at (the other writer rotated it),
   reopen it;
3. if the append would take it past the cap, rename ``log.jsonl`` to ``log.1`` (replacing
   the older one) and start a fresh ``log.jsonl``;
4. append the records in one ``write``; unlock.

Everything is relative to a directory fd, so PID 1 can keep writing after pivot_root, and
the module imports only what the container's init may import (os, json, fcntl, time).

Readers use :func:`read_logs`: ``tail`` reads backwards from the end instead of parsing
the whole file, ``since`` filters by time, and ``follow`` keeps going through rotations
(the renamed file is drained before the fresh one is opened) until ``stop()`` says the
container is gone and nothing is left to read.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "LOG_NAME",
    "LogRecord",
    "LogWriter",
    "format_timestamp",
    "read_logs",
    "records_for_text",
]

LOG_NAME = "log.jsonl"
ROTATED_NAME = "log.1"
LOCK_NAME = "log.lock"
DEFAULT_MAX_BYTES = 10 << 20
_CHUNK = 64 << 10
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def format_timestamp(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds in UTC; these strings sort in time order."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def _parse_timestamp(text: str) -> datetime:
    # Python 3.11's fromisoformat takes at most 6 fractional digits.
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest.rstrip("Z")
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class LogRecord:
    """One log line."""

    t: str
    stream: str
    line: str
    cell: str | None = None
    partial: bool = False

    @property
    def when(self) -> datetime:
        """``t`` as an aware datetime (microsecond precision)."""
        return _parse_timestamp(self.t)

    @property
    def text(self) -> str:
        """The line as it was printed: with its newline unless it was a partial line."""
        return self.line if self.partial else self.line + "\n"

    def to_json(self) -> str:
        record: dict[str, object] = {"t": self.t, "stream": self.stream, "line": self.line}
        if self.cell is not None:
            record["cell"] = self.cell
        if self.partial:
            record["partial"] = True
        return json.dumps(record, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: bytes) -> LogRecord | None:
        """Parse one line; None for anything that is not a record (a torn or foreign line)."""
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        t, stream, line = data.get("t"), data.get("stream"), data.get("line")
        if not (isinstance(t, str) and isinstance(stream, str) and isinstance(line, str)):
            return None
        cell = data.get("cell")
        return cls(t, stream, line, None if cell is None else str(cell),
                   data.get("partial") is True)


def records_for_text(
    stream: str, text: str, *, cell: str | None = None, t: str | None = None
) -> list[LogRecord]:
    """Split printed text into line records; a last piece without newline is partial."""
    t = t or format_timestamp()
    pieces = text.split("\n")
    records = [LogRecord(t, stream, piece, cell) for piece in pieces[:-1]]
    if pieces[-1]:
        records.append(LogRecord(t, stream, pieces[-1], cell, partial=True))
    return records


class LogWriter:
    """Appends records to ``log.jsonl`` in ``directory`` (a path or a directory fd).

    Not thread-safe: give each thread its own writer, or hold a lock around :meth:`write`.
    """

    def __init__(self, directory: str | os.PathLike[str] | int,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if isinstance(directory, int):
            self._dir_fd = os.dup(directory)
            os.set_inheritable(self._dir_fd, False)
        else:
            self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.max_bytes = max(max_bytes, 4096)
        self._lock_fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600,
                                dir_fd=self._dir_fd)
        self._fd = os.open(LOG_NAME, _FLAGS, 0o600, dir_fd=self._dir_fd)

    def write(self, records: Iterable[LogRecord]) -> None:
        """Append ``records`` in one write, rotating first when they would pass the cap."""
        data = "".join(r.to_json() + "\n" for r in records).encode("utf-8", "replace")
        if data:
            self.write_raw(data)

    def write_raw(self, data: bytes) -> None:
        """Append already-encoded JSON lines (each ending in a newline)."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            st = os.fstat(self._fd)
            try:
                current = os.stat(LOG_NAME, dir_fd=self._dir_fd)
                moved = (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev)
            except FileNotFoundError:
                moved = True
            if moved:
                self._reopen()
                st = os.fstat(self._fd)
            if st.st_size > 0 and st.st_size + len(data) > self.max_bytes:
                os.rename(LOG_NAME, ROTATED_NAME, src_dir_fd=self._dir_fd,
                          dst_dir_fd=self._dir_fd)
                self._reopen()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _reopen(self) -> None:
        os.close(self._fd)
        self._fd = os.open(LOG_NAME, _FLAGS, 0o600, dir_fd=self._dir_fd)

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd, self._dir_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = self._dir_fd = -1

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- reading

def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _last_lines(fd: int, count: int) -> list[bytes]:
    """The last ``count`` complete lines of the file, reading backwards in chunks."""
    end = os.fstat(fd).st_size
    buf = b""
    pos = end
    while pos > 0 and buf.count(b"\n") <= count:
        step = min(_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
    lines = buf.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if pos > 0:
        lines = lines[1:]  # the first piece may be the tail of an earlier line
    return lines[-count:] if count else []


def _all_lines(fd: int) -> tuple[list[bytes], int]:
    """Every complete line and the offset just after the last one."""
    data = b""
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        data += chunk
        offset += len(chunk)
    end = data.rfind(b"\n") + 1
    return data[:end].split(b"\n")[:-1], end


def _tail(fd: int | None, old: int | None, count: int, since: str | None) -> list[LogRecord]:
    """The records of the last ``count`` printed lines. A line flushed in pieces is several
    records (all but the last ``partial``) and counts once, so read more records until
    ``count`` lines are in them or the log has no more."""
    if count <= 0:
        return []
    want = count
    while True:
        lines = _last_lines(fd, want) if fd is not None else []
        if len(lines) < want and old is not None:
            lines = _last_lines(old, want - len(lines)) + lines
        records = list(_parse(lines, since))
        starts = [i for i, r in enumerate(records) if i == 0 or not records[i - 1].partial]
        if len(starts) > count or len(lines) < want:  # enough lines, or all there is
            return records[starts[-count]:] if len(starts) >= count else records
        want *= 2


def _parse(lines: Iterable[bytes], since: str | None) -> Iterator[LogRecord]:
    for raw in lines:
        record = LogRecord.from_json(raw)
        if record is not None and (since is None or record.t >= since):
            yield record


def read_logs(
    directory: str | os.PathLike[str],
    *,
    tail: int | None = None,
    since: datetime | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
    poll_interval: float = 0.1,
) -> Iterator[LogRecord]:
    """Yield the records of the log in ``directory``, oldest first.

    ``tail``: only the records of the last N printed lines (a line flushed in pieces is
    several records). ``since``: only records at or after that time.
    ``follow``: keep yielding new records as they are written, through rotations, until
    ``stop()`` returns true (checked when there is nothing new) — by default forever.
    """
    base = os.fspath(directory)
    since_key = format_timestamp(int(since.timestamp() * 1e9)) if since else None
    current_path = os.path.join(base, LOG_NAME)
    fd = _open(current_path)
    old = _open(os.path.join(base, ROTATED_NAME))
    try:
        if fd is not None and old is not None and _same_file(fd, old):
            os.close(old)  # rotated between the two opens: we already hold that file
            old = None
        if tail is not None:
            offset = _end_of_lines(fd)
            yield from _tail(fd, old, tail, since_key)
        else:
            if old is not None:
                yield from _parse(_all_lines(old)[0], since_key)
            lines, offset = _all_lines(fd) if fd is not None else ([], 0)
            yield from _parse(lines, since_key)
        if old is not None:
            os.close(old)
            old = None
        if not follow:
            return
        yield from _follow(current_path, fd, offset, since_key, stop, poll_interval)
        fd = None  # _follow owns and closes it
    finally:
        for f in (fd, old):
            if f is not None:
                os.close(f)


def _same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev)


def _end_of_lines(fd: int | None) -> int:
    """Where reading should continue: after the last complete line."""
    if fd is None:
        return 0
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    start = max(0, size - _CHUNK)
    tail = os.pread(fd, size - start, start)
    last = tail.rfind(b"\n")
    return start + last + 1 if last >= 0 else start


def _follow(
    path: str,
    fd: int | None,
    offset: int,
    since: str | None,
    stop: Callable[[], bool] | None,
    poll_interval: float,
) -> Iterator[LogRecord]:
    pending = b""
    stopping = False
    try:
        while True:
            got_data = False
            if fd is not None:
                while chunk := os.pread(fd, _CHUNK, offset):
                    offset += len(chunk)
                    pending += chunk
                    got_data = True
                if got_data:
                    end = pending.rfind(b"\n") + 1
                    complete, pending = pending[:end], pending[end:]
                    yield from _parse(complete.split(b"\n")[:-1], since)
            if got_data:
                continue
            # Nothing new in the file we hold: was it rotated away under us?
            try:
                st = os.stat(path)
                rotated = fd is None or (st.st_ino, st.st_dev) != _ident(fd)
            except FileNotFoundError:
                rotated = False
            if rotated:
                # The writer renamed our file before it appended to a fresh one; what we
                # have read to its end is all it will ever hold.
                if fd is not None:
                    os.close(fd)
                fd, offset, pending = _open(path), 0, b""
                continue
            if stopping:
                return
            if stop is not None and stop():
                stopping = True  # one more pass: the last records may have just landed
                continue
            time.sleep(poll_interval)
    finally:
        if fd is not None:
            os.close(fd)


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_ino, st.st_dev
