"""How fast, and how much, a cell's output reaches the frontend.

A container can print gigabytes and call ``display`` in a tight loop. Each iopub message
costs the frontend a re-render (and jupyter_server drops a kernel's messages beyond
1000/s), so what a cell sends goes through an :class:`IopubGate`:

* at most ``rate`` messages a second, with bursts of ``burst`` (a :class:`TokenBucket`);
  while no token is free, stream text is *coalesced* -- appended to the stream message
  that waits -- and display items queue behind it, in order;
* a :class:`CellBudget` caps the bytes of one cell's output (text and display items
  together); what goes over is dropped, and :meth:`IopubGate.close` returns a note saying
  how much;
* at most ``max_queued`` display items wait; more are dropped, with a note;
* the kernel's own notes (:meth:`IopubGate.note`) do not count against the budget, but
  have a small cap of their own (a container can provoke one per display frame).

The gate holds only what waits for a token: coalesced text (bounded by the budget) and
queued display items (bounded by count and budget). The end of the cell flushes it.

Pure apart from the two callables it is given (``publish`` and ``call_later``), so it is
tested with a fake clock.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_CELL_LIMIT",
    "DEFAULT_RATE",
    "CellBudget",
    "IopubGate",
    "TokenBucket",
    "bundle_size",
]

DEFAULT_RATE = 25.0  # messages a second
DEFAULT_BURST = 25
DEFAULT_CELL_LIMIT = 32 << 20  # bytes of text and display items per cell
DEFAULT_MAX_QUEUED = 1000
NOTES_LIMIT = 64 << 10  # characters of the kernel's own notes per cell


class Cancellable(Protocol):
    def cancel(self) -> None: ...


Publish = Callable[[str, dict[str, Any]], None]
CallLater = Callable[[float, Callable[[], None]], Cancellable]


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> bool:
        """Use a token if there is one."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait(self) -> float:
        """Seconds until the next token."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate)


class CellBudget:
    """The bytes one cell may still send (text and display items together)."""

    def __init__(self, limit: int = DEFAULT_CELL_LIMIT) -> None:
        self.limit = limit
        self.used = 0
        self.refused = 0  # bytes that did not fit
        self.refused_items = 0  # display items that did not fit

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def fit(self, text: str) -> str:
        """The part of ``text`` that fits (the rest counts as refused)."""
        room = self.limit - self.used
        if len(text) <= room:
            self.used += len(text)
            return text
        kept = text[: max(room, 0)]
        self.used += len(kept)
        self.refused += len(text) - len(kept)
        return kept


def bundle_size(data: Mapping[str, Any]) -> int:
    """About how many bytes a mime bundle puts on the wire."""
    size = 0
    for value in data.values():
        if isinstance(value, str):
            size += len(value)
        else:
            size += len(json.dumps(value, separators=(",", ":"), default=str))
    return size


def _format(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


class IopubGate:
    """One cell's way to iopub (see the module docstring)."""

    def __init__(
        self,
        publish: Publish,
        call_later: CallLater,
        *,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        budget: CellBudget | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._call_later = call_later
        self._bucket = TokenBucket(rate, burst, clock)
        self.budget = budget or CellBudget()
        self._max_queued = max_queued
        # (msg_type, content, text parts): a waiting stream message grows by its parts,
        # joined once when it is sent (no quadratic string building in a flood).
        self._pending: deque[tuple[str, dict[str, Any], list[str]]] = deque()
        self._queued_displays = 0
        self._dropped_displays = 0
        self._notes_size = 0
        self._dropped_notes = 0
        self._timer: Cancellable | None = None
        self._closed = False
        self.sent = 0  # messages published

    def stream(self, text: str, name: str = "stdout") -> None:
        """Send ``text`` on stream ``name`` now, or with the next free token."""
        self._add_text(self.budget.fit(text), name)

    def _add_text(self, text: str, name: str) -> None:
        if not text:
            return
        if self._pending:
            kind, content, parts = self._pending[-1]
            if kind == "stream" and content["name"] == name:
                parts.append(text)
                return
        self._pending.append(("stream", {"name": name}, [text]))
        self._pump()

    def note(self, text: str) -> None:
        """A line of the kernel's own (stderr): outside the budget, in order, capped."""
        if self._notes_size + len(text) > NOTES_LIMIT:
            self._dropped_notes += 1
            return
        self._notes_size += len(text)
        self._add_text(text, "stderr")

    def send(self, kind: str, content: dict[str, Any]) -> None:
        """Any other iopub message of the cell (display_data, clear_output), in order.

        A display item counts against the budget and the queue cap.
        """
        if kind == "display_data":
            if self._queued_displays >= self._max_queued:
                self._dropped_displays += 1
                return
            if not self.budget.take(bundle_size(content.get("data", {}))):
                self.budget.refused_items += 1
                return
            self._queued_displays += 1
        self._pending.append((kind, content, []))
        self._pump()

    def display(
        self, data: dict[str, Any], metadata: dict[str, Any] | None = None,
        transient: dict[str, Any] | None = None,
    ) -> None:
        """Send a display_data message now, or in order once a token is free."""
        content: dict[str, Any] = {"data": data, "metadata": metadata or {}}
        if transient:
            content["transient"] = transient
        self.send("display_data", content)

    def _pump(self) -> None:
        while self._pending:
            if not self._closed and not self._bucket.take():
                if self._timer is None:
                    self._timer = self._call_later(self._bucket.wait(), self._on_timer)
                return
            self._send(*self._pending.popleft())

    def _send(self, kind: str, content: dict[str, Any], parts: list[str]) -> None:
        if kind == "stream":
            content["text"] = "".join(parts)
        elif kind == "display_data":
            self._queued_displays -= 1
        self.sent += 1
        self._publish(kind, content)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def flush(self) -> None:
        """Send everything that waits, now, whatever the rate (the end of the cell)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            self._send(*self._pending.popleft())

    def close(self) -> list[str]:
        """Flush; the notes about what was cut (none when nothing was)."""
        self._closed = True
        self.flush()
        notes = []
        budget = self.budget
        if budget.refused or budget.refused_items:
            parts = []
            if budget.refused:
                parts.append(f"{_format(budget.refused)} of text")
            if budget.refused_items:
                parts.append(f"{budget.refused_items} display item(s)")
            notes.append(
                f"[cellbox] this cell's output reached its limit of {_format(budget.limit)}: "
                f"{' and '.join(parts)} not shown"
            )
        if self._dropped_displays:
            notes.append(
                f"[cellbox] {self._dropped_displays} display item(s) dropped: more than "
                f"{self._max_queued} were waiting to be sent"
            )
        if self._dropped_notes:
            notes.append(f"[cellbox] {self._dropped_notes} more note(s) about this cell's "
                         "output were left out")
        return notes
