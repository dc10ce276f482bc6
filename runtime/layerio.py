"""One pass over a layer blob: store it, hash it, decompress it, hand the tar on.

A :class:`LayerReader` sits between the bytes of a blob (chunks from the registry, or
from a local stream) and the tar parser. Every chunk is written to the blob file and
hashed as it passes, decompressed (gzip, zstd or none, told apart by magic bytes, never by
media type alone), counted against the size cap, hashed again for the ``diff_id`` and
buffered for :mod:`tarfile`, which reads it like a forward-only file. Nothing is read
twice and memory stays at a few chunk sizes whatever the layer size.

A plain tar can also be compressed on the way (``compress="gzip"``), for layers made
locally (``commit``): the blob file then gets the deterministic gzip (or zstd) of the tar.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import queue
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import LayerError, UnsafeLayer
from .mediatypes import Compression

__all__ = [
    "CHUNK",
    "GZIP_LEVEL",
    "LayerDigests",
    "LayerReader",
    "detect_compression",
    "iter_file",
]

CHUNK = 1 << 20
_AHEAD = 4  # decoded chunks the decoding thread may run ahead of the tar parser
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_REFUSED_MAGIC = {
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
    b"\x04\x22\x4d\x18": "lz4",
}


def detect_compression(head: bytes) -> Compression:
    """The compression of a blob from its first bytes (at least 6, unless shorter)."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    for magic, name in _REFUSED_MAGIC.items():
        if head.startswith(magic):
            raise LayerError(
                f"the layer is compressed with {name}, which OCI images do not use; "
                "only gzip, zstd and plain tar layers are supported"
            )
    return "none"


def iter_file(stream: Any, size: int = CHUNK) -> Iterator[bytes]:
    """Chunks of a binary file object until EOF."""
    while chunk := stream.read(size):
        yield chunk


@dataclass(frozen=True)
class LayerDigests:
    """What one pass over a layer measured."""

    digest: str             # sha256 of the blob as stored (compressed)
    size: int               # bytes of the blob as stored
    diff_id: str            # sha256 of the uncompressed tar
    diff_size: int          # bytes of the uncompressed tar
    compression: Compression  # of the blob as stored


class _Blob:
    """Where the blob as stored goes: its file (optional), its sha256 and its size."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.hash = hashlib.sha256()
        self.size = 0

    def record(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)
        if self.fd is not None:
            _write_all(self.fd, data)


class _Source:
    """The incoming bytes: pulls chunks, tees them into the blob (unless recompressing)."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        blob: _Blob | None,
        progress: Callable[[int], None] | None,
        check: Callable[[], None] | None,
    ) -> None:
        self._chunks = chunks
        self._blob = blob
        self._progress = progress
        self._check = check
        self.pulled = 0
        self._pushed_back = b""

    def pull(self) -> bytes:
        """The next chunk, b"" at the end. A pushed-back chunk is not recorded twice."""
        if self._pushed_back:
            chunk, self._pushed_back = self._pushed_back, b""
            return chunk
        if self._check is not None:
            self._check()
        for chunk in self._chunks:
            if chunk:
                self.pulled += len(chunk)
                if self._blob is not None:
                    self._blob.record(chunk)
                if self._progress is not None:
                    self._progress(self.pulled)
                return chunk
        return b""

    def push_back(self, chunk: bytes) -> None:
        self._pushed_back = chunk

    def read(self, n: int) -> bytes:
        """File-like view for zstandard's stream reader."""
        chunk = self.pull()
        if len(chunk) > n:
            self.push_back(chunk[n:])
            chunk = chunk[:n]
        return chunk


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _Gunzip:
    """gzip, member after member (like Go's multistream reader), output bounded per call."""

    def __init__(self, source: _Source) -> None:
        self._source = source
        self._d = zlib.decompressobj(31)
        self._started = False

    def read(self) -> bytes:
        while True:
            data = self._d.unconsumed_tail or self._source.pull()
            if not data:
                if self._started and not self._d.eof:
                    raise LayerError("the gzip stream of the layer is truncated")
                return b""
            if self._d.eof:  # a following member: it must be gzip too
                self._d = zlib.decompressobj(31)
            self._started = True
            try:
                out = self._d.decompress(data, CHUNK)
            except zlib.error as exc:
                raise LayerError(f"corrupt gzip data in the layer: {exc}") from exc
            if self._d.eof and self._d.unused_data:
                self._source.push_back(self._d.unused_data)
            if out:
                return out


