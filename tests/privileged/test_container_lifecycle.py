"""Container lifecycle through the Python API, the way the kernel drives it."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from cellbox.runtime.container import Container
from cellbox.runtime.containerclean import prune_leftovers
from cellbox.runtime.containerstate import ContainerConfig
from cellbox.runtime.errors import ContainerExists, ContainerNotFound, ContainerStateError
from cellbox.runtime.settings import Settings

from tests.support.containers import cellbox_env, container_images, wait_for

__all__ = ["cellbox_env", "container_images"]  # fixtures used by name below


def _cgroup_dirs(container_id: str) -> list[str]:
    parent = os.environ["CELLBOX_CGROUP_PARENT"]
    return [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{parent}/{container_id}")]


def test_kernel_style_container_lifecycle(cellbox_env: Settings) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="kernel1", keep=True,
                                                 network="none", memory=64 << 20))
    assert container.status == "created" and container.config.argv == []
    container.start()
    assert container.running and container.pid
    assert _cgroup_dirs(container.id)  # the cgroup exists while it runs
    with pytest.raises(ContainerStateError):
        container.start()
    container.stop(timeout=5)
    assert container.status == "exited" and container.exit_code == 0
    assert _cgroup_dirs(container.id) == []  # and is removed when it stops
    container.remove()
    with pytest.raises(ContainerNotFound):
        Container.load("kernel1")
    assert not container.directory.exists()


def test_load_by_name_id_and_prefix(cellbox_env: Settings) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="findme",
                                                 command=["true"]))
    for key in ("findme", container.id, container.id[:6]):
        assert Container.load(key).id == container.id
    with pytest.raises(ContainerExists):
        Container.create(ContainerConfig(image="busybox", name="findme", command=["true"]))


def test_a_random_name_when_none_is_given(cellbox_env: Settings) -> None:
    names = {Container.create(ContainerConfig(image="busybox", command=["true"])).name
             for _ in range(3)}
    assert len(names) == 3 and all("_" in n for n in names)


def test_log_from_the_kernel_and_from_the_workload(cellbox_env: Settings) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="mixed",
                                                 command=["sh", "-c", "echo from workload"],
                                                 network="none"))
    container.start()
    container.wait()
    container.log("stdout", "cell output\npartial", cell="3")
    records = list(container.logs())
    assert [(r.line, r.cell) for r in records] == [
        ("from workload", None), ("cell output", "3"), ("partial", "3")]
    assert records[-1].partial


def test_logs_follow_stops_when_the_container_ends(cellbox_env: Settings) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="follow", network="none",
                                                 command=["sh", "-c", "sleep 0.5; echo late"]))
    container.start()
    lines = [r.line for r in container.logs(follow=True)]
    assert lines == ["late"]


def test_wait_from_another_thread_and_exit_code(cellbox_env: Settings) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="waiter", network="none",
                                                 command=["sh", "-c", "sleep 0.3; exit 4"]))
    container.start()
    other = Container.load("waiter")  # as a second process would see it
    codes: list[int | None] = []
    thread = threading.Thread(target=lambda: codes.append(other.wait()))
    thread.start()
    thread.join(10)
    assert codes == [4]
    assert Container.load("waiter").exit_code == 4


def test_stats_of_a_running_container(cellbox_env: Settings) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="busy", network="none",
                                                 command=["sh", "-c", "while :; do :; done"]))
    container.start()
    first = container.stats()
    time.sleep(0.5)
    second = container.stats()
    assert second.cpu_usage_ns > first.cpu_usage_ns
    assert second.memory_usage > 0 and second.pids >= 2 and second.running
    container.remove(force=True)


def test_prune_cleans_up_after_a_crash(cellbox_env: Settings) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="crashed",
                                                 network="bridge", keep=True))
    container.start()
    veth = container.state.network.get("veth_host")
    assert veth and Path(f"/sys/class/net/{veth}").exists()
    # Everything dies at once and the container's directory is lost: no cellbox process
    # ever sees the container end.
    os.kill(container.state.pid, signal.SIGKILL)
    wait_for(lambda: not container.state.alive())
    shutil.rmtree(container.directory)
    assert _cgroup_dirs(container.id)
    report = prune_leftovers()
    assert _cgroup_dirs(container.id) == []
    assert not Path(f"/sys/class/net/{veth}").exists()
    assert any(container.short_id in line for line in report)


def test_run_attached_with_auto_remove(cellbox_env: Settings,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    container = Container.run(
        ContainerConfig(image="busybox", command=["sh", "-c", "echo ran; exit 6"],
                        network="none", auto_remove=True),
        detach=False,
    )
    assert container.exit_code == 6
    assert capfd.readouterr().out == "ran\n"
    assert Container.list(all=True) == []
