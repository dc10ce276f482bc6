"""Driving a cellbox kernel through jupyter_client, as a frontend would."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

__all__ = ["KernelDriver", "Result", "start_kernel"]


@dataclass
class Result:
    """What one execute request produced."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)  # input_request contents

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    @property
    def stdout(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.messages
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    @property
    def stderr(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.messages
            if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
        )

    @property
    def error(self) -> tuple[str, str] | None:
        for m in self.messages:
            if m["msg_type"] == "error":
                return m["content"]["ename"], m["content"]["evalue"]
        return None

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] == msg_type]

    @property
    def text(self) -> str:
        """Everything a person would read: streams, text displays and the error."""
        parts = []
        for m in self.messages:
            content = m["content"]
            if m["msg_type"] == "stream":
                parts.append(content["text"])
            elif m["msg_type"] in ("display_data", "update_display_data"):
                parts.append(str(content["data"].get("text/plain", "")))
            elif m["msg_type"] == "error":
                parts.append(f"{content['ename']}: {content['evalue']}")
        return "".join(parts)


class KernelDriver:
    """A cellbox kernel and a blocking client to it."""

    def __init__(self, km: KernelManager, kc: BlockingKernelClient, notebook: Path) -> None:
        self.km = km
        self.kc = kc
        self.notebook = notebook

    def run(
        self,
        code: str,
        *,
        timeout: float = 120,
        answers: list[str] | None = None,
        allow_stdin: bool | None = None,
    ) -> Result:
        """Execute ``code``; ``answers`` are typed into input requests, in order."""
        result = Result(reply={})
        pending = list(answers or [])

        def on_output(msg: dict[str, Any]) -> None:
            if msg["msg_type"] not in ("status", "execute_input"):
                result.messages.append(msg)

        def on_input(msg: dict[str, Any]) -> None:
            result.inputs.append(msg["content"])
            self.kc.input(pending.pop(0) if pending else "\x04")

        stdin = allow_stdin if allow_stdin is not None else answers is not None
        # stop_on_error=False: after an error reply ipykernel aborts what it receives until
        # its own "stop aborting" marker is queued, and under load the next test cell can
        # come first (Jupyter's "stop at the first error" behaviour, the same for every kernel)
        result.reply = self.kc.execute_interactive(
            code, timeout=timeout, output_hook=on_output,
            stdin_hook=on_input if stdin else None, allow_stdin=stdin, stop_on_error=False,
        )
        return result

    def ok(self, code: str, **kwargs: Any) -> Result:
        """Execute ``code`` and insist that it succeeded."""
        result = self.run(code, **kwargs)
        assert result.status == "ok", f"{code!r} failed: {result.error}\n{result.text}"
        return result

    def request(self, channel: str, msg_type: str, content: dict[str, Any],
                timeout: float = 30) -> dict[str, Any]:
        """Send a request on ``channel`` (shell or control) and return its reply."""
        chan = self.kc.control_channel if channel == "control" else self.kc.shell_channel
        msg = self.kc.session.msg(msg_type, content)
        chan.send(msg)
        deadline = time.monotonic() + timeout
        while True:
            reply = chan.get_msg(timeout=max(deadline - time.monotonic(), 0.1))
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return dict(reply)

    def restart(self) -> None:
        self.kc.stop_channels()
        self.km.restart_kernel(now=False)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def start_kernel(notebook: Path) -> KernelDriver:
    km, kc = start_new_kernel(kernel_name="cellbox", cwd=str(notebook), startup_timeout=60)
    return KernelDriver(km, kc, notebook)
