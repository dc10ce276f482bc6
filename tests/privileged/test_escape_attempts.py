"""Classic container escapes, tried for real from inside (root in the container, Docker's
default capabilities). Each must fail, and the host must not change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cellbox.runtime.sandbox import SandboxHandle, start_sandbox

from tests.support.rootfs import exec_argv, new_spec, run, unpacked

CWD = str(Path(__file__).resolve().parents[2])
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def debian() -> Path:
    return unpacked("debian")


def python_in(tmp_path: Path, debian: Path, code: str, **kw: object) -> dict[str, str]:
    result = run(new_spec(tmp_path, debian, ["python3", "-c", code], **kw))
    assert result.code == 0, result
    out: dict[str, str] = json.loads(result.stdout)
    return out


def test_chroot_dotdot_escape_stays_in_the_container(tmp_path: Path, debian: Path) -> None:
    code = r"""
import json, os
os.makedirs("/jail", exist_ok=True)
outside = os.open("/", os.O_RDONLY)
os.chroot("/jail")            # CAP_SYS_CHROOT is in the default set
os.fchdir(outside)            # a cwd outside the new root...
for _ in range(64):
    os.chdir("..")            # ...climbed as far as it goes
os.chroot(".")
print(json.dumps({"root": sorted(os.listdir("/")),
                  "hostname": open("/etc/hostname").read().strip()}))
"""
    got = python_in(tmp_path, debian, code, etc_files={"/etc/hostname": "jailbox\n"})
    assert got["hostname"] == "jailbox"
    assert "work" not in got["root"] and "jail" in got["root"]  # the container's root


PID1_CODE = r"""
import ctypes, errno, json, os
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as exc:
        out[name] = errno.errorcode[exc.errno]
attempt("root", lambda: os.listdir("/proc/1/root/"))
attempt("cwd", lambda: os.listdir("/proc/1/cwd/"))
# Listing /proc/1/fd shows fd numbers (root owns the directory, as in Docker); following
# one needs ptrace access, which PID 1 (not dumpable) refuses.
attempt("fd_link", lambda: os.readlink("/proc/1/fd/0"))
attempt("fd3", lambda: open("/proc/1/fd/3", "rb").read(1))
attempt("exe", lambda: open("/proc/1/exe", "rb").read(1))
attempt("exe_write", lambda: open("/proc/1/exe", "r+b"))
attempt("mem", lambda: open("/proc/1/mem", "rb"))
attempt("environ", lambda: open("/proc/1/environ", "rb").read())
attempt("ns", lambda: os.open("/proc/1/ns/mnt", os.O_RDONLY))
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
for name, req in (("ptrace_attach", PTRACE_ATTACH), ("ptrace_seize", PTRACE_SEIZE)):
    r = libc.ptrace(ctypes.c_long(req), ctypes.c_long(1), None, None)
    out[name] = "ok" if r == 0 else errno.errorcode[ctypes.get_errno()]
print(json.dumps(out))
"""


def test_pid1_cannot_be_inspected_or_traced(tmp_path: Path, debian: Path) -> None:
    got = python_in(tmp_path, debian, PID1_CODE)
    assert all(value in ("EACCES", "EPERM") for value in got.values()), got


@pytest.fixture
def idle(tmp_path: Path, debian: Path) -> Iterator[SandboxHandle]:
    spec = new_spec(tmp_path, debian, [])
    with start_sandbox(spec) as handle:
        yield handle
        handle.signal(signal.SIGKILL)
        handle.wait(10)


def test_exec_processes_cannot_reach_pid1_or_the_host(idle: SandboxHandle) -> None:
    code = PID1_CODE.replace("print(json.dumps(out))", """
stat = open("/proc/self/stat").read()
out["ppid"] = stat[stat.rindex(")") + 2:].split()[1]
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(json.dumps(out))""")
    result = subprocess.run(exec_argv(idle.pid, {"args": ["python3", "-c", code], "env": [PATH]}),
                            cwd=CWD, capture_output=True, text=True, timeout=60)
    got = json.loads(result.stdout)
    assert got.pop("ppid") == "0"  # its parent (the exec relay) is outside the namespace
    assert max(got.pop("pids")) < 100
    assert all(value in ("EACCES", "EPERM") for value in got.values()), got


def test_sys_and_proc_writes_fail(tmp_path: Path, debian: Path) -> None:
    code = r"""
