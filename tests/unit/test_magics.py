"""The magics parser: what a cell asks for, and clear errors for what it gets wrong."""

from __future__ import annotations

import pytest
from cellbox.kernel.magics import (
    MAGICS,
    Cell,
    CommitMagic,
    ContainerfileMagic,
    ContainerMagic,
    ContainerSpec,
    HelpMagic,
    ImagesMagic,
    LayersMagic,
    LogsMagic,
    MagicError,
    PsMagic,
    PullMagic,
    PushMagic,
    RmiMagic,
    RmMagic,
    RunMagic,
    StatsMagic,
    StopMagic,
    TagMagic,
    Volume,
    help_text,
    parse_cell,
    usage,
)
from cellbox.runtime.errors import ConfigError


def spec(text: str) -> ContainerSpec:
    cell = parse_cell(text)
    assert len(cell.magics) == 1 and isinstance(cell.magics[0], ContainerMagic)
    return cell.magics[0].spec


def test_a_cell_without_magics_is_all_code() -> None:
    assert parse_cell("ls -l\necho hi") == Cell((), "ls -l\necho hi", None)


def test_container_with_every_option() -> None:
    got = spec(
        "%container debian:bookworm --name work --memory 512m --cpus 1.5 --pids-limit 100 "
        "--network bridge -v data:/data -v /srv/x:/x:ro -e A=1 -e B=two=2 -w /work -u 1000:100 "
        "--shell /bin/zsh --fresh --pull always -p 8080:80 -p 127.0.0.1:53:53/udp"
    )
    assert got == ContainerSpec(
        image="debian:bookworm", name="work", memory=512 << 20, cpus=1.5, pids_limit=100,
        network="bridge", volumes=(Volume("data", "/data"), Volume("/srv/x", "/x", True)),
        env=(("A", "1"), ("B", "two=2")), workdir="/work", user="1000:100", shell="/bin/zsh",
        fresh=True, pull="always", ports=("8080:80", "127.0.0.1:53:53/udp"),
    )


def test_option_spellings() -> None:
    assert spec("%container busybox --memory=64m").memory == 64 << 20
    assert spec("%container -m 1g busybox").memory == 1 << 30
    assert spec("%container busybox -eX=1").env == (("X", "1"),)
    assert spec("%container busybox -e 'GREETING=hello world'").env == (
        ("GREETING", "hello world"),
    )
    assert spec("%container busybox # a comment").image == "busybox"


def test_code_keeps_line_numbers_and_magics_after_code_are_refused() -> None:
    cell = parse_cell("# setup\n%container busybox \\\n  --memory 64m\n\necho one\necho two")
    assert cell.code.split("\n") == ["# setup", "", "", "", "echo one", "echo two"]
    assert spec("%container busybox \\\n  --memory 64m").memory == 64 << 20
    with pytest.raises(MagicError, match="comes after shell code"):
        parse_cell("echo one\n%stats")


def test_job_specs_are_shell_code() -> None:
    for line in ("%1", "%+", "%-", "%%", "%?sleep"):
        assert parse_cell(line).code == line
    with pytest.raises(MagicError, match=r"no magic %contaner.*fg %contaner"):
        parse_cell("%contaner busybox")


def test_cell_magic() -> None:
    cell = parse_cell("%%container debian --memory 1g\npython3 --version")
    assert cell.cell_container == ContainerMagic(ContainerSpec("debian", memory=1 << 30), True)
    assert cell.code == "\npython3 --version"
    assert parse_cell("\n%%container other\nls").cell_container is not None
    with pytest.raises(MagicError, match="first line"):
        parse_cell("%stats\n%%container other\nls")


