"""The network API's checks and its no-op paths, which need neither root nor pyroute2."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
from cellbox.runtime import network
from cellbox.runtime.errors import ConfigError
from cellbox.runtime.settings import Settings

CID = "0123456789abcdef" * 4


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(root=tmp_path / "root", run=tmp_path / "run", bridge="cbxunit0")


@pytest.mark.parametrize("mode", ["none", "host"])
def test_none_and_host_need_no_work(mode: str, settings: Settings) -> None:
    info = network.attach(CID, 12345, mode, [], settings)
    assert info == network.NetworkInfo(mode=mode)
    assert info.to_json()["ports"] == []
    assert not (Path(settings.run) / "network").exists()


@pytest.mark.parametrize("mode", ["none", "host"])
def test_ports_without_a_bridge_are_refused(mode: str, settings: Settings) -> None:
    with pytest.raises(ConfigError, match="--network bridge"):
        network.attach(CID, 12345, mode, [network.parse_port("8080:80")], settings)


def test_unknown_mode(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="none, bridge or host"):
        network.attach(CID, 12345, "overlay", [], settings)


@pytest.mark.parametrize("cid", ["", "abc", "../../etc", CID.upper(), CID + "0"])
def test_container_ids_are_checked(cid: str, settings: Settings) -> None:
    with pytest.raises(ConfigError, match="container id"):
        network.attach(cid, 12345, "bridge", [], settings)
    with pytest.raises(ConfigError, match="container id"):
        network.detach(cid, settings)


@pytest.mark.parametrize("bridge", ["", "0bridge", "cellbox-0", "a" * 16, "br;x"])
def test_bridge_names_are_checked(bridge: str, tmp_path: Path) -> None:
    settings = Settings(run=tmp_path, bridge=bridge)
    with pytest.raises(ConfigError, match="bridge name"):
        network.attach(CID, 12345, "bridge", [], settings)


def test_bad_subnet_setting_is_a_config_error(tmp_path: Path) -> None:
    settings = Settings(run=tmp_path, bridge="cbxunit0", subnet="10.89.0.0/33")
    with pytest.raises(ConfigError, match="subnet"):
        network.attach(CID, 12345, "bridge", [], settings)


def test_detach_and_inspect_of_a_container_never_attached(settings: Settings) -> None:
    network.detach(CID, settings)
    network.detach(CID, settings)
    assert network.inspect(CID, settings) is None


def test_veth_name_fits_ifnamsiz() -> None:
    assert network.veth_name(CID) == "cbx0123456789ab"
    assert len(network.veth_name(CID)) <= 15


def test_settings_read_bridge_and_subnet_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELLBOX_BRIDGE", "cbxenv0")
    monkeypatch.setenv("CELLBOX_SUBNET", "10.77.0.0/24")
    settings = Settings.load()
    assert (settings.bridge, settings.subnet) == ("cbxenv0", "10.77.0.0/24")


def test_importing_network_does_not_import_pyroute2_or_asyncio() -> None:
    # `cellbox run --network none` goes through this module; keep its imports lean
    code = (
        "import sys, cellbox.runtime.network, cellbox.runtime.loopback\n"
        "heavy = [m for m in ('pyroute2', 'asyncio', 'httpx') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_veth_alias_round_trip_and_foreign_aliases() -> None:
    ip = ipaddress.IPv4Address("10.89.0.7")
    assert network.parse_alias(network.veth_alias(CID, ip)) == (CID, ip)
    for alias in ["", "uplink", f"cellbox {CID}", f"cellbox ../x {ip}", f"cellbox {CID} 10.1"]:
        assert network.parse_alias(alias) is None


def test_bridge_without_root_says_to_use_none(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network.os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match="--network none"):
        network.attach(CID, 12345, "bridge", [], settings)


def test_preload_imports_pyroute2_in_the_background() -> None:
    code = (
        "import sys, time, cellbox.runtime.network as n\n"
        "t = time.perf_counter(); n.preload(); n.preload(); spent = time.perf_counter() - t\n"
        "deadline = time.monotonic() + 30\n"
        "while 'pyroute2.iproute.linux' not in sys.modules and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print(spent < 0.05, 'pyroute2.iproute.linux' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["True", "True"], out.stderr
