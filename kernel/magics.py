"""The kernel's magics: a pure parser from a cell's text to what the cell asks for.

A cell is a block of *line magics* at its top, then shell code::

    %container debian --memory 512m -e MODE=fast     <- magics: the leading lines that
    %stats                                              start with a known %name
    ls -l                                            <- the rest runs in the shell

or, for one cell in another container, ``%%container NAME_OR_IMAGE [options]`` as its
first line. Blank lines and ``#`` comments may sit between magics; a magic line ending in
``\\`` continues on the next line. Lines starting with ``%`` that are not a magic name
(``%1``, ``%+``, ``%%``: bash job specs) are shell code, so job control keeps working.

:func:`parse_cell` returns a :class:`Cell` whose ``code`` keeps the shell code *at its
original line numbers* (magic lines become empty lines), so the shell's "line 3: foo:
command not found" points at the cell's own line 3.

Nothing here does I/O: sizes and counts are parsed with :mod:`cellbox.runtime.units`,
host paths of volumes are kept as typed (the session makes them absolute against the
notebook's directory). Every mistake raises :class:`MagicError` with the usage of the magic.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from cellbox.runtime.errors import ConfigError
from cellbox.runtime.units import parse_cpus, parse_pids_limit, parse_size

__all__ = [
    "MAGICS",
    "Cell",
    "CommitMagic",
    "ContainerMagic",
    "ContainerSpec",
    "ContainerfileMagic",
    "HelpMagic",
    "ImagesMagic",
    "LayersMagic",
    "LogsMagic",
    "Magic",
    "MagicError",
    "PsMagic",
    "PullMagic",
    "PushMagic",
    "RmMagic",
    "RmiMagic",
    "RunMagic",
    "StatsMagic",
    "StopMagic",
    "TagMagic",
    "Volume",
    "help_text",
    "parse_cell",
    "usage",
]

PullPolicy = Literal["always", "missing", "never"]
NetworkMode = Literal["none", "bridge", "host"]


class MagicError(ConfigError):
    """A magic line that does not parse. The message ends with the magic's usage."""

    def __init__(self, magic: str, problem: str) -> None:
        self.magic = magic
        self.problem = problem
        super().__init__(f"%{magic}: {problem}\n\n{usage(magic)}")


