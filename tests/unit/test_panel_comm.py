"""The panel's comm logic (kernel/panel.py) in an asyncio loop, with stand-in comms and a
container directory written like the runtime writes it (no root, no kernel).

The same protocol through a real kernel and jupyter_client is in tests/kernel/test_panel.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cellbox.kernel.panel import Panel
from cellbox.runtime.containerstate import (
    ContainerConfig,
    ContainerState,
    boot_id,
    process_start_ticks,
    write_json,
)
from cellbox.runtime.logs import LogWriter, records_for_text
from cellbox.runtime.stats import StatsSample


class FakeComm:
    def __init__(self, comm_id: str) -> None:
        self.comm_id = comm_id
        self.sent: list[dict[str, Any]] = []
        self.closed = False
        self.msg_handler: Callable[[dict[str, Any]], None] | None = None
        self.close_handler: Callable[[dict[str, Any]], None] | None = None

    def send(self, data: dict[str, Any]) -> None:
        self.sent.append(data)

    def close(self) -> None:
        self.closed = True

    def on_msg(self, handler: Callable[[dict[str, Any]], None]) -> None:
        self.msg_handler = handler

    def on_close(self, handler: Callable[[dict[str, Any]], None]) -> None:
        self.close_handler = handler

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]

    def frontend_sends(self, data: dict[str, Any]) -> None:
        assert self.msg_handler is not None
        self.msg_handler({"content": {"comm_id": self.comm_id, "data": data}})

    def frontend_closes(self) -> None:
        assert self.close_handler is not None
        self.close_handler({"content": {"comm_id": self.comm_id}})


class FakeContainer:
    """What the panel reads of a runtime Container, over a real container directory."""

    def __init__(self, root: Path, name: str, memory: int) -> None:
        cid = (name.encode().hex() * 64)[:64]
        self.config = ContainerConfig(
            id=cid, name=name, image="docker.io/library/busybox:latest",
            image_digest="sha256:" + "2" * 64, memory=64 << 20, pids_limit=32,
        )
        self.directory = root / cid
        self.upper_dir = self.directory / "upper"
        self.upper_dir.mkdir(parents=True)
        (self.upper_dir / "file").write_bytes(b"x" * 1000)
        self.settings = None
        self.memory = memory
        self.cpu_ns = 0
        pid = os.getpid()
        state = ContainerState(
            status="running", pid=pid, start_ticks=process_start_ticks(pid) or 0,
            boot_id=boot_id(), started_at="2024-05-01T12:00:00Z",
        )
        write_json(self.directory / "state.json", state.to_dict())

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    def stats(self) -> StatsSample:
        self.cpu_ns += 250_000_000
        return StatsSample(
            id=self.id, name=self.name, monotonic_ns=time.monotonic_ns(),
            cpu_usage_ns=self.cpu_ns, online_cpus=2,
            memory_usage=self.memory, memory_limit=64 << 20, pids=2, pids_limit=32,
            running=True,
        )

    def image_config(self) -> dict[str, Any]:
        return {"history": [{"created_by": "COPY rootfs /"}, {"created_by": 'CMD ["sh"]',
                                                               "empty_layer": True}]}

    def log(self, text: str, stream: str = "stdout") -> None:
        with LogWriter(self.directory) as writer:
            writer.write(records_for_text(stream, text))


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def open_comm(panel: Panel, comm: FakeComm, **data: Any) -> None:
    panel._on_open(comm, {"content": {"comm_id": comm.comm_id, "data": {"version": 1, **data}}})


@pytest.fixture
def containers(tmp_path: Path) -> list[FakeContainer]:
    return [FakeContainer(tmp_path, "current", 5 << 20), FakeContainer(tmp_path, "other", 1 << 20)]


def test_snapshot_then_updates_then_silence(containers: list[FakeContainer]) -> None:
    async def scenario() -> None:
        containers[0].log("before the panel\n")
        panel = Panel(lambda: containers, interval=0.05)
        assert not panel.listening and panel.rounds == 0
        comm = FakeComm("c1")
        open_comm(panel, comm)
        await until(lambda: "snapshot" in comm.types())
        snapshot = comm.sent[0]
        assert snapshot["type"] == "snapshot" and snapshot["version"] == 1
        assert [c["name"] for c in snapshot["containers"]] == ["current", "other"]
        assert snapshot["current"] == containers[0].id
        first = snapshot["containers"][0]
        assert first["state"] == "running"
        assert first["limits"]["memory"] == 64 << 20
        assert first["upper"]["size"] == 1000
        assert [row["created_by"] for row in first["layers"]] == ['CMD ["sh"]', "COPY rootfs /"]
        backlog = snapshot["logs"][containers[0].id]["records"]
        assert [r["line"] for r in backlog] == ["before the panel"]

        containers[0].log("oops\n", stream="stderr")
        containers[0].memory = 40 << 20
        await until(lambda: any(
            m["type"] == "logs" and m["records"][0]["line"] == "oops" for m in comm.sent))
        await until(lambda: any(
            m["type"] == "usage" and m["samples"][containers[0].id]["mem"] == 40 << 20
            for m in comm.sent))
        usage = [m for m in comm.sent if m["type"] == "usage"][-1]
        assert usage["samples"][containers[0].id]["cpu"] > 0
        # Each line once: the backlog line never comes again as news.
        news = [r["line"] for m in comm.sent if m["type"] == "logs" for r in m["records"]]
        assert news == ["oops"]

        comm.frontend_closes()
        assert not panel.listening
        rounds = panel.rounds
        await asyncio.sleep(0.3)
        assert panel.rounds == rounds, "sampling must stop when no comm is open"

    asyncio.run(scenario())


def test_subscriptions_decide_what_is_sent(containers: list[FakeContainer]) -> None:
    async def scenario() -> None:
        panel = Panel(lambda: containers, interval=0.05)
        status_bar = FakeComm("usage-only")
        open_comm(panel, status_bar, usage=True, logs=False)
        await until(lambda: "usage" in status_bar.types())
        assert status_bar.sent[0]["logs"] == {}
        containers[0].log("hello\n")
        await asyncio.sleep(0.3)
        assert "logs" not in status_bar.types()

        # Now the panel opens: it asks for logs and gets a snapshot with the backlog.
        status_bar.frontend_sends({"type": "subscribe", "usage": True, "logs": True})
        await until(lambda: status_bar.types().count("snapshot") == 2)
        last = [m for m in status_bar.sent if m["type"] == "snapshot"][-1]
        assert [r["line"] for r in last["logs"][containers[0].id]["records"]] == ["hello"]

        status_bar.frontend_sends({"type": "subscribe", "usage": False, "logs": False})
        await asyncio.sleep(0.1)
        count = len(status_bar.sent)
        await asyncio.sleep(0.3)
        assert [m["type"] for m in status_bar.sent[count:]] == []
        panel.close()
        assert status_bar.closed

    asyncio.run(scenario())


def test_containers_message_on_change_only(containers: list[FakeContainer]) -> None:
    async def scenario() -> None:
        shown = list(containers[:1])
        panel = Panel(lambda: shown, interval=0.05)
        comm = FakeComm("c")
        open_comm(panel, comm)
        await until(lambda: panel.rounds >= 4)
        assert comm.types().count("containers") == 0
        shown.insert(0, containers[1])  # a %%container cell made another one current
        await until(lambda: "containers" in comm.types())
        message = next(m for m in comm.sent if m["type"] == "containers")
        assert message["current"] == containers[1].id
        assert [c["name"] for c in message["containers"]] == ["other", "current"]
        panel.close()

    asyncio.run(scenario())


def test_a_panel_of_another_version_is_told_and_closed(containers: list[FakeContainer]) -> None:
    async def scenario() -> None:
        panel = Panel(lambda: containers, interval=0.05)
        comm = FakeComm("old")
        panel._on_open(comm, {"content": {"comm_id": "old", "data": {"version": 99}}})
        assert comm.closed
        assert comm.sent[0]["type"] == "error" and "protocol 1" in comm.sent[0]["message"]
        assert not panel.listening

    asyncio.run(scenario())


def test_a_failing_container_is_reported_not_fatal(containers: list[FakeContainer]) -> None:
    async def scenario() -> None:
        broken = containers[1]

        def stats() -> StatsSample:
            raise OSError("cgroup gone")

        broken.stats = stats  # type: ignore[method-assign]
        panel = Panel(lambda: containers, interval=0.05)
        comm = FakeComm("c")
        open_comm(panel, comm)
        await until(lambda: "error" in comm.types())
        assert "cgroup gone" in next(m for m in comm.sent if m["type"] == "error")["message"]
        await until(lambda: "usage" in comm.types())
        panel.close()

    asyncio.run(scenario())
