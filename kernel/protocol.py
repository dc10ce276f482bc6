"""The conversation with the persistent shell, as bytes: what the kernel types, what it reads.

Sans-IO (in the spirit of h11): nothing here reads or writes a file descriptor, so every
corner (a marker split across reads, a multibyte character cut in two, a cell that prints
a fake marker) is unit-tested by feeding bytes.

What the kernel types
    One line per cell (:func:`cell_line`)::

        { case $- in *x*) __cbx_x=1; set +x;; *) __cbx_x=;; esac; } 2>/dev/null; \
        . /.cellbox/in/7.sh; { command printf '\\036%s %s\\036' NONCE "$?"; ...; } 2>/dev/null

    The cell itself is a file (multi-line code, heredocs and functions work; the terminal's
    4096-byte line limit does not apply), sourced by the shell. One *line* matters: a
    shell reading a terminal reads a line at a time, so anything typed after it would be
    read by the cell's own programs as their input.

    ``set -x`` must not print our wrapper: the first group turns tracing off silently
    (``{ ...; } 2>/dev/null`` hides the trace of the ``set +x`` itself) and remembers it; the
    cell file starts with ``${__cbx_x:+set -x}`` on its first line, so the user's code is
    traced exactly as if typed. The trailer also puts our prompt back (``PS1``) and clears
    ``PS0``/``PROMPT_COMMAND``, so a cell that sets a hostile prompt affects nothing.

What the kernel reads
    * The **end marker** ``\\x1e NONCE SP STATUS \\x1e``: printed by ``printf`` from a format
      with octal escapes, so the *echo* of the typed line (which shows ``\\036`` as four
      characters) never contains it. NONCE is 128 random bits, new for every cell and only
      ever typed, never printed, so output cannot forge it; a marker with a wrong nonce is
      just output.
    * The **prompt** ``\\x1e P SHELLNONCE \\x1e``: our ``PS1``. It is *not* how a cell's end
      is found. It tells the kernel that the shell is back at its prompt *without* having
      printed the end marker: the line was aborted (an interrupt; a syntax error in a POSIX
      shell's dot script). The kernel then types a *resync* line with a fresh nonce and
      waits for that. Every typed line is followed by exactly one prompt, so a prompt that
      is owed (after an end marker) is swallowed and only an unowed one means "aborted".
    * A **display request** ``\\x1e cellbox-display NAME [MIME] \\x1e``: written by the
      ``display`` command after it put a file in the exchange directory.
    * Everything else is output. The terminal turns ``\\n`` into ``\\r\\n``; that is undone
      (a lone ``\\r`` stays: progress bars update in place). The echo of what the kernel
      typed (the cell line, an answer to ``read``) is removed once.
"""

from __future__ import annotations

import codecs
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "CELL_PROLOGUE",
    "DisplayRequest",
    "EndMarker",
    "Event",
    "Output",
    "Prompt",
    "ShellOutput",
    "cell_file",
    "cell_line",
    "init_line",
    "new_nonce",
    "parse_init",
    "resync_line",
]

SEP = 0x1E  # ASCII record separator: never in text a person types
_SEP = b"\x1e"
_CURSOR_QUERY = b"\x1b[6n"
_NONCE = r"[0-9a-f]{32}"
_END = re.compile(rb"\x1e(" + _NONCE.encode() + rb") (\d{1,3})\x1e")
_PROMPT = re.compile(rb"\x1eP(" + _NONCE.encode() + rb")\x1e")
_DISPLAY_HEAD = b"\x1ecellbox-display "
_DISPLAY = re.compile(
    re.escape(_DISPLAY_HEAD) + rb"([A-Za-z0-9._-]{1,100})(?: ([a-z0-9.+/-]{1,100}))?\x1e"
)
# The longest thing that starts with \x1e and may still turn out to be one of the above.
_LONGEST = len(_DISPLAY_HEAD) + 100 + 1 + 100 + 1
_PARTIAL_END = re.compile(rb"\x1e(?:[0-9a-f]{0,32}|[0-9a-f]{32} \d{0,3})")
_PARTIAL_PROMPT = re.compile(rb"\x1eP[0-9a-f]{0,32}")
_PARTIAL_DISPLAY = re.compile(rb"[A-Za-z0-9._-]{0,100}(?: [a-z0-9.+/-]{0,100})?")


