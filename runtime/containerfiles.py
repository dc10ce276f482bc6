"""A container's files read the lean way: name -> id, config/state as dicts, PID 1 alive?

``cellbox exec`` needs no more than this before it joins the container, and every import
shows in its time: this module imports ``os`` and the C JSON scanner only (no json, re,
pathlib or dataclasses). :mod:`.containerstate` builds its typed records and the name
index on the same functions, so both read the files alike.
"""

from __future__ import annotations

import _json
import os

from . import _leanjson
from .errors import ContainerError, ContainerNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "NAMES_FILE",
    "boot_id",
    "discard_tree",
    "dump_json",
    "find_id",
    "is_id",
    "load_json",
    "process_alive",
    "process_start_ticks",
    "remove_tree",
]

NAMES_FILE = "names.json"
_HEX = frozenset("0123456789abcdef")


def is_id(text: str) -> bool:
    """Whether ``text`` is a container id: 64 lower-case hex digits."""
    return len(text) == 64 and _HEX.issuperset(text)


def load_json(path: str) -> Any:
    """The JSON in ``path`` (FileNotFoundError passes through; bad JSON is a ContainerError)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _leanjson.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContainerError(f"{path} is damaged ({exc}); remove the container") from exc


def dump_json(value: Any) -> str:
    """``json.dumps(value, indent=1, sort_keys=True)`` for the records cellbox writes
    (dicts with string keys, lists, tuples, strings, numbers, booleans, None)."""
    out: list[str] = []
    _dump(value, "\n", out)
    return "".join(out)


def _dump(value: Any, newline: str, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None or value is True or value is False:
        out.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot write {value!r} as JSON")
        out.append(int.__repr__(value) if isinstance(value, int) else float.__repr__(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + " "
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise TypeError(f"JSON keys must be strings, not {type(key).__name__}")
            out.append(("," if i else "") + inner + _json.encode_basestring_ascii(key) + ": ")
            _dump(value[key], inner, out)
        out.append(newline + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        inner = newline + " "
        out.append("[")
        for i, item in enumerate(value):
            out.append(("," if i else "") + inner)
            _dump(item, inner, out)
        out.append(newline + "]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _name_owner(names_path: str, name: str) -> str | None:
    try:
        names = load_json(names_path)
    except FileNotFoundError:
        return None
    owner = names.get(name) if isinstance(names, dict) else None
    return None if owner is None else str(owner)


def _has_config(containers_dir: str, container_id: str) -> bool:
    return os.path.exists(os.path.join(containers_dir, container_id, "config.json"))


def find_id(containers_dir: str, key: str, names_path: str | None = None) -> str:
    """The id of the container named ``key``, or with id ``key``, or an unambiguous prefix.

    ``names_path`` is the name index (default: ``names.json`` in ``containers_dir``).
    Raises :class:`ContainerNotFound` saying what to do.
    """
    if not key:
        raise ContainerNotFound("no container name or id given")
    owner = _name_owner(names_path or os.path.join(containers_dir, NAMES_FILE), key)
    if owner is not None and _has_config(containers_dir, owner):
        return owner
    if is_id(key) and _has_config(containers_dir, key):
        return key
    if 0 < len(key) < 64 and _HEX.issuperset(key):
        try:
            entries = os.listdir(containers_dir)
        except FileNotFoundError:
            entries = []
        matches = [e for e in entries
                   if e.startswith(key) and is_id(e) and _has_config(containers_dir, e)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ContainerNotFound(
                f"{key!r} matches {len(matches)} containers; give more of the id or the name"
            )
    raise ContainerNotFound(
        f"no such container: {key!r} (see 'cellbox ps -a' for the containers there are)"
    )


# ---------------------------------------------------------------------------- processes

def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = stat[stat.rfind(b")") + 2 :].split()
    if rest and rest[0] == b"Z":
        return None  # a zombie has exited; only its parent has not reaped it yet
    return int(rest[19])


_BOOT_ID: str | None = None


def boot_id() -> str:
    """This boot's random id: a pid and start time only identify a process within a boot."""
    global _BOOT_ID
    if _BOOT_ID is None:
        with open("/proc/sys/kernel/random/boot_id") as f:
            _BOOT_ID = f.read().strip()
    return _BOOT_ID


def process_alive(pid: int, start_ticks: int, boot: str) -> bool:
    """Whether the process recorded as (pid, start time, boot id) still runs."""
    if pid <= 0 or boot != boot_id():
        return False
    return process_start_ticks(pid) == start_ticks


# ---------------------------------------------------------------------------- removal

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str) -> None:
    """``rm -rf path``, symlinks never followed, errors ignored (like ``shutil.rmtree(path,
    ignore_errors=True)``, without shutil's imports: bz2, lzma, fnmatch, ≈ 3 ms)."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except OSError:
        try:  # noqa: SIM105 - a file or a symlink, not a directory (no contextlib here)
            os.unlink(path)
        except OSError:
            pass
        return
    try:
        _clear(fd)
    finally:
        os.close(fd)
    try:  # noqa: SIM105 - no contextlib here
        os.rmdir(path)
    except OSError:
        pass


def _clear(dir_fd: int) -> None:
    with os.scandir(dir_fd) as entries:
        listed = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_dir in listed:
        try:
            if is_dir:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    _clear(sub)
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=dir_fd)
            else:
                os.unlink(name, dir_fd=dir_fd)
        except OSError:
            continue


def discard_tree(path: str) -> None:
    """Remove ``path``, already renamed out of everyone's way, without waiting for it.

    Deleting even a small container dir costs milliseconds of unlinks (≈ 5 ms on ext4 for
    an idle container's 30 entries; a --rm container that installed packages has many
    more), so a single-threaded caller (``cellbox run --rm``, ``cellbox rm``) leaves it to
    a detached grandchild and returns. A multithreaded one (the kernel) deletes it here:
    forking it is not safe. Whatever is left after a crash, ``cellbox prune`` removes
    (``.removing-*`` dirs; see :func:`.containerclean.prune_leftovers`).
    """
    from .initfork import single_threaded

    if not single_threaded():
        remove_tree(path)
        return
    child = os.fork()
    if child == 0:
        try:
            if os.fork() == 0:
                os.setsid()
                # Hold none of the caller's fds: a pipe kept open would make whoever reads
                # the caller's output wait for the deletion after all.
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                os.closerange(3, 1 << 20)
                remove_tree(path)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
