"""``is_complete`` for shell code: is this cell (or console input) ready to run?

A small recursive-descent scanner of POSIX sh and bash syntax, pure and fast (no shell
is asked: the console calls this on every Enter). It answers

* ``incomplete`` for an open quote (``'``, ``"``, ``$'``, a backtick), an open ``$(``,
  ``${``, ``$((``, ``((``, ``[[``, a here-document whose delimiter line has not come, a
  trailing ``\\``, a trailing ``|``, ``&&`` or ``||``, and an open compound command
  (``if``/``fi``, ``case``/``esac``, ``for``/``while``/``until``/``select`` ... ``done``,
  ``{ }``, ``( )``), with an indent for the next line;
* ``invalid`` for a closer that closes nothing (``fi``, ``done``, ``esac``, ``then``, ``}``,
  ``)``, ``;;`` out of place) -- running it would only print bash's syntax error;
* ``complete`` otherwise. Whatever it misjudges, bash judges again when the cell runs.

Leading magic lines (``%container ...``) are complete unless one ends in ``\\``.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["INDENT", "is_complete"]

Status = Literal["complete", "incomplete", "invalid"]
INDENT = "    "
_META = set(" \t\n;&|<>()")
_BLANK = " \t"


class _Incomplete(Exception):
    def __init__(self, depth: int) -> None:
        super().__init__(depth)
        self.depth = depth


class _Invalid(Exception):
    pass


class _Scanner:
    """Scans one piece of shell code; raises _Incomplete or _Invalid, else returns."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.heredocs: list[tuple[str, bool]] = []
        self.depth = 0

    # -- characters ------------------------------------------------------------------

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def eof(self) -> bool:
        return self.i >= len(self.s)

    def incomplete(self) -> _Incomplete:
        return _Incomplete(self.depth)

    # -- command lists ---------------------------------------------------------------

    def commands(self, closers: frozenset[str]) -> str | None:
        """Commands until a closer (a reserved word at command start, ``)`` or ``;;``).

        Returns the closer, or None at the end of the text when ``closers`` is empty.
        """
        start = True  # at the start of a command: reserved words count here
        need = False  # after | && ||: a command must follow
        while True:
            self.skip_blanks()
            if self.eof():
                if closers or need:
                    raise self.incomplete()
                return None
            c = self.peek()
            if c == "\n":
                self.i += 1
                self.read_heredocs()
                start = True
                continue
            if c == "#":
                while not self.eof() and self.peek() != "\n":
                    self.i += 1
                continue
            if c == "\\" and self.peek(1) == "\n":
                self.i += 2
                continue
            if c in ";&|":
                op = self.operator()
                if op in (";;", ";&", ";;&"):
                    if ";;" in closers:
                        return ";;"
                    raise _Invalid(op)
                need = op in ("|", "||", "&&", "|&")
                start = True
                continue
            if c == ")":
                if ")" in closers:
                    self.i += 1
                    return ")"
                raise _Invalid(")")
            if c == "(":
                self.i += 1
                if start and self.peek() == "(":
                    self.i += 1
                    self.arithmetic()
                else:
                    self.nested(frozenset({")"}))
                start, need = False, False
                continue
            if c in "<>":
                self.redirection()
                continue
            word = self.word()
            need = False
            if start:
                closer = self.reserved(word, closers)
                if closer is not None:
                    return closer
                if word in ("!", "time") or ("=" in word and not word.startswith("=")):
                    continue
                self.skip_blanks()
                if self.peek() == "(" and self.peek(1) == ")":  # name() { ...; }
                    self.i += 2
                    continue
                start = word in _STARTS_COMMAND
            else:
                start = False

    def nested(self, closers: frozenset[str]) -> str:
        self.depth += 1
        closer = self.commands(closers)
        self.depth -= 1
        assert closer is not None
        return closer

    def reserved(self, word: str, closers: frozenset[str]) -> str | None:
        """Handle a word at command start; a closer it is, or None."""
        if word in closers:
            return word
        if word in _CLOSERS:
            raise _Invalid(word)
        if word == "if":
            self.nested(frozenset({"then"}))
            while True:
                closer = self.nested(frozenset({"elif", "else", "fi"}))
                if closer == "elif":
                    self.nested(frozenset({"then"}))
                elif closer == "else":
                    self.nested(frozenset({"fi"}))
                    return None
                else:
                    return None
        if word in ("while", "until"):
            self.nested(frozenset({"do"}))
            self.nested(frozenset({"done"}))
        elif word in ("for", "select"):
            self.skip_blanks()
            if self.peek() == "(" and self.peek(1) == "(":
                self.i += 2
                self.arithmetic()
            self.nested(frozenset({"do"}))
            self.nested(frozenset({"done"}))
        elif word == "case":
            self.case()
        elif word == "{":
            self.nested(frozenset({"}"}))
        elif word == "[[":
            self.double_bracket()
        elif word == "function":
            self.skip_blanks()
            self.word()  # the name
            self.skip_blanks()
            if self.peek() == "(" and self.peek(1) == ")":
                self.i += 2
            self.skip_blanks_and_newlines()
            if self.eof():
                raise self.incomplete()
            if self.peek() == "(":
                self.i += 1
                self.nested(frozenset({")"}))
            else:
                self.reserved(self.word(), frozenset())
        return None

    def case(self) -> None:
        self.depth += 1
        self.skip_blanks()
        if self.eof():
            raise self.incomplete()
        self.word()  # the subject
        while True:  # "in", possibly after newlines
            self.skip_blanks_and_newlines()
            if self.eof():
                raise self.incomplete()
            if self.word() == "in":
                break
        while True:
            self.skip_blanks_and_newlines()
            if self.eof():
                raise self.incomplete()
            if self.peek() == "(":
                self.i += 1
            if self.s.startswith("esac", self.i) and (self.peek(4) in _META or self.peek(4) == ""):
                self.i += 4
                self.depth -= 1
                return
            self.pattern()
            if self.commands(frozenset({";;", "esac"})) == "esac":
                self.depth -= 1
                return

    def pattern(self) -> None:
        """A case pattern up to and including its ``)``."""
        while True:
            self.skip_blanks()
            if self.eof():
                raise self.incomplete()
            if self.peek() == ")":
                self.i += 1
                return
            if self.peek() in "|\n":
                self.i += 1
                continue
            self.word(stop=")|")

    def double_bracket(self) -> None:
        while True:
            self.skip_blanks_and_newlines()
            if self.eof():
                raise self.incomplete()
            if self.peek() in ";&|()<>":
                self.i += 1
                continue
            if self.word() == "]]":
                return

    # -- tokens ----------------------------------------------------------------------

    def skip_blanks(self) -> None:
        while not self.eof() and self.peek() in _BLANK:
            self.i += 1

    def skip_blanks_and_newlines(self) -> None:
        while not self.eof():
            c = self.peek()
            if c in _BLANK or c == "\n":
                self.i += 1
            elif c == "#":
                while not self.eof() and self.peek() != "\n":
                    self.i += 1
            else:
                return

    def operator(self) -> str:
        for op in (";;&", ";;", ";&", "&&", "||", "|&", ";", "&", "|"):
            if self.s.startswith(op, self.i):
                self.i += len(op)
                return op
        raise AssertionError("not an operator")

    def redirection(self) -> None:
        c = self.peek()
        if c in "<>" and self.peek(1) == "(":  # process substitution
            self.i += 2
            self.nested(frozenset({")"}))
            return
        if self.s.startswith("<<<", self.i):
            self.i += 3
            return
        if self.s.startswith("<<", self.i):
            self.i += 2
            strip = self.peek() == "-"
            if strip:
                self.i += 1
            self.skip_blanks()
            if self.eof() or self.peek() == "\n":
                raise _Invalid("<<")
            delimiter = _unquote(self.word())
            self.heredocs.append((delimiter, strip))
            return
        while not self.eof() and self.peek() in "<>&|-":
            self.i += 1

    def read_heredocs(self) -> None:
        """After a newline: the bodies of the here-documents started on the line."""
        pending, self.heredocs = self.heredocs, []
        for delimiter, strip in pending:
            while True:
                if self.eof():
                    raise self.incomplete()
                end = self.s.find("\n", self.i)
                line = self.s[self.i : end if end >= 0 else len(self.s)]
                self.i = end + 1 if end >= 0 else len(self.s)
                if (line.lstrip("\t") if strip else line) == delimiter:
                    break
                if end < 0:
                    raise self.incomplete()

    def word(self, stop: str = "") -> str:
        """One word, with its quotes and expansions; returns its raw text."""
        begin = self.i
        while not self.eof():
            c = self.peek()
            if c in _META or c in stop:
                if c == "(" and self.i > begin and self.s[self.i - 1] in "@*+?!":
                    self.extglob()  # @(a|b)
                    continue
                break
            if c == "\\":
                if self.peek(1) == "":
                    self.i += 1
                    raise self.incomplete()
                self.i += 2
            elif c == "'":
                self.single_quote()
            elif c == '"':
                self.double_quote()
            elif c == "`":
                self.backtick()
            elif c == "$":
                self.dollar()
            else:
                self.i += 1
        if self.i == begin:  # a lone metacharacter we do not handle: step over it
            self.i += 1
        return self.s[begin : self.i]

    def extglob(self) -> None:
        self.i += 1
        depth = 1
        while depth:
            if self.eof():
                raise self.incomplete()
            c = self.peek()
            self.i += 1
            depth += {"(": 1, ")": -1}.get(c, 0)

    def single_quote(self) -> None:
        end = self.s.find("'", self.i + 1)
        if end < 0:
            self.i = len(self.s)
            raise self.incomplete()
        self.i = end + 1

    def ansi_quote(self) -> None:  # $'...' with backslash escapes
        self.i += 2
        self.skip_past("'")

    def skip_past(self, close: str) -> None:
        """Move just past the next unescaped ``close`` (a backslash escapes one character)."""
        while True:
            if self.eof():
                raise self.incomplete()
            c = self.peek()
            if c == "\\":
                self.i += 2
            elif c == close:
                self.i += 1
                return
            else:
                self.i += 1

    def double_quote(self) -> None:
        self.i += 1
        while True:
            if self.eof():
                raise self.incomplete()
            c = self.peek()
            if c == '"':
                self.i += 1
                return
            if c == "\\":
                self.i += 2
            elif c == "`":
                self.backtick()
            elif c == "$":
                self.dollar(quoted=True)
            else:
                self.i += 1

    def backtick(self) -> None:
        self.i += 1
        self.skip_past("`")

    def dollar(self, quoted: bool = False) -> None:
        nxt = self.peek(1)
        if nxt == "'" and not quoted:
            self.ansi_quote()
        elif nxt == "(" and self.peek(2) == "(":
            self.i += 3
            self.arithmetic()
        elif nxt == "(":
            self.i += 2
            self.nested(frozenset({")"}))
        elif nxt == "{":
            self.i += 2
            self.braced()
        else:
            self.i += 1

    def braced(self) -> None:
        """``${...}``: to the matching brace, through quotes and expansions."""
        while True:
            if self.eof():
                raise self.incomplete()
            c = self.peek()
            if c == "}":
                self.i += 1
                return
            if c == "\\":
                self.i += 2
            elif c == "'":
                self.single_quote()
            elif c == '"':
                self.double_quote()
            elif c == "`":
                self.backtick()
            elif c == "$":
                self.dollar(quoted=True)
            else:
                self.i += 1

    def arithmetic(self) -> None:
        """After ``((`` or ``$((``: to the matching ``))``."""
        depth = 0
        while True:
            if self.eof():
                raise self.incomplete()
            c = self.peek()
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0 and self.peek(1) == ")":
                    self.i += 2
                    return
                depth -= 1
            elif c == "$":
                self.dollar(quoted=True)
                continue
            elif c in "'\"":
                self.single_quote() if c == "'" else self.double_quote()
                continue
            self.i += 1


