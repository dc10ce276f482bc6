"""``network.prune`` after crashes: what dead containers left goes, live ones keep working."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cellbox.runtime import nat, network
from cellbox.runtime.settings import Settings

from tests.support.netns import Holders, Server, bridge_env, connect


def cid(n: int) -> str:
    return f"{n:02x}" * 32


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Settings, Holders]]:
    with bridge_env(tmp_path / "run") as made:
        yield made


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def exists(link: str) -> bool:
    return Path(f"/sys/class/net/{link}").exists()


def test_prune_after_a_crash_then_when_unused(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    dead, alive = holders.new(), holders.new()
    dead_port, alive_port = free_port(), free_port()
    network.attach(cid(1), dead.pid, "bridge", [network.parse_port(f"{dead_port}:80")], settings)
    info = network.attach(
        cid(2), alive.pid, "bridge", [network.parse_port(f"{alive_port}:80")], settings
    )
    dead.kill()  # crash: nobody calls detach
    removed = network.prune({cid(2)}, settings)
    assert f"lease {network.inspect(cid(2), settings) and ''}" not in removed
    assert any(item.startswith("lease ") and cid(1)[:12] in item for item in removed)
    assert network.inspect(cid(1), settings) is None
    assert not exists(network.veth_name(cid(1)))
    assert [str(p.port) for p in nat.list_published(settings.bridge) or []] == [str(info.ports[0])]
    with Server(alive.pid, 80, "alive"):
        assert connect(None, "127.0.0.1", alive_port).startswith("alive sees")
    assert network.prune({cid(2)}, settings) == []  # nothing more to do

    alive.kill()
    removed = network.prune(set(), settings)
    assert f"bridge {settings.bridge}" in removed
    assert f"nft table ip {settings.bridge}" in removed
    assert not exists(settings.bridge)
    assert not nat.table_exists(settings.bridge)
    assert not (Path(settings.run) / "network" / settings.bridge / "leases.json").exists()
    assert network.prune(set(), settings) == []


def test_prune_removes_a_live_holders_veth_when_its_container_is_gone(
    env: tuple[Settings, Holders],
) -> None:
    # the container record is gone (not in live_ids) though something still holds the netns
    settings, holders = env
    holder = holders.new()
    info = network.attach(cid(1), holder.pid, "bridge", [], settings)
    removed = network.prune(set(), settings)
    assert f"veth {info.veth_host}" in removed
    assert f"bridge {settings.bridge}" in removed
    assert not exists(str(info.veth_host))


def test_prune_rebuilds_a_damaged_lease_file(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    keep, lose = holders.new(), holders.new()
    port = free_port()
    kept = network.attach(cid(1), keep.pid, "bridge", [network.parse_port(f"{port}:80")], settings)
    lost = network.attach(cid(2), lose.pid, "bridge", [], settings)
    leases = Path(settings.run) / "network" / settings.bridge / "leases.json"
    leases.write_text("{damaged")
    removed = network.prune({cid(1)}, settings)
    assert removed == [f"damaged lease file {leases}", f"veth {lost.veth_host}"]
    # the live container's lease is back, from its veth's alias and its port's comment
    assert network.inspect(cid(1), settings) == kept
    assert exists(str(kept.veth_host)) and exists(settings.bridge)
    with Server(keep.pid, 80, "kept"):
        assert connect(None, "127.0.0.1", port).startswith("kept sees")
    # and the freed address is not handed out twice
    again = network.attach(cid(3), holders.new().pid, "bridge", [], settings)
    assert again.ip != kept.ip


def test_prune_removes_stale_published_ports(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    holder = holders.new()
    network.attach(cid(1), holder.pid, "bridge", [], settings)
    stale = nat.Published(
        network.parse_port(f"{free_port()}:80"), ipaddress.IPv4Address("10.255.255.9"), cid(7)
    )
    nat.run_nft(nat.publish_script(settings.bridge, [stale]), what="plant a stale port")
    removed = network.prune({cid(1)}, settings)
    assert removed == [f"published port {stale.port}"]
    assert nat.list_published(settings.bridge) == []


def test_prune_removes_a_table_left_without_its_bridge(env: tuple[Settings, Holders]) -> None:
    settings, _ = env
    nat.run_nft(
        nat.table_script(settings.bridge, ipaddress.IPv4Network(settings.subnet)),
        what="plant a table",
    )
    assert network.prune(set(), settings) == [f"nft table ip {settings.bridge}"]
    assert not nat.table_exists(settings.bridge)


def test_prune_on_a_clean_machine_does_nothing(env: tuple[Settings, Holders]) -> None:
    settings, _ = env
    assert network.prune(set(), settings) == []


def test_detach_works_with_a_damaged_lease_file(env: tuple[Settings, Holders]) -> None:
    settings, holders = env
    holder, other = holders.new(), holders.new()
    info = network.attach(
        cid(1), holder.pid, "bridge", [network.parse_port(f"{free_port()}:80")], settings
    )
    kept = network.attach(cid(2), other.pid, "bridge", [], settings)
    (Path(settings.run) / "network" / settings.bridge / "leases.json").write_text("[]")
    network.detach(cid(1), settings)
    assert not exists(str(info.veth_host))
    assert nat.list_published(settings.bridge) == []
    assert exists(str(kept.veth_host))
    network.detach(cid(1), settings)  # still idempotent
