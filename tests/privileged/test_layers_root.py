"""apply_layer as root: ownership, setuid, device nodes, file capabilities, opaque dirs in
overlayfs' trusted.* form, and no trusted.* xattr ever taken from an image."""

from __future__ import annotations

import io
import os
import stat
import struct
from pathlib import Path

import pytest
from cellbox.runtime.errors import UnsafeLayer
from cellbox.runtime.layers import ApplyOptions, apply_layer

from tests.support.oci import Device, Dir, Entry, File, Symlink, tar_layer

ROOT = ApplyOptions(rootless=False)


def apply(entries: list[Entry], dest: Path) -> None:
    apply_layer(io.BytesIO(tar_layer(entries)), dest, ROOT)


def test_owners_and_setuid_are_kept(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply(
        [
            Dir("home/user", uid=1000, gid=1000, mode=0o750),
            File("home/user/notes", b"n", uid=1000, gid=100, mode=0o640),
            File("usr/bin/su", b"su", mode=0o4755),
            File("usr/bin/wall", b"w", gid=5, mode=0o2755),
            Symlink("home/user/link", "notes"),
        ],
        dest,
    )
    st = os.stat(dest / "home/user")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o750)
    st = os.stat(dest / "home/user/notes")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 100, 0o640)
    assert stat.S_IMODE(os.stat(dest / "usr/bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(dest / "usr/bin/wall").st_mode) == 0o2755
    assert os.stat(dest / "usr/bin/wall").st_gid == 5
    assert os.lstat(dest / "home/user/link").st_uid == 0


def test_device_nodes_and_fifos_are_made(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply([Device("dev/null", "chr", 1, 3, 0o666), Device("dev/loop9", "blk", 7, 9, 0o660),
           Device("run/pipe", "fifo", mode=0o620)], dest)
    null = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(dest / "dev/loop9")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 9)
    pipe = os.lstat(dest / "run/pipe")
    assert stat.S_ISFIFO(pipe.st_mode) and stat.S_IMODE(pipe.st_mode) == 0o620


def test_a_device_0_0_is_refused_even_as_root(tmp_path: Path) -> None:
    with pytest.raises(UnsafeLayer, match="whiteout"):
        apply([Device("dev/fake", "chr", 0, 0)], tmp_path / "layer")


def test_opaque_dirs_use_trusted_xattrs_and_images_cannot_set_them(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    apply(
        [
            Dir("opq"),
            File("opq/.wh..wh..opq"),
            Dir("sneaky", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"}),
            File("redirect", pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"}),
        ],
        dest,
    )
    assert os.getxattr(dest / "opq", "trusted.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "sneaky")
    assert os.listxattr(dest / "redirect") == []


def test_file_capabilities_are_kept(tmp_path: Path) -> None:
    # vfs_cap_data v2: CAP_NET_RAW (13) permitted + effective
    caps = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
    value = caps.decode("utf-8", "surrogateescape")
    dest = tmp_path / "layer"
    apply([File("bin/ping", b"ping", mode=0o755,
                pax={"SCHILY.xattr.security.capability": value})], dest)
    assert os.getxattr(dest / "bin/ping", "security.capability") == caps
