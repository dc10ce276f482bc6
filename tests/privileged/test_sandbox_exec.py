"""exec: a process joins a running container's namespaces, cgroup, privileges and pty."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cellbox.runtime.linux import set_winsize
from cellbox.runtime.sandbox import SandboxHandle, start_sandbox

from tests.support.rootfs import exec_argv, new_spec, unpacked

CWD = str(Path(__file__).resolve().parents[2])
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture
def container(tmp_path: Path) -> Iterator[SandboxHandle]:
    """A running busybox container with no workload (PID 1 just waits), like the kernel's."""
    spec = new_spec(tmp_path, unpacked("busybox"), [], hostname="exec-box")
    with start_sandbox(spec) as handle:
        yield handle
        handle.signal(signal.SIGKILL)
        handle.wait(10)


@pytest.fixture
def debian_container(tmp_path: Path) -> Iterator[SandboxHandle]:
    spec = new_spec(tmp_path, unpacked("debian"), [])
    with start_sandbox(spec) as handle:
        yield handle
        handle.signal(signal.SIGKILL)
        handle.wait(10)


def exec_run(handle: SandboxHandle, args: list[str],
             **process: Any) -> subprocess.CompletedProcess[str]:
    process = {"args": args, "env": [PATH], **process}
    return subprocess.run(exec_argv(handle.pid, process), cwd=CWD, capture_output=True,
                          text=True, timeout=60)


def test_exec_joins_the_container(container: SandboxHandle) -> None:
    result = exec_run(container, ["sh", "-c",
                                  "hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; "
                                  "readlink /proc/self/ns/net; readlink /proc/self/ns/mnt; ls /; "
                                  "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "
                                  "/proc/self/status"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "exec-box"
    assert lines[1].strip() == "cellbox-init"  # the init, with no host path in sight
    assert lines[2] == os.readlink(f"/proc/{container.pid}/ns/net")
    assert lines[3] == os.readlink(f"/proc/{container.pid}/ns/mnt")
    assert "bin" in lines[4:] and "work" not in lines[4:]  # the container's root, not ours
    assert "CapEff:\t00000000a80425fb" in lines
    assert "CapBnd:\t00000000a80425fb" in lines
    assert "NoNewPrivs:\t1" in lines and "Seccomp:\t2" in lines


def test_exec_exit_status_propagates(container: SandboxHandle) -> None:
    assert exec_run(container, ["sh", "-c", "exit 5"]).returncode == 5
    assert exec_run(container, ["sh", "-c", "kill -9 $$"]).returncode == 137
    missing = exec_run(container, ["no-such-thing"])
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr


def test_exec_as_user_in_cwd(container: SandboxHandle) -> None:
    result = exec_run(container, ["sh", "-c", "id -u; pwd"], user="user", cwd="/home/user")
    assert result.stdout.split() == ["1000", "/home/user"]
    missing = exec_run(container, ["pwd"], cwd="/no/such/dir")
    assert missing.returncode != 0 and "no such file or directory" in missing.stderr


def test_exec_child_is_in_the_pid_namespace(container: SandboxHandle) -> None:
    result = exec_run(container, ["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"])
    pid, count = result.stdout.split()
    assert int(pid) < 10 and int(count) <= 4


class Tty:
    """A process on a pty we hold the master of, like pexpect but with pass_fds."""

    def __init__(self, argv: list[str], rows: int = 24, cols: int = 100,
                 pass_fds: tuple[int, ...] = ()) -> None:
        self.master, slave = os.openpty()
        set_winsize(slave, rows, cols)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=CWD,
                                     pass_fds=pass_fds, start_new_session=True)
        os.close(slave)
        self.buffer = b""

    def expect(self, pattern: str, timeout: float = 20) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern.encode())
        while True:
            match = regex.search(self.buffer)
            if match:
                self.buffer = self.buffer[match.end():]
                return match
            left = deadline - time.monotonic()
            assert left > 0, f"timeout waiting for {pattern!r}; got {self.buffer!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.buffer += os.read(self.master, 65536)
                except OSError:
                    assert regex.search(self.buffer), f"EOF before {pattern!r}: {self.buffer!r}"

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def wait(self) -> int:
        code = self.proc.wait(30)
        os.close(self.master)
        return code


def control_pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.set_inheritable(True)
    return ours, theirs


def read_event(sock: socket.socket, timeout: float = 20) -> dict[str, Any]:
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        assert chunk, "control socket closed"
        data += chunk
    event: dict[str, Any] = json.loads(data)
    return event


def test_exec_tty(container: SandboxHandle) -> None:
    process = {"args": ["sh", "-c", "tty; stty size; exit 3"], "env": [PATH], "tty": True}
    tty = Tty(exec_argv(container.pid, process), rows=33, cols=111)
    tty.expect(r"/dev/pts/\d+")
    tty.expect(r"33 111")
    assert tty.wait() == 3


def test_exec_tty_interactive_with_control_fd(container: SandboxHandle) -> None:
    ours, theirs = control_pair()
    process = {"args": ["sh", "-c", "read x; echo got=$x; stty -echo; read y; echo y=$y"],
               "env": [PATH], "tty": True}
    tty = Tty(exec_argv(container.pid, process, theirs.fileno()), pass_fds=(theirs.fileno(),))
    theirs.close()
    assert read_event(ours)["event"] == "reading"
    tty.send("hello\r")
    tty.expect("got=hello")
    event = read_event(ours)
    assert event["event"] == "reading" and event["echo"] is False
    tty.send("secret\r")
    tty.expect("y=secret")
    assert read_event(ours) == {"event": "exit", "status": 0}
    assert tty.wait() == 0
    assert b"secret\r\n" not in tty.buffer  # not echoed


