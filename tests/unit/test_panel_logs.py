"""The panel's incremental log tail (kernel/panel_logs.py) on logs written by the runtime's
own LogWriter: backlog, new lines, partial lines, rotation, floods, forged lines."""

from __future__ import annotations

import os
from pathlib import Path

from cellbox.kernel.panel_logs import LogTail
from cellbox.runtime.logs import LOG_NAME, LogWriter, records_for_text


def write(directory: Path, text: str, *, stream: str = "stdout", max_bytes: int = 10 << 20,
          cell: str | None = None) -> None:
    with LogWriter(directory, max_bytes) as writer:
        writer.write(records_for_text(stream, text, cell=cell))


def lines(records: list) -> list[str]:  # type: ignore[type-arg]
    return [r.line for r in records]


def test_no_log_yet_then_lines(tmp_path: Path) -> None:
    with LogTail(tmp_path) as tail:
        assert tail.start(10) == []
        assert tail.poll() == ([], 0)
        write(tmp_path, "one\ntwo\n")
        records, skipped = tail.poll()
        assert lines(records) == ["one", "two"] and skipped == 0
        assert tail.poll() == ([], 0)


def test_backlog_then_only_new_lines(tmp_path: Path) -> None:
    write(tmp_path, "".join(f"old {i}\n" for i in range(100)))
    with LogTail(tmp_path) as tail:
        assert lines(tail.start(3)) == ["old 97", "old 98", "old 99"]
        write(tmp_path, "new\n", stream="stderr", cell="4")
        records, _ = tail.poll()
        assert [(r.line, r.stream, r.cell) for r in records] == [("new", "stderr", "4")]


def test_a_line_being_written_waits_for_its_end(tmp_path: Path) -> None:
    write(tmp_path, "")
    with LogTail(tmp_path) as tail:
        tail.start(0)
        path = tmp_path / LOG_NAME
        with open(path, "ab") as f:
            f.write(b'{"t": "2024-05-01T12:00:00Z", "stream": "stdout", "li')
        assert tail.poll() == ([], 0)
        with open(path, "ab") as f:
            f.write(b'ne": "whole"}\n')
        assert lines(tail.poll()[0]) == ["whole"]


def test_follows_through_rotation(tmp_path: Path) -> None:
    cap = 4096
    with LogTail(tmp_path) as tail:
        tail.start(0)
        seen: list[str] = []
        for i in range(200):
            write(tmp_path, f"line {i:04d} " + "x" * 40 + "\n", max_bytes=cap)
            if i % 7 == 0:
                seen += lines(tail.poll()[0])
        seen += lines(tail.poll()[0])
    assert os.path.exists(tmp_path / "log.1")
    numbers = [int(s.split()[1]) for s in seen]
    # Nothing twice, in order, and the newest lines are there; lines lost only if a
    # rotation happened twice between two polls (not the case at this pace).
    assert numbers == sorted(set(numbers))
    assert numbers == list(range(200))


def test_a_flood_is_skipped_and_counted(tmp_path: Path) -> None:
    with LogTail(tmp_path, max_bytes=64 << 10) as tail:
        tail.start(0)
        write(tmp_path, "".join(f"flood {i}\n" for i in range(50_000)))
        records, skipped = tail.poll(max_records=500)
        assert len(records) == 500
        assert records[-1].line == "flood 49999"
        assert skipped + len(records) == 50_000
        assert tail.poll() == ([], 0)


def test_forged_or_torn_lines_are_dropped(tmp_path: Path) -> None:
    with LogTail(tmp_path) as tail:
        tail.start(0)
        with open(tmp_path / LOG_NAME, "ab") as f:
            f.write(b"not json\n[1, 2]\n{\"t\": 1, \"stream\": \"stdout\", \"line\": \"x\"}\n")
        write(tmp_path, "fine\n")
        assert lines(tail.poll()[0]) == ["fine"]


def test_closes_its_fd(tmp_path: Path) -> None:
    write(tmp_path, "x\n")
    before = len(os.listdir("/proc/self/fd"))
    tail = LogTail(tmp_path)
    tail.start(1)
    assert len(os.listdir("/proc/self/fd")) == before + 1
    tail.close()
    assert len(os.listdir("/proc/self/fd")) == before
