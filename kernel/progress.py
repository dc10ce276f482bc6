"""Per-layer progress of a pull, shown in the cell while ``%container``/``%pull`` runs.

The runtime's ``pull`` calls its progress callback in the worker thread; :class:`PullProgress`
only records the newest state per layer (thread-safe, O(layers) memory) and the kernel's
event loop renders it every ``interval`` seconds:

* with widgets (the frontend opened ``jupyter.widget.control``, so it renders
  ipywidgets): one ``IntProgress`` bar per layer with its status, updated in place;
* otherwise: one ``display_data`` of text, re-sent with ``update_display_data`` under the
  same ``display_id`` (JupyterLab, nbclient and the classic notebook all update in place).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .output import format_size

__all__ = ["LayerState", "PullProgress", "render_text"]

Publish = Callable[[str, dict[str, Any], dict[str, Any]], None]  # msg type, data, transient


@dataclass
class LayerState:
    status: str
    current: int
    total: int


def render_text(reference: str, layers: dict[str, LayerState]) -> str:
    """The text view: one line per layer, like ``docker pull``."""
    lines = [f"pulling {reference}"]
    for digest, state in layers.items():
        short = digest.removeprefix("sha256:")[:12] or "manifest"
        line = f"  {short}  {state.status:<11}"
        if state.total and state.status in ("downloading", "extracting"):
            done = min(state.current, state.total) / state.total
            bar = "#" * int(done * 20)
            line += f" [{bar:<20}] {format_size(state.current)} / {format_size(state.total)}"
        elif state.total:
            line += f" {format_size(state.total)}"
        lines.append(line)
    return "\n".join(lines)


class PullProgress:
    """Collects pull events from any thread; shows them from the event loop."""

    def __init__(
        self,
        reference: str,
        publish: Publish,
        *,
        widgets: bool = False,
        interval: float = 0.2,
    ) -> None:
        self.reference = reference
        self._publish = publish
        self._widgets_wanted = widgets
        self._interval = interval
        self._lock = threading.Lock()
        self._layers: dict[str, LayerState] = {}
        self._changed = False
        self._display_id = uuid.uuid4().hex
        self._shown = False
        self._task: asyncio.Task[None] | None = None
        self._bars: dict[str, Any] = {}
        self._box: Any = None

    def __call__(self, event: Any) -> None:
        """The pull's progress callback (any thread)."""
        layer = str(getattr(event, "layer", ""))
        if not layer:
            return  # "resolving" the image as a whole: nothing per layer yet
        with self._lock:
            self._layers[layer] = LayerState(
                str(getattr(event, "status", "")),
                int(getattr(event, "current", 0)),
                int(getattr(event, "total", 0)),
            )
            self._changed = True

    def start(self) -> None:
        """Begin rendering on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Render the final state and stop."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._render()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._render()

    def _snapshot(self) -> dict[str, LayerState] | None:
        with self._lock:
            if not self._changed:
                return None
            self._changed = False
            return {k: LayerState(v.status, v.current, v.total) for k, v in self._layers.items()}

    def _render(self) -> None:
        layers = self._snapshot()
        if layers is None:
            return
        if self._widgets_wanted and self._render_widgets(layers):
            return
        data = {"text/plain": render_text(self.reference, layers)}
        kind = "update_display_data" if self._shown else "display_data"
        self._publish(kind, data, {"display_id": self._display_id})
        self._shown = True

    def _render_widgets(self, layers: dict[str, LayerState]) -> bool:
        try:
            import ipywidgets as widgets
        except ImportError:
            self._widgets_wanted = False
            return False
        new = False
        for digest, state in layers.items():
            row = self._bars.get(digest)
            if row is None:
                bar = widgets.IntProgress(min=0, max=max(state.total, 1))
                label = widgets.Label(digest.removeprefix("sha256:")[:12])
                status = widgets.Label("")
                row = self._bars[digest] = (bar, status, widgets.HBox([label, bar, status]))
                new = True
            bar, status, _ = row
            bar.max = max(state.total, 1)
            bar.value = min(state.current, bar.max) if state.status != "done" else bar.max
            size = f" {format_size(state.current)} / {format_size(state.total)}"
            status.value = state.status + (size if state.status == "downloading" else "")
        if self._box is None:
            title = widgets.Label(f"pulling {self.reference}")
            self._box = widgets.VBox([title, *(row[2] for row in self._bars.values())])
            self._publish("display_data", self._box._repr_mimebundle_(), {})
        elif new:
            self._box.children = (self._box.children[0], *(r[2] for r in self._bars.values()))
        return True
