"""The two :class:`~cellbox.kernel.shell.CellIO` s of the kernel.

:class:`KernelIO` connects a running cell to the notebook: text to the cell's
:class:`~cellbox.kernel.output.CellOutput`, ``clear`` to ``clear_output``, ``display``
files (read safely by :mod:`~cellbox.kernel.display`, then judged by the container's
:class:`~cellbox.kernel.policy.OutputPolicy`) to ``display_data``, and reads of the
terminal to ``input_request`` s. :class:`Collector` keeps a query's output (completion,
inspection) instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .display import DisplayError, read_display, sniff
from .output import CellOutput
from .policy import OutputPolicy
from .protocol import DisplayRequest

__all__ = ["CLEAR_SCREEN", "Collector", "KernelIO"]

CLEAR_SCREEN = "\x1b[2J"  # what `clear` prints (after moving the cursor home)
COLLECT_MAX = 256 << 10


class KernelIO:
    """A running cell's output and input, for the notebook."""

    def __init__(
        self,
        out: CellOutput,
        out_dir: Path,
        *,
        publish: Callable[[str, dict[str, Any]], None],
        note: Callable[[str], None],
        ask: Callable[[bool], Awaitable[str | None]] | None,
        policy: OutputPolicy | None = None,
        trust_note: str = "",
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.out = out
        self.out_dir = out_dir
        self._publish = publish  # (msg type, content) on iopub, under the cell
        self._note = note  # a line of the kernel's own, on the stderr stream
        self._ask = ask  # None when the frontend cannot answer input requests
        self._policy = policy or OutputPolicy()
        self._trust_note = trust_note  # said once a cell shows unfiltered output
        self._trust_said = False
        self._flush = flush  # send what waits for the iopub rate limit

    def output(self, text: str) -> None:
        if CLEAR_SCREEN in text:  # `clear`: what was shown goes, as on a terminal
            before, _, text = text.rpartition(CLEAR_SCREEN)
            self.out.write(before)
            self.out.flush()
            self._publish("clear_output", {"wait": False})
            self._trust_said = False  # cleared with the rest: say it again when it applies
        self.out.write(text)

    def display(self, request: DisplayRequest) -> None:
        self.out.flush()
        try:
            data = read_display(self.out_dir, request)
        except DisplayError as exc:
            self._note(f"{exc}\n")
            return
        mime = request.mime or sniff(data)
        if mime is None:
            self._note(f"display: cannot tell what {request.name} is; use -t TYPE\n")
            return
        verdict = self._policy.file(data, mime)
        for line in verdict.notes:
            self._note(line + "\n")
        if verdict.trusted and self._trust_note and not self._trust_said:
            self._trust_said = True
            self._note(self._trust_note + "\n")
        if verdict.data:
            self._publish("display_data", {"data": verdict.data, "metadata": verdict.metadata})

    async def read_input(self, password: bool) -> str | None:
        if self._ask is None:
            return None  # end of file, not a hang
        self.out.flush()
        if self._flush is not None:
            self._flush()  # the prompt the program printed must show before the question
        return await self._ask(password)


class Collector:
    """A CellIO that keeps (at most 256 KiB of) what a query prints."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0

    def output(self, text: str) -> None:
        if self._size < COLLECT_MAX:
            self._parts.append(text)
            self._size += len(text)

    def display(self, request: DisplayRequest) -> None:
        del request

    async def read_input(self, password: bool) -> str | None:
        del password
        return None

    def text(self) -> str:
        return "".join(self._parts)
