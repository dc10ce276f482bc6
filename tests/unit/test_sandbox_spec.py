"""SandboxSpec as JSON, the exit status, and the pure parts of the workload's set-up."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from cellbox.runtime.mounts import _host_cgroup_mounts, resolve_in_root
from cellbox.runtime.sandbox import (
    ExitStatus,
    MountSpec,
    ProcessSpec,
    SandboxSpec,
    read_exit_status,
)
from cellbox.runtime.userns import _map, parse_subid
from cellbox.runtime.workload import (
    WorkloadError,
    build_env,
    find_program,
    parse_group,
    parse_passwd,
    resolve_user,
)

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment
user:x:1000:1000:user:/home/user:/bin/sh
broken line
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = "root:x:0:\nuser:x:1000:\nstaff:x:50:user,other\nwheel:x:10:root\nbad:x:zz:\n"


def test_spec_json_roundtrip() -> None:
    spec = SandboxSpec(
        id="abc", hostname="h", lower_dirs=["/l2", "/l1"], upper_dir="/u", work_dir="/w",
        state_dir="/s", log_path="/s/log.jsonl",
        process=ProcessSpec(args=["sh"], env=["A=1"], user="user", tty=True,
                            capabilities=["CAP_KILL"]),
        mounts=[MountSpec("/src", "/dst", readonly=True), MountSpec("", "/t", kind="tmpfs")],
        etc_files={"/etc/hosts": "x"}, uid_map=[(0, 1000, 1)], gid_map=[(0, 1000, 1)],
    )
    again = SandboxSpec.from_json(spec.to_json())
    assert again == spec
    assert again.namespaces == ["mount", "uts", "ipc", "pid", "net", "cgroup"]


def test_spec_json_ignores_unknown_keys() -> None:
    text = ('{"id": "a", "hostname": "h", "lower_dirs": [], "upper_dir": "", "work_dir": "",'
            ' "state_dir": "", "log_path": "", "future": 1, "process": {"args": [], "x": 2}}')
    assert SandboxSpec.from_json(text).process == ProcessSpec()


def test_exit_status_from_wait_status() -> None:
    assert ExitStatus.from_wait_status(3 << 8) == ExitStatus(3)
    assert ExitStatus.from_wait_status(signal.SIGKILL) == ExitStatus(137, 9)


def test_read_exit_status(tmp_path: Path) -> None:
    assert read_exit_status(str(tmp_path)) is None
    (tmp_path / "exit.json").write_text('{"code": 137, "signal": 9, "oom_killed": true}')
    assert read_exit_status(str(tmp_path)) == ExitStatus(137, 9, True)
    (tmp_path / "exit.json").write_text("{garbage")
    assert read_exit_status(str(tmp_path)) is None


def test_passwd_and_group_parsers() -> None:
    assert parse_passwd(PASSWD) == [("root", 0, 0, "/root"), ("user", 1000, 1000, "/home/user"),
                                    ("nobody", 65534, 65534, "/nonexistent")]
    assert ("staff", 50, ["user", "other"]) in parse_group(GROUP)
    assert all(name != "bad" for name, _, _ in parse_group(GROUP))


@pytest.mark.parametrize(("spec", "uid", "gid", "groups", "home"), [
    ("user", 1000, 1000, [50], "/home/user"),
    ("1000", 1000, 1000, [50], "/home/user"),
    ("user:wheel", 1000, 10, [50], "/home/user"),
    ("user:0", 1000, 0, [50], "/home/user"),
    ("4242", 4242, 0, [], "/"),
    ("4242:4243", 4242, 4243, [], "/"),
    ("root", 0, 0, [10], "/root"),
])
def test_resolve_user(spec: str, uid: int, gid: int, groups: list[int], home: str) -> None:
    user = resolve_user(spec, PASSWD, GROUP)
    assert (user.uid, user.gid, user.groups, user.home) == (uid, gid, groups, home)


def test_unknown_user_and_group() -> None:
    with pytest.raises(WorkloadError, match="unable to find user ghost"):
        resolve_user("ghost", PASSWD, GROUP)
    with pytest.raises(WorkloadError, match="unable to find group ghosts"):
        resolve_user("user:ghosts", PASSWD, GROUP)


def test_build_env_adds_docker_defaults() -> None:
    env = build_env(["A=1"], home="/root", hostname="box", tty=True)
    assert env[0].startswith("PATH=/usr/local/sbin")
    assert {"A=1", "HOSTNAME=box", "TERM=xterm", "HOME=/root"} <= set(env)
    kept = build_env(["PATH=/x", "HOME=/h", "TERM=dumb"], home="/root", hostname=None, tty=True)
    assert kept == ["PATH=/x", "HOME=/h", "TERM=dumb"]


def test_find_program(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "bin" / "data").write_text("")
    path = f"/nonexistent:{tmp_path / 'bin'}"
    assert find_program("tool", path) == str(tool)
    assert find_program("/abs/x", path) == "/abs/x"
    with pytest.raises(WorkloadError, match="executable file not found") as info:
        find_program("nope", path)
    assert info.value.exit_code == 127
    if os.geteuid() != 0:  # root may execute anything with an x bit... or none
        with pytest.raises(WorkloadError, match="permission denied"):
            find_program("data", path)


def test_parse_subid_and_maps() -> None:
    text = "alice:100000:65536\nbob:165536:65536\n1001:300000:10\nbad\nalice:x:1\n"
    assert parse_subid(text, "alice", 1000) == [(100000, 65536)]
    assert parse_subid(text, "carol", 1001) == [(300000, 10)]
    assert _map(1000, [(100000, 65536)]) == [(0, 1000, 1), (1, 100000, 65536)]


def test_host_cgroup_mounts() -> None:
    info = (
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        "50 1 0:40 / /mnt/other rw - cgroup cgroup rw,memory\n"
    )
    assert _host_cgroup_mounts(info) == [
        ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", ["rw", "cpu", "cpuacct"]),
        ("/sys/fs/cgroup/systemd", "cgroup", ["rw", "xattr", "name=systemd"]),
        ("/sys/fs/cgroup/unified", "cgroup2", ["rw"]),
    ]


def test_resolve_in_root_keeps_symlinks_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (root / "etc" / "abs").symlink_to(outside)
    (root / "etc" / "rel").symlink_to("../../../../.." + str(outside))
    (root / "etc" / "dangling").symlink_to("/run/stub/resolv.conf")
    (root / "loop").symlink_to("loop")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for link in ("abs", "rel"):
            made = resolve_in_root(fd, f"/etc/{link}/a/b", create="dir")
            os.close(made)
        made = resolve_in_root(fd, "/etc/dangling", create="file")
        os.close(made)
        with pytest.raises(OSError):
            resolve_in_root(fd, "/loop/x", create="dir")
        with pytest.raises(OSError):
            resolve_in_root(fd, "/etc/abs", follow_last=False)
        with pytest.raises(FileNotFoundError):
            resolve_in_root(fd, "/missing")
        parent = resolve_in_root(fd, "/etc/../../../etc")
        assert os.readlink(f"/proc/self/fd/{parent}") == str(root / "etc")
        os.close(parent)
    finally:
        os.close(fd)
    assert list(outside.iterdir()) == []
    assert (root / str(outside).lstrip("/") / "a" / "b").is_dir()
    assert (root / "run/stub/resolv.conf").is_file()
