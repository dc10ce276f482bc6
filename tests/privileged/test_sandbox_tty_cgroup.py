"""A workload on a pty, attached and detached; cgroups joined, and an OOM kill reported."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cellbox.runtime import cgroups
from cellbox.runtime.linux import set_winsize
from cellbox.runtime.sandbox import start_sandbox

from tests.support.rootfs import log_records, new_spec, run, unpacked

CWD = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="module")
def busybox() -> Path:
    return unpacked("busybox")


def test_detached_tty_workload_is_logged(tmp_path: Path, busybox: Path) -> None:
    result = run(new_spec(tmp_path, busybox, ["sh", "-c", "tty; echo $TERM; exit 4"], tty=True))
    assert result.code == 4
    lines = result.stdout.splitlines()
    assert lines[0].startswith("/dev/pts/") and lines[1] == "xterm"


ATTACHED = r"""
import sys
from cellbox.runtime.sandbox import start_sandbox, SandboxSpec
spec = SandboxSpec.from_json(open(sys.argv[1]).read())
handle = start_sandbox(spec, attach=True, stdin=True)
sys.exit(handle.wait().code)
"""


def test_attached_tty_workload_relays_the_terminal(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, ["sh", "-c", "stty size; read x; echo got=$x"], tty=True)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    master, slave = os.openpty()
    set_winsize(slave, 21, 77)
    proc = subprocess.Popen([sys.executable, "-c", ATTACHED, str(spec_file)], cwd=CWD,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 20
    sent = False
    while b"got=hello" not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
        if b"21 77" in out and not sent:
            os.write(master, b"hello\r")
            sent = True
    assert proc.wait(20) == 0, out
    os.close(master)
    assert b"21 77" in out and b"got=hello" in out
    assert any(r["line"].startswith("got=hello") for r in log_records(spec))  # logged too


def test_attached_pipes_echo_and_log(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, ["sh", "-c", "cat; echo err >&2"])
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    result = subprocess.run([sys.executable, "-c", ATTACHED, str(spec_file)], cwd=CWD,
                            input="from stdin\n", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout == "from stdin\n" and result.stderr == "err\n"
    assert [(r["stream"], r["line"]) for r in log_records(spec)] == [
        ("stdout", "from stdin"), ("stderr", "err")]


def test_joins_cgroups_and_reports_oom(tmp_path: Path, busybox: Path) -> None:
    name = f"sbx-oom-{os.getpid()}"
    group = cgroups.create(name, cgroups.Limits(memory=32 << 20, memory_swap=32 << 20))
    try:
        oom_file = group.oom_kill_file()
        # tail keeps the whole line in memory: 200 MB of zeros without a newline
        spec = new_spec(tmp_path, busybox,
                        ["sh", "-c", "cat /proc/self/cgroup; head -c 200000000 /dev/zero | tail"],
                        cgroup_procs=[str(p) for p in group.procs_files()],
                        oom_file=str(oom_file) if oom_file else None)
        with start_sandbox(spec) as handle:
            assert handle.pid in group.pids()
            status = handle.wait(60)
        assert status is not None
        assert status.code == 0 or status.oom_killed  # sh survives; tail was killed
        assert status.oom_killed is True
        records = log_records(spec)
        assert any(":memory:/" in r["line"] for r in records)  # the cgroup namespace's root
    finally:
        group.remove()


def test_oom_killed_workload_exits_137(tmp_path: Path, busybox: Path) -> None:
    name = f"sbx-oom2-{os.getpid()}"
    group = cgroups.create(name, cgroups.Limits(memory=32 << 20, memory_swap=32 << 20))
    try:
        spec = new_spec(tmp_path, busybox, ["tail", "/dev/zero"],
                        cgroup_procs=[str(p) for p in group.procs_files()])
        status = run(spec)
        assert (status.code, status.signal, status.oom_killed) == (137, 9, True)
    finally:
        group.remove()
