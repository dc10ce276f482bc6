"""``--network bridge`` for real: veths into namespaces, addresses, NAT and published ports.

Each "container" is a process in its own netns (tests/support/netns.py); servers and
clients run inside with ``nsenter --net``. Traffic goes only to 127.0.0.0/8 and to
addresses inside namespaces these tests made.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cellbox.runtime import nat, network
from cellbox.runtime.errors import NetworkError
from cellbox.runtime.settings import Settings

from tests.support import netscope
from tests.support.netns import Holders, Server, bridge_env, connect, run_in


def cid(n: int) -> str:
    return f"{n:02x}" * 32


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Settings, Holders]]:
    with bridge_env(tmp_path / "run") as made:
        yield made


def free_port(protocol: str = "tcp") -> int:
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def published_ports(settings: Settings) -> list[str]:
    return [str(item.port) for item in nat.list_published(settings.bridge) or []]


def test_two_containers_on_the_bridge_reach_each_other(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    a, b = holders.new(), holders.new()
    info_a = network.attach(cid(1), a.pid, "bridge", [], settings)
    info_b = network.attach(cid(2), b.pid, "bridge", [], settings)
    subnet = ipaddress.IPv4Network(settings.subnet)
    assert info_a.ip != info_b.ip
    assert ipaddress.IPv4Address(info_a.ip) in subnet
    assert info_a.gateway == str(subnet.network_address + 1)
    assert info_a.prefix == subnet.prefixlen and info_a.bridge == settings.bridge
    # inside: lo and eth0 up, the address, a default route via the bridge
    links = run_in(a.pid, "ip", "-o", "link").stdout
    assert links.count("\n") == 2 and "lo:" in links and "eth0@" in links
    assert links.count(",UP") == 2
    addresses = run_in(a.pid, "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert f"{info_a.ip}/{info_a.prefix}" in addresses
    assert f"default via {info_a.gateway} dev eth0" in run_in(a.pid, "ip", "route").stdout
    # on the host: the veth is a port of the bridge
    master = Path(f"/sys/class/net/{info_a.veth_host}/master").resolve().name
    assert master == settings.bridge
    with Server(a.pid, 80, "a"):
        assert connect(b.pid, str(info_a.ip), 80) == f"a sees {info_b.ip}"
    with Server(b.pid, 53, "b", protocol="udp"):
        assert connect(a.pid, str(info_b.ip), 53, "udp") == f"b sees {info_a.ip}"
    with Server(a.pid, 81, "a"):  # and the host reaches the container's address directly
        assert connect(None, str(info_a.ip), 81) == f"a sees {info_a.gateway}"


def test_published_port_answers_on_host_loopback(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    holder = holders.new()
    port = free_port()
    info = network.attach(
        cid(1), holder.pid, "bridge", [network.parse_port(f"{port}:80")], settings
    )
    assert info.ports == [network.PortMapping(host_port=port, container_port=80)]
    with Server(holder.pid, 80, "web"):
        # masqueraded to the bridge address, so the container can answer
        assert connect(None, "127.0.0.1", port) == f"web sees {info.gateway}"
        # bound to 127.0.0.1 only: another local address does not lead there
        assert connect(None, "127.0.0.2", port).startswith("FAILED")


def test_publish_on_every_address_udp_and_any_free_port(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    holder = holders.new()
    every, udp = free_port(), free_port("udp")
    wanted = [f"0.0.0.0:{every}:80", f"{udp}:53/udp", "8080"]
    info = network.attach(
        cid(1), holder.pid, "bridge", [network.parse_port(p) for p in wanted], settings
    )
    chosen = info.ports[2].host_port
    assert chosen > 0 and info.ports[2].container_port == 8080
    assert sorted(published_ports(settings)) == sorted(str(p) for p in info.ports)
    with Server(holder.pid, 80, "web"), Server(holder.pid, 53, "dns", protocol="udp"):
        assert connect(None, "127.0.0.2", every).startswith("web sees")
        assert connect(None, "127.0.0.1", every).startswith("web sees")
        assert connect(None, "127.0.0.1", udp, "udp").startswith("dns sees")
    with Server(holder.pid, 8080, "app"):
        assert connect(None, "127.0.0.1", chosen).startswith("app sees")


def test_port_conflicts_are_refused_and_leave_nothing(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    a, b = holders.new(), holders.new()
    port = free_port()
    network.attach(cid(1), a.pid, "bridge", [network.parse_port(f"{port}:80")], settings)
    with pytest.raises(NetworkError, match=f"container {cid(1)[:12]}"):
        network.attach(cid(2), b.pid, "bridge", [network.parse_port(f"{port}:81")], settings)
    with socket.socket() as program:  # a host program already listening on the port
        program.bind(("127.0.0.1", 0))
        program.listen()
        taken = program.getsockname()[1]
        with pytest.raises(NetworkError, match="already in use on the host"):
            network.attach(cid(2), b.pid, "bridge", [network.parse_port(f"{taken}:80")], settings)
    with pytest.raises(NetworkError, match="not an address of this host"):
        network.attach(cid(2), b.pid, "bridge", [network.parse_port("192.0.2.99:9:9")], settings)
    assert network.inspect(cid(2), settings) is None
    assert not Path(f"/sys/class/net/{network.veth_name(cid(2))}").exists()
    assert run_in(b.pid, "ip", "-o", "link").stdout.count("\n") == 1  # no eth0 left
    with Server(a.pid, 80, "a"):
        assert connect(None, "127.0.0.1", port).startswith("a sees")


def test_attach_to_a_dead_process_fails_cleanly(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    gone = holders.new()
    gone.kill()
    with pytest.raises(NetworkError, match=str(gone.pid)):
        network.attach(cid(1), gone.pid, "bridge", [], settings)
    assert network.inspect(cid(1), settings) is None
    assert not Path(f"/sys/class/net/{network.veth_name(cid(1))}").exists()


@contextlib.contextmanager
def outside(settings: Settings, holders: Holders) -> Iterator[tuple[int, str, str, str]]:
    """An 'outside' netns the host reaches through a veth of its own on a free /24:
    (its holder's pid, the host's end, the far end, the host's link name)."""
    far = holders.new()
    taken = [*netscope.routes(), ipaddress.IPv4Network(settings.subnet)]
    link = ipaddress.IPv4Network(netscope.free_subnet(sys.maxsize % 9973, taken))
    host_end, far_end = f"{link.network_address + 1}", f"{link.network_address + 2}"
    uplink = f"cbxo{os.getpid()}"  # the session's (tests/support/leaks.py)
    subprocess.run(
        ["ip", "link", "add", uplink, "type", "veth", "peer", "name", "eth0",
         "netns", str(far.pid)],
        check=True,
    )
    try:
        subprocess.run(["ip", "addr", "add", f"{host_end}/24", "dev", uplink], check=True)
        subprocess.run(["ip", "link", "set", uplink, "up"], check=True)
        run_in(far.pid, "ip", "addr", "add", f"{far_end}/24", "dev", "eth0")
        run_in(far.pid, "ip", "link", "set", "eth0", "up")
        yield far.pid, host_end, far_end, uplink
    finally:
        subprocess.run(["ip", "link", "del", uplink], check=False)


def test_traffic_out_is_masqueraded(env: tuple[Settings, Holders]) -> None:
    """A container reaches an 'outside' netns through the host, seen as the host."""
    settings, holders = env
    container = holders.new()
    with outside(settings, holders) as (far, host_end, far_end, _):
        info = network.attach(cid(1), container.pid, "bridge", [], settings)
        with Server(far, 7000, "outside"):
            assert connect(container.pid, far_end, 7000) == f"outside sees {host_end}"
        assert info.ip not in host_end


def test_a_container_cannot_ask_the_cloud_metadata_service(
    env: tuple[Settings, Holders],
) -> None:
    """169.254.169.254 (the instance's credentials on AWS, GCP, Azure) is closed to
    containers but for DNS. The address lives in a netns of this test, routed from the
    host through the test's own veth, so nothing is ever sent to a real metadata service."""
    settings, holders = env
    container = holders.new()
    metadata = nat.METADATA
    with outside(settings, holders) as (far, host_end, far_end, uplink):
        run_in(far, "ip", "addr", "add", f"{metadata}/32", "dev", "eth0")
        subprocess.run(
            ["ip", "route", "add", f"{metadata}/32", "via", far_end, "dev", uplink], check=True
        )
        network.attach(cid(1), container.pid, "bridge", [], settings)
        with Server(far, 80, "metadata", address=metadata), \
                Server(far, 53, "dns", address=metadata):
            assert connect(None, metadata, 80) == f"metadata sees {host_end}"  # control
            assert connect(container.pid, metadata, 80, timeout=1) == "FAILED timed out"
            assert connect(container.pid, metadata, 53) == f"dns sees {host_end}"
            nat.run_nft(f"flush chain ip {settings.bridge} guard\n", what="drop the guard")
            try:
                answer = connect(container.pid, metadata, 80, timeout=2)
                assert answer == f"metadata sees {host_end}", "control: without the guard"
            finally:
                nat.run_nft(
                    nat.table_script(settings.bridge, ipaddress.IPv4Network(settings.subnet)),
                    what="restore the table",
                )


def test_a_container_cannot_reach_host_loopback_services(env: tuple[Settings, Holders]) -> None:
    """route_localnet is on for the bridge; the guard chain keeps 127/8 closed to containers.

    The container routes 127.0.0.1 out of eth0 to the bridge (what a hostile one would do);
    without the guard the host's loopback-only service answers it (checked as a control).
    """
    settings, holders = env
    holder = holders.new()
    info = network.attach(cid(1), holder.pid, "bridge", [], settings)
    script = f"""set -e
sysctl -qw net.ipv4.conf.eth0.route_localnet=1 net.ipv4.conf.all.route_localnet=1
ip rule del pref 0 lookup local
ip rule add pref 100 lookup local
ip route add 127.0.0.1/32 via {info.gateway} dev eth0 table 50
ip rule add pref 10 to 127.0.0.1/32 lookup 50
"""
    done = run_in(holder.pid, "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    with socket.socket() as service:
        service.bind(("127.0.0.1", 0))
        service.listen()
        port = service.getsockname()[1]
        threading.Thread(target=_answer_forever, args=(service,), daemon=True).start()
        assert connect(None, "127.0.0.1", port) == "host loopback"
        assert connect(holder.pid, "127.0.0.1", port, timeout=1) == "FAILED timed out"
        nat.run_nft(f"flush chain ip {settings.bridge} guard\n", what="drop the guard")
        try:
            answer = connect(holder.pid, "127.0.0.1", port, timeout=2)
            assert answer == "host loopback", "control: without the guard the trick works"
        finally:
            nat.run_nft(
                nat.table_script(settings.bridge, ipaddress.IPv4Network(settings.subnet)),
                what="restore the table",
            )


def _answer_forever(service: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the test closes the socket
        while True:
            conn, _ = service.accept()
            with conn:
                conn.sendall(b"host loopback")


def test_detach_removes_veth_lease_and_rules(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    holder, other = holders.new(), holders.new()
    port = free_port()
    info = network.attach(
        cid(1), holder.pid, "bridge", [network.parse_port(f"{port}:80")], settings
    )
    network.attach(cid(2), other.pid, "bridge", [], settings)
    assert network.inspect(cid(1), settings) == info
    assert published_ports(settings) == [str(info.ports[0])]
    network.detach(cid(1), settings)
    assert not Path(f"/sys/class/net/{info.veth_host}").exists()
    assert run_in(holder.pid, "ip", "-o", "link").stdout.count("\n") == 1
    assert network.inspect(cid(1), settings) is None
    assert published_ports(settings) == []
    leases_file = Path(settings.run) / "network" / settings.bridge / "leases.json"
    leases = json.loads(leases_file.read_text())
    assert list(leases["leases"]) == [cid(2)]
    with Server(holder.pid, 80, "gone", address="127.0.0.1"):
        assert connect(None, "127.0.0.1", port).startswith("FAILED")
    network.detach(cid(1), settings)  # idempotent
    assert network.inspect(cid(2), settings) is not None


def test_attach_again_after_a_crash_keeps_the_address(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    first = holders.new()
    port = free_port()
    ports = [network.parse_port(f"{port}:80")]
    before = network.attach(cid(1), first.pid, "bridge", ports, settings)
    first.kill()  # the container died and nobody detached
    again = holders.new()
    after = network.attach(cid(1), again.pid, "bridge", ports, settings)
    assert (after.ip, after.ports) == (before.ip, before.ports)
    with Server(again.pid, 80, "again"):
        assert connect(None, "127.0.0.1", port).startswith("again sees")


def test_concurrent_attach_from_threads_and_from_a_running_loop(
    env: tuple[Settings, Holders],
) -> None:
    settings, holders = env
    boxes = [holders.new() for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        infos = list(
            pool.map(
                lambda n: network.attach(cid(n), boxes[n].pid, "bridge", [], settings), range(6)
            )
        )
    assert len({info.ip for info in infos}) == 6

    async def kernel_like() -> tuple[str | None, str | None]:
        # the Jupyter kernel: calls from its loop's thread and from an executor thread
        one, two = holders.new(), holders.new()
        direct = network.attach(cid(10), one.pid, "bridge", [], settings)
        loop = asyncio.get_running_loop()
        threaded = await loop.run_in_executor(
            None, network.attach, cid(11), two.pid, "bridge", [], settings
        )
        network.detach(cid(10), settings)
        await loop.run_in_executor(None, network.detach, cid(11), settings)
        return direct.ip, threaded.ip

    direct, threaded = asyncio.run(kernel_like())
    assert direct and threaded and direct != threaded
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda n: network.detach(cid(n), settings), range(6)))
    assert not any(Path(f"/sys/class/net/{network.veth_name(cid(n))}").exists() for n in range(6))


def test_a_process_in_the_host_netns_is_refused(env: tuple[Settings, Holders]) -> None:
    settings, _ = env
    with pytest.raises(NetworkError, match="shares the host's network namespace"):
        network.attach(cid(1), os.getpid(), "bridge", [], settings)
    assert not Path(f"/sys/class/net/{network.veth_name(cid(1))}").exists()
    assert network.inspect(cid(1), settings) is None
