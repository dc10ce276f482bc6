"""cellbox behind a real JupyterHub (issue #6): a class's hub on one machine.

A JupyterHub with its configurable-http-proxy and a single-user server spawned for a new
user (tests/support/hub.py), all on 127.0.0.1. Everything a user's browser does goes
through the proxy's public URL with the user's token: create a cellbox kernel, run cells
on its websocket, and open the ``cellbox`` comm the Container panel opens — which needs no
server route, only the kernel websocket the proxy already forwards (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.kernel.inbox import Inbox
from tests.support.containers import cellbox
from tests.support.hub import CHP, VENV_BIN, Hub
from tests.support.registry import RegistryServer

pytestmark = [
    pytest.mark.skipif(not os.access(CHP, os.X_OK),
                       reason=f"configurable-http-proxy not installed at {CHP} "
                              "(scripts/setup.sh installs it)"),
    pytest.mark.timeout(300),
]

MiB = 1 << 20
USER = f"student-{uuid.uuid4().hex[:6]}"


class KernelSocket(Inbox):
    """The notebook's side of a kernel websocket (Jupyter's JSON protocol, no subprotocol):
    sends requests, keeps every reply, output and comm message it reads."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        super().__init__()
        self.ws = ws
        self.session = uuid.uuid4().hex

    async def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell"
                   ) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "session": self.session,
                  "username": USER, "version": "5.3", "date": datetime.now(UTC).isoformat()}
        await self.ws.write_message(json.dumps({
            "header": header, "parent_header": {}, "metadata": {}, "content": content,
            "channel": channel, "buffers": [],
        }))
        return msg_id

    async def execute(self, code: str) -> str:
        msg_id = await self.send("execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": False,
        })
        self.expect_output(msg_id)
        return msg_id

    async def open_comm(self, data: dict[str, Any]) -> str:
        comm_id = uuid.uuid4().hex
        self.expect_comm(comm_id)
        await self.send("comm_open", {"comm_id": comm_id, "target_name": "cellbox",
                                      "data": data})
        return comm_id

    async def wait(self, what: str, predicate: Callable[[], Any], timeout: float = 30) -> Any:
        """Read messages until ``predicate`` holds; return its value."""
        async def read() -> Any:
            while True:
                result = predicate()
                if result:
                    return result
                raw = await self.ws.read_message()
                if raw is None:
                    raise AssertionError(f"the kernel websocket closed while waiting for {what}")
                self.take(json.loads(raw))

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout} s") from None

    async def run(self, code: str, timeout: float = 120) -> str:
        """Execute ``code``; its output once the kernel is idle again (reply status ok)."""
        msg_id = await self.execute(code)
        # Shell and iopub are separate channels on one websocket: the reply may come
        # after the idle status, or before the last output.
        await self.wait(f"the end of {code!r}",
                        lambda: msg_id in self.idle and msg_id in self.replies, timeout)
        output = "".join(self.outputs[msg_id])
        status = self.replies.get(msg_id, {}).get("status")
        assert status == "ok", f"{code!r} -> {status}:\n{output}"
        return output


