"""A small writer of OCI image layouts with hand-made layers, for the layer and pull tests.

Real tools refuse to make the layers the tests need (hostile paths, devices, zstd, odd
whiteouts), so this module writes the tar entries itself with :mod:`tarfile` and the
layout by hand (oci-layout, index.json, blobs/sha256/...). ``skopeo copy`` then pushes the
layout to the test registry, byte for byte.

    layer = tar_layer([File("etc/x", b"hi"), Symlink("lib", "usr/lib")])
    layout = OciLayout(tmp / "hostile")
    layout.add_image("latest", [layer], compression="gzip")
    registry.push(layout.path, "latest", "evil/image:latest")
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Device",
    "Dir",
    "Entry",
    "File",
    "Hardlink",
    "OciLayout",
    "Raw",
    "Symlink",
    "compress",
    "diff_trees",
    "gzip_zeros",
    "tar_layer",
    "tree_of",
]

Compression = Literal["gzip", "zstd", "none"]
MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
MTIME = 1_600_000_000


@dataclass(frozen=True)
class File:
    name: str
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = MTIME
    pax: dict[str, str] = field(default_factory=dict)
    size: int | None = None  # claimed size, when it should differ from len(data)


@dataclass(frozen=True)
class Dir:
    name: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    mtime: int = MTIME
    pax: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Symlink:
    name: str
    target: str
    mtime: int = MTIME


@dataclass(frozen=True)
class Hardlink:
    name: str
    target: str


@dataclass(frozen=True)
class Device:
    name: str
    kind: Literal["chr", "blk", "fifo"] = "chr"
    major: int = 1
    minor: int = 3
    mode: int = 0o666


@dataclass(frozen=True)
class Raw:
    """A TarInfo as given, with optional data (for entries nothing else can make)."""

    info: tarfile.TarInfo
    data: bytes = b""


Entry = File | Dir | Symlink | Hardlink | Device | Raw


def _info(entry: Entry) -> tuple[tarfile.TarInfo, bytes]:
    if isinstance(entry, Raw):
        return entry.info, entry.data
    info = tarfile.TarInfo(entry.name)
    data = b""
    if isinstance(entry, File):
        info.size = len(entry.data) if entry.size is None else entry.size
        info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, entry.mtime
        info.pax_headers = dict(entry.pax)
        data = entry.data
    elif isinstance(entry, Dir):
        info.type = tarfile.DIRTYPE
        info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, entry.mtime
        info.pax_headers = dict(entry.pax)
    elif isinstance(entry, Symlink):
        info.type, info.linkname, info.mtime = tarfile.SYMTYPE, entry.target, entry.mtime
        info.mode = 0o777
    elif isinstance(entry, Hardlink):
        info.type, info.linkname = tarfile.LNKTYPE, entry.target
    else:
        info.type = {"chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
                     "fifo": tarfile.FIFOTYPE}[entry.kind]
        info.devmajor, info.devminor, info.mode = entry.major, entry.minor, entry.mode
    return info, data


def tar_layer(entries: Iterable[Entry]) -> bytes:
    """An uncompressed layer tar (PAX format) of ``entries``, in order, names verbatim."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info, data = _info(entry)
            if info.isreg() and info.size != len(data):
                # A header that claims more than follows: write the header only.
                header = info.tobuf(tar.format, tar.encoding, tar.errors)
                tar.fileobj.write(header)
                tar.offset += len(header)
                continue
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def compress(tar: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        return gzip.compress(tar, mtime=0)
    if compression == "zstd":
        import zstandard

        return bytes(zstandard.ZstdCompressor().compress(tar))
    return tar


def gzip_zeros(name: str, size: int) -> tuple[bytes, str]:
    """A gzip layer holding one file of ``size`` zero bytes, made in constant memory.

    Returns (blob, diff_id): a decompression bomb when ``size`` is large.
    """
    info = tarfile.TarInfo(name)
    info.size = size
    diff = hashlib.sha256()
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = []

    def feed(data: bytes) -> None:
        diff.update(data)
        parts.append(comp.compress(data))

    feed(info.tobuf(tarfile.PAX_FORMAT))
    block = bytes(1 << 20)
    left = size
    while left:
        take = min(left, len(block))
        feed(block[:take])
        left -= take
    feed(bytes(-size % 512 + 1024))
    parts.append(comp.flush())
    return b"".join(parts), "sha256:" + diff.hexdigest()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class OciLayout:
    """An OCI image layout directory that images are added to."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        if not (self.path / "index.json").exists():
            self._write_index([])

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": manifests}
        (self.path / "index.json").write_text(json.dumps(index))

    def blob(self, data: bytes) -> str:
        digest = _digest(data)
        (self.path / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return digest

    def add_image(
        self,
        tag: str,
        layers: Sequence[bytes],
        *,
        compression: Compression | Sequence[Compression] = "gzip",
        blobs: Sequence[tuple[bytes, str]] | None = None,
        history: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
        media_types: Sequence[str] | None = None,
    ) -> str:
        """Add an image of ``layers`` (plain tars, bottom first) as ``tag``; return the
        manifest digest. ``blobs`` gives ready (blob, diff_id) pairs first; ``media_types``
        overrides what the manifest claims (to test that nobody believes it)."""
        kinds = [compression] * len(layers) if isinstance(compression, str) else compression
        pairs = list(blobs or [])
        pairs += [(compress(t, k), _digest(t)) for t, k in zip(layers, kinds, strict=True)]
        descriptors = []
        for (blob, _), kind in zip(pairs, [*(["gzip"] * len(blobs or [])), *kinds],
                                   strict=True):
            descriptors.append({"mediaType": MEDIA[kind], "digest": self.blob(blob),
                                "size": len(blob)})
        for descriptor, media_type in zip(descriptors, media_types or [], strict=False):
            descriptor["mediaType"] = media_type
        image_config = {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in pairs]},
            "history": history
            or [{"created": "2024-01-02T03:04:05Z", "created_by": f"layer {i}"}
                for i in range(len(pairs))],
            **(config or {}),
        }
        raw_config = json.dumps(image_config).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": self.blob(raw_config), "size": len(raw_config)},
            "layers": descriptors,
        }
        raw_manifest = json.dumps(manifest).encode()
        digest = self.blob(raw_manifest)
        index = json.loads((self.path / "index.json").read_text())
        entries = [m for m in index["manifests"]
                   if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
        entries.append({"mediaType": manifest["mediaType"], "digest": digest,
                        "size": len(raw_manifest),
                        "annotations": {"org.opencontainers.image.ref.name": tag}})
        self._write_index(entries)
        return digest


def tree_of(root: Path, *, mtimes: bool = True) -> dict[str, tuple[object, ...]]:
    """What a user would see of the tree at ``root``: per path its type, mode, owner,
    content (sha256 of files, target of symlinks, device numbers), mtime, user xattrs and
    the other names of its inode. Used to compare unpacked images with umoci's."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content: object = hashlib.sha256(f.read()).hexdigest()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                content = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                content = None
            xattrs: tuple[tuple[str, bytes], ...] = ()
            if not stat.S_ISLNK(st.st_mode) and (
                stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
            ):
                xattrs = tuple(sorted(
                    (a, os.getxattr(path, a, follow_symlinks=False))
                    for a in os.listxattr(path, follow_symlinks=False)
                    if a.startswith(("user.", "security.capability"))
                ))
            mtime = int(st.st_mtime) if mtimes and not stat.S_ISLNK(st.st_mode) else None
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, content, mtime,
                        xattrs)
    for names in inodes.values():
        for rel in names:
            out[rel] += (tuple(sorted(names)),)
    return out


def diff_trees(
    left: dict[str, tuple[object, ...]], right: dict[str, tuple[object, ...]]
) -> list[str]:
    """Human-readable differences between two :func:`tree_of` results (empty if equal)."""
    lines = []
    for rel in sorted(set(left) | set(right)):
        a, b = left.get(rel), right.get(rel)
        if a != b:
            lines.append(f"{rel}: {a} != {b}")
    return lines
