"""A cell's output on its way to iopub: coalesced into few messages, capped, logged whole."""

from __future__ import annotations

import asyncio

from cellbox.kernel.output import CellOutput, format_size


def test_small_writes_are_coalesced_within_the_interval() -> None:
    async def main() -> list[str]:
        sent: list[str] = []
        out = CellOutput(sent.append, interval=0.05)
        for i in range(1000):
            out.write(f"{i}\n")
        assert sent == []  # nothing yet: waiting for the interval
        await asyncio.sleep(0.1)
        out.write("last")
        assert out.close() is None
        return sent

    sent = asyncio.run(main())
    assert len(sent) == 2
    assert "".join(sent) == "".join(f"{i}\n" for i in range(1000)) + "last"


def test_a_flood_is_sent_in_chunks() -> None:
    async def main() -> list[str]:
        sent: list[str] = []
        out = CellOutput(sent.append, chunk=1000, limit=10**9, interval=10)
        for _ in range(100):
            out.write("x" * 100)
        out.close()
        return sent

    sent = asyncio.run(main())
    assert len(sent) == 10 and all(len(s) == 1000 for s in sent)


def test_past_the_limit_output_is_cut_with_a_note_and_logged_whole() -> None:
    sent: list[str] = []
    logged: list[str] = []
    out = CellOutput(sent.append, log=logged.append, limit=250, chunk=100)
    for _ in range(10):
        out.write("y" * 100)
    note = out.close()
    assert "".join(sent) == "y" * 250
    assert "".join(logged) == "y" * 1000
    assert note is not None and "cut after 250 bytes" in note and "750 bytes more" in note
    assert "container's log" in note


def test_format_size() -> None:
    assert format_size(12) == "12 bytes"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(5 << 20) == "5.0 MiB"
