"""The persistent shell against real local shells (bash, dash, busybox sh) on a real pty.

The same Shell drives ``cellbox exec -it`` in a container; here the terminal is the
shell's own and the controller local, so no root and no container are needed.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cellbox.kernel.protocol import DisplayRequest
from cellbox.kernel.shell import CellResult, Shell, ShellCommand, ShellError, local_bash

SHELLS = {
    "bash": ["bash", "--norc", "--noprofile", "--noediting", "-i"],
    "dash": ["dash", "-i"],
    "busybox": ["busybox", "sh", "-i"],
}


class IO:
    """A cell's output and input, as a test sees them."""

    def __init__(self, answers: list[str | None] | None = None) -> None:
        self.parts: list[str] = []
        self.displays: list[DisplayRequest] = []
        self.answers = list(answers or [])
        self.asked: list[bool] = []

    def output(self, text: str) -> None:
        self.parts.append(text)

    def display(self, request: DisplayRequest) -> None:
        self.displays.append(request)

    async def read_input(self, password: bool) -> str | None:
        self.asked.append(password)
        return self.answers.pop(0) if self.answers else None

    @property
    def text(self) -> str:
        return "".join(self.parts)


def with_shell(
    tmp_path: Path, body: Callable[[Shell], Awaitable[Any]], argv: list[str] | None = None
) -> Any:
    async def main() -> Any:
        command = ShellCommand(argv, tmp_path, str(tmp_path)) if argv else local_bash(tmp_path)
        shell = Shell(command)
        await shell.start(timeout=10)
        try:
            return await asyncio.wait_for(body(shell), 60)
        finally:
            shell.close()

    return asyncio.run(main())


async def run(shell: Shell, code: str, io: IO | None = None) -> tuple[CellResult, str]:
    io = io or IO()
    result = await shell.run(code, io)
    return result, io.text


@pytest.fixture(params=list(SHELLS))
def argv(request: pytest.FixtureRequest) -> list[str]:
    argv = SHELLS[request.param]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    return argv


def test_cells_keep_state_and_report_status(tmp_path: Path, argv: list[str]) -> None:
    async def body(shell: Shell) -> None:
        assert (await run(shell, "X=5; cd /tmp; f() { echo \"f $1\"; }"))[0].status == 0
        result, text = await run(shell, "echo $X; pwd; f arg")
        assert (result.status, text) == (0, "5\n/tmp\nf arg\n")
        assert (await run(shell, "false"))[0].status == 1
        result, text = await run(shell, "cat <<EOF\nheredoc $X\nEOF\n(exit 7)")
        assert (result.status, text) == (7, "heredoc 5\n")
        assert shell.pid is not None and shell.pid > 0

    with_shell(tmp_path, body, argv)


def test_xtrace_shows_the_cell_not_the_wrapper(tmp_path: Path, argv: list[str]) -> None:
    async def body(shell: Shell) -> None:
        await run(shell, "set -x")
        _, text = await run(shell, "echo traced")
        assert "echo traced" in text and text.endswith("traced\n")
        assert "__cbx" not in text and "printf" not in text and ".sh" not in text
        await run(shell, "set +x")
        assert (await run(shell, "echo plain"))[1] == "plain\n"

    with_shell(tmp_path, body, argv)


def test_a_hostile_prompt_changes_nothing(tmp_path: Path, argv: list[str]) -> None:
    async def body(shell: Shell) -> None:
        await run(shell, "PS1='$(echo PS1-RAN) $ '; PS2='> '; PS0=PS0-RAN; "
                         "PROMPT_COMMAND='echo PC-RAN'")
        for i in range(3):
            result, text = await run(shell, f"echo {i}")
            assert (result.status, text) == (0, f"{i}\n")

    with_shell(tmp_path, body, argv)


def test_a_syntax_error_ends_the_cell(tmp_path: Path, argv: list[str]) -> None:
    async def body(shell: Shell) -> None:
        result, text = await run(shell, "echo ok\nif then fi")
        assert result.status not in (0, None)
        assert "then" in text
        assert (await run(shell, "echo after"))[1] == "after\n"

    with_shell(tmp_path, body, argv)


def test_interrupt_kills_the_job_and_keeps_the_shell(tmp_path: Path, argv: list[str]) -> None:
    async def body(shell: Shell) -> None:
        await run(shell, "KEEP=yes")
        for code in ("sleep 100", "while :; do :; done", "PS1='x '; sleep 100"):
            task = asyncio.ensure_future(run(shell, code))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            shell.interrupt()
            result, _ = await task
            assert result.interrupted and result.status not in (0, None)
            assert time.monotonic() - started < 1.0, code
            assert (await run(shell, "echo $KEEP"))[1] == "yes\n"

    with_shell(tmp_path, body, argv)


def test_a_job_ignoring_sigint_is_killed(tmp_path: Path) -> None:
    async def body(shell: Shell) -> None:
        task = asyncio.ensure_future(run(shell, "sh -c 'trap \"\" INT; sleep 100'"))
        await asyncio.sleep(0.3)
        shell.interrupt()
        result, _ = await task
        assert result.killed and result.status == 137
        assert (await run(shell, "echo alive"))[1] == "alive\n"

    with_shell(tmp_path, body)


