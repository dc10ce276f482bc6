"""RUN: one command in a throwaway container on the step's file system; its changes are the layer.

A build container is an ordinary :class:`~cellbox.runtime.container.Container` (namespaces,
cgroup, seccomp, dropped capabilities; ``--network none`` unless the build asks for more)
made from the image so far, which need not be in the store's index: the layers are. Its
output is followed from the container log as it is written and handed to the caller line by
line. Afterwards its upper dir is written as a layer with
:func:`cellbox.runtime.commit.write_layer` (deterministic; whiteouts back to ``.wh.``),
leaving out what the runtime itself put there: the ``/.cellbox`` exchange dirs and the
empty files and dirs made only to mount /etc/hosts, /etc/hostname, /etc/resolv.conf,
/proc, /sys and /dev over. The container is removed whatever happens.
"""

from __future__ import annotations

import collections
import contextlib
import os
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..commit import LayerDigests, write_layer
from ..container import Container
from ..containerstate import ContainerConfig
from ..errors import BuildError, CellboxError, SandboxError
from ..images import Image, Layer
from ..logs import read_logs
from ..settings import Settings
from .rootview import RootView

__all__ = ["RunResult", "StepContainer"]

Output = Callable[[str, str], None]  # (stream, text with its newline)

_PLACEHOLDERS = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/proc", "/sys", "/dev")
_TAIL_LINES = 30
_POLL = 0.02


@dataclass
class RunResult:
    """How the command ended, and the last lines it printed (for an error message)."""

    exit_code: int
    tail: list[str] = field(default_factory=list)


class StepContainer:
    """The container of one RUN step. Use as a context manager: it is removed at the end."""

    def __init__(
        self,
        settings: Settings,
        layers: Sequence[Layer],
        image_config: dict[str, Any],
        argv: list[str],
        *,
        env: list[str],
        network: str,
        name: str,
    ) -> None:
        self.settings = settings
        self.layers = list(layers)
        image = Image(reference="", digest="", config=image_config, layers=tuple(layers))
        section = image_config.get("config") or {}
        config = ContainerConfig(
            image="(build step)",
            name=name,
            entrypoint=[],
            command=argv,
            env=env,
            workdir=str(section.get("WorkingDir") or "/"),
            user=str(section.get("User") or ""),
            network=network,
            labels={"cellbox.build": "1"},
        )
        self.container = Container.create(config, settings=settings, image=image)

    def __enter__(self) -> StepContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        with contextlib.suppress(CellboxError):
            self.container.remove(force=True)

    @property
    def exchange_in(self) -> Path:
        """Host side of /.cellbox/in (read-only inside): scripts for heredoc RUNs go here."""
        return self.container.exchange_dir / "in"

    def run(self, on_output: Output | None,
            cancel: threading.Event | None = None) -> RunResult:
        """Start the command, relay its output, wait for it; its exit status.

        ``cancel`` set (from another thread: the kernel's interrupt) stops the command:
        BuildError, and the container is removed by the ``with`` block.
        """
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        try:
            self.container.start()
        except SandboxError as exc:
            message = f"{exc}\n"
            tail.append(message.rstrip("\n"))
            if on_output is not None:
                on_output("stderr", message)
            return RunResult(exc.exit_code, list(tail))
        container = self.container

        def ended() -> bool:
            return not container.state.alive() or (cancel is not None and cancel.is_set())

        for record in read_logs(container.directory, follow=True, stop=ended,
                                poll_interval=_POLL):
            tail.append(record.line)
            if on_output is not None:
                on_output("stderr" if record.stream == "stderr" else "stdout", record.text)
        if cancel is not None and cancel.is_set():
            raise BuildError("the build was interrupted")
        code = container.wait()
        return RunResult(code if code is not None else 255, list(tail))

    def write_layer(self, out: IO[bytes]) -> LayerDigests:
        """The container's changes as a gzip'd layer tar into ``out``."""
        view = RootView([layer.path for layer in reversed(self.layers)])
        return write_layer(self.container.upper_dir, out, exclude=_runtime_paths(
            self.container.upper_dir, view))


def _same_dir(st: os.stat_result, view: RootView, path: str) -> bool:
    node = view.resolve(path, follow=False).node
    if node is None:
        return True
    return node.is_dir and (stat.S_IMODE(node.st.st_mode), node.st.st_uid, node.st.st_gid) == (
        stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def _runtime_paths(upper: Path, view: RootView) -> set[str]:
    """What the runtime made in the upper dir only to mount something over it."""
    out = {"/.cellbox"}
    for path in _PLACEHOLDERS:
        try:
            st = os.lstat(upper / path.lstrip("/"))
        except OSError:
            continue
        empty_file = (stat.S_ISREG(st.st_mode) and st.st_size == 0
                      and view.resolve(path, follow=False).node is None)
        empty_dir = (stat.S_ISDIR(st.st_mode) and not os.listdir(upper / path.lstrip("/"))
                     and _same_dir(st, view, path))
        if empty_file or empty_dir:
            out.add(path)
    etc = upper / "etc"
    with contextlib.suppress(OSError):
        st = os.lstat(etc)
        left = [n for n in os.listdir(etc) if f"/etc/{n}" not in out]
        if stat.S_ISDIR(st.st_mode) and not left and _same_dir(st, view, "/etc"):
            out.add("/etc")
    return out