class _Unzstd:
    """zstd through zstandard's stream reader, which bounds each read's output."""

    def __init__(self, source: _Source) -> None:
        import zstandard  # only layers that use zstd pay for the import

        self._error = zstandard.ZstdError
        reader: Any = source  # a file-like object with read(n), all the reader needs
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            reader, read_size=CHUNK, read_across_frames=True, closefd=False
        )

    def read(self) -> bytes:
        try:
            return bytes(self._reader.read(CHUNK))
        except self._error as exc:
            raise LayerError(f"corrupt zstd data in the layer: {exc}") from exc


class _Plain:
    def __init__(self, source: _Source) -> None:
        self._source = source

    def read(self) -> bytes:
        return self._source.pull()


class _Compressor:
    """Deterministic compression of a plain tar into the blob (gzip mtime 0, fixed level)."""

    def __init__(self, kind: Compression, blob: _Blob) -> None:
        self._blob = blob
        self._obj: Any
        if kind == "gzip":
            # wbits 31: a gzip header with mtime 0 and no name, so equal tars give equal blobs
            self._obj = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        else:
            import zstandard

            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
            self._obj = compressor.compressobj()

    def feed(self, plain: bytes) -> None:
        if out := self._obj.compress(plain):
            self._blob.record(out)

    def finish(self) -> None:
        if out := self._obj.flush():
            self._blob.record(out)


