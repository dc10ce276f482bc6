"""A container's files on disk: its config, its state, and the name index.

::

    <root>/containers/<id>/config.json   ContainerConfig: what it was created with
    <root>/containers/<id>/state.json    ContainerState: status, PID 1's pid + start time
    <root>/containers/<id>/exit.json     written by the container's PID 1 when it ends
    <root>/containers/names.json         name -> id, changed only under locks/containers.lock
    <root>/locks/containers.lock         flock: creating, renaming and removing containers

Every file is replaced atomically (write a temp file in the same directory, then
``rename``), so a reader never sees half a file and a crash leaves the old one. The state a
process records is never trusted blindly: "running" is only believed while the recorded
PID 1 is alive with the same start time on the same boot (:func:`process_alive`), so after
a crash of the host process or a reboot a container reads as exited, not stale-running.
"""

from __future__ import annotations

import os
import select
import time

from .containerfiles import (
    boot_id,
    dump_json,
    find_id,
    is_id,
    load_json,
    process_alive,
    process_start_ticks,
)
from .ctx import Flock
from .errors import ConfigError, ContainerError, ContainerExists
from .records import asdict, field, fields, record

# `cellbox run` loads this module: no re, pathlib, contextlib or json here (paths are
# strings; any path-like is accepted), datetime and portmap only where used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

    from .paths import StrPath
    from .portmap import PortMapping

__all__ = [
    "ContainerConfig",
    "ContainerState",
    "NameIndex",
    "VolumeSpec",
    "boot_id",
    "new_id",
    "now_rfc3339",
    "process_alive",
    "process_start_ticks",
    "random_name",
    "read_json",
    "validate_name",
    "wait_pid",
    "write_json",
    "write_text_atomic",
]

_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")

# Short, friendly and unambiguous, in the spirit of Docker's names-generator.
_ADJECTIVES = (
    "amazing", "bold", "brave", "calm", "clever", "cool", "eager", "elegant", "epic",
    "fervent", "festive", "focused", "friendly", "gallant", "gentle", "happy", "hopeful",
    "jolly", "keen", "kind", "lucid", "modest", "nifty", "nimble", "noble", "peaceful",
    "practical", "quirky", "relaxed", "serene", "sharp", "stoic", "sweet", "tender",
    "upbeat", "vibrant", "wizardly", "youthful", "zealous", "zen",
)
_NOUNS = (
    "babbage", "bohr", "curie", "darwin", "dijkstra", "einstein", "euclid", "euler",
    "faraday", "fermi", "feynman", "galileo", "gauss", "goodall", "hamilton", "hopper",
    "hypatia", "johnson", "kepler", "knuth", "lamarr", "lovelace", "meitner", "newton",
    "noether", "pascal", "planck", "ritchie", "shannon", "tesla", "thompson", "torvalds",
    "turing", "volta", "wozniak", "yalow",
)


def new_id() -> str:
    """A fresh container id: 64 lowercase hex digits."""
    # os.urandom, not secrets: the same randomness without hmac/OpenSSL on the hot path.
    return os.urandom(32).hex()


def _pick(words: tuple[str, ...]) -> str:
    return words[int.from_bytes(os.urandom(4), "big") % len(words)]


def random_name() -> str:
    """An ``adjective_noun`` name; the caller retries (or adds a digit) on a clash."""
    return f"{_pick(_ADJECTIVES)}_{_pick(_NOUNS)}"


def validate_name(name: str) -> str:
    """A container name as Docker allows it: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``, not an id."""
    if not (0 < len(name) <= 128 and name[0] in _NAME_FIRST and _NAME_REST.issuperset(name)):
        raise ConfigError(
            f"--name: {name!r} is not a valid container name; use letters, digits, '_', '.' "
            "and '-', starting with a letter or digit (at most 128 characters)"
        )
    if is_id(name):
        raise ConfigError(f"--name: {name!r} looks like a container id; choose another name")
    return name