@dataclass(frozen=True)
class Volume:
    """``-v HOST:CONTAINER[:ro]``: HOST as typed (relative to the notebook's directory)."""

    host: str
    container: str
    readonly: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """What ``%container`` / ``%%container`` declares.

    Two specs that differ only in ``fresh``, ``pull``, ``shell`` or ``trust_output``
    describe the same container (:meth:`identity`): those change how the kernel gets there
    or shows its output, not what it gets. ``trust_output`` (``--trust-output``) lets the
    container's HTML and scripts through the output policy unfiltered
    (:mod:`~cellbox.kernel.policy`).
    """

    image: str
    name: str | None = None
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    network: NetworkMode | None = None
    volumes: tuple[Volume, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    user: str | None = None
    ports: tuple[str, ...] = ()
    shell: str | None = None
    fresh: bool = False
    pull: PullPolicy = "missing"
    trust_output: bool = False

    def identity(self) -> dict[str, object]:
        """The options that decide whether an existing container still fits."""
        return {
            "image": self.image,
            "memory": self.memory,
            "cpus": self.cpus,
            "pids_limit": self.pids_limit,
            "network": self.network,
            "volumes": [[v.host, v.container, v.readonly] for v in self.volumes],
            "env": [list(pair) for pair in self.env],
            "workdir": self.workdir,
            "user": self.user,
            "ports": list(self.ports),
        }


@dataclass(frozen=True)
class ContainerMagic:
    """``%container`` (``cell=False``) or ``%%container`` (``cell=True``)."""

    spec: ContainerSpec
    cell: bool = False


@dataclass(frozen=True)
class PsMagic:
    all: bool = False


@dataclass(frozen=True)
class ImagesMagic:
    pass


@dataclass(frozen=True)
class PullMagic:
    image: str


@dataclass(frozen=True)
class LogsMagic:
    tail: int | None = None


@dataclass(frozen=True)
class StatsMagic:
    pass


@dataclass(frozen=True)
class LayersMagic:
    pass


@dataclass(frozen=True)
class CommitMagic:
    reference: str
    message: str | None = None


@dataclass(frozen=True)
class StopMagic:
    name: str | None = None


@dataclass(frozen=True)
class RmMagic:
    name: str | None = None
    force: bool = False


@dataclass(frozen=True)
class RmiMagic:
    """``%rmi [-f] REF...``: remove stored images (like ``cellbox rmi``)."""

    references: tuple[str, ...]
    force: bool = False


@dataclass(frozen=True)
class TagMagic:
    """``%tag SOURCE TARGET``: give the stored image SOURCE the name TARGET as well."""

    source: str
    target: str


@dataclass(frozen=True)
class RunMagic:
    """``%run``: the words after it, for ``cellbox run --rm`` (which checks them)."""

    args: tuple[str, ...]


@dataclass(frozen=True)
class PushMagic:
    reference: str
    destination: str | None = None


@dataclass(frozen=True)
class ContainerfileMagic:
    """``%%containerfile REF``: the rest of the cell is a Containerfile to build as REF."""

    reference: str
    text: str
    build_args: tuple[tuple[str, str], ...] = ()
    no_cache: bool = False
    target: str | None = None
    network: NetworkMode = "none"
    pull: bool = False
    first_line: int = 2  # the cell line the Containerfile starts on


@dataclass(frozen=True)
class HelpMagic:
    topic: str | None = None


Magic = (
    ContainerMagic | PsMagic | ImagesMagic | PullMagic | LogsMagic | StatsMagic
    | LayersMagic | CommitMagic | StopMagic | RmMagic | RmiMagic | TagMagic | RunMagic
    | PushMagic | HelpMagic
)


@dataclass(frozen=True)
class Cell:
    """A parsed cell: its magics in order, and the shell code at its original lines."""

    magics: tuple[Magic, ...] = ()
    code: str = ""
    cell_container: ContainerMagic | None = None
    containerfile: ContainerfileMagic | None = None  # then the cell is no shell code

    @property
    def has_code(self) -> bool:
        """Whether anything but blank lines and comments is left for the shell."""
        return any(
            line.strip() and not line.lstrip().startswith("#") for line in self.code.splitlines()
        )


# ----------------------------------------------------------------------------- usage text

_CONTAINER_OPTIONS = """\
  --name N               the container's name (default: one per notebook and image)
  --memory M             memory limit, e.g. 512m or 2g
  --cpus C               CPU limit in CPUs, e.g. 0.5
  --pids-limit P         at most P processes
  --network MODE         none, bridge or host
  -v HOST:CTR[:ro]       bind-mount HOST (relative to the notebook) at CTR; repeatable
  -e KEY=VALUE           set an environment variable; repeatable
  -w DIR                 working directory (default: the notebook's directory)
  -u USER                run cells as USER (name or uid[:gid])
  --shell PATH           the shell to run cells in (default: bash if present, else sh)
  --fresh                start from the image again: drop the container's files
  --pull POLICY          always, missing (default) or never
  -p HOST:CTR            publish a container port on 127.0.0.1:HOST; repeatable
  --trust-output         show the container's HTML and scripts unfiltered (only for an
                         image you built yourself: its scripts act as you in Jupyter)"""

USAGE: dict[str, tuple[str, str]] = {
    "container": (
        "%container IMAGE [options]",
        "Run this and the following cells in a persistent container of IMAGE. Running the "
        "same line again reuses the container; changed options recreate it, keeping its "
        "files unless --fresh.\n\nOptions:\n" + _CONTAINER_OPTIONS,
    ),
    "%container": (
        "%%container NAME_OR_IMAGE [options]",
        "Run only this cell in another container: one of this notebook's containers by "
        "name, or a container of an image (options as for %container).",
    ),
    "ps": ("%ps [-a]", "List running containers (-a: all of them)."),
    "images": ("%images", "List the images stored on this machine."),
    "pull": ("%pull IMAGE", "Download IMAGE (or update it) from its registry."),
    "logs": ("%logs [--tail N]", "Show the current container's log (the last N lines)."),
    "stats": ("%stats", "Show the current container's CPU, memory and process counts."),
    "layers": ("%layers", "Show the layers of the current container's image."),
    "commit": (
        "%commit REF [-m MESSAGE]",
        "Save the current container's files as a new image REF.",
    ),
    "stop": (
        "%stop [NAME]",
        "Stop the current container (or NAME); its files are kept, the next cell starts it.",
    ),
    "rm": (
        "%rm [-f] [NAME]",
        "Remove the current container (or NAME) and its files; the next cell makes a new one.",
    ),
    "rmi": (
        "%rmi [-f] REF...",
        "Remove stored images: untag REF, and delete the image and the layers only it used "
        "once no name is left. An image a container was made from is kept unless -f (then "
        "it is only untagged). A pushed image can be pulled back by its name.",
    ),
    "tag": (
        "%tag SOURCE TARGET",
        "Give the stored image SOURCE another name, TARGET (e.g. the name to %push it "
        "under: localhost:5000/me/hello-world).",
    ),
    "run": (
        "%run [OPTIONS] IMAGE [COMMAND...]",
        "Run a one-off container of IMAGE (cellbox run --rm, same options) and show its "
        "output; the notebook's own container is not involved.",
    ),
    "push": (
        "%push REF [DESTINATION]",
        "Upload the stored image REF to its registry (or to DESTINATION).",
    ),
    "%containerfile": (
        "%%containerfile REF [--build-arg K=V]... [--no-cache] [--target STAGE] "
        "[--network none|bridge|host] [--pull]",
        "Build the rest of the cell, a Containerfile, into the image REF (the build context "
        "is the notebook's directory); then %container REF runs it.",
    ),
    "help": ("%help [MAGIC]", "Show this help, or the help of one magic."),
}


HELP_WIDTH = 88  # columns of %help and usage text: fits a notebook's output area


def _wrap(text: str, indent: str = "") -> list[str]:
    """Text as lines of at most HELP_WIDTH columns; indented lines (option tables) stay as
    they are laid out, and blank lines between paragraphs stay."""
    lines: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        if prose:
            lines.extend(textwrap.wrap(
                " ".join(prose), HELP_WIDTH, initial_indent=indent, subsequent_indent=indent,
                break_long_words=False, break_on_hyphens=False,
            ))
            prose.clear()

    for line in text.split("\n"):
        if line.startswith("  ") or not line.strip():
            flush()
            lines.append((indent + line).rstrip())
        else:
            prose.append(line.strip())
    flush()
    return lines


def _synopsis_lines(synopsis: str, indent: str = "  ") -> list[str]:
    """A synopsis wrapped between its ``[...]`` groups, never inside one."""
    groups: list[str] = []
    depth = 0
    for word in synopsis.split(" "):
        if depth > 0:
            groups[-1] += " " + word
        else:
            groups.append(word)
        depth += word.count("[") - word.count("]")
    lines = [groups[0]]
    for group in groups[1:]:
        if len(lines[-1]) + 1 + len(group) > HELP_WIDTH:
            lines.append(indent + group)
        else:
            lines[-1] += " " + group
    return lines


def usage(magic: str) -> str:
    """The usage text of one magic (``container``, ``%container`` for the cell magic, ...)."""
    synopsis, text = USAGE[magic]
    return "\n".join(_synopsis_lines("usage: " + synopsis, " " * 7) + _wrap(text))


def help_text(topic: str | None = None) -> str:
    """``%help``: each magic's synopsis with its description under it, or one magic's usage.

    A synopsis has a line of its own and the first paragraph of its description is indented
    under it, everything within HELP_WIDTH columns (a table padded to the longest synopsis
    made every line ~200 columns wide).
    """
    if topic is not None:
        key = "%" + topic[2:] if topic.startswith("%%") else topic.removeprefix("%")
        if key not in USAGE:
            raise MagicError("help", f"no magic called {topic!r}")
        return usage(key)
    lines = [
        "Cells run in a persistent container. Magics go at the top of a cell:",
        "",
    ]
    for synopsis, text in USAGE.values():
        lines += _synopsis_lines(synopsis, "  ")
        lines += _wrap(text.split("\n\n")[0], "    ")
    lines += ["", "%help MAGIC shows the options of one magic, e.g. %help container."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- options

@dataclass
class _Option:
    names: tuple[str, ...]
    dest: str
    takes_value: bool = True
    repeat: bool = False


@dataclass
class _Parsed:
    values: dict[str, str | bool | list[str]] = field(default_factory=dict)
    positional: list[str] = field(default_factory=list)


def _parse_options(magic: str, words: Sequence[str], options: Sequence[_Option]) -> _Parsed:
    """Long (``--opt V``, ``--opt=V``) and short (``-o V``, ``-oV``) options, anywhere."""
    by_name = {name: opt for opt in options for name in opt.names}
    parsed = _Parsed()
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            parsed.positional.extend(words[i:])
            break
        if not word.startswith("-") or word == "-":
            parsed.positional.append(word)
            continue
        name, value = word, None
        if word.startswith("--") and "=" in word:
            name, value = word.split("=", 1)
        elif not word.startswith("--") and len(word) > 2:
            name, value = word[:2], word[2:]
        opt = by_name.get(name)
        if opt is None:
            raise MagicError(magic, f"unknown option {name}")
        if not opt.takes_value:
            if value is not None:
                raise MagicError(magic, f"{name} takes no value")
            parsed.values[opt.dest] = True
            continue
        if value is None:
            if i >= len(words):
                raise MagicError(magic, f"{name} needs a value")
            value = words[i]
            i += 1
        if opt.repeat:
            existing = parsed.values.setdefault(opt.dest, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            parsed.values[opt.dest] = value
    return parsed


def _str(parsed: _Parsed, dest: str) -> str | None:
    value = parsed.values.get(dest)
    return value if isinstance(value, str) else None


def _list(parsed: _Parsed, dest: str) -> list[str]:
    value = parsed.values.get(dest)
    return value if isinstance(value, list) else []


def _one_positional(magic: str, parsed: _Parsed, what: str) -> str:
    if not parsed.positional:
        raise MagicError(magic, f"{what} is missing")
    if len(parsed.positional) > 1:
        extra = " ".join(parsed.positional[1:])
        raise MagicError(magic, f"unexpected argument(s) after {what}: {extra}")
    return parsed.positional[0]


def _no_positional(magic: str, parsed: _Parsed) -> None:
    if parsed.positional:
        raise MagicError(magic, f"unexpected argument(s): {' '.join(parsed.positional)}")


def _at_most_one_positional(magic: str, parsed: _Parsed) -> str | None:
    if len(parsed.positional) > 1:
        raise MagicError(magic, f"unexpected argument(s): {' '.join(parsed.positional[1:])}")
    return parsed.positional[0] if parsed.positional else None


# ----------------------------------------------------------------------------- %container

_CONTAINER_OPTS = (
    _Option(("--name",), "name"),
    _Option(("--memory", "-m"), "memory"),
    _Option(("--cpus",), "cpus"),
    _Option(("--pids-limit",), "pids_limit"),
    _Option(("--network", "--net"), "network"),
    _Option(("--volume", "-v"), "volumes", repeat=True),
    _Option(("--env", "-e"), "env", repeat=True),
    _Option(("--workdir", "-w"), "workdir"),
    _Option(("--user", "-u"), "user"),
    _Option(("--shell",), "shell"),
    _Option(("--fresh",), "fresh", takes_value=False),
    _Option(("--pull",), "pull"),
    _Option(("--publish", "-p"), "ports", repeat=True),
    _Option(("--trust-output",), "trust_output", takes_value=False),
)

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$")
_PORT = re.compile(
    r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}):)?(?P<host>\d{1,5}):(?P<ctr>\d{1,5})"
    r"(?:/(?P<proto>tcp|udp))?$"
)
# An image reference, loosely: the runtime's reference parser has the last word. This only
# keeps option-looking or path-looking words from being taken for images.
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")


