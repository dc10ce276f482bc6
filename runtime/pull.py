"""``pull``: resolve an image, download, verify and unpack its layers in parallel, store it.

Each layer goes through one pass (see :mod:`.layerio`): the registry's chunks are written
to the staged blob file and hashed, decompressed, hashed again for the ``diff_id``, and
applied by :func:`~.layers.apply_layer` into a fresh staged directory, all as they arrive,
in one thread per layer (zlib, hashlib and file I/O release the GIL). Nothing is
visible in the store until every layer is verified against the manifest and the config;
then the staged blobs and layers are renamed into place and the index updated (see
:mod:`.store`). Two processes pulling the same image hold the same blob locks: the second
waits for the first and then finds everything there.

Policies: ``missing`` asks the registry what the tag points at (a HEAD, which Docker Hub
does not count as a pull) and downloads nothing when that is already stored (a digest
reference already stored needs no network at all; a stored image is also used when the
registry is unreachable); ``always`` resolves the manifest again; ``never`` only looks in
the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import mediatypes as mt
from .errors import (
    CellboxError,
    LayerError,
    ManifestError,
    RegistryUnavailable,
    UnsafeLayer,
)
from .images import Image, chain_ids
from .layerio import LayerReader, iter_file
from .layers import apply_layer
from .locks import hold_all
from .manifest import Platform, compatible_platforms
from .reference import Reference
from .settings import Settings
from .store import Store, Transaction, image_record, layer_info, record_image

if TYPE_CHECKING:
    from .manifest import Descriptor
    from .registry import RegistryClient, ResolvedManifest

__all__ = ["Policy", "PullEvent", "pull"]

Policy = Literal["always", "missing", "never"]
Status = Literal["resolving", "waiting", "downloading", "extracting", "exists", "done"]

_EVENT_STEP = 256 << 10
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_WORKERS = 4


@dataclass(frozen=True)
class PullEvent:
    """One layer's state change, and every ~256 KiB of its download."""

    layer: str  # compressed digest ("" for the image as a whole while resolving)
    status: Status
    current: int  # bytes downloaded so far
    total: int  # size from the manifest


class _Aborted(CellboxError):
    """Another layer failed: this one stops at its next chunk."""


@dataclass(frozen=True)
class _Work:
    descriptor: Descriptor
    diff_id: str
    chain_id: str
    parent: str | None
    download: bool  # the blob is not stored: stream it from the registry
    need_blob: bool  # store the blob (False for a repeat of a blob earlier in the image)
    need_layer: bool  # apply it (its chain id is not stored)


def pull(
    ref: str | Reference,
    *,
    settings: Settings | None = None,
    platform: str | None = None,
    policy: Policy = "missing",
    progress: Callable[[PullEvent], None] | None = None,
    client: RegistryClient | None = None,
    store: Store | None = None,
) -> Image:
    """Make sure image ``ref`` is in the store and return it (see the module doc).

    ``progress`` is called in the calling thread with :class:`PullEvent` s. ``client``
    and ``store`` default to ones made from ``settings``. Raises the registry's errors
    (ImageNotFound, AuthError, RateLimited, RegistryUnavailable, ManifestError, BlobError),
    UnsafeLayer/LayerError for a layer refused; the store is then unchanged.
    """
    settings = settings or Settings.load()
    reference = ref if isinstance(ref, Reference) else Reference.parse(ref)
    store = store or Store.from_settings(settings)
    emit = progress or (lambda event: None)
    if policy == "never":
        return store.get_image(reference)
    stored = store.find_image(reference)
    if stored is not None and (
        not _fits(stored, platform) or not all(layer.path.is_dir() for layer in stored.layers)
    ):
        stored = None
    if stored is not None and policy == "missing" and reference.digest:
        _report_exists(stored, emit)
        return stored
    from .registry import RegistryClient  # httpx only when the network is needed

    own_client = client is None
    registry = client or RegistryClient(settings)
    try:
        emit(PullEvent("", "resolving", 0, 0))
        if stored is not None and policy == "missing":
            try:
                head = registry.head_manifest(reference)
            except RegistryUnavailable:
                head = stored.digest  # offline: what we have will do
            if head is not None and head in (stored.digest, stored.index_digest):
                _report_exists(stored, emit)
                return stored
        resolved = registry.get_manifest(reference, platform=platform)
        return _fetch(store, registry, reference, resolved, emit)
    finally:
        if own_client:
            registry.close()


def _fits(image: Image, platform: str | None) -> bool:
    """Whether a stored image is for ``platform`` (default: one this machine runs)."""
    config = image.config
    try:
        have = Platform.of(
            str(config.get("os", "linux")),
            str(config.get("architecture", "")),
            str(config.get("variant", "")),
        )
    except CellboxError:
        return False
    if platform is None:
        return have in compatible_platforms(Platform.host())
    return have == Platform.parse(platform)


