"""The nft batches cellbox writes, and its reading of nft's JSON listing. Pure."""

from __future__ import annotations

import ipaddress
import json

import pytest
from cellbox.runtime import nat
from cellbox.runtime.errors import NetworkError
from cellbox.runtime.portmap import parse_port

SUBNET = ipaddress.IPv4Network("10.89.0.0/16")
CID = "ab" * 32


def published(spec: str, ip: str = "10.89.0.2", cid: str = CID) -> nat.Published:
    return nat.Published(parse_port(spec), ipaddress.IPv4Address(ip), cid)


def test_table_script_replaces_the_table_atomically() -> None:
    lines = nat.table_script("cellbox0", SUBNET).splitlines()
    # add+delete first: one transaction that works whether or not the table exists
    assert lines[:3] == [
        "add table ip cellbox0",
        "delete table ip cellbox0",
        "add table ip cellbox0",
    ]


def test_table_script_masquerades_the_subnet_and_guards_localhost() -> None:
    script = nat.table_script("cellbox0", SUBNET)
    assert 'postrouting ip saddr 10.89.0.0/16 oifname != "cellbox0" masquerade' in script
    assert 'postrouting oifname "cellbox0" ip saddr 127.0.0.0/8 masquerade' in script
    assert 'guard iifname "cellbox0" ip daddr 127.0.0.0/8 drop' in script
    assert 'guard iifname "cellbox0" ip daddr 169.254.169.254 tcp dport != 53 drop' in script
    assert "type filter hook prerouting priority raw" in script
    assert 'forward iifname "cellbox0" accept' in script


def test_table_script_carries_the_published_ports() -> None:
    script = nat.table_script("br0", SUBNET, [published("8080:80")])
    assert script.endswith(
        f'add element ip br0 publish_addr {{ 127.0.0.1 . tcp . 8080 comment "{CID}" : '
        "10.89.0.2 . 80 }\n"
    )


def test_every_address_goes_to_the_protocol_port_map() -> None:
    script = nat.publish_script("br0", [published("0.0.0.0:53:5353/udp", "10.89.0.9")])
    assert script == (
        f'add element ip br0 publish_any {{ udp . 53 comment "{CID}" : 10.89.0.9 . 5353 }}\n'
    )


def test_unpublish_deletes_by_key_only() -> None:
    script = nat.unpublish_script("br0", [parse_port("8080:80"), parse_port("0.0.0.0:9:9")])
    assert script.splitlines() == [
        "delete element ip br0 publish_addr { 127.0.0.1 . tcp . 8080 }",
        "delete element ip br0 publish_any { tcp . 9 }",
    ]
    assert nat.unpublish_script("br0", []) == ""


@pytest.mark.parametrize("name", ["", "x" * 16, 'br"0', "br 0", "br;0", "brö"])
def test_odd_bridge_names_never_reach_nft(name: str) -> None:
    with pytest.raises(NetworkError):
        nat.table_script(name, SUBNET)


@pytest.mark.parametrize("cid", ['a" drop', "a b", "é"])
def test_odd_container_ids_never_reach_nft(cid: str) -> None:
    with pytest.raises(NetworkError):
        nat.publish_script("br0", [published("80:80", cid=cid)])


# What `nft -j list table ip cbxftest` printed on this machine (nftables 1.0.6).
LISTING = {
    "nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "cbxftest", "handle": 7}},
        {
            "map": {
                "family": "ip",
                "name": "publish_addr",
                "table": "cbxftest",
                "type": ["ipv4_addr", "inet_proto", "inet_service"],
                "handle": 1,
                "map": "ipv4_addr . inet_service",
                "elem": [
                    [
                        {
                            "elem": {
                                "val": {"concat": ["127.0.0.1", "tcp", 8080]},
                                "comment": "abc123",
                            }
                        },
                        {"concat": ["10.250.0.2", 80]},
                    ],
                    [{"concat": ["192.0.2.2", 17, 53]}, {"concat": ["10.250.0.4", 5353]}],
                ],
            }
        },
        {
            "map": {
                "family": "ip",
                "name": "publish_any",
                "table": "cbxftest",
                "type": ["inet_proto", "inet_service"],
                "handle": 2,
                "map": "ipv4_addr . inet_service",
                "elem": [
                    [
                        {"elem": {"val": {"concat": ["udp", 5353]}, "comment": "def456"}},
                        {"concat": ["10.250.0.3", 53]},
                    ]
                ],
            }
        },
        {"chain": {"family": "ip", "table": "cbxftest", "name": "publish", "handle": 4}},
    ]
}


def test_parse_published_reads_both_maps() -> None:
    found = nat.parse_published(json.dumps(LISTING))
    assert found == [
        nat.Published(
            parse_port("127.0.0.1:8080:80"), ipaddress.IPv4Address("10.250.0.2"), "abc123"
        ),
        nat.Published(parse_port("192.0.2.2:53:5353/udp"), ipaddress.IPv4Address("10.250.0.4"), ""),
        nat.Published(
            parse_port("0.0.0.0:5353:53/udp"), ipaddress.IPv4Address("10.250.0.3"), "def456"
        ),
    ]


def test_parse_published_of_an_empty_table() -> None:
    empty = {"nftables": [{"map": {"name": "publish_addr", "type": "x"}}]}
    assert nat.parse_published(json.dumps(empty)) == []


@pytest.mark.parametrize(
    "listing",
    [
        "not json",
        json.dumps({"nftables": [{"map": {"name": "publish_any", "elem": [[1, 2]]}}]}),
        json.dumps(
            {
                "nftables": [
                    {
                        "map": {
                            "name": "publish_any",
                            "elem": [[{"concat": ["icmp", 1]}, {"concat": ["10.0.0.2", 1]}]],
                        }
                    }
                ]
            }
        ),
    ],
)
def test_parse_published_refuses_what_it_does_not_understand(listing: str) -> None:
    with pytest.raises(NetworkError, match="cannot understand"):
        nat.parse_published(listing)


def test_nft_error_tells_missing_from_existing() -> None:
    missing = nat.NftError("x", "Error: Could not process rule: No such file or directory")
    exists = nat.NftError("x", "Error: Could not process rule: File exists")
    assert missing.missing and not missing.exists
    assert exists.exists and not exists.missing
