"""``-p`` parsing and port mappings: what a user types and what cellbox makes of it."""

from __future__ import annotations

import pytest
from cellbox.runtime.errors import ConfigError
from cellbox.runtime.network import PortMapping, parse_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080:80", PortMapping(host_port=8080, container_port=80)),
        ("80", PortMapping(host_port=0, container_port=80)),
        ("127.0.0.1:8080:80/udp", PortMapping(8080, 80, "udp", "127.0.0.1")),
        ("0.0.0.0:8080:80", PortMapping(8080, 80, "tcp", "0.0.0.0")),
        ("192.0.2.7::53/UDP", PortMapping(0, 53, "udp", "192.0.2.7")),
        (":8080:80", PortMapping(8080, 80)),
        (" 9000:9000/tcp ", PortMapping(9000, 9000)),
        ("65535:1", PortMapping(65535, 1)),
    ],
)
def test_parse_port_accepts_docker_forms(text: str, expected: PortMapping) -> None:
    assert parse_port(text) == expected


def test_default_host_address_is_loopback_not_every_address() -> None:
    # the deliberate difference from Docker: a notebook's port stays on the machine
    assert parse_port("8080:80").host_ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        ("8080:80/sctp", "protocol"),
        ("8080:http", "container port"),
        ("x:80", "host port"),
        ("8000-8010:80", "ranges"),
        ("[::1]:8080:80", "IPv6"),
        ("1.2.3.4:1:2:3", "bad port mapping"),
        ("256.0.0.1:8080:80", "host address"),
        ("224.0.0.1:8080:80", "unicast"),
        ("70000:80", "1-65535"),
        ("8080:0", "port 0"),
        ("0:80", "port 0"),
        ("8080:123456", "container port"),
        ("localhost:8080:80", "host address"),
    ],
)
def test_parse_port_rejects_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_port(text)


def test_port_mapping_reads_like_docker_ps() -> None:
    assert str(parse_port("127.0.0.1:8080:80/udp")) == "127.0.0.1:8080->80/udp"


def test_json_round_trip_and_bad_json() -> None:
    port = parse_port("0.0.0.0:8443:443")
    assert PortMapping.from_json(port.to_json()) == port
    with pytest.raises(ConfigError):
        PortMapping.from_json({"host_port": 1})
    with pytest.raises(ConfigError):
        PortMapping.from_json(["8080", "80"])
    with pytest.raises(ConfigError, match="protocol"):
        PortMapping.from_json({**port.to_json(), "protocol": "icmp"})


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        ("8080:80", "8080:81", True),
        ("8080:80", "8081:80", False),
        ("8080:80", "8080:80/udp", False),
        ("0.0.0.0:8080:80", "127.0.0.1:8080:81", True),
        ("192.0.2.1:8080:80", "127.0.0.1:8080:80", False),
    ],
)
def test_clashes_means_one_host_socket(a: str, b: str, clash: bool) -> None:
    assert parse_port(a).clashes(parse_port(b)) is clash
    assert parse_port(b).clashes(parse_port(a)) is clash
