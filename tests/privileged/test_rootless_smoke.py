"""Rootless: an unprivileged user runs a command in a busybox rootfs, in a user namespace."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.rootfs import unpacked

USER = "cellbox-test"  # made by scripts/test.sh, with a subordinate id range
SRC = str(Path(__file__).resolve().parents[2])

SCRIPT = r"""
import sys
from cellbox.runtime.sandbox import SandboxSpec, ProcessSpec, start_sandbox
from cellbox.runtime.nsexec import exec_in
base, lower, mode = sys.argv[1], sys.argv[2], sys.argv[3]
spec = SandboxSpec(
    id="rootless", hostname="rootless-box", lower_dirs=[lower], upper_dir=base + "/upper",
    work_dir=base + "/work", state_dir=base + "/state", log_path=base + "/state/log.jsonl",
    namespaces=["user", "mount", "uts", "ipc", "pid", "net", "cgroup"],
    process=ProcessSpec(args=[] if mode == "exec" else ["sh", "-c", sys.argv[4]],
                        env=["PATH=/bin:/sbin:/usr/bin"]))
handle = start_sandbox(spec, attach=True)
if mode == "exec":
    import subprocess
    code = subprocess.run([sys.executable, "-c",
        "import sys; from cellbox.runtime.nsexec import exec_in;"
        f"sys.exit(exec_in({handle.pid}, {{'args': ['sh', '-c', sys.argv[1]]}}))",
        sys.argv[4]]).returncode
    handle.signal(15)
    handle.wait()
    sys.exit(code)
sys.exit(handle.wait().code)
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"no user {USER} (scripts/test.sh creates it)")
    scope = os.environ.get("CELLBOX_TEST_SCOPE", "cbxtest")
    base = Path(tempfile.mkdtemp(prefix=f"rootless-{scope}-", dir="/tmp"))
    base.chmod(0o755)
    # A rootless store unpacks layers as the user (root inside the container).
    shutil.copytree(unpacked("busybox"), base / "lower", symlinks=True)
    for path in [base / "lower", *(base / "lower").rglob("*")]:
        os.lchown(path, user.pw_uid, user.pw_gid)
    container = base / "container"
    for d in ("", "upper", "work", "state"):
        (container / d).mkdir(exist_ok=True)
        os.chown(container / d, user.pw_uid, user.pw_gid)
    yield base
    shutil.rmtree(base)


def run_as_user(base: Path, mode: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", USER, "--", sys.executable, "-c", SCRIPT,
         str(base / "container"), str(base / "lower"), mode, script],
        cwd="/tmp", capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": SRC},
    )


def test_rootless_run(workdir: Path) -> None:
    result = run_as_user(workdir, "run",
                         "id -u; hostname; ls /sys/class/net; echo hi > /root/f; ls /dev | wc -l; "
                         "grep -E '^(CapEff|Seccomp):' /proc/self/status; "
                         "grep ' /dev/pts ' /proc/self/mountinfo; exit 3")
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["0", "rootless-box", "lo", "15"]
    assert "CapEff:\t00000000a80425fb" in lines and "Seccomp:\t2" in lines
    assert "gid=" in lines[-1]  # the subordinate range maps group tty (5)
    written = workdir / "container/upper/root/f"
    assert written.read_text() == "hi\n"
    assert written.stat().st_uid == pwd.getpwnam(USER).pw_uid  # root inside is the user


def test_rootless_exec(workdir: Path) -> None:
    result = run_as_user(workdir, "exec", "id -u; hostname; cat /proc/1/cmdline | tr '\\0' ' '")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["0", "rootless-box"]
    assert lines[2].strip() == "cellbox-init"
