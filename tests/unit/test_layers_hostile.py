"""Hostile layers: every escape and every bomb is refused, naming the entry, and nothing
is written outside the layer directory (checked by looking at the file system)."""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from pathlib import Path

import pytest
from cellbox.runtime.errors import LayerError, UnsafeLayer
from cellbox.runtime.layers import ApplyOptions, apply_layer

from tests.support.oci import Device, Dir, Entry, File, Hardlink, Raw, Symlink, tar_layer

ROOTLESS = ApplyOptions(rootless=True)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def refuse(
    entries: list[Entry], tmp_path: Path, needle: str, options: ApplyOptions = ROOTLESS
) -> UnsafeLayer:
    """Apply ``entries`` in tmp_path/jail/layer; assert UnsafeLayer naming ``needle`` and
    that nothing changed in tmp_path outside the layer dir."""
    (tmp_path / "jail").mkdir()
    (tmp_path / "outside").mkdir(exist_ok=True)
    before = tree(tmp_path)
    with pytest.raises(UnsafeLayer) as caught:
        apply_layer(io.BytesIO(tar_layer(entries)), tmp_path / "jail" / "layer", options)
    assert needle in str(caught.value)
    after = {p for p in tree(tmp_path) if not p.startswith("jail/layer")}
    assert after == before
    return caught.value


def test_dot_dot_traversal(tmp_path: Path) -> None:
    refuse([File("../../outside/x", b"pwned")], tmp_path, "../../outside/x")


def test_dot_dot_in_the_middle(tmp_path: Path) -> None:
    refuse([Dir("a"), File("a/../../../outside/x", b"pwned")], tmp_path, "a/../../../outside/x")


def test_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "outside" / "abs"
    err = refuse([File(str(target), b"pwned")], tmp_path, str(target))
    assert "absolute" in str(err)
    assert not target.exists()


def test_symlink_parent_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    err = refuse([Symlink("link", str(outside)), File("link/x", b"pwned")], tmp_path, "link/x")
    assert "symlink" in str(err)
    assert not (outside / "x").exists()


def test_relative_symlink_parent_escape(tmp_path: Path) -> None:
    refuse(
        [Symlink("up", "../../outside"), File("up/x", b"pwned")], tmp_path, "up/x"
    )
    assert not (tmp_path / "outside" / "x").exists()


def test_absolute_symlink_then_a_file_under_it(tmp_path: Path) -> None:
    # /etc here would be the host's /etc if anything followed the link
    name = f"cellbox-test-{uuid.uuid4().hex}"
    refuse([Symlink("etc", "/etc"), File(f"etc/{name}", b"pwned")], tmp_path, f"etc/{name}")
    assert not Path("/etc", name).exists()


def test_symlink_to_a_directory_inside_is_still_not_a_parent(tmp_path: Path) -> None:
    refuse([Dir("real"), Symlink("alias", "real"), File("alias/x")], tmp_path, "alias/x")


def test_hardlink_to_a_host_file(tmp_path: Path) -> None:
    err = refuse([Hardlink("shadow", "/etc/shadow")], tmp_path, "shadow")
    assert "absolute" in str(err)


def test_hardlink_out_of_the_layer_with_dot_dot(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    refuse([Hardlink("s", "../../secret")], tmp_path, "'s'")


def test_hardlink_to_a_path_not_yet_in_the_layer(tmp_path: Path) -> None:
    err = refuse([Hardlink("early", "later"), File("later")], tmp_path, "early")
    assert "not in this layer" in str(err)


def test_hardlink_through_a_symlinked_parent(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f").write_text("host file")
    refuse(
        [Symlink("out", str(tmp_path / "outside")), Hardlink("h", "out/f")], tmp_path, "'h'"
    )


def test_a_char_device_0_0_is_a_whiteout_in_disguise(tmp_path: Path) -> None:
    refuse([Device("fake", "chr", 0, 0)], tmp_path, "fake", ApplyOptions(rootless=False))


@pytest.mark.parametrize("name", [".wh.", "dir/.wh..", "dir/.wh...", ".wh..wh.plnk"])
def test_bad_whiteout_names(tmp_path: Path, name: str) -> None:
    refuse([File(name)], tmp_path, name)


def test_a_whiteout_used_as_a_directory(tmp_path: Path) -> None:
    refuse([File(".wh.dir/x")], tmp_path, ".wh.dir/x")


def test_a_file_header_over_the_size_cap_is_refused_before_reading(tmp_path: Path) -> None:
    # a header claiming 20 GiB: refused at once, without decompressing anything
    err = refuse([File("huge", size=20 << 30)], tmp_path, "huge")
    assert "cap" in str(err)


def test_a_decompression_bomb_stops_at_the_cap(tmp_path: Path) -> None:
    import gzip

    blob = gzip.compress(tar_layer([File("zeros", bytes(32 << 20))]), compresslevel=9)
    (tmp_path / "jail").mkdir()
    with pytest.raises(UnsafeLayer, match="zeros"):
        apply_layer(
            io.BytesIO(blob), tmp_path / "jail" / "layer",
            ApplyOptions(rootless=True, max_bytes=8 << 20),
        )


def test_too_many_entries(tmp_path: Path) -> None:
    entries: list[Entry] = [File(f"f{i}") for i in range(50)]
    (tmp_path / "jail").mkdir()
    with pytest.raises(UnsafeLayer, match="more than 20 entries"):
        apply_layer(
            io.BytesIO(tar_layer(entries)), tmp_path / "jail" / "layer",
            ApplyOptions(rootless=True, max_entries=20),
        )


def test_a_path_longer_than_path_max(tmp_path: Path) -> None:
    refuse([File("/".join(["d" * 200] * 25))], tmp_path, "dddd")


def test_a_component_longer_than_name_max(tmp_path: Path) -> None:
    refuse([File("x" * 300)], tmp_path, "xxxx")


def test_an_oversized_pax_header(tmp_path: Path) -> None:
    refuse([File("p", b"x", pax={"comment": "c" * (2 << 20)})], tmp_path, "extended header")


def test_gnu_sparse_files_are_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("sparse")
    info.type = tarfile.GNUTYPE_SPARSE
    buf = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    (tmp_path / "jail").mkdir()
    blob = bytes(buf) + bytes(1024)
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(blob), tmp_path / "jail" / "layer", ROOTLESS)


def test_a_nul_in_a_pax_path(tmp_path: Path) -> None:
    refuse([File("ok", pax={"path": "evil\0name"})], tmp_path, "NUL")


def test_an_owner_out_of_range(tmp_path: Path) -> None:
    refuse([File("o", pax={"uid": str(1 << 40)})], tmp_path, "owner",
           ApplyOptions(rootless=False))


def test_unknown_entry_types(tmp_path: Path) -> None:
    info = tarfile.TarInfo("weird")
    info.type = b"V"  # a volume label
    refuse([Raw(info)], tmp_path, "weird")


def test_nothing_is_left_open(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    for i, entries in enumerate(
        [[File("../x")], [Symlink("l", "/"), File("l/x")], [Hardlink("h", "nope")]]
    ):
        (tmp_path / str(i)).mkdir()
        with pytest.raises(UnsafeLayer):
            apply_layer(io.BytesIO(tar_layer(entries)), tmp_path / str(i) / "l", ROOTLESS)
    assert set(os.listdir("/proc/self/fd")) == before
