"""A notebook's containers: from what ``%container`` declares to a running container.

:class:`NotebookSession` is the kernel's desired state and its reconciliation, through the
runtime's public API only (``Container``, ``Store``, ``pull``):

* **Identity.** A container belongs to a notebook by name. Without ``--name`` it is
  ``<notebook stem>-<8 hex of the notebook's path>-<image>`` (``tour-3f9a2c1b-debian``),
  so the same notebook finds the same container after a kernel restart, two notebooks
  never share one, and ``%container debian`` and ``%container busybox`` are two containers.
* **Reconcile** (:meth:`NotebookSession.ensure`): the image is taken from the store when it
  is there (``--pull missing`` asks no registry: a stored image starts with no network),
  pulled otherwise or with ``--pull always``. The container is reused when its
  ``cellbox.kernel.spec`` label (the options that shape it, see
  :meth:`~cellbox.kernel.magics.ContainerSpec.identity`) and its image digest match;
  otherwise it is recreated *keeping its files*: its upper dir is moved to the new
  container (``--fresh`` drops them instead). A stopped container is started.
* **Mounts.** The notebook's directory is bind-mounted at ``/notebook`` and is the working
  directory (``-w`` overrides), so ``ls`` shows the notebook's files -- read-only when it
  is the user's home or holds it (:meth:`NotebookSession.exposes_home`; ``-v
  .:/notebook`` asks for write access). The ``display``
  command is copied into the exchange directory, which the runtime mounts read-only at
  ``/.cellbox/in``, and put on PATH by the shell's wrapper.
* **Shells.** Each container gets a persistent :class:`~cellbox.kernel.shell.Shell` through
  ``cellbox exec -it --control-fd N`` (bash if the image has it, else sh; ``--shell``
  overrides), and lazily a second one, the *side shell*, for completion and inspection
  while a cell runs.

Every call that can block (pull, create, start, stop) runs in a thread so the kernel keeps
answering. The panel reads :meth:`NotebookSession.containers` (current first).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from cellbox.runtime.container import EXCHANGE_IN, Container
from cellbox.runtime.containerspec import parse_volume
from cellbox.runtime.containerstate import ContainerConfig
from cellbox.runtime.errors import CellboxError, ContainerNotFound, ContainerStateError
from cellbox.runtime.images import Image
from cellbox.runtime.portmap import parse_port
from cellbox.runtime.settings import Settings

from .celllog import CellLog
from .magics import ContainerSpec
from .shell import Shell, ShellCommand, ShellError

__all__ = [
    "LABEL_KERNEL",
    "LABEL_NOTEBOOK",
    "LABEL_SPEC",
    "NOTEBOOK_MOUNT",
    "NotebookContainer",
    "NotebookSession",
    "SessionError",
    "container_shell_command",
    "notebook_path",
]

log = logging.getLogger("cellbox.kernel")
NOTEBOOK_MOUNT = "/notebook"
LABEL_KERNEL = "cellbox.kernel"
LABEL_NOTEBOOK = "cellbox.kernel.notebook"
LABEL_SPEC = "cellbox.kernel.spec"
_SLUG = re.compile(r"[^a-zA-Z0-9_.-]+")
TERMINAL_ENV = ["TERM=xterm-256color", "COLUMNS=120", "LINES=24"]
# Variables of an image's config the cell shell must not start with (unset by its wrapper).
SHELL_HOOKS = ("BASH_ENV", "ENV", "PROMPT_COMMAND", "PS0", "PS1", "PS2", "PS4", "SHELLOPTS",
               "BASHOPTS", "TMOUT", "MAIL", "MAILPATH", "MAILCHECK", "LD_PRELOAD")


class SessionError(CellboxError):
    """A notebook container could not be made as declared."""


def notebook_path(cwd: Path | None = None, session_name: str | None = None) -> Path:
    """The notebook's path, as well as a kernel can know it.

    Jupyter starts a kernel in the notebook's directory and names the notebook in
    ``JPY_SESSION_NAME`` (relative to the server's root, or absolute); a kernel started
    otherwise (jupyter_client, a console) gets its directory as a stand-in.
    """
    cwd = (cwd or Path.cwd()).resolve()
    name = session_name if session_name is not None else os.environ.get("JPY_SESSION_NAME", "")
    if name and not name.endswith("/"):
        return cwd / Path(name).name
    return cwd


def _slug(text: str, limit: int) -> str:
    slug = _SLUG.sub("-", text).strip("-._")[:limit].strip("-._")
    return slug or "x"


@dataclass
class NotebookContainer:
    """One of the notebook's containers, and the shells the kernel runs in it."""

    spec: ContainerSpec
    container: Container
    shell: Shell | None = None
    side: Shell | None = None
    oom_kills: int = 0  # OOM kills seen so far (to report new ones after a cell)
    closing: bool = False  # its shells are being ended: no new side shell meanwhile
    _log: CellLog | None = None

    @property
    def name(self) -> str:
        return self.container.name

    @property
    def log(self) -> CellLog:
        """Where the kernel appends the cells' output (the container's own log)."""
        if self._log is None:
            config = self.container.config
            self._log = CellLog(self.container.log_dir, config.log_max_bytes)
        return self._log

    def memory_limit(self) -> int | None:
        return self.container.config.memory


class NotebookSession:
    """The containers of one notebook (see the module docstring)."""

    def __init__(self, settings: Settings, notebook: Path) -> None:
        self.settings = settings
        self.notebook = notebook
        self.directory = notebook if notebook.is_dir() else notebook.parent
        self.current: NotebookContainer | None = None
        self._entries: dict[str, NotebookContainer] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._home_noted = False

    # ------------------------------------------------------------------ queries

    def containers(self) -> list[Container]:
        """This notebook's containers, the current one first (for the panel)."""
        return [entry.container for entry in self.entries()]

    def entries(self) -> list[NotebookContainer]:
        """Like :meth:`containers`, with the kernel's own state of each."""
        found = list(self._entries.values())
        if self.current is not None and self.current in found:
            found.remove(self.current)
            found.insert(0, self.current)
        return found

    def lookup(self, name: str) -> NotebookContainer | None:
        return self._entries.get(name)

    def default_name(self, image: str) -> str:
        """The name of the container of ``image`` for this notebook."""
        stem = _slug(self.notebook.stem if self.notebook.suffix else self.notebook.name, 40)
        digest = hashlib.sha256(str(self.notebook).encode()).hexdigest()[:8]
        repo = image.split("@")[0].rsplit("/", 1)[-1]
        return f"{stem}-{digest}-{_slug(repo.replace(':', '-'), 40)}"

    # ------------------------------------------------------------------ reconcile

    async def ensure(
        self,
        spec: ContainerSpec,
        progress: Callable[[Any], None] | None = None,
    ) -> tuple[NotebookContainer, list[str]]:
        """Make the declared container exist and run; returns it and notes for the user."""
        name = spec.name or self.default_name(spec.image)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            entry = self._entries.get(name)
            if entry is not None and entry.container.running and (
                replace(entry.spec, trust_output=spec.trust_output) == spec
            ):
                entry.spec = spec  # --trust-output changes how output is shown, nothing else
                return entry, []
            if entry is not None:
                await self._end_shells(entry)
            container, notes = await asyncio.to_thread(self._reconcile, spec, name, progress)
            entry = NotebookContainer(spec, container)
            entry.oom_kills = await asyncio.to_thread(_oom_kills, container)
            self._entries[name] = entry
            return entry, notes

    async def attach(self, name: str) -> NotebookContainer | None:
        """An existing container by name (``%%container NAME``), started if stopped."""
        entry = self._entries.get(name)
        if entry is not None:
            if not entry.container.running:
                await asyncio.to_thread(_start, entry.container)
            return entry
        try:
            container = await asyncio.to_thread(Container.load, name, settings=self.settings)
        except ContainerNotFound:
            return None
        if name not in (container.name, container.id):
            return None  # an id prefix: the word is more likely an image
        if not container.running:
            await asyncio.to_thread(_start, container)
        spec = ContainerSpec(image=container.config.image, name=container.name)
        entry = NotebookContainer(spec, container)
        entry.oom_kills = await asyncio.to_thread(_oom_kills, container)
        self._entries[name] = entry
        return entry

    def _reconcile(
        self, spec: ContainerSpec, name: str, progress: Callable[[Any], None] | None
    ) -> tuple[Container, list[str]]:
        notes: list[str] = []
        image = self._image(spec, progress)
        config = self._config(spec, name, image)
        existing: Container | None
        try:
            existing = Container.load(name, settings=self.settings)
        except ContainerNotFound:
            existing = None
        if existing is not None and existing.config.labels.get(LABEL_KERNEL) is None:
            raise SessionError(
                f"a container named {name!r} exists and was not made by a notebook; choose "
                f"another --name, or use it for one cell with %%container {name}"
            )
        if existing is not None and spec.fresh:
            existing.remove(force=True)
            existing = None
            notes.append(f"--fresh: {name} starts again from {spec.image}, without its files")
        elif existing is not None and not _matches(existing, config):
            existing = self._recreate(existing, config)
            notes.append(f"the options changed: {name} was recreated, its files kept")
        container = existing or Container.create(config, settings=self.settings, image=image)
        if not container.running:
            _start(container)
        read_only = [v for v in container.config.volumes
                     if v.destination == NOTEBOOK_MOUNT and v.readonly]
        if read_only and self.exposes_home() and not self._home_noted:
            self._home_noted = True
            notes.append(
                f"{self.directory} is your home directory: it is mounted read-only at "
                f"{NOTEBOOK_MOUNT}, so that a container cannot plant files the host would run "
                f"(~/.bashrc, ~/.ssh); -v .:{NOTEBOOK_MOUNT} gives it write access"
            )
        return container, notes

    def _image(self, spec: ContainerSpec, progress: Callable[[Any], None] | None) -> Image:
        from cellbox.runtime.store import Store

        store = Store.from_settings(self.settings)
        if spec.pull != "always":
            # Docker's meaning of "missing": a stored image is used as it is, and the
            # registry is not asked (no network, no httpx import on a warm start).
            stored = store.find_image(spec.image)
            if stored is not None and all(layer.path.is_dir() for layer in stored.layers):
                return stored
            if spec.pull == "never":
                return store.get_image(spec.image)  # raises ImageNotFound with the hint
        from cellbox.runtime.pull import pull

        return pull(spec.image, settings=self.settings, policy=spec.pull, progress=progress,
                    store=store)

    def exposes_home(self) -> bool:
        """Whether the notebook's directory is the user's home or holds it.

        A container that may write there can plant ``~/.bashrc``, ``~/.ssh/authorized_keys``
        or ``~/.jupyter`` configuration -- code the host later runs as the user -- so such
        a directory is mounted read-only unless the cell asks for it (``-v .:/notebook``).
        """
        home = Path(os.path.expanduser("~")).resolve()
        here = self.directory.resolve()
        return home == here or home.is_relative_to(here)

    def _config(self, spec: ContainerSpec, name: str, image: Image) -> ContainerConfig:
        directory = str(self.directory)
        volumes = []
        if not any(v.container.rstrip("/") == NOTEBOOK_MOUNT for v in spec.volumes):
            mode = ":ro" if self.exposes_home() else ""
            volumes.append(parse_volume(f"{directory}:{NOTEBOOK_MOUNT}{mode}", cwd=directory))
        for volume in spec.volumes:
            host = volume.host
            if not host.startswith(("/", ".", "~")):
                host = "./" + host  # relative to the notebook, like the cell's own paths
            mode = ":ro" if volume.readonly else ""
            volumes.append(parse_volume(f"{host}:{volume.container}{mode}", cwd=directory))
        identity = dict(spec.identity())
        identity["notebook_dir"] = directory
        values: dict[str, Any] = {
            "id": "",
            "name": name,
            "image": spec.image,
            "env": [f"{key}={value}" for key, value in spec.env],
            "workdir": spec.workdir or NOTEBOOK_MOUNT,
            "user": spec.user,  # None: the image's User
            "memory": spec.memory,
            "cpus": spec.cpus,
            "pids_limit": spec.pids_limit,
            "network": spec.network,
            "ports": [parse_port(p) for p in spec.ports],
            "volumes": volumes,
            "keep": True,
            "labels": {
                LABEL_KERNEL: "1",
                LABEL_NOTEBOOK: str(self.notebook),
                LABEL_SPEC: json.dumps(identity, sort_keys=True),
            },
        }
        config = ContainerConfig(**values)
        config.image_digest = image.digest
        return config

    def _recreate(self, old: Container, config: ContainerConfig) -> Container:
        """Replace ``old`` by a container of ``config`` that has ``old``'s files.

        The runtime has no "recreate keeping files", so: stop, move the upper dir aside
        (same file system: a rename), remove the old container, create the new one, move
        the files into it. If anything fails after the move, the files stay in the aside
        directory and the error says where.
        """
        old.stop(timeout=5)
        aside = old.directory.parent / f".kept-{old.id}"
        os.rename(old.upper_dir, aside)
        try:
            old.remove(force=True)
            image = self._image(ContainerSpec(config.image, pull="never"), None)
            new = Container.create(config, settings=self.settings, image=image)
            new.upper_dir.rmdir()
            os.rename(aside, new.upper_dir)
        except (CellboxError, OSError) as exc:
            raise SessionError(
                f"recreating {config.name} failed ({exc}); its files are kept in {aside}"
            ) from exc
        return new

    # ------------------------------------------------------------------ shells

    async def shell(self, entry: NotebookContainer) -> Shell:
        """The container's persistent shell, (re)started when needed."""
        if entry.shell is not None and entry.shell.alive:
            return entry.shell
        if entry.shell is not None:
            entry.shell.close()  # it ended (exit, a crash): release its terminal
            entry.shell = None
        if not entry.container.running:
            await asyncio.to_thread(_start, entry.container)
        shell = Shell(container_shell_command(entry))
        await shell.start()
        entry.shell = shell
        return shell

    async def side_shell(self, entry: NotebookContainer) -> Shell:
        """A second shell in the same container, for completion while a cell runs."""
        if entry.side is not None and entry.side.alive:
            return entry.side
        if entry.closing:
            raise ShellError(f"the shells of {entry.name} are being ended")
        if entry.side is not None:
            entry.side.close()
        shell = Shell(container_shell_command(entry))
        await shell.start()
        entry.side = shell
        return shell

    # ------------------------------------------------------------------ stop, remove

    async def stop(self, entry: NotebookContainer) -> None:
        await self._end_shells(entry)
        await asyncio.to_thread(entry.container.stop, 5)

    async def remove(self, entry: NotebookContainer, force: bool = True) -> None:
        """Remove the container and its files; it stays declared (see :meth:`removed`)."""
        await self._end_shells(entry)
        await asyncio.to_thread(entry.container.remove, force)
        self._entries.pop(entry.name, None)

    def removed(self, entry: NotebookContainer) -> bool:
        """Whether ``entry``'s container was removed (``%rm``): the next cell makes it anew."""
        return self._entries.get(entry.name) is not entry

    async def shutdown(self) -> None:
        """Kernel shutdown: end every shell, stop every container (files kept); all the
        containers at once."""

        async def end(entry: NotebookContainer) -> None:
            await self._end_shells(entry)
            await asyncio.to_thread(_stop_quietly, entry.container)

        await asyncio.gather(*(end(entry) for entry in list(self._entries.values())))

    def close_now(self) -> None:
        """End every shell at once (SIGKILL), for when :meth:`shutdown` cannot run."""
        for entry in list(self._entries.values()):
            for shell in (entry.shell, entry.side):
                if shell is not None:
                    shell.close()
            entry.shell = entry.side = None

    async def _end_shells(self, entry: NotebookContainer) -> None:
        """End the container's shells (hung up, so their relays reap them: see
        :meth:`Shell.aclose`) before the container is stopped or replaced."""
        shells = [shell for shell in (entry.shell, entry.side) if shell is not None]
        entry.shell = entry.side = None
        entry.closing = True
        try:
            await asyncio.gather(*(shell.aclose() for shell in shells))
        finally:
            entry.closing = False
        if entry._log is not None:
            entry._log.close()


def _matches(container: Container, config: ContainerConfig) -> bool:
    labels = container.config.labels
    return (
        labels.get(LABEL_SPEC) == config.labels[LABEL_SPEC]
        and container.config.image_digest == config.image_digest
    )


def _start(container: Container) -> None:
    try:
        container.start()
    except ContainerStateError:
        container.refresh()  # someone else started it meanwhile
        if not container.running:
            raise


def _stop_quietly(container: Container) -> None:
    try:
        container.stop(timeout=5)
    except (CellboxError, OSError) as exc:  # shutting down: say it, go on with the others
        log.warning("stopping %s: %s", container.name, exc)


def _oom_kills(container: Container) -> int:
    try:
        return container.stats().oom_kills
    except (CellboxError, OSError):
        return 0


def _install_display(exchange_in: Path) -> None:
    """Copy the ``display`` command where the container sees it (read-only)."""
    bin_dir = exchange_in / "bin"
    bin_dir.mkdir(mode=0o755, exist_ok=True)
    source = files("cellbox.kernel") / "bin" / "display"
    tmp = bin_dir / f".display.{os.getpid()}"
    tmp.write_bytes(source.read_bytes())
    tmp.chmod(0o755)
    os.replace(tmp, bin_dir / "display")


def shell_argv(shell: str | None) -> str:
    """The shell code run by ``/bin/sh -c`` in the container to become the cell shell."""
    if shell is not None:
        flags = " --norc --noprofile --noediting" if os.path.basename(shell) == "bash" else ""
        start = f"exec {shlex.quote(shell)}{flags} -i"
    else:
        start = (
            "if command -v bash >/dev/null 2>&1; then exec bash --norc --noprofile "
            "--noediting -i; else exec sh -i; fi"
        )
    return (
        # An image's startup hooks and traps must not run in (or break) the cell shell
        # (docs/security.md): rc files, prompt hooks, xtrace with a PS4 that runs code,
        # an idle timeout that ends the shell between cells, mail notices at the prompt.
        f"unset {' '.join(SHELL_HOOKS)}; "
        f'PATH="${{PATH:-/usr/bin:/bin}}:{EXCHANGE_IN}/bin"; export PATH; {start}'
    )


def _blanked(env: list[str]) -> list[str]:
    """Empty values for what even the ``/bin/sh -c`` wrapper must not start with.

    ``LD_PRELOAD`` would load the image's library into the wrapper. Exported bash functions
    (``BASH_FUNC_command%%=() {...}``) would replace ``command``, ``printf`` or ``unset`` in
    the cell shell, and their names cannot be unset from sh: a bash that is /bin/sh would
    pass them on. Empty, neither has any effect.
    """
    names = {item.partition("=")[0] for item in env}
    return [f"{name}=" for name in sorted(names)
            if name == "LD_PRELOAD" or name.startswith("BASH_FUNC_")]


def container_shell_command(entry: NotebookContainer) -> ShellCommand:
    """How to get a cell shell in ``entry``'s container (``cellbox exec -it``)."""
    container = entry.container
    exchange = container.exchange_dir / "in"
    _install_display(exchange)
    argv = container.exec_argv(
        ["/bin/sh", "-c", shell_argv(entry.spec.shell)],
        tty=True,
        interactive=True,
        env=TERMINAL_ENV + _blanked(container.config.env),
        control_fd=0,
    )
    # exec_argv takes a number; the shell puts the real one in when it makes the socket.
    argv[argv.index("--control-fd") + 1] = "{control_fd}"
    return ShellCommand(argv, exchange, EXCHANGE_IN)
