"""The Containerfile (Dockerfile) parser: text in, stages of instructions out. Pure.

It follows Docker's reading of the file, so a Dockerfile that builds with ``docker build``
parses the same way here:

* parser directives on the first lines: ``# escape=\\`` or ``# escape=``\\` `` (the line
  continuation and escape character) and ``# syntax=...`` (accepted and ignored);
* a line ending in the escape character (white space after it allowed) continues on the
  next one; comment lines and empty lines inside a continuation are skipped; a ``#`` is a
  comment only at the start of a line;
* heredocs (BuildKit) in RUN, COPY and ADD: ``RUN <<EOF`` ... ``EOF``, ``<<-EOF`` strips
  leading tabs, a quoted delimiter (``<<'EOF'``) turns off expansion;
* exec form: arguments that look like a JSON array must be one (``CMD ["a", "b"]``), with
  a clear error for single quotes or a trailing comma instead of Docker's silent fall back
  to the shell form; ``RUN [ -f x ]`` is still a shell command;
* ``--flag=value`` options at the start of the arguments, checked per instruction.

Every error is a :class:`ContainerfileError` naming the line. Variables are *not*
substituted here: that needs the build's environment (see :mod:`.shellwords` and the
builder).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..errors import BuildError

__all__ = [
    "KEYWORDS",
    "Containerfile",
    "ContainerfileError",
    "Heredoc",
    "Instruction",
    "Stage",
    "parse",
    "parse_duration",
]

KEYWORDS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
)
_JSON_ARGS = frozenset({"RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "SHELL", "VOLUME"})
_HEREDOC_ARGS = frozenset({"RUN", "COPY", "ADD"})
_WHOLE_LINE = frozenset({"WORKDIR", "USER", "MAINTAINER", "STOPSIGNAL"})

# instruction -> flag -> "value" | "bool" | why cellbox refuses it
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "value"},
    "RUN": {
        "network": "value",
        "mount": "RUN --mount (cache, secret and bind mounts) is not supported by cellbox "
                 "build; COPY the files in, or download them in the RUN step",
        "security": "RUN --security is not supported by cellbox build",
    },
    "COPY": {
        "from": "value", "chown": "value", "chmod": "value", "link": "bool",
        "parents": "COPY --parents is not supported by cellbox build; copy each directory "
                   "with its own COPY",
        "exclude": "COPY --exclude is not supported by cellbox build; list the files to "
                   "leave out in .containerignore",
    },
    "ADD": {
        "chown": "value", "chmod": "value", "link": "bool",
        "checksum": "ADD --checksum is for URLs, and cellbox build does not download URLs",
        "keep-git-dir": "ADD of a git repository is not supported by cellbox build",
        "exclude": "ADD --exclude is not supported by cellbox build; list the files to "
                   "leave out in .containerignore",
    },
    "HEALTHCHECK": {
        "interval": "value", "timeout": "value", "start-period": "value",
        "start-interval": "value", "retries": "value",
    },
}
_STAGE_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_.-]*")
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*")
_KNOWN_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_HEREDOC = re.compile(r"(\d*)<<(-?)(['\"]?)([^'\"\s<>]+)\3")
_LOOKS_JSON = re.compile(r"\[\s*[\"'\]]")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}


class ContainerfileError(BuildError):
    """A Containerfile that does not parse; ``line`` is where (1-based)."""

    def __init__(self, filename: str, line: int, message: str) -> None:
        super().__init__(f"{filename} line {line}: {message}")
        self.filename = filename
        self.line = line


@dataclass(frozen=True)
class Heredoc:
    """The here-document of ``<<NAME``: its body (ends with a newline unless empty)."""

    name: str
    body: str
    expand: bool  # the delimiter was not quoted: $VARS in the body are substituted
    strip_tabs: bool  # "<<-": leading tabs were removed from the body lines


@dataclass(frozen=True)
class Instruction:
    """One instruction, continuation lines joined, variables not yet substituted.

    ``args`` holds the JSON strings in exec form, else the arguments cut at white space
    with their quotes kept (one argument for WORKDIR, USER, MAINTAINER and STOPSIGNAL).
    ``rest`` is the argument text after the flags as written: the shell form's command.
    """

    keyword: str
    line: int
    original: str
    flags: tuple[tuple[str, str | None], ...] = ()
    args: tuple[str, ...] = ()
    rest: str = ""
    exec_form: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    pairs: tuple[tuple[str, str | None], ...] = ()  # ENV, LABEL, ARG: (key, raw value)
    trigger: Instruction | None = None  # ONBUILD's instruction

    def flag(self, name: str) -> str | None:
        """The value of ``--name`` ("" for a bare boolean flag), None if not given."""
        for key, value in self.flags:
            if key == name:
                return "" if value is None else value
        return None

    def heredoc(self, word: str) -> Heredoc | None:
        """The heredoc a ``<<NAME`` argument stands for, if it is one."""
        match = _HEREDOC.fullmatch(word)
        if match is None:
            return None
        return next((h for h in self.heredocs if h.name == match.group(4)), None)


@dataclass(frozen=True)
class Stage:
    """``FROM base [AS name]`` and the instructions up to the next FROM."""

    index: int
    name: str | None  # lower case, as Docker compares them
    base: str  # the image (or an earlier stage's name) as written, maybe with $VARS
    platform: str | None
    line: int
    from_instruction: Instruction
    instructions: tuple[Instruction, ...] = ()


@dataclass(frozen=True)
class Containerfile:
    """A parsed Containerfile: the ARGs before the first FROM, then the stages."""

    filename: str
    escape: str
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...] = field(default=())

    def stage(self, key: str) -> Stage | None:
        """The stage named ``key`` (any case) or with index ``key``; None if there is none."""
        wanted = key.lower()
        for stage in self.stages:
            if stage.name == wanted or (key.isdigit() and stage.index == int(key)):
                return stage
        return None


def parse_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds; ValueError if not one."""
    if text == "0":
        return 0
    pos = 0
    total = 0.0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None:
            raise ValueError(f"{text!r} is not a duration (such as 30s, 1m30s or 500ms)")
        total += float(match.group(1)) * _DURATION_NS[match.group(2)]
        pos = match.end()
    if not text:
        raise ValueError("an empty duration")
    return int(total)