def _checked(magic: str, parse: Callable[[], object]) -> object:
    try:
        return parse()
    except MagicError:
        raise
    except ConfigError as exc:
        raise MagicError(magic, str(exc)) from None


def _volume(magic: str, text: str) -> Volume:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise MagicError(magic, f"-v {text!r}: use HOST:CONTAINER or HOST:CONTAINER:ro")
    readonly = False
    if len(parts) == 3:
        if parts[2] not in ("ro", "rw"):
            raise MagicError(magic, f"-v {text!r}: the mode must be ro or rw, not {parts[2]!r}")
        readonly = parts[2] == "ro"
    if not parts[1].startswith("/"):
        raise MagicError(magic, f"-v {text!r}: the container path {parts[1]!r} must be absolute")
    return Volume(parts[0], parts[1], readonly)


def _env(magic: str, text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not _ENV_KEY.match(key):
        raise MagicError(magic, f"-e {text!r}: use KEY=VALUE with a KEY like MY_VAR")
    return key, value


def _port(magic: str, text: str) -> str:
    match = _PORT.match(text)
    if not match:
        raise MagicError(magic, f"-p {text!r}: use HOST_PORT:CONTAINER_PORT[/tcp|udp]")
    for key in ("host", "ctr"):
        if not 1 <= int(match.group(key)) <= 65535:
            raise MagicError(magic, f"-p {text!r}: ports go from 1 to 65535")
    return text


def _container_spec(magic: str, words: Sequence[str]) -> ContainerSpec:
    parsed = _parse_options(magic, words, _CONTAINER_OPTS)
    what = "NAME_OR_IMAGE" if magic == "%container" else "IMAGE"
    image = _one_positional(magic, parsed, what)
    if not _IMAGE.match(image):
        raise MagicError(magic, f"{image!r} is not an image reference (e.g. debian:bookworm)")
    name = _str(parsed, "name")
    if name is not None and not _NAME.match(name):
        raise MagicError(
            magic, f"--name {name!r}: use letters, digits, '_', '.' and '-', starting with a "
            "letter or digit",
        )
    memory = cpus = pids = None
    if (text := _str(parsed, "memory")) is not None:
        memory = _checked(magic, lambda: parse_size(text, option="--memory"))
        assert isinstance(memory, int)
        if memory < 6 << 20:
            raise MagicError(magic, f"--memory {text}: the smallest memory limit is 6m")
    if (text_cpus := _str(parsed, "cpus")) is not None:
        cpus = _checked(magic, lambda: parse_cpus(text_cpus))
    if (text_pids := _str(parsed, "pids_limit")) is not None:
        pids = _checked(magic, lambda: parse_pids_limit(text_pids))
    network = _str(parsed, "network")
    if network is not None and network not in ("none", "bridge", "host"):
        raise MagicError(magic, f"--network {network!r}: use none, bridge or host")
    workdir = _str(parsed, "workdir")
    if workdir is not None and not workdir.startswith("/"):
        raise MagicError(magic, f"-w {workdir!r}: the working directory must be absolute")
    user = _str(parsed, "user")
    if user is not None and not _USER.match(user):
        raise MagicError(magic, f"-u {user!r}: use a user name or uid, optionally :group")
    shell = _str(parsed, "shell")
    if shell is not None and not shell.startswith("/"):
        raise MagicError(magic, f"--shell {shell!r}: give the shell's absolute path, e.g. /bin/sh")
    pull = _str(parsed, "pull") or "missing"
    if pull not in ("always", "missing", "never"):
        raise MagicError(magic, f"--pull {pull!r}: use always, missing or never")
    return ContainerSpec(
        image=image,
        name=name,
        memory=memory if isinstance(memory, int) else None,
        cpus=cpus if isinstance(cpus, float) else None,
        pids_limit=pids if isinstance(pids, int) else None,
        network=cast("NetworkMode | None", network),  # checked against the literal above
        volumes=tuple(_volume(magic, v) for v in _list(parsed, "volumes")),
        env=tuple(_env(magic, e) for e in _list(parsed, "env")),
        workdir=workdir,
        user=user,
        ports=tuple(_port(magic, p) for p in _list(parsed, "ports")),
        shell=shell,
        fresh=bool(parsed.values.get("fresh", False)),
        pull=cast(PullPolicy, pull),  # checked against the literal above
        trust_output=bool(parsed.values.get("trust_output", False)),
    )


# ----------------------------------------------------------------------------- the others

def _ps(words: Sequence[str]) -> Magic:
    parsed = _parse_options("ps", words, (_Option(("--all", "-a"), "all", takes_value=False),))
    _no_positional("ps", parsed)
    return PsMagic(all=bool(parsed.values.get("all", False)))


def _images(words: Sequence[str]) -> Magic:
    _no_positional("images", _parse_options("images", words, ()))
    return ImagesMagic()


def _pull(words: Sequence[str]) -> Magic:
    image = _one_positional("pull", _parse_options("pull", words, ()), "IMAGE")
    if not _IMAGE.match(image):
        raise MagicError("pull", f"{image!r} is not an image reference (e.g. debian:bookworm)")
    return PullMagic(image)


def _logs(words: Sequence[str]) -> Magic:
    parsed = _parse_options("logs", words, (_Option(("--tail", "-n"), "tail"),))
    _no_positional("logs", parsed)
    tail = None
    if (text := _str(parsed, "tail")) is not None:
        if not text.isdigit():
            raise MagicError("logs", f"--tail {text!r}: give a number of lines, e.g. --tail 50")
        tail = int(text)
    return LogsMagic(tail)


def _stats(words: Sequence[str]) -> Magic:
    _no_positional("stats", _parse_options("stats", words, ()))
    return StatsMagic()


def _layers(words: Sequence[str]) -> Magic:
    _no_positional("layers", _parse_options("layers", words, ()))
    return LayersMagic()


def _commit(words: Sequence[str]) -> Magic:
    parsed = _parse_options("commit", words, (_Option(("--message", "-m"), "message"),))
    ref = _one_positional("commit", parsed, "REF")
    if not _IMAGE.match(ref):
        raise MagicError("commit", f"{ref!r} is not an image reference (e.g. myimage:v1)")
    return CommitMagic(ref, _str(parsed, "message"))


def _stop(words: Sequence[str]) -> Magic:
    return StopMagic(_at_most_one_positional("stop", _parse_options("stop", words, ())))


def _rm(words: Sequence[str]) -> Magic:
    parsed = _parse_options("rm", words, (_Option(("--force", "-f"), "force", takes_value=False),))
    return RmMagic(_at_most_one_positional("rm", parsed), bool(parsed.values.get("force")))


def _image_refs(magic: str, refs: Sequence[str]) -> None:
    for ref in refs:
        if not _IMAGE.match(ref):
            raise MagicError(magic, f"{ref!r} is not an image reference (e.g. myimage:v1)")


def _rmi(words: Sequence[str]) -> Magic:
    parsed = _parse_options("rmi", words, (_Option(("--force", "-f"), "force", takes_value=False),))
    if not parsed.positional:
        raise MagicError("rmi", "REF is missing (%images lists the stored images)")
    _image_refs("rmi", parsed.positional)
    return RmiMagic(tuple(parsed.positional), bool(parsed.values.get("force")))


def _tag(words: Sequence[str]) -> Magic:
    parsed = _parse_options("tag", words, ())
    if len(parsed.positional) < 2:
        missing = "SOURCE and TARGET are" if not parsed.positional else "TARGET is"
        raise MagicError("tag", f"{missing} missing")
    if len(parsed.positional) > 2:
        raise MagicError("tag", f"unexpected argument(s): {' '.join(parsed.positional[2:])}")
    _image_refs("tag", parsed.positional)
    return TagMagic(parsed.positional[0], parsed.positional[1])


def _run(words: Sequence[str]) -> Magic:
    if not any(not w.startswith("-") for w in words):
        raise MagicError("run", "IMAGE is missing")
    return RunMagic(tuple(words))


def _push(words: Sequence[str]) -> Magic:
    parsed = _parse_options("push", words, ())
    if not parsed.positional:
        raise MagicError("push", "REF is missing")
    if len(parsed.positional) > 2:
        raise MagicError("push", f"unexpected argument(s): {' '.join(parsed.positional[2:])}")
    for ref in parsed.positional:
        if not _IMAGE.match(ref):
            raise MagicError("push", f"{ref!r} is not an image reference")
    dest = parsed.positional[1] if len(parsed.positional) == 2 else None
    return PushMagic(parsed.positional[0], dest)


_CONTAINERFILE_OPTS = (
    _Option(("--build-arg",), "build_args", repeat=True),
    _Option(("--no-cache",), "no_cache", takes_value=False),
    _Option(("--target",), "target"),
    _Option(("--network",), "network"),
    _Option(("--pull",), "pull", takes_value=False),
)


def _containerfile(words: Sequence[str], text: str, first_line: int) -> ContainerfileMagic:
    magic = "%containerfile"
    parsed = _parse_options(magic, words, _CONTAINERFILE_OPTS)
    ref = _one_positional(magic, parsed, "REF")
    if not _IMAGE.match(ref):
        raise MagicError(magic, f"{ref!r} is not an image reference (e.g. myimage:v1)")
    build_args = []
    for item in _list(parsed, "build_args"):
        key, sep, value = item.partition("=")
        if not sep or not _ENV_KEY.match(key):
            raise MagicError(magic, f"--build-arg {item!r}: use NAME=VALUE")
        build_args.append((key, value))
    network = _str(parsed, "network") or "none"
    if network not in ("none", "bridge", "host"):
        raise MagicError(magic, f"--network {network!r}: use none, bridge or host")
    return ContainerfileMagic(
        ref, text, tuple(build_args), bool(parsed.values.get("no_cache")),
        _str(parsed, "target"), cast(NetworkMode, network),  # checked above
        bool(parsed.values.get("pull")), first_line,
    )


def _help(words: Sequence[str]) -> Magic:
    topic = _at_most_one_positional("help", _parse_options("help", words, ()))
    if topic is not None:
        help_text(topic)  # an unknown topic is an error now, not when the help is shown
    return HelpMagic(topic)


def _container(words: Sequence[str]) -> Magic:
    return ContainerMagic(_container_spec("container", words))


MAGICS: dict[str, Callable[[Sequence[str]], Magic]] = {
    "container": _container,
    "ps": _ps,
    "images": _images,
    "pull": _pull,
    "logs": _logs,
    "stats": _stats,
    "layers": _layers,
    "commit": _commit,
    "stop": _stop,
    "rm": _rm,
    "rmi": _rmi,
    "tag": _tag,
    "run": _run,
    "push": _push,
    "help": _help,
}

_MAGIC_LINE = re.compile(r"^\s*%(%?)([A-Za-z][\w-]*)(?=\s|$)(.*)$", re.DOTALL)


def _words(magic: str, text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise MagicError(magic, f"cannot split the line into words: {exc}") from None


def _magic_name(line: str) -> tuple[bool, str, str] | None:
    """``(is_cell_magic, name, rest)`` for a line that is a magic, else None."""
    match = _MAGIC_LINE.match(line)
    if not match:
        return None
    double, name, rest = match.groups()
    if double:
        return (True, name, rest) if name in ("container", "containerfile") else None
    if name in MAGICS:
        return False, name, rest
    return None


def _is_unknown_magic(line: str) -> str | None:
    """A ``%word`` that looks like a magic but is none (job specs like %1 are not words)."""
    match = _MAGIC_LINE.match(line)
    if match and not match.group(1) and match.group(2) not in MAGICS:
        return match.group(2)
    return None


def parse_cell(text: str) -> Cell:
    """Split a cell into its leading magics and its shell code (at the original lines)."""
    lines = text.split("\n")
    magics: list[Magic] = []
    cell_container: ContainerMagic | None = None
    i = 0
    seen_content = False
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        found = _magic_name(lines[i])
        if found is None:
            unknown = _is_unknown_magic(lines[i])
            if unknown is not None:
                raise MagicError(
                    "help",
                    f"there is no magic %{unknown} (to resume a job by name, write fg %{unknown})",
                )
            break
        is_cell, name, rest = found
        # Continuation lines: a magic line ending in a backslash goes on.
        start = i
        while rest.rstrip().endswith("\\") and i + 1 < len(lines):
            rest = rest.rstrip()[:-1] + " " + lines[i + 1]
            i += 1
        for j in range(start, i + 1):
            lines[j] = ""
        i += 1
        if is_cell:
            if seen_content:
                raise MagicError(f"%{name}", f"%%{name} must be the first line of a cell")
            if name == "containerfile":
                body = "\n".join(lines[i:])
                built = _containerfile(_words(f"%{name}", rest), body, i + 1)
                return Cell(tuple(magics), "", None, built)
            cell_container = ContainerMagic(_container_spec("%container", _words(name, rest)), True)
        else:
            magics.append(MAGICS[name](_words(name, rest)))
        seen_content = True
    for j in range(i, len(lines)):
        found = _magic_name(lines[j])
        if found is not None:
            name = ("%" if found[0] else "") + found[1]
            raise MagicError(
                found[1] if not found[0] else "%container",
                f"%{name} on line {j + 1} comes after shell code; magics run before a cell's "
                "code, so they go at its top (or in a cell of their own)",
            )
    return Cell(tuple(magics), "\n".join(lines), cell_container)
