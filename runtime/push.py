"""``push``: upload a stored image to a registry, blobs first and the manifest last.

For each blob of the image (the layers and the config), in parallel:

1. ``HEAD``: a blob the repository already has is not sent again;
2. a cross-repository mount when the blob is known to be in another repository of the same
   registry (one the image was pulled from or pushed to before, recorded in
   ``<root>/push/sources.json``, or a name of a stored image holding the blob): the
   registry links it without any upload;
3. otherwise an upload: monolithic for blobs up to :data:`CHUNK_SIZE`, in ``PATCH`` chunks
   above (the registry client's ``upload_blob``).

Then the manifest, exactly the bytes in the store, so the pushed image has the same digest
as the local one. Credentials and Bearer tokens with ``pull,push`` scope come from the
registry client (``~/.docker/config.json`` as written by ``cellbox login``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import mediatypes as mt
from .errors import RegistryError, StoreError
from .locks import locked
from .reference import Reference
from .settings import Settings
from .store import Store

if TYPE_CHECKING:
    from .registry import RegistryClient

__all__ = ["CHUNK_SIZE", "PushEvent", "PushResult", "push"]

CHUNK_SIZE = 16 << 20
_WORKERS = 3
_MAX_SOURCES = 8  # repositories remembered per blob
_MAX_MOUNT_TRIES = 3

Status = Literal["preparing", "exists", "mounted", "pushing", "pushed"]


@dataclass(frozen=True)
class PushEvent:
    """A blob's progress: ``preparing``, then ``exists``, ``mounted`` or ``pushing`` →
    ``pushed``; and the manifest (``kind`` "manifest") when it is ``pushed``."""

    digest: str
    kind: Literal["layer", "config", "manifest"]
    status: Status
    size: int
    source: str = ""  # the repository a mounted blob came from


@dataclass(frozen=True)
class PushResult:
    """Where the image went, its manifest digest and size, and what each blob needed."""

    reference: str
    digest: str
    size: int
    uploaded: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Blob:
    digest: str
    size: int
    kind: Literal["layer", "config"]


class _Sources:
    """Which repositories (``registry/repository``) are known to hold a blob."""

    def __init__(self, store: Store) -> None:
        self.path = store.root / "push" / "sources.json"
        self.lock = store.locks / "push-sources.lock"

    def read(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: [r for r in v if isinstance(r, str)] for k, v in data.items()
                if isinstance(v, list)}

    def record(self, digests: list[str], repository: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.lock):
            data = self.read()
            for digest in digests:
                repos = [r for r in data.get(digest, []) if r != repository]
                data[digest] = [repository, *repos][:_MAX_SOURCES]
            tmp = self.path.with_name(f".sources.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(data, sort_keys=True))
            tmp.replace(self.path)


def _blobs(manifest: dict[str, Any]) -> list[_Blob]:
    config = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise StoreError("the stored manifest has no config or layers; pull or build it again")
    blobs = [_Blob(str(d.get("digest")), int(d.get("size", 0)), "layer")
             for d in layers if isinstance(d, dict)]
    blobs.append(_Blob(str(config.get("digest")), int(config.get("size", 0)), "config"))
    return blobs


def _candidates(store: Store, sources: dict[str, list[str]], digest: str,
                dest: Reference) -> list[str]:
    """Repositories of ``dest``'s registry that should hold ``digest`` (best first)."""
    found: list[str] = []
    prefix = f"{dest.registry}/"
    for name in sources.get(digest, []):
        if name.startswith(prefix) and name != dest.name:
            found.append(name[len(prefix):])
    for image in store.images():
        if digest not in {layer.digest for layer in image.layers} | {image.config_digest}:
            continue
        for name in image.references:
            ref = Reference.parse(name)
            if ref.registry == dest.registry and ref.repository != dest.repository:
                found.append(ref.repository)
    unique = list(dict.fromkeys(found))
    return unique[:_MAX_MOUNT_TRIES]


def push(
    source: str,
    destination: str | None = None,
    *,
    settings: Settings | None = None,
    client: RegistryClient | None = None,
    store: Store | None = None,
    progress: Callable[[PushEvent], None] | None = None,
) -> PushResult:
    """Push the stored image ``source`` to ``destination`` (default: ``source``'s own name).

    ``progress`` is called with :class:`PushEvent` s (from several threads, one at a time).
    Raises ImageNotFound when the image is not stored, StoreError when a blob it needs is
    missing from the store, and the registry's errors (AuthError with a hint to log in,
    RegistryUnavailable, ...).
    """
    settings = settings or Settings.load()
    store = store or Store.from_settings(settings)
    image = store.get_image(source)
    dest = Reference.parse(destination or image.reference or source)
    if not dest.tag and not dest.digest:
        dest = dest.with_tag("latest")
    raw = store.manifest_bytes(image)
    manifest = json.loads(raw)
    media_type = str(manifest.get("mediaType") or mt.OCI_MANIFEST)
    blobs = _blobs(manifest)
    for blob in blobs:
        if not store.has_blob(blob.digest):
            raise StoreError(
                f"cannot push {source}: its {blob.kind} blob {blob.digest[:19]} is not in the "
                f"store (only the unpacked layer is); pull the image again (cellbox pull "
                f"{source}) or rebuild it"
            )
    lock = threading.Lock()

    def emit(event: PushEvent) -> None:
        if progress is not None:
            with lock:
                progress(event)

    known = _Sources(store)
    sources = known.read()
    result = PushResult(str(dest), "", 0)
    with _client(settings, client) as registry:

        def send(blob: _Blob) -> None:
            emit(PushEvent(blob.digest, blob.kind, "preparing", blob.size))
            if registry.blob_exists(dest, blob.digest):
                result.existing.append(blob.digest)
                emit(PushEvent(blob.digest, blob.kind, "exists", blob.size))
                return
            for repository in _candidates(store, sources, blob.digest, dest):
                try:
                    mounted = registry.mount_blob(dest, blob.digest, repository)
                except RegistryError:
                    mounted = False  # no pull right on that repository: upload instead
                if mounted:
                    result.mounted.append(blob.digest)
                    emit(PushEvent(blob.digest, blob.kind, "mounted", blob.size,
                                   f"{dest.registry}/{repository}"))
                    return
            emit(PushEvent(blob.digest, blob.kind, "pushing", blob.size))
            registry.upload_blob(dest, blob.digest, blob.size, store.blob_path(blob.digest),
                                 chunk_size=CHUNK_SIZE)
            result.uploaded.append(blob.digest)
            emit(PushEvent(blob.digest, blob.kind, "pushed", blob.size))

        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            for future in [pool.submit(send, blob) for blob in blobs]:
                future.result()
        digest = registry.put_manifest(dest, raw, media_type)
    emit(PushEvent(digest, "manifest", "pushed", len(raw)))
    known.record([b.digest for b in blobs], dest.name)
    return PushResult(str(dest), digest, len(raw), result.uploaded, result.mounted,
                      result.existing)


@contextmanager
def _client(settings: Settings, client: RegistryClient | None) -> Iterator[RegistryClient]:
    if client is not None:
        yield client
        return
    from .registry import RegistryClient  # httpx only for commands that talk to registries

    with RegistryClient(settings) as own:
        yield own

