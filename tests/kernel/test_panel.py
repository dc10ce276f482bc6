"""The ``cellbox`` comm (docs/protocol.md) through jupyter_client, on the real kernel with a
real container: what the JupyterLab panel receives, message by message.

jupyter_client has no comm API; :class:`Frontend` sends comm_open/comm_msg/comm_close on
the shell channel as JupyterLab does, and reads iopub itself so that comm messages that
arrive while a cell runs are kept, not dropped.
"""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.kernel.inbox import Inbox
from tests.support.registry import RegistryServer

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.timeout(240),
]

MiB = 1 << 20


class Frontend(Inbox):
    """A client that speaks the panel's side of the comm."""

    def __init__(self, kc: BlockingKernelClient, pid: int) -> None:
        super().__init__()
        self.kc = kc
        self.pid = pid  # the kernel process

    # -- sending ---------------------------------------------------------------------

    def _shell(self, msg_type: str, content: dict[str, Any]) -> str:
        msg = self.kc.session.msg(msg_type, content)
        self.kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def open(self, data: dict[str, Any] | None = None) -> str:
        comm_id = uuid.uuid4().hex
        self.expect_comm(comm_id)
        payload = {"version": 1, **(data or {})}
        self._shell("comm_open", {"comm_id": comm_id, "target_name": "cellbox", "data": payload})
        return comm_id

    def send(self, comm_id: str, data: dict[str, Any]) -> None:
        self._shell("comm_msg", {"comm_id": comm_id, "data": data})

    def close(self, comm_id: str) -> None:
        self._shell("comm_close", {"comm_id": comm_id, "data": {}})

    def execute(self, code: str) -> str:
        msg_id = str(self.kc.execute(code, allow_stdin=False))
        self.expect_output(msg_id)
        return msg_id

    # -- receiving ---------------------------------------------------------------------

    def pump(self, timeout: float = 0.1) -> None:
        """Read what iopub has, for up to ``timeout`` seconds of silence."""
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                return
            self.take(msg)
            timeout = 0.01

    def wait(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s")

    def run(self, code: str, timeout: float = 120.0) -> str:
        msg_id = self.execute(code)
        self.wait(lambda: msg_id in self.idle, timeout)
        return "".join(self.outputs[msg_id])


@pytest.fixture
def frontend(
    cellbox_env: Any, registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Frontend]:
    """A cellbox kernel on a fresh store sharing the session's busybox (cellbox_env, from
    tests/support/containers.py), docker.io mirrored by the test registry, and a client."""
    monkeypatch.setenv("CELLBOX_REGISTRY_MIRRORS", registry.url)
    notebook_dir = tmp_path / "notebook"
    notebook_dir.mkdir()
    km = KernelManager(kernel_name="cellbox")
    km.start_kernel(cwd=str(notebook_dir))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield Frontend(kc, km.provisioner.pid)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
        _remove_containers()


def _remove_containers() -> None:
    """Kernel shutdown stops its containers; remove them (the store is the test's)."""
    cellbox = [sys.executable, "-m", "cellbox.runtime"]
    ids = subprocess.run([*cellbox, "ps", "-a", "-q"], capture_output=True, text=True).stdout
    for cid in ids.split():
        subprocess.run([*cellbox, "rm", "-f", cid], capture_output=True)


def log_fds(pid: int) -> list[str]:
    """The kernel process's read-only fds on container logs: the panel's log tail (the
    kernel's own writer of cell output holds one open for writing)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                flags = int(info.read().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue
        if target.endswith("/log.jsonl") and flags & os.O_ACCMODE == os.O_RDONLY:
            found.append(target)
    return found


def test_snapshot_then_live_logs_usage_and_oom(frontend: Frontend) -> None:
    fe = frontend
    out = fe.run("%container busybox --memory 64m\necho started")
    assert "started" in out

    comm = fe.open()
    snapshot = fe.wait(lambda: fe.messages(comm, "snapshot"))[0]
    assert snapshot["version"] == 1
    current = snapshot["containers"][0]
    assert snapshot["current"] == current["id"]
    assert "busybox" in current["image"]
    assert current["state"] == "running"
    assert current["limits"]["memory"] == 64 * MiB
    assert current["image_digest"].startswith("sha256:")

    # Layers: the rows `cellbox history` prints, in the same order.
    cli = subprocess.run(
        [sys.executable, "-m", "cellbox.runtime", "history", "--no-trunc", "busybox"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()[1:]
    layers = current["layers"]
    assert len(layers) == len(cli)
    for layer, line in zip(layers, cli, strict=True):
        assert layer["created_by"] in line
        if layer["digest"]:
            assert layer["digest"].split(":")[1] in line
    assert any(layer["size"] > 100_000 for layer in layers)  # busybox's files

    # A line echoed by a cell reaches the panel within 2 s, tagged with its cell.
    marker = f"panel-{uuid.uuid4().hex[:8]}"
    sent = time.monotonic()
    msg_id = fe.execute(f"echo {marker}")

    def echoed() -> list[dict[str, Any]]:
        return [
            r for m in fe.messages(comm, "logs") for r in m["records"] if r["line"] == marker
        ]

    record = fe.wait(echoed, timeout=10)[0]
    assert time.monotonic() - sent < 2.0 + 1.0  # 2 s, plus the cell's own round trip
    assert record["stream"] == "stdout"
    assert isinstance(record["cell"], int)
    fe.wait(lambda: msg_id in fe.idle)

    # Usage: one sample a second; memory rises while a cell holds 32 MiB.
    def latest_mem() -> int:
        usage = fe.messages(comm, "usage")
        return int(usage[-1]["samples"][current["id"]]["mem"] or 0) if usage else 0

    fe.wait(lambda: len(fe.messages(comm, "usage")) >= 3, timeout=10)
    before = latest_mem()
    # A file in /dev/shm is memory charged to the container's cgroup.
    hold = fe.execute("dd if=/dev/zero of=/dev/shm/fill bs=1M count=32 2>/dev/null; "
                      "sleep 3; rm /dev/shm/fill")
    fe.wait(lambda: latest_mem() > before + 24 * MiB, timeout=10)
    fe.wait(lambda: hold in fe.idle)
    samples = [m["samples"][current["id"]] for m in fe.messages(comm, "usage")]
    times = [s["t"] for s in samples]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.5 < sorted(gaps)[len(gaps) // 2] < 1.5  # about one a second
    assert samples[-1]["mem_limit"] == 64 * MiB

    # OOM: the counter in the samples rises (the panel marks it).
    kills = samples[-1]["oom_kills"]
    fe.run("awk 'BEGIN { s = \"x\"; while (1) s = s s }'")
    fe.wait(lambda: any(
        m["samples"].get(current["id"], {}).get("oom_kills", 0) > kills
        for m in fe.messages(comm, "usage")
    ), timeout=10)

    fe.close(comm)


def test_sampling_only_while_a_comm_is_open(frontend: Frontend) -> None:
    fe = frontend
    fe.run("%container busybox\necho hi")
    pid = fe.pid
    time.sleep(1.5)
    assert log_fds(pid) == [], "no comm open: the kernel must not tail the log"

    comm = fe.open()
    fe.wait(lambda: fe.messages(comm, "snapshot"))
    fe.wait(lambda: fe.messages(comm, "usage"), timeout=5)
    assert len(log_fds(pid)) == 1

    fe.close(comm)
    fe.pump(0.5)
    count = len(fe.comm[comm])
    time.sleep(2.5)
    fe.pump(0.2)
    assert len(fe.comm[comm]) == count, "nothing is sent after the comm closed"
    assert log_fds(pid) == []


def test_subscriptions_refresh_and_versions(frontend: Frontend) -> None:
    fe = frontend
    fe.run("%container busybox\necho hi")

    # The status bar's comm: usage only, no log lines.
    comm = fe.open({"usage": True, "logs": False})
    snapshot = fe.wait(lambda: fe.messages(comm, "snapshot"))[0]
    assert snapshot["logs"] == {}
    fe.run("echo not-for-the-status-bar")
    fe.wait(lambda: len(fe.messages(comm, "usage")) >= 2, timeout=10)
    assert fe.messages(comm, "logs") == []

    # The panel opens: logs on, answered with a snapshot carrying the backlog.
    fe.send(comm, {"type": "subscribe", "logs": True})
    fe.wait(lambda: len(fe.messages(comm, "snapshot")) == 2, timeout=10)
    backlog = fe.messages(comm, "snapshot")[1]["logs"][snapshot["current"]]["records"]
    assert "not-for-the-status-bar" in [r["line"] for r in backlog]

    fe.send(comm, {"type": "refresh"})
    fe.wait(lambda: len(fe.messages(comm, "snapshot")) == 3, timeout=10)
    fe.send(comm, {"type": "no-such-message"})  # ignored, the comm stays
    fe.close(comm)

    # A panel of another protocol version is told so, and the kernel closes the comm.
    old = uuid.uuid4().hex
    fe.comm[old] = []
    fe._shell("comm_open", {"comm_id": old, "target_name": "cellbox", "data": {"version": 99}})
    error = fe.wait(lambda: fe.messages(old, "error"))[0]
    assert "protocol 1" in error["message"]
    fe.wait(lambda: old in fe.closed)
