"""What the Container panel costs the kernel, and how fast a change reaches it.

    sudo .venv/bin/python bench/panel.py [--duration 600] [--idle 60]

One run, side by side, against the same busybox container served by a docker-registry on
127.0.0.1 that the script starts (and stops):

* idle: the cellbox kernel with no panel (no comm open) and an ipykernel next to it, both
  idle for ``--idle`` seconds: their own CPU use (utime + stime of the kernel process, all
  threads), and whether the cellbox kernel holds any log fd (it must not: no sampling).
* panel: the same cellbox kernel with a panel's comm open (usage + logs) for
  ``--duration`` seconds (the issue asks for 10 minutes), while a line is appended to the
  container's log every 100 ms (a chatty cell, written as the kernel writes cell output)
  and the container's memory spikes by 32 MiB every 30 s (``cellbox exec``, a file in /dev/shm):
  - the kernel's CPU use (goal: under 2 % of a core) and its RSS every 10 s (goal: flat);
  - latency of a marker log line from write to the comm message (goal: under 2 s);
  - latency of a memory spike from its start to the first usage sample that shows it
    (goal: under 2 s).

Ratios are printed against the idle kernels. The figures and the command go to stdout.
Everything the script makes (registry, store, containers, cgroups) is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from cellbox.runtime.logs import LogWriter, records_for_text  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from tests.support import images  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

SCOPE = f"cbxpanel{os.getpid()}"
MiB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (all threads)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def log_fds(pid: int) -> int:
    """Read-only fds of the kernel on container logs: the panel's log tail (the kernel's
    writer of cell output holds one open for writing)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                flags = int(info.read().split("flags:")[1].split()[0], 8)
            if target.endswith("/log.jsonl") and flags & os.O_ACCMODE == os.O_RDONLY:
                count += 1
    return count