def now_rfc3339() -> str:
    """The current time as RFC 3339 with microseconds, UTC."""
    seconds, ns = divmod(time.time_ns(), 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ns // 1000:06d}Z"


def parse_time(text: str) -> datetime:
    """The inverse of :func:`now_rfc3339` (tolerates an empty string: the epoch)."""
    from datetime import UTC, datetime

    if not text:
        return datetime.fromtimestamp(0, UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def write_json(path: StrPath, data: Any) -> None:
    """Replace ``path`` atomically with ``data`` as JSON (indented, keys sorted)."""
    path = os.fspath(path)
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    text = (dump_json(data) + "\n").encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - no contextlib on the start path
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: StrPath) -> Any:
    """The JSON in ``path`` (FileNotFoundError passes through; bad JSON is a ContainerError)."""
    return load_json(os.fspath(path))


# ---------------------------------------------------------------------------- processes

def wait_pid(pid: int, start_ticks: int, timeout: float | None) -> bool:
    """Wait until the process (pid, start time) is gone; True if it is, False on timeout.

    A pidfd makes this exact for a process that is not our child: once it is open, the pid
    cannot be reused under us, and the start time says it is still the same process.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if process_start_ticks(pid) != start_ticks:
            return True
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
    finally:
        os.close(pidfd)


def write_text_atomic(path: str, text: str) -> None:
    """Replace a small file atomically (temp file in the same dir, then rename)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- config

@record
class VolumeSpec:
    """A bind mount from the host (``-v SOURCE:DESTINATION[:ro]``)."""

    source: str
    destination: str
    readonly: bool = False


@record
class ContainerConfig:
    """What a container is created with; config.json, never changed after create.

    Build one with what the user asked for (``image`` is required; everything else may be
    left at its default) and hand it to :meth:`Container.create`, which resolves the rest
    with Docker's rules and stores the result: ``None`` means "not given, take the image's"
    (entrypoint, command, workdir, user) or "the default" (network, hostname).
    """

    image: str
    name: str = ""  # "" = a random adjective_noun
    id: str = ""  # assigned by create
    image_digest: str = ""
    layers: list[str] = field(default_factory=list)  # chain ids, bottom first
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    env: list[str] = field(default_factory=list)  # -e KEY=VALUE (or KEY: from the host)
    workdir: str | None = None
    user: str | None = None
    hostname: str = ""  # "" = the first 12 hex of the id
    memory: int | None = None
    memory_swap: int | None = None  # memory + swap, docker semantics; -1 unlimited
    cpus: float | None = None
    pids_limit: int | None = None
    network: str | None = None  # none | bridge | host; None = bridge as root, none rootless
    ports: list[PortMapping] = field(default_factory=list)
    volumes: list[VolumeSpec] = field(default_factory=list)
    tty: bool = False
    interactive: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    keep: bool = False  # a kernel's container: no workload, PID 1 just waits
    auto_remove: bool = False  # --rm
    created: str = ""
    log_max_bytes: int = 10 << 20

    @property
    def argv(self) -> list[str]:
        """What PID 1 runs: entrypoint + command (empty for a kept container)."""
        return [] if self.keep else [*(self.entrypoint or []), *(self.command or [])]

    @property
    def has_limits(self) -> bool:
        return any(
            v is not None for v in (self.memory, self.memory_swap, self.cpus, self.pids_limit)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ports"] = [p.to_json() for p in self.ports]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerConfig:
        """Rebuild from config.json; unknown keys (a newer cellbox) are ignored."""
        known = set(fields(cls))
        values = {k: v for k, v in data.items() if k in known}
        ports = data.get("ports") or []
        if ports:  # portmap (ipaddress, dataclasses) only for a container that publishes
            from .portmap import PortMapping

            ports = [PortMapping.from_json(p) for p in ports]
        values["ports"] = ports
        values["volumes"] = [VolumeSpec(**v) for v in data.get("volumes", [])]
        try:
            return cls(**values)
        except TypeError as exc:
            raise ContainerError(
                f"container config {data.get('id', '?')} is damaged: {exc}"
            ) from exc


# ---------------------------------------------------------------------------- state

@record
class ContainerState:
    """What happened to a container; state.json. Status is what was last *recorded*."""

    status: str = "created"  # created | running | exited
    pid: int = 0  # host pid of the container's PID 1
    start_ticks: int = 0
    boot_id: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    network: dict[str, Any] = field(default_factory=dict)  # NetworkInfo while running
    cgroup_procs: list[str] = field(default_factory=list)  # what exec joins
    cleaned: bool = True  # cgroup and network released after the last run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerState:
        known = set(fields(cls))
        return cls(**{k: v for k, v in data.items() if k in known})

    def alive(self) -> bool:
        """Whether the recorded PID 1 still runs (never trusts a stale "running")."""
        return self.status == "running" and process_alive(
            self.pid, self.start_ticks, self.boot_id
        )


# ---------------------------------------------------------------------------- locks, index

def flocked(path: StrPath, *, shared: bool = False) -> Flock:
    """Hold an flock on ``path`` (created if missing) for the duration of the block."""
    return Flock(path, shared=shared, make_parent=True)


class NameIndex:
    """names.json: container name -> id, under one lock for every change.

    The lock makes "is the name free? then take it" atomic across processes, so two
    ``cellbox run --name x`` at once give one container and one clear error.
    """

    def __init__(self, containers_dir: StrPath, lock_path: StrPath) -> None:
        self.path = os.path.join(containers_dir, "names.json")
        self.lock_path = os.fspath(lock_path)

    def lock(self) -> Flock:
        return flocked(self.lock_path)

    def read(self) -> dict[str, str]:
        try:
            data = read_json(self.path)
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def lookup(self, name: str) -> str | None:
        return self.read().get(name)

    def claim(self, name: str | None, container_id: str, live: set[str]) -> str:
        """Reserve ``name`` (or a random one) for ``container_id``; call under :meth:`lock`.

        ``live`` is the set of container ids that exist: an index entry pointing at a
        container that is gone (a crash between steps) does not block its name.
        """
        names = self.read()
        if name is not None:
            validate_name(name)
            owner = names.get(name)
            if owner is not None and owner in live:
                raise ContainerExists(
                    f"the name {name!r} is already used by container {owner[:12]}; remove it "
                    f"(cellbox rm {name}) or choose another name"
                )
        else:
            name = random_name()
            attempt = 1
            while name in names and names[name] in live:
                attempt += 1
                name = f"{random_name()}{attempt if attempt > 5 else ''}"
        names[name] = container_id
        write_json(self.path, names)
        return name

    def release(self, name: str, container_id: str) -> None:
        """Forget ``name`` if it still points at ``container_id``; call under :meth:`lock`."""
        names = self.read()
        if names.get(name) == container_id:
            del names[name]
            write_json(self.path, names)


def resolve(containers_dir: StrPath, index: NameIndex, key: str) -> str:
    """The id of the container named ``key``, or with id ``key``, or an unambiguous prefix."""
    return find_id(os.fspath(containers_dir), key, index.path)


def list_ids(containers_dir: StrPath) -> list[str]:
    """Ids of every container with a config on disk."""
    try:
        entries = os.listdir(containers_dir)
    except FileNotFoundError:
        return []
    return [e for e in entries
            if is_id(e) and os.path.exists(os.path.join(containers_dir, e, "config.json"))]
