"""Interrupts, input, crashes, OOM kills, restarts: the kernel keeps going through all of them."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.kernel.driver import KernelDriver


def test_interrupt_ends_the_job_not_the_shell(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none")
    kernel.ok("KEEP=kept; cd /tmp")
    # stop_on_error=False: see tests/kernel/driver.py KernelDriver.run
    msg_id = kernel.kc.execute("echo started; sleep 1000; echo never", stop_on_error=False)
    time.sleep(1.0)
    start = time.monotonic()
    kernel.km.interrupt_kernel()
    reply = kernel.kc.get_shell_msg(timeout=10)
    took = time.monotonic() - start
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "Interrupted"
    assert took < 2.0, f"the interrupt took {took:.2f} s"
    result = kernel.ok("echo $KEEP; pwd")
    assert result.stdout == "kept\n/tmp\n"


def test_a_job_that_ignores_sigint_is_killed(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none")
    kernel.kc.execute("sh -c 'trap \"\" INT; sleep 1000'", stop_on_error=False)  # see above
    time.sleep(1.0)
    kernel.km.interrupt_kernel()
    reply = kernel.kc.get_shell_msg(timeout=15)
    assert reply["content"]["ename"] == "Interrupted"
    assert "SIGKILL" in reply["content"]["evalue"]
    assert kernel.ok("echo alive").stdout == "alive\n"


def test_read_is_answered_through_stdin(kernel: KernelDriver) -> None:
    kernel.ok("%container debian:bookworm --network none")
    result = kernel.ok("read -p 'name? ' NAME; echo \"hello $NAME\"", answers=["alice"])
    assert result.inputs == [{"prompt": "", "password": False}]
    assert result.stdout.endswith("hello alice\n")
    assert result.stdout.count("alice") == 1  # the terminal's echo of the answer is not doubled
    secret = kernel.ok("read -s -p 'pin? ' PIN; echo; echo \"${#PIN} digits\"", answers=["1234"])
    assert secret.inputs == [{"prompt": "", "password": True}]
    assert "1234" not in secret.stdout and "4 digits" in secret.stdout
    py = kernel.ok("python3 -c 'print(input().upper())'", answers=["shout"])
    assert "SHOUT" in py.stdout


def test_a_frontend_without_stdin_gets_end_of_file(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none")
    result = kernel.run("read x; echo \"read said $?\"", allow_stdin=False, timeout=20)
    assert result.status == "ok"
    assert "read said 1" in result.stdout


def test_oom_kill_is_reported_and_the_shell_survives(kernel: KernelDriver) -> None:
    kernel.ok("%container debian:bookworm --network none --memory 64m")
    result = kernel.run("python3 -c 'b = bytearray(300 * 1024 * 1024); print(len(b))'")
    assert result.status == "error"
    assert result.error is not None
    ename, evalue = result.error
    assert ename == "OOMKilled"
    assert "memory limit 64MiB" in evalue
    assert kernel.ok("echo still here").stdout == "still here\n"


def test_the_shell_ending_starts_a_new_one(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none")
    kernel.ok("echo kept > /tmp/file; X=1")
    ended = kernel.run("kill -9 $$")
    assert ended.status == "error"
    assert ended.error is not None and ended.error[0] == "ShellExited"
    after = kernel.ok("cat /tmp/file; echo \"X=${X:-unset}\"")
    assert after.stdout == "kept\nX=unset\n"


def test_restart_keeps_files_and_fresh_drops_them(
    kernel_factory: Callable[[], KernelDriver]
) -> None:
    first = kernel_factory()
    first.ok("%container busybox --network none")
    first.ok("echo persistent > /root/keep.txt")
    first.restart()
    again = first.ok("%container busybox --network none\ncat /root/keep.txt")
    assert again.stdout == "persistent\n"
    changed = first.ok("%container busybox --network none --pids-limit 80\ncat /root/keep.txt")
    assert "recreated, its files kept" in changed.stdout
    assert "persistent" in changed.stdout
    fresh = first.run("%container busybox --network none --pids-limit 80 --fresh\n"
                      "cat /root/keep.txt")
    assert fresh.status == "error"
    assert "No such file" in fresh.stdout
    assert "without its files" in fresh.stdout


def test_stop_and_rm(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none")
    kernel.ok("echo x > /root/f")
    assert "stopped" in kernel.ok("%stop").stdout
    assert kernel.ok("cat /root/f").stdout == "x\n"  # the next cell starts it again
    assert "removed" in kernel.ok("%rm").stdout
    result = kernel.run("cat /root/f")  # a new container of the same image
    assert result.status == "error"
