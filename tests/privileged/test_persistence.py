"""A container's files outlive its processes, and commit turns them into an image."""

from __future__ import annotations

import json
import subprocess

from cellbox.runtime.container import Container
from cellbox.runtime.containerstate import ContainerConfig
from cellbox.runtime.settings import Settings
from cellbox.runtime.store import Store

from tests.support.containers import cellbox, cellbox_env, container_images

__all__ = ["cellbox_env", "container_images"]  # fixtures used by name below


def test_files_survive_stop_and_start(cellbox_env: Settings) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="keeper", keep=True,
                                                 network="none"))
    container.start()
    assert cellbox("exec", "keeper", "sh", "-c", "echo precious > /root/file").returncode == 0
    container.stop()
    assert not container.running
    container.start()
    result = cellbox("exec", "keeper", "cat", "/root/file", check=True)
    assert result.stdout == "precious\n"
    container.stop()


def test_files_survive_the_process_that_made_them(cellbox_env: Settings) -> None:
    # A cellbox process that dies (here: one that simply exits) leaves the container and
    # its files to the next one.
    cellbox("run", "-d", "--name", "orphan", "busybox", "sh", "-c",
            "echo kept > /kept; sleep 1d", check=True)
    cellbox("stop", "-t", "1", "orphan", check=True)
    cellbox("start", "orphan", check=True)
    assert cellbox("exec", "orphan", "cat", "/kept").stdout == "kept\n"


def _layer_digests(reference: str) -> list[str]:
    return [layer.digest for layer in Store(Settings.load().root).get_image(reference).layers]


def test_commit_then_run_the_new_image(cellbox_env: Settings) -> None:
    cellbox("run", "--name", "builder", "busybox", "sh", "-c",
            "mkdir -p /app && echo made > /app/data.txt && rm /etc/group && "
            "mkdir -p /opt/dir && echo x > /opt/dir/f", check=True)
    commit = cellbox("commit", "-m", "my change", "-c", 'CMD ["cat", "/app/data.txt"]',
                     "builder", "made:v1", check=True)
    assert commit.stdout.startswith("sha256:")
    assert cellbox("run", "--rm", "made:v1").stdout == "made\n"  # the new CMD
    gone = cellbox("run", "--rm", "made:v1", "ls", "/etc/group")
    assert gone.returncode != 0  # a deleted image file stays deleted
    assert cellbox("run", "--rm", "made:v1", "cat", "/etc/passwd").returncode == 0
    image = Store(Settings.load().root).get_image("made:v1")
    assert image.config["history"][-1]["comment"] == "my change"
    assert image.config["history"][-1]["created_by"].startswith("cellbox commit builder")
    assert len(image.layers) == 2


def test_committing_twice_gives_the_same_layer(cellbox_env: Settings) -> None:
    cellbox("run", "--name", "twice", "busybox", "sh", "-c", "echo same > /same", check=True)
    cellbox("commit", "twice", "twice:a", check=True)
    cellbox("commit", "twice", "twice:b", check=True)
    assert _layer_digests("twice:a") == _layer_digests("twice:b")


def test_commit_leaves_out_the_runtime_mounts(cellbox_env: Settings, tmp_path: object) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="mounts",
                                                 command=["true"], network="none"))
    container.start()
    container.wait()
    image = container.commit("mounts:c")
    top = image.layers[-1].path
    found = subprocess.run(["find", str(top)], capture_output=True, text=True).stdout
    assert ".cellbox" not in found
    assert "etc/hosts" not in found and "etc/resolv.conf" not in found


def test_an_opaque_directory_commits_as_opaque(cellbox_env: Settings) -> None:
    # Removing a directory of the image and making it again gives an opaque dir in the
    # upper dir: after commit only the new content is there.
    cellbox("run", "--name", "opaque", "debian:bookworm", "sh", "-c",
            "rm -rf /etc/apt && mkdir /etc/apt && echo new > /etc/apt/only", check=True)
    cellbox("commit", "opaque", "opaque:c", check=True)
    listing = cellbox("run", "--rm", "opaque:c", "ls", "/etc/apt", check=True).stdout
    assert listing.split() == ["only"]


def test_inspect_of_a_container(cellbox_env: Settings) -> None:
    cellbox("create", "--name", "seen", "-e", "A=1", "--memory", "32m", "busybox", "echo", "x",
            check=True)
    info = Container.load("seen").inspect()
    assert info["Name"] == "seen" and info["Path"] == "echo" and info["Args"] == ["x"]
    assert "A=1" in info["Config"]["Env"] and info["HostConfig"]["Memory"] == 32 << 20
    assert info["State"]["Status"] == "created"
    assert info["ImageName"] == "docker.io/library/busybox:latest"
    json.dumps(info)  # plain JSON