def _report_exists(image: Image, emit: Callable[[PullEvent], None]) -> None:
    for layer in image.layers:
        emit(PullEvent(layer.digest, "exists", layer.size, layer.size))


def _check_layers(reference: Reference, resolved: ResolvedManifest) -> list[Descriptor]:
    layers = resolved.layers
    for number, layer in enumerate(layers, 1):
        if mt.layer_compression(layer.media_type) is None:
            raise ManifestError(
                f"{reference.familiar}: layer {number} has media type {layer.media_type!r}, "
                "which is not an image layer cellbox can apply"
            )
        if not layer.digest.startswith("sha256:"):
            raise ManifestError(
                f"{reference.familiar}: layer {number} uses digest {layer.digest[:20]}...; "
                "cellbox stores sha256 content only"
            )
    return layers


def _diff_ids(reference: Reference, config: Any, count: int) -> list[str]:
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and _SHA256.fullmatch(d) for d in diff_ids
    ):
        raise ManifestError(
            f"the config of {reference.familiar} has no valid rootfs.diff_ids "
            "(a list of sha256:<64 lowercase hex>)"
        )
    if len(diff_ids) != count:
        raise ManifestError(
            f"the config of {reference.familiar} lists {len(diff_ids)} diff_ids for "
            f"{count} layers in its manifest"
        )
    return [str(d) for d in diff_ids]


def _fetch(
    store: Store,
    registry: RegistryClient,
    reference: Reference,
    resolved: ResolvedManifest,
    emit: Callable[[PullEvent], None],
) -> Image:
    descriptors = _check_layers(reference, resolved)
    config_desc = resolved.config
    # A digest reference is a name too (like Docker's repo digests): prune keeps it.
    name = str(reference)
    for d in descriptors:
        emit(PullEvent(d.digest, "waiting", 0, d.size))
    # Only what is missing is locked (and so waited for): a layer another image already
    # brought is used at once, while a blob another pull is fetching is waited for.
    # The config's lock comes first, the layers' in one sorted batch: no lock cycle.
    with store.transaction() as txn, contextlib.ExitStack() as held:
        if not store.has_blob(config_desc.digest):
            held.enter_context(hold_all([store.lock_path("blob", config_desc.digest)]))
        config_raw = _config(store, registry, reference, config_desc)
        try:
            config = json.loads(config_raw)
        except ValueError as exc:
            raise ManifestError(f"the config of {reference.familiar} is not JSON") from exc
        diff_ids = _diff_ids(reference, config, len(descriptors))
        chains = chain_ids(diff_ids)
        missing = [
            d.digest for d, chain in zip(descriptors, chains, strict=True)
            if not (store.has_blob(d.digest) and store.has_layer(chain))
        ]
        held.enter_context(hold_all(store.lock_path("blob", digest) for digest in missing))
        work = _plan(store, descriptors, diff_ids, chains)  # again, under the locks
        todo = [w for w in work if w.need_blob or w.need_layer]
        for item in work:
            if item not in todo:
                size = item.descriptor.size
                emit(PullEvent(item.descriptor.digest, "exists", size, size))
        _run_layers(store, registry, reference, txn, todo, emit)
        txn.stage_bytes(config_raw)
        txn.stage_bytes(resolved.raw)
        record = image_record(
            config_desc.digest,
            resolved.index_digest,
            str(_platform(config)),
            chains,
            [d.digest for d in descriptors],
        )
        txn.commit(lambda index: record_image(index, resolved.digest, record, name))
    return store.get_image(name)


def _config(
    store: Store, registry: RegistryClient, reference: Reference, desc: Descriptor
) -> bytes:
    """The image config: from the store when there, else from the registry."""
    if store.has_blob(desc.digest):
        return store.read_blob(desc.digest)
    return registry.get_blob_bytes(reference, desc.digest, desc.size)


def _plan(
    store: Store, descriptors: list[Descriptor], diff_ids: list[str], chains: list[str]
) -> list[_Work]:
    """What each layer needs. A blob repeated in one image (the empty layer is common)
    is stored once; its other occurrences only stream it again to apply it."""
    work = []
    seen: set[str] = set()
    for i, (d, diff_id, chain) in enumerate(zip(descriptors, diff_ids, chains, strict=True)):
        download = not store.has_blob(d.digest)
        work.append(
            _Work(
                descriptor=d,
                diff_id=diff_id,
                chain_id=chain,
                parent=chains[i - 1] if i else None,
                download=download,
                need_blob=download and d.digest not in seen,
                need_layer=not store.has_layer(chain),
            )
        )
        seen.add(d.digest)
    return work