class Client:
    """A jupyter_client that keeps the panel's comm messages (a reader thread owns iopub)."""

    def __init__(self, km: KernelManager) -> None:
        self.kc = km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.comm_msgs: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.idle: set[str] = set()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["msg_type"] == "comm_msg":
                self.comm_msgs.put((time.monotonic(), msg["content"]["data"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                self.idle.add(msg["parent_header"].get("msg_id", ""))

    def run(self, code: str, timeout: float = 180) -> None:
        msg_id = self.kc.execute(code, allow_stdin=False)
        deadline = time.monotonic() + timeout
        while msg_id not in self.idle:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell did not finish: {code!r}")
            time.sleep(0.05)

    def shell(self, msg_type: str, content: dict[str, Any]) -> None:
        self.kc.shell_channel.send(self.kc.session.msg(msg_type, content))

    def close(self) -> None:
        self._stop.set()
        self._reader.join()
        self.kc.stop_channels()


@contextlib.contextmanager
def environment(work: Path) -> Iterator[RegistryServer]:
    env = {
        "CELLBOX_ROOT": str(work / "root"),
        "CELLBOX_RUN": str(work / "run"),
        "CELLBOX_CGROUP_PARENT": f"cellbox-{SCOPE}",
        "CELLBOX_TEST_SCOPE": SCOPE,
        "CELLBOX_BRIDGE": SCOPE[:15],
    }
    os.environ.update(env)
    with RegistryServer(work / "registry") as registry:
        images.push_all(registry, {"library/busybox": ("busybox", ("latest",))})
        os.environ["CELLBOX_REGISTRY_MIRRORS"] = registry.url
        yield registry


def remove_containers() -> None:
    cellbox = [sys.executable, "-m", "cellbox.runtime"]
    ids = subprocess.run([*cellbox, "ps", "-a", "-q"], capture_output=True, text=True).stdout
    for cid in ids.split():
        subprocess.run([*cellbox, "rm", "-f", cid], capture_output=True)


def container_dir(name: str) -> Path:
    """The directory of the container called ``name`` in this run's private store."""
    for config in (Path(os.environ["CELLBOX_ROOT"]) / "containers").glob("*/config.json"):
        if json.loads(config.read_text()).get("name") == name:
            return config.parent
    raise RuntimeError(f"no container called {name} in {os.environ['CELLBOX_ROOT']}")


def measure_idle(pids: dict[str, int], seconds: float) -> dict[str, float]:
    start = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (cpu_seconds(pid) - start[name]) / seconds * 100 for name, pid in pids.items()}


def panel_phase(client: Client, pid: int, log_dir: Path, name: str,
                seconds: float) -> dict[str, Any]:
    comm_id = uuid.uuid4().hex
    client.shell("comm_open", {"comm_id": comm_id, "target_name": "cellbox",
                               "data": {"version": 1, "usage": True, "logs": True}})
    stop = threading.Event()
    markers: dict[str, float] = {}
    spikes: list[float] = []

    def chatter() -> None:  # a cell printing a line every 100 ms, plus timed markers
        with LogWriter(log_dir) as writer:
            n = 0
            while not stop.wait(0.1):
                n += 1
                text = f"line {n}\n"
                if n % 50 == 0:
                    marker = f"marker-{n}"
                    markers[marker] = time.monotonic()
                    text = marker + "\n"
                writer.write(records_for_text("stdout", text, cell="1"))

    def spiker() -> None:  # 32 MiB (a /dev/shm file) held for 3 s every 30 s
        while not stop.wait(30):
            spikes.append(time.monotonic())
            subprocess.run(
                [sys.executable, "-m", "cellbox.runtime", "exec", name, "sh", "-c",
                 "dd if=/dev/zero of=/dev/shm/spike bs=1M count=32 2>/dev/null; sleep 3; "
                 "rm /dev/shm/spike"],
                capture_output=True,
            )

    threads = [threading.Thread(target=chatter, daemon=True),
               threading.Thread(target=spiker, daemon=True)]
    time.sleep(2)  # the snapshot, the first samples
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    rss = [(0.0, rss_bytes(pid))]
    for t in threads:
        t.start()
    log_latency: list[float] = []
    spike_latency: list[float] = []
    try:
        _watch(client, t0 + seconds, t0, pid, markers, spikes, log_latency, spike_latency, rss)
    finally:
        stop.set()
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
    fds = log_fds(pid)
    for t in threads:
        t.join()
    client.shell("comm_close", {"comm_id": comm_id, "data": {}})
    time.sleep(1.5)
    return {
        "cpu": cpu, "rss": rss, "log_latency": log_latency, "spike_latency": spike_latency,
        "fds_open": fds, "fds_after_close": log_fds(pid),
    }


def _watch(client: Client, deadline: float, t0: float, pid: int, markers: dict[str, float],
           spikes: list[float], log_latency: list[float], spike_latency: list[float],
           rss: list[tuple[float, int]]) -> None:
    """Read the comm's messages until ``deadline``: latencies of markers and spikes, RSS."""
    baseline_mem: float | None = None
    pending_spike = 0
    next_rss = t0 + 10
    while time.monotonic() < deadline:
        try:
            arrived, data = client.comm_msgs.get(timeout=0.5)
        except queue.Empty:
            arrived, data = time.monotonic(), {}
        if data.get("type") == "logs":
            for record in data["records"]:
                sent = markers.pop(record["line"], None)
                if sent is not None:
                    log_latency.append(arrived - sent)
        elif data.get("type") == "usage":
            for sample in data["samples"].values():
                mem = sample.get("mem") or 0
                if pending_spike < len(spikes):
                    if baseline_mem is not None and mem > baseline_mem + 24 * MiB:
                        spike_latency.append(arrived - spikes[pending_spike])
                        pending_spike += 1
                elif mem:
                    baseline_mem = mem if baseline_mem is None else min(baseline_mem, mem)
        if time.monotonic() >= next_rss:
            rss.append((time.monotonic() - t0, rss_bytes(pid)))
            next_rss += 10


def describe(values: list[float]) -> str:
    if not values:
        return "none measured"
    return (f"median {statistics.median(values) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms (n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="panel phase, seconds")
    parser.add_argument("--idle", type=float, default=60, help="idle phase, seconds")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/panel.py needs root (containers)", file=sys.stderr)
        return 2
    print(f"$ {' '.join([sys.executable, *sys.argv])}")
    with tempfile.TemporaryDirectory(prefix="cellbox-bench-panel-") as tmp:
        work = Path(tmp)
        (work / "nb").mkdir()
        with environment(work):
            cellbox = KernelManager(kernel_name="cellbox")
            python = KernelManager(kernel_name="python3")
            cellbox.start_kernel(cwd=str(work / "nb"))
            python.start_kernel(cwd=str(work / "nb"))
            client = Client(cellbox)
            py_client = Client(python)
            name = f"panel-bench-{os.getpid()}"
            try:
                client.run(f"%container busybox --name {name} --network none --memory 256m\ntrue")
                cb_pid, py_pid = cellbox.provisioner.pid, python.provisioner.pid
                log_dir = container_dir(name)
                time.sleep(3)
                idle = measure_idle({"cellbox": cb_pid, "ipykernel": py_pid}, args.idle)
                idle_fds = log_fds(cb_pid)
                panel = panel_phase(client, cb_pid, log_dir, name, args.duration)
            finally:
                client.close()
                py_client.close()
                cellbox.shutdown_kernel(now=False)
                python.shutdown_kernel(now=True)
                remove_containers()
    rss = panel["rss"]
    first = rss[min(6, len(rss) - 1)][1]  # after a minute: imports and buffers settled
    last = rss[-1][1]
    print()
    print(f"{'kernel':<34} {'CPU % of a core':>16} {'vs ipykernel idle':>18}")
    base = max(idle["ipykernel"], 0.01)
    for label, value in (
        ("ipykernel, idle", idle["ipykernel"]),
        ("cellbox, no panel (idle)", idle["cellbox"]),
        (f"cellbox, panel open {args.duration:.0f} s", panel["cpu"]),
    ):
        print(f"{label:<34} {value:>15.2f}% {value / base:>17.1f}x")
    print()
    print(f"no panel: log fds held by the kernel: {idle_fds} (0 = no sampling)")
    print(f"panel open: log fds {panel['fds_open']}, after close {panel['fds_after_close']}")
    print(f"kernel RSS: {rss[0][1] / MiB:.1f} MiB at start, {first / MiB:.1f} MiB after 1 min, "
          f"{last / MiB:.1f} MiB at {rss[-1][0]:.0f} s "
          f"(drift after the first minute: {(last - first) / MiB:+.1f} MiB)")
    print(f"log line -> panel: {describe(panel['log_latency'])}")
    print(f"memory spike -> panel: {describe(panel['spike_latency'])}")
    ok = (
        panel["cpu"] < 2.0 and idle_fds == 0 and panel["fds_after_close"] == 0
        and all(v < 2.0 for v in panel["log_latency"] + panel["spike_latency"])
        and (last - first) < 4 * MiB
    )
    print("\ngoals (CPU < 2 %, flat memory, changes within 2 s, no sampling without a panel): "
          + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
