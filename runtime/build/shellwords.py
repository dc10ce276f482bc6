"""Docker's word processing for Containerfile arguments: quotes, escapes and ``$VAR``. Pure.

The builder applies :func:`expand` to the arguments of FROM, COPY, ADD, ENV, ARG, LABEL,
WORKDIR, USER, EXPOSE, VOLUME and STOPSIGNAL, as Docker does (RUN, CMD, ENTRYPOINT, SHELL
and HEALTHCHECK are left to the shell in the container). Inside a word:

* ``'...'`` is literal; ``"..."`` is literal except ``$`` substitutions and the escapes
  ``\\"``, ``\\$`` and ``\\\\``; outside quotes the escape character makes the next
  character literal. Quotes are removed.
* ``$NAME``, ``${NAME}``; ``${NAME:-word}`` / ``${NAME-word}`` (default when unset or
  empty / unset), ``${NAME:+word}`` / ``${NAME+word}`` (alternative when set and not empty /
  set), ``${NAME:?message}`` / ``${NAME?message}`` (an error), ``${NAME#glob}``,
  ``${NAME##glob}``, ``${NAME%glob}``, ``${NAME%%glob}`` (remove the shortest / longest
  matching prefix / suffix). An unset variable is the empty string. The words in
  modifiers are processed the same way (nested substitutions, quotes).

:func:`split_words` cuts an argument string into words at unquoted white space, keeping
the quotes for :func:`expand` (Docker's ``parseWords``), for ``KEY=VALUE`` lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["ExpansionError", "expand", "split_words"]

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class ExpansionError(ValueError):
    """A word that cannot be processed: an open quote, a bad ``${...}``, a ``:?`` error."""


def split_words(text: str, escape: str = "\\") -> list[str]:
    """``text`` cut at white space outside quotes; quotes and escapes are kept."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if not quote and ch.isspace():
            if word:
                words.append("".join(word))
                word = []
            i += 1
            continue
        if ch == escape and quote != "'" and i + 1 < len(text):
            word.append(text[i : i + 2])
            i += 2
            continue
        if not quote and ch in "'\"":
            quote = ch
        elif quote == ch:
            quote = ""
        word.append(ch)
        i += 1
    if word:
        words.append("".join(word))
    return words


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """``word`` with quotes removed and variables substituted from ``env``."""
    expander = _Expander(word, env, escape)
    result = expander.process(stop="")
    return result


class _Expander:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.pos = 0

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1
        return ch

    def process(self, stop: str) -> str:
        """Process until an unquoted ``stop`` character (consumed) or the end."""
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self._peek()
            if stop and ch == stop:
                self.pos += 1
                return "".join(out)
            if ch == "'":
                out.append(self._single_quoted())
            elif ch == '"':
                out.append(self._double_quoted())
            elif ch == "$":
                out.append(self._dollar())
            elif ch == self.escape:
                self.pos += 1
                # A trailing escape stays as it is; otherwise the next character is literal.
                out.append(self._next() if self.pos < len(self.text) else ch)
            else:
                out.append(self._next())
        if stop:
            raise ExpansionError(f"missing '{stop}' in {self.text!r}")
        return "".join(out)

    def _single_quoted(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end < 0:
            raise ExpansionError(f"unmatched single quote in {self.text!r}")
        value = self.text[self.pos : end]
        self.pos = end + 1
        return value

    def _double_quoted(self) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise ExpansionError(f"unmatched double quote in {self.text!r}")
            ch = self._peek()
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self.pos += 1
            if ch == self.escape and self._peek() in ('"', "$", self.escape) and self._peek():
                ch = self._next()
            out.append(ch)

    def _name(self) -> str:
        start = self.pos
        if self._peek().isdigit():
            self.pos += 1  # $1 and the like: one digit, never set here
            return self.text[start : self.pos]
        while self._peek() and self._peek() in _NAME_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def _dollar(self) -> str:
        self.pos += 1  # the "$"
        if self._peek() == "{":
            self.pos += 1
            return self._braced()
        name = self._name()
        if not name:
            return "$"
        return self.env.get(name, "")

    def _braced(self) -> str:
        name = self._name()
        if not name:
            raise ExpansionError(f"bad substitution in {self.text!r}: a name must follow '${{'")
        ch = self._next()
        if not ch:
            raise ExpansionError(f"missing '}}' in {self.text!r}")
        if ch == "}":
            return self.env.get(name, "")
        value = self.env.get(name)
        colon = ch == ":"
        if colon:
            ch = self._next()
        if ch in ("-", "+", "?"):
            word = self.process(stop="}")
            empty = value is None or (colon and value == "")
            if ch == "-":
                return word if empty else str(value)
            if ch == "+":
                return "" if empty else word
            if empty:
                raise ExpansionError(f"{name}: {word or 'is not set'}")
            return str(value)
        if not colon and ch in ("#", "%"):
            longest = self._peek() == ch
            if longest:
                self.pos += 1
            pattern = self.process(stop="}")
            return _trim(value or "", pattern, prefix=ch == "#", longest=longest)
        shown = self.text[: self.pos + 10]
        raise ExpansionError(
            f"unsupported substitution in {shown!r}: use ${{{name}}}, ${{{name}:-default}}, "
            f"${{{name}:+alternative}}, ${{{name}:?message}}, ${{{name}#glob}} or "
            f"${{{name}%glob}}"
        )


def _trim(value: str, pattern: str, *, prefix: bool, longest: bool) -> str:
    """Remove the shortest or longest prefix or suffix of ``value`` matching a glob."""
    import fnmatch

    regex = re.compile(fnmatch.translate(pattern), re.DOTALL)
    cuts = range(len(value) + 1)
    order = reversed(cuts) if longest else cuts
    for cut in order:
        if prefix and regex.match(value[:cut]):
            return value[cut:]
        if not prefix and regex.match(value[len(value) - cut :]):
            return value[: len(value) - cut]
    return value
