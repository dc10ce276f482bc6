"""runtime/blocked.py: a call in /proc/PID/syscall is believed only of a task asleep in it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from cellbox.runtime import blocked
from cellbox.runtime.blocked import blocked_call, input_fd, waiting_for_input

READS = {"read", "pread64", "readv", "preadv"}
WAITS = {"poll", "select", "pselect6", "ppoll", "epoll_wait", "epoll_pwait", "epoll_pwait2"}
POLL = "7 0x55 0x1 0xffffffff 0 0 0 0x7ffd 0x7f"


def status(state: str, voluntary: int = 10, involuntary: int = 3) -> str:
    return (f"Name:\tbash\nState:\t{state}\nPid:\t7\n"
            f"voluntary_ctxt_switches:\t{voluntary}\nnonvoluntary_ctxt_switches:\t{involuntary}\n")


def proc(*answers: str) -> tuple[list[str], Callable[[str], str]]:
    """A fake /proc: status, syscall, status, in the order blocked_call reads them."""
    asked: list[str] = []
    queue = list(answers)

    def read(path: str) -> str:
        asked.append(path)
        return queue.pop(0)

    return asked, read


def test_a_task_asleep_in_read_is_believed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocked, "_ARCH", "x86_64")
    line = "0 0x0 0x7ffd 0x1 0 0 0 0x7ffd 0x7f"
    asked, read = proc(status("S (sleeping)"), line + "\n", status("S (sleeping)"))
    assert waiting_for_input(read, 7) == (line, 0)
    assert asked == ["7/status", "7/syscall", "7/status"]


@pytest.mark.parametrize("before, syscall, after", [
    # Not asleep: whatever number the syscall file shows, the task does not wait in it.
    (status("R (running)"), "72 0x0 0x3 0x0 0 0 0 0x7ffd 0x7f", status("R (running)")),
    # Woke up, ran (a context switch) and slept again somewhere else in between.
    (status("S (sleeping)", 10), POLL, status("S (sleeping)", 11)),
    (status("S (sleeping)"), POLL, status("S (sleeping)", 10, 4)),
    (status("S (sleeping)"), "running", status("S (sleeping)")),
    (status("S (sleeping)"), "-1 0x7ffd 0x7f", status("S (sleeping)")),
    (status("D (disk sleep)"), "0 0x0 0x7ffd 0x1 0 0 0 0x7ffd 0x7f", status("D (disk sleep)")),
    (status("t (tracing stop)"), "0 0x0 0x7ffd 0x1 0 0 0 0x7ffd 0x7f", status("t (tracing stop)")),
    ("State:\tS (sleeping)\n", "0 0x0 0x7ffd 0x1 0 0 0 0x7ffd 0x7f", "State:\tS (sleeping)\n"),
])
def test_a_task_not_asleep_throughout_is_not(before: str, syscall: str, after: str) -> None:
    _, read = proc(before, syscall, after)
    assert blocked_call(read, 7) is None


def test_a_process_that_is_gone_raises() -> None:
    def read(path: str) -> str:
        raise FileNotFoundError(path)

    with pytest.raises(OSError):
        blocked_call(read, 7)


def test_input_fd_per_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocked, "_ARCH", "x86_64")
    assert input_fd("0 0x5 0x7ffd 0x1 0 0 0 0x7ffd 0x7f") == 5  # read(5, ...)
    assert input_fd("270 0x1 0x7ffd 0x0 0 0 0 0x7ffd 0x7f") == 0  # pselect6: stdin's word
    assert input_fd("72 0x0 0x3 0x0 0 0 0 0x7ffd 0x7f") is None  # fcntl, not a wait
    assert input_fd("61 0xffffffff 0x7ffd 0x2 0 0 0 0x7ffd 0x7f") is None  # wait4
    monkeypatch.setattr(blocked, "_ARCH", "aarch64")
    assert input_fd("63 0x0 0x7ffd 0x1 0 0 0 0x7ffd 0x7f") == 0  # read
    assert input_fd("72 0x1 0x7ffd 0x0 0 0 0 0x7ffd 0x7f") == 0  # pselect6
    assert input_fd("0 0x0 0x7ffd 0x1 0 0 0 0x7ffd 0x7f") is None  # io_setup
    monkeypatch.setattr(blocked, "_ARCH", "riscv64")
    assert input_fd("63 0x0 0x7ffd 0x1 0 0 0 0x7ffd 0x7f") is None


pyseccomp = pytest.importorskip("pyseccomp")


@pytest.mark.parametrize("arch, lib_arch", [("x86_64", "X86_64"), ("aarch64", "AARCH64")])
def test_numbers_match_libseccomp(arch: str, lib_arch: str) -> None:
    def numbers(names: set[str]) -> set[int]:
        resolved = {pyseccomp.resolve_syscall(getattr(pyseccomp.Arch, lib_arch), n) for n in names}
        return {nr for nr in resolved if nr >= 0}  # select and poll are not on aarch64

    assert blocked._READ_CALLS[arch] == numbers(READS)
    assert blocked._WAIT_CALLS[arch] == numbers(WAITS)


def _read_proc(path: str) -> str:
    with open(f"/proc/{path}") as f:
        return f.read()


@pytest.fixture
def reader() -> Iterator[subprocess.Popen[bytes]]:
    """A real process that waits in read on its stdin (a pipe nobody writes)."""
    read_end, write_end = os.pipe()
    child = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.DEVNULL)
    os.close(read_end)
    try:
        yield child
    finally:
        os.close(write_end)
        child.wait(timeout=10)


def test_a_real_reader_and_a_real_spinner(reader: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while (line := blocked_call(_read_proc, reader.pid)) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert line is not None and input_fd(line) == 0
    assert waiting_for_input(_read_proc, reader.pid) == (line, 0)
    spinner = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        time.sleep(0.1)
        assert all(blocked_call(_read_proc, spinner.pid) is None for _ in range(50))
    finally:
        spinner.kill()
        spinner.wait()
