"""What apply_layer makes of ordinary layers (rootless rules: no chown, no device nodes).

The root-only parts (ownership, setuid, devices, trusted.* xattrs) are in
tests/privileged/test_layers_root.py.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from cellbox.runtime.errors import LayerError
from cellbox.runtime.layers import ApplyOptions, LayerStats, apply_layer

from tests.support.oci import MTIME, Device, Dir, Entry, File, Hardlink, Raw, Symlink, tar_layer

ROOTLESS = ApplyOptions(rootless=True)


def apply(entries: list[Entry], dest: Path, options: ApplyOptions = ROOTLESS) -> LayerStats:
    return apply_layer(io.BytesIO(tar_layer(entries)), dest, options)


def test_files_dirs_and_symlinks_keep_content_mode_and_mtime(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    stats = apply(
        [
            Dir("usr", mode=0o755, mtime=MTIME + 1),
            Dir("usr/bin", mode=0o750),
            File("usr/bin/tool", b"#!/bin/sh\necho hi\n", mode=0o755, mtime=MTIME + 2),
            File("etc/config", b"x=1\n", mode=0o600),
            Symlink("bin", "usr/bin"),
            Symlink("etc/abs", "/etc/passwd"),
        ],
        dest,
    )
    assert (dest / "usr/bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((dest / "usr/bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "etc/config").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "usr/bin").stat().st_mode) == 0o750
    assert (dest / "usr/bin/tool").stat().st_mtime == MTIME + 2
    # directory mtimes are set last, so creating their entries does not change them
    assert (dest / "usr").stat().st_mtime == MTIME + 1
    assert os.readlink(dest / "bin") == "usr/bin"
    assert os.readlink(dest / "etc/abs") == "/etc/passwd"  # stored, never followed
    assert os.lstat(dest / "bin").st_mtime == MTIME
    # implicit parent dirs are made 0755, like Docker
    assert stat.S_IMODE((dest / "etc").stat().st_mode) == 0o755
    assert stats.content_bytes == len(b"#!/bin/sh\necho hi\n") + 4


def test_gzip_and_zstd_files_are_recognised(tmp_path: Path) -> None:
    import zstandard

    tar = tar_layer([File("a", b"A")])
    for name, blob in (("g", gzip.compress(tar)), ("z", zstandard.ZstdCompressor().compress(tar))):
        apply_layer(io.BytesIO(blob), tmp_path / name, ROOTLESS)
        assert (tmp_path / name / "a").read_bytes() == b"A"


def test_a_read_only_directory_can_still_be_filled(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply([Dir("ro", mode=0o555), File("ro/inside", b"ok")], dest)
    assert (dest / "ro/inside").read_bytes() == b"ok"
    assert stat.S_IMODE((dest / "ro").stat().st_mode) == 0o555


def test_hardlinks_within_the_layer_share_the_inode(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply([File("a/orig", b"same"), Hardlink("b/link", "a/orig")], dest)
    assert (dest / "b/link").read_bytes() == b"same"
    assert os.stat(dest / "b/link").st_ino == os.stat(dest / "a/orig").st_ino


def test_whiteouts_become_char_devices_0_0(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply([Dir("etc"), File("etc/.wh.motd"), File(".wh.tmp")], dest)
    for path in (dest / "etc/motd", dest / "tmp"):
        st = os.lstat(path)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (dest / "etc/.wh.motd").exists()


def test_opaque_dirs_get_the_overlay_xattr(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply([Dir("var/cache"), File("var/cache/.wh..wh..opq"), File("var/cache/new", b"n")], dest)
    assert os.getxattr(dest / "var/cache", "user.overlay.opaque") == b"y"
    assert not (dest / "var/cache/.wh..wh..opq").exists()
    assert (dest / "var/cache/new").read_bytes() == b"n"


def test_later_entries_win(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply(
        [
            File("f", b"first"),
            File("f", b"second"),
            Dir("d"),
            File("d/kept", b"k"),
            Dir("d", mode=0o700),  # a directory over a directory keeps its contents
            Dir("gone"),
            File("gone/x"),
            File("gone", b"now a file"),
            Symlink("s", "nowhere"),
            Dir("s"),
            File(".wh.w"),
            File("w", b"back"),
        ],
        dest,
    )
    assert (dest / "f").read_bytes() == b"second"
    assert (dest / "d/kept").read_bytes() == b"k"
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o700
    assert (dest / "gone").read_bytes() == b"now a file"
    assert (dest / "s").is_dir() and not (dest / "s").is_symlink()
    assert (dest / "w").read_bytes() == b"back"


def test_user_xattrs_are_kept_but_not_trusted_or_overlay_ones(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    stats = apply(
        [
            File("f", b"x", pax={
                "SCHILY.xattr.user.note": "hello",
                "SCHILY.xattr.trusted.overlay.opaque": "y",
                "SCHILY.xattr.user.overlay.whiteout": "y",
                "SCHILY.xattr.security.selinux": "system_u:object_r:etc_t",
            }),
            Dir("d", pax={"SCHILY.xattr.user.overlay.opaque": "y"}),
        ],
        dest,
    )
    assert os.getxattr(dest / "f", "user.note") == b"hello"
    assert os.listxattr(dest / "f") == ["user.note"]
    assert os.listxattr(dest / "d") == []
    assert any("trusted.overlay.opaque" in s for s in stats.skipped)


def test_rootless_strips_setuid_and_skips_device_nodes(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    stats = apply(
        [File("su", b"x", mode=0o4755), Device("dev/null", "chr", 1, 3), Device("p", "fifo")],
        dest,
    )
    assert stat.S_IMODE((dest / "su").stat().st_mode) == 0o755
    assert not (dest / "dev/null").exists()
    assert stat.S_ISFIFO(os.lstat(dest / "p").st_mode)
    assert any("dev/null" in s for s in stats.skipped)


def test_the_root_entry_sets_the_layer_roots_mode(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply([Dir(".", mode=0o700), File("a")], dest)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700


def test_the_destination_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "old").touch()
    with pytest.raises(LayerError, match="not empty"):
        apply([File("a")], tmp_path / "layer")


def test_not_a_tar_is_a_layer_error(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="not a valid tar"):
        apply_layer(io.BytesIO(b"this is not a tar archive" * 100), tmp_path / "l", ROOTLESS)


def test_data_after_the_end_of_the_archive_is_refused(tmp_path: Path) -> None:
    blob = tar_layer([File("a", b"A")]) + b"trailing data hidden from the tar"
    with pytest.raises(LayerError, match="after its end-of-archive"):
        apply_layer(io.BytesIO(blob), tmp_path / "l", ROOTLESS)


def test_a_truncated_file_is_an_error(tmp_path: Path) -> None:
    blob = tar_layer([File("big", b"y" * 10000)])[:4096]
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(blob), tmp_path / "l", ROOTLESS)


def test_long_gnu_names_and_pax_paths_work(tmp_path: Path) -> None:
    long_name = "d/" + "n" * 200 + "/" + "f" * 200
    info = tarfile.TarInfo("x" * 120 + "/y")
    info.size = 1
    dest = tmp_path / "layer"
    apply([File(long_name, b"L"), Raw(info, b"Y")], dest)
    assert (dest / long_name).read_bytes() == b"L"
    assert (dest / ("x" * 120) / "y").read_bytes() == b"Y"


def test_a_tar_without_end_blocks_or_padding_is_complete(tmp_path: Path) -> None:
    # what Go's tar.Writer gives without Close(), as umoci writes layers
    info = tarfile.TarInfo("etc/motd")
    info.size = 3
    blob = info.tobuf(tarfile.USTAR_FORMAT) + b"hi\n"
    apply_layer(io.BytesIO(blob), tmp_path / "l", ROOTLESS)
    assert (tmp_path / "l/etc/motd").read_bytes() == b"hi\n"


@pytest.mark.parametrize("blob", [b"", gzip.compress(b""), bytes(1024)],
                         ids=["nothing", "empty-gzip", "zero-blocks"])
def test_an_empty_layer_is_an_empty_directory(tmp_path: Path, blob: bytes) -> None:
    stats = apply_layer(io.BytesIO(blob), tmp_path / "l", ROOTLESS)
    assert stats.entries == 0 and list((tmp_path / "l").iterdir()) == []


def test_a_short_garbage_stream_is_not_an_empty_layer(tmp_path: Path) -> None:
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(b"garbage" * 10), tmp_path / "l", ROOTLESS)
