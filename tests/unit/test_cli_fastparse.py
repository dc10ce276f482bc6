"""``cli_containers.parse_fast``: the argparse-free parser of run/create/exec gives exactly
what argparse gives, or steps aside (None) so that argparse answers as it always did."""

from __future__ import annotations

import argparse

import pytest
from cellbox.runtime import cli_containers


def with_argparse(command: str, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"cellbox {command}")
    cli_containers.setup(command, parser)
    return parser.parse_args(argv)


SAME = [
    ("run", ["busybox"]),
    ("run", ["busybox", "true"]),
    ("run", ["--rm", "busybox", "true"]),
    ("run", ["--rm", "--network", "none", "busybox", "true"]),
    ("run", ["--network=host", "--name=web", "busybox"]),
    ("run", ["--net", "bridge", "-p", "8080:80", "-p", "127.0.0.1:9000:90/udp", "busybox"]),
    ("run", ["-d", "--rm", "-it", "--name", "x", "-e", "A=1", "-eB=2", "-e", "C", "busybox",
             "sh", "-c", "echo $A"]),
    ("run", ["-dit", "busybox", "sh"]),
    ("run", ["-ite", "A=1", "busybox"]),
    ("run", ["-itv/tmp:/data:ro", "busybox"]),
    ("run", ["-w", "/srv", "-u", "1000:1000", "-m", "64m", "--memory-swap", "128m",
             "--cpus", "0.5", "--pids-limit", "10", "--hostname", "box", "--entrypoint",
             "/bin/sh", "-l", "a=b", "--label", "c=d", "--pull", "never", "--keep",
             "busybox"]),
    ("run", ["--entrypoint", "", "busybox", "ls", "-l", "--rm", "-x"]),
    ("run", ["busybox", "ls", "-l", "--rm"]),
    ("run", ["busybox", "--rm"]),
    ("run", ["--name=", "busybox"]),
    ("run", ["-", "true"]),
    ("run", ["", "true"]),
    ("create", ["--rm", "-t", "busybox", "sleep", "1d"]),
    ("create", ["busybox"]),
    ("exec", ["box", "true"]),
    ("exec", ["-it", "--control-fd", "5", "-e", "X=1", "box", "bash", "-l"]),
    ("exec", ["--control-fd=7", "-w", "/tmp", "-u", "nobody", "box", "sh", "-c", "id"]),
    ("exec", ["-i", "box"]),
    ("exec", ["box", "sh", "-i", "-c", "x"]),
]


@pytest.mark.parametrize(("command", "argv"), SAME)
def test_the_common_forms_parse_as_argparse_parses_them(command: str, argv: list[str]) -> None:
    parsed = cli_containers.parse_fast(command, argv)
    expected = with_argparse(command, argv)
    assert parsed is not None
    handler, namespace = parsed
    assert vars(namespace) == vars(expected)
    assert handler is cli_containers.setup(command, argparse.ArgumentParser())


@pytest.mark.parametrize("argv", [
    ["--rm", "busybox", "true"],
    ["-it", "--name", "x", "-e", "A=1", "busybox", "sh"],
    ["-d", "--network", "none", "busybox", "sleep", "1d"],
])
def test_the_forms_the_benchmark_and_the_kernel_use_never_need_argparse(argv: list[str]) -> None:
    assert cli_containers.parse_fast("run", argv) is not None
    assert cli_containers.parse_fast("exec", ["-i", "-t", "--control-fd", "3", "box", "sh"])


@pytest.mark.parametrize(("command", "argv"), [
    ("run", ["--help"]),
    ("run", ["-h"]),
    ("run", ["--nam", "x", "busybox"]),           # abbreviation: argparse's rules
    ("run", ["--network", "wifi", "busybox"]),    # a bad choice: argparse says so
    ("run", ["--rm=yes", "busybox"]),
    ("run", ["-x", "busybox"]),
    ("run", ["--name"]),
    ("run", ["--memory-swap", "-1", "busybox"]),  # a value that looks like an option
    ("run", ["-e=A=1", "busybox"]),
    ("run", ["--", "busybox"]),
    ("run", []),
    ("run", ["--rm"]),
    ("exec", ["--control-fd", "five", "box", "true"]),
    ("exec", ["box", "--", "true"]),
    ("exec", ["box", "sh", "-i", "--", "x"]),       # "--" anywhere: argparse's own rules
    ("run", ["busybox", "ls", "--", "-x"]),
    ("start", ["box"]),
    ("ps", []),
])
def test_anything_else_is_left_to_argparse(command: str, argv: list[str]) -> None:
    assert cli_containers.parse_fast(command, argv) is None


def test_argparse_still_reads_what_parse_fast_leaves(capsys: pytest.CaptureFixture[str]) -> None:
    assert vars(with_argparse("run", ["--memory-swap", "-1", "busybox"]))["memory_swap"] == "-1"
    with pytest.raises(SystemExit):
        with_argparse("run", ["--network", "wifi", "busybox"])
    assert "invalid choice" in capsys.readouterr().err