def _could_be_frame(tail: bytes) -> bool:
    """Whether ``tail`` (starting with the separator) may grow into a frame of ours."""
    if len(tail) <= len(_DISPLAY_HEAD) and _DISPLAY_HEAD.startswith(tail):
        return True
    if tail.startswith(_DISPLAY_HEAD):
        return _PARTIAL_DISPLAY.fullmatch(tail, len(_DISPLAY_HEAD)) is not None
    return bool(_PARTIAL_END.fullmatch(tail) or _PARTIAL_PROMPT.fullmatch(tail))


CELL_PROLOGUE = "${__cbx_x:+set -x}; "
_STALE_KEPT = 64
_INIT = re.compile(r"pid=(\d+) flavor=(\w*)\n")
_LITERAL = object()


def new_nonce() -> str:
    """128 random bits as 32 hex digits."""
    return secrets.token_hex(16)


def _trailer(nonce: str, toggle_echo: bool) -> str:
    """Save ``$?``, (echo off,) print the end marker, put our prompt back. Silent under -x."""
    # The \036 escapes are expanded by printf, so the typed text never holds the marker.
    echo_off = "stty -echo; " if toggle_echo else ""
    return (
        f"{{ __cbx_s=$?; {echo_off}command printf '\\036%s %s\\036' {nonce} \"$__cbx_s\"; "
        "PS1=$__cbx_p; PS2=; PS0=; unset PROMPT_COMMAND; } 2>/dev/null\n"
    )


def init_line(nonce: str, shell_nonce: str, extra: str = "") -> str:
    """The first line typed into a new shell: our prompt, no history, then a marker.

    Before the marker it prints ``pid=N flavor=F``: the shell's pid as the container sees
    it (to follow its working directory for completion) and ``bash`` for bash. Other shells
    (dash, busybox ash) get the terminal's echo turned off at their prompt: busybox's line
    editor redraws what is typed, which no echo filter can undo, and reads plainly when the
    terminal does not echo. Their cells then turn echo on and off around the cell
    (:func:`cell_line` with ``toggle_echo``). Everything bash-only is behind a test, as a
    failing special builtin makes a POSIX shell drop the rest of the line.
    """
    parts = [
        f"__cbx_p=$(printf '\\036P%s\\036' {shell_nonce})",
        "PS1=$__cbx_p; PS2=; PS0=; unset PROMPT_COMMAND HISTFILE",
        'if [ -n "${BASH_VERSION-}" ]; then set +o history; IGNOREEOF=1000000; __cbx_t=; '
        "else stty -echo 2>/dev/null; __cbx_t=1; fi",
        # The resync line calls this: short, so that a line editor does not wrap its echo.
        "__cbx_e() { __cbx_s=$2; ${__cbx_t:+stty -echo}; "
        "command printf '\\036%s %s\\036' \"$1\" \"$__cbx_s\"; "
        "PS1=$__cbx_p; PS2=; PS0=; unset PROMPT_COMMAND; }",
        "export PAGER=cat GIT_PAGER=cat MANPAGER=cat SYSTEMD_PAGER=",
    ]
    if extra:
        parts.append(extra)
    parts.append("command printf 'pid=%s flavor=%s\\n' $$ \"${BASH_VERSION:+bash}\"")
    return "; ".join(parts) + "; " + _trailer(nonce, False)


