"""Container networking cost: cellbox's attach/detach beside iproute2+nft and podman.

    sudo .venv/bin/python bench/network.py [--rounds 30]

Everything runs inside a private network namespace (the script re-executes itself under
``unshare --net``), so the bridges, nft tables, ip_forward and podman's iptables chains it
makes vanish with that namespace and the machine is left as it was.

What is compared, per container (attach + detach, with and without one published port):
  cellbox   network.attach/detach in a warm process (pyroute2 already imported)
  ip+nft    the same steps as shell commands: ip link add/set, nsenter ip addr/link/route,
            nft add/delete element (what a script-based runtime does)
  podman    ``podman run --rm --network bridge`` minus ``--network none`` (netavark), runc
Also: the import cost of cellbox.runtime.network (the none/host path) and of pyroute2 (paid
once per process on the first bridge operation); a published port through DNAT against a
userspace proxy (latency per connection, and the proxy's memory); one nft change through
the ``nft`` command against libnftables through ctypes.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

INNER = "CELLBOX_BENCH_NETNS"
PODMAN = [
    "podman",
    "run",
    "--rm",
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
]
IMAGE = "localhost/cellbox-bench-network:latest"


def ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:7.1f} ms"


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def fresh_import(module: str, rounds: int) -> list[float]:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return [
        float(subprocess.check_output([sys.executable, "-I", "-c", code], text=True))
        for _ in range(rounds)
    ]


class Holders:
    def __init__(self) -> None:
        self.all: list[subprocess.Popen[bytes]] = []

    def new(self) -> int:
        proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        own = os.readlink("/proc/self/ns/net")
        while os.readlink(f"/proc/{proc.pid}/ns/net") == own:
            time.sleep(0.001)
        self.all.append(proc)
        return proc.pid

    def close(self) -> None:
        for proc in self.all:
            proc.kill()
            proc.wait()


def bench_cellbox(rounds: int, holders: Holders) -> dict[str, list[float]]:
    from cellbox.runtime import network
    from cellbox.runtime.settings import Settings

    run = Path(tempfile.mkdtemp(prefix="cellbox-bench-net-"))
    settings = Settings(run=run, bridge="cellbox0", subnet="10.89.0.0/16")
    results: dict[str, list[float]] = {"first attach (bridge + nft table)": []}
    start = time.perf_counter()
    network.attach("f" * 64, holders.new(), "bridge", [], settings)
    results["first attach (bridge + nft table)"].append(time.perf_counter() - start)
    for label, ports in (("", []), (" -p", [network.parse_port("127.0.0.1:18080:80")])):
        attach, detach = [], []
        for n in range(rounds):
            cid, pid = f"{n:064x}", holders.new()
            t0 = time.perf_counter()
            network.attach(cid, pid, "bridge", ports, settings)
            t1 = time.perf_counter()
            network.detach(cid, settings)
            attach.append(t1 - t0)
            detach.append(time.perf_counter() - t1)
        results[f"attach{label}"] = attach
        results[f"detach{label}"] = detach
    holders.close()
    start = time.perf_counter()
    network.prune(set(), settings)
    results["prune (bridge + table)"] = [time.perf_counter() - start]
    return results


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def bench_commands(rounds: int, holders: Holders) -> dict[str, list[float]]:
    sh("ip", "link", "add", "cbxcmd0", "type", "bridge")
    sh("ip", "addr", "add", "10.90.0.1/16", "dev", "cbxcmd0")
    sh("ip", "link", "set", "cbxcmd0", "up")
    sh(
        "nft",
        "add table ip cbxcmd0; add map ip cbxcmd0 publish_addr { type ipv4_addr . "
        "inet_proto . inet_service : ipv4_addr . inet_service; }",
    )
    results: dict[str, list[float]] = {}
    try:
        for label, port in (("", False), (" -p", True)):
            attach, detach = [], []
            for n in range(rounds):
                pid, ip = holders.new(), f"10.90.{n // 250}.{n % 250 + 2}"
                t0 = time.perf_counter()
                sh(
                    "ip",
                    "link",
                    "add",
                    "cbxcmdv",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    str(pid),
                )
                sh("ip", "link", "set", "cbxcmdv", "master", "cbxcmd0", "up")
                sh(
                    "nsenter",
                    f"--net=/proc/{pid}/ns/net",
                    "sh",
                    "-c",
                    f"ip link set lo up && ip addr add {ip}/16 dev eth0 && ip link set eth0 up"
                    " && ip route add default via 10.90.0.1",
                )
                if port:
                    sh(
                        "nft",
                        "add element ip cbxcmd0 publish_addr "
                        f"{{ 127.0.0.1 . tcp . 18080 : {ip} . 80 }}",
                    )
                t1 = time.perf_counter()
                sh("ip", "link", "del", "cbxcmdv")
                if port:
                    sh("nft", "delete element ip cbxcmd0 publish_addr { 127.0.0.1 . tcp . 18080 }")
                attach.append(t1 - t0)
                detach.append(time.perf_counter() - t1)
            results[f"attach{label}"] = attach
            results[f"detach{label}"] = detach
    finally:
        holders.close()
        subprocess.run(["ip", "link", "del", "cbxcmd0"], check=False)
        subprocess.run(["nft", "delete", "table", "ip", "cbxcmd0"], check=False)
    return results


def bench_nft(rounds: int) -> dict[str, list[float]]:
    script = (
        "add table ip cbxnft0; add map ip cbxnft0 m { type ipv4_addr . inet_proto . "
        "inet_service : ipv4_addr . inet_service; }"
    )
    add = "add element ip cbxnft0 m { 127.0.0.1 . tcp . 1 : 10.0.0.2 . 80 }"
    delete = "delete element ip cbxnft0 m { 127.0.0.1 . tcp . 1 }"
    sh("nft", script)
    results = {}
    try:
        results["nft -f - (element add + delete)"] = timed(
            lambda: (
                subprocess.run(["nft", "-f", "-"], input=add, text=True, check=True),
                subprocess.run(["nft", "-f", "-"], input=delete, text=True, check=True),
            ),
            rounds,
        )
        lib = ctypes.CDLL("libnftables.so.1")
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        ctx = lib.nft_ctx_new(0)

        def via_lib() -> None:
            for cmd in (add, delete):
                if lib.nft_run_cmd_from_buffer(ctx, cmd.encode()) != 0:
                    raise RuntimeError(cmd)

        results["libnftables ctypes (same)"] = timed(via_lib, rounds)
        lib.nft_ctx_free(ctx)
    finally:
        subprocess.run(["nft", "delete", "table", "ip", "cbxnft0"], check=False)
    return results


def bench_podman(rounds: int) -> dict[str, list[float]] | None:
    if subprocess.run(["podman", "--version"], capture_output=True).returncode != 0:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "rootfs", "bin")
        root.mkdir(parents=True)
        (root / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
        (root / "busybox").chmod(0o755)
        (root / "true").symlink_to("busybox")
        sh("tar", "-C", str(root.parent), "-cf", f"{tmp}/rootfs.tar", ".")
        sh("podman", "import", "-q", f"{tmp}/rootfs.tar", IMAGE)
    try:
        results = {}
        for label, extra in (
            ("none", ["--network", "none"]),
            ("bridge", ["--network", "bridge"]),
            ("bridge -p", ["--network", "bridge", "-p", "127.0.0.1:18080:80"]),
        ):
            sh(*PODMAN, *extra, IMAGE, "true")  # warm up
            results[label] = timed(lambda extra=extra: sh(*PODMAN, *extra, IMAGE, "true"), rounds)
        return results
    finally:
        subprocess.run(["podman", "rmi", "-f", IMAGE], capture_output=True, check=False)


ECHO = r"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"x" * 64)
    c.close()
"""

