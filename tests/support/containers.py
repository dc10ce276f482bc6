"""Helpers for the container tests and benchmarks: a store root holding the test images.

``unpack_store(root, names)`` applies the layers of the OCI layouts that
tests/support/images.py builds (busybox, debian) into ``root/layers/<chain id>/diff`` with
the runtime's own safe layer applier, and returns :class:`cellbox.runtime.images.Image`
objects for them — the same shape the store gives, without going through a registry. It
is what the container tests use when they need an image but do not test pulling.
``store_image(root, name)`` puts a test image into the real store (images.json and all),
as ``cellbox pull`` would, without a registry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cellbox.runtime.container import Container
from cellbox.runtime.errors import CellboxError
from cellbox.runtime.images import Image, Layer, chain_ids
from cellbox.runtime.layers import apply_layer
from cellbox.runtime.settings import Settings

from . import images

__all__ = [
    "cellbox",
    "cellbox_env",
    "container_images",
    "layout_image",
    "store_image",
    "stored_copy",
    "unpack_store",
    "wait_for",
]


def _blob(layout: Path, digest: str) -> Path:
    algo, _, hexd = digest.partition(":")
    return layout / "blobs" / algo / hexd


def _manifest(layout: Path, tag: str) -> tuple[str, dict[str, Any]]:
    index = json.loads((layout / "index.json").read_text())
    for entry in index["manifests"]:
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return entry["digest"], dict(json.loads(_blob(layout, entry["digest"]).read_text()))
    raise KeyError(f"{layout} has no tag {tag}")


def layout_image(root: Path, name: str) -> Image:
    """The test image ``name`` with its layers unpacked under ``root/layers``."""
    test_image = images.IMAGES[name]
    layout = images.layout(name)
    manifest_digest, manifest = _manifest(layout, test_image.tag)
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
    diff_ids = config["rootfs"]["diff_ids"]
    layers = []
    for descriptor, diff_id, chain in zip(manifest["layers"], diff_ids, chain_ids(diff_ids),
                                          strict=True):
        directory = root / "layers" / chain.removeprefix("sha256:")
        if not (directory / "diff").is_dir():
            staging = root / "layers" / f".tmp-{chain.removeprefix('sha256:')}-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            (staging / "diff").mkdir(parents=True)
            with open(_blob(layout, descriptor["digest"]), "rb") as f:
                apply_layer(f, staging / "diff")
            staging.rename(directory)
        layers.append(Layer(descriptor["digest"], diff_id, chain, descriptor["size"],
                            directory / "diff"))
    return Image(f"docker.io/library/{name}:{test_image.tag}", manifest_digest,
                 config, tuple(layers), config_digest=manifest["config"]["digest"])


def unpack_store(root: Path, names: tuple[str, ...] = ("busybox",)) -> dict[str, Image]:
    """Every test image in ``names`` unpacked under ``root``."""
    return {name: layout_image(root, name) for name in names}


def store_image(root: Path, name: str) -> Image:
    """The test image ``name`` added to the real store under ``root`` (no registry needed).

    The layer blobs of the OCI layout go through ``Store.add_layer`` (stored as they are,
    applied safely) and the config through ``Store.add_image``, under the name
    ``docker.io/library/<name>:<tag>`` — what ``cellbox pull <name>`` would have stored.
    """
    from cellbox.runtime.store import Store

    store = Store(root)
    test_image = images.IMAGES[name]
    reference = f"docker.io/library/{name}:{test_image.tag}"
    found = store.find_image(reference)
    if found is not None:
        return found
    layout = images.layout(name)
    _, manifest = _manifest(layout, test_image.tag)
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
    layers: list[Layer] = []
    for descriptor in manifest["layers"]:
        with open(_blob(layout, descriptor["digest"]), "rb") as f:
            layers.append(store.add_layer(f, layers[-1].chain_id if layers else None, "gzip"))
    image = store.add_image(reference, config, layers)
    if test_image.tag != "latest":  # like the session registry: debian is also :latest
        store.tag(reference, f"docker.io/library/{name}:latest")
    return image


# ---------------------------------------------------------------------------- fixtures
# Import these into a test module (``from tests.support.containers import ...``) to use them.

VENV_PYTHON = Path(sys.executable)


def _stored_template(names: tuple[str, ...]) -> Path:
    """A store holding the test images ``names``, made by :func:`store_image` once and
    kept in the developer cache, named after the images' recipes and the runtime's source
    (a change to either makes a new one, and the old one goes).

    Storing debian costs a session (an xdist worker) about 6 s of CPU; a copy of this
    template made of hard links, well under one. Readers hold a shared lock, the one
    making a template an exclusive one.
    """
    import cellbox.runtime

    digest = hashlib.sha256()
    for name in names:
        digest.update(images.IMAGES[name].recipe.encode())
    for source in sorted(Path(cellbox.runtime.__file__).parent.rglob("*.py")):
        digest.update(source.read_bytes())
    base = images.cache_dir() / "stores" / "+".join(names)
    out = base / digest.hexdigest()[:16]
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for old in base.iterdir():  # older templates, and what a killed maker left
            if old.is_dir() and old != out:
                shutil.rmtree(old)
        if not (out / "images.json").exists():
            staging = Path(tempfile.mkdtemp(dir=base, prefix=".making-"))
            for name in names:
                store_image(staging, name)
            staging.rename(out)
    return out


def stored_copy(root: Path, names: tuple[str, ...]) -> Path:
    """A store at ``root`` (which must not exist) holding the test images ``names``: a
    copy, in hard links, of the developer cache's template (:func:`_stored_template`)."""
    template = _stored_template(names)
    with open(template.parent / ".lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        done = subprocess.run(["cp", "-al", str(template), str(root)], capture_output=True,
                              text=True)
    if done.returncode != 0:  # another file system than the cache's: store them here
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for name in names:
            store_image(root, name)
    return root


@pytest.fixture(scope="session")
def container_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store root holding busybox and debian, shared by the session (read-only use);
    removed when the session ends."""
    root = stored_copy(tmp_path_factory.mktemp("container-images") / "store",
                       ("busybox", "debian"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cellbox_env(container_images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[Settings]:
    """A fresh CELLBOX_ROOT for one test whose store shares the session's images.

    blobs/, layers/ and images.json are links to the session store; containers/, locks/
    and tmp/ are the test's own. Every container left at the end is removed (and the test
    fails if that is needed, through the leak check of processes and cgroups).
    """
    root = tmp_path / "cellbox-root"
    root.mkdir()
    for name in ("blobs", "layers"):
        (root / name).symlink_to(container_images / name)
    shutil.copy(container_images / "images.json", root / "images.json")
    monkeypatch.setenv("CELLBOX_ROOT", str(root))
    monkeypatch.setenv("CELLBOX_RUN", str(tmp_path / "cellbox-run"))
    settings = Settings.load()
    yield settings
    for container in Container.list(all=True, settings=settings):
        with contextlib.suppress(CellboxError):
            container.remove(force=True)


def cellbox(*args: str, input: str | None = None, timeout: float = 60,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the ``cellbox`` command in a separate process (env from the test's)."""
    result = subprocess.run(
        [str(VENV_PYTHON), "-I", "-m", "cellbox.runtime", *args], input=input,
        capture_output=True, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"cellbox {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n"
            f"{result.stderr}"
        )
    return result


def wait_for(predicate: Callable[[], bool], timeout: float = 10, interval: float = 0.05
             ) -> bool:
    """Poll ``predicate`` until it holds; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
