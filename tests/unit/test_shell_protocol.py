"""The shell's wire format: markers, prompts, echo and displays, fed byte by byte."""

from __future__ import annotations

import random

from cellbox.kernel.protocol import (
    CELL_PROLOGUE,
    DisplayRequest,
    EndMarker,
    Event,
    Output,
    Prompt,
    ShellOutput,
    cell_file,
    cell_line,
    init_line,
    new_nonce,
    parse_init,
    resync_line,
)

SHELL = "c" * 32
NONCE = "a" * 32


def end(nonce: str = NONCE, status: int = 0) -> bytes:
    return f"\x1e{nonce} {status}\x1e".encode()


PROMPT = f"\x1eP{SHELL}\x1e".encode()


def feed_all(scanner: ShellOutput, data: bytes, *, chunk: int | None = None) -> list[Event]:
    events: list[Event] = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        events += scanner.feed(data[i : i + step])
    while events and isinstance(events[-1], EndMarker):
        more = scanner.feed(b"")
        if not more:
            break
        events += more
    return events


def text(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Output))


def test_output_then_end_marker() -> None:
    scanner = ShellOutput(SHELL)
    scanner.expect(NONCE)
    events = scanner.feed(b"hello\r\nworld\r\n" + end(status=3) + PROMPT)
    assert events == [Output("hello\nworld\n"), EndMarker(NONCE, 3)]
    assert scanner.feed(b"") == [Prompt()]  # what came after the marker is kept


def test_every_split_of_the_stream_gives_the_same_events() -> None:
    data = (
        "é€😀 progress\r50%\r100%\r\n".encode()
        + b"\x1ecellbox-display display.abc123 image/png\x1e"
        + b"tail" + end(status=1) + PROMPT
    )
    expected = [
        Output("é€😀 progress\r50%\r100%\n"),
        DisplayRequest("display.abc123", "image/png"),
        Output("tail"),
        EndMarker(NONCE, 1),
        Prompt(),
    ]
    for size in (1, 2, 3, 5, 7, 64):
        scanner = ShellOutput(SHELL)
        scanner.expect(NONCE)
        events = feed_all(scanner, data, chunk=size)
        merged: list[Event] = []
        for event in events:
            if merged and isinstance(event, Output) and isinstance(merged[-1], Output):
                merged[-1] = Output(merged[-1].text + event.text)
            else:
                merged.append(event)
        assert merged == expected, size


def test_a_marker_with_another_nonce_is_just_output() -> None:
    scanner = ShellOutput(SHELL)
    scanner.expect(NONCE)
    forged = end("b" * 32, 0)
    events = feed_all(scanner, forged + b"more" + end())
    assert text(events) == forged.decode() + "more"
    assert events[-1] == EndMarker(NONCE, 0)


def test_a_prompt_of_another_shell_is_output() -> None:
    scanner = ShellOutput(SHELL)
    other = f"\x1eP{'d' * 32}\x1e".encode()
    assert text(scanner.feed(other + b"x")) == other.decode() + "x"


def test_stray_separators_are_text() -> None:
    scanner = ShellOutput(SHELL)
    scanner.expect(NONCE)
    events = feed_all(scanner, b"a\x1eb\x1e\x1ez" + end())
    assert text(events) == "a\x1eb\x1e\x1ez"


def test_an_incomplete_frame_waits_and_a_finished_stream_flushes_it() -> None:
    scanner = ShellOutput(SHELL)
    scanner.expect(NONCE)
    assert scanner.feed(b"x\x1e" + NONCE[:10].encode()) == [Output("x")]
    assert scanner.buffered == 11
    assert text(scanner.finish()) == "\x1e" + NONCE[:10]


def test_the_echo_of_what_was_typed_is_removed_once() -> None:
    scanner = ShellOutput(SHELL)
    scanner.expect(NONCE)
    line = b"echo hi\n"
    scanner.strip_echo(line)
    data = b"echo hi\r\nhi\r\necho hi\r\n" + end()
    for size in (1, 3, 100):
        scanner = ShellOutput(SHELL)
        scanner.expect(NONCE)
        scanner.strip_echo(line)
        assert text(feed_all(scanner, data, chunk=size)) == "hi\necho hi\n", size


def test_a_typed_command_line_is_stripped_each_time_the_terminal_reprints_it() -> None:
    line = f"run {NONCE}\n".encode()
    for size in (1, 4, 1000):
        scanner = ShellOutput(SHELL)
        scanner.expect(NONCE)
        scanner.strip_echo(line, sticky=True)
        scanner.strip_echo(b"alice\n")  # an answer: only its first copy is the echo
        data = line + b"alice\nout\r\n" + line + b"alice\n" + end()
        assert text(feed_all(scanner, data, chunk=size)) == "out\nalice\n", size


def test_a_marker_may_come_twice_until_the_line_is_settled() -> None:
    scanner = ShellOutput(SHELL)
    scanner.expect(NONCE)
    scanner.expect("b" * 32)  # a resync of the same cell
    assert feed_all(scanner, end(NONCE, 0) + b"between") == [EndMarker(NONCE, 0),
                                                             Output("between")]
    assert feed_all(scanner, end(NONCE, 9)) == [EndMarker(NONCE, 9)]
    scanner.settle()
    assert feed_all(scanner, end(NONCE, 1) + end("b" * 32, 2) + b"next") == [Output("next")]


def test_busybox_cursor_queries_are_dropped() -> None:
    assert ShellOutput(SHELL).feed(b"a\x1b[6nb") == [Output("ab")]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert ShellOutput(SHELL).feed(b"\xff\xfeok") == [Output("\ufffd\ufffdok")]


def test_typed_lines_never_contain_their_markers() -> None:
    nonce = new_nonce()
    for line in (cell_line("/x/1.sh", nonce), cell_line("/x/1.sh", nonce, True),
                 resync_line(nonce), init_line(nonce, SHELL)):
        assert "\x1e" not in line
        assert line.endswith("\n") and line.count("\n") == 1
        assert len(line) < 4096  # a terminal line's limit


def test_random_output_is_reproduced_exactly() -> None:
    rng = random.Random(7)
    alphabet = "ab \r\n\t\x1e\x1b[é€"
    for _ in range(50):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(200)))
        scanner = ShellOutput(SHELL)
        scanner.expect(NONCE)
        data = body.encode() + end()
        events = feed_all(scanner, data, chunk=rng.randrange(1, 9))
        expected = body.replace("\r\n", "\n").replace("\x1b[6n", "")
        assert text(events) == expected
        assert isinstance(events[-1], EndMarker)


def test_cell_file_and_init_parsing() -> None:
    assert cell_file("ls") == CELL_PROLOGUE + "ls\n"
    assert cell_file("ls\n") == CELL_PROLOGUE + "ls\n"
    assert parse_init("junk pid=42 flavor=bash\n") == (42, True)
    assert parse_init("pid=7 flavor=\n") == (7, False)
    assert parse_init("nothing") == (None, False)