class LayerReader:
    """A forward-only file over the uncompressed tar of a layer; see the module doc.

    ``chunks`` yields the blob's bytes; ``blob_fd`` (optional) receives the blob as stored;
    ``compress`` recompresses a plain tar for storage (ignored when the input is already
    compressed: it is stored as it came); ``max_bytes`` caps the uncompressed size
    (:class:`UnsafeLayer` beyond it); ``progress(n)`` is told the input bytes read so far;
    ``check()`` runs before each pull and may raise to abort.
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        blob_fd: int | None = None,
        compress: Compression | None = None,
        max_bytes: int = 16 << 30,
        progress: Callable[[int], None] | None = None,
        check: Callable[[], None] | None = None,
        threaded: bool = False,
    ) -> None:
        it = iter(chunks)
        head = b""
        for chunk in it:
            head += chunk
            if len(head) >= 6:
                break
        self.compression: Compression = detect_compression(head)
        self._blob = _Blob(blob_fd)
        self._compressor: _Compressor | None = None
        if self.compression == "none" and compress in ("gzip", "zstd"):
            assert compress is not None
            self._compressor = _Compressor(compress, self._blob)
            self._stored: Compression = compress
        else:
            self._stored = self.compression
        source = _Source(
            itertools.chain((head,), it),
            None if self._compressor is not None else self._blob,
            progress,
            check,
        )
        self._decoder: _Gunzip | _Unzstd | _Plain
        if self.compression == "gzip":
            self._decoder = _Gunzip(source)
        elif self.compression == "zstd":
            self._decoder = _Unzstd(source)
        else:
            self._decoder = _Plain(source)
        self._max = max_bytes
        self._diff = hashlib.sha256()
        self._offset = 0  # uncompressed bytes handed out
        self._produced = 0  # uncompressed bytes decoded
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._decoded_all = False
        self._queue: queue.Queue[bytes | BaseException] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if threaded:
            # Download, decompression and hashing (C code that releases the GIL) run in a
            # thread of their own, ahead of the tar parser, a few chunks at most.
            self._queue = queue.Queue(maxsize=_AHEAD)
            self._thread = threading.Thread(
                target=self._produce_all, name="cellbox-layer-decode", daemon=True
            )
            self._thread.start()

    def _produce_all(self) -> None:
        assert self._queue is not None
        while not self._stop.is_set():
            try:
                item: bytes | BaseException = self._produce()
            except BaseException as exc:  # handed to the reading thread
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def close(self) -> None:
        """Stop the decoding thread (if any); call when done, also after an error."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> LayerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self) -> bytes:
        if self._eof:
            return b""
        if self._queue is None:
            plain = self._produce()
        else:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._queue.put(item)  # and again for a later call
                raise item
            plain = item
        if not plain:
            self._eof = True
        return plain

    def _produce(self) -> bytes:
        """The next chunk of the tar (b"" at the end), hashed, counted, recompressed."""
        if self._decoded_all:
            return b""
        plain = self._decoder.read()
        if not plain:
            self._decoded_all = True
            if self._compressor is not None:
                self._compressor.finish()
            return b""
        self._produced += len(plain)
        if self._produced > self._max:
            raise UnsafeLayer(
                f"the layer expands to more than {self._max} bytes (the cap on a layer's "
                "uncompressed size)"
            )
        self._diff.update(plain)
        if self._compressor is not None:
            self._compressor.feed(plain)
        return plain

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` uncompressed bytes (fewer only at the end)."""
        if n is None or n < 0:
            raise ValueError("LayerReader.read needs a size")
        end = self._pos + n
        if end <= len(self._buf):
            out = self._buf[self._pos : end]
            self._pos = end
            self._offset += n
            return out
        parts = [self._buf[self._pos :]]
        have = len(parts[0])
        while have < n:
            chunk = self._next()
            if not chunk:
                self._buf, self._pos = b"", 0
                break
            need = n - have
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._pos = chunk, need
                have = n
                break
            parts.append(chunk)
            have += len(chunk)
        else:
            self._buf, self._pos = b"", 0
        if have < n and self._buf:
            self._buf, self._pos = b"", 0
        self._offset += have
        return b"".join(parts)

    def copy_to(self, fd: int, size: int) -> None:
        """Write the next ``size`` bytes to ``fd`` without copying them in memory."""
        left = size
        while left:
            if self._pos >= len(self._buf):
                chunk = self._next()
                if not chunk:
                    raise LayerError("the layer's tar stream ends in the middle of a file")
                self._buf, self._pos = chunk, 0
            take = min(left, len(self._buf) - self._pos)
            _write_all(fd, memoryview(self._buf)[self._pos : self._pos + take])
            self._pos += take
            self._offset += take
            left -= take

    def at_eof(self) -> bool:
        """True when every byte of the stream has been handed out."""
        return self._eof and self._pos >= len(self._buf)

    def tell(self) -> int:
        return self._offset

    def seek(self, pos: int, whence: int = 0) -> int:
        """Forward-only: skip to ``pos`` (what tarfile does to pass a member's padding)."""
        if whence != 0 or pos < self._offset:
            raise LayerError("internal error: the layer stream cannot seek backwards")
        self.skip(pos - self._offset)
        return self._offset

    def skip(self, count: int) -> None:
        left = count
        while left:
            if self._pos >= len(self._buf):
                chunk = self._next()
                if not chunk:
                    return
                self._buf, self._pos = chunk, 0
            take = min(left, len(self._buf) - self._pos)
            self._pos += take
            self._offset += take
            left -= take

    def drain(self) -> bytes:
        """Read to the end; return up to 1 KiB of any non-zero data found (b"" if none)."""
        bad = b""
        rest = self._buf[self._pos :]
        self._buf, self._pos = b"", 0
        while True:
            if rest.strip(b"\0") and not bad:
                bad = rest.lstrip(b"\0")[:1024]
            self._offset += len(rest)
            rest = self._next()
            if not rest:
                return bad

    def result(self) -> LayerDigests:
        """Digests once the stream is drained."""
        if not self._eof:
            raise LayerError("internal error: layer digests asked before the end of the stream")
        return LayerDigests(
            digest="sha256:" + self._blob.hash.hexdigest(),
            size=self._blob.size,
            diff_id="sha256:" + self._diff.hexdigest(),
            diff_size=self._produced,
            compression=self._stored,
        )
