"""The address allocator: pure lease table, and the locked lease file."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
from pathlib import Path

import pytest
from cellbox.runtime.errors import ConfigError, NetworkError
from cellbox.runtime.ipam import Lease, LeaseStore, LeaseTable, Subnet
from cellbox.runtime.portmap import parse_port

A = ipaddress.IPv4Address


def cid(n: int) -> str:
    return f"{n:064x}"


def test_subnet_gateway_and_range() -> None:
    subnet = Subnet.parse("10.89.0.0/16")
    assert str(subnet.gateway) == "10.89.0.1"
    assert str(subnet.first) == "10.89.0.2"
    assert str(subnet.last) == "10.89.255.254"
    assert subnet.prefix == 16
    assert A("10.89.0.1") not in subnet  # the gateway is the bridge's
    assert A("10.89.7.7") in subnet
    assert A("10.88.0.2") not in subnet


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("10.89.0.1/16", "host bits"),
        ("10.89.0.0/30", "too small"),
        ("127.0.0.0/8", "not usable"),
        ("fd00::/64", "IPv4"),
        ("banana", "IPv4"),
    ],
)
def test_subnet_rejects(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        Subnet.parse(text)


def test_addresses_are_handed_out_round_robin_not_reused_at_once() -> None:
    table = LeaseTable(Subnet.parse("10.9.0.0/24"))
    first = table.allocate(cid(1), "cbx1").ip
    second = table.allocate(cid(2), "cbx2").ip
    assert (str(first), str(second)) == ("10.9.0.2", "10.9.0.3")
    table.release(cid(1))
    # the just-freed .2 may still be in an ARP cache or conntrack: go on with .4
    assert str(table.allocate(cid(3), "cbx3").ip) == "10.9.0.4"


def test_allocation_wraps_around_and_runs_out() -> None:
    table = LeaseTable(Subnet.parse("10.9.0.0/29"))  # .2 - .6: five containers
    ips = [table.allocate(cid(n), f"v{n}").ip for n in range(5)]
    assert [str(ip) for ip in ips] == [f"10.9.0.{n}" for n in range(2, 7)]
    with pytest.raises(NetworkError, match="no free address"):
        table.allocate(cid(9), "v9")
    table.release(cid(2))
    assert str(table.allocate(cid(9), "v9").ip) == "10.9.0.4"  # the only free one


def test_a_container_keeps_its_address_when_attached_again() -> None:
    table = LeaseTable(Subnet.parse("10.9.0.0/24"))
    ip = table.allocate(cid(1), "v1").ip
    table.allocate(cid(2), "v2")
    again = table.allocate(cid(1), "v1", (parse_port("8080:80"),))
    assert again.ip == ip
    assert again.ports == (parse_port("8080:80"),)


def test_published_port_conflicts_name_the_other_container() -> None:
    table = LeaseTable(Subnet.parse("10.9.0.0/24"))
    table.allocate(cid(1), "v1", (parse_port("0.0.0.0:8080:80"),))
    with pytest.raises(NetworkError, match=cid(1)[:12]):
        table.allocate(cid(2), "v2", (parse_port("127.0.0.1:8080:80"),))
    assert cid(2) not in table.leases
    table.allocate(cid(2), "v2", (parse_port("8080:80/udp"),))  # another protocol is fine
    assert table.port_conflict(cid(1), parse_port("8080:80")) is None  # its own is no clash


def test_table_json_round_trip() -> None:
    table = LeaseTable(Subnet.parse("10.9.0.0/24"))
    table.allocate(cid(1), "v1", (parse_port("8080:80"), parse_port("0.0.0.0:53:53/udp")))
    table.allocate(cid(2), "v2")
    again = LeaseTable.from_json(json.loads(json.dumps(table.to_json())))
    assert again == table


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"version": 2, "subnet": "10.9.0.0/24", "leases": {}},
        {"version": 1, "subnet": "10.9.0.0/24", "leases": []},
        {"version": 1, "subnet": "10.9.0.0/24", "leases": {"a": {"ip": "x", "veth": "v"}}},
        {"version": 1, "subnet": "nope", "leases": {}},
    ],
)
def test_damaged_tables_are_refused(data: object) -> None:
    with pytest.raises((ValueError, TypeError, ConfigError)):
        LeaseTable.from_json(data)


def test_lease_from_json_checks_types() -> None:
    with pytest.raises(ValueError):
        Lease.from_json(cid(1), {"ip": "10.0.0.2", "veth": 5, "ports": []})


def test_store_saves_and_loads(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "network" / "br0", Subnet.parse("10.9.0.0/24"))
    with store.locked():
        assert store.load().leases == {}
        table = store.load()
        table.allocate(cid(1), "v1", (parse_port("8080:80"),))
        store.save(table)
    with store.locked():
        assert store.load() == table
        store.remove()
        store.remove()  # idempotent
        assert store.load().leases == {}
    assert (tmp_path / "network" / "br0" / "lock").exists()  # kept on purpose


def test_store_explains_a_damaged_file(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path, Subnet.parse("10.9.0.0/24"))
    store.path.write_text("{not json")
    with store.locked(), pytest.raises(NetworkError, match="cellbox prune"):
        store.load()


def test_store_refuses_a_subnet_change_while_leases_exist(tmp_path: Path) -> None:
    old = LeaseStore(tmp_path, Subnet.parse("10.9.0.0/24"))
    with old.locked():
        table = old.load()
        table.allocate(cid(1), "v1")
        old.save(table)
    new = LeaseStore(tmp_path, Subnet.parse("10.10.0.0/24"))
    with new.locked(), pytest.raises(NetworkError, match=r"10\.9\.0\.0/24"):
        new.load()
    with old.locked():
        table = old.load()
        table.release(cid(1))
        old.save(table)
    with new.locked():
        assert new.load().subnet == Subnet.parse("10.10.0.0/24")  # empty: free to change


def _allocate_many(directory: str, first: int, count: int) -> None:
    store = LeaseStore(Path(directory), Subnet.parse("10.9.0.0/22"))
    for n in range(first, first + count):
        with store.locked():
            table = store.load()
            table.allocate(cid(n), f"v{n}")
            store.save(table)


def test_concurrent_processes_never_share_an_address(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_allocate_many, args=(str(tmp_path), n * 100, 25)) for n in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    store = LeaseStore(tmp_path, Subnet.parse("10.9.0.0/22"))
    with store.locked():
        leases = store.load().leases
    assert len(leases) == 100
    assert len({lease.ip for lease in leases.values()}) == 100