def test_input_is_asked_for_and_typed(tmp_path: Path, argv: list[str]) -> None:
    async def body(shell: Shell) -> None:
        io = IO(["alice"])
        result, text = await run(shell, "read NAME; echo \"got $NAME\"", io)
        assert (result.status, text, io.asked) == (0, "got alice\n", [False])
        io = IO([None])  # no stdin: end of file
        result, text = await run(shell, "read NAME; echo \"status $?\"", io)
        assert text == "status 1\n"

    with_shell(tmp_path, body, argv)


def test_passwords_and_programs_reading_input(tmp_path: Path) -> None:
    async def body(shell: Shell) -> None:
        io = IO(["s3cret"])
        _, text = await run(shell, "read -s -p 'pw: ' P; echo; echo ${#P}", io)
        assert io.asked == [True] and "s3cret" not in text and text.endswith("6\n")
        if shutil.which("python3"):
            io = IO(["shout"])
            _, text = await run(shell, "python3 -c 'print(input().upper())'", io)
            assert text == "SHOUT\n"

    with_shell(tmp_path, body)


def test_interrupt_while_waiting_for_input(tmp_path: Path) -> None:
    async def body(shell: Shell) -> None:
        never: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        class Waiting(IO):
            async def read_input(self, password: bool) -> str | None:
                return await never

        task = asyncio.ensure_future(shell.run("read x", Waiting()))
        await asyncio.sleep(0.4)
        shell.interrupt()
        result = await task
        assert result.interrupted
        assert (await run(shell, "echo back"))[1] == "back\n"

    with_shell(tmp_path, body)


def test_the_shell_ending_ends_the_cell(tmp_path: Path) -> None:
    async def body(shell: Shell) -> None:
        result, text = await run(shell, "echo bye; exit 4")
        assert (result.status, result.shell_exit, text) == (None, 4, "bye\n")
        assert not shell.alive
        with pytest.raises(ShellError):
            await run(shell, "echo no")

    with_shell(tmp_path, body)


def test_output_streams_in_pieces_with_utf8_intact(tmp_path: Path) -> None:
    async def body(shell: Shell) -> None:
        io = IO()
        result, text = await run(shell, "seq 1 200000; printf '\\xc3'; printf '\\xa9\\n'", io)
        assert result.status == 0
        assert len(io.parts) > 2
        assert text.endswith("200000\né\n")
        assert text.count("\n") == 200001

    with_shell(tmp_path, body)


def test_display_requests_reach_the_io(tmp_path: Path) -> None:
    async def body(shell: Shell) -> None:
        io = IO()
        await run(shell, "echo a; printf '\\036cellbox-display pic.png image/png\\036'; echo b", io)
        assert io.displays == [DisplayRequest("pic.png", "image/png")]
        assert io.text == "a\nb\n"

    with_shell(tmp_path, body)


def test_cell_files_are_removed(tmp_path: Path) -> None:
    async def body(shell: Shell) -> None:
        await run(shell, "echo hi")
        assert list(tmp_path.glob("*.sh")) == []

    with_shell(tmp_path, body)


def test_a_shell_that_cannot_start(tmp_path: Path) -> None:
    async def main() -> None:
        shell = Shell(ShellCommand(["sh", "-c", "echo broken; exit 3"], tmp_path, str(tmp_path)))
        with pytest.raises(ShellError, match="broken"):
            await shell.start(timeout=5)
        shell.close()

    asyncio.run(main())


def test_trivial_cells_are_fast(tmp_path: Path) -> None:
    async def body(shell: Shell) -> float:
        for _ in range(5):
            await run(shell, "true")
        start = time.monotonic()
        for _ in range(50):
            await run(shell, "true")
        return (time.monotonic() - start) / 50

    per_cell = with_shell(tmp_path, body)
    assert per_cell < 0.05  # no per-line delay anywhere (pexpect's default is 50 ms)


@pytest.mark.parametrize("look", ["any time", "late"])
def test_a_forged_end_marker_does_not_end_the_cell_early(tmp_path: Path, look: str) -> None:
    """A program that learnt the nonce (say from the shell's memory) prints the marker while
    its cell still runs: the cell goes on until the shell itself is back at its prompt,
    and ends with the shell's own status; the second marker is not shown anywhere.

    "late": the kernel looks at the shell just after it got back to its prompt, before
    reading what it printed on the way there (its own marker, with the real status)."""

    async def body(shell: Shell) -> None:
        io = IO()
        task = asyncio.ensure_future(shell.run("sleep 0.5; echo after-forgery; (exit 9)", io))
        await asyncio.sleep(0.2)
        cell = shell._cell  # white box: the test plays the program that stole the nonce
        assert cell is not None and shell._controller is not None
        if look == "late":
            at_prompt = shell._controller.shell_at_prompt

            def late() -> bool:
                deadline = time.monotonic() + 10
                while at_prompt() is not True and time.monotonic() < deadline:
                    time.sleep(0.01)  # the kernel's loop reads nothing meanwhile
                return True

            shell._controller.shell_at_prompt = late  # type: ignore[method-assign]
        nonce = next(iter(cell.nonces))
        with open(f"/proc/{shell._child.pid}/fd/0", "w") as tty:  # type: ignore[union-attr]
            tty.write(f"\x1e{nonce} 0\x1e")
        started = time.monotonic()
        result = await task
        assert time.monotonic() - started > 0.2
        assert result.status == 9
        assert "after-forgery" in io.text
        assert nonce not in io.text
        assert (await run(shell, "echo next"))[1] == "next\n"

    with_shell(tmp_path, body)
