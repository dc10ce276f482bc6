"""Terminal text from a container, without the control sequences that act on a terminal.

A cell's output is shown by JupyterLab (which draws ANSI colours and ignores the rest) but
also printed by terminal frontends (``jupyter console``) and by ``cellbox logs`` into a
real terminal, where escape sequences act: set the window title, write the clipboard
(OSC 52), move the cursor over earlier lines, redefine keys, reset the terminal. So the
kernel keeps only what a notebook can show:

* printable text, ``\\n``, ``\\r`` (progress bars update in place), ``\\t`` and ``\\b``;
* SGR sequences (``ESC [ ... m``: colours, bold), whose parameters are digits, ``;`` and
  ``:`` only.

Everything else goes: other CSI sequences (``ESC [2J`` clears the screen, ``ESC [A``
moves up), OSC/DCS/SOS/PM/APC strings up to their terminator, two-character escapes
(``ESC c`` resets the terminal), the other C0 controls (the bell, the record separator
of the kernel's own markers), DEL and the C1 controls (U+0080–U+009F, where some
terminals see ``CSI``).

:class:`TerminalText` is incremental (a sequence may be cut between two reads) and cheap
on plain text: one regex search per chunk when there is nothing to remove.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SEQUENCE", "TerminalText", "clean_text"]

MAX_SEQUENCE = 256  # a longer unfinished CSI or escape is dropped, not held
_SPECIAL = re.compile(r"[\x00-\x07\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The same characters for ASCII text, looked for one by one: ``in`` is a memchr, about 10x
# faster than the character class above on the plain output most cells print.
_ASCII_SPECIAL = tuple(chr(c) for c in (*range(0x08), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F))
_CSI = re.compile(r"\x1b\[([0-?]*)([ -/]*)([@-~])")
_CSI_START = re.compile(r"\x1b\[[0-?]*[ -/]*")
_ESCAPE = re.compile(r"\x1b[ -/]*[0-~]")
_ESCAPE_START = re.compile(r"\x1b[ -/]*")
_SGR_PARAMS = re.compile(r"[0-9;:]{0,64}")
_STRING_INTRO = frozenset("]PX^_")  # OSC, DCS, SOS, PM, APC
_STRING_END = re.compile(r"\x07|\x1b\\")


class TerminalText:
    """Filters one stream of text (see the module docstring); keep one per stream."""

    def __init__(self) -> None:
        self._held = ""  # the start of a sequence cut off by the end of the last chunk
        self._in_string = False  # inside an OSC/DCS/... string: drop until its end

    def feed(self, text: str) -> str:
        """The printable part of ``text`` (and of what was held back before)."""
        buf = self._held + text if self._held else text
        self._held = ""
        if self._in_string:
            end = _STRING_END.search(buf)
            if end is None:
                if buf.endswith("\x1b"):
                    self._held = "\x1b"
                return ""
            self._in_string = False
            buf = buf[end.end() :]
        if buf.isascii():
            if not any(char in buf for char in _ASCII_SPECIAL):
                return buf
        elif _SPECIAL.search(buf) is None:
            return buf
        return "".join(self._filter(buf))

    def finish(self) -> str:
        """End of the stream: an unfinished sequence is dropped."""
        self._held = ""
        self._in_string = False
        return ""

    def _filter(self, buf: str) -> list[str]:
        out: list[str] = []
        pos = 0
        size = len(buf)
        while True:
            found = _SPECIAL.search(buf, pos)
            if found is None:
                out.append(buf[pos:])
                return out
            at = found.start()
            out.append(buf[pos:at])
            if buf[at] != "\x1b":
                pos = at + 1  # a control character on its own: dropped
                continue
            if at + 1 == size:
                self._held = "\x1b"
                return out
            intro = buf[at + 1]
            if intro == "[":
                pos = self._csi(buf, at, out)
            elif intro in _STRING_INTRO:
                end = _STRING_END.search(buf, at + 2)
                if end is None:
                    self._in_string = True
                    if buf.endswith("\x1b"):
                        self._held = "\x1b"
                    return out
                pos = end.end()
            else:
                pos = self._escape(buf, at)
                if pos == size and self._held:
                    return out
            if pos >= size:
                return out

    def _csi(self, buf: str, at: int, out: list[str]) -> int:
        """Handle the CSI sequence at ``at``; the position after it."""
        csi = _CSI.match(buf, at)
        if csi is not None:
            params, intermediates, final = csi.groups()
            if final == "m" and not intermediates and _SGR_PARAMS.fullmatch(params):
                out.append(csi.group(0))
            return csi.end()
        start = _CSI_START.match(buf, at)
        assert start is not None
        if start.end() == len(buf):  # cut by the end of the chunk
            self._hold(buf, at)
            return len(buf)
        return start.end()  # broken off by a character that ends no sequence: drop it

    def _escape(self, buf: str, at: int) -> int:
        """Handle a two-character (or intermediate) escape at ``at``; the position after."""
        escape = _ESCAPE.match(buf, at)
        if escape is not None:
            return escape.end()
        start = _ESCAPE_START.match(buf, at)
        if start is not None and start.end() == len(buf):  # cut by the end of the chunk
            self._hold(buf, at)
            return len(buf)
        return at + 1  # ESC before something that is no escape: drop the ESC

    def _hold(self, buf: str, at: int) -> None:
        if len(buf) - at <= MAX_SEQUENCE:
            self._held = buf[at:]


def clean_text(text: str) -> str:
    """``text`` (complete, not a stream) without terminal control sequences."""
    return TerminalText().feed(text)
