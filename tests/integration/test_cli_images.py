"""The image commands as a user runs them: pull, images, history, inspect, tag, rmi, prune."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.registry import RegistryServer

CELLBOX = [sys.executable, "-m", "cellbox.runtime"]


@pytest.fixture
def cli(registry: RegistryServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run `cellbox ARGS` against a fresh store whose docker.io mirror is the registry."""
    env = {
        **os.environ,
        "CELLBOX_ROOT": str(tmp_path / "store"),
        "CELLBOX_RUN": str(tmp_path / "run"),
        "CELLBOX_REGISTRY_MIRRORS": registry.url,
    }

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*CELLBOX, *args], env=env, capture_output=True, text=True,
                                timeout=300)
        if ok:
            assert result.returncode == 0, f"cellbox {args}: {result.stdout}{result.stderr}"
        return result

    run.root = tmp_path / "store"  # type: ignore[attr-defined]
    return run


def test_pull_prints_a_line_per_layer_and_the_name(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("pull", "busybox").stdout.splitlines()
    assert out[0] == "latest: Pulling from library/busybox"
    assert any(line.endswith(": Pull complete") for line in out)
    assert out[-2] == "Status: Downloaded newer image for busybox:latest"
    assert out[-1] == "docker.io/library/busybox:latest"
    again = cli("pull", "busybox").stdout
    assert "Already exists" in again and "Image is up to date" in again
    assert cli("pull", "-q", "busybox").stdout == "docker.io/library/busybox:latest\n"


def test_images_lists_name_tag_digest_created_size(cli) -> None:  # type: ignore[no-untyped-def]
    cli("pull", "-q", "busybox")
    cli("pull", "-q", "hello-world")
    lines = cli("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "DIGEST", "CREATED", "SIZE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["busybox"][1] == "latest" and rows["hello-world"][1] == "latest"
    assert rows["busybox"][-1].endswith("MB") and rows["hello-world"][-1].endswith("kB")
    digest = json.loads(cli("inspect", "busybox").stdout)[0]["Digest"]
    assert rows["busybox"][2] == digest[7:19]
    assert cli("images", "-q", "--no-trunc").stdout.count("sha256:") == 2


def test_history_matches_the_image_config(cli) -> None:  # type: ignore[no-untyped-def]
    cli("pull", "-q", "busybox")
    inspect = json.loads(cli("inspect", "busybox").stdout)[0]
    root = cli.root  # type: ignore[attr-defined]
    config_path = root / "blobs" / "sha256" / inspect["Id"][7:]
    history = json.loads(config_path.read_text())["history"]
    lines = cli("history", "--no-trunc", "busybox").stdout.splitlines()
    assert lines[0].split()[:2] == ["DIGEST", "CREATED"]
    assert len(lines) - 1 == len(history)
    for line, step in zip(lines[1:], reversed(history), strict=True):
        assert step["created_by"] in line
        if step.get("empty_layer"):
            assert line.startswith("<missing>") and " 0B" in line
        else:
            assert line.startswith(inspect["Layers"][0]["Digest"])
    assert cli("history", "-q", "busybox").stdout.split() == [
        "<missing>", inspect["Layers"][0]["Digest"][7:19]]


def test_inspect_shows_the_image_and_unknown_names_fail(cli) -> None:  # type: ignore[no-untyped-def]
    cli("pull", "-q", "busybox")
    data = json.loads(cli("inspect", "busybox").stdout)
    assert data[0]["RepoTags"] == ["busybox:latest"]
    assert data[0]["Os"] == "linux" and data[0]["Config"]["Cmd"] == ["sh"]
    assert Path(data[0]["Layers"][0]["Path"]).is_dir()
    failed = cli("inspect", "nosuch-thing", ok=False)
    assert failed.returncode == 1 and "no such image or container" in failed.stderr


def _fake_container(root: Path, image_digest: str, layers: list[str]) -> Path:
    directory = root / "containers" / ("c" * 64)
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(
        {"name": "happy_turing", "image_digest": image_digest, "layers": layers}))
    return directory


def test_tag_rmi_and_prune(cli) -> None:  # type: ignore[no-untyped-def]
    root: Path = cli.root  # type: ignore[attr-defined]
    cli("pull", "-q", "busybox")
    cli("pull", "-q", "hello-world")
    cli("tag", "busybox", "mybox:v1")
    assert "mybox" in cli("images").stdout
    assert cli("rmi", "mybox:v1").stdout == "Untagged: mybox:v1\n"
    hello = json.loads(cli("inspect", "hello-world").stdout)[0]
    container = _fake_container(root, hello["Digest"], [la["ChainID"] for la in hello["Layers"]])
    refused = cli("rmi", "hello-world", ok=False)
    assert refused.returncode == 1 and "happy_turing" in refused.stderr
    assert "hello-world" in cli("images").stdout
    forced = cli("rmi", "-f", "hello-world").stdout
    assert "Untagged: hello-world:latest" in forced and "Deleted" not in forced
    assert Path(hello["Layers"][0]["Path"]).is_dir()  # the container still needs it
    (root / "tmp" / "txn-leftover").mkdir()
    pruned = cli("prune").stdout
    assert "Deleted leftover" in pruned or "leftover" in pruned
    assert Path(hello["Layers"][0]["Path"]).is_dir()
    (container / "config.json").unlink()
    container.rmdir()
    pruned = cli("prune").stdout
    assert f"Deleted image: {hello['Digest']}" in pruned
    assert f"Deleted layer: {hello['Layers'][0]['ChainID']}" in pruned
    assert not Path(hello["Layers"][0]["Path"]).exists()
    busybox = json.loads(cli("inspect", "busybox").stdout)[0]
    assert Path(busybox["Layers"][0]["Path"]).is_dir()  # named: kept
    removed = cli("rmi", "busybox").stdout
    assert "Deleted layer" in removed
    assert sorted(os.listdir(root / "layers")) == [] and os.listdir(root / "blobs/sha256") == []
    missing = cli("rmi", "busybox", ok=False)
    assert missing.returncode == 1 and "not in the store" in missing.stderr
