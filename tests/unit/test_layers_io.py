"""The one-pass layer stream: compression by magic bytes, digests, caps, recompression."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard
from cellbox.runtime.errors import LayerError, UnsafeLayer
from cellbox.runtime.layerio import LayerReader, detect_compression, iter_file

from tests.support.oci import File, tar_layer


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chunks(data: bytes, size: int = 4093) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.fixture(scope="module")
def tar() -> bytes:
    return tar_layer([File("a", os.urandom(300_000)), File("b/c", b"x" * 5000)])


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd"),
        (b"./etc/passwd\x00", "none"),
        (b"", "none"),
    ],
)
def test_compression_is_told_by_magic_bytes(head: bytes, kind: str) -> None:
    assert detect_compression(head) == kind


@pytest.mark.parametrize(("head", "name"), [(b"\xfd7zXZ\x00", "xz"), (b"BZh91AY", "bzip2")])
def test_compressions_oci_does_not_use_are_refused_by_name(head: bytes, name: str) -> None:
    with pytest.raises(LayerError, match=name):
        detect_compression(head)


def _read_all(reader: LayerReader) -> bytes:
    out = []
    while data := reader.read(7777):
        out.append(data)
    return b"".join(out)


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd"])
def test_one_pass_gives_the_tar_the_blob_and_both_digests(
    tar: bytes, kind: str, tmp_path: Path
) -> None:
    blob = {
        "none": tar,
        "gzip": gzip.compress(tar),
        "zstd": zstandard.ZstdCompressor().compress(tar),
    }[kind]
    seen: list[int] = []
    fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        reader = LayerReader(chunks(blob), blob_fd=fd, progress=seen.append)
        assert reader.compression == kind
        out = _read_all(reader)
    finally:
        os.close(fd)
    result = reader.result()
    assert out == tar
    assert (tmp_path / "blob").read_bytes() == blob
    assert result.digest == sha(blob) and result.size == len(blob)
    assert result.diff_id == sha(tar) and result.diff_size == len(tar)
    assert seen[-1] == len(blob)


def test_gzip_members_and_zstd_frames_are_read_one_after_another(tar: bytes) -> None:
    half = len(tar) // 2
    for blob in (
        gzip.compress(tar[:half]) + gzip.compress(tar[half:]),
        zstandard.ZstdCompressor().compress(tar[:half])
        + zstandard.ZstdCompressor().compress(tar[half:]),
    ):
        assert _read_all(LayerReader(chunks(blob))) == tar


def test_truncated_gzip_is_an_error(tar: bytes) -> None:
    blob = gzip.compress(tar)[:-100]
    with pytest.raises(LayerError, match="truncated"):
        _read_all(LayerReader(chunks(blob)))


def test_garbage_after_gzip_is_an_error(tar: bytes) -> None:
    blob = gzip.compress(tar) + b"garbage!"
    with pytest.raises(LayerError, match="corrupt gzip"):
        _read_all(LayerReader(chunks(blob)))


def test_the_uncompressed_size_is_capped_while_streaming() -> None:
    bomb = gzip.compress(bytes(50 << 20), compresslevel=9)  # 50 MiB of zeros in ~50 KiB
    reader = LayerReader(chunks(bomb), max_bytes=10 << 20)
    with pytest.raises(UnsafeLayer, match="more than 10485760 bytes"):
        _read_all(reader)


def test_plain_tar_is_recompressed_deterministically(tar: bytes) -> None:
    results = []
    for _ in range(2):
        reader = LayerReader(iter_file(io.BytesIO(tar)), compress="gzip")
        reader.drain()
        results.append(reader.result())
    assert results[0] == results[1]
    assert results[0].compression == "gzip" and results[0].diff_id == sha(tar)


def test_recompressed_blob_is_the_zstd_of_the_tar(tar: bytes, tmp_path: Path) -> None:
    fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        reader = LayerReader([tar], blob_fd=fd, compress="zstd")
        reader.drain()
    finally:
        os.close(fd)
    stored = (tmp_path / "blob").read_bytes()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored) == tar
    assert reader.result().digest == sha(stored)


def test_a_compressed_input_is_stored_as_it_came(tar: bytes) -> None:
    blob = gzip.compress(tar)
    reader = LayerReader([blob], compress="zstd")
    reader.drain()
    assert reader.result().digest == sha(blob)
    assert reader.result().compression == "gzip"


def test_tarfile_reads_the_stream_like_a_file(tar: bytes) -> None:
    reader = LayerReader(chunks(gzip.compress(tar), 100))
    archive = tarfile.TarFile(fileobj=reader, mode="r")  # type: ignore[arg-type]
    names = []
    while (info := archive.next()) is not None:
        names.append(info.name)
    assert names == ["a", "b/c"]
    assert reader.drain() == b""
    assert reader.result().diff_id == sha(tar)


def test_check_can_abort_the_stream(tar: bytes) -> None:
    class Stop(Exception):
        pass

    def check() -> None:
        raise Stop

    reader = LayerReader(chunks(tar), check=check)
    with pytest.raises(Stop):
        _read_all(reader)