# The userspace alternative to DNAT: one asyncio process relaying 127.0.0.1:PORT.
PROXY = r"""
import asyncio, sys
target, port = sys.argv[1], int(sys.argv[2])

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()

async def relay(reader, writer):
    up_reader, up_writer = await asyncio.open_connection(target, 80)
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

async def main():
    server = await asyncio.start_server(relay, "127.0.0.1", port)
    print("ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def _fetch(port: int, rounds: int) -> list[float]:
    import socket

    def once() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            while conn.recv(4096):
                pass

    return timed(once, rounds)


def _uss_kib(pid: int) -> int:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        if ":" in line
    )
    return sum(int(fields[k].split()[0]) for k in ("Private_Clean", "Private_Dirty"))


def bench_publish(rounds: int) -> dict[str, float]:
    """Connections through DNAT against a userspace proxy, and what the proxy costs."""
    from cellbox.runtime import network
    from cellbox.runtime.settings import Settings

    settings = Settings(run=Path(tempfile.mkdtemp(prefix="cellbox-bench-pub-")))
    holders = Holders()
    pid = holders.new()
    started: list[subprocess.Popen[str]] = []
    try:
        info = network.attach("e" * 64, pid, "bridge", [network.parse_port("18080:80")], settings)
        for argv in (
            ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-I", "-c", ECHO],
            [sys.executable, "-I", "-c", PROXY, str(info.ip), "18081"],
        ):
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            started.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        dnat, proxy = _fetch(18080, rounds), _fetch(18081, rounds)
        return {
            "dnat": statistics.median(dnat),
            "proxy": statistics.median(proxy),
            "proxy_uss": _uss_kib(started[1].pid),
        }
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
        holders.close()
        network.prune(set(), settings)


def inner(rounds: int) -> None:
    from cellbox.runtime.loopback import loopback_up

    loopback_up()
    print(
        f"cellbox networking, {rounds} rounds, medians (private netns, kernel "
        f"{os.uname().release}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f})\n"
    )
    light = fresh_import("cellbox.runtime.network", 5)
    heavy = fresh_import("pyroute2.iproute.linux", 5)
    print("import")
    print(f"  cellbox.runtime.network (none/host path) {ms(light)}")
    print(f"  pyroute2.iproute.linux (first bridge op) {ms(heavy)}\n")

    holders = Holders()
    cellbox = bench_cellbox(rounds, holders)
    commands = bench_commands(rounds, Holders())
    print(f"{'per container':<36}{'cellbox':>11}{'ip+nft':>11}{'ratio':>8}")
    for key in ("attach", "detach", "attach -p", "detach -p"):
        ratio = statistics.median(commands[key]) / statistics.median(cellbox[key])
        print(f"  {key:<34}{ms(cellbox[key]):>11}{ms(commands[key]):>11}{ratio:7.1f}x")
    both = [a + d for a, d in zip(cellbox["attach"], cellbox["detach"], strict=True)]
    both_p = [a + d for a, d in zip(cellbox["attach -p"], cellbox["detach -p"], strict=True)]
    for key in ("first attach (bridge + nft table)", "prune (bridge + table)"):
        print(f"  {key:<34}{ms(cellbox[key]):>11}")

    podman = bench_podman(max(5, rounds // 3))
    if podman is not None:
        none = statistics.median(podman["none"])
        bridge = statistics.median(podman["bridge"]) - none
        bridge_p = statistics.median(podman["bridge -p"]) - none
        print("\npodman run --rm (runc, netavark): network's share of a run")
        print(
            f"  {'bridge − none':<34}{bridge * 1e3:8.1f} ms   cellbox attach+detach "
            f"{ms(both)}   ratio {bridge / statistics.median(both):.1f}x"
        )
        print(
            f"  {'bridge -p − none':<34}{bridge_p * 1e3:8.1f} ms   cellbox attach+detach "
            f"{ms(both_p)}   ratio {bridge_p / statistics.median(both_p):.1f}x"
        )
    publish = bench_publish(rounds * 10)
    print("\na published port, per connection from the host (connect, 64 bytes, close)")
    print(f"  {'nft DNAT (cellbox)':<34}{publish['dnat'] * 1e3:8.2f} ms")
    print(
        f"  {'asyncio proxy process':<34}{publish['proxy'] * 1e3:8.2f} ms   "
        f"ratio {publish['proxy'] / publish['dnat']:.1f}x, and "
        f"{publish['proxy_uss'] / 1024:.1f} MiB USS per proxy process (DNAT: 0)"
    )
    nft = bench_nft(rounds)
    print("\none nft change (add + delete a map element)")
    cli, lib = nft.values()
    for key, samples in nft.items():
        print(f"  {key:<34}{ms(samples):>11}")
    print(
        f"  ratio nft command / libnftables {statistics.median(cli) / statistics.median(lib):.0f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, bridges, nftables)", file=sys.stderr)
        return 1
    if os.environ.get(INNER) != "1":
        env = {**os.environ, INNER: "1"}
        argv = ["unshare", "--net", "--", sys.executable, *sys.argv]
        return subprocess.run(argv, env=env, check=False).returncode
    inner(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
