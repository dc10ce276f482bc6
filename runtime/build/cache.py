"""The build cache: what each step made, found again by a key, as Docker finds it.

A step's key is the sha256 of its parent's key and the step itself after substitution (the
command and the build args it sees for RUN; the content digest of the sources, owner and
mode for COPY and ADD; the resulting text for metadata steps). The first key of a stage is
that of its base: the base image's manifest digest, or the key of the stage it is built
from. So a key stands for everything that led to the step, and a rebuild with nothing
changed finds every step and makes nothing new.

An entry records when the step ran (the history's ``created``, so a cached rebuild gives
the same config, hence the same image digest) and the layer it made, if any. Entries are
small JSON files under ``<root>/build-cache/``, written atomically; one whose layer has
been pruned from the store since is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CellboxError
from ..images import Layer
from ..store import Store

__all__ = ["BuildCache", "CacheEntry", "step_key"]

_MAX_ENTRY = 64 << 10


def step_key(parent: str, step: Any) -> str:
    """The key of ``step`` (JSON-able) on top of the key ``parent``."""
    text = json.dumps([parent, step], sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """What a step made: when, and its layer (None for a metadata step)."""

    created: str
    layer: Layer | None


class BuildCache:
    """The cache of the store ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dir = store.root / "build-cache"

    def _path(self, key: str) -> Path:
        return self.dir / f"{key.removeprefix('sha256:')}.json"

    def get(self, key: str) -> CacheEntry | None:
        """The entry of ``key`` if there is one and its layer is still in the store."""
        try:
            with open(self._path(key), "rb") as f:
                data = json.loads(f.read(_MAX_ENTRY))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("created"), str):
            return None
        raw = data.get("layer")
        if raw is None:
            return CacheEntry(data["created"], None)
        try:
            chain_id = str(raw["chain_id"])
            layer = Layer(
                digest=str(raw["digest"]),
                diff_id=str(raw["diff_id"]),
                chain_id=chain_id,
                size=int(raw["size"]),
                lower_dir=str(self.store.layer_path(chain_id) / "diff"),
                media_type=str(raw["media_type"]),
            )
            present = self.store.has_layer(chain_id) and self.store.has_blob(layer.digest)
        except (KeyError, TypeError, ValueError, CellboxError):
            return None
        return CacheEntry(data["created"], layer) if present else None

    def put(self, key: str, entry: CacheEntry) -> None:
        """Record ``entry`` under ``key`` (replacing an older one)."""
        layer = entry.layer
        data = {
            "created": entry.created,
            "layer": None if layer is None else {
                "digest": layer.digest, "diff_id": layer.diff_id, "chain_id": layer.chain_id,
                "size": layer.size, "media_type": layer.media_type,
            },
        }
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".entry-", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, sort_keys=True)
            os.replace(tmp, self._path(key))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
