"""What a frontend keeps of the messages a kernel sends it: replies, each cell's output,
which requests the kernel has finished, and the ``cellbox`` comm's messages.

Shared by the frontends of the panel tests (jupyter_client's iopub, tests/kernel/
test_panel.py) and the JupyterHub test (the kernel websocket, tests/kernel/test_hub.py):
each reads messages its own way and hands them to :meth:`Inbox.take`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Inbox"]


class Inbox:
    def __init__(self) -> None:
        self.outputs: dict[str, list[str]] = {}  # execute msg_id -> stream and error text
        self.replies: dict[str, dict[str, Any]] = {}  # request msg_id -> reply content
        self.idle: set[str] = set()  # request msg_ids the kernel has finished
        self.comm: dict[str, list[dict[str, Any]]] = {}  # comm_id -> data of each comm_msg
        self.closed: set[str] = set()  # comm_ids the kernel closed

    def expect_output(self, msg_id: str) -> None:
        """Keep the stream and error text of the execute request ``msg_id``."""
        self.outputs[msg_id] = []

    def expect_comm(self, comm_id: str) -> None:
        """Keep the messages of comm ``comm_id``."""
        self.comm[comm_id] = []

    def take(self, msg: dict[str, Any]) -> None:
        """Sort one message (of any channel) into the above."""
        kind = msg["msg_type"]
        content = msg["content"]
        parent = msg.get("parent_header", {}).get("msg_id")
        if kind.endswith("_reply") and parent:
            self.replies[parent] = content
        elif kind == "comm_msg" and content["comm_id"] in self.comm:
            self.comm[content["comm_id"]].append(content["data"])
        elif kind == "comm_close":
            self.closed.add(content["comm_id"])
        elif kind == "stream" and parent in self.outputs:
            self.outputs[parent].append(content["text"])
        elif kind == "error" and parent in self.outputs:
            self.outputs[parent].append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle" and parent:
            self.idle.add(parent)

    def messages(self, comm_id: str, kind: str) -> list[dict[str, Any]]:
        """The messages of comm ``comm_id`` whose ``type`` is ``kind``."""
        return [m for m in self.comm[comm_id] if m.get("type") == kind]
