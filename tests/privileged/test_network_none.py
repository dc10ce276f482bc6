"""``--network none`` and ``host``: a netns with only a working loopback, or nothing at all."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cellbox.runtime import network

from tests.support.netns import Holder, Holders, Server, bridge_env, connect, run_in

CID = "0e" * 32

# what the container's PID 1 does for --network none, then it waits like init does
INIT = (
    "from cellbox.runtime.network import loopback_up\nloopback_up()\nimport time\ntime.sleep(600)\n"
)


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[Holders]:
    with bridge_env(tmp_path / "run") as (_, made):
        yield made


def _lo_up(holder: Holder) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        links = run_in(holder.pid, "ip", "-o", "link").stdout.splitlines()
        if any(" lo:" in line and ",UP" in line for line in links) or time.monotonic() > deadline:
            return links
        time.sleep(0.02)


def _host_address() -> str:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        address = line.split()[3].split("/")[0]
        if not address.startswith("127."):
            return address
    return "10.0.0.1"


def test_none_has_only_a_working_loopback(holders: Holders) -> None:
    holder = holders.new(sys.executable, "-I", "-c", INIT)
    links = _lo_up(holder)
    assert len(links) == 1 and " lo:" in links[0] and ",UP" in links[0], links
    with Server(holder.pid, 8000, "inside", address="127.0.0.1"):
        assert connect(holder.pid, "127.0.0.1", 8000) == "inside sees 127.0.0.1"


def test_none_cannot_reach_the_host(holders: Holders) -> None:
    holder = holders.new(sys.executable, "-I", "-c", INIT)
    _lo_up(holder)
    with Server(holder.pid, 8000, "inside", address="127.0.0.1"):
        answer = connect(holder.pid, _host_address(), 22)
    assert answer.startswith("FAILED") and "unreachable" in answer, answer


@pytest.mark.parametrize("mode", ["none", "host"])
def test_attach_none_or_host_makes_nothing(mode: str, tmp_path: Path) -> None:
    with bridge_env(tmp_path / "run") as (settings, holders):
        holder = holders.new()
        before = set(Path("/sys/class/net").iterdir())
        info = network.attach(CID, holder.pid, mode, [], settings)
        assert info == network.NetworkInfo(mode=mode)
        assert set(Path("/sys/class/net").iterdir()) == before
        assert run_in(holder.pid, "ip", "-o", "link").stdout.count("\n") == 1  # lo only
        network.detach(CID, settings)
        assert network.prune({CID}, settings) == []