# ----------------------------------------------------------------------------- reading

class _Reader:
    def __init__(self, text: str, filename: str) -> None:
        text = text.removeprefix("\ufeff")
        self.lines = [line.removesuffix("\r") for line in text.split("\n")]
        self.filename = filename
        self.pos = 0
        self.escape = "\\"

    def error(self, line: int, message: str) -> ContainerfileError:
        return ContainerfileError(self.filename, line, message)

    def directives(self) -> None:
        seen: set[str] = set()
        while self.pos < len(self.lines):
            match = _DIRECTIVE.fullmatch(self.lines[self.pos])
            if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
                return  # an unknown directive is a comment, and ends the directives
            key, value = match.group(1).lower(), match.group(2)
            if key in seen:
                raise self.error(self.pos + 1, f"the parser directive {key!r} is given twice")
            seen.add(key)
            if key == "escape":
                if value not in ("\\", "`"):
                    raise self.error(
                        self.pos + 1, f"invalid escape character {value!r}: use \\ or `"
                    )
                self.escape = value
            self.pos += 1

    def _continued(self, text: str) -> tuple[bool, str]:
        stripped = text.rstrip(" \t")
        if stripped.endswith(self.escape):
            return True, stripped[: -len(self.escape)]
        return False, text

    def logical_line(self) -> tuple[int, str] | None:
        """The next instruction's text with continuations joined, and its first line."""
        while self.pos < len(self.lines):
            raw = self.lines[self.pos]
            self.pos += 1
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            start = self.pos
            more, text = self._continued(raw.lstrip())
            parts = [text]
            while more and self.pos < len(self.lines):
                raw = self.lines[self.pos]
                self.pos += 1
                if not raw.strip() or raw.lstrip().startswith("#"):
                    continue
                more, text = self._continued(raw)
                parts.append(text)
            return start, "".join(parts)
        return None

    def heredoc_bodies(self, line: int, words: Sequence[str]) -> tuple[Heredoc, ...]:
        docs = []
        for word in words:
            match = _HEREDOC.fullmatch(word)
            if match is None:
                continue
            strip_tabs, quote, name = match.group(2) == "-", match.group(3), match.group(4)
            body: list[str] = []
            while True:
                if self.pos >= len(self.lines):
                    raise self.error(
                        line, f"the heredoc <<{name} is never closed: end it with a line "
                        f"holding only {name}"
                    )
                raw = self.lines[self.pos]
                self.pos += 1
                if strip_tabs:
                    raw = raw.lstrip("\t")
                if raw == name:
                    break
                body.append(raw)
            text = "".join(f"{b}\n" for b in body)
            docs.append(Heredoc(name, text, expand=not quote, strip_tabs=strip_tabs))
        return tuple(docs)