def _platform(config: dict[str, Any]) -> str:
    try:
        return str(
            Platform.of(
                str(config.get("os", "")),
                str(config.get("architecture", "")),
                str(config.get("variant", "")),
            )
        )
    except CellboxError:
        return ""


def _run_layers(
    store: Store,
    registry: RegistryClient,
    reference: Reference,
    txn: Transaction,
    work: list[_Work],
    emit: Callable[[PullEvent], None],
) -> None:
    """Fetch and apply ``work`` in parallel threads; events come back to this thread."""
    if not work:
        return
    events: queue.SimpleQueue[PullEvent] = queue.SimpleQueue()
    abort = threading.Event()
    pool = ThreadPoolExecutor(max_workers=min(len(work), _MAX_WORKERS),
                              thread_name_prefix="cellbox-pull")
    futures: list[Future[None]] = []
    try:
        for item in work:
            futures.append(
                pool.submit(_layer, store, registry, reference, txn, item, events.put, abort)
            )
        pending = set(futures)
        while pending:
            try:
                emit(events.get(timeout=0.05))
                continue
            except queue.Empty:
                pass
            for future in [f for f in pending if f.done()]:
                pending.discard(future)
                if future.exception() is not None:
                    abort.set()
    except BaseException:
        abort.set()
        raise
    finally:
        pool.shutdown(wait=True)
        while not events.empty():
            emit(events.get())
    errors = [e for f in futures if (e := f.exception()) is not None]
    real = [e for e in errors if not isinstance(e, _Aborted)]
    if real or errors:
        raise (real or errors)[0]


def _layer(
    store: Store,
    registry: RegistryClient,
    reference: Reference,
    txn: Transaction,
    item: _Work,
    emit: Callable[[PullEvent], None],
    abort: threading.Event,
) -> None:
    """One layer: download (unless its blob is stored) and apply (unless its layer is)."""
    desc = item.descriptor
    total = desc.size
    last = [0]
    status: list[Status] = ["downloading" if item.download else "extracting"]

    def on_progress(done: int) -> None:
        if done == total and status[0] == "downloading":
            status[0] = "extracting"
            emit(PullEvent(desc.digest, "extracting", done, total))
        elif done - last[0] >= _EVENT_STEP:
            last[0] = done
            emit(PullEvent(desc.digest, status[0], done, total))

    def check() -> None:
        if abort.is_set():
            raise _Aborted("stopped: another layer failed")

    emit(PullEvent(desc.digest, status[0], 0, total))
    blob_path = txn.blob_path(desc.digest)
    local = None if item.download else open(store.blob_path(desc.digest), "rb")  # noqa: SIM115
    chunks: Iterator[bytes] = (
        iter_file(local) if local is not None else registry.iter_blob(reference, desc.digest, total)
    )
    fd = (
        os.open(blob_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        if item.need_blob
        else None
    )
    reader = None
    try:
        reader = LayerReader(
            chunks, blob_fd=fd, max_bytes=store.options.max_bytes,
            progress=on_progress, check=check, threaded=item.need_layer,
        )
        if item.need_layer:
            staging = txn.layer_dir(item.chain_id)
            try:
                stats = apply_layer(reader, staging / "diff", store.options)
            except UnsafeLayer as exc:
                raise UnsafeLayer(_about(reference, desc, exc)) from exc
            except LayerError as exc:
                raise LayerError(_about(reference, desc, exc)) from exc
        else:
            reader.drain()
        digests = reader.result()
    finally:
        if reader is not None:
            reader.close()  # the decoding thread writes the blob: stop it first
        if fd is not None:
            os.close(fd)
        if local is not None:
            local.close()
    if digests.digest != desc.digest or digests.size != total:
        raise LayerError(
            f"layer {desc.digest[:19]} of {reference.familiar}: the blob's digest is "
            f"{digests.digest[:19]} ({digests.size} bytes); the download is corrupt"
        )
    if item.need_blob:
        txn.stage_blob(blob_path, desc.digest)
    if item.need_layer:
        if digests.diff_id != item.diff_id:
            raise LayerError(
                f"layer {desc.digest[:19]} of {reference.familiar} unpacks to diff_id "
                f"{digests.diff_id[:19]}, but the image config says {item.diff_id[:19]}; "
                "the image is corrupt or was tampered with"
            )
        info = layer_info(
            item.diff_id, desc.digest, total, item.parent, desc.media_type,
            digests.diff_size, stats,
        )
        txn.stage_layer(item.chain_id, staging, info)
    emit(PullEvent(desc.digest, "done", total, total))


def _about(reference: Reference, desc: Descriptor, exc: Exception) -> str:
    return f"refusing layer {desc.digest[:19]} of {reference.familiar}: {exc}"

