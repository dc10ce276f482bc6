"""Removing from the store: ``rmi`` (untag, then delete what only that image used) and
``prune`` (untagged images, then every layer, blob and temp file nothing uses).

What is "used": every image in images.json uses its manifest, config and layer blobs and
its layers' chain ids; every container (``containers/<id>/config.json``: ``image_digest``
and ``layers``) uses its image and its chain ids, whether it runs or not. Both operations
hold the store's gc lock exclusively, so no pull or commit is deciding at the same time
that something already exists. A layer is renamed into tmp/ before it is deleted, so it is
never seen half removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ImageNotFound, StoreError
from .locks import locked
from .reference import Reference

if TYPE_CHECKING:
    from .store import Store

__all__ = ["PruneReport", "RemoveReport", "container_usage", "prune", "remove_image"]


@dataclass
class RemoveReport:
    """What ``rmi`` did: names untagged, images deleted, layers and blobs freed."""

    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)


@dataclass
class PruneReport:
    """What ``prune`` removed, and the bytes it freed on disk."""

    images: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    temp: list[str] = field(default_factory=list)
    freed: int = 0


def container_usage(store: Store) -> tuple[dict[str, list[str]], set[str]]:
    """(image digest -> container names, chain ids) of every container on disk."""
    by_image: dict[str, list[str]] = {}
    layers: set[str] = set()
    for entry in _scandir(store.containers):
        try:
            with open(os.path.join(entry.path, "config.json"), "rb") as f:
                config = json.loads(f.read(1 << 20))
        except (OSError, ValueError):
            continue
        if not isinstance(config, dict):
            continue
        name = str(config.get("name") or entry.name[:12])
        if isinstance(digest := config.get("image_digest"), str) and digest:
            by_image.setdefault(digest, []).append(name)
        if isinstance(chain := config.get("layers"), list):
            layers.update(c for c in chain if isinstance(c, str))
    return by_image, layers


def remove_image(store: Store, ref: str | Reference, *, force: bool = False) -> RemoveReport:
    """``rmi``: untag ``ref``; when no name is left, delete the image and what it alone
    used. An image a container uses is refused unless ``force`` (then it is untagged but
    kept, with its layers, until the container is gone and ``prune`` runs)."""
    report = RemoveReport()
    store.ensure_dirs()
    with locked(store.locks / "gc.lock"):
        by_image, container_layers = container_usage(store)
        with store.update_index() as index:
            found = store.lookup(index, ref)
            if found is None:
                raise ImageNotFound(f"image {ref!s} is not in the store ({store.root})")
            digest, name = found
            names = sorted(n for n, d in index["references"].items() if d == digest)
            users = by_image.get(digest, [])
            if name and len(names) > 1:
                del index["references"][name]
                report.untagged.append(name)
                return report
            if not name and len(names) > 1 and not force:
                raise StoreError(
                    f"image {ref!s} has several names ({', '.join(names)}); remove them one "
                    "by one or use -f"
                )
            if users and not force:
                raise StoreError(
                    f"image {ref!s} is used by container {', '.join(sorted(users))}; remove "
                    "the container first (cellbox rm) or force with cellbox rmi -f"
                )
            for n in names:
                del index["references"][n]
                report.untagged.append(n)
            record = index["images"].get(digest)
            if not users:
                del index["images"][digest]
                report.deleted.append(digest)
            keep_layers, keep_blobs = _in_use(index, container_layers)
        if report.deleted and isinstance(record, dict):
            _delete(
                store,
                [c for c in _strs(record.get("chain_ids")) if c not in keep_layers],
                [b for b in [digest, *_strs(record.get("blobs"))] if b not in keep_blobs],
                report,
            )
    return report


def prune(store: Store, in_use_chain_ids: Iterable[str] = ()) -> PruneReport:
    """Remove untagged images no container uses, then every layer and blob nothing uses
    (``in_use_chain_ids`` are kept too), and every leftover in tmp/."""
    report = PruneReport()
    store.ensure_dirs()
    with locked(store.locks / "gc.lock"):
        report.temp = store.clean_tmp()
        by_image, container_layers = container_usage(store)
        container_layers.update(in_use_chain_ids)
        with store.update_index() as index:
            named = set(index["references"].values())
            for digest in sorted(index["images"]):
                if digest not in named and digest not in by_image:
                    del index["images"][digest]
                    report.images.append(digest)
            keep_layers, keep_blobs = _in_use(index, container_layers)
        layers = []
        for entry in _scandir(store.layers):
            if "sha256:" + entry.name not in keep_layers:
                layers.append("sha256:" + entry.name)
                continue
            # A kept layer keeps its blob: `commit` adds the layer, then the image.
            with (
                contextlib.suppress(OSError, ValueError, AttributeError),
                open(os.path.join(entry.path, "layer.json"), "rb") as f,
            ):
                keep_blobs.add(str(json.loads(f.read(1 << 20)).get("digest")))
        blobs = [
            "sha256:" + e.name for e in _scandir(store.blobs)
            if "sha256:" + e.name not in keep_blobs
        ]
        report.freed = _delete(store, layers, blobs, report)
        _drop_stale_locks(store)
    return report


def _drop_stale_locks(store: Store) -> None:
    """Lock files of content no longer stored. Safe only under the exclusive gc lock:
    blob and layer locks are taken only inside transactions, which hold it shared."""
    for entry in _scandir(store.locks):
        kind, _, rest = entry.name.partition("-")
        hex_part = rest.removesuffix(".lock")
        if kind == "blob":
            gone = not (store.blobs / hex_part).exists()
        elif kind == "layer":
            gone = not (store.layers / hex_part).exists()
        else:
            continue
        if gone:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _delete(
    store: Store, layers: Iterable[str], blobs: Iterable[str], report: RemoveReport | PruneReport
) -> int:
    """Delete layers (renamed away first) and blobs; return the bytes freed."""
    freed = 0
    for chain_id in layers:
        try:
            path = store.layer_path(chain_id)
        except StoreError:
            continue  # not a name the store made
        trash = Path(tempfile.mkdtemp(prefix="trash-", dir=store.tmp))
        try:
            os.rename(path, trash / "layer")
        except FileNotFoundError:
            shutil.rmtree(trash, ignore_errors=True)
            continue
        freed += _du(trash)
        shutil.rmtree(trash, ignore_errors=True)
        report.layers.append(chain_id)
    for digest in blobs:
        try:
            path = store.blob_path(digest)
            freed += path.stat().st_size
            path.unlink()
        except (StoreError, FileNotFoundError):
            continue
        report.blobs.append(digest)
    return freed


def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _in_use(index: dict[str, Any], container_layers: set[str]) -> tuple[set[str], set[str]]:
    layers = set(container_layers)
    blobs: set[str] = set()
    for digest, record in index["images"].items():
        blobs.add(digest)
        if isinstance(record, dict):
            layers.update(_strs(record.get("chain_ids")))
            blobs.update(_strs(record.get("blobs")))
    return layers, blobs


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(path))
    except FileNotFoundError:
        return []


def _du(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total