# ----------------------------------------------------------------------------- parsing

def _split_flags(rest: str, escape: str) -> tuple[list[str], str]:
    """The ``--flag`` words at the start of ``rest``, and the text after them."""
    flags = []
    pos = 0
    while True:
        while pos < len(rest) and rest[pos].isspace():
            pos += 1
        if not rest.startswith("--", pos):
            break
        end, quote = pos, ""
        while end < len(rest) and (quote or not rest[end].isspace()):
            ch = rest[end]
            if ch == escape and quote != "'":
                end += 1
            elif quote == ch:
                quote = ""
            elif not quote and ch in "'\"":
                quote = ch
            end += 1
        word = rest[pos:end]
        pos = end
        if word == "--":
            break
        flags.append(word)
    return flags, rest[pos:].strip()


def _unquote_flag(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


class _Parser:
    def __init__(self, reader: _Reader) -> None:
        self.reader = reader

    def error(self, line: int, message: str) -> ContainerfileError:
        return self.reader.error(line, message)

    def instruction(self, line: int, text: str, *, trigger: bool = False) -> Instruction:
        match = re.match(r"(\S+)\s*(.*)", text.strip(), re.DOTALL)
        keyword_text, rest = (match.group(1), match.group(2)) if match else ("", "")
        keyword = keyword_text.upper()
        if keyword not in KEYWORDS:
            import difflib

            close = difflib.get_close_matches(keyword, KEYWORDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise self.error(line, f"unknown instruction {keyword_text!r}{hint}")
        flag_words, rest = _split_flags(rest, self.reader.escape)
        flags = self._flags(line, keyword, flag_words)
        args: tuple[str, ...]
        exec_form = False
        if keyword in _JSON_ARGS and _LOOKS_JSON.match(rest):
            args, exec_form = self._json(line, keyword, rest), True
        elif keyword in _WHOLE_LINE:
            args = (rest,) if rest else ()
        else:
            from .shellwords import split_words

            args = tuple(split_words(rest, self.reader.escape))
        heredocs: tuple[Heredoc, ...] = ()
        if keyword in _HEREDOC_ARGS and not exec_form and not trigger:
            heredocs = self.reader.heredoc_bodies(line, args)
        inst = Instruction(
            keyword=keyword, line=line, original=text.strip(), flags=flags, args=args,
            rest=rest, exec_form=exec_form, heredocs=heredocs,
        )
        return self._check(inst)

    def _flags(self, line: int, keyword: str, words: list[str]
               ) -> tuple[tuple[str, str | None], ...]:
        allowed = _FLAGS.get(keyword, {})
        out: list[tuple[str, str | None]] = []
        for word in words:
            name, eq, value = word[2:].partition("=")
            kind = allowed.get(name)
            if kind is None:
                known = ", ".join(f"--{f}" for f, k in allowed.items() if k in ("value", "bool"))
                raise self.error(
                    line, f"unknown flag --{name} for {keyword}"
                    + (f" (it takes {known})" if known else f" ({keyword} takes no flags)")
                )
            if kind not in ("value", "bool"):
                raise self.error(line, kind)
            if any(n == name for n, _ in out):
                raise self.error(line, f"{keyword} --{name} is given twice")
            if kind == "value" and (not eq or not value):
                raise self.error(line, f"{keyword} --{name} needs a value: --{name}=VALUE")
            if kind == "bool":
                if eq and value.lower() not in ("true", "false"):
                    raise self.error(line, f"{keyword} --{name} is true or false, not {value!r}")
                out.append((name, None if not eq or value.lower() == "true" else "false"))
            else:
                out.append((name, _unquote_flag(value)))
        return tuple(out)

    def _json(self, line: int, keyword: str, rest: str) -> tuple[str, ...]:
        try:
            value = json.loads(rest)
        except json.JSONDecodeError as exc:
            hint = ""
            if "'" in rest:
                hint = "; JSON strings need double quotes, not single quotes"
            elif re.search(r",\s*\]\s*$", rest):
                hint = "; remove the comma before ]"
            raise self.error(
                line, f"{keyword} {rest}: the exec form must be a JSON array of strings "
                f"({exc.msg} at column {exc.colno}){hint}"
            ) from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(
                line, f"{keyword} {rest}: the exec form must be a JSON array of strings"
            )
        return tuple(value)

    def _check(self, inst: Instruction) -> Instruction:
        check = getattr(self, f"_check_{inst.keyword.lower()}", None)
        if check is not None:
            result = check(inst)
            if isinstance(result, Instruction):
                return result
        return inst

    # -- per instruction -----------------------------------------------------------------

    def _need(self, inst: Instruction, what: str) -> None:
        if not inst.args and not inst.exec_form:
            raise self.error(inst.line, f"{inst.keyword} needs {what}")

    def _check_from(self, inst: Instruction) -> None:
        args = inst.args
        if len(args) == 3 and args[1].upper() == "AS":
            if not _STAGE_NAME.fullmatch(args[2]):
                raise self.error(
                    inst.line, f"invalid stage name {args[2]!r}: start with a letter, then "
                    "letters, digits, '_', '.' or '-'"
                )
            if args[2].isdigit():
                raise self.error(inst.line, f"a stage name cannot be a number: {args[2]!r}")
        elif len(args) != 1:
            raise self.error(inst.line, "FROM takes an image and optionally AS NAME: "
                                        "FROM debian:bookworm AS build")

    def _check_run(self, inst: Instruction) -> None:
        if inst.exec_form and not inst.args:
            raise self.error(inst.line, "RUN [] has no command to run")
        self._need(inst, "a command to run")
        network = inst.flag("network")
        if network is not None and network not in ("none", "host", "default"):
            raise self.error(
                inst.line, f"RUN --network={network}: use none, host or default"
            )

    def _check_cmd(self, inst: Instruction) -> None:
        self._need(inst, "a command (or [] for none)")

    _check_entrypoint = _check_cmd

    def _check_copy(self, inst: Instruction) -> None:
        if len(inst.args) < 2:
            raise self.error(
                inst.line, f"{inst.keyword} needs at least one source and a destination: "
                f"{inst.keyword} SRC... DEST"
            )
        for word in inst.args[:-1]:
            if word.startswith(("http://", "https://")):
                raise self.error(
                    inst.line, f"{inst.keyword} {word}: cellbox build does not download URLs "
                    "(a build would depend on the network and on a file nobody pinned); "
                    "download it in a RUN step (curl, wget) or put the file in the build "
                    "context"
                )
            if inst.keyword == "ADD" and re.match(r"git@|[a-z+]+://", word):
                raise self.error(inst.line, f"ADD {word}: remote sources are not supported")
        if inst.keyword == "ADD" and inst.flag("from") is not None:
            raise self.error(inst.line, "ADD --from is not supported; use COPY --from")
        chmod = inst.flag("chmod")
        if chmod is not None and not re.fullmatch(r"[0-7]{3,4}", chmod) and "$" not in chmod:
            raise self.error(
                inst.line, f"{inst.keyword} --chmod={chmod}: give octal permissions such as "
                "755 or 0644"
            )
        if inst.args[-1].startswith("<<") and inst.heredoc(inst.args[-1]):
            raise self.error(inst.line, f"{inst.keyword}: the destination cannot be a heredoc")

    _check_add = _check_copy

    def _pairs(self, inst: Instruction, *, allow_bare: bool) -> Instruction:
        from .shellwords import split_words

        if not inst.args:
            raise self.error(inst.line, f"{inst.keyword} needs NAME=VALUE")
        pairs: list[tuple[str, str | None]] = []
        if "=" not in inst.args[0] and not allow_bare:
            # The legacy form: the first word is the name, the rest of the line the value.
            if len(inst.args) < 2:
                raise self.error(
                    inst.line, f"{inst.keyword} {inst.args[0]} has no value: write "
                    f"{inst.keyword} {inst.args[0]}=VALUE"
                )
            value = inst.rest[len(inst.args[0]) :].strip()
            pairs.append((inst.args[0], value))
        else:
            for word in split_words(inst.rest, self.reader.escape):
                key, eq, value = word.partition("=")
                if not key:
                    raise self.error(inst.line, f"{inst.keyword} {word}: the name is empty")
                if not eq and not allow_bare:
                    raise self.error(
                        inst.line, f"{inst.keyword}: {word!r} is not NAME=VALUE (the form "
                        f"{inst.keyword} NAME VALUE takes exactly one name)"
                    )
                pairs.append((key, value if eq else None))
        return replace(inst, pairs=tuple(pairs))

    def _check_env(self, inst: Instruction) -> Instruction:
        return self._pairs(inst, allow_bare=False)

    _check_label = _check_env

    def _check_arg(self, inst: Instruction) -> Instruction:
        result = self._pairs(inst, allow_bare=True)
        for key, _ in result.pairs:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise self.error(inst.line, f"ARG {key!r}: not a valid variable name")
        return result

    def _check_workdir(self, inst: Instruction) -> None:
        self._need(inst, "a directory")

    def _check_user(self, inst: Instruction) -> None:
        self._need(inst, "a user (name or uid, optionally :group)")

    def _check_expose(self, inst: Instruction) -> None:
        self._need(inst, "at least one port (8080 or 8080/tcp)")

    def _check_volume(self, inst: Instruction) -> None:
        if not inst.args or any(not a.strip() for a in inst.args):
            raise self.error(inst.line, "VOLUME needs at least one path, and no empty ones")

    def _check_shell(self, inst: Instruction) -> None:
        if not inst.exec_form:
            raise self.error(
                inst.line, 'SHELL needs the JSON form, e.g. SHELL ["/bin/bash", "-c"]'
            )
        if not inst.args:
            raise self.error(inst.line, "SHELL [] names no shell")

    def _check_stopsignal(self, inst: Instruction) -> None:
        self._need(inst, "a signal (SIGTERM or 15)")

    def _check_maintainer(self, inst: Instruction) -> None:
        self._need(inst, "a name")

    def _check_healthcheck(self, inst: Instruction) -> Instruction:
        head, _, command = inst.rest.partition(" ")
        kind = head.upper()
        if kind == "NONE":
            if inst.flags or command.strip():
                raise self.error(inst.line, "HEALTHCHECK NONE takes no flags or arguments")
            return replace(inst, args=("NONE",))
        if kind != "CMD" or not command.strip():
            raise self.error(
                inst.line, "HEALTHCHECK needs NONE or [--interval=30s ...] CMD command"
            )
        for name, value in inst.flags:
            try:
                if name == "retries":
                    if int(str(value)) < 0:
                        raise ValueError("negative")
                elif parse_duration(str(value)) < 0:
                    raise ValueError("negative")
            except ValueError:
                raise self.error(
                    inst.line, f"HEALTHCHECK --{name}={value}: "
                    + ("a whole number" if name == "retries" else "a duration such as 30s")
                    + " is needed"
                ) from None
        command = command.strip()
        if _LOOKS_JSON.match(command):
            args, exec_form = self._json(inst.line, "HEALTHCHECK CMD", command), True
        else:
            args, exec_form = (command,), False
        return replace(inst, args=args, rest=command, exec_form=exec_form)

    def _check_onbuild(self, inst: Instruction) -> Instruction:
        if not inst.rest:
            raise self.error(inst.line, "ONBUILD needs an instruction to run later")
        trigger = self.instruction(inst.line, inst.rest, trigger=True)
        if trigger.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise self.error(inst.line, f"ONBUILD {trigger.keyword} is not allowed")
        return replace(inst, trigger=trigger)


def parse(text: str, *, filename: str = "Containerfile") -> Containerfile:
    """Parse a Containerfile; :class:`ContainerfileError` names the line of any mistake."""
    reader = _Reader(text, filename)
    reader.directives()
    parser = _Parser(reader)
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    body: list[Instruction] = []
    names: dict[str, int] = {}

    def close_stage() -> None:
        if stages:
            stages[-1] = replace(stages[-1], instructions=tuple(body))

    while (item := reader.logical_line()) is not None:
        line, text = item
        inst = parser.instruction(line, text)
        if inst.keyword == "FROM":
            close_stage()
            body = []
            name = inst.args[2].lower() if len(inst.args) == 3 else None
            if name is not None and name in names:
                raise reader.error(
                    line, f"the stage name {name!r} is already used on line {names[name]}"
                )
            if name is not None:
                names[name] = line
            stages.append(Stage(len(stages), name, inst.args[0], inst.flag("platform"), line,
                                inst))
            continue
        if not stages:
            if inst.keyword != "ARG":
                raise reader.error(
                    line, f"{inst.keyword} must come after FROM (only ARG may come before "
                    "the first FROM)"
                )
            global_args.append(inst)
            continue
        source = inst.flag("from")
        if source is not None and source.isdigit() and int(source) >= len(stages) - 1:
            raise reader.error(
                line, f"COPY --from={source}: stages are numbered from 0, and only "
                f"stages before this one ({len(stages) - 1} of them) can be copied from"
            )
        body.append(inst)
    close_stage()
    if not stages:
        raise ContainerfileError(
            filename, max(1, len(reader.lines)),
            "no FROM line: a Containerfile starts with FROM IMAGE (ARGs may come before it)",
        )
    return Containerfile(filename, reader.escape, tuple(global_args), tuple(stages))
