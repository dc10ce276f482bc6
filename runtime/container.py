"""Containers: create, start, stop, remove, exec, logs, stats, inspect, commit.

:class:`Container` is the runtime's integrator: it turns a :class:`ContainerConfig` into
files on disk (see :mod:`.containerstate`), an image's layers into overlay lower dirs
(the store), limits into a cgroup (:mod:`.cgroups`), and hands the sandbox
(:mod:`.sandbox`) a spec to run; the network is attached from the sandbox's
``on_created`` callback while the container's PID 1 waits (:mod:`.network`).

There is no daemon. Every ``cellbox`` process reads the same files under a per-container
lock, and a container's status is *derived*: "running" only while the recorded PID 1 is
alive with its recorded start time on this boot. The first process that notices a
container has ended (its own attached run, ``stop``, ``ps``, ``inspect``, ``rm``...)
finishes it: reads the exit status PID 1 left in ``exit.json``, releases the network and
removes the cgroup, and records "exited". So a crashed host process or a reboot reads as
exited and nothing stale lingers past the next look.

``--rm`` with ``-d`` and crash leftovers: see :mod:`.containerclean`. Inspect and usage
samples: :mod:`.containerinfo`. Docker's rules for the config: :mod:`.containerspec`.

Heavy modules are imported only where needed: pyroute2 (the network) only for bridge
mode, httpx never (pulling is the caller's business), so ``cellbox run`` with a stored
image and ``cellbox exec`` stay fast.
"""

from __future__ import annotations

import _thread
import builtins
import os
import sys

from .containerfiles import discard_tree, remove_tree
from .containerstate import (
    ContainerConfig,
    ContainerState,
    NameIndex,
    boot_id,
    list_ids,
    new_id,
    now_rfc3339,
    process_start_ticks,
    read_json,
    resolve,
    wait_pid,
    write_json,
    write_text_atomic,
)
from .ctx import Flock, suppress
from .errors import (
    CellboxError,
    CgroupError,
    ContainerError,
    ContainerNotFound,
    ContainerStateError,
)
from .rawsettings import is_rootless
from .records import replace
from .settings import Settings

# Only what every command needs is imported up here: `cellbox run` and `ps` load this
# module, and each import shows in their time. The rest is imported where it is used
# (typing, signal.py, contextlib, pathlib and collections.abc not at all: paths are
# strings inside, and the Path properties import pathlib when a caller asks for one).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable, Iterator
    from datetime import datetime
    from pathlib import Path
    from typing import Any

    from .cgroups import Cgroup
    from .images import Image
    from .logs import LogRecord, LogWriter
    from .sandbox import SandboxHandle
    from .stats import StatsSample
else:
    import _signal as signal  # the constants, without signal.py's enums

__all__ = ["EXCHANGE_IN", "EXCHANGE_OUT", "Container", "ContainerConfig"]

EXCHANGE_IN = "/.cellbox/in"  # containers/<id>/exchange/in, read-only inside
EXCHANGE_OUT = "/.cellbox/out"  # containers/<id>/exchange/out, writable inside
UNKNOWN_EXIT = 255  # PID 1 vanished without recording a status (host crash, reboot)
KILLED_EXIT = 128 + signal.SIGKILL
AUTO_REMOVE_GRACE = 10.0  # seconds an exited --rm container is left to its own remover


# ---------------------------------------------------------------------------- helpers

def _containers_dir(settings: Settings) -> str:
    return os.path.join(settings.root, "containers")


def _index(settings: Settings) -> NameIndex:
    return NameIndex(_containers_dir(settings),
                     os.path.join(settings.root, "locks", "containers.lock"))


class _ContainerLock(Flock):
    """The container's ``.lock``; ContainerNotFound once its directory is gone."""

    __slots__ = ()

    def __enter__(self) -> int:
        try:
            return super().__enter__()
        except FileNotFoundError:
            name = os.path.basename(os.path.dirname(self.path))
            raise ContainerNotFound(f"container {name[:12]} was removed") from None


def _path(path: str) -> Path:
    from pathlib import Path  # only for callers that ask for a Path

    return Path(path)


