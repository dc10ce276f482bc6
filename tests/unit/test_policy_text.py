"""Terminal text from a container: colours and progress bars stay, terminal control goes."""

from __future__ import annotations

import time

import pytest
from cellbox.kernel.policy_text import MAX_SEQUENCE, TerminalText, clean_text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text\n", "plain text\n"),
        ("tab\there\r\n", "tab\there\r\n"),
        ("10%\r50%\r100%\n", "10%\r50%\r100%\n"),  # a progress bar updates in place
        ("a\bb", "a\bb"),
        ("\x1b[1;31mred\x1b[0m \x1b[38;2;1;2;3mrgb\x1b[m",
         "\x1b[1;31mred\x1b[0m \x1b[38;2;1;2;3mrgb\x1b[m"),
        ("clear\x1b[2J\x1b[Hscreen", "clearscreen"),
        ("up\x1b[5Aover", "upover"),
        ("\x1b]0;window title\x07after", "after"),
        ("\x1b]52;c;cm0gLXJmIH4K\x1b\\clipboard", "clipboard"),
        ("\x1bP+q544e\x1b\\dcs", "dcs"),
        ("\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\x", "x"),
        ("reset\x1bcdone", "resetdone"),
        ("\x1b(Bcharset", "charset"),
        ("\x1b7saved\x1b8", "saved"),
        ("bell\x07\x07", "bell"),
        ("\x1e0123456789abcdef0123456789abcdef 0\x1e", "0123456789abcdef0123456789abcdef 0"),
        ("c1\x9b2J csi", "c12J csi"),
        ("del\x7f nul\x00", "del nul"),
        ("\x1b[?1049h\x1b[31;1:2m", "\x1b[31;1:2m"),  # private modes go, colour stays
        ("\x1b[6n", ""),  # a cursor report request: a terminal would answer on stdin
        ("üñí€ 😀", "üñí€ 😀"),
    ],
)
def test_clean_text(text: str, shown: str) -> None:
    assert clean_text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "a\x1b[1;31mred\x1b[0m\x1b[2J\x1b]0;title\x07b\x1b]52;c;AAAA\x1b\\c\x1bcd\x1b(Be",
        "\x1b]8;;https://x\x1b\\link\x1b]8;;\x1b\\ \x1b[38;5;196mX\x1b[0m",
    ],
)
def test_a_sequence_cut_between_reads_is_still_recognised(text: str) -> None:
    whole = clean_text(text)
    for size in (1, 2, 3, 7):
        stream = TerminalText()
        pieces = [stream.feed(text[i : i + size]) for i in range(0, len(text), size)]
        assert "".join(pieces) + stream.finish() == whole


def test_an_unterminated_osc_string_swallows_until_its_end_however_long() -> None:
    stream = TerminalText()
    assert stream.feed("before\x1b]1337;File=") == "before"
    for _ in range(1000):
        assert stream.feed("A" * 1000) == ""
    assert stream.feed("\x07after") == "after"


def test_an_unfinished_escape_is_held_briefly_then_dropped() -> None:
    stream = TerminalText()
    assert stream.feed("x\x1b[1;2") == "x"
    assert stream.feed("2m y") == "\x1b[1;22m y"
    assert stream.feed("\x1b[" + "1" * (MAX_SEQUENCE + 10)) == ""
    assert stream.feed("z") == "z"  # the overlong one was not held
    assert stream.feed("\x1b[1") == ""
    assert stream.finish() == ""


def test_plain_text_is_cheap() -> None:
    chunk = "y\n" * 32768
    stream = TerminalText()
    started = time.perf_counter()
    for _ in range(300):  # ~20 MB
        assert stream.feed(chunk) is chunk
    assert time.perf_counter() - started < 1.0
