"""Fixtures every suite may use: a real registry seeded with real images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import images
from tests.support.registry import RegistryServer

# Everything this session makes is named after it, so that the leak checks (and a human)
# can tell it from another session's on the same machine.
SCOPE = f"cbxtest{os.getpid()}"
os.environ.setdefault("CELLBOX_TEST_SCOPE", SCOPE)
os.environ.setdefault("CELLBOX_CGROUP_PARENT", f"cellbox-{SCOPE}")

# repository -> (test image, tags): what the session registry serves, docker.io-style.
SEEDED = {
    "library/busybox": ("busybox", ("latest",)),
    "library/hello-world": ("hello-world", ("latest",)),
    "library/debian": ("debian", ("bookworm", "latest")),
}


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A docker-registry on 127.0.0.1 serving busybox, hello-world and debian."""
    with RegistryServer(tmp_path_factory.mktemp(f"registry-{SCOPE}")) as server:
        images.push_all(server, SEEDED)
        yield server


@pytest.fixture
def cellbox_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty cellbox store and state root for one test."""
    root = tmp_path / f"cellbox-root-{SCOPE}"
    monkeypatch.setenv("CELLBOX_ROOT", str(root))
    monkeypatch.setenv("CELLBOX_RUN", str(tmp_path / "cellbox-run"))
    return root
