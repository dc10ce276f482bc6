"""The seed story end to end, with the ``cellbox`` command: "push your image, others run it
by name".

Build a ``hello-world`` image from a Containerfile, push it to a registry as
``localhost:PORT/gocloudcoder/hello-world``, remove it locally, and run it again by that
name (cellbox pulls it back). Then podman (runc, private storage) pulls and runs the same
name with the same result: what cellbox builds and pushes is an ordinary OCI image.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cellbox.runtime.container import Container
from cellbox.runtime.errors import CellboxError
from cellbox.runtime.settings import Settings

from tests.support import images
from tests.support.containers import cellbox
from tests.support.registry import RegistryServer

GREETING = "Hello from cellbox!"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("CELLBOX_ROOT", str(tmp_path / "cellbox-root"))
    monkeypatch.setenv("CELLBOX_RUN", str(tmp_path / "cellbox-run"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    settings = Settings.load()
    yield settings
    for container in Container.list(all=True, settings=settings):
        with contextlib.suppress(CellboxError):
            container.remove(force=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path / "registry") as running:
        yield running


def hello_context(directory: Path) -> Path:
    """A build context holding the static ``hello`` program of the hello-world test image."""
    layout = images.layout("hello-world")
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:])
                          .read_text())
    layer = layout / "blobs/sha256" / manifest["layers"][0]["digest"][7:]
    directory.mkdir()
    # read as a stream, and no further than "hello": the layer stops right after its data
    # (no padding, no end-of-archive blocks), which tarfile trips over when it looks past it
    with tarfile.open(layer, "r|*") as tar:
        member = tar.next()
        while member is not None and member.name.lstrip("./") != "hello":
            member = tar.next()
        assert member is not None
        extracted = tar.extractfile(member)
        assert extracted is not None
        (directory / "hello").write_bytes(extracted.read())
    (directory / "hello").chmod(0o755)
    (directory / "Containerfile").write_text(
        "FROM scratch\nCOPY hello /\nCMD [\"/hello\"]\n"
    )
    return directory


@contextlib.contextmanager
def podman() -> Iterator[list[str]]:
    """podman with runc, private storage (vfs: no mounts left behind), removed at the end."""
    # podman wants a run root under 50 characters: pytest's tmp_path is too long
    store = Path(tempfile.mkdtemp(prefix="cbx-podman-", dir="/tmp"))
    base = ["podman", "--root", str(store / "root"), "--runroot", str(store / "runroot"),
            "--runtime", "runc", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none"]
    cgroups_before = set(Path("/sys/fs/cgroup").glob("*/libpod_parent"))
    try:
        yield base
    finally:
        subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        subprocess.run([*base, "system", "reset", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(store, ignore_errors=True)
        # podman's cgroupfs manager leaves libpod_parent/conmon behind in every hierarchy
        for made in set(Path("/sys/fs/cgroup").glob("*/libpod_parent")) - cgroups_before:
            for cgroup in sorted(made.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    cgroup.rmdir()


def test_build_push_remove_and_run_by_name(env: Settings, server: RegistryServer,
                                            tmp_path: Path) -> None:
    name = f"localhost:{server.port}/gocloudcoder/hello-world"
    context = hello_context(tmp_path / "context")
    built = cellbox("build", "-t", name, str(context), check=True)
    digest = built.stdout.splitlines()[-1]
    assert f"Successfully tagged {name}:latest" in built.stdout
    assert GREETING in cellbox("run", "--rm", "--network", "none", name, check=True).stdout

    pushed = cellbox("push", name, check=True)
    assert pushed.stdout.splitlines()[-1].startswith(f"latest: digest: {digest} size: ")
    inspect = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{name}"],
                             check=True, capture_output=True, text=True)
    assert json.loads(inspect.stdout)["Digest"] == digest

    cellbox("rmi", name, check=True)
    assert name not in cellbox("images", check=True).stdout
    again = cellbox("run", "--rm", "--network", "none", name, check=True)
    assert GREETING in again.stdout
    assert cellbox("images", "--no-trunc", check=True).stdout.count(digest) == 1

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    with podman() as base:
        result = subprocess.run(
            [*base, "run", "--rm", "--network", "none", "--tls-verify=false",
             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", name],
            capture_output=True, text=True, timeout=300,
            # podman insists that a DOCKER_CONFIG it is given exists: this one never did
            env={k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == again.stdout
