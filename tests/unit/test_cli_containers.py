"""The container commands' parsing and tables (runtime/cli_containers.py), without root."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cellbox.runtime import cli_containers
from cellbox.runtime.container import Container
from cellbox.runtime.containerstate import ContainerConfig, ContainerState, boot_id
from cellbox.runtime.errors import ConfigError
from cellbox.runtime.settings import Settings


def parse(command: str, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"cellbox {command}")
    cli_containers.setup(command, parser)
    return parser.parse_args(argv)


def test_run_flags_become_a_config(tmp_path: Path) -> None:
    args = parse("run", [
        "-d", "--rm", "-it", "--name", "web", "-e", "A=1", "-v", f"{tmp_path}:/data:ro",
        "-p", "8080:80", "-w", "/srv", "-u", "1000", "--memory", "64m", "--memory-swap",
        "-1", "--cpus", "0.5", "--pids-limit", "64", "--network", "bridge",
        "--hostname", "box", "--entrypoint", "/bin/sh", "-l", "team=a",
        "busybox", "-c", "echo hi",
    ])
    config = cli_containers.config_from_args(args)
    assert args.detach
    assert config.image == "busybox" and config.name == "web"
    assert config.entrypoint == ["/bin/sh"] and config.command == ["-c", "echo hi"]
    assert config.memory == 64 << 20 and config.memory_swap == -1
    assert config.cpus == 0.5 and config.pids_limit == 64
    assert config.volumes[0].readonly and config.volumes[0].destination == "/data"
    assert str(config.ports[0]) == "127.0.0.1:8080->80/tcp"
    assert config.tty and config.interactive and config.auto_remove
    assert config.labels == {"team": "a"} and config.hostname == "box"


def test_command_options_after_the_image_belong_to_the_command() -> None:
    config = cli_containers.config_from_args(parse("run", ["busybox", "ls", "-l", "--rm"]))
    assert config.command == ["ls", "-l", "--rm"] and not config.auto_remove


def test_no_command_means_the_image_default() -> None:
    config = cli_containers.config_from_args(parse("create", ["busybox"]))
    assert config.command is None and config.entrypoint is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--memory", "lots", "busybox"], "--memory"),
        (["--cpus", "x", "busybox"], "--cpus"),
        (["--pids-limit", "many", "busybox"], "--pids-limit"),
        (["-p", "99999:80", "busybox"], "port"),
        (["-v", "/does/not/exist:/x", "busybox"], "does not exist"),
        (["-l", "=x", "busybox"], "--label"),
    ],
)
def test_bad_flags_are_config_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cli_containers.config_from_args(parse("run", argv))


def test_exec_parses_options_before_the_name() -> None:
    args = parse("exec", ["-it", "--control-fd", "5", "-e", "X=1", "box", "bash", "-l"])
    assert (args.tty, args.interactive, args.control_fd) == (True, True, 5)
    assert args.container == "box" and args.command == ["bash", "-l"]


def test_ps_table(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    running = Container(
        ContainerConfig(image="docker.io/library/busybox:latest", name="web", id="a" * 64,
                        command=["sleep", "1d"], created="2024-01-01T00:00:00.000000Z"),
        ContainerState(status="exited", exit_code=137, oom_killed=True,
                       finished_at="2024-01-01T00:00:05.000000Z", boot_id=boot_id()),
        settings,
    )
    created = Container(
        ContainerConfig(image="debian", name="k", id="b" * 64, keep=True,
                        command=["x" * 40], created="2024-01-01T00:00:00.000000Z"),
        ContainerState(status="created"), settings,
    )
    text = cli_containers.render_ps([running, created])
    header, first, second = text.splitlines()
    assert header.split()[:2] == ["CONTAINER", "ID"]
    assert first.startswith("a" * 12) and '"sleep 1d"' in first
    assert "Exited (137) (OOM killed)" in first and first.endswith("web")
    assert '"(keep)"' in second and "Created" in second