import errno, json
out = {}
for path, data in (("/sys/kernel/uevent_helper", "/evil"), ("/sys/class/net/lo/mtu", "1000"),
                   ("/proc/sys/kernel/core_pattern", "|/evil"), ("/proc/sysrq-trigger", "h"),
                   ("/sys/fs/cgroup/memory/release_agent", "/evil"),
                   ("/sys/fs/cgroup/memory/notify_on_release", "1")):
    try:
        with open(path, "w") as f:
            f.write(data)
        out[path] = "ok"
    except OSError as exc:
        out[path] = errno.errorcode[exc.errno]
print(json.dumps(out))
"""
    got = python_in(tmp_path, debian, code)
    assert all(value in ("EROFS", "ENOENT", "EACCES", "EPERM") for value in got.values()), got
    assert got["/proc/sys/kernel/core_pattern"] == "EROFS"
    assert got["/sys/class/net/lo/mtu"] == "EROFS"
    assert Path("/proc/sys/kernel/core_pattern").read_text() != "|/evil\n"


def test_host_disk_node_cannot_be_opened(tmp_path: Path, debian: Path) -> None:
    dev = os.stat("/").st_dev
    code = rf"""
import errno, json, os
out = {{}}
for path in ("/tmp/disk", "/dev/disk", "/dev/shm/disk"):
    try:
        os.mknod(path, 0o600 | 0o060000, {dev})   # S_IFBLK: CAP_MKNOD allows making it
        out[path + " mknod"] = "ok"
        os.open(path, os.O_RDONLY)
        out[path] = "ok"
    except OSError as exc:
        out[path] = errno.errorcode[exc.errno]
print(json.dumps(out))
"""
    got = python_in(tmp_path, debian, code)
    for path in ("/tmp/disk", "/dev/disk", "/dev/shm/disk"):
        assert got[path] in ("EACCES", "EPERM"), got


def test_open_by_handle_shocker_fails(tmp_path: Path, debian: Path) -> None:
    # "Shocker": open_by_handle_at with a guessed handle of the host's root inode.
    code = r"""
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
handle = (ctypes.c_char * 16)(*b"\x08\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00")
r = libc.open_by_handle_at(ctypes.c_int(-100), handle, ctypes.c_int(0))
print(json.dumps({"open_by_handle_at": "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]}))
"""
    assert python_in(tmp_path, debian, code) == {"open_by_handle_at": "EPERM"}


def test_mount_namespace_cannot_be_left(tmp_path: Path, debian: Path) -> None:
    # setns into the host's mount namespace via a host pid is impossible: no host pids are
    # visible, and setns itself is refused.
    code = r"""
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open("/proc/self/ns/mnt", os.O_RDONLY)
r = libc.setns(fd, 0)
print(json.dumps({"setns": "ok" if r == 0 else errno.errorcode[ctypes.get_errno()]}))
"""
    assert python_in(tmp_path, debian, code) == {"setns": "EPERM"}


def test_mounts_cannot_be_aimed_at_proc_or_sys(tmp_path: Path) -> None:
    # A persistent upper dir (or image) may hold /etc/hosts -> /proc/sys/kernel/core_pattern:
    # the host's /etc/hosts file must not be mounted over a kernel interface.
    from cellbox.runtime.errors import SandboxError
    from cellbox.runtime.sandbox import MountSpec

    busybox = unpacked("busybox")
    layer = tmp_path / "layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "hosts").symlink_to("/proc/sys/kernel/core_pattern")
    spec = new_spec(tmp_path, [layer, busybox], ["true"],
                    etc_files={"/etc/hosts": "127.0.0.1 localhost\n"})
    with pytest.raises(SandboxError, match="resolves into /proc or /sys"):
        start_sandbox(spec)
    volume = tmp_path / "vol"
    volume.mkdir()
    for destination in ("/sys/kernel", "/proc/../proc/sys"):
        spec = new_spec(tmp_path, busybox, ["true"], mounts=[MountSpec(str(volume), destination)])
        with pytest.raises(SandboxError, match="resolves into /proc or /sys"):
            start_sandbox(spec)