@pytest.mark.parametrize(
    ("line", "magic"),
    [
        ("%ps", PsMagic()),
        ("%ps -a", PsMagic(all=True)),
        ("%images", ImagesMagic()),
        ("%pull alpine:3", PullMagic("alpine:3")),
        ("%logs", LogsMagic()),
        ("%logs --tail 20", LogsMagic(20)),
        ("%stats", StatsMagic()),
        ("%layers", LayersMagic()),
        ("%commit me/img:v1 -m 'first cut'", CommitMagic("me/img:v1", "first cut")),
        ("%stop", StopMagic()),
        ("%stop other", StopMagic("other")),
        ("%rm -f other", RmMagic("other", True)),
        ("%rmi busybox", RmiMagic(("busybox",))),
        ("%rmi -f localhost:5000/me/hello a:1", RmiMagic(("localhost:5000/me/hello", "a:1"), True)),
        ("%rmi sha256:0123abcd", RmiMagic(("sha256:0123abcd",))),
        ("%tag busybox localhost:5000/me/box:v1", TagMagic("busybox", "localhost:5000/me/box:v1")),
        ("%run hello-world", RunMagic(("hello-world",))),
        ("%run --network none busybox echo hi", RunMagic(("--network", "none", "busybox", "echo",
                                                          "hi"))),
        ("%push me/img:v1", PushMagic("me/img:v1")),
        ("%push me/img:v1 127.0.0.1:5000/me/img", PushMagic("me/img:v1", "127.0.0.1:5000/me/img")),
        ("%help", HelpMagic()),
        ("%help container", HelpMagic("container")),
    ],
)
def test_each_magic(line: str, magic: object) -> None:
    assert parse_cell(line).magics == (magic,)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%container", "IMAGE is missing"),
        ("%container a b", "unexpected argument"),
        ("%container busybox --memory", "--memory needs a value"),
        ("%container busybox --memory lots", "'lots' is not a size"),
        ("%container busybox --memory 1m", "smallest memory limit is 6m"),
        ("%container busybox --cpus 0", "at least 0.01"),
        ("%container busybox --cpus x", "not a number of CPUs"),
        ("%container busybox --pids-limit many", "not a whole number"),
        ("%container busybox --network wifi", "use none, bridge or host"),
        ("%container busybox -v data", "HOST:CONTAINER"),
        ("%container busybox -v a:b", "must be absolute"),
        ("%container busybox -v a:/b:rx", "ro or rw"),
        ("%container busybox -e NOVALUE", "KEY=VALUE"),
        ("%container busybox -w tmp", "must be absolute"),
        ("%container busybox -u 'a b'", "user name or uid"),
        ("%container busybox --shell bash", "absolute path"),
        ("%container busybox --pull often", "always, missing or never"),
        ("%container busybox -p 80", "HOST_PORT:CONTAINER_PORT"),
        ("%container busybox -p 0:80", "from 1 to 65535"),
        ("%container busybox --name 'no spaces'", "--name"),
        ("%container busybox --fresh=yes", "takes no value"),
        ("%container busybox --nope", "unknown option --nope"),
        ("%container -x busybox", "unknown option -x"),
        ("%container 'busybox", "cannot split"),
        ("%container ../etc", "not an image reference"),
        ("%ps --all-of-them", "unknown option"),
        ("%images x", "unexpected argument"),
        ("%pull", "IMAGE is missing"),
        ("%logs --tail -1", "--tail"),
        ("%stats now", "unexpected"),
        ("%layers -a", "unknown option"),
        ("%commit", "REF is missing"),
        ("%stop a b", "unexpected"),
        ("%rm --all", "unknown option"),
        ("%run", "IMAGE is missing"),
        ("%rmi", "REF is missing"),
        ("%rmi -f", "REF is missing"),
        ("%rmi --all x", "unknown option --all"),
        ("%rmi ok ../etc", "'../etc' is not an image reference"),
        ("%tag", "SOURCE and TARGET are missing"),
        ("%tag busybox", "TARGET is missing"),
        ("%tag a b c", "unexpected argument(s): c"),
        ("%tag a -b", "unknown option -b"),
        ("%help nosuch", "no magic called 'nosuch'"),
        ("%push", "REF is missing"),
        ("%push a b c", "unexpected"),
        ("%%containerfile\nFROM x", "REF is missing"),
        ("%%containerfile img --build-arg NOVALUE\nFROM x", "NAME=VALUE"),
        ("%%containerfile img --network wifi\nFROM x", "none, bridge or host"),
        ("ls\n%%containerfile img\nFROM x", "comes after shell code"),
    ],
)
def test_bad_magics_say_what_is_wrong_and_how_to_do_it(line: str, message: str) -> None:
    with pytest.raises(MagicError) as info:
        parse_cell(line)
    assert message in str(info.value)
    assert "usage: %" in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_identity_ignores_how_not_what() -> None:
    a = spec("%container busybox --memory 64m")
    b = spec("%container busybox --memory 64m --fresh --pull always --shell /bin/sh")
    c = spec("%container busybox --memory 65m")
    assert a.identity() == b.identity()
    assert a.identity() != c.identity()


def test_help_names_every_magic_and_each_has_usage() -> None:
    text = help_text()
    for name in MAGICS:
        assert f"%{name}" in text
        assert usage(name).startswith(f"usage: %{name}")
    assert "%%container" in text
    assert help_text("%%container").startswith("usage: %%container")
    assert "--memory" in help_text("%container")


def test_has_code() -> None:
    assert not parse_cell("%container busybox\n\n# only a comment").has_code
    assert parse_cell("%container busybox\nls").has_code


def test_containerfile_cell() -> None:
    cell = parse_cell("%%containerfile me/img:v1 --build-arg PY=3.11 --no-cache \\\n"
                      "  --target base --network bridge --pull\nFROM debian\nRUN true")
    assert cell.containerfile == ContainerfileMagic(
        "me/img:v1", "FROM debian\nRUN true", (("PY", "3.11"),), True, "base", "bridge",
        True, 3,
    )
    assert cell.code == "" and not cell.has_code


def test_help_puts_each_usage_on_its_own_line_with_the_description_under_it() -> None:
    lines = help_text().split("\n")
    assert max(map(len, lines)) <= 88
    for name in ("container", "%container", "ps", "rmi", "tag", "%containerfile", "help"):
        synopsis = usage(name).split("\n")[0].removeprefix("usage: ")
        start = lines.index(synopsis)  # the synopsis (or its first part) alone on a line
        following = lines[start + 1]
        assert following.startswith("  ") and following.strip()  # then indented text
    rmi = lines.index("%rmi [-f] REF...")
    assert lines[rmi + 1].startswith("    Remove stored images")
    build = next(i for i, line in enumerate(lines) if line.startswith("%%containerfile REF"))
    assert lines[build + 1].startswith("  [")  # the synopsis goes on, less indented
    assert lines[build + 2].startswith("    Build the rest of the cell")


def test_usage_text_is_wrapped_and_keeps_the_option_table() -> None:
    text = usage("container")
    assert max(map(len, text.split("\n"))) <= 88
    assert "\n  --memory M             memory limit, e.g. 512m or 2g\n" in text
    assert "\n\nOptions:\n" in text
    build = usage("%containerfile").split("\n")
    assert build[0].startswith("usage: %%containerfile REF")
    assert build[1].startswith("       [")  # under the synopsis, not inside a [...] group
