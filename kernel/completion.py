"""Completion and inspection: what is being completed (pure), and the shell code that asks.

:func:`completion_request` looks at the code left of the cursor and decides what the word
there is: a **command** (first word of a command), a **variable** (``$HO``, ``${HO``), a
**file** (anything else), or a **magic** (``%con`` on a magic line; answered without a
shell). :func:`completion_script` is the shell code that lists candidates -- ``compgen`` in
bash, globs and a walk of ``$PATH`` in a POSIX sh -- and :func:`parse_matches` turns its
output into the reply's matches (directories end in ``/``, special characters escaped).

The kernel runs the script in the container: in the cell shell when it is idle (it knows
the cell's functions, aliases and variables), else in a *side shell* that first changes to
the cell shell's working directory (``/proc/PID/cwd``), so completion answers while a cell
runs.

:func:`inspect_word` and :func:`inspect_script` do the same for inspection: ``type`` of the
word at the cursor, then ``help`` (builtins) or ``--help`` (programs; stdin from /dev/null
and under ``timeout`` so a program that ignores ``--help`` cannot hang it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .magics import MAGICS

__all__ = [
    "CompletionRequest",
    "completion_request",
    "completion_script",
    "inspect_script",
    "inspect_word",
    "parse_matches",
    "shell_quote",
]

Kind = Literal["command", "file", "variable", "magic"]
_WORD_BREAKS = " \t\n;|&()<>`\"'"
_COMMAND_BEFORE = re.compile(
    r"(?:^|[;|&(`!]|\$\(|\b(?:if|then|do|else|elif|while|until|sudo|time|exec|xargs|env|"
    r"nohup|command|builtin))\s*$"
)
_ESCAPE = re.compile(r"([ \t\\'\"()&;|<>$`!*?\[\]{}#~])")
MAX_MATCHES = 500


@dataclass(frozen=True)
class CompletionRequest:
    """What to complete: ``word`` (a prefix) replacing ``code[start:end]``."""

    kind: Kind
    word: str
    start: int
    end: int


def shell_quote(text: str) -> str:
    """``text`` as one single-quoted shell word."""
    return "'" + text.replace("'", "'\\''") + "'"


def completion_request(code: str, cursor: int) -> CompletionRequest:
    """Decide what the word left of ``cursor`` is (see the module docstring)."""
    cursor = max(0, min(cursor, len(code)))
    before = code[:cursor]
    line_start = before.rfind("\n") + 1
    line = before[line_start:]
    start = cursor
    while start > line_start and before[start - 1] not in _WORD_BREAKS:
        start -= 1
    word = before[start:cursor]
    if line.lstrip().startswith("%") and " " not in line.lstrip():
        magic_start = line_start + len(line) - len(line.lstrip())
        return CompletionRequest("magic", before[magic_start:cursor], magic_start, cursor)
    if word.startswith("${"):
        return CompletionRequest("variable", word[2:], start + 2, cursor)
    if word.startswith("$") and "/" not in word:
        return CompletionRequest("variable", word[1:], start + 1, cursor)
    if "=" in word and not word.startswith("="):  # VAR=/pa or --opt=/pa: the value
        cut = word.index("=") + 1
        return CompletionRequest("file", word[cut:], start + cut, cursor)
    if _COMMAND_BEFORE.search(before[line_start:start]) and "/" not in word:
        return CompletionRequest("command", word, start, cursor)
    return CompletionRequest("file", word, start, cursor)


def completion_script(request: CompletionRequest, bash: bool) -> str:
    """Shell code printing one candidate per line (directories with a trailing ``/``)."""
    prefix = shell_quote(request.word)
    if request.kind == "variable":
        if bash:
            return f"compgen -v -- {prefix}"
        return "( set ) 2>/dev/null"
    if request.kind == "command":
        if bash:
            return f"compgen -c -- {prefix}"
        return (
            f"( IFS=:; for d in $PATH; do for f in \"$d\"/{prefix}*; do "
            '[ -x "$f" ] && printf \'%s\\n\' "${f##*/}"; done; done ) 2>/dev/null'
        )
    mark = (
        'while IFS= read -r f; do if [ -d "$f" ]; then printf \'%s/\\n\' "$f"; '
        "else printf '%s\\n' \"$f\"; fi; done"
    )
    if bash:
        return f"compgen -f -- {prefix} | {mark}"
    return f"for f in {prefix}*; do [ -e \"$f\" ] && printf '%s\\n' \"$f\"; done | {mark}"


def parse_matches(request: CompletionRequest, output: str) -> list[str]:
    """The reply's matches from the script's output (sorted, unique, escaped, capped)."""
    found: set[str] = set()
    for line in output.split("\n"):
        if not line:
            continue
        if request.kind == "variable" and "=" in line:  # `set` output in a POSIX sh
            line = line.split("=", 1)[0]
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", line):
                continue
        if not line.startswith(request.word):
            continue
        if request.kind == "file":
            line = _ESCAPE.sub(r"\\\1", line) if not line.startswith("~") else line
        found.add(line)
    return sorted(found)[:MAX_MATCHES]


def magic_matches(request: CompletionRequest) -> list[str]:
    """``%con`` -> ``%container``; ``%%con`` -> ``%%container``."""
    word = request.word
    if word.startswith("%%"):
        return ["%%container"] if "%%container".startswith(word) else []
    return sorted(f"%{name}" for name in MAGICS if f"%{name}".startswith(word))


def inspect_word(code: str, cursor: int) -> str | None:
    """The word under (or just left of) the cursor, if it looks like a command name."""
    cursor = max(0, min(cursor, len(code)))
    start = cursor
    while start > 0 and code[start - 1] not in _WORD_BREAKS:
        start -= 1
    end = cursor
    while end < len(code) and code[end] not in _WORD_BREAKS:
        end += 1
    word = code[start:end]
    if not word or not re.fullmatch(r"[A-Za-z0-9_.+:@/-][A-Za-z0-9_.+:@/-]*", word):
        return None
    return word


def inspect_script(word: str, bash: bool) -> str:
    """Shell code describing ``word``: ``type``, then ``help`` or ``--help`` (capped)."""
    w = shell_quote(word)
    if not bash:
        return f"command -V {w} 2>&1"
    return (
        f"w={w}; if ! type -- \"$w\" 2>/dev/null; then echo \"$w: not found\"; else "
        'case $(type -t -- "$w") in '
        'builtin|keyword) help -- "$w" 2>/dev/null ;; '
        'file) echo; if command -v timeout >/dev/null 2>&1; then timeout 2 "$w" --help; '
        'else "$w" --help; fi </dev/null 2>&1 ;; esac; fi'
    )
