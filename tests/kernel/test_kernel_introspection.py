"""Completion, inspection, is_complete and usage: answered by the container, even mid-cell."""

from __future__ import annotations

import time

from tests.kernel.driver import KernelDriver


def complete(kernel: KernelDriver, code: str, cursor: int | None = None) -> dict[str, object]:
    pos = len(code) if cursor is None else cursor
    return kernel.request("shell", "complete_request", {"code": code, "cursor_pos": pos})[
        "content"
    ]


def test_completion_of_commands_files_and_variables(kernel: KernelDriver) -> None:
    (kernel.notebook / "notebook-data.csv").write_text("x\n")
    (kernel.notebook / "notebook-dir").mkdir()
    kernel.ok("%container debian:bookworm --network none")
    kernel.ok("MY_SETTING=1; my_function() { :; }")
    reply = complete(kernel, "ech")
    assert "echo" in reply["matches"]  # type: ignore[operator]
    assert reply["cursor_start"] == 0 and reply["cursor_end"] == 3
    files = complete(kernel, "cat notebook-")
    assert set(files["matches"]) == {"notebook-data.csv", "notebook-dir/"}  # type: ignore[arg-type]
    assert files["cursor_start"] == 4
    assert complete(kernel, "echo $MY_S")["matches"] == ["MY_SETTING"]
    assert "my_function" in complete(kernel, "my_f")["matches"]  # type: ignore[operator]
    assert complete(kernel, "%cont")["matches"] == ["%container"]


def test_completion_answers_while_a_cell_runs(kernel: KernelDriver) -> None:
    (kernel.notebook / "notebook-data.csv").write_text("x\n")
    kernel.ok("%container debian:bookworm --network none")
    kernel.ok("cd /etc")
    msg_id = kernel.kc.execute("sleep 5; echo done")
    time.sleep(0.5)
    start = time.monotonic()
    reply = complete(kernel, "cat host")  # in /etc, where the cell shell is
    assert time.monotonic() - start < 4
    assert "hostname" in reply["matches"]  # type: ignore[operator]
    assert "echo" in complete(kernel, "ech")["matches"]  # type: ignore[operator]
    done = kernel.kc.get_shell_msg(timeout=20)
    assert done["parent_header"]["msg_id"] == msg_id
    assert done["content"]["status"] == "ok"


def test_inspect_shows_type_and_help(kernel: KernelDriver) -> None:
    kernel.ok("%container debian:bookworm --network none")
    reply = kernel.request("shell", "inspect_request",
                           {"code": "ls -l", "cursor_pos": 1, "detail_level": 0})["content"]
    assert reply["found"] is True
    text = reply["data"]["text/plain"]
    assert "ls is" in text and "Usage" in text
    builtin = kernel.request("shell", "inspect_request",
                             {"code": "cd /tmp", "cursor_pos": 1, "detail_level": 0})["content"]
    assert "shell builtin" in builtin["data"]["text/plain"]
    missing = kernel.request("shell", "inspect_request",
                             {"code": "nosuchcommand", "cursor_pos": 3, "detail_level": 0})
    assert missing["content"]["found"] is False


def test_is_complete(kernel: KernelDriver) -> None:
    def status(code: str) -> str:
        reply = kernel.request("shell", "is_complete_request", {"code": code})
        return str(reply["content"]["status"])

    assert status("echo hi") == "complete"
    assert status("if true; then") == "incomplete"
    assert status("cat <<EOF\nline") == "incomplete"
    assert status("echo 'open") == "incomplete"
    assert status("fi") == "invalid"


def test_usage_reports_the_container_not_the_host(kernel: KernelDriver) -> None:
    kernel.ok("%container debian:bookworm --network none --memory 128m --cpus 0.5")
    kernel.ok("python3 -c 'b = bytearray(40 * 1024 * 1024); import time; time.sleep(0.1)' &")
    reply = kernel.request("control", "usage_request", {})["content"]
    assert reply["host_virtual_memory"]["total"] == 128 << 20
    assert 0 < reply["kernel_memory"] < 128 << 20
    assert reply["cpu_count"] == 0.5
    assert reply["cellbox"]["memory_limit"] == 128 << 20
    kernel.ok("wait")