@pytest.fixture
def hub(cellbox_env: Any, registry: RegistryServer, tmp_path: Path) -> Iterator[Hub]:
    """A running JupyterHub whose single-user servers' kernels use the test's cellbox root
    (cellbox_env), scope and registry; stopped at the end, leaving nothing running."""
    environment = {k: v for k, v in os.environ.items() if k.startswith("CELLBOX_")}
    environment["CELLBOX_REGISTRY_MIRRORS"] = registry.url
    environment["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    directory = tmp_path / "hub"
    directory.mkdir()
    environment["TMPDIR"] = str(directory / "tmp")
    hub = Hub(directory, environment)
    try:
        hub.start()
        yield hub
    finally:
        errors = hub.stop()
        errors += _remove_containers()
    if errors:
        pytest.fail("JupyterHub teardown:\n  " + "\n  ".join(errors), pytrace=False)


def _remove_containers() -> list[str]:
    """The kernel keeps its stopped container (by design): remove what the test's store
    holds. A container still running after the hub stopped is a leak."""
    running = cellbox("ps", "-q").stdout.split()
    errors = [f"container {cid} still running after its kernel stopped" for cid in running]
    for cid in cellbox("ps", "-a", "-q").stdout.split():
        cellbox("rm", "-f", cid)
    return errors


def test_panel_comm_through_jupyterhub(hub: Hub) -> None:
    hub.add_user(USER)
    token = hub.user_token(USER)
    hub.start_server(USER)
    base = f"{hub.url}/user/{USER}"
    headers = {"Authorization": f"token {token}"}

    created = httpx.post(f"{base}/api/kernels", json={"name": "cellbox"}, headers=headers,
                         timeout=60)
    assert created.status_code == 201, created.text
    kernel = created.json()
    assert kernel["name"] == "cellbox"
    deleted: httpx.Response | None = None
    try:
        asyncio.run(_notebook(base, kernel["id"], token))
    except AssertionError:
        print(hub.log_tail())  # shown with the failure
        raise
    finally:
        # Shut the kernel down as JupyterLab does (it stops the kernel's container).
        with contextlib.suppress(httpx.HTTPError):
            deleted = httpx.delete(f"{base}/api/kernels/{kernel['id']}", headers=headers,
                                   timeout=60)
    assert deleted is not None and deleted.status_code == 204, deleted and deleted.text

    # The default places of the hub's and spawner's files stayed empty (all in tmp_path).
    for path in (Path.cwd() / "jupyterhub.sqlite", Path.cwd() / "jupyterhub_cookie_secret",
                 Path.cwd() / "jupyterhub-proxy.pid", Path("/tmp") / USER):
        assert not path.exists(), f"{path} written outside the test's directory"
    assert (hub.directory / "home" / USER).is_dir()


async def _notebook(base: str, kernel_id: str, token: str) -> None:
    """What a notebook with the Container panel open does, through the proxy."""
    url = base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    request = HTTPRequest(f"{url}?session_id={uuid.uuid4().hex}",
                          headers={"Authorization": f"token {token}"})
    ws = await websocket_connect(request)
    ks = KernelSocket(ws)
    try:
        info = await ks.send("kernel_info_request", {})
        reply = await ks.wait("kernel_info_reply", lambda: ks.replies.get(info), 60)
        assert reply["implementation"] == "cellbox"

        out = await ks.run("%container busybox --network none --memory 64m\necho hello-hub")
        assert "hello-hub" in out

        # The panel's comm, opened as labextension/src/connection.ts opens it.
        comm = await ks.open_comm({"version": 1, "usage": True, "logs": True})
        snapshot = (await ks.wait("a snapshot", lambda: ks.messages(comm, "snapshot")))[0]
        assert snapshot["version"] == 1
        current = snapshot["containers"][0]
        assert snapshot["current"] == current["id"]
        assert current["name"]
        listed = cellbox("ps", "--no-trunc").stdout.splitlines()
        ours = [line for line in listed if line.startswith(current["id"])]
        assert ours and current["name"] in ours[0].split(), listed  # `cellbox ps` agrees
        assert current["image"] == "docker.io/library/busybox:latest"
        assert current["state"] == "running"
        assert current["limits"]["memory"] == 64 * MiB
        history = cellbox("history", "--no-trunc", "busybox").stdout.splitlines()[1:]
        assert len(current["layers"]) == len(history)
        for layer, row in zip(current["layers"], history, strict=True):
            assert layer["created_by"] in row
            if layer["digest"]:
                assert layer["digest"].split(":")[1] in row

        # Live: a usage sample of the container is pushed, and a line a cell echoes.
        sample = await ks.wait("a usage sample", lambda: [
            m["samples"][current["id"]] for m in ks.messages(comm, "usage")
            if current["id"] in m["samples"]
        ], timeout=10)
        assert sample[-1]["mem_limit"] == 64 * MiB
        marker = f"hub-{uuid.uuid4().hex[:8]}"
        msg_id = await ks.execute(f"echo {marker}")
        record = (await ks.wait("the echoed line in a logs update", lambda: [
            r for m in ks.messages(comm, "logs") if m["container"] == current["id"]
            for r in m["records"] if r["line"] == marker
        ], timeout=10))[0]
        assert record["stream"] == "stdout"
        assert isinstance(record["cell"], int)
        await ks.wait("the echo's end", lambda: msg_id in ks.idle)

        await ks.send("comm_close", {"comm_id": comm, "data": {}})
    finally:
        with contextlib.suppress(Exception):
            ws.close()