def parse_init(text: str) -> tuple[int | None, bool]:
    """``(pid, is_bash)`` from what the first line printed."""
    found = _INIT.search(text)
    if found is None:
        return None, False
    return int(found.group(1)), found.group(2) == "bash"


def cell_line(path: str, nonce: str, toggle_echo: bool = False) -> str:
    """The line that runs the cell file at ``path`` (as the shell sees it)."""
    echo_on = " stty echo;" if toggle_echo else ""
    quiet_trace = (
        f"{{ case $- in *x*) __cbx_x=1; set +x;; *) __cbx_x=;; esac;{echo_on} }} 2>/dev/null"
    )
    return f"{quiet_trace}; . {path}; {_trailer(nonce, toggle_echo)}"


def resync_line(nonce: str) -> str:
    """After an aborted line: a marker with a fresh nonce (and our prompt back).

    It is typed at a prompt where echo may be on and, in busybox, a line editor redraws
    what is typed: kept short (a function defined by :func:`init_line`) so it fits on one
    terminal line and its echo comes back verbatim.
    """
    return f"{{ __cbx_e {nonce} $?; }} 2>/dev/null\n"


def cell_file(code: str) -> str:
    """The cell file's text: the user's code, tracing restored on its first line."""
    return CELL_PROLOGUE + code + ("" if code.endswith("\n") else "\n")


@dataclass(frozen=True)
class Output:
    """Text the shell's programs printed."""

    text: str


@dataclass(frozen=True)
class EndMarker:
    """A line finished: ``nonce`` is the one it was typed with, ``status`` its ``$?``."""

    nonce: str
    status: int


@dataclass(frozen=True)
class Prompt:
    """The shell printed our prompt: it is reading its next line."""


@dataclass(frozen=True)
class DisplayRequest:
    """``display`` left the file ``name`` in the exchange directory (``mime`` if it said)."""

    name: str
    mime: str | None


Event = Output | EndMarker | Prompt | DisplayRequest


