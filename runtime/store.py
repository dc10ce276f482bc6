"""The local image store: blobs by digest, unpacked layers by chain id, an image index.

    <root>/blobs/sha256/<hex>            compressed layers, configs, manifests
    <root>/layers/<chain hex>/diff/      an unpacked layer (an overlayfs lower dir)
    <root>/layers/<chain hex>/layer.json diff_id, digest, sizes, parent chain id
    <root>/images.json                   names -> manifest digest; per image: config,
                                         index digest, platform, chain ids, blobs
    <root>/tmp/                          staging (same file system, so rename is atomic)
    <root>/locks/                        flock files

Writes go through a :class:`Transaction`: everything is staged in ``tmp/txn-*`` and moved
into place with ``rename`` only when the whole operation succeeded, the index last. A
failed or killed pull therefore leaves nothing visible; its staging dir is removed by the
next transaction that finds the store idle, or by ``prune``.

Removal (``rmi``, ``prune``) is in :mod:`.storegc`.

Locks: ``gc.lock`` is held shared by every writer and exclusively by ``rmi``/``prune``
(so nothing is collected while a pull is deciding what already exists);
``layer-<hex>.lock`` and ``blob-<hex>.lock`` make concurrent pulls of the same content
download it once (taken in sorted order by :func:`~.locks.hold_all`); ``images.lock``
guards the read-modify-write of images.json (readers need no lock: it is replaced
atomically).
"""

from __future__ import annotations

import errno
import os

from . import _leanjson
from .errors import ImageNotFound, InvalidReference, StoreError
from .images import OCI_LAYER_GZIP, Image, Layer, chain_ids, sha256_hex
from .paths import clean
from .rawsettings import is_rootless

# `cellbox run` reads the store and must start fast: reading imports only the above
# (no json, re, pathlib, hashlib/OpenSSL, typing, tempfile, shutil, datetime, locks or
# layer code; the reference parser is re-free). The read path works on string paths; the
# Path attributes (root, blobs, layers...) are made on first use, for writers and callers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from contextlib import AbstractContextManager
    from pathlib import Path
    from typing import Any, BinaryIO, TypeVar

    from . import mediatypes as mt
    from .layers import ApplyOptions, LayerStats
    from .paths import StrPath
    from .reference import Reference
    from .settings import Settings
    from .storegc import PruneReport, RemoveReport

    T = TypeVar("T")

__all__ = [
    "PruneReport",
    "RemoveReport",
    "Store",
    "Transaction",
    "hex_of",
]

_HEX = frozenset("0123456789abcdef")
_INDEX_VERSION = 1
_MAX_JSON_BLOB = 16 << 20
# Temp entries of other writers (not ours) are only removed once this old.
_FOREIGN_TMP_AGE = 600.0
_OWN_TMP = ("txn-", "trash-", "index-")


def hex_of(digest: str) -> str:
    """The hex part of ``sha256:<hex>``; StoreError for anything else (it becomes a path)."""
    if len(digest) != 71 or not digest.startswith("sha256:") or not _HEX.issuperset(digest[7:]):
        raise StoreError(f"not a sha256 digest: {digest[:80]!r}")
    return digest[7:]


def _id_prefix(text: str) -> str | None:
    """The hex of a digest or image id prefix (``sha256:3f57`` or ``3f57d9``), else None."""
    hex_part = text.removeprefix("sha256:")
    return hex_part if 4 <= len(hex_part) <= 64 and _HEX.issuperset(hex_part) else None


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _fsync_write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


