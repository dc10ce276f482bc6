"""A cell's text output on its way to iopub: coalesced, capped, logged.

A shell can print millions of lines a second; sending each read as a ``stream`` message
would drown the frontend. :class:`CellOutput` buffers text and flushes it every
``interval`` seconds (on a timer of the event loop) or as soon as ``chunk`` characters
are waiting, so a flood becomes a few dozen messages a second and memory stays bounded by
``chunk``. A lone ``\\r`` is sent as it is: frontends draw a progress bar in place.

Past ``limit`` characters the cell's output is cut: a note says so, and the rest is not
sent -- but everything, cut or not, goes to ``log`` (the container's log, tagged with the
cell), so the whole output stays available (``%logs``, the panel).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["DEFAULT_LIMIT", "CellOutput", "format_size"]

DEFAULT_LIMIT = 1 << 20  # characters sent to the notebook per cell
DEFAULT_INTERVAL = 0.03
DEFAULT_CHUNK = 1 << 16


def format_size(size: int) -> str:
    """``1.5 MiB`` style, for the notes people read."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


class CellOutput:
    """Coalesce, cap and log one cell's text (see the module docstring)."""

    def __init__(
        self,
        send: Callable[[str], None],
        *,
        log: Callable[[str], None] | None = None,
        limit: int = DEFAULT_LIMIT,
        interval: float = DEFAULT_INTERVAL,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        self._send = send
        self._log = log
        self.limit = limit
        self._interval = interval
        self._chunk = chunk
        self._buffer: list[str] = []
        self._buffered = 0
        self._log_buffer: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self.sent = 0  # characters sent to the notebook
        self.total = 0  # characters the cell printed
        self.cut = False

    def write(self, text: str) -> None:
        """Take ``text``; it is sent within ``interval`` seconds."""
        if not text:
            return
        self.total += len(text)
        if self._log is not None:
            self._log_buffer.append(text)
        if not self.cut:
            room = self.limit - self.sent - self._buffered
            if len(text) > room:
                text = text[: max(room, 0)]
                self.cut = True
            if text:
                self._buffer.append(text)
                self._buffered += len(text)
        if self._buffered >= self._chunk or self.cut:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self._interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Send what is buffered now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            text = "".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            self.sent += len(text)
            self._send(text)
        if self._log_buffer and self._log is not None:
            text = "".join(self._log_buffer)
            self._log_buffer.clear()
            self._log(text)

    def close(self) -> str | None:
        """Flush; the note for the notebook when the output was cut (else None)."""
        self.flush()
        if not self.cut:
            return None
        more = self.total - self.sent
        where = "the container's log (%logs, or the Logs panel)" if self._log else "nowhere"
        return (
            f"\n[cellbox: output cut after {format_size(self.sent)}: "
            f"{format_size(more)} more went to {where}]\n"
        )
