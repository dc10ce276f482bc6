"""What a workload sees from inside: its own namespaces, a minimal /dev, masked /proc, few
privileges, and a seccomp filter that refuses the calls Docker's default profile refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.rootfs import new_spec, run, unpacked

EXPECTED_DEV = sorted(["core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
                       "stderr", "stdin", "stdout", "tty", "urandom", "zero"])


@pytest.fixture(scope="module")
def busybox() -> Path:
    return unpacked("busybox")


@pytest.fixture(scope="module")
def debian() -> Path:
    return unpacked("debian")


def sh(tmp_path: Path, lower: Path | list[Path], script: str, **kw: object) -> str:
    result = run(new_spec(tmp_path, lower, ["sh", "-c", script], **kw))
    assert result.code == 0, result
    return result.stdout


def test_own_hostname_and_pid_namespace(tmp_path: Path, busybox: Path) -> None:
    out = sh(tmp_path, busybox, "hostname; ps -o pid,args; true", hostname="isolated-box")
    lines = out.splitlines()
    assert lines[0] == "isolated-box"
    pids = {line.split()[0]: line for line in lines[2:]}
    assert pids["1"].split()[1:] == ["cellbox-init"]  # not the host's command line
    assert len(pids) == 3, out  # init, sh, ps: nothing of the host


def test_only_loopback_and_it_is_up(tmp_path: Path, busybox: Path) -> None:
    out = sh(tmp_path, busybox, "ls /sys/class/net; cat /sys/class/net/lo/flags")
    assert out.split() == ["lo", "0x9"]  # IFF_UP | IFF_LOOPBACK


def test_no_host_mounts_are_visible(tmp_path: Path, busybox: Path) -> None:
    out = sh(tmp_path, busybox, "cat /proc/self/mountinfo",
             etc_files={"/etc/hosts": "127.0.0.1 localhost\n"})
    points = [line.split()[4] for line in out.splitlines()]
    allowed = ("/proc", "/dev", "/sys", "/etc/hosts")
    assert points[0] == "/"
    for point in points[1:]:
        assert point.startswith(allowed), out
    assert not any(str(tmp_path) in line.split()[4] for line in out.splitlines())
    # every filesystem but the rootfs and the bind of /etc/hosts is one of ours
    assert " - overlay " in out.splitlines()[0]


def test_dev_has_only_the_standard_nodes(tmp_path: Path, busybox: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "dev").mkdir(parents=True)
    (layer / "dev" / "from-image").write_text("secret")
    out = sh(tmp_path, [layer, busybox],
             "ls /dev; echo ---; ls -l /dev/pts; echo ---; echo x > /dev/null && cat /dev/zero"
             " | head -c 3 | wc -c; readlink /dev/ptmx")
    listing, pts, rest = out.split("---\n")
    assert sorted(listing.split()) == EXPECTED_DEV
    assert "ptmx" in pts
    assert rest.split() == ["3", "pts/ptmx"]


def test_devices_cannot_be_made_and_used(tmp_path: Path, busybox: Path) -> None:
    # CAP_MKNOD is in the default set, so mknod works — but /dev and the rootfs are nodev.
    out = sh(tmp_path, busybox,
             "mknod /dev/mem2 c 1 1 && echo made; head -c 1 /dev/mem2 2>&1; "
             "mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda 2>&1; chmod 600 /dev/null 2>&1; "
             "ls -l /dev/null")
    assert "made" in out
    assert out.count("Permission denied") == 2, out
    assert "Read-only file system" in out
    assert os.stat("/dev/null").st_mode & 0o777 == 0o666


def test_proc_is_masked_and_read_only(tmp_path: Path, busybox: Path) -> None:
    from cellbox.runtime.mounts import MASKED_PATHS

    masked = " ".join(MASKED_PATHS)
    out = sh(tmp_path, busybox,
             f"for p in {masked}; do if [ -d $p ]; then echo $p $(ls -A $p | wc -l); "
             "elif [ -e $p ]; then echo $p $(cat $p | wc -c); fi; done; echo ---; "
             "(echo 1 > /proc/sys/vm/drop_caches) 2>&1; touch /sys/x 2>&1; "
             "(echo 1 > /sys/fs/cgroup/x) 2>&1; "
             "[ -e /proc/sysrq-trigger ] && (echo h > /proc/sysrq-trigger) 2>&1; true")
    sizes, errors = out.split("---\n")
    present = [line.split() for line in sizes.splitlines()]
    expected = [p for p in MASKED_PATHS if os.path.exists(p)]
    assert [p for p, _ in present] == expected
    assert all(size == "0" for _, size in present), present
    lines = errors.splitlines()
    assert len(lines) == 3 + os.path.exists("/proc/sysrq-trigger"), errors
    assert all("Read-only file system" in line for line in lines), errors


def test_cgroup_namespace_shows_its_own_root(tmp_path: Path, busybox: Path) -> None:
    out = sh(tmp_path, busybox, "cat /proc/self/cgroup; ls /sys/fs/cgroup")
    for line in out.splitlines():
        if line.count(":") == 2:
            assert line.endswith(":/"), out
    assert "memory" in out.split()


def test_privileges_are_dropped(tmp_path: Path, busybox: Path) -> None:
    result = run(new_spec(tmp_path, busybox, ["grep", "-E", "^(Cap|NoNewPrivs|Seccomp:|Sig)",
                                              "/proc/self/status"]))
    status = dict(line.split(":\t") for line in result.stdout.splitlines())
    # Python's SIGPIPE/SIGXFSZ dispositions and PID 1's handlers do not leak in
    assert status["SigIgn"] == status["SigBlk"] == status["SigCgt"] == "0000000000000000"
    assert status["CapEff"] == status["CapBnd"] == "00000000a80425fb"
    assert status["CapInh"] == status["CapAmb"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"


def test_custom_capabilities(tmp_path: Path, busybox: Path) -> None:
    out = sh(tmp_path, busybox, "grep CapEff /proc/self/status; chown 1 /tmp 2>&1; true",
             capabilities=["NET_RAW"])
    assert "0000000000002000" in out
    assert "Operation not permitted" in out


def test_privileged_operations_fail(tmp_path: Path, busybox: Path) -> None:
    script = (
        "mount -t tmpfs x /mnt 2>&1; unshare -r true 2>&1; unshare -m true 2>&1; "
        "echo junk > /tmp/m.ko; insmod /tmp/m.ko 2>&1; "
        "hostname other 2>&1; chroot / true && echo chroot-ok; true"
    )
    out = sh(tmp_path, busybox, script)
    lines = out.splitlines()
    assert len(lines) == 6, out
    for line in lines[:5]:
        assert "not permitted" in line or "permission denied" in line.lower(), line
    assert lines[5] == "chroot-ok"


SYSCALLS = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17
results = {
    "unshare_user": call(272, CLONE_NEWUSER),
    "clone_newuser": call(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "clone_newnet": call(56, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0),
    "clone3": call(435, 0, 0),
    "keyctl": call(250, 0, 0, 0, 0, 0),
    "add_key": call(248, 0, 0, 0, 0, 0),
    "bpf": call(321, 0, 0, 0),
    "perf_event_open": call(298, 0, 0, 0, 0, 0),
    "userfaultfd": call(323, 0),
    "fsopen": call(430, 0, 0),
    "open_tree": call(428, 0, 0, 0),
    "io_uring_setup": call(425, 1, 0),
    "finit_module": call(313, 0, 0, 0),
    "personality_bad": call(135, 0x0040000),
    "personality_query": call(135, 0xffffffff),
    "setns": call(308, 0, 0),
    "reboot": call(169, 0, 0, 0, 0),
    "kexec_load": call(246, 0, 0, 0, 0),
}
pid = os.fork()
if pid == 0:
    os._exit(0 if call(56, SIGCHLD, 0, 0, 0, 0) else 1)  # plain clone: must work
os.waitpid(pid, 0)
results["fork"] = "ok"
results["python_unshare"] = "ok"
try:
    os.unshare(CLONE_NEWUSER)  # Python 3.12+
except AttributeError:
    results["python_unshare"] = call(272, CLONE_NEWUSER)
except OSError as exc:
    results["python_unshare"] = errno.errorcode[exc.errno]
for key, value in results.items():
    print(key, value)
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers of x86_64")
def test_seccomp_refuses_dangerous_syscalls(tmp_path: Path, debian: Path) -> None:
    result = run(new_spec(tmp_path, debian, ["python3", "-c", SYSCALLS]))
    assert result.code == 0, result
    got = dict(line.split() for line in result.stdout.splitlines())
    assert got.pop("clone3") == "ENOSYS"
    assert got.pop("personality_query") == "ok"
    assert got.pop("fork") == "ok"
    assert got == {key: "EPERM" for key in got}, got


def test_bind_through_an_image_symlink_stays_inside(tmp_path: Path, busybox: Path) -> None:
    # The image points /etc/evil at a host directory; a mount whose destination goes
    # through it must land inside the rootfs, and nothing may be created on the host.
    host_target = tmp_path / "host-target"
    host_target.mkdir()
    layer = tmp_path / "layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "evil").symlink_to(host_target)
    other_target = tmp_path / "other-target"
    other_target.mkdir()
    (layer / "etc" / "evil-rel").symlink_to("../../../../../../../../../../" + str(other_target))
    source = tmp_path / "volume"
    source.mkdir()
    from cellbox.runtime.sandbox import MountSpec

    spec = new_spec(tmp_path, [layer, busybox],
                    ["sh", "-c", "echo one > /etc/evil/sub/file && echo two > /etc/evil-rel/x"
                                 " && ls /etc/evil/sub"],
                    mounts=[MountSpec(str(source), "/etc/evil/sub"),
                            MountSpec(str(source), "/etc/evil-rel", readonly=False)])
    result = run(spec)
    assert result.code == 0, result
    assert sorted(p.name for p in source.iterdir()) == ["file", "x"]
    assert list(host_target.iterdir()) == list(other_target.iterdir()) == []  # nothing on the host
    inside = Path(spec.upper_dir) / str(host_target).lstrip("/")
    assert (inside / "sub").is_dir()


def test_readonly_bind_and_tmpfs(tmp_path: Path, busybox: Path) -> None:
    from cellbox.runtime.sandbox import MountSpec

    source = tmp_path / "ro"
    source.mkdir()
    (source / "data").write_text("content\n")
    out = sh(tmp_path, busybox,
             "cat /data/ro/data; touch /data/ro/new 2>&1; echo x > /scratch/f && cat /scratch/f;"
             " grep -E ' /(data/ro|scratch) ' /proc/self/mountinfo",
             mounts=[MountSpec(str(source), "/data/ro", readonly=True),
                     MountSpec("", "/scratch", kind="tmpfs", options=["size=1m"])])
    lines = out.splitlines()
    assert lines[0] == "content"
    assert "Read-only file system" in lines[1]
    assert lines[2] == "x"
    ro_line = next(line for line in lines if " /data/ro " in line)
    assert " ro," in ro_line and "nosuid" in ro_line and "nodev" in ro_line
    assert not (source / "new").exists()


def test_etc_files_are_bound_from_the_state_dir(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, ["sh", "-c", "cat /etc/hosts /etc/hostname"],
                    etc_files={"/etc/hosts": "10.0.0.1 db\n", "/etc/hostname": "sbxhost\n"})
    assert run(spec).stdout == "10.0.0.1 db\nsbxhost\n"


def test_host_network_keeps_the_host_interfaces(tmp_path: Path, busybox: Path) -> None:
    namespaces = ["mount", "uts", "ipc", "pid", "cgroup"]
    out = sh(tmp_path, busybox, "readlink /proc/self/ns/net; touch /sys/x 2>&1; true",
             namespaces=namespaces)
    lines = out.splitlines()
    assert lines[0] == os.readlink("/proc/self/ns/net")
    assert "Read-only file system" in lines[1]


def test_readonly_rootfs(tmp_path: Path, busybox: Path) -> None:
    out = sh(tmp_path, busybox, "touch /x 2>&1; touch /dev/shm/x && echo shm-ok",
             readonly_rootfs=True)
    assert "Read-only file system" in out and "shm-ok" in out
