"""pull against the real registry: hand-made zstd and hostile images pushed with skopeo."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from cellbox.runtime.errors import ImageNotFound, UnsafeLayer
from cellbox.runtime.pull import pull
from cellbox.runtime.settings import Settings

from tests.support.oci import (
    Device,
    Dir,
    Entry,
    File,
    Hardlink,
    OciLayout,
    Symlink,
    gzip_zeros,
    tar_layer,
)
from tests.support.registry import RegistryServer

MARK = f"cellbox-escape-{uuid.uuid4().hex[:12]}"
DEEP = "../" * 12


def store_files(root: Path) -> list[str]:
    """What a user could see in the store: files and layer dirs, not tmp/ or locks/."""
    if not root.exists():
        return []
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in ("tmp", "locks"):
            continue
        if not path.is_dir() or rel.parent == Path("layers"):
            found.append(str(rel))
    return sorted(found)


def host_untouched() -> None:
    for path in (Path("/tmp", MARK), Path("/etc", MARK), Path("/", MARK),
                 Path("/var/tmp", MARK)):
        assert not path.exists(), f"a hostile layer wrote {path} on the host"


def push(registry: RegistryServer, tmp_path: Path, name: str, layers: list[bytes],
         **kwargs: object) -> str:
    layout = OciLayout(tmp_path / f"layout-{name.replace('/', '-')}")
    layout.add_image("1", layers, **kwargs)  # type: ignore[arg-type]
    registry.push(layout.path, "1", f"{name}:1")
    return f"{registry.host}/{name}:1"


def test_zstd_plain_and_gzip_layers(registry: RegistryServer, tmp_path: Path) -> None:
    layers = [
        tar_layer([Dir("etc"), File("etc/one", b"zstd layer")]),
        tar_layer([File("etc/two", b"plain layer")]),  # skopeo gzips it on the way
        tar_layer([File("etc/three", b"gzip layer"), File(".wh.gone")]),
    ]
    ref = push(registry, tmp_path, "test/mixed", layers, compression=["zstd", "none", "gzip"])
    root = tmp_path / "store"
    image = pull(ref, settings=Settings(root=root))
    assert image.layers[0].media_type.endswith("tar+zstd")
    blob = root / "blobs/sha256" / image.layers[0].digest[7:]
    assert blob.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # stored as it came
    for layer, (name, text) in zip(image.layers, [
        ("etc/one", b"zstd layer"), ("etc/two", b"plain layer"), ("etc/three", b"gzip layer"),
    ], strict=True):
        assert (layer.path / name).read_bytes() == text
    assert (image.layers[2].path / "gone").lstat().st_rdev == 0


HOSTILE: dict[str, tuple[list[Entry], str]] = {
    "traversal": ([File(f"{DEEP}tmp/{MARK}", b"pwned")], f"{DEEP}tmp/{MARK}"),
    "absolute": ([File(f"/tmp/{MARK}", b"pwned")], f"/tmp/{MARK}"),
    "symlink-parent": (
        [Symlink("up", f"{DEEP}tmp"), File(f"up/{MARK}", b"pwned")], f"up/{MARK}"),
    "absolute-symlink": (
        [Symlink("etc", "/etc"), File(f"etc/{MARK}", b"pwned")], f"etc/{MARK}"),
    "hardlink-shadow": ([Hardlink("shadow", "/etc/shadow")], "shadow"),
    "hardlink-dotdot": ([Hardlink("shadow", f"{DEEP}etc/shadow")], "shadow"),
    "device-whiteout": ([Device("dev/fake", "chr", 0, 0)], "dev/fake"),
    "size-claim": ([File("huge", size=20 << 30)], "huge"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layers_are_refused(registry: RegistryServer, tmp_path: Path, case: str) -> None:
    entries, entry = HOSTILE[case]
    good = tar_layer([File("bin/ok", b"a good base layer")])
    ref = push(registry, tmp_path, f"hostile/{case}", [good, tar_layer(entries)])
    shadow_links = os.stat("/etc/shadow").st_nlink
    root = tmp_path / "store"
    with pytest.raises(UnsafeLayer) as caught:
        pull(ref, settings=Settings(root=root))
    assert entry in str(caught.value)
    assert store_files(root) == []
    host_untouched()
    assert os.stat("/etc/shadow").st_nlink == shadow_links


def test_a_decompression_bomb_stops_at_the_cap(registry: RegistryServer, tmp_path: Path) -> None:
    blob, diff_id = gzip_zeros("bomb", 256 << 20)  # 256 MiB of zeros in ~250 KiB
    layout = OciLayout(tmp_path / "bomb")
    layout.add_image("1", [], blobs=[(blob, diff_id)])
    registry.push(layout.path, "1", "hostile/bomb:1")
    root = tmp_path / "store"
    settings = Settings(root=root, layer_max_bytes=64 << 20)
    with pytest.raises(UnsafeLayer, match="bomb"):
        pull(f"{registry.host}/hostile/bomb:1", settings=settings)
    assert store_files(root) == []
    assert not any((root / "tmp").iterdir())


def test_unknown_image_and_tag(registry: RegistryServer, tmp_path: Path) -> None:
    settings = Settings(root=tmp_path / "store")
    with pytest.raises(ImageNotFound, match="nosuch"):
        pull(f"{registry.host}/library/nosuch:1", settings=settings)
    with pytest.raises(ImageNotFound, match="no-such-tag"):
        pull(f"{registry.host}/library/busybox:no-such-tag", settings=settings)
    assert store_files(tmp_path / "store") == []
