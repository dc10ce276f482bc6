"""Fixtures every suite may use: a real registry seeded with real images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import images, leaks, netscope
from tests.support.registry import RegistryServer

# Everything this session makes is named after it, so that the leak checks (and a human)
# can tell it from another session's on the same machine. A pytest-xdist worker is a
# session of its own: it replaces the names it inherited from the controller.
SCOPE = f"cbxtest{os.getpid()}"
_name = os.environ.__setitem__ if "PYTEST_XDIST_WORKER" in os.environ else os.environ.setdefault
_name("CELLBOX_TEST_SCOPE", SCOPE)
_name("CELLBOX_CGROUP_PARENT", f"cellbox-{SCOPE}")
# A bridge (name <= 15 chars) and a free /24 of the session's own: see tests/support/netscope.
_name("CELLBOX_BRIDGE", SCOPE[:15])
_name("CELLBOX_SUBNET", netscope.free_subnet(os.getpid()))

# repository -> (test image, tags): what the session registry serves, docker.io-style.
SEEDED = {
    "library/busybox": ("busybox", ("latest",)),
    "library/hello-world": ("hello-world", ("latest",)),
    "library/debian": ("debian", ("bookworm", "latest")),
}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the session's bridge and nft table, whatever a test left of them, and its
    cgroups: those fail the session, as the leak they are."""
    if os.geteuid() != 0:
        return
    if os.environ.get("CELLBOX_BRIDGE", "").startswith("cbxtest"):
        netscope.cleanup_bridge(os.environ["CELLBOX_BRIDGE"])
    left = leaks.sweep_session()
    if left:
        print(f"\nLEAK: the session left cgroups behind (now removed): {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def _session_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tell the leak checks where this session's temporary files are: a mount under
    another session's (another xdist worker's) is that session's, not a leak of ours."""
    os.environ["CELLBOX_TEST_TMP"] = str(tmp_path_factory.getbasetemp())


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
