"""``.containerignore`` / ``.dockerignore`` patterns, matched as Docker matches them. Pure.

The file (moby/patternmatcher's ``ignorefile.ReadAll``): one pattern a line; a line whose
first character is ``#`` is a comment; surrounding white space is trimmed; a leading
``!`` re-includes what earlier patterns excluded; each pattern is cleaned like Go's
``filepath.Clean`` and a leading ``/`` is dropped (patterns are relative to the context).

A pattern (``patternmatcher.New``/``compile``): ``*`` matches any run of characters
except ``/``, ``?`` one such character, ``[...]`` a class (``^`` negates), ``\\`` makes the
next character literal, and ``**`` any number of directories, zero included
(``**/x``, ``a/**``, ``a/**/b``). The last pattern that matches a path decides, and a
pattern that matches one of the path's parent directories matches the path too
(``MatchesOrParentMatches``), so ``build`` leaves out everything under ``build/``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import BuildError

__all__ = ["IgnorePattern", "IgnoreRules", "clean_path"]

_ESCAPED = frozenset(".+()|{}$")


def clean_path(path: str) -> str:
    """Go's ``filepath.Clean`` for slash-separated paths ("" → ".")."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")  # POSIX keeps "//", Go does not
    return cleaned


@dataclass(frozen=True)
class IgnorePattern:
    """One compiled pattern."""

    text: str  # cleaned, without the "!"
    exclusion: bool  # a "!" pattern: re-includes
    kind: str  # "exact" | "prefix" | "suffix" | "regexp"
    regexp: re.Pattern[str] | None

    @classmethod
    def compile(cls, text: str, exclusion: bool) -> IgnorePattern:
        """Compile a cleaned pattern; ValueError if it is malformed."""
        _check_syntax(text)
        regex = "^"
        kind = "exact"
        i = pos = 0
        while pos < len(text):
            ch = text[pos]
            pos += 1
            if ch == "*":
                if pos < len(text) and text[pos] == "*":
                    pos += 1
                    if pos < len(text) and text[pos] == "/":
                        pos += 1
                    if pos >= len(text):
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            regex += ".*"
                            kind = "regexp"
                    else:
                        regex += "(.*/)?"
                        kind = "regexp"
                    if i == 0:
                        kind = "suffix"
                else:
                    regex += "[^/]*"
                    kind = "regexp"
            elif ch == "?":
                regex += "[^/]"
                kind = "regexp"
            elif ch in _ESCAPED:
                regex += "\\" + ch
            elif ch == "\\":
                if pos < len(text):
                    regex += "\\" + text[pos]
                    pos += 1
                    kind = "regexp"
                else:
                    regex += "\\\\"
            elif ch in "[]":
                regex += ch
                kind = "regexp"
            else:
                regex += ch
            i += 1
        compiled = None
        if kind == "regexp":
            try:
                compiled = re.compile(regex + "$")
            except re.error as exc:
                raise ValueError(f"bad pattern {text!r}: {exc}") from None
        return cls(text, exclusion, kind, compiled)

    def match(self, path: str) -> bool:
        """Whether ``path`` (cleaned, relative, slash-separated) matches."""
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regexp is not None
        return self.regexp.match(path) is not None


def _check_syntax(text: str) -> None:
    """Refuse what Go's ``filepath.Match`` calls a bad pattern: open classes, a trailing \\."""
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch == "\\":
            if pos + 1 >= len(text):
                raise ValueError(f"bad pattern {text!r}: it ends with a lone backslash")
            pos += 2
            continue
        if ch == "[":
            end = pos + 1
            if end < len(text) and text[end] == "^":
                end += 1
            first = True
            while end < len(text) and (text[end] != "]" or first):
                if text[end] == "]" and first:
                    raise ValueError(f"bad pattern {text!r}: an empty character class")
                end += 2 if text[end] == "\\" else 1
                first = False
            if end >= len(text):
                raise ValueError(f"bad pattern {text!r}: '[' is never closed")
            pos = end
        pos += 1


class IgnoreRules:
    """The patterns of an ignore file, in order."""

    def __init__(self, patterns: Sequence[IgnorePattern] = ()) -> None:
        self.patterns = tuple(patterns)

    @classmethod
    def parse(cls, text: str, *, filename: str = ".containerignore") -> IgnoreRules:
        """Read an ignore file's text; BuildError naming the line of a bad pattern."""
        patterns = []
        for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
            line = raw.removesuffix("\r")
            if line.startswith("#"):
                continue
            pattern = line.strip()
            if not pattern:
                continue
            exclusion = pattern.startswith("!")
            if exclusion:
                pattern = pattern[1:].strip()
            if not pattern:
                raise BuildError(f"{filename} line {number}: '!' needs a pattern after it")
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
            try:
                patterns.append(IgnorePattern.compile(pattern, exclusion))
            except ValueError as exc:
                raise BuildError(f"{filename} line {number}: {exc}") from None
        return cls(patterns)

    @property
    def has_exclusions(self) -> bool:
        """Whether some pattern re-includes ("!"): then an ignored dir may hold kept files."""
        return any(p.exclusion for p in self.patterns)

    def ignored(self, path: str) -> bool:
        """Whether ``path`` (relative to the context) is left out of it."""
        path = clean_path(path)
        if path in (".", ""):
            return False
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # only a "!" can change a match, only a plain one a non-match
            hit = pattern.match(path)
            if not hit:
                hit = any(pattern.match("/".join(parents[: i + 1])) for i in range(len(parents)))
            if hit:
                matched = not pattern.exclusion
        return matched