class ShellOutput:
    """Turns what the shell's terminal gives into :data:`Event` values.

    ``feed`` stops after an :class:`EndMarker` whose nonce was expected: the bytes after it
    belong to whatever comes next and are kept for the next ``feed``. Markers with nonces
    nobody expects are text; those of settled lines are swallowed; prompts with another
    shell nonce are text.
    """

    def __init__(self, shell_nonce: str) -> None:
        self._shell_nonce = shell_nonce.encode()
        self._expected: set[bytes] = set()
        self._stale: dict[bytes, None] = {}  # an ordered set, oldest first
        self._echoes: list[tuple[bytes, bool]] = []  # (typed bytes, sticky)
        self._pending = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def expect(self, nonce: str) -> None:
        """Report end markers carrying ``nonce`` (until :meth:`settle`)."""
        self._expected.add(nonce.encode())

    def settle(self) -> None:
        """The line is over: markers of its nonces that still come are swallowed, unseen.

        Until then a nonce's marker may come more than once: a program that read the nonce
        out of the shell's memory can print it early, and the shell's own marker follows.
        """
        for nonce in self._expected:
            self._stale[nonce] = None
        self._expected.clear()
        while len(self._stale) > _STALE_KEPT:  # a marker that late never comes
            del self._stale[next(iter(self._stale))]

    def expecting(self) -> bool:
        return bool(self._expected)

    def strip_echo(self, typed: bytes, *, sticky: bool = False) -> None:
        """The terminal will echo ``typed`` (with ``\\n``): drop that echo.

        ``sticky`` (a typed command line, which holds a nonce and so cannot be output of
        the cell's): drop every copy until :meth:`forget_echoes` -- a terminal reprints
        pending input (``PENDIN``) when a program switches it back to canonical mode. Else
        (an answer typed for a program) only the first copy is the echo.
        """
        self._echoes.append((typed, sticky))

    def forget_echoes(self) -> None:
        """The cell is over: echo that did not come (echo was off) is no longer awaited."""
        self._echoes.clear()

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes) -> list[Event]:
        """Process ``data`` (and anything held back); return the events, in order."""
        buf = self._pending + data if self._pending else data
        self._pending = b""
        events: list[Event] = []
        if b"\r" in buf:
            if buf.endswith(b"\r"):
                buf, self._pending = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n")
        if self._echoes:
            buf = self._strip_echoes(buf)
        if _CURSOR_QUERY in buf:  # busybox's line editor asking a terminal; nobody answers
            buf = buf.replace(_CURSOR_QUERY, b"")
        pos = 0
        while True:
            sep = buf.find(_SEP, pos)
            if sep < 0:
                self._text(events, buf[pos:])
                return events
            self._text(events, buf[pos:sep])
            event, length = self._framed(buf, sep)
            if length == 0:  # could still become a frame: wait for more bytes
                self._pending = buf[sep:] + self._pending
                return events
            if event is _LITERAL:  # a separator that frames nothing of ours is text
                self._text(events, buf[sep : sep + 1])
                pos = sep + 1
                continue
            pos = sep + length
            if isinstance(event, (Output, EndMarker, Prompt, DisplayRequest)):
                events.append(event)
                if isinstance(event, EndMarker):
                    self._pending = buf[pos:] + self._pending
                    return events

    def finish(self) -> list[Event]:
        """End of file: whatever was held back is text now."""
        events: list[Event] = []
        rest, self._pending = self._pending, b""
        self._text(events, rest)
        tail = self._decoder.decode(b"", final=True)
        if tail:
            events.append(Output(tail))
        return events

    def _text(self, events: list[Event], data: bytes) -> None:
        if not data:
            return
        text = self._decoder.decode(data)
        if text:
            if events and isinstance(events[-1], Output):
                events[-1] = Output(events[-1].text + text)
            else:
                events.append(Output(text))

    def _framed(self, buf: bytes, sep: int) -> tuple[Event | object | None, int]:
        """The frame starting at ``buf[sep]``: (event, its length).

        ``None`` is a frame to swallow (a stale marker); :data:`_LITERAL` a separator that
        starts nothing of ours; length 0 means "undecided, need more bytes".
        """
        if (m := _END.match(buf, sep)) is not None:
            nonce = m.group(1)
            if nonce in self._expected:
                return EndMarker(nonce.decode(), int(m.group(2))), m.end() - sep
            if nonce in self._stale:
                return None, m.end() - sep
            return _LITERAL, 1
        if (m := _PROMPT.match(buf, sep)) is not None:
            if m.group(1) == self._shell_nonce:
                return Prompt(), m.end() - sep
            return _LITERAL, 1
        if (m := _DISPLAY.match(buf, sep)) is not None:
            mime = m.group(2).decode() if m.group(2) else None
            return DisplayRequest(m.group(1).decode(), mime), m.end() - sep
        tail = buf[sep : sep + _LONGEST]
        if len(tail) < _LONGEST and _could_be_frame(tail):
            return None, 0
        return _LITERAL, 1

    def _strip_echoes(self, buf: bytes) -> bytes:
        kept: list[tuple[bytes, bool]] = []
        for echo, sticky in self._echoes:
            at = buf.find(echo)
            while at >= 0:
                buf = buf[:at] + buf[at + len(echo) :]
                if not sticky:
                    break
                at = buf.find(echo, at)
            if sticky or at < 0:
                kept.append((echo, sticky))
        self._echoes = kept
        # Hold back a tail that may be the start of an echo still to come whole.
        hold = 0
        for echo, _ in self._echoes:
            first = echo[:1]
            at = buf.find(first, max(0, len(buf) - len(echo) + 1))
            while at >= 0:
                if echo.startswith(buf[at:]):
                    hold = max(hold, len(buf) - at)
                    break
                at = buf.find(first, at + 1)
        if hold:
            self._pending = buf[-hold:] + self._pending
            return buf[:-hold]
        return buf
