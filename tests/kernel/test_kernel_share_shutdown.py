"""The kernel's own start and end: quick, quiet and clean.

* Shutdown ends the shells (hung up, so that their ``cellbox exec`` relays reap them and
  the container's PID 1 can exit at once), stops the containers, keeps their files, and
  the kernel process exits by itself, leaving no relay behind.
* Started on 127.0.0.1, the kernel does not warn about unencrypted TCP (it does not apply
  on loopback, see kernel/app.py); a frontend that asks for CurveZMQ gets it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cellbox.kernel.app import is_loopback
from cellbox.runtime.container import Container
from cellbox.runtime.settings import Settings
from jupyter_client.manager import KernelManager

from tests.kernel.driver import KernelDriver, start_kernel
from tests.support.containers import wait_for


def children(pid: int) -> dict[int, str]:
    """The children of ``pid`` with their start times (to tell a reused pid)."""
    found = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
            started = start_time(int(child))
            if started:
                found[int(child)] = started
    return found


def start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rfind(")") + 2 :].split()[19]


def shut_down(driver: KernelDriver) -> int:
    """Send shutdown_request as a frontend does; the kernel's exit status once it is gone."""
    process: Any = driver.km.provisioner.process  # type: ignore[union-attr]
    try:
        msg_id = driver.kc.shutdown()
        while True:
            reply = driver.kc.control_channel.get_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "ok"
        return int(process.wait(30))
    finally:
        driver.kc.stop_channels()
        driver.km.shutdown_kernel(now=True)  # only cleans up: the process is gone


def test_shutdown_stops_the_container_keeps_its_files_and_leaves_no_relay(
    kernel_env: Path,
) -> None:
    driver = start_kernel(kernel_env)
    driver.ok("%container busybox --network none\necho kept > /root/kept.txt\n"
              "sleep 300 >/dev/null 2>&1 &")
    # Inspection runs in the side shell: a second `cellbox exec` relay.
    driver.request("shell", "inspect_request", {"code": "echo", "cursor_pos": 4,
                                                "detail_level": 0})
    kernel_pid = driver.km.provisioner.process.pid  # type: ignore[union-attr]
    relays = children(kernel_pid)
    assert len(relays) >= 2, relays

    assert shut_down(driver) == 0  # it ended by itself, not killed by the manager

    assert wait_for(lambda: all(start_time(pid) != started
                                for pid, started in relays.items()), timeout=5)
    [container] = Container.list(all=True, settings=Settings.load())
    assert container.status == "exited" and container.exit_code == 0
    assert (Path(container.upper_dir) / "root" / "kept.txt").read_text() == "kept\n"

    again = start_kernel(kernel_env)  # the next kernel of the notebook finds its files
    try:
        assert again.ok("%container busybox --network none\ncat /root/kept.txt").stdout == (
            "kept\n"
        )
    finally:
        again.shutdown()


def test_stop_and_restart_of_a_container_with_a_job_and_a_side_shell(
    kernel: KernelDriver,
) -> None:
    kernel.ok("%container busybox --network none\necho one > /tmp/one\nsleep 300 &")
    kernel.request("shell", "inspect_request", {"code": "echo", "cursor_pos": 4,
                                                "detail_level": 0})
    assert "stopped" in kernel.ok("%stop").stdout
    assert kernel.ok("cat /tmp/one; jobs | wc -l").stdout == "one\n0\n"  # a new shell
    kernel.ok("%rm")
    assert kernel.ok("test -e /tmp/one || echo gone").stdout == "gone\n"  # a new container


@pytest.mark.parametrize(("ip", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("10.1.2.3", False), ("", False),
])
def test_which_addresses_count_as_loopback(ip: str, loopback: bool) -> None:
    assert is_loopback(ip) is loopback


def test_no_tcp_warning_on_loopback_and_curve_when_asked(kernel_env: Path) -> None:
    for encryption in ("disabled", "auto"):
        log = kernel_env / f"kernel-{encryption}.err"
        km = KernelManager(kernel_name="cellbox", transport_encryption=encryption)
        with open(log, "w") as stderr:
            km.start_kernel(cwd=str(kernel_env), stderr=stderr)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            assert (km.curve_publickey is not None) == (encryption == "auto")
            reply = kc.execute_interactive("%help tag", timeout=60,
                                           output_hook=lambda msg: None)
            assert reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=False)
        assert "without encryption" not in log.read_text()
