"""libnftables through ctypes and the ``nft`` command do the same thing."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest
from cellbox.runtime import nat, nft
from cellbox.runtime.portmap import parse_port

TABLE = f"cbxnft{os.getpid()}"[:15]


@pytest.fixture
def table() -> str:
    yield TABLE
    nft.run_command(f"delete table ip {TABLE}\n")


def _listing(result: nft.Result) -> list[object]:
    assert result.ok, result.error
    return [entry for entry in json.loads(result.output)["nftables"] if "metainfo" not in entry]


def test_library_is_there_and_agrees_with_the_command(table: str) -> None:
    assert nft.library() is not None, "libnftables1 is a dependency of nftables"
    item = nat.Published(parse_port("0.0.0.0:8080:80"), ipaddress.IPv4Address("10.9.0.2"), "ab")
    script = nat.table_script(table, ipaddress.IPv4Network("10.9.0.0/24"), [item])
    assert nft.run(script).ok
    by_library = _listing(nft.run(f"list table ip {table}", json_output=True))
    by_command = _listing(nft.run_command(f"list table ip {table}", json_output=True))
    assert by_library == by_command
    assert nat.list_published(table) == [item]
    # the same script again replaces the table in one transaction, through the command too
    assert nft.run_command(script).ok
    assert nat.list_published(table) == [item]


def test_both_report_errors_alike(table: str) -> None:
    for run in (nft.run, nft.run_command):
        result = run(f"delete element ip {table} publish_any {{ tcp . 1 }}\n")
        assert not result.ok and "No such file or directory" in result.error
    with pytest.raises(nat.NftError) as caught:
        nat.run_nft(f"add element ip {table} nosuch {{ 1 }}\n", what="test")
    assert caught.value.missing
    assert nat.table_exists(table) is False
    assert nat.list_published(table) is None
    assert nat.delete_table(table) is False