_CLOSERS = frozenset({"then", "elif", "else", "fi", "do", "done", "esac", "}"})
# After these words the next word is again at a command start.
_STARTS_COMMAND = frozenset({"!", "time", "then", "else", "do", "{", "elif", "if", "while",
                             "until"})


def _unquote(word: str) -> str:
    """A here-document delimiter as the shell compares it: quotes and backslashes gone."""
    out = []
    i = 0
    while i < len(word):
        c = word[i]
        if c == "\\" and i + 1 < len(word):
            out.append(word[i + 1])
            i += 2
        elif c in "'\"":
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _strip_magics(code: str) -> tuple[str, bool]:
    """Blank the leading magic lines; True when the last of them continues (``\\``)."""
    lines = code.split("\n")
    continued = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if continued:
            continued = stripped.endswith("\\")
            lines[i] = ""
            continue
        if not stripped or stripped.startswith("#"):
            continue
        job_spec = stripped[1:2].isdigit() or stripped[1:2] in "+-%?"
        if not stripped.startswith("%") or (job_spec and not stripped.startswith("%%container")):
            break
        continued = stripped.endswith("\\")
        lines[i] = ""
    return "\n".join(lines), continued


def is_complete(code: str) -> tuple[Status, str]:
    """``(status, indent)`` for ``code``; the indent is for the next line when incomplete."""
    body, continued = _strip_magics(code)
    if continued:
        return "incomplete", ""
    scanner = _Scanner(body)
    try:
        scanner.commands(frozenset())
        if scanner.heredocs:
            raise scanner.incomplete()
    except _Incomplete as exc:
        return "incomplete", INDENT * exc.depth
    except _Invalid:
        return "invalid", ""
    return "complete", ""
