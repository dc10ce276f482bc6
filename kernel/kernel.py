"""The Jupyter kernel: every cell runs in a persistent container chosen by ``%container``.

:class:`CellboxKernel` is an ``ipykernel.kernelbase.Kernel`` with async handlers. One
execute request goes:

1. :func:`~cellbox.kernel.magics.parse_cell` splits the cell into magics and shell code;
2. the magics run in order: ``%container`` reconciles the notebook's container through
   :class:`~cellbox.kernel.session.NotebookSession` (pull with progress, create or reuse,
   start -- in threads, so the kernel keeps answering), the others report or manage;
3. the code runs in the container's persistent :class:`~cellbox.kernel.shell.Shell`; its
   output streams to iopub through :class:`~cellbox.kernel.output.CellOutput` (coalesced,
   capped, logged to the container's log tagged with the cell), ``display`` files become
   display_data, reads of the terminal become input_requests;
4. the reply: ``ok``, or ``error`` for a non-zero exit status, an interrupt, an OOM kill,
   the shell or container ending, or an error of the runtime -- one error output naming
   the problem and the fix, after which the kernel stays usable.

Threads: ipykernel 7 handles control messages (``interrupt_request``, ``usage_request``)
on a thread of their own. An interrupt is handed to the main event loop with
``call_soon_threadsafe``: the running shell signals the terminal's foreground job
(SIGINT, then SIGKILL), or, while a magic waits for the runtime, the cell stops waiting.
``usage_request`` reads the current container's cgroup figures, which is thread-safe.

Completion, inspection and ``is_complete`` are answered while a cell runs: the kernel
dispatches those requests concurrently (ipykernel serialises shell messages by default)
and uses a side shell in the same container when the cell shell is busy.

Everything iopub is sent with the parent captured when the request started, never the
context-dependent "current parent": output produced by the terminal reader callback must
not end up under another cell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import comm
from cellbox.runtime.errors import CellboxError
from cellbox.runtime.settings import Settings
from cellbox.runtime.units import format_bytes
from ipykernel.kernelbase import Kernel
from traitlets import Float, Integer

from . import commands
from .cellio import Collector, KernelIO
from .completion import (
    completion_request,
    completion_script,
    inspect_script,
    inspect_word,
    magic_matches,
    parse_matches,
)
from .magics import (
    Cell,
    CommitMagic,
    ContainerfileMagic,
    ContainerMagic,
    ContainerSpec,
    HelpMagic,
    ImagesMagic,
    LayersMagic,
    LogsMagic,
    Magic,
    MagicError,
    PsMagic,
    PullMagic,
    PushMagic,
    RmiMagic,
    RmMagic,
    RunMagic,
    StatsMagic,
    StopMagic,
    TagMagic,
    help_text,
    parse_cell,
)
from .output import DEFAULT_LIMIT, CellOutput
from .policy import OutputPolicy, trust_note
from .policy_text import TerminalText, clean_text
from .progress import PullProgress
from .ratelimit import DEFAULT_CELL_LIMIT, DEFAULT_RATE, CellBudget, IopubGate
from .session import NotebookContainer, NotebookSession, notebook_path
from .shell import CellResult, Shell, ShellError
from .syntax import is_complete
from .usage import usage_reply

__all__ = ["CellFailed", "CellboxKernel"]

T = TypeVar("T")

try:
    from importlib.metadata import version as _version

    __version__ = _version("cellbox")
except Exception:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0"

SHUTDOWN_TIMEOUT = 20.0  # seconds for ending the shells and stopping the containers
CONCURRENT_REQUESTS = {"complete_request", "inspect_request", "is_complete_request",
                       "kernel_info_request", "comm_info_request"}


class CellFailed(Exception):
    """A cell ended in an error the user should see (``ename``: ``evalue``)."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(evalue)
        self.ename = ename
        self.evalue = evalue


@dataclass
class _Request:
    """What an execute request needs to publish: its parent and routing."""

    parent: dict[str, Any]
    ident: Any
    allow_stdin: bool
    count: int
    displays: list[str] = field(default_factory=list)


