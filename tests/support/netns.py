"""Network namespaces held by a process the test owns, and programs run inside them.

``Holder`` plays a container's PID 1 for the network code: ``unshare --net`` execs a
sleeper in a fresh netns; the test hands its pid to ``network.attach`` and kills it at the
end (which is also how a crash is simulated). ``run_in`` and ``Server`` run Python inside a
namespace with ``nsenter --net``: a TCP or UDP echo-who-you-are server and a client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cellbox.runtime import network
from cellbox.runtime.records import replace
from cellbox.runtime.settings import Settings

from tests.support import netscope

__all__ = ["Holder", "Holders", "Server", "bridge_env", "connect", "run_in"]

SERVER = r"""
import socket, sys
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[3])))
if kind == socket.SOCK_STREAM:
    s.listen(16)
print("ready", flush=True)
while True:
    if kind == socket.SOCK_STREAM:
        c, peer = s.accept()
        c.sendall(f"{sys.argv[4]} sees {peer[0]}".encode())
        c.close()
    else:
        data, peer = s.recvfrom(100)
        s.sendto(f"{sys.argv[4]} sees {peer[0]}".encode(), peer)
"""

CLIENT = r"""
import socket, sys
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.settimeout(float(sys.argv[4]))
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
    if kind == socket.SOCK_DGRAM:
        s.send(b"?")
    print(s.recv(100).decode())
except OSError as exc:
    print(f"FAILED {exc}")
"""


class Holder:
    """A sleeping process alone in a new network namespace (only ``lo``, down)."""

    def __init__(self, *argv: str) -> None:
        command = list(argv) or ["sleep", "600"]
        self.process = subprocess.Popen(["unshare", "--net", "--", *command])
        self.pid = self.process.pid
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{self.pid}/ns/net") == own:  # until unshare(2) is done
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("unshare --net did not make a namespace")
            time.sleep(0.005)

    @property
    def netns(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def run_in(pid: int, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the network namespace of ``pid``; stdout and stderr as text."""
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "--", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def connect(
    pid: int | None, host: str, port: int, protocol: str = "tcp", timeout: float = 2
) -> str:
    """What a client in the netns of ``pid`` (None: the host) gets from ``host:port``."""
    argv = [sys.executable, "-I", "-c", CLIENT, protocol, host, str(port), str(timeout)]
    if pid is None:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
    else:
        done = run_in(pid, *argv, timeout=timeout + 10)
    return done.stdout.strip() or done.stderr.strip()


class Server:
    """A server in the netns of ``pid`` answering ``"<name> sees <client address>"``."""

    def __init__(
        self, pid: int, port: int, name: str, protocol: str = "tcp", address: str = "0.0.0.0"
    ) -> None:
        self.process = subprocess.Popen(
            [
                "nsenter",
                f"--net=/proc/{pid}/ns/net",
                "--",
                sys.executable,
                "-I",
                "-c",
                SERVER,
                protocol,
                address,
                str(port),
                name,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"server {name} did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Holders:
    """Makes :class:`Holder` processes and kills every one of them at :meth:`close`."""

    def __init__(self) -> None:
        self._all: list[Holder] = []

    def new(self, *argv: str) -> Holder:
        holder = Holder(*argv)
        self._all.append(holder)
        return holder

    def close(self) -> None:
        for holder in self._all:
            holder.kill()


def _ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()


@contextmanager
def bridge_env(run_dir: Path) -> Iterator[tuple[Settings, Holders]]:
    """Settings for the session's bridge with lease files in ``run_dir``, and holders.

    At the end every holder is killed, ``network.prune`` must remove the bridge and its nft
    table (checked), and ``net.ipv4.ip_forward`` gets back the value it had.
    """
    forward = _ip_forward()
    settings = replace(Settings.load(), run=run_dir)
    holders = Holders()
    try:
        yield settings, holders
    finally:
        holders.close()
        try:
            network.prune(set(), settings)
        finally:
            left = netscope.cleanup_bridge(settings.bridge)
            if _ip_forward() != forward:
                Path("/proc/sys/net/ipv4/ip_forward").write_text(forward)
        assert not left, f"prune left {left}"
