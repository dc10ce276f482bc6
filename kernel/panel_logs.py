"""An incremental, non-blocking tail of a container's log for the panel.

``cellbox.runtime.logs.read_logs(follow=True)`` blocks while it waits for lines; the panel
instead asks once a second "anything new?" from the kernel's sampler, so :class:`LogTail`
keeps an fd and an offset and reads what was appended since, bounded per call:

* a burst (a cell printing 20 MB) is not forwarded whole: past ``max_bytes`` of backlog the
  tail jumps ahead, counts the lines it jumped over (``skipped``) and reads only the newest;
* a rotation (``log.jsonl`` renamed away by a writer at its size cap, a fresh file in its
  place) is noticed by the inode changing; what is left in the old file is still read;
* a line that is still being written (no newline yet) waits for the next call.

Records are parsed by the runtime's own ``LogRecord.from_json``, so a line the container
forged or tore is dropped there, never trusted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from cellbox.runtime.logs import LOG_NAME, LogRecord

__all__ = ["LogTail"]

_CHUNK = 64 << 10


class LogTail:
    """Follows ``<directory>/log.jsonl``. Not thread-safe: one caller at a time."""

    def __init__(self, directory: Path, *, max_bytes: int = 1 << 20) -> None:
        self.path = Path(directory) / LOG_NAME
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._offset = 0
        self._pending = b""

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._pending = b""

    def __enter__(self) -> LogTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> bool:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._fd = None
            return False
        self._offset = 0
        self._pending = b""
        return True

    def start(self, backlog: int) -> list[LogRecord]:
        """Open the log and return its last ``backlog`` records; later :meth:`poll` calls
        return what is written after them."""
        self.close()
        if not self._open():
            return []
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        start = max(0, size - self.max_bytes)
        data = os.pread(self._fd, size - start, start)
        end = data.rfind(b"\n") + 1
        self._offset = start + end
        lines = data[:end].split(b"\n")[:-1]
        if start > 0 and lines:
            lines = lines[1:]  # the first piece may be the tail of an earlier line
        records = [r for r in map(LogRecord.from_json, lines) if r is not None]
        return records[-backlog:] if backlog > 0 else []

    def poll(self, max_records: int = 500) -> tuple[list[LogRecord], int]:
        """New records since the last call (at most ``max_records``, the newest) and how
        many lines were skipped to keep within the bounds."""
        records: list[LogRecord] = []
        skipped = 0
        if self._fd is None and not self._open():
            return records, skipped
        for _ in range(3):  # the current file, then at most a rotation or two
            got, jumped = self._read_current()
            records.extend(got)
            skipped += jumped
            if not self._rotated():
                break
            self.close()
            if not self._open():
                break
        if len(records) > max_records:
            skipped += len(records) - max_records
            records = records[-max_records:]
        return records, skipped

    def _rotated(self) -> bool:
        assert self._fd is not None
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False  # between a rename and the new file: look again next time
        held = os.fstat(self._fd)
        return (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev)

    def _read_current(self) -> tuple[list[LogRecord], int]:
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size < self._offset:  # truncated in place: start over
            self._offset, self._pending = 0, b""
        skipped = 0
        if size - self._offset > self.max_bytes:
            # Jump to the last max_bytes; the jump lands mid-line, so drop up to the next
            # newline too, and count every line jumped over.
            target = size - self.max_bytes
            data = os.pread(self._fd, size - target, target)
            cut = data.find(b"\n") + 1
            skipped = self._count_lines(self._offset, target + cut)
            self._offset, self._pending = target + cut, b""
            data = data[cut:]
        else:
            data = os.pread(self._fd, size - self._offset, self._offset)
        self._offset += len(data)
        data = self._pending + data
        end = data.rfind(b"\n") + 1
        self._pending = data[end:]
        records = [r for r in map(LogRecord.from_json, data[:end].split(b"\n")[:-1]) if r]
        return records, skipped

    def _count_lines(self, start: int, end: int) -> int:
        count = 0
        for chunk in self._chunks(start, end):
            count += chunk.count(b"\n")
        return count

    def _chunks(self, start: int, end: int) -> Iterator[bytes]:
        assert self._fd is not None
        while start < end:
            chunk = os.pread(self._fd, min(_CHUNK * 16, end - start), start)
            if not chunk:
                return
            start += len(chunk)
            yield chunk
