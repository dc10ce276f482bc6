"""Stored images as values, and what a user does with them: list, history, tag, rmi, prune.

:class:`Image` and :class:`Layer` are plain values read from the store (see
:mod:`.store`); the functions here are thin, documented entry points over a
:class:`~cellbox.runtime.store.Store` for the CLI, the kernel and the panel. Nothing here
talks to a registry: that is :mod:`.pull`.
"""

from __future__ import annotations

import os

from .paths import clean
from .records import record

try:
    # The builtin module: no OpenSSL to load (hashlib's ≈ 4 ms on every `cellbox run`).
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]
except ImportError:  # Python 3.12+ calls it _sha2
    from hashlib import sha256 as _sha256

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path
    from typing import Any

    from .settings import Settings
    from .store import Store
    from .storegc import PruneReport, RemoveReport

# mediatypes.OCI_LAYER_GZIP, spelled out: mediatypes imports typing, which reading an image
# does not otherwise need (tests/unit/test_store_lean.py checks that the two agree).
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

__all__ = [
    "OCI_LAYER_GZIP",
    "HistoryEntry",
    "Image",
    "Layer",
    "chain_ids",
    "history",
    "image_size",
    "list_images",
    "prune_store",
    "remove_image",
    "sha256_hex",
    "tag_image",
]


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return str(_sha256(data).hexdigest())


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The OCI chain ids of a stack of layers, bottom first.

    ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
    """
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            text = f"{out[-1]} {diff_id}".encode()
            out.append("sha256:" + sha256_hex(text))
    return out


@record(frozen=True)
class Layer:
    """One layer of an image, unpacked in the store.

    ``lower_dir`` is a string (reading an image for ``cellbox run`` avoids pathlib); it
    may be given as any path-like, and :attr:`path` is the same directory as a ``Path``.
    """

    digest: str  # compressed blob digest (manifest)
    diff_id: str  # uncompressed digest (config rootfs.diff_ids)
    chain_id: str
    size: int  # compressed size
    lower_dir: str  # the unpacked lower dir (layers/<chain>/diff)
    media_type: str = OCI_LAYER_GZIP

    def __post_init__(self) -> None:
        object.__setattr__(self, "lower_dir", clean(self.lower_dir))

    @property
    def path(self) -> Path:
        """The unpacked lower dir as a ``Path`` (pathlib is imported on first use)."""
        from pathlib import Path

        return Path(self.lower_dir)

    def info(self) -> dict[str, Any]:
        """The layer's layer.json (diff_id, digest, sizes, entries), {} if unreadable."""
        import json

        try:
            with open(os.path.join(os.path.dirname(self.lower_dir), "layer.json")) as f:
                data = json.loads(f.read())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


@record(frozen=True)
class Image:
    """An image in the store: its manifest digest, config and layers (bottom first)."""

    reference: str  # normalised name it was looked up or stored under ("" if by digest only)
    digest: str  # manifest digest
    config: dict[str, Any]  # the OCI image config (architecture, os, config, rootfs, history)
    layers: tuple[Layer, ...]  # bottom first
    config_digest: str = ""
    index_digest: str | None = None  # the index (manifest list) the tag pointed at, if any
    references: tuple[str, ...] = ()  # every name it is stored under
    added: str = ""  # when it entered the store (RFC 3339)

    def lower_dirs(self) -> list[Path]:
        """The layer dirs top first, as overlayfs wants them in ``lowerdir``."""
        return [layer.path for layer in reversed(self.layers)]

    @property
    def id(self) -> str:
        """Docker's image id: the config digest."""
        return self.config_digest

    @property
    def created(self) -> str | None:
        value = self.config.get("created")
        return value if isinstance(value, str) else None

    @property
    def platform(self) -> str:
        parts = [str(self.config.get("os", "")), str(self.config.get("architecture", ""))]
        if variant := self.config.get("variant"):
            parts.append(str(variant))
        return "/".join(parts)


@record(frozen=True)
class HistoryEntry:
    """One step of an image's history, like a row of ``docker history``."""

    created: str | None
    created_by: str
    comment: str
    size: int  # bytes of the layer's files (0 for an empty layer)
    digest: str | None  # the layer's blob digest; None for an empty_layer step
    empty_layer: bool


def history(image: Image) -> list[HistoryEntry]:
    """The image's history, newest first, each step with the layer it made (if any).

    Steps marked ``empty_layer`` (ENV, CMD, ...) are included with size 0 and no digest.
    A config without history (or with fewer steps than layers) still lists every layer.
    """
    raw = image.config.get("history")
    steps = [s for s in raw if isinstance(s, dict)] if isinstance(raw, list) else []
    layers = list(image.layers)
    rows: list[HistoryEntry] = []
    for step in steps:
        empty = bool(step.get("empty_layer"))
        layer = None if empty or not layers else layers.pop(0)
        rows.append(_entry(step, layer, empty))
    for layer in layers:  # layers the history does not account for
        rows.append(_entry({}, layer, False))
    rows.reverse()
    return rows


def _entry(step: dict[str, Any], layer: Layer | None, empty: bool) -> HistoryEntry:
    size = 0
    if layer is not None:
        value = layer.info().get("content_size", 0)
        size = value if isinstance(value, int) else 0
    created = step.get("created")
    return HistoryEntry(
        created=created if isinstance(created, str) else None,
        created_by=str(step.get("created_by", "")),
        comment=str(step.get("comment", "")),
        size=size,
        digest=layer.digest if layer is not None else None,
        empty_layer=empty or layer is None,
    )


def image_size(image: Image) -> int:
    """Bytes of all the image's files (what ``docker images`` shows as SIZE)."""
    total = 0
    for layer in image.layers:
        value = layer.info().get("content_size", 0)
        total += value if isinstance(value, int) else 0
    return total


def _store(store: Store | None, settings: Settings | None) -> Store:
    if store is not None:
        return store
    from .settings import Settings
    from .store import Store

    return Store((settings or Settings.load()).root)


def list_images(store: Store | None = None, *, settings: Settings | None = None) -> list[Image]:
    """Every stored image, one entry per name (untagged ones with reference "")."""
    return _store(store, settings).images()


def tag_image(
    source: str, target: str, store: Store | None = None, *, settings: Settings | None = None
) -> Image:
    """Give the stored image ``source`` the additional name ``target``."""
    return _store(store, settings).tag(source, target)


def remove_image(
    reference: str,
    store: Store | None = None,
    *,
    force: bool = False,
    settings: Settings | None = None,
) -> RemoveReport:
    """Untag ``reference``; delete the image and its unused layers when no name is left.

    An image a container was created from is refused (StoreError) unless ``force``.
    """
    return _store(store, settings).remove(reference, force=force)


def prune_store(
    in_use_chain_ids: Iterable[str] = (),
    store: Store | None = None,
    *,
    settings: Settings | None = None,
) -> PruneReport:
    """Remove untagged images and every blob, layer and temp file nothing uses.

    Layers of containers (containers/*/config.json) and ``in_use_chain_ids`` are kept.
    """
    return _store(store, settings).prune(in_use_chain_ids)
