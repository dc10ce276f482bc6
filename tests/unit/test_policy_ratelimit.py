"""The iopub gate: a capped message rate, coalesced text, a per-cell budget, order kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cellbox.kernel.ratelimit import CellBudget, IopubGate, TokenBucket, bundle_size


class Clock:
    """A fake monotonic clock with a fake call_later on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None], Timer]] = []

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer()
        self.timers.append((self.now + delay, callback, timer))
        return timer

    def advance(self, seconds: float, step: float = 0.001) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            due = [t for t in self.timers if t[0] <= self.now]
            self.timers = [t for t in self.timers if t[0] > self.now]
            for _, callback, timer in due:
                if not timer.cancelled:
                    callback()


class Timer:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def gate(clock: Clock, **kw: Any) -> tuple[IopubGate, list[tuple[float, str, dict[str, Any]]]]:
    sent: list[tuple[float, str, dict[str, Any]]] = []
    g = IopubGate(lambda kind, content: sent.append((clock.now, kind, content)),
                  clock.call_later, clock=clock, **kw)
    return g, sent


def test_token_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 3, clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait() == pytest.approx(0.1)
    clock.now = 0.1
    assert bucket.take() and not bucket.take()
    clock.now = 100
    assert sum(bucket.take() for _ in range(10)) == 3  # never more than the burst


def test_a_flood_becomes_at_most_rate_messages_a_second_and_loses_nothing() -> None:
    clock = Clock()
    g, sent = gate(clock, rate=20, burst=5)
    written = []
    for i in range(20000):  # 10 s of a chunk every 0.5 ms
        text = f"line {i}\n"
        written.append(text)
        g.stream(text)
        clock.advance(0.0005, step=0.0005)
    notes = g.close()
    assert notes == []
    assert "".join(c["text"] for _, _, c in sent) == "".join(written)
    for second in range(10):
        in_window = [t for t, _, _ in sent if second <= t < second + 1]
        assert len(in_window) <= 20 + 5
    assert len(sent) <= 10 * 20 + 5 + 1


def test_order_is_kept_and_streams_coalesce_only_with_their_own_kind() -> None:
    clock = Clock()
    g, sent = gate(clock, rate=1, burst=1)
    g.stream("a")  # uses the only token
    g.stream("b")
    g.stream("c")
    g.stream("e", "stderr")
    g.display({"text/plain": "picture"})
    g.stream("d")
    g.close()
    assert [(k, c.get("name"), c.get("text"), c.get("data")) for _, k, c in sent] == [
        ("stream", "stdout", "a", None),
        ("stream", "stdout", "bc", None),
        ("stream", "stderr", "e", None),
        ("display_data", None, None, {"text/plain": "picture"}),
        ("stream", "stdout", "d", None),
    ]


def test_waiting_messages_go_out_as_tokens_come_back() -> None:
    clock = Clock()
    g, sent = gate(clock, rate=10, burst=1)
    g.stream("a")
    g.display({"text/plain": "1"})
    g.display({"text/plain": "2"})
    assert len(sent) == 1
    clock.advance(0.11)
    assert len(sent) == 2
    clock.advance(0.11)
    assert len(sent) == 3


def test_the_cell_budget_cuts_text_and_displays_with_a_note() -> None:
    clock = Clock()
    g, sent = gate(clock, budget=CellBudget(1000))
    g.stream("x" * 600)
    g.display({"image/png": "A" * 500})  # does not fit: dropped
    g.display({"text/plain": "small"})
    g.stream("y" * 600)
    notes = g.close()
    shown = "".join(c.get("text", "") for _, k, c in sent if k == "stream")
    assert shown == "x" * 600 + "y" * 395
    assert [c["data"] for _, k, c in sent if k == "display_data"] == [{"text/plain": "small"}]
    assert notes == ["[cellbox] this cell's output reached its limit of 1000 bytes: 205 bytes "
                     "of text and 1 display item(s) not shown"]


def test_too_many_waiting_displays_are_dropped_with_a_note() -> None:
    clock = Clock()
    g, sent = gate(clock, rate=1, burst=1, max_queued=3)
    for i in range(10):
        g.display({"text/plain": str(i)})
    notes = g.close()
    assert [c["data"]["text/plain"] for _, _, c in sent] == ["0", "1", "2", "3"]
    assert notes == ["[cellbox] 6 display item(s) dropped: more than 3 were waiting to be sent"]


def test_bundle_size() -> None:
    assert bundle_size({"text/plain": "abc", "application/json": {"a": [1, 2]}}) == 3 + 11


def test_notes_skip_the_budget_but_have_a_cap_of_their_own() -> None:
    clock = Clock()
    g, sent = gate(clock, budget=CellBudget(10))
    g.stream("x" * 50)
    g.note("[cellbox] a note\n")
    for _ in range(10000):
        g.note("[cellbox] a note a container provoked\n")
    notes = g.close()
    stderr = "".join(c["text"] for _, k, c in sent if k == "stream" and c["name"] == "stderr")
    assert stderr.startswith("[cellbox] a note\n")
    assert len(stderr) <= 64 << 10
    assert notes[-1].endswith("more note(s) about this cell's output were left out")


def test_other_messages_keep_their_place() -> None:
    clock = Clock()
    g, sent = gate(clock, rate=1, burst=1)
    g.stream("before")
    g.send("clear_output", {"wait": False})
    g.stream("after")
    g.close()
    assert [(k, c) for _, k, c in sent] == [
        ("stream", {"name": "stdout", "text": "before"}),
        ("clear_output", {"wait": False}),
        ("stream", {"name": "stdout", "text": "after"}),
    ]
