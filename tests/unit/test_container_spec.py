"""Docker's rules for command, env, workdir, user, network, volumes, limits (containerspec)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cellbox.runtime.containerspec import (
    DEFAULT_PATH,
    check_limits_enforceable,
    merge_env,
    parse_env,
    parse_volume,
    resolve_command,
    resolve_config,
)
from cellbox.runtime.containerstate import ContainerConfig
from cellbox.runtime.errors import ConfigError
from cellbox.runtime.portmap import PortMapping

ID = "0123456789ab" + "c" * 52
IMAGE: dict[str, Any] = {
    "config": {
        "Entrypoint": ["/entry"],
        "Cmd": ["serve", "--port", "80"],
        "Env": ["PATH=/opt/bin:/bin", "LANG=C.UTF-8"],
        "WorkingDir": "/srv",
        "User": "app",
    }
}


def resolve(request: ContainerConfig, image: dict[str, Any] = IMAGE, **kw: Any) -> ContainerConfig:
    options: dict[str, Any] = {"container_id": ID, "created": "now", "rootless": False,
                               "online_cpus": 2, "environ": {"HOME": "/root"}}
    options.update(kw)
    return resolve_config(request, image, **options)


@pytest.mark.parametrize(
    ("entrypoint", "command", "expected"),
    [
        (None, None, (["/entry"], ["serve", "--port", "80"])),
        (None, ["ls"], (["/entry"], ["ls"])),
        (["/bin/sh"], None, (["/bin/sh"], [])),  # --entrypoint drops the image's Cmd
        (["/bin/sh"], ["-c", "id"], (["/bin/sh"], ["-c", "id"])),
        ([""], ["ls"], ([], ["ls"])),  # --entrypoint "" clears it
    ],
)
def test_command_resolution(entrypoint: list[str] | None, command: list[str] | None,
                            expected: tuple[list[str], list[str]]) -> None:
    assert resolve_command(IMAGE["config"], entrypoint, command) == expected


def test_a_hostile_config_field_is_ignored() -> None:
    assert resolve_command({"Entrypoint": "rm -rf /", "Cmd": [1, 2]}, None, None) == ([], [])


def test_env_merging() -> None:
    assert parse_env(["A=1", "HOME", "MISSING"], {"HOME": "/root"}) == ["A=1", "HOME=/root"]
    assert merge_env(["A=1", "B=2"], ["B=3", "C=4"]) == ["A=1", "B=3", "C=4"]
    with pytest.raises(ConfigError):
        parse_env(["=x"], {})


def test_full_resolution_with_image_defaults() -> None:
    config = resolve(ContainerConfig(image="img", env=["LANG=de_DE.UTF-8", "X=1"]))
    assert config.argv == ["/entry", "serve", "--port", "80"]
    assert config.env == ["PATH=/opt/bin:/bin", "LANG=de_DE.UTF-8", f"HOSTNAME={ID[:12]}",
                          "X=1"]
    assert config.workdir == "/srv"
    assert config.user == "app"
    assert config.hostname == ID[:12]
    assert config.network == "bridge"
    assert config.id == ID


def test_flags_win_over_the_image() -> None:
    config = resolve(ContainerConfig(image="img", workdir="/tmp/", user="0:0", hostname="box",
                                     network="none", tty=True))
    assert (config.workdir, config.user, config.hostname) == ("/tmp", "0:0", "box")
    assert "TERM=xterm" in config.env and "HOSTNAME=box" in config.env


def test_defaults_for_a_bare_image() -> None:
    config = resolve(ContainerConfig(image="img", command=["true"]), {})
    assert config.env[0] == DEFAULT_PATH
    assert (config.workdir, config.user) == ("/", "")


def test_an_image_without_a_command_needs_one() -> None:
    with pytest.raises(ConfigError, match="no command"):
        resolve(ContainerConfig(image="img"), {})
    assert resolve(ContainerConfig(image="img", keep=True), {}).argv == []


def test_network_rules() -> None:
    assert resolve(ContainerConfig(image="i"), rootless=True).network == "none"
    with pytest.raises(ConfigError, match="rootless"):
        resolve(ContainerConfig(image="i", network="bridge"), rootless=True)
    with pytest.raises(ConfigError, match="-p needs"):
        resolve(ContainerConfig(image="i", network="host", ports=[PortMapping(80, 80)]))
    with pytest.raises(ConfigError, match="--network"):
        resolve(ContainerConfig(image="i", network="weird"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"memory": 1 << 20}, "minimum is 6m"),
        ({"memory_swap": 1 << 30}, "needs --memory"),
        ({"memory": 1 << 30, "memory_swap": 1 << 29}, "at least --memory"),
        ({"cpus": 4.0}, "only 2 CPUs"),
        ({"pids_limit": 0}, "positive"),
        ({"workdir": "rel/dir"}, "absolute"),
        ({"hostname": "bad host"}, "--hostname"),
    ],
)
def test_bad_options(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(ContainerConfig(image="i", **fields))


def test_unlimited_swap_is_fine() -> None:
    config = resolve(ContainerConfig(image="i", memory=64 << 20, memory_swap=-1))
    assert config.memory_swap == -1


def test_volumes(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    volume = parse_volume("./data:/data:ro", cwd=str(tmp_path))
    assert (volume.source, volume.destination, volume.readonly) == (
        str(tmp_path / "data"), "/data", True)
    assert parse_volume(f"{tmp_path}:/mnt/x/").destination == "/mnt/x"
    for bad, message in [
        (f"{tmp_path}/missing:/x", "does not exist"),
        ("named:/x", "named volumes"),
        (f"{tmp_path}:rel", "absolute"),
        (f"{tmp_path}:/", "mount point"),
        (f"{tmp_path}:/a/../b", "mount point"),
        (f"{tmp_path}:/x:rx", "ro or rw"),
        ("justone", "HOST_PATH"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_volume(bad, cwd=str(tmp_path))


def test_rootless_v1_refuses_limits_plainly() -> None:
    config = ContainerConfig(image="i", memory=64 << 20, cpus=0.5)
    with pytest.raises(ConfigError, match="--memory, --cpus cannot be enforced"):
        check_limits_enforceable(config, rootless=True, cgroup_v1=True)
    check_limits_enforceable(config, rootless=False, cgroup_v1=True)
    check_limits_enforceable(ContainerConfig(image="i"), rootless=True, cgroup_v1=True)