def _online_cpus() -> int:
    from .containerinfo import online_cpus  # only --cpus is checked against it

    return online_cpus()


def _cgroup_v1_host() -> bool:
    from .cgroups import detect

    return detect().version != "v2"


# ---------------------------------------------------------------------------- Container

class Container:
    """One container and its directory ``<root>/containers/<id>``.

    Get one with :meth:`create`, :meth:`load` or :meth:`list`. The object caches config
    and state; every operation re-reads the state under the container's lock, and
    :meth:`refresh` does so explicitly.
    """

    def __init__(self, config: ContainerConfig, state: ContainerState, settings: Settings):
        self.config = config
        self.state = state
        self.settings = settings
        self._dir = os.path.join(_containers_dir(settings), config.id)
        self._handle: SandboxHandle | None = None  # when started by this process
        self._log_writer: LogWriter | None = None
        self._log_lock = _thread.allocate_lock()

    def __repr__(self) -> str:
        return f"<Container {self.name} {self.id[:12]} {self.status}>"

    # -- identity --------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def short_id(self) -> str:
        return self.config.id[:12]

    @property
    def status(self) -> str:
        """``created``, ``running`` or ``exited`` (as of the last refresh)."""
        if self.state.status == "running" and not self.state.alive():
            return "exited"
        return self.state.status

    @property
    def running(self) -> bool:
        return self.state.alive()

    @property
    def exit_code(self) -> int | None:
        return self.state.exit_code

    @property
    def oom_killed(self) -> bool:
        return self.state.oom_killed

    @property
    def pid(self) -> int | None:
        """Host pid of the container's PID 1 while it runs."""
        return self.state.pid if self.running else None

    @property
    def directory(self) -> Path:
        """The container's directory, ``<root>/containers/<id>``."""
        return _path(self._dir)

    @property
    def upper_dir(self) -> Path:
        return _path(os.path.join(self._dir, "upper"))

    @property
    def exchange_dir(self) -> Path:
        """Host side of the kernel <-> container exchange: ``in/`` and ``out/``."""
        return _path(os.path.join(self._dir, "exchange"))

    @property
    def log_dir(self) -> Path:
        return _path(self._dir)

    def _file(self, name: str) -> str:
        return os.path.join(self._dir, name)

    # -- files ----------------------------------------------------------------------

    def _lock(self) -> Flock:
        return _ContainerLock(self._file(".lock"), nofollow=True)

    def _read_state(self) -> ContainerState:
        try:
            return ContainerState.from_dict(read_json(self._file("state.json")))
        except FileNotFoundError:
            raise ContainerNotFound(f"container {self.short_id} was removed") from None

    def _write_state(self) -> None:
        write_json(self._file("state.json"), self.state.to_dict())

    def refresh(self) -> Container:
        """Re-read the state; finish the container if it has ended since (see module doc)."""
        self.state = self._read_state()
        ended = self.state.status == "running" and not self.state.alive()
        if ended or (self.state.status == "exited" and not self.state.cleaned):
            with self._lock():
                self.state = self._read_state()
                # Whoever looks first cleans up; a failure here is retried by the next look
                # (and reported by stop/rm, which call the same code without this guard).
                with suppress(ContainerError):
                    self._finish_locked()
                    if not self.state.cleaned and self.state.status == "exited":
                        self._release_locked()
        return self

    # -- create / load / list -------------------------------------------------------

    @classmethod
    def create(
        cls,
        config: ContainerConfig,
        *,
        settings: Settings | None = None,
        image: Image | None = None,
    ) -> Container:
        """Make a new container from ``config`` (its image must be in the store).

        Resolves command, env, workdir, user, hostname and network with Docker's rules,
        reserves the name, and writes the container's directory. Raises ImageNotFound
        (with a hint to pull) when the image is not stored, ContainerExists for a name in
        use, ConfigError for bad options.
        """
        from .containerspec import check_limits_enforceable, resolve_config

        settings = settings or Settings.load()
        if image is None:
            from .store import Store

            image = Store.from_settings(settings).get_image(config.image)
        rootless = is_rootless()
        if config.has_limits:
            check_limits_enforceable(config, rootless=rootless, cgroup_v1=_cgroup_v1_host())
        container_id = new_id()
        resolved = resolve_config(
            config, image.config, container_id=container_id, created=now_rfc3339(),
            rootless=rootless, online_cpus=_online_cpus() if config.cpus is not None else 0,
        )
        resolved = replace(
            resolved,
            image=image.reference or config.image,
            image_digest=image.digest,
            layers=[layer.chain_id for layer in image.layers],
        )
        containers = _containers_dir(settings)
        directory = os.path.join(containers, container_id)
        index = _index(settings)
        os.makedirs(containers, exist_ok=True)
        with index.lock():
            name = index.claim(config.name or None, container_id, set(list_ids(containers)))
            resolved = replace(resolved, name=name)
            try:
                os.mkdir(directory, 0o700)
                for sub in ("upper", "work", "exchange", "exchange/in", "exchange/out"):
                    os.mkdir(os.path.join(directory, sub))
                # The container writes display files here as its own root user.
                os.chmod(os.path.join(directory, "exchange"), 0o755)
                os.chmod(os.path.join(directory, "exchange", "out"), 0o1777)
                state = ContainerState(status="created")
                write_json(os.path.join(directory, "state.json"), state.to_dict())
                write_json(os.path.join(directory, "image-config.json"), image.config)
                # config.json last: a directory without it is not a container (list_ids).
                write_json(os.path.join(directory, "config.json"), resolved.to_dict())
            except BaseException:
                index.release(name, container_id)
                remove_tree(directory)
                raise
        return cls(resolved, state, settings)

    @classmethod
    def run(
        cls,
        config: ContainerConfig,
        *,
        settings: Settings | None = None,
        image: Image | None = None,
        detach: bool = True,
    ) -> Container:
        """Create and start a container, like ``cellbox run``.

        ``detach=False`` waits for it to end (its output echoed to this process) and, for
        ``auto_remove``, removes it; the returned object still tells its exit code. A
        detached ``auto_remove`` container is removed by whoever sees it ended next (use
        the CLI's watcher for prompt removal).
        """
        container = cls.create(config, settings=settings, image=image)
        try:
            container.start(attach=not detach)
            if not detach:
                container.wait()
        finally:
            if not detach and config.auto_remove:
                with suppress(ContainerNotFound):
                    container.remove(force=True)
        return container

    @classmethod
    def load(cls, key: str, *, settings: Settings | None = None) -> Container:
        """The container with this name, id or unique id prefix (ContainerNotFound if none)."""
        settings = settings or Settings.load()
        containers = _containers_dir(settings)
        container_id = resolve(containers, _index(settings), key)
        return cls._from_dir(os.path.join(containers, container_id), settings)

    @classmethod
    def _from_dir(cls, directory: str, settings: Settings) -> Container:
        try:
            config = ContainerConfig.from_dict(read_json(os.path.join(directory, "config.json")))
            state = ContainerState.from_dict(read_json(os.path.join(directory, "state.json")))
        except FileNotFoundError:
            name = os.path.basename(directory)
            raise ContainerNotFound(f"container {name[:12]} was removed") from None
        container = cls(config, state, settings)
        return container.refresh()

    @classmethod
    def list(
        cls, all: bool = False, *, settings: Settings | None = None
    ) -> builtins.list[Container]:
        """Running containers (every container with ``all``), newest first.

        Exited ``--rm`` containers whose watcher is gone are removed on the way.
        """
        settings = settings or Settings.load()
        containers = _containers_dir(settings)
        found = []
        for container_id in list_ids(containers):
            try:
                container = cls._from_dir(os.path.join(containers, container_id), settings)
            except (ContainerNotFound, ContainerError):
                continue
            if container._orphaned_auto_remove():
                with suppress(CellboxError):
                    container.remove()
                continue
            if all or container.running:
                found.append(container)
        found.sort(key=lambda c: c.config.created, reverse=True)
        return found

    def _orphaned_auto_remove(self) -> bool:
        """An exited ``--rm`` container that its own run or watcher should have removed.

        The grace period leaves the removal to them when they are merely a moment late.
        """
        if not self.config.auto_remove or self.status != "exited":
            return False
        from datetime import UTC, datetime

        from .containerstate import parse_time

        ended = parse_time(self.state.finished_at or self.config.created)
        return (datetime.now(UTC) - ended).total_seconds() > AUTO_REMOVE_GRACE

    # -- start ------------------------------------------------------------------------

    def _lower_dirs(self) -> builtins.list[str]:
        layers = os.path.join(self.settings.root, "layers")
        dirs = []
        for chain_id in reversed(self.config.layers):  # overlayfs wants the top first
            path = os.path.join(layers, chain_id.removeprefix("sha256:"), "diff")
            if not os.path.isdir(path):
                raise ContainerError(
                    f"cannot start {self.name}: layer {chain_id[:19]} of its image "
                    f"{self.config.image} is no longer in the store; pull the image again "
                    f"(cellbox pull {self.config.image})"
                )
            dirs.append(path)
        return dirs

    def _limits(self) -> Any:
        from .cgroups import Limits

        return Limits(
            memory=self.config.memory, memory_swap=self.config.memory_swap,
            cpus=self.config.cpus, pids=self.config.pids_limit,
        )

    def _make_cgroup(self) -> Cgroup | None:
        from .cgroups import create

        try:
            return create(self.id, self._limits(), parent=self.settings.cgroup_parent)
        except CgroupError:
            if is_rootless() and not self.config.has_limits:
                return None  # nothing to enforce; run in the user's own cgroup
            raise

    def _etc_files(self, ip: str | None) -> dict[str, str]:
        from .hosts import etc_files

        return etc_files(self.config.hostname, self.config.network or "none", ip)

    def _sandbox_spec(self, cgroup: Cgroup | None, etc: dict[str, str]) -> Any:
        from .sandbox import MountSpec, ProcessSpec, SandboxSpec

        cfg = self.config
        mounts = [
            MountSpec(os.path.join(self._dir, "exchange", "in"), EXCHANGE_IN, readonly=True),
            MountSpec(os.path.join(self._dir, "exchange", "out"), EXCHANGE_OUT, readonly=False),
        ] + [MountSpec(v.source, v.destination, readonly=v.readonly) for v in cfg.volumes]
        namespaces = ["mount", "uts", "ipc", "pid", "cgroup"]
        if cfg.network != "host":
            namespaces.append("net")
        if is_rootless():
            namespaces.append("user")
        process = ProcessSpec(
            args=cfg.argv, env=list(cfg.env), cwd=cfg.workdir or "/", user=cfg.user or "",
            tty=cfg.tty,
        )
        oom_file = cgroup.oom_kill_file() if cgroup else None
        return SandboxSpec(
            id=self.id,
            hostname=cfg.hostname,
            lower_dirs=self._lower_dirs(),
            upper_dir=self._file("upper"),
            work_dir=self._file("work"),
            mounts=mounts,
            process=process,
            etc_files=etc,
            namespaces=namespaces,
            cgroup_procs=cgroup.procs_files() if cgroup else [],
            log_path=self._file("log.jsonl"),
            log_max_bytes=cfg.log_max_bytes,
            state_dir=self._dir,
            oom_file=oom_file,
        )

    def start(self, *, attach: bool = False, stdin: bool = False) -> Container:
        """Start the container (created or exited; its upper dir is kept).

        ``attach``: the workload's output is echoed to this process's stdout/stderr (and
        ``stdin`` relayed) until :meth:`wait`. Raises ContainerStateError if it runs.
        """
        with self._lock():
            self.state = self._read_state()
            if self.state.alive():
                raise ContainerStateError(f"container {self.name} is already running")
            if self.state.status == "running":
                self._finish_locked()
            if not self.state.cleaned:
                self._release_locked()
            with suppress(FileNotFoundError):
                os.unlink(self._file("exit.json"))
            self.state = ContainerState(status="created", cleaned=False)
            self._write_state()  # cleaned=False: a crash from here on is cleaned up later
            try:
                self._start_locked(attach=attach, stdin=stdin)
            except BaseException as exc:
                self._abort_start_locked(exc)
                raise
        return self

    def _abort_start_locked(self, exc: BaseException) -> None:
        """A start failed half way: kill what was started, release, record why."""
        if self.state.pid and process_start_ticks(self.state.pid) == self.state.start_ticks:
            with suppress(CellboxError, OSError):
                self._kill(self.state.pid)
                wait_pid(self.state.pid, self.state.start_ticks, 10)
        with suppress(CellboxError, OSError):
            self._release_locked()
        # Like docker: 127 for a command that does not exist, 126 not executable, else 125.
        code = getattr(exc, "exit_code", 125)
        code = code if isinstance(code, int) else 125
        self.state = replace(
            self.state, status="exited", exit_code=code, error=str(exc) or type(exc).__name__,
            finished_at=now_rfc3339(),
        )
        self._write_state()

    def _start_locked(self, *, attach: bool, stdin: bool) -> None:
        from .sandbox import etc_file_source, start_sandbox

        # No network.preload() for a bridge: importing pyroute2 in a thread while this one
        # imports and works is CPU against CPU under one GIL, and measured no faster.
        cgroup = self._make_cgroup()
        spec = self._sandbox_spec(cgroup, self._etc_files(None))
        network: dict[str, Any] = {"mode": self.config.network}

        def on_created(pid: int) -> None:
            # PID 1 exists in its fresh namespaces and waits for us: attach the network
            # and record the pid now, so that a failure from here on is cleaned up.
            self.state = replace(
                self.state, pid=pid, start_ticks=process_start_ticks(pid) or 0,
                boot_id=boot_id(),
            )
            self._write_state()
            if self.config.network == "bridge":
                from .network import attach as net_attach

                info = net_attach(self.id, pid, "bridge", list(self.config.ports),
                                  self.settings)
                network.update(info.to_json())
                self.state = replace(self.state, network=dict(network))
                self._write_state()
                # PID 1 bind-mounts the state dir's files after this returns: give
                # /etc/hosts the address it just got.
                hosts = self._etc_files(network.get("ip"))["/etc/hosts"]
                write_text_atomic(etc_file_source(self._dir, "/etc/hosts"), hosts)

        handle = start_sandbox(spec, on_created=on_created, attach=attach, stdin=stdin)
        self._handle = handle
        self.state = replace(
            self.state,
            status="running",
            cgroup_procs=list(spec.cgroup_procs),
            pid=handle.pid,
            start_ticks=process_start_ticks(handle.pid) or self.state.start_ticks,
            boot_id=boot_id(),
            started_at=now_rfc3339(),
            network=dict(network),
            exit_code=None,
            oom_killed=False,
            error="",
        )
        self._write_state()

    # -- exit, stop, wait ------------------------------------------------------------

    def _exit_record(self) -> dict[str, Any]:
        try:
            data = read_json(self._file("exit.json"))
        except (FileNotFoundError, ContainerError):
            return {}
        return data if isinstance(data, dict) else {}

    def _finish_locked(self, *, killed: bool = False) -> None:
        """PID 1 is gone: record how it ended and release what it held. Idempotent."""
        if self.state.status != "running":
            return
        record = self._exit_record()
        code = record.get("code", record.get("exit_code"))
        if not isinstance(code, int) and self._handle is not None:
            # PID 1 died before it could write exit.json; its own wait status says how.
            status = self._handle.poll()
            code = status.code if status is not None else None
        if not isinstance(code, int):
            code = KILLED_EXIT if killed else UNKNOWN_EXIT
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        oom = bool(record.get("oom_killed", False)) or self._cgroup_oom_kills() > 0
        self.state = replace(
            self.state, status="exited", exit_code=code, oom_killed=oom,
            finished_at=self.state.finished_at or now_rfc3339(),
        )
        try:
            self._release_locked()  # writes the state (cleaned) when it succeeds
        except BaseException:
            self._write_state()  # "exited" is recorded even when the release failed
            raise

    def _cgroup_oom_kills(self) -> int:
        from .cgroups import open_cgroup

        with suppress(CellboxError, OSError):
            cgroup = open_cgroup(self.id, parent=self.settings.cgroup_parent)
            if cgroup is not None:
                return cgroup.oom_kills()
        return 0

    def _release_locked(self) -> None:
        """Detach the network and remove the cgroup of the last run. Idempotent."""
        errors = []
        if self.state.network.get("mode") == "bridge" or self.config.network == "bridge":
            try:
                from .network import detach

                detach(self.id, self.settings)
            except CellboxError as exc:
                errors.append(str(exc))
        try:
            from .cgroups import open_cgroup

            cgroup = open_cgroup(self.id, parent=self.settings.cgroup_parent)
            if cgroup is not None:
                cgroup.remove()
        except CellboxError as exc:
            errors.append(str(exc))
        if errors:
            raise ContainerError(
                f"cannot release the resources of container {self.name}: {'; '.join(errors)}"
            )
        self.state = replace(self.state, cleaned=True, network={})
        self._write_state()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the container to end; its exit code (None on timeout)."""
        if self._handle is not None and self.state.status == "running":
            if self._handle.wait(timeout) is None:
                return None
        elif self.state.status == "running" and not wait_pid(
            self.state.pid, self.state.start_ticks, timeout
        ):
            return None
        try:
            with self._lock():
                self.state = self._read_state()
                self._finish_locked()
        except ContainerNotFound:
            # Removed meanwhile by someone else (rm -f): the status PID 1 left is all we have.
            status = self._handle.poll() if self._handle is not None else None
            return status.code if status is not None else self.state.exit_code
        return self.state.exit_code

    def stop(self, timeout: float = 10) -> Container:
        """SIGTERM to PID 1; after ``timeout`` seconds SIGKILL to everything in it."""
        with self._lock():
            self.state = self._read_state()
            if not self.state.alive():
                self._finish_locked()
                if not self.state.cleaned:
                    self._release_locked()
                return self
            from .sandbox import signal_container

            pid, ticks = self.state.pid, self.state.start_ticks
            signal_container(pid, signal.SIGTERM, ticks)
            killed = False
            if not wait_pid(pid, ticks, timeout):
                killed = True
                self._kill(pid)
                wait_pid(pid, ticks, 10)
            self._finish_locked(killed=killed)
        return self

    def _kill(self, pid: int) -> None:
        """SIGKILL PID 1 (which takes its pid namespace with it) and the whole cgroup."""
        from .cgroups import open_cgroup
        from .sandbox import signal_container

        signal_container(pid, signal.SIGKILL, self.state.start_ticks)

        cgroup = open_cgroup(self.id, parent=self.settings.cgroup_parent)
        if cgroup is not None:
            cgroup.kill_all()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to PID 1, which forwards it to the workload."""
        from .sandbox import signal_container

        if not signal_container(self.state.pid, sig, self.state.start_ticks):
            raise ContainerStateError(f"container {self.name} is not running")

    def remove(self, force: bool = False) -> None:
        """Delete the container and its files; ``force`` kills it first if it runs."""
        with self._lock():
            self.state = self._read_state()
            if self.state.alive():
                if not force:
                    raise ContainerStateError(
                        f"container {self.name} is running; stop it first "
                        f"(cellbox stop {self.name}) or remove it with -f"
                    )
                self._kill(self.state.pid)
                wait_pid(self.state.pid, self.state.start_ticks, 10)
                self._finish_locked(killed=True)
            else:
                self._finish_locked()
            if not self.state.cleaned:
                self._release_locked()
            index = _index(self.settings)
            trash = os.path.join(os.path.dirname(self._dir), f".removing-{self.id}")
            with index.lock():
                index.release(self.name, self.id)
                os.rename(self._dir, trash)
        self._close_log()
        # The name and id are free now; the files go in the background (see discard_tree).
        discard_tree(trash)

    # -- exec -----------------------------------------------------------------------

    def _exec_process(
        self,
        args: builtins.list[str],
        *,
        tty: bool,
        env: builtins.list[str] | None,
        workdir: str | None,
        user: str | None,
    ) -> dict[str, Any]:
        """The exec'd process as the dict form of sandbox.ProcessSpec, which exec_in takes
        as well: the sandbox module (subprocess, json...) stays off the exec path."""
        from .containerexec import exec_process

        return exec_process(args, container_env=self.config.env,
                            container_workdir=self.config.workdir,
                            container_user=self.config.user, tty=tty, env=env,
                            workdir=workdir, user=user)

    def exec(
        self,
        args: builtins.list[str],
        *,
        tty: bool = False,
        env: builtins.list[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        control_fd: int | None = None,
    ) -> int:
        """Run ``args`` in the running container from this process; its exit status.

        This process joins the container's namespaces (setns), so it must be
        single-threaded: the ``cellbox exec`` command. A multithreaded program (the
        kernel) runs :meth:`exec_argv` as a subprocess instead.
        """
        from .nsexec import exec_in

        if not self.running:
            raise ContainerStateError(
                f"container {self.name} is not running; start it first (cellbox start "
                f"{self.name})"
            )
        process = self._exec_process(args, tty=tty, env=env, workdir=workdir, user=user)
        # The cgroup.procs files were recorded at start: no cgroup code on this path.
        return exec_in(self.state.pid, process, cgroup_procs=self.state.cgroup_procs,
                       start_time=self.state.start_ticks, control_fd=control_fd)

    def exec_argv(
        self,
        args: builtins.list[str],
        *,
        tty: bool = False,
        interactive: bool = False,
        env: builtins.list[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        control_fd: int | None = None,
    ) -> builtins.list[str]:
        """The command line of a ``cellbox exec`` subprocess running ``args`` in here.

        It runs under ``python -I -S`` through the runtime's ``_boot.py`` (no site, no
        editable-install hook: exec needs nothing from site-packages), which saves
        ~20 ms per exec; ``python -I -m cellbox.runtime exec ...`` is equivalent.
        """
        boot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_boot.py")
        argv = [sys.executable, "-I", "-S", boot, "cli", "exec"]
        if interactive:
            argv.append("-i")
        if tty:
            argv.append("-t")
        if control_fd is not None:
            argv += ["--control-fd", str(control_fd)]
        for item in env or []:
            argv += ["-e", item]
        if workdir:
            argv += ["-w", workdir]
        if user is not None:
            argv += ["-u", user]
        return [*argv, self.id, *args]

    # -- logs -----------------------------------------------------------------------

    def log(self, stream: str, text: str, *, cell: str | None = None) -> None:
        """Append printed ``text`` to the container's log as ``stream`` (thread-safe)."""
        from .logs import LogWriter, records_for_text

        records = records_for_text(stream, text, cell=cell)
        if not records:
            return
        with self._log_lock:
            if self._log_writer is None:
                self._log_writer = LogWriter(self._dir, self.config.log_max_bytes)
            self._log_writer.write(records)

    def _close_log(self) -> None:
        with self._log_lock:
            if self._log_writer is not None:
                self._log_writer.close()
                self._log_writer = None

    def logs(
        self,
        *,
        tail: int | None = None,
        since: datetime | None = None,
        follow: bool = False,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[LogRecord]:
        """The container's log records; ``follow`` ends once the container has ended."""
        from .logs import read_logs

        def ended() -> bool:
            if stop is not None and stop():
                return True
            with suppress(ContainerNotFound):
                self.state = self._read_state()
                return not self.state.alive()
            return True

        return read_logs(self._dir, tail=tail, since=since, follow=follow, stop=ended)

    # -- stats and inspect ----------------------------------------------------------

    def stats(self) -> StatsSample:
        """Usage figures now: cgroup counters and the netns's byte counters."""
        from .containerinfo import sample_stats

        return sample_stats(self)

    def image_config(self) -> dict[str, Any]:
        """The config of the image the container was created from (kept with it)."""
        try:
            data = read_json(self._file("image-config.json"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def inspect(self) -> dict[str, Any]:
        """Everything about the container, shaped like ``docker inspect``."""
        from .containerinfo import inspect_container

        return inspect_container(self)

    # -- commit ---------------------------------------------------------------------

    def commit(
        self,
        reference: str,
        *,
        message: str = "",
        author: str = "",
        changes: builtins.list[str] | None = None,
    ) -> Image:
        """Store the container's changes as a new image ``reference`` (see :mod:`.commit`)."""
        from .commit import commit_container

        return commit_container(self, reference, message=message, author=author,
                                changes=changes or [])