def test_exec_reading_reports_echo(container: SandboxHandle) -> None:
    ours, theirs = control_pair()
    process = {"args": ["sh", "-c", "read x; echo got=$x"], "env": [PATH], "tty": True}
    tty = Tty(exec_argv(container.pid, process, theirs.fileno()), pass_fds=(theirs.fileno(),))
    theirs.close()
    event = read_event(ours)
    assert event["event"] == "reading" and event["echo"] is True
    tty.send("x\r")
    tty.expect("got=x")
    assert read_event(ours)["event"] == "exit"
    tty.wait()


def test_exec_bash_read_silent(debian_container: SandboxHandle) -> None:
    ours, theirs = control_pair()
    process = {"args": ["bash", "-c", "read -s -p 'password: ' pw; echo; echo len=${#pw}"],
               "env": [PATH], "tty": True}
    tty = Tty(exec_argv(debian_container.pid, process, theirs.fileno()),
              pass_fds=(theirs.fileno(),))
    theirs.close()
    tty.expect("password: ")
    event = read_event(ours)
    assert event["event"] == "reading" and event["echo"] is False
    tty.send("abcd\r")
    tty.expect("len=4")
    tty.wait()


def test_exec_signal_command_interrupts_the_foreground(container: SandboxHandle) -> None:
    ours, theirs = control_pair()
    process = {"args": ["sleep", "100"], "env": [PATH], "tty": True}
    tty = Tty(exec_argv(container.pid, process, theirs.fileno()), pass_fds=(theirs.fileno(),))
    theirs.close()
    time.sleep(0.3)
    start = time.monotonic()
    ours.sendall(json.dumps({"cmd": "signal", "signal": 2, "target": "foreground"}).encode()
                 + b"\n")
    assert read_event(ours) == {"event": "exit", "status": 130}
    assert tty.wait() == 130
    assert time.monotonic() - start < 5


def test_exec_signal_without_tty(container: SandboxHandle) -> None:
    ours, theirs = control_pair()
    process = {"args": ["sleep", "100"], "env": [PATH]}
    proc = subprocess.Popen(exec_argv(container.pid, process, theirs.fileno()), cwd=CWD,
                            pass_fds=(theirs.fileno(),))
    theirs.close()
    time.sleep(0.3)
    ours.sendall(b'{"cmd": "signal", "signal": 9, "target": "foreground"}\n')
    assert read_event(ours) == {"event": "exit", "status": 137}
    assert proc.wait(10) == 137


def test_exec_into_a_stopped_container_fails(tmp_path: Path) -> None:
    spec = new_spec(tmp_path, unpacked("busybox"), ["true"])
    with start_sandbox(spec) as handle:
        handle.wait(10)
        result = exec_run(handle, ["true"])
    assert result.returncode != 0
    assert "not running" in result.stderr


def test_exec_reading_after_a_quiet_pause(container: SandboxHandle) -> None:
    ours, theirs = control_pair()
    process = {"args": ["sh", "-c", "sleep 0.5; read x; echo got=$x"], "env": [PATH],
               "tty": True}
    tty = Tty(exec_argv(container.pid, process, theirs.fileno()), pass_fds=(theirs.fileno(),))
    theirs.close()
    start = time.monotonic()
    event = read_event(ours)
    assert event["event"] == "reading"
    assert 0.5 <= time.monotonic() - start < 3
    tty.send("later\r")
    tty.expect("got=later")
    tty.wait()


def test_exec_window_size_follows_the_caller(container: SandboxHandle) -> None:
    process = {"args": ["sh", "-c", "stty size; read x; stty size"], "env": [PATH], "tty": True}
    tty = Tty(exec_argv(container.pid, process), rows=24, cols=80)
    tty.expect("24 80")
    set_winsize(tty.master, 40, 120)
    tty.proc.send_signal(signal.SIGWINCH)
    time.sleep(0.2)
    tty.send("\r")
    tty.expect("40 120")
    assert tty.wait() == 0


def test_exec_failure_reports_exit_on_the_control_fd(container: SandboxHandle) -> None:
    ours, theirs = control_pair()
    process = {"args": ["no-such-program"], "env": [PATH], "tty": True}
    proc = subprocess.run(exec_argv(container.pid, process, theirs.fileno()), cwd=CWD,
                          pass_fds=(theirs.fileno(),), capture_output=True, text=True,
                          timeout=60)
    theirs.close()
    assert proc.returncode == 127
    assert read_event(ours) == {"event": "exit", "status": 127}


def test_exec_foreground_query(debian_container: SandboxHandle) -> None:
    # An interactive bash gives each job the terminal: the relay tells the shell's own
    # process group from a job's.
    ours, theirs = control_pair()
    process = {"args": ["bash", "--norc", "--noprofile", "-i"], "env": [PATH, "PS1=$ "],
               "tty": True}
    tty = Tty(exec_argv(debian_container.pid, process, theirs.fileno()),
              pass_fds=(theirs.fileno(),))
    theirs.close()

    def foreground() -> dict[str, Any]:
        ours.sendall(b'{"cmd": "foreground"}\n')
        while True:
            event = read_event(ours)
            if event["event"] == "foreground":
                return event

    tty.expect(r"\$ ")
    assert foreground()["command"] is True
    tty.send("sleep 3\r")
    time.sleep(0.5)
    job = foreground()
    assert job["command"] is False and job["pgrp"] > 0
    ours.sendall(b'{"cmd": "signal", "signal": 2, "target": "foreground"}\n')
    tty.expect(r"\$ ")
    assert foreground()["command"] is True
    tty.send("exit\r")
    tty.wait()
