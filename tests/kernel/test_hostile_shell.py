"""Forged control text and image-config traps: cells still end where and how they should.

Whatever a container prints can at worst garble that cell's own text; whatever its image
config says, the cell shell starts clean or the kernel says clearly why it cannot.
"""

from __future__ import annotations

import statistics
import time

import pytest

from tests.kernel.driver import KernelDriver
from tests.support.hostile import PRELOAD_LOG, Frontend, push_hostile
from tests.support.registry import RegistryServer

FORGERIES = r"""
printf '\036%s %s\036' 0123456789abcdef0123456789abcdef 0
printf '\036%s 0\036' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf 'exit status 0\n'
printf '\036P%s\036' 0123456789abcdef0123456789abcdef
printf '%s' "$__cbx_p"
printf '\033[2J\033[H\033c\033]0;TITLE\007\033[1A\033[K'
printf '\036cellbox-display\036\036'
sleep 0.5
echo REAL-END
(exit 7)
"""


@pytest.fixture(scope="module")
def hostile(registry: RegistryServer) -> dict[str, str]:
    """The hostile images, pushed to the session registry: name -> reference."""
    return push_hostile(registry)


def test_forged_markers_and_screen_escapes_do_not_end_the_cell(kernel: KernelDriver) -> None:
    kernel.ok("%container debian:bookworm --network none")
    for _ in range(4):  # the forged prompt makes a race: give it several chances
        started = time.monotonic()
        result = kernel.run(FORGERIES)
        assert time.monotonic() - started >= 0.5, "the cell ended before its sleep"
        assert result.status == "error"
        assert result.error == ("ExitStatus", "exit status 7")
        out = result.stdout
        assert out.rstrip().endswith("REAL-END")
        for escape in ("\x1b[2J", "\x1bc", "\x1b]0;", "\x1b[1A", "\x1b[K", "\x07"):
            assert escape not in out, repr(escape)
        assert not result.of_type("display_data")
        # Nothing of that cell leaks into the next one, which ends normally.
        nxt = kernel.run("echo next")
        assert nxt.status == "ok" and nxt.stdout == "next\n"
    assert kernel.run("(exit 0)").status == "ok"


def test_a_huge_line_is_cut_and_the_kernel_stays_small(kernel: KernelDriver) -> None:
    fe = Frontend(kernel)
    kernel.ok("%container busybox --network none")
    before = fe.memory()["VmRSS"]
    peak = before

    def watch(_: object) -> None:
        nonlocal peak
        peak = max(peak, fe.memory()["VmRSS"])

    # 40 MB in one line: a kernel that held the line whole would grow by more than twice
    # the 20 MiB allowed (it grows by about 1.5 MiB).
    cell = fe.finish(
        fe.start("head -c 40000000 /dev/zero | tr '\\0' x; echo; echo LINE-DONE"),
        timeout=240, during=watch,
    )
    assert cell.status == "ok", cell.text
    assert len(cell.stdout) <= 2 << 20
    assert "output cut" in cell.stderr
    assert peak - before < 20 << 20, f"the kernel grew by {(peak - before) >> 20} MiB"
    assert kernel.ok("echo small").stdout == "small\n"


def test_image_startup_hooks_and_traps_do_not_reach_the_cell_shell(
    kernel: KernelDriver, hostile: dict[str, str]
) -> None:
    first = kernel.run(f"%container {hostile['env']} --network none\necho start")
    assert first.status == "ok", first.text
    assert first.stdout == "start\n", first.text
    # The per-cell round trip: PROMPT_COMMAND, PS0 and PS4 would each add a second.
    times = []
    for _ in range(15):
        began = time.monotonic()
        assert kernel.run("true").status == "ok"
        times.append(time.monotonic() - began)
    assert statistics.median(times) < 0.3, times
    # TMOUT=1 would end the shell while it waits between cells: its state must live on.
    kernel.ok("KEPT=yes; cd /tmp")
    time.sleep(2.5)
    kept = kernel.run("echo $KEPT; pwd")
    assert kept.stdout == "yes\n/tmp\n", kept.text
    # Exit statuses, the terminal type and the shell's options are the kernel's.
    failing = kernel.run("(exit 4)")
    assert failing.error == ("ExitStatus", "exit status 4")
    assert kernel.ok("echo \"$TERM\"").stdout == "xterm-256color\n"
    assert "x" not in kernel.ok("echo $-").stdout  # SHELLOPTS=xtrace is not taken
    assert kernel.ok("type command printf unset stty | grep -c function || true").stdout \
        == "0\n"
    # No helper process of the kernel ran the image's LD_PRELOAD library.
    assert kernel.ok(f"cat {PRELOAD_LOG} 2>/dev/null | wc -l").stdout.strip() == "0"
    # None of the hooks ever printed.
    everything = "".join(
        kernel.run(code).text for code in ("echo a", "sleep 0.2", "echo b; echo c >&2")
    )
    for hook in ("RC-RAN", "BASHRC-RAN", "PROFILE-RAN", "PROMPT_COMMAND-RAN", "PS0-RAN",
                 "PS4-RAN", "PRELOAD-RAN", "HIJACKED", "HOSTILE-PS", "TERM-RAN", "mail"):
        assert hook not in everything + first.text + kept.text, hook


def test_a_user_that_does_not_exist_fails_clearly_and_the_kernel_goes_on(
    kernel: KernelDriver, hostile: dict[str, str]
) -> None:
    result = kernel.run(f"%container {hostile['ghost']} --network none\necho never")
    assert result.status == "error"
    assert result.error is not None
    message = result.error[1]
    assert "ghost" in message and "user" in message, message
    assert "never" not in result.stdout
    assert kernel.ok("%container busybox --network none\necho fine").stdout.endswith("fine\n")


def test_a_hostile_working_dir_is_not_used(
    kernel: KernelDriver, hostile: dict[str, str]
) -> None:
    result = kernel.ok(f"%container {hostile['workdir']} --network none\npwd")
    assert result.stdout.splitlines()[-1] == "/notebook"
