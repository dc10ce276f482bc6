"""`cellbox pull` as users run it, in processes: two at once, one killed half way, errors."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import images
from tests.support.oci import File, OciLayout, tar_layer
from tests.support.registry import RegistryServer, free_port

CELLBOX = [sys.executable, "-m", "cellbox.runtime"]


class LoggingRegistry(RegistryServer):
    """The test registry with its access log on, to count what clients fetched."""

    def _config(self) -> str:
        return super()._config().replace("accesslog: {disabled: true}",
                                         "accesslog: {disabled: false}")

    def blob_gets(self) -> Counter[str]:
        text = (self.directory / "registry.log").read_text()
        pattern = r'"GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]{64}) [^"]*" 200 .*cellbox'
        return Counter(re.findall(pattern, text))


BULK = 40 << 20  # one layer of this many incompressible bytes: long enough to kill half way


@pytest.fixture(scope="module")
def logged_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggingRegistry]:
    """busybox, and ``bulk/data:1``: one big layer of random bytes, cheap to unpack."""
    with LoggingRegistry(tmp_path_factory.mktemp("logged-registry")) as server:
        images.push_all(server, {"library/busybox": ("busybox", ("latest",))})
        bulk = OciLayout(tmp_path_factory.mktemp("bulk"))
        data = random.Random(7).randbytes(BULK)
        bulk.add_image("1", [tar_layer([File("data.bin", data)])], compression="none")
        server.push(bulk.path, "1", "bulk/data:1")
        yield server


def env_for(root: Path) -> dict[str, str]:
    return {**os.environ, "CELLBOX_ROOT": str(root), "CELLBOX_RUN": str(root.parent / "run")}


def visible(root: Path) -> list[str]:
    """The store as a user sees it: files and layer dirs, not tmp/ or locks/."""
    if not root.exists():
        return []
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in ("tmp", "locks"):
            continue
        if not path.is_dir() or rel.parent == Path("layers"):
            out.append(str(rel))
    return sorted(out)


def test_two_processes_pull_the_same_image_and_download_it_once(
    logged_registry: LoggingRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    ref = f"{logged_registry.host}/bulk/data:1"
    before = logged_registry.blob_gets()
    procs = [
        subprocess.Popen([*CELLBOX, "pull", ref], env=env_for(root), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    fetched = logged_registry.blob_gets() - before
    assert len(fetched) == 2  # the config and the one layer
    assert set(fetched.values()) == {1}, fetched
    assert len(os.listdir(root / "layers")) == 1
    assert os.listdir(root / "tmp") == []


def _staged_bytes(root: Path) -> int:
    total = 0
    for path in (root / "tmp").glob("txn-*/blob-*"):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def test_a_pull_killed_half_way_leaves_nothing_and_can_be_repeated(
    logged_registry: LoggingRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    ref = f"{logged_registry.host}/bulk/data:1"
    subprocess.run([*CELLBOX, "pull", "-q", f"{logged_registry.host}/library/busybox"],
                   env=env_for(root), check=True, capture_output=True, timeout=120)
    before = visible(root)
    proc = subprocess.Popen([*CELLBOX, "pull", "-q", ref], env=env_for(root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while _staged_bytes(root) < 4 << 20:
            assert proc.poll() is None, "the pull ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert visible(root) == before  # no half layer, no blob, no index entry
    assert any(p.name.startswith("txn-") for p in (root / "tmp").iterdir())
    listing = subprocess.run([*CELLBOX, "images"], env=env_for(root), capture_output=True,
                             text=True, check=True).stdout
    assert "bulk" not in listing and "busybox" in listing
    again = subprocess.run([*CELLBOX, "pull", "-q", ref], env=env_for(root),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert os.listdir(root / "tmp") == []  # the leftover was cleaned by the next pull
    assert "bulk" in subprocess.run([*CELLBOX, "images"], env=env_for(root),
                                      capture_output=True, text=True).stdout


def _pull_fails(ref: str, root: Path, needle: str, extra_env: dict[str, str] | None = None
                ) -> None:
    result = subprocess.run([*CELLBOX, "pull", ref], env={**env_for(root), **(extra_env or {})},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert needle in result.stderr, result.stderr
    assert visible(root) == []


def test_unknown_image_and_tag_fail_clearly(registry: RegistryServer, tmp_path: Path) -> None:
    _pull_fails(f"{registry.host}/library/nosuch:1", tmp_path / "s", "not found")
    _pull_fails(f"{registry.host}/library/busybox:nosuchtag", tmp_path / "s", "not found")


def test_registry_down_fails_clearly(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    _pull_fails(f"127.0.0.1:{port}/library/busybox", tmp_path / "s", "cannot reach")


def test_a_registry_that_wants_credentials(tmp_path: Path) -> None:
    with RegistryServer(tmp_path / "auth-registry", htpasswd={"alice": "secret"}) as server:
        server.push(images.layout("busybox"), "latest", "private/box:1", creds="alice:secret")
        ref = f"{server.host}/private/box:1"
        docker_config = tmp_path / "docker"
        _pull_fails(ref, tmp_path / "s", "cellbox login",
                    {"DOCKER_CONFIG": str(docker_config)})
        docker_config.mkdir()
        import base64
        import json

        token = base64.b64encode(b"alice:secret").decode()
        (docker_config / "config.json").write_text(
            json.dumps({"auths": {server.host: {"auth": token}}}))
        env = {**env_for(tmp_path / "s"), "DOCKER_CONFIG": str(docker_config)}
        result = subprocess.run([*CELLBOX, "pull", "-q", ref], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
