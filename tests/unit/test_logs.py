"""The JSON-lines container log: writing, rotation, tail, since, follow (runtime/logs.py)."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from cellbox.runtime.logs import (
    LogRecord,
    LogWriter,
    format_timestamp,
    read_logs,
    records_for_text,
)


def lines(n: int, stream: str = "stdout", t: str | None = None) -> list[LogRecord]:
    return [LogRecord(t or format_timestamp(), stream, f"line {i}") for i in range(n)]


def test_timestamps_are_rfc3339_nanoseconds_and_sort() -> None:
    a = format_timestamp(1_714_557_600_000_000_001)
    assert a == "2024-05-01T10:00:00.000000001Z"
    assert format_timestamp(1_714_557_600_100_000_000) > a


def test_records_for_text_splits_lines_and_marks_partial() -> None:
    records = records_for_text("stderr", "a\nb\npro", cell="3", t="T")
    assert [(r.line, r.partial, r.cell) for r in records] == [
        ("a", False, "3"), ("b", False, "3"), ("pro", True, "3")]
    assert "".join(r.text for r in records) == "a\nb\npro"
    assert records_for_text("stdout", "") == []


def test_write_and_read_back(tmp_path: Path) -> None:
    with LogWriter(tmp_path) as writer:
        writer.write(records_for_text("stdout", "hello\n", cell="1"))
        writer.write(records_for_text("stderr", "oops\n"))
    raw = (tmp_path / "log.jsonl").read_text().splitlines()
    first = json.loads(raw[0])
    assert set(first) == {"t", "stream", "line", "cell"}
    got = list(read_logs(tmp_path))
    assert [(r.stream, r.line, r.cell) for r in got] == [
        ("stdout", "hello", "1"), ("stderr", "oops", None)]


def test_unicode_and_garbage_lines(tmp_path: Path) -> None:
    with LogWriter(tmp_path) as writer:
        writer.write(records_for_text("stdout", "héllo ✓\n"))
    with open(tmp_path / "log.jsonl", "ab") as f:
        f.write(b"not json\n[1,2]\n{\"t\": 1}\n")
    with LogWriter(tmp_path) as writer:
        writer.write(records_for_text("stdout", "after\n"))
    assert [r.line for r in read_logs(tmp_path)] == ["héllo ✓", "after"]


def test_an_empty_dir_has_no_records(tmp_path: Path) -> None:
    assert list(read_logs(tmp_path)) == []
    assert list(read_logs(tmp_path, tail=5)) == []


def test_rotation_keeps_one_old_file_under_the_cap(tmp_path: Path) -> None:
    with LogWriter(tmp_path, max_bytes=4096) as writer:
        for i in range(400):
            writer.write([LogRecord(format_timestamp(), "stdout", f"line {i:04d}")])
    assert (tmp_path / "log.1").exists()
    assert (tmp_path / "log.jsonl").stat().st_size <= 4096
    assert (tmp_path / "log.1").stat().st_size <= 4096
    got = [r.line for r in read_logs(tmp_path)]
    assert got[-1] == "line 0399"
    numbers = [int(line.split()[1]) for line in got]
    assert numbers == list(range(numbers[0], 400))  # contiguous: nothing lost in between


def test_tail_reads_across_the_rotated_file(tmp_path: Path) -> None:
    with LogWriter(tmp_path, max_bytes=4096) as writer:
        for i in range(100):
            writer.write([LogRecord(format_timestamp(), "stdout", f"{i}")])
    current = len((tmp_path / "log.jsonl").read_text().splitlines())
    tail = [r.line for r in read_logs(tmp_path, tail=current + 3)]
    assert tail == [str(i) for i in range(100 - current - 3, 100)]
    assert [r.line for r in read_logs(tmp_path, tail=1)] == ["99"]
    assert list(read_logs(tmp_path, tail=0)) == []


def test_tail_counts_printed_lines_not_the_pieces_they_were_flushed_in(tmp_path: Path) -> None:
    with LogWriter(tmp_path) as writer:
        writer.write(records_for_text("stdout", "first\n"))
        for i in range(3):  # three lines, each flushed in 40 pieces (a busy machine)
            for piece in range(40):
                writer.write(records_for_text("stdout", f"{i}{piece:02d} "))
            writer.write(records_for_text("stdout", "end\n"))
        writer.write(records_for_text("stdout", "50%"))  # an unfinished last line counts

    def printed(tail: int) -> str:
        return "".join(r.text for r in read_logs(tmp_path, tail=tail))

    assert printed(1) == "50%"
    assert printed(2).startswith("200 201 ") and printed(2).endswith(" 239 end\n50%")
    assert printed(3).splitlines()[0].startswith("100 ")
    assert printed(9) == "".join(r.text for r in read_logs(tmp_path))  # fewer than asked
    assert printed(9).startswith("first\n000 ")


def test_tail_of_a_big_log_reads_backwards(tmp_path: Path) -> None:
    with LogWriter(tmp_path, max_bytes=64 << 20) as writer:
        writer.write([LogRecord("2024-01-01T00:00:00.000000000Z", "stdout", "x" * 100)
                      for _ in range(50_000)])
        writer.write(records_for_text("stdout", "last\n"))
    start = time.perf_counter()
    assert [r.line for r in read_logs(tmp_path, tail=1)] == ["last"]
    assert time.perf_counter() - start < 0.05


def test_since_filters_by_time(tmp_path: Path) -> None:
    with LogWriter(tmp_path) as writer:
        writer.write(lines(2, t="2024-05-01T10:00:00.000000000Z"))
        writer.write(lines(1, t="2024-05-01T12:00:00.500000000Z"))
    since = datetime(2024, 5, 1, 11, 0, tzinfo=UTC)
    (record,) = read_logs(tmp_path, since=since)
    assert record.when.hour == 12


def test_follow_sees_new_lines_through_rotations_and_stops(tmp_path: Path) -> None:
    LogWriter(tmp_path).close()
    done = threading.Event()

    def produce() -> None:
        with LogWriter(tmp_path, max_bytes=4096) as writer:
            for i in range(300):
                writer.write([LogRecord(format_timestamp(), "stdout", f"{i}")])
                if i % 20 == 0:
                    time.sleep(0.03)  # let the reader catch up, so no file is skipped
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    got = [int(r.line) for r in read_logs(tmp_path, follow=True, stop=done.is_set,
                                          poll_interval=0.01)]
    thread.join()
    assert got == list(range(300))


def _writer_process(directory: str, tag: str, count: int) -> None:
    with LogWriter(directory, max_bytes=1 << 30) as writer:
        for i in range(count):
            writer.write([LogRecord(format_timestamp(), "stdout", f"{tag} {i} " + "y" * 200)])


def test_two_processes_append_without_tearing_lines(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer_process, args=(str(tmp_path), tag, 2000))
             for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    records = list(read_logs(tmp_path))
    assert len(records) == 4000
    for tag in ("a", "b"):
        assert [int(r.line.split()[1]) for r in records if r.line.startswith(tag)] == \
            list(range(2000))
