"""Pulled images against umoci's unpack of the same images from the same registry, as root:
every file's type, content, mode, owner, mtime and hardlinks. And an image with whiteouts,
an opaque directory and hardlinks made by umoci itself, mounted as overlayfs: the merged
view must be what umoci unpacks."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
from cellbox.runtime.pull import pull
from cellbox.runtime.settings import Settings

from tests.support import images
from tests.support.oci import diff_trees, tree_of
from tests.support.registry import RegistryServer


def run(*cmd: str | Path) -> None:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd}: {result.stdout}{result.stderr}"


def umoci_unpack(registry: RegistryServer, name: str, work: Path) -> Path:
    """skopeo copy from the registry to an OCI layout, then umoci unpack (as root)."""
    work.mkdir(parents=True, exist_ok=True)
    layout = work / "layout"
    run("skopeo", "copy", "--quiet", "--src-tls-verify=false",
        f"docker://{registry.host}/{name}", f"oci:{layout}:img")
    run("umoci", "unpack", "--image", f"{layout}:img", work / "bundle")
    return work / "bundle" / "rootfs"


def umoci_tree(registry: RegistryServer, name: str, digest: str, work: Path
               ) -> dict[str, tuple[object, ...]]:
    """:func:`tree_of` umoci's unpack of ``name``. The same bytes unpack the same way, so
    it is kept in the developer cache by manifest digest and umoci version: a second run
    compares with it without unpacking debian again."""
    version = subprocess.run(["umoci", "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    key = hashlib.sha256(f"{digest} {version}".encode()).hexdigest()[:24]
    cached = images.cache_dir() / "umoci-trees" / f"{key}.pickle"
    if cached.exists():
        tree: dict[str, tuple[object, ...]] = pickle.loads(cached.read_bytes())
        return tree
    tree = tree_of(umoci_unpack(registry, name, work))
    cached.parent.mkdir(parents=True, exist_ok=True)
    staged = cached.with_suffix(f".{os.getpid()}")
    staged.write_bytes(pickle.dumps(tree))
    staged.rename(cached)
    return tree


@pytest.mark.parametrize("name", ["library/busybox:latest", "library/debian:bookworm"])
def test_pulled_layers_match_umoci(registry: RegistryServer, tmp_path: Path, name: str) -> None:
    settings = Settings(root=tmp_path / "store")
    image = pull(f"{registry.host}/{name}", settings=settings)
    assert len(image.layers) == 1  # so the layer dir is the whole root file system
    expected = umoci_tree(registry, name, image.digest, tmp_path / "umoci")
    got = tree_of(image.layers[0].path)
    assert len(got) > 100
    assert diff_trees(got, expected) == []


@pytest.fixture
def whiteout_image(registry: RegistryServer, tmp_path: Path) -> str:
    """An image made with umoci: a base, a whiteout layer, an opaque replacement of a
    directory, and hardlinks; pushed to the registry."""
    layout = tmp_path / "wlayout"
    base = tmp_path / "base"
    for rel, text in {
        "etc/motd": "hello", "etc/keep": "kept", "data/a": "a", "data/b": "b",
        "data/sub/c": "c", "bin/tool": "tool",
    }.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)
    os.link(base / "bin/tool", base / "bin/tool-link")
    os.chown(base / "data/b", 1000, 1000)
    (base / "data/b").chmod(0o600)
    newdata = tmp_path / "newdata"
    (newdata / "fresh").mkdir(parents=True)
    (newdata / "fresh/file").write_text("fresh")
    os.link(newdata / "fresh/file", newdata / "fresh/link")
    img = f"{layout}:latest"
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", img)
    run("umoci", "insert", "--image", img, base, "/")
    run("umoci", "insert", "--image", img, "--whiteout", "/etc/motd")
    run("umoci", "insert", "--image", img, "--opaque", newdata, "/data")
    run("umoci", "config", "--image", img, "--config.cmd", "sh")
    registry.push(layout, "latest", "test/whiteouts:1")
    return "test/whiteouts:1"


def test_overlay_of_pulled_layers_is_umocis_unpack(
    registry: RegistryServer, tmp_path: Path, whiteout_image: str
) -> None:
    settings = Settings(root=tmp_path / "store")
    image = pull(f"{registry.host}/{whiteout_image}", settings=settings)
    assert len(image.layers) == 3
    merged = tmp_path / "merged"
    merged.mkdir()
    lower = ":".join(str(p) for p in image.lower_dirs())
    run("mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lower}", merged)
    try:
        got = tree_of(merged)
    finally:
        run("umount", merged)
    expected = tree_of(umoci_unpack(registry, whiteout_image, tmp_path / "umoci"))
    assert "etc/motd" not in got and "data/a" not in got and "data/sub" not in got
    assert "etc/keep" in got and "data/fresh/file" in got
    # The whiteout layer holds etc/.wh.motd but no etc/ entry, so the image gives etc/ no
    # mtime: ours is when that layer was applied, umoci's when it deleted motd. Both are
    # "now", a second apart when a second boundary falls in between; not compared.
    for tree in (got, expected):
        tree["etc"] = (*tree["etc"][:5], None, *tree["etc"][6:])
    assert diff_trees(got, expected) == []


def test_whiteout_and_opaque_are_stored_in_overlay_form(
    registry: RegistryServer, tmp_path: Path, whiteout_image: str
) -> None:
    image = pull(f"{registry.host}/{whiteout_image}", settings=Settings(root=tmp_path / "s"))
    whiteout = os.lstat(image.layers[1].path / "etc/motd")
    assert whiteout.st_rdev == 0 and (whiteout.st_mode & 0o170000) == 0o020000
    assert os.getxattr(image.layers[2].path / "data", "trusted.overlay.opaque") == b"y"
    shutil.rmtree(tmp_path / "s")