class Transaction:
    """Content staged under ``tmp/txn-*`` that becomes visible at :meth:`commit`.

    Made by :meth:`Store.transaction`; not thread-safe for staging the same item twice,
    but layers may be staged from several threads (each into its own path).
    """

    def __init__(self, store: Store) -> None:
        import tempfile

        self.store = store
        self.dir = _path(tempfile.mkdtemp(prefix="txn-", dir=store.tmp))
        self._blobs: dict[str, Path] = {}
        self._layers: dict[str, Path] = {}

    def blob_path(self, digest: str) -> Path:
        """Where to write a blob being downloaded (stage it with :meth:`stage_blob`)."""
        return self.dir / f"blob-{hex_of(digest)}"

    def temp_path(self, name: str) -> Path:
        return self.dir / name

    def stage_blob(self, path: Path, digest: str) -> None:
        hex_of(digest)
        self._blobs[digest] = path

    def stage_bytes(self, data: bytes) -> str:
        """Stage a small blob (config, manifest); return its digest."""
        digest = "sha256:" + sha256_hex(data)
        path = self.blob_path(digest)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _fsync_write(fd, data)
        finally:
            os.close(fd)
        self._blobs[digest] = path
        return digest

    def layer_dir(self, chain_id: str) -> Path:
        """A fresh directory to stage a layer in: apply into ``<it>/diff``."""
        path = self.dir / f"layer-{hex_of(chain_id)}"
        path.mkdir(mode=0o700)
        return path

    def stage_layer(self, chain_id: str, path: Path, info: dict[str, Any]) -> None:
        import json

        data = json.dumps(info, indent=1, sort_keys=True).encode()
        (path / "layer.json").write_bytes(data)
        self._layers[chain_id] = path

    def commit(self, update_index: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Move the staged blobs, then layers, into place; then update the index.

        Each item is renamed into place only if absent (content-addressed: an existing
        one is the same). Killed half way, what is visible is complete but maybe not yet
        named by the index: ``prune`` collects it.
        """
        store = self.store
        store.blobs.mkdir(parents=True, exist_ok=True)
        store.layers.mkdir(parents=True, exist_ok=True)
        for digest, path in self._blobs.items():
            target = store.blob_path(digest)
            if not target.exists():
                os.chmod(path, 0o644)
                os.rename(path, target)
        for chain_id, path in self._layers.items():
            target = store.layer_path(chain_id)
            if not target.exists():
                try:
                    os.rename(path, target)
                except OSError as exc:
                    # Another writer put the same layer there first: keep theirs.
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
        self._blobs.clear()
        self._layers.clear()
        if update_index is not None:
            with store.update_index() as index:
                update_index(index)


def _context(steps: Callable[[], Iterator[T]]) -> AbstractContextManager[T]:
    """``contextlib.contextmanager(steps)()``, contextlib being imported only by writers."""
    from contextlib import contextmanager

    return contextmanager(steps)()


def _path(*parts: str) -> Path:
    from pathlib import Path  # only for callers that ask for a Path (see the module doc)

    return Path(*parts)


class Store:
    """The image store under ``root`` (``Settings.root``; a str or any path-like)."""

    def __init__(self, root: StrPath, *, options: ApplyOptions | None = None,
                 caps: tuple[int, int] | None = None) -> None:
        self._root = clean(root)
        self._options = options
        self._caps = caps  # (max_bytes, max_entries) for options, when made

    # -- where things are (as Paths, made on demand) -------------------------------------

    @property
    def root(self) -> Path:
        return _path(self._root)

    @property
    def blobs(self) -> Path:
        return _path(self._root, "blobs", "sha256")

    @property
    def layers(self) -> Path:
        return _path(self._root, "layers")

    @property
    def tmp(self) -> Path:
        return _path(self._root, "tmp")

    @property
    def locks(self) -> Path:
        return _path(self._root, "locks")

    @property
    def index_path(self) -> Path:
        return _path(self._root, "images.json")

    @property
    def containers(self) -> Path:
        return _path(self._root, "containers")

    @property
    def options(self) -> ApplyOptions:
        """How layers are applied here (rootless or not, the caps)."""
        if self._options is None:
            from .layers import ApplyOptions  # the layer code: only for writers

            if self._caps is None:
                self._options = ApplyOptions(rootless=is_rootless())
            else:
                self._options = ApplyOptions(rootless=is_rootless(), max_bytes=self._caps[0],
                                             max_entries=self._caps[1])
        return self._options

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Store:
        """The store of ``settings`` (default: Settings.load()), with its layer caps."""
        if settings is None:
            from .settings import Settings

            settings = Settings.load()
        return cls(settings.root, caps=(settings.layer_max_bytes, settings.layer_max_entries))

    # -- paths and lookups ---------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs / hex_of(digest)

    def layer_path(self, chain_id: str) -> Path:
        """``layers/<hex>``: holds ``diff/`` (the lower dir) and ``layer.json``."""
        return self.layers / hex_of(chain_id)

    def lock_path(self, kind: str, digest: str) -> Path:
        return self.locks / f"{kind}-{hex_of(digest)}.lock"

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def has_layer(self, chain_id: str) -> bool:
        return (self.layer_path(chain_id) / "layer.json").is_file()

    def read_blob(self, digest: str, *, max_size: int = _MAX_JSON_BLOB) -> bytes:
        """A small blob (config, manifest), checked against its digest."""
        path = os.path.join(self._root, "blobs", "sha256", hex_of(digest))
        try:
            with open(path, "rb") as f:
                data = f.read(max_size + 1)
        except FileNotFoundError:
            raise StoreError(
                f"blob {digest[:19]} is missing from the store {self._root}; pull the image "
                "again"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read blob {path}: {exc.strerror}") from exc
        if len(data) > max_size or "sha256:" + sha256_hex(data) != digest:
            raise StoreError(
                f"blob {digest[:19]} in {self._root} is corrupt; remove the image and pull it "
                "again"
            )
        return data

    def _read_json_blob(self, digest: str) -> dict[str, Any]:
        try:
            value = _leanjson.loads(self.read_blob(digest))
        except ValueError as exc:
            raise StoreError(f"blob {digest[:19]} in {self._root} is not JSON") from exc
        if not isinstance(value, dict):
            raise StoreError(f"blob {digest[:19]} in {self._root} is not a JSON object")
        return value

    # -- the index -----------------------------------------------------------------------

    def read_index(self) -> dict[str, Any]:
        path = os.path.join(self._root, "images.json")
        try:
            with open(path, "rb") as f:
                data = _leanjson.loads(f.read())
        except FileNotFoundError:
            return {"version": _INDEX_VERSION, "references": {}, "images": {}}
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"cannot read the image index {path}: {exc}; restore or remove it"
            ) from exc
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("references"), dict)
            or not isinstance(data.get("images"), dict)
        ):
            raise StoreError(f"the image index {path} is malformed")
        return data

    def update_index(self) -> AbstractContextManager[dict[str, Any]]:
        """Read-modify-write images.json under its lock; written atomically at the end."""
        return _context(self._update_index)

    def _update_index(self) -> Iterator[dict[str, Any]]:
        import contextlib
        import json
        import tempfile

        from .locks import locked

        self.tmp.mkdir(parents=True, exist_ok=True)
        with locked(self.locks / "images.lock"):
            index = self.read_index()
            yield index
            data = json.dumps(index, indent=1, sort_keys=True).encode()
            fd, name = tempfile.mkstemp(prefix="index-", dir=self.tmp)
            try:
                _fsync_write(fd, data)
                os.close(fd)
                fd = -1
                os.chmod(name, 0o644)
                os.rename(name, self.index_path)
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
                raise

    # -- reading images ------------------------------------------------------------------

    def _image(self, index: dict[str, Any], digest: str, reference: str) -> Image:
        record = index["images"].get(digest)
        if not isinstance(record, dict):
            raise StoreError(f"the image index has no record of {digest[:19]}")
        manifest = self._read_json_blob(digest)
        config_digest = str(record.get("config", ""))
        config = self._read_json_blob(config_digest)
        descriptors = manifest.get("layers")
        rootfs = config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if (
            not isinstance(descriptors, list)
            or not isinstance(diff_ids, list)
            or len(descriptors) != len(diff_ids)
        ):
            raise StoreError(f"image {digest[:19]} in {self._root} has a malformed manifest")
        layers = []
        for descriptor, diff_id, chain_id in zip(
            descriptors, diff_ids, chain_ids([str(d) for d in diff_ids]), strict=True
        ):
            layers.append(
                Layer(
                    digest=str(descriptor.get("digest")),
                    diff_id=str(diff_id),
                    chain_id=chain_id,
                    size=int(descriptor.get("size", 0)),
                    lower_dir=os.path.join(self._root, "layers", hex_of(chain_id), "diff"),
                    media_type=str(descriptor.get("mediaType", OCI_LAYER_GZIP)),
                )
            )
        names = tuple(
            sorted(name for name, target in index["references"].items() if target == digest)
        )
        return Image(
            reference=reference,
            digest=digest,
            config=config,
            layers=tuple(layers),
            config_digest=config_digest,
            index_digest=record.get("index_digest"),
            references=names,
            added=str(record.get("added", "")),
        )

    def lookup(self, index: dict[str, Any], ref: str | Reference) -> tuple[str, str] | None:
        """(manifest digest, reference string) of ``ref`` in ``index``, or None."""
        from .reference import Reference  # not before: a digest or id needs no parsing

        text = str(ref)
        images: dict[str, Any] = index["images"]
        prefix = _id_prefix(ref) if isinstance(ref, str) else None
        if isinstance(ref, str) and prefix is not None:
            # a digest or an id prefix, like docker's `rmi 3f57d9401f8d`
            hits = sorted(d for d in images if d[7:].startswith(prefix))
            if not hits:
                hits = sorted(
                    d
                    for d, r in images.items()
                    if str(r.get("config", ""))[7:].startswith(prefix)
                )
            if len(hits) == 1:
                return hits[0], ""
            if len(hits) > 1:
                raise StoreError(f"{text!r} matches several images; give more of the digest")
            if ref.startswith("sha256:"):
                return None
        try:
            parsed = ref if isinstance(ref, Reference) else Reference.parse(text)
        except InvalidReference:
            if prefix is not None:
                return None
            raise
        name = str(parsed)
        target = index["references"].get(name)
        if isinstance(target, str) and target in images:
            return target, name
        if parsed.digest:
            if parsed.digest in images:
                return parsed.digest, ""
            for digest, record in images.items():
                if record.get("index_digest") == parsed.digest:
                    return digest, ""
        return None

    def find_image(self, ref: str | Reference) -> Image | None:
        """The stored image named ``ref`` (a reference, a digest or an id prefix), or None."""
        index = self.read_index()
        found = self.lookup(index, ref)
        if found is None:
            return None
        digest, name = found
        if not name:
            names = sorted(n for n, d in index["references"].items() if d == digest)
            name = names[0] if names else ""
        return self._image(index, digest, name)

    def get_image(self, ref: str | Reference) -> Image:
        """The stored image named ``ref``; :class:`ImageNotFound` (with a hint) if absent."""
        image = self.find_image(ref)
        if image is None:
            shown = ref if isinstance(ref, str) else ref.familiar
            raise ImageNotFound(
                f"image {shown!r} is not in the store ({self._root}); "
                f"pull it first: cellbox pull {shown}"
            )
        missing = [layer for layer in image.layers if not os.path.isdir(layer.lower_dir)]
        if missing:
            raise StoreError(
                f"image {image.reference or image.digest[:19]}: layer {missing[0].digest[:19]} "
                f"is missing from {os.path.join(self._root, 'layers')}; pull the image again"
            )
        return image

    def images(self) -> list[Image]:
        """One entry per name, sorted, then the untagged images (reference "")."""
        index = self.read_index()
        out = []
        named: set[str] = set()
        for name, digest in sorted(index["references"].items()):
            if digest in index["images"]:
                out.append(self._image(index, digest, name))
                named.add(digest)
        for digest in sorted(index["images"]):
            if digest not in named:
                out.append(self._image(index, digest, ""))
        return out

    # -- writing -------------------------------------------------------------------------

    def ensure_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        for path in (self.blobs, self.layers, self.tmp, self.locks):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Stage writes; nothing staged is visible unless :meth:`Transaction.commit` ran.

        Holds the store's gc lock shared, so ``rmi``/``prune`` wait. When no other writer
        is active, leftovers of killed writers in tmp/ are removed first.
        """
        return _context(self._transaction)

    def _transaction(self) -> Iterator[Transaction]:
        import shutil

        from .locks import FileLock

        self.ensure_dirs()
        gc = FileLock(self.locks / "gc.lock")
        if gc.acquire(shared=False, blocking=False):
            try:
                self.clean_tmp()
            finally:
                gc.acquire(shared=True)  # converts the exclusive lock
        else:
            gc.acquire(shared=True)
        try:
            txn = Transaction(self)
            try:
                yield txn
            finally:
                shutil.rmtree(txn.dir, ignore_errors=True)
        finally:
            gc.release()

    def using(self) -> AbstractContextManager[None]:
        """Keep rmi/prune out while the caller records that it uses stored layers.

        A container being created should hold this from reading the image until its
        config.json (with the layers' chain ids) is written.
        """
        return _context(self._using)

    def _using(self) -> Iterator[None]:
        from .locks import locked

        self.ensure_dirs()
        with locked(self.locks / "gc.lock", shared=True):
            yield

    def add_layer(
        self,
        tar_stream: BinaryIO | Iterable[bytes],
        parent_chain_id: str | None,
        compression: mt.Compression = "gzip",
    ) -> Layer:
        """Store a layer from a tar stream (``commit``, ``build``) on top of a parent.

        ``tar_stream`` is a binary file or an iterable of chunks of a plain, gzip or zstd
        tar (told apart by magic bytes). A plain tar is compressed with ``compression``
        deterministically (equal tars give equal blobs); a compressed one is stored as it
        is. The tar is applied as safely as a pulled one. Returns the :class:`Layer`.
        """
        from . import mediatypes as mt
        from .layerio import LayerReader, iter_file
        from .layers import apply_layer
        from .locks import hold_all

        chunks = iter_file(tar_stream) if hasattr(tar_stream, "read") else tar_stream
        if parent_chain_id is not None and not self.has_layer(parent_chain_id):
            raise StoreError(
                f"cannot add a layer on top of {parent_chain_id[:19]}: that layer is not in "
                f"the store {self.root}"
            )
        with self.transaction() as txn:
            blob = txn.temp_path("blob-new")
            staging = txn.layer_dir("sha256:" + "0" * 64)
            fd = os.open(blob, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                with LayerReader(
                    chunks,
                    blob_fd=fd,
                    compress=compression,
                    max_bytes=self.options.max_bytes,
                    threaded=True,
                ) as reader:
                    stats = apply_layer(reader, staging / "diff", self.options)
            finally:
                os.close(fd)
            digests = reader.result()
            diff_id = digests.diff_id
            chain_id = chain_ids([parent_chain_id, diff_id])[1] if parent_chain_id else diff_id
            media_type = {
                "gzip": mt.OCI_LAYER_GZIP,
                "zstd": mt.OCI_LAYER_ZSTD,
                "none": mt.OCI_LAYER,
            }[digests.compression]
            with hold_all(
                [self.lock_path("layer", chain_id), self.lock_path("blob", digests.digest)]
            ):
                txn.stage_blob(blob, digests.digest)
                if not self.has_layer(chain_id):
                    info = layer_info(
                        diff_id, digests.digest, digests.size, parent_chain_id, media_type,
                        digests.diff_size, stats,
                    )
                    txn.stage_layer(chain_id, staging, info)
                txn.commit()
        return Layer(
            digest=digests.digest,
            diff_id=diff_id,
            chain_id=chain_id,
            size=digests.size,
            lower_dir=os.path.join(self._root, "layers", hex_of(chain_id), "diff"),
            media_type=media_type,
        )

    def add_image(
        self, reference: str | Reference | None, config: dict[str, Any], layers: Sequence[Layer]
    ) -> Image:
        """Store ``config`` and an OCI manifest over ``layers`` (bottom first) as an image.

        The layers must be in the store (from a pull or :meth:`add_layer`).
        ``config["rootfs"]`` is filled in when absent and must otherwise list the layers'
        diff_ids. ``reference`` ("" or None: untagged) is pointed at the new manifest.
        Returns the image; its manifest is blob ``image.digest`` (what a push uploads).
        """
        import json

        from . import mediatypes as mt
        from .reference import Reference

        config = dict(config)
        diff_ids = [layer.diff_id for layer in layers]
        rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": diff_ids})
        if not isinstance(rootfs, dict) or rootfs.get("diff_ids") != diff_ids:
            raise StoreError(
                "the image config's rootfs.diff_ids do not match the layers given to add_image"
            )
        expected = chain_ids(diff_ids)
        for layer, chain_id in zip(layers, expected, strict=True):
            if layer.chain_id != chain_id or not self.has_layer(chain_id):
                raise StoreError(
                    f"layer {layer.digest[:19]} (chain {chain_id[:19]}) is not in the store "
                    f"{self.root} on top of the layers before it"
                )
            if not self.has_blob(layer.digest):
                raise StoreError(f"the blob of layer {layer.digest[:19]} is not in the store")
        name = str(Reference.parse(str(reference))) if reference else ""
        config_raw = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
        with self.transaction() as txn:
            config_digest = txn.stage_bytes(config_raw)
            manifest = {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {
                    "mediaType": mt.OCI_CONFIG,
                    "digest": config_digest,
                    "size": len(config_raw),
                },
                "layers": [
                    {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                    for layer in layers
                ],
            }
            manifest_raw = json.dumps(manifest, separators=(",", ":")).encode()
            digest = txn.stage_bytes(manifest_raw)
            record = image_record(
                config_digest, None, _platform_of(config), expected,
                [layer.digest for layer in layers],
            )
            txn.commit(lambda index: record_image(index, digest, record, name))
        return self.get_image(name or digest)

    def tag(self, source: str | Reference, target: str | Reference) -> Image:
        """Name the stored image ``source`` also ``target`` (moving ``target`` if taken)."""
        from .reference import Reference

        image = self.get_image(source)
        name = str(target if isinstance(target, Reference) else Reference.parse(target))
        with self.using(), self.update_index() as index:  # no prune while writing
            if image.digest not in index["images"]:
                raise ImageNotFound(f"image {source!s} was removed while tagging it")
            index["references"][name] = image.digest
        return self.get_image(name)

    def manifest_bytes(self, image: Image) -> bytes:
        """The manifest exactly as stored (what a push sends)."""
        return self.read_blob(image.digest)

    # -- removing (see storegc) ------------------------------------------------------------

    def remove(self, ref: str | Reference, *, force: bool = False) -> RemoveReport:
        """``rmi``: see :func:`.storegc.remove_image`."""
        from .storegc import remove_image

        return remove_image(self, ref, force=force)

    def prune(self, in_use_chain_ids: Iterable[str] = ()) -> PruneReport:
        """``prune``: see :func:`.storegc.prune`."""
        from .storegc import prune

        return prune(self, in_use_chain_ids)

    def clean_tmp(self) -> list[str]:
        """Remove leftovers of killed writers. Call with the gc lock held exclusively."""
        import contextlib
        import shutil
        import time

        removed = []
        now = time.time()
        for entry in _scandir(self.tmp):
            ours = entry.name.startswith(_OWN_TMP)
            try:
                old = now - entry.stat(follow_symlinks=False).st_mtime > _FOREIGN_TMP_AGE
            except FileNotFoundError:
                continue
            if not (ours or old):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            removed.append(entry.name)
        return removed


# -- index records ------------------------------------------------------------------------


def image_record(
    config_digest: str,
    index_digest: str | None,
    platform: str,
    chains: Sequence[str],
    blobs: Sequence[str],
) -> dict[str, Any]:
    """What images.json keeps per manifest digest (enough for GC without reading blobs)."""
    return {
        "config": config_digest,
        "index_digest": index_digest,
        "platform": platform,
        "chain_ids": list(chains),
        "blobs": [config_digest, *blobs],
        "added": _now(),
    }


def record_image(index: dict[str, Any], digest: str, record: dict[str, Any], name: str) -> None:
    """Put an image into the index and point ``name`` (if any) at it."""
    old = index["images"].get(digest)
    if isinstance(old, dict) and old.get("added"):
        record = {**record, "added": old["added"]}
    index["images"][digest] = record
    if name:
        index["references"][name] = digest


def layer_info(
    diff_id: str,
    digest: str,
    size: int,
    parent: str | None,
    media_type: str,
    diff_size: int,
    stats: LayerStats,
) -> dict[str, Any]:
    """The contents of layer.json."""
    return {
        "diff_id": diff_id,
        "digest": digest,
        "size": size,
        "parent": parent,
        "media_type": media_type,
        "diff_size": diff_size,
        "content_size": stats.content_bytes,
        "entries": stats.entries,
        "skipped": list(stats.skipped[:100]),
        "created": _now(),
    }


def _platform_of(config: dict[str, Any]) -> str:
    parts = [str(config.get("os", "")), str(config.get("architecture", ""))]
    if config.get("variant"):
        parts.append(str(config["variant"]))
    return "/".join(parts)


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(path))
    except FileNotFoundError:
        return []


def __getattr__(name: str) -> Any:
    # RemoveReport and PruneReport live in storegc, imported only when removing.
    if name in ("RemoveReport", "PruneReport"):
        from . import storegc

        return getattr(storegc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
