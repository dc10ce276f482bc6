"""inspect() and the /proc readers of runtime/containerinfo.py, without root."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cellbox.runtime.container import Container
from cellbox.runtime.containerinfo import host_memory, net_counters, online_cpus
from cellbox.runtime.containerstate import ContainerConfig, ContainerState, VolumeSpec
from cellbox.runtime.portmap import PortMapping
from cellbox.runtime.settings import Settings


def test_inspect_is_docker_shaped_json(tmp_path: Path) -> None:
    config = ContainerConfig(
        image="docker.io/library/busybox:latest", name="web", id="c" * 64,
        entrypoint=["/bin/sh", "-c"], command=["httpd -f"], env=["A=1"], workdir="/srv",
        user="1000", hostname="cccccccccccc", memory=64 << 20, cpus=1.5, pids_limit=10,
        network="bridge", ports=[PortMapping(8080, 80)],
        volumes=[VolumeSpec("/data", "/data", True)], layers=["sha256:" + "1" * 64],
        created="2024-01-01T00:00:00.000000Z",
    )
    state = ContainerState(status="exited", exit_code=137, oom_killed=True)
    info = Container(config, state, Settings(root=tmp_path)).inspect()
    json.dumps(info)
    assert info["Path"] == "/bin/sh" and info["Args"] == ["-c", "httpd -f"]
    assert info["State"] == {
        "Status": "exited", "Running": False, "Pid": 0, "ExitCode": 137, "OOMKilled": True,
        "Error": "", "StartedAt": "", "FinishedAt": "",
    }
    host = info["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 << 20, 1_500_000_000, 10)
    assert host["Binds"] == ["/data:/data:ro"]
    assert host["PortBindings"][0]["host_port"] == 8080
    assert info["GraphDriver"]["Data"]["LowerDir"] == str(tmp_path / "layers" / ("1" * 64)
                                                          / "diff")
    assert info["NetworkSettings"]["IPAddress"] == ""  # not running: no address


def test_proc_readers() -> None:
    assert online_cpus() >= 1
    assert host_memory() > 64 << 20
    rx, tx = net_counters(os.getpid())
    assert rx >= 0 and tx >= 0
    assert net_counters(2**22 + 11) == (0, 0)  # no such process
