"""The output policy: what the kernel lets through from a container to the notebook.

The container is not trusted (docs/security.md). Whatever it hands the kernel -- a file
from ``display``, a mime bundle from any future in-container agent, terminal text -- goes
through :class:`OutputPolicy` before it becomes an iopub message::

    policy = OutputPolicy(trusted=entry.spec.trust_output)
    verdict = policy.file(data, "text/html")          # bytes of one type (display)
    verdict = policy.bundle({"text/html": "...", "text/plain": "..."})   # a mime bundle
    if verdict.data:
        publish("display_data", {"data": verdict.data, "metadata": verdict.metadata})
    for note in verdict.notes:
        publish_stream(note + "\\n", "stderr")

By default (untrusted):

===================================  ==================================================
``text/plain``                       kept; terminal control sequences removed
``image/png``, ``image/jpeg``        kept after the structure and size checks of
                                     :mod:`~cellbox.kernel.policy_images` (PNG inflated)
``image/svg+xml``                    checked to be XML with an ``svg`` root, no DOCTYPE;
                                     scripts, handlers and foreign links removed
``text/html``                        sanitised with nh3 (:mod:`~cellbox.kernel.policy_markup`)
``text/markdown``                    as it is when plain (no HTML, entities or unsafe
                                     links); else rendered here, sanitised, sent as HTML
``text/latex``                       kept unless it uses a command that reaches the page
                                     (``\\href``, ``\\style``...): then shown as text
``application/json``                 kept (JupyterLab shows it as a tree)
``application/javascript``, widget   dropped, with a note
and comm mime types, anything else
===================================  ==================================================

``trusted=True`` (``%container IMAGE --trust-output``, for images people built
themselves) passes markup, scripts and unknown types through untouched; images are still
checked, sizes still capped, and :attr:`Verdict.trusted` tells the kernel to say so in
the cell's output. Every item is capped at ``item_bytes``.

Pure: no I/O, no kernel; a verdict is data.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .policy_images import (
    ImageLimits,
    UnsafeOutput,
    check_jpeg,
    check_png,
    clean_svg,
)
from .policy_markup import html_from_markdown, plain_markdown, sanitize_html, unsafe_latex
from .policy_text import TerminalText, clean_text

__all__ = [
    "DEFAULT_ITEM_BYTES",
    "SHOWN_BY_DEFAULT",
    "OutputPolicy",
    "PolicyLimits",
    "UnsafeOutput",
    "Verdict",
    "trust_note",
]

DEFAULT_ITEM_BYTES = 10 << 20
SCRIPT_TYPES = frozenset({"application/javascript", "text/javascript",
                          "application/x-javascript", "application/ecmascript"})
SHOWN_BY_DEFAULT = frozenset({"text/plain", "image/png", "image/jpeg", "image/svg+xml",
                              "text/html", "text/markdown", "text/latex", "application/json"})
_IMAGES = {"image/png": check_png, "image/jpeg": check_jpeg}
_MARKUP = frozenset({"text/html", "text/markdown", "text/latex", "image/svg+xml"})
_TRUST_HINT = "(--trust-output on %container shows it, for an image you built yourself)"


@dataclass(frozen=True)
class PolicyLimits:
    """Caps on what one display item may be."""

    item_bytes: int = DEFAULT_ITEM_BYTES  # one value of a bundle (before base64)
    images: ImageLimits = field(default_factory=ImageLimits)


@dataclass
class Verdict:
    """What to send for one display item: the bundle (maybe empty) and notes for the user."""

    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    trusted: bool = False  # part of it is shown unfiltered because of --trust-output


def trust_note(container: str) -> str:
    """The line a cell shows when output of ``container`` went through unfiltered."""
    return (
        f"[cellbox] --trust-output is on for {container}: its HTML, scripts and other rich "
        "output are shown unfiltered"
    )


class OutputPolicy:
    """Filters what one container shows (see the module docstring)."""

    def __init__(self, *, trusted: bool = False, limits: PolicyLimits | None = None) -> None:
        self.trusted = trusted
        self.limits = limits or PolicyLimits()

    # ------------------------------------------------------------------ entry points

    def text(self) -> TerminalText:
        """A filter for one stream of terminal text (control sequences removed)."""
        return TerminalText()

    def file(self, data: bytes, mime: str) -> Verdict:
        """A display file: ``data`` claimed to be of type ``mime``."""
        verdict = Verdict()
        if len(data) > self.limits.item_bytes:
            verdict.notes.append(self._too_big(mime, len(data)))
            return verdict
        if mime in _IMAGES:
            self._image(verdict, mime, data)
        else:
            try:
                value: Any = data.decode("utf-8")
            except UnicodeDecodeError:
                verdict.notes.append(f"[cellbox] dropped {mime} from the container: not UTF-8")
                return verdict
            if mime == "application/json" or (mime.endswith("+json") and self.trusted):
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    verdict.notes.append(f"[cellbox] dropped {mime}: not valid JSON ({exc})")
                    return verdict
            self._item(verdict, mime, value)
        self._fallback(verdict)
        return verdict

    def bundle(
        self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> Verdict:
        """A whole mime bundle (images as base64 text, as on the wire)."""
        verdict = Verdict()
        for mime, value in data.items():
            if not isinstance(mime, str):
                continue
            if mime in _IMAGES:
                if isinstance(value, str) and len(value) > self.limits.item_bytes * 4 // 3 + 4096:
                    verdict.notes.append(self._too_big(mime, len(value) * 3 // 4))
                    continue
                raw = _unbase64(value)
                if raw is None:
                    verdict.notes.append(f"[cellbox] dropped {mime}: not base64 data")
                elif len(raw) > self.limits.item_bytes:
                    verdict.notes.append(self._too_big(mime, len(raw)))
                else:
                    self._image(verdict, mime, raw)
                continue
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = "".join(value)  # nbformat's multi-line strings
            size = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
            if size > self.limits.item_bytes:
                verdict.notes.append(self._too_big(mime, size))
                continue
            self._item(verdict, mime, value)
        self._fallback(verdict)
        verdict.metadata = self._metadata(verdict.data, metadata or {})
        return verdict

    # ------------------------------------------------------------------ per type

    def _image(self, verdict: Verdict, mime: str, raw: bytes) -> None:
        try:
            info = _IMAGES[mime](raw, self.limits.images)
        except UnsafeOutput as exc:
            verdict.notes.append(f"[cellbox] dropped {mime} from the container: {exc}")
            return
        verdict.data[mime] = base64.b64encode(raw).decode("ascii")
        verdict.data.setdefault(
            "text/plain", f"<{info.format.upper()} image, {info.width} x {info.height}>"
        )

    def _item(self, verdict: Verdict, mime: str, value: Any) -> None:
        if mime == "text/plain":
            if isinstance(value, str):
                verdict.data[mime] = clean_text(value)
            return
        if self.trusted and mime not in _IMAGES:
            verdict.data[mime] = value
            if mime not in ("application/json",):
                verdict.trusted = True
            return
        if mime == "application/json":
            verdict.data[mime] = value
        elif mime in _MARKUP:
            if not isinstance(value, str):
                verdict.notes.append(f"[cellbox] dropped {mime}: not text")
                return
            self._markup(verdict, mime, value)
        elif mime in SCRIPT_TYPES:
            verdict.notes.append(
                f"[cellbox] dropped {mime} from the container: scripts from a container do "
                f"not run {_TRUST_HINT}"
            )
        elif "jupyter.widget" in mime or "comm" in mime:
            verdict.notes.append(
                f"[cellbox] dropped {mime} from the container: widgets and comms come only "
                "from the kernel itself"
            )
        else:
            verdict.notes.append(
                f"[cellbox] dropped {mime} from the container: not a type the notebook "
                f"shows from a container {_TRUST_HINT}"
            )

    def _markup(self, verdict: Verdict, mime: str, text: str) -> None:
        removed: list[str] = []
        if mime == "text/html":
            verdict.data[mime], removed = sanitize_html(text)
        elif mime == "text/markdown" and plain_markdown(text):
            verdict.data[mime] = text
            verdict.data.setdefault("text/plain", clean_text(text))
        elif mime == "text/markdown":
            html, removed = html_from_markdown(text)
            verdict.data["text/html"] = html
            verdict.data.setdefault("text/plain", clean_text(text))
        elif mime == "text/latex":
            command = unsafe_latex(text)
            if command is None:
                verdict.data[mime] = text
            else:
                verdict.data.setdefault("text/plain", clean_text(text))
                verdict.notes.append(
                    f"[cellbox] text/latex from the container shown as text: it uses {command}"
                )
        else:  # image/svg+xml
            try:
                verdict.data[mime], removed = clean_svg(text)
            except UnsafeOutput as exc:
                verdict.notes.append(f"[cellbox] dropped {mime} from the container: {exc}")
                return
            verdict.data.setdefault("text/plain", "<SVG image>")
        if removed:
            verdict.notes.append(
                f"[cellbox] sanitised {mime} from the container: removed {', '.join(removed)} "
                f"{_TRUST_HINT}"
            )

    # ------------------------------------------------------------------ helpers

    def _fallback(self, verdict: Verdict) -> None:
        """A bundle that shows something also has text/plain (Jupyter expects it)."""
        if verdict.data and "text/plain" not in verdict.data:
            kinds = ", ".join(sorted(verdict.data))
            verdict.data["text/plain"] = f"<{kinds}>"

    def _metadata(self, data: dict[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Only an image's width and height; never ``isolated``, ``unconfined`` or others."""
        if self.trusted:
            return {k: v for k, v in metadata.items() if k in data}
        kept: dict[str, Any] = {}
        for mime in _IMAGES:
            entry = metadata.get(mime)
            if mime in data and isinstance(entry, Mapping):
                size = {k: entry[k] for k in ("width", "height")
                        if isinstance(entry.get(k), int) and 0 < entry[k] <= 100_000}
                if size:
                    kept[mime] = size
        return kept

    def _too_big(self, mime: str, size: int) -> str:
        return (
            f"[cellbox] dropped {mime} from the container: {size} bytes, more than the limit "
            f"of {self.limits.item_bytes} bytes for one display item"
        )


def _unbase64(value: Any) -> bytes | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "".join(value)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