class CellboxKernel(Kernel):
    """The cellbox kernel (see the module docstring)."""

    implementation = "cellbox"
    implementation_version = __version__
    language = "bash"
    language_version = "5"
    language_info: dict[str, object] = {  # noqa: RUF012 - ipykernel's own attribute
        "name": "bash",
        "mimetype": "text/x-sh",
        "file_extension": ".sh",
        "codemirror_mode": "shell",
        "pygments_lexer": "bash",
    }
    banner = (
        "cellbox: every cell runs in a persistent Linux container.\n"
        "%container IMAGE picks the container; %help lists the magics."
    )

    output_limit = Integer(
        int(os.environ.get("CELLBOX_OUTPUT_LIMIT", DEFAULT_LIMIT)),
        help="Characters of a cell's output sent to the notebook; the rest goes to the log.",
    ).tag(config=True)
    query_timeout = Float(5.0, help="Seconds a completion or inspection may take.").tag(
        config=True
    )
    cell_output_limit = Integer(
        int(os.environ.get("CELLBOX_CELL_OUTPUT_LIMIT", DEFAULT_CELL_LIMIT)),
        help="Bytes of text and display items one cell may send; the rest is dropped.",
    ).tag(config=True)
    iopub_rate = Float(
        float(os.environ.get("CELLBOX_IOPUB_RATE", DEFAULT_RATE)),
        help="iopub messages a second one cell may send (text waiting is coalesced).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.settings_error: str | None = None
        try:
            self.settings = Settings.load()
        except CellboxError as exc:
            self.settings_error = str(exc)
            self.settings = Settings()
        self.notebook = NotebookSession(self.settings, notebook_path())
        self.comm_manager = comm.get_comm_manager()
        for msg_type in ("comm_open", "comm_msg", "comm_close"):
            self.shell_handlers[msg_type] = getattr(self.comm_manager, msg_type)
        self.comm_manager.register_target("jupyter.widget.control", self._widget_control)
        self.widgets = False  # the frontend renders ipywidgets (it asked for their states)
        self.panel: Any = None
        with contextlib.suppress(ImportError):
            from .panel import Panel

            self.panel = Panel(self.notebook.containers)
            self.panel.register(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: Shell | None = None  # the shell of the cell that runs now
        self._waiting: asyncio.Task[Any] | None = None  # a magic waiting for the runtime
        self._interrupted = False
        self._announced_default = False
        self._cpu_sample: tuple[int, int] | None = None  # (monotonic ns, cpu ns) for usage
        # A shutdown_request is being handled / was handled to its end (see kernel.app).
        self.shutting_down = False
        self.shutdown_handled = threading.Event()

    # ------------------------------------------------------------------ plumbing

    def start(self) -> None:
        super().start()  # type: ignore[no-untyped-call]
        self._loop = asyncio.get_event_loop()
        signal.signal(signal.SIGINT, self._on_sigint)

    def pre_handler_hook(self) -> None:
        """ipykernel would make SIGINT raise KeyboardInterrupt here; ours interrupts the job."""

    def post_handler_hook(self) -> None:
        pass

    def _on_sigint(self, signum: int, frame: object) -> None:
        del signum, frame
        self._interrupt_soon()

    async def process_control(self, msg: Any) -> None:
        """ipykernel's, then: a shutdown was handled to its end (its output flushed)."""
        await super().process_control(msg)  # type: ignore[no-untyped-call]
        if self.shutting_down:
            self.shutdown_handled.set()

    async def shell_main(self, subshell_id: str | None, msg: Any) -> None:
        """Answer completion, inspection and is_complete even while a cell runs."""
        if self._running is not None or self._waiting is not None:
            msg_type = self._msg_type(msg)
            if msg_type in CONCURRENT_REQUESTS:
                await self.dispatch_shell(msg, subshell_id=subshell_id, concurrent=True)
                return
        await super().shell_main(subshell_id, msg)

    def _msg_type(self, msg: Any) -> str | None:
        if self.session is None:
            return None
        try:
            _, frames = self.session.feed_identities(msg, copy=False)
            header = self.session.deserialize(frames, content=False, copy=False)["header"]
        except Exception:
            return None
        value = header.get("msg_type")
        return value if isinstance(value, str) else None

    def _publish(self, request: _Request, msg_type: str, content: dict[str, Any]) -> None:
        assert self.session is not None
        self.session.send(
            self.iopub_socket, msg_type, content, parent=request.parent,
            ident=self._topic(msg_type),  # type: ignore[no-untyped-call]
        )

    def _stream(self, request: _Request, text: str, name: str = "stdout") -> None:
        if text:
            self._publish(request, "stream", {"name": name, "text": text})

    def _widget_control(self, comm_: Any, msg: dict[str, Any]) -> None:
        """The frontend's widget manager says hello: it renders widgets."""
        del msg
        self.widgets = True

        def reply(message: dict[str, Any]) -> None:
            data = message.get("content", {}).get("data", {})
            if isinstance(data, dict) and data.get("method") == "request_states":
                comm_.send({"method": "update_states", "states": {}, "buffer_paths": []})

        comm_.on_msg(reply)

    # ------------------------------------------------------------------ execute

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict[str, Any] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        del store_history, user_expressions, cell_meta, cell_id
        self._loop = asyncio.get_running_loop()
        self._interrupted = False
        request = _Request(
            self.get_parent("shell"),  # type: ignore[no-untyped-call]
            self._parent_ident["shell"],
            allow_stdin,
            self.execution_count,
        )
        try:
            if self.settings_error is not None:
                raise CellFailed("ConfigError", self.settings_error)
            cell = parse_cell(code)
            await self._run_cell(cell, request, silent)
        except CellFailed as exc:
            return self._error(request, exc.ename, exc.evalue, silent)
        except MagicError as exc:
            return self._error(request, "MagicError", str(exc), silent)
        except CellboxError as exc:
            return self._error(request, type(exc).__name__, str(exc), silent)
        except asyncio.CancelledError:
            return self._error(
                request, "Interrupted", "interrupted while waiting for the runtime", silent
            )
        return {
            "status": "ok",
            "execution_count": self.execution_count,
            "payload": [],
            "user_expressions": {},
        }

    def _error(self, request: _Request, ename: str, evalue: str, silent: bool) -> dict[str, Any]:
        evalue = clean_text(evalue)  # it may quote what a container printed
        traceback = [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"]
        content = {"ename": ename, "evalue": evalue, "traceback": traceback}
        if not silent:
            self._publish(request, "error", {**content, "execution_count": request.count})
        return {"status": "error", "execution_count": self.execution_count, **content}

    async def _run_cell(self, cell: Cell, request: _Request, silent: bool) -> None:
        if cell.containerfile is not None:
            await self._build(cell.containerfile, request)
            return
        target = self.notebook.current
        if cell.cell_container is not None:
            target = await self._cell_container(cell.cell_container.spec, request)
        for magic in cell.magics:
            if isinstance(magic, ContainerMagic):
                target = await self._declare(magic.spec, request)
                self.notebook.current = target
            else:
                await self._magic(magic, request, target)
        if cell.has_code:
            if target is None:
                target = await self._default_container(request)
            elif self.notebook.removed(target):  # %rm'd: the declaration still holds
                fresh = await self._declare(target.spec, request)
                if self.notebook.current is target:
                    self.notebook.current = fresh
                target = fresh
            await self._run_code(target, cell.code, request, silent)

    async def _wait(self, awaitable: Awaitable[T]) -> T:
        """Await a runtime call so that an interrupt can stop the waiting."""
        task = asyncio.ensure_future(awaitable)
        self._waiting = task
        try:
            return await task
        finally:
            self._waiting = None

    async def _declare(self, spec: ContainerSpec, request: _Request) -> NotebookContainer:
        progress = PullProgress(
            spec.image, lambda kind, data, transient: self._display(request, kind, data,
                                                                   transient),
            widgets=self.widgets,
        )
        progress.start()
        try:
            entry, notes = await self._wait(self.notebook.ensure(spec, progress))
        finally:
            await progress.stop()
        for note in notes:
            self._stream(request, note + "\n")
        if spec.trust_output:
            self._stream(request, trust_note(entry.name) + "\n", "stderr")
        return entry

    async def _cell_container(self, spec: ContainerSpec, request: _Request) -> NotebookContainer:
        """``%%container NAME_OR_IMAGE``: an existing container by name, else an image's."""
        if replace(spec, trust_output=False) == ContainerSpec(image=spec.image):  # maybe a name
            entry = await self._wait(self.notebook.attach(spec.image))
            if entry is not None:
                if spec.trust_output != entry.spec.trust_output:
                    entry.spec = replace(entry.spec, trust_output=spec.trust_output)
                    if spec.trust_output:
                        self._stream(request, trust_note(entry.name) + "\n", "stderr")
                return entry
        return await self._declare(spec, request)

    async def _default_container(self, request: _Request) -> NotebookContainer:
        spec = ContainerSpec(image=self.settings.default_image)
        if not self._announced_default:
            self._announced_default = True
            self._stream(
                request,
                f"(no %container yet: cells run in the default image "
                f"{self.settings.default_image}; %container IMAGE chooses another)\n",
            )
        entry = await self._declare(spec, request)
        self.notebook.current = entry
        return entry

    def _display(
        self, request: _Request, kind: str, data: dict[str, Any], transient: dict[str, Any]
    ) -> None:
        content: dict[str, Any] = {"data": data, "metadata": {}}
        if transient:
            content["transient"] = transient
        self._publish(request, kind, content)

    # ------------------------------------------------------------------ magics

    async def _magic(
        self, magic: Magic, request: _Request, target: NotebookContainer | None
    ) -> None:
        settings = self.notebook.settings
        text: str
        if isinstance(magic, HelpMagic):
            text = help_text(magic.topic)
        elif isinstance(magic, PsMagic):
            ours = {entry.name for entry in self.notebook.entries()}
            current = self.notebook.current.name if self.notebook.current else None
            text = await self._wait(
                asyncio.to_thread(commands.ps, settings, magic.all, current, ours)
            )
        elif isinstance(magic, ImagesMagic):
            text = await self._wait(asyncio.to_thread(commands.images, settings))
        elif isinstance(magic, PullMagic):
            text = await self._pull(magic.image, request)
        elif isinstance(magic, RmiMagic):
            removed = await self._wait(
                asyncio.to_thread(commands.rmi, settings, magic.references, magic.force)
            )
            if removed.text:
                self._stream(request, clean_text(removed.text) + "\n")
            if removed.failures:
                raise CellFailed(removed.failures[0][0],
                                 "\n".join(message for _, message in removed.failures))
            return
        elif isinstance(magic, TagMagic):
            text = await self._wait(
                asyncio.to_thread(commands.tag, settings, magic.source, magic.target)
            )
        elif isinstance(magic, RunMagic):
            await self._wait(self._run_container(magic.args, request))
            return
        elif isinstance(magic, PushMagic):
            from .containerfile import push_image

            text = await self._threaded_with_output(
                request, lambda emit, cancel: push_image(
                    magic.reference, magic.destination, on_output=emit,
                    settings=self.notebook.settings,
                ),
            )
        elif isinstance(magic, StopMagic | RmMagic):
            entry = await self._named(magic.name, target)
            if isinstance(magic, StopMagic):
                await self._wait(self.notebook.stop(entry))
                text = f"stopped {entry.name} (its files are kept; the next cell starts it)"
            else:
                await self._wait(self.notebook.remove(entry, force=True))
                text = f"removed {entry.name} and its files"
        else:
            entry = self._need(target, magic)
            container = entry.container
            if isinstance(magic, LogsMagic):
                text = await self._wait(asyncio.to_thread(commands.logs, container, magic.tail))
            elif isinstance(magic, StatsMagic):
                text = await self._wait(asyncio.to_thread(commands.stats, container))
            elif isinstance(magic, LayersMagic):
                text = await self._wait(asyncio.to_thread(commands.layers, settings, container))
            else:
                assert isinstance(magic, CommitMagic)
                text = await self._wait(
                    asyncio.to_thread(commands.commit, container, magic.reference, magic.message)
                )
        out = CellOutput(lambda t: self._stream(request, t), limit=self.output_limit)
        text = clean_text(text)  # container logs, image history: not trusted
        out.write(text if text.endswith("\n") else text + "\n")
        note = out.close()
        if note:
            self._stream(request, note)

    def _need(self, target: NotebookContainer | None, magic: Magic) -> NotebookContainer:
        if target is None:
            name = type(magic).__name__.removesuffix("Magic").lower()
            raise CellFailed(
                "NoContainer",
                f"%{name} needs a container, and this notebook has none yet; declare one "
                "with %container IMAGE (or run a cell: it starts the default one)",
            )
        return target

    async def _named(self, name: str | None, target: NotebookContainer | None) -> NotebookContainer:
        if name is None:
            if target is None:
                raise CellFailed("NoContainer", "this notebook has no container yet")
            return target
        entry = await self._wait(self.notebook.attach(name))
        if entry is None:
            raise CellFailed("ContainerNotFound", f"no container named {name!r} (%ps -a)")
        return entry

    async def _pull(self, image: str, request: _Request) -> str:
        from cellbox.runtime.pull import pull

        progress = PullProgress(
            image, lambda kind, data, transient: self._display(request, kind, data, transient),
            widgets=self.widgets,
        )
        progress.start()
        try:
            result = await self._wait(asyncio.to_thread(
                pull, image, settings=self.notebook.settings, policy="always", progress=progress
            ))
        finally:
            await progress.stop()
        return f"pulled {result.reference or image} ({result.digest[:19]})"

    async def _build(self, magic: ContainerfileMagic, request: _Request) -> None:
        """``%%containerfile REF``: build the cell, its log streamed into the cell."""
        from .containerfile import build_cell

        summary = await self._threaded_with_output(
            request, lambda emit, cancel: build_cell(
                magic.reference, magic.text, self.notebook.directory, on_output=emit,
                build_args=dict(magic.build_args), no_cache=magic.no_cache,
                target=magic.target, network=magic.network, pull=magic.pull,
                first_line=magic.first_line, settings=self.notebook.settings, cancel=cancel,
            ),
        )
        self._stream(request, summary + "\n")

    async def _threaded_with_output(
        self,
        request: _Request,
        work: Callable[[Callable[[str, str], None], threading.Event], str],
    ) -> str:
        """Run ``work(emit, cancel)`` in a thread; what it emits streams into the cell.

        An interrupt sets ``cancel`` (the build kills its running step) and stops waiting.
        """
        loop = asyncio.get_running_loop()
        terminal = TerminalText()  # build steps print what their containers print
        out = CellOutput(lambda t: self._stream(request, terminal.feed(t)),
                         limit=self.output_limit)
        cancel = threading.Event()

        def emit(stream: str, text: str) -> None:  # in the worker thread
            del stream  # one text stream, as for cells (stdout and stderr interleaved)
            loop.call_soon_threadsafe(out.write, text)

        try:
            result = await self._wait(asyncio.to_thread(work, emit, cancel))
        except asyncio.CancelledError:
            cancel.set()
            raise
        finally:
            await asyncio.sleep(0)  # let the last emitted text arrive
            note = out.close()
            if note:
                self._stream(request, note, "stderr")
        return str(result)

    async def _run_container(self, args: tuple[str, ...], request: _Request) -> None:
        """``%run``: ``cellbox run --rm ARGS`` as a subprocess, its output streamed."""
        import codecs
        import sys

        argv = [sys.executable, "-I", "-m", "cellbox.runtime", "run", "--rm", *args]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        terminal = TerminalText()
        out = CellOutput(lambda t: self._stream(request, terminal.feed(t)),
                         limit=self.output_limit)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        assert proc.stdout is not None
        try:
            while chunk := await proc.stdout.read(1 << 16):
                out.write(decoder.decode(chunk).replace("\r\n", "\n"))
            status = await proc.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # cellbox run passes it to the container
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), 3)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            raise
        finally:
            out.write(decoder.decode(b"", final=True))
            note = out.close()
            if note:
                self._stream(request, note, "stderr")
        if status != 0:
            raise CellFailed("ExitStatus", f"cellbox run {' '.join(args)}: exit status {status}")

    # ------------------------------------------------------------------ code

    async def _run_code(
        self, entry: NotebookContainer, code: str, request: _Request, silent: bool
    ) -> None:
        try:
            shell = await self._wait(self.notebook.shell(entry))
        except ShellError as exc:
            raise CellFailed("ShellError", await self._why_shell_failed(entry, str(exc))) from None
        container = entry.container
        cell_tag = str(request.count)

        def log(text: str) -> None:
            with contextlib.suppress(CellboxError, OSError):
                entry.log.write(text, cell_tag)

        # Everything the container hands the notebook goes through its output policy
        # (docs/security.md) and, at a capped rate, through the cell's iopub gate.
        trusted = entry.spec.trust_output
        gate = IopubGate(
            (lambda kind, content: None) if silent
            else (lambda kind, content: self._publish(request, kind, content)),
            asyncio.get_running_loop().call_later,
            rate=self.iopub_rate, burst=max(1, round(self.iopub_rate)),
            budget=CellBudget(self.cell_output_limit),
        )
        terminal = TerminalText()
        out = CellOutput(lambda t: gate.stream(terminal.feed(t)), log=log,
                         limit=self.output_limit)
        io = KernelIO(
            out, container.exchange_dir / "out",
            publish=gate.send,
            note=gate.note,
            ask=(lambda password: self._ask(request, password)) if request.allow_stdin
            else None,
            policy=OutputPolicy(trusted=trusted),
            trust_note=trust_note(entry.name) if trusted else "",
            flush=gate.flush,
        )
        self._running = shell
        if self._interrupted:  # an interrupt came while the shell was starting
            self._running = None
            raise CellFailed("Interrupted", "the cell was interrupted before it started")
        try:
            result = await shell.run(code, io)
        finally:
            self._running = None
            note = out.close()
            if note:
                gate.note(note)
            for line in gate.close():
                if not silent:
                    self._stream(request, line + "\n", "stderr")
        await self._check_result(entry, result)

    async def _check_result(self, entry: NotebookContainer, result: CellResult) -> None:
        if result.status == 0 and not result.interrupted:
            return  # the fast path: no cgroup reading for a cell that went well
        oom = await asyncio.to_thread(_oom_kills, entry)
        new_ooms = oom - entry.oom_kills
        entry.oom_kills = max(entry.oom_kills, oom)
        limit = entry.memory_limit()
        limit_text = f" (memory limit {format_bytes(limit)})" if limit else ""
        if result.status is None:  # the shell ended during the cell
            await asyncio.to_thread(entry.container.refresh)
            container = entry.container
            if not container.running:
                if container.oom_killed or new_ooms:
                    raise CellFailed("OOMKilled", f"the container was OOM-killed{limit_text}; "
                                     "the next cell starts it again")
                raise CellFailed(
                    "ContainerExited",
                    f"the container {container.name} stopped (exit code "
                    f"{container.exit_code}); the next cell starts it again",
                )
            if new_ooms:
                raise CellFailed("OOMKilled", f"the shell was OOM-killed{limit_text}; "
                                 "the next cell starts a new shell")
            raise CellFailed(
                "ShellExited",
                f"the shell exited (status {result.shell_exit}); the next cell starts a new "
                "shell (variables and the working directory start afresh)",
            )
        if new_ooms and result.status != 0:
            raise CellFailed(
                "OOMKilled",
                f"a process of the cell was OOM-killed{limit_text}; exit status "
                f"{result.status}",
            )
        if result.interrupted:
            how = "SIGKILL, after it ignored SIGINT" if result.killed else "SIGINT"
            raise CellFailed("Interrupted", f"the cell was interrupted ({how}); "
                             f"exit status {result.status}")
        if result.status != 0:
            raise CellFailed("ExitStatus", f"exit status {result.status}")

    async def _why_shell_failed(self, entry: NotebookContainer, problem: str) -> str:
        await asyncio.to_thread(entry.container.refresh)
        if not entry.container.running:
            return f"the container {entry.name} is not running: {problem}"
        if "no such file" in problem.lower() or "not found" in problem.lower():
            return (
                f"{problem}\nThe image {entry.spec.image} needs a shell at /bin/sh to run "
                "cells; use an image with a shell (e.g. busybox or debian)"
            )
        return problem

    async def _ask(self, request: _Request, password: bool) -> str | None:
        """Send an input_request and wait (without blocking the loop) for its reply."""
        import zmq

        session, sock = self.session, self.stdin_socket
        assert session is not None
        while True:  # a reply to an earlier, abandoned request must not answer this one
            try:
                sock.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:
                break
        content = {"prompt": "", "password": password}
        session.send(sock, "input_request", content, request.parent, ident=request.ident)
        while True:
            _, reply = session.recv(sock, zmq.NOBLOCK)
            if reply is not None:
                value = reply.get("content", {}).get("value", "")
                return None if value == "\x04" else str(value)
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ interrupt

    async def interrupt_request(self, stream: Any, ident: Any, parent: Any) -> None:
        """On the control thread: hand the interrupt to the main loop, reply at once."""
        self._interrupt_soon()
        assert self.session is not None
        self.session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    def _interrupt_soon(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._interrupt)

    def _interrupt(self) -> None:
        self._interrupted = True
        if self._running is not None:
            self._running.interrupt()
        elif self._waiting is not None:
            self._waiting.cancel()

    # ------------------------------------------------------------------ completion

    async def do_complete(self, code: str, cursor_pos: int) -> dict[str, Any]:
        req = completion_request(code, cursor_pos)
        matches: list[str] = []
        if req.kind == "magic":
            matches = magic_matches(req)
        else:
            shell = await self._query_shell()
            if shell is not None:
                script = completion_script(req, shell.is_bash)
                output = await self._query(shell, script)
                matches = parse_matches(req, output) if output is not None else []
        return {
            "status": "ok",
            "matches": matches,
            "cursor_start": req.start,
            "cursor_end": req.end,
            "metadata": {},
        }

    async def do_inspect(
        self, code: str, cursor_pos: int, detail_level: int = 0, omit_sections: Any = ()
    ) -> dict[str, Any]:
        del detail_level, omit_sections
        word = inspect_word(code, cursor_pos)
        if word is None:
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        if word.startswith("%") and word.lstrip("%") in ("container", "ps", "images"):
            return {"status": "ok", "found": True, "data": {"text/plain": help_text(word)},
                    "metadata": {}}
        shell = await self._query_shell(side=True)
        output = None
        if shell is not None:
            output = await self._query(shell, inspect_script(word, shell.is_bash))
        if not output or output.strip().endswith("not found"):
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        return {"status": "ok", "found": True,
                "data": {"text/plain": clean_text(output[:20000])}, "metadata": {}}

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        status, indent = is_complete(code)
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = indent
        return reply

    async def _query_shell(self, side: bool = False) -> Shell | None:
        """The idle cell shell, else (or for ``side``) the side shell; None without one."""
        entry = self.notebook.current
        if entry is None or not entry.container.running:
            return None
        try:
            if not side and entry.shell is not None and entry.shell.alive and not entry.shell.busy:
                return entry.shell
            return await asyncio.wait_for(self.notebook.side_shell(entry), self.query_timeout)
        except (ShellError, TimeoutError, CellboxError):
            return None

    async def _query(self, shell: Shell, script: str) -> str | None:
        entry = self.notebook.current
        if shell is not (entry.shell if entry else None) and entry and entry.shell:
            pid = entry.shell.pid
            if pid:  # follow the cell shell's working directory
                script = f"cd /proc/{pid}/cwd 2>/dev/null; {script}"
        collector = Collector()
        task = asyncio.ensure_future(shell.run(script, collector, trace=False))
        try:
            await asyncio.wait_for(asyncio.shield(task), self.query_timeout)
        except TimeoutError:
            shell.interrupt()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
            return None
        except (ShellError, CellboxError):
            return None
        return collector.text()

    # ------------------------------------------------------------------ usage, shutdown

    async def usage_request(self, stream: Any, ident: Any, parent: Any) -> None:
        """The current container's cgroup figures, in jupyter-resource-usage's shape."""
        entry = self.notebook.current
        if entry is None:
            await super().usage_request(stream, ident, parent)  # type: ignore[no-untyped-call]
            return
        try:
            sample = await asyncio.to_thread(entry.container.stats)
        except (CellboxError, OSError):
            await super().usage_request(stream, ident, parent)  # type: ignore[no-untyped-call]
            return
        assert self.session is not None
        now = time.monotonic_ns()
        reply = usage_reply(sample, now, self._cpu_sample)
        self._cpu_sample = (now, sample.cpu_usage_ns)
        self.session.send(stream, "usage_reply", reply, parent, ident)

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        """Stop the notebook's containers (their files are kept for the next start).

        ipykernel 7 calls this on its control thread, but the shells belong to the main
        event loop (their terminals are read there): the work is handed to that loop. If
        the loop does not get it done, the shells are killed from here and the
        containers stopped anyway.
        """
        self.shutting_down = True
        if self.panel is not None:
            with contextlib.suppress(Exception):
                self.panel.close()
        loop = self._loop
        try:
            if loop is None or loop.is_closed() or loop is asyncio.get_running_loop():
                await asyncio.wait_for(self.notebook.shutdown(), SHUTDOWN_TIMEOUT)
            else:
                done = asyncio.run_coroutine_threadsafe(self.notebook.shutdown(), loop)
                await asyncio.wait_for(asyncio.wrap_future(done), SHUTDOWN_TIMEOUT)
        except Exception as exc:  # shutting down: stop what can be stopped, say what not
            self.log.warning("cellbox: shutting down the notebook's containers: %s", exc)
            self.notebook.close_now()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.notebook.shutdown(), SHUTDOWN_TIMEOUT)
        return {"status": "ok", "restart": restart}


def _oom_kills(entry: NotebookContainer) -> int:
    try:
        return entry.container.stats().oom_kills
    except (CellboxError, OSError):
        return entry.oom_kills
