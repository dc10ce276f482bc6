"""Kernel benchmarks: cellbox side by side with bash_kernel and ipykernel, in one run.

    sudo .venv/bin/python bench/cells.py [--cells 200] [--starts 5] [--image debian]

Each kernel is started through jupyter_client exactly as a frontend would, and measured on:

* round trip: execute a trivial cell (``true``; ``pass`` for ipykernel) and wait for the
  reply and the idle status; median over ``--cells`` cells. Goal: cellbox <= 10 ms and
  >= 10x faster than bash_kernel.
* cold start: kernel start + ``%container IMAGE`` (image stored) + the first output of a
  cell (``echo hi``); median over ``--starts``. Goal: <= 1.5 s. (bash_kernel and ipykernel:
  start + the first output, no container.)
* throughput: ``seq 1 2000000`` (about 15 MB) streamed to the client: wall time, messages
  received, and the kernel process's peak memory (VmHWM). Goal: under 200 MB. cellbox cuts
  the notebook's copy at its output limit (the log gets it all); bash_kernel and ipykernel
  (``subprocess`` streaming) send everything.

The cellbox kernels use a store and cgroup parent of their own (the busybox and debian test
images are put in it from tests/support/images.py layouts, no registry needed) and
``--network none``; everything is removed at the end, also on failure. bash_kernel's
kernelspec is installed into the venv when missing (``python -m bash_kernel.install
--sys-prefix``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager, start_new_kernel  # noqa: E402

SCOPE = f"cbxbenchcells{os.getpid()}"
TRIVIAL = {"cellbox": "true", "bash": "true", "python3": "pass"}
ECHO = {"cellbox": "echo hi", "bash": "echo hi", "python3": "print('hi')"}
FLOOD = {
    "cellbox": "seq 1 2000000",
    "bash": "seq 1 2000000",
    "python3": "import subprocess, sys\n"
               "p = subprocess.Popen(['seq', '1', '2000000'], stdout=subprocess.PIPE)\n"
               "for chunk in iter(lambda: p.stdout.read1(65536), b''):\n"
               "    sys.stdout.write(chunk.decode())\n"
               "p.wait()",
}
LABELS = {"cellbox": "cellbox", "bash": "bash_kernel", "python3": "ipykernel"}


def ensure_bash_kernel() -> None:
    if "bash" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "bash_kernel.install", "--sys-prefix"],
                       check=True, capture_output=True)


@contextlib.contextmanager
def cellbox_environment(image: str) -> Iterator[Path]:
    """A private store with the test images, a notebook dir; removed afterwards."""
    from tests.support.containers import store_image

    work = Path(tempfile.mkdtemp(prefix=f"{SCOPE}-"))
    saved = {k: os.environ.get(k) for k in ("CELLBOX_ROOT", "CELLBOX_RUN",
                                             "CELLBOX_CGROUP_PARENT")}
    os.environ.update(CELLBOX_ROOT=str(work / "root"), CELLBOX_RUN=str(work / "run"),
                      CELLBOX_CGROUP_PARENT=f"cellbox-{SCOPE}")
    notebook = work / "notebook"
    notebook.mkdir()
    try:
        store_image(work / "root", image)
        yield notebook
    finally:
        from cellbox.runtime.container import Container
        from cellbox.runtime.settings import Settings

        for container in Container.list(all=True, settings=Settings.load()):
            with contextlib.suppress(Exception):
                container.remove(force=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(work, ignore_errors=True)


def start(name: str, cwd: Path) -> tuple[KernelManager, Any]:
    return start_new_kernel(kernel_name=name, cwd=str(cwd), startup_timeout=120)


def stop(km: KernelManager, kc: Any) -> None:
    kc.stop_channels()
    km.shutdown_kernel(now=False)


def execute(kc: Any, code: str, sink: list[int] | None = None, timeout: float = 600
            ) -> dict[str, Any]:
    def hook(msg: dict[str, Any]) -> None:
        if sink is not None and msg["msg_type"] == "stream":
            sink[0] += 1
            sink[1] += len(msg["content"]["text"])

    reply: dict[str, Any] = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply


def peak_memory(km: KernelManager) -> int:
    """VmHWM of the kernel process, bytes."""
    pid = km.provisioner.process.pid  # type: ignore[union-attr]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def round_trip(name: str, cwd: Path, cells: int, image: str) -> float:
    km, kc = start(name, cwd)
    try:
        if name == "cellbox":
            execute(kc, f"%container {image} --network none")
        for _ in range(10):
            execute(kc, TRIVIAL[name])
        times = []
        for _ in range(cells):
            begin = time.perf_counter()
            execute(kc, TRIVIAL[name])
            times.append(time.perf_counter() - begin)
        return statistics.median(times)
    finally:
        stop(km, kc)


def cold_start(name: str, cwd: Path, image: str) -> float:
    begin = time.perf_counter()
    km, kc = start(name, cwd)
    try:
        if name == "cellbox":
            execute(kc, f"%container {image} --network none\n{ECHO[name]}")
        else:
            execute(kc, ECHO[name])
        return time.perf_counter() - begin
    finally:
        stop(km, kc)


def throughput(name: str, cwd: Path, image: str, limit: float
               ) -> tuple[float | None, int, int, int]:
    """Wall time (None: not done within ``limit`` seconds), messages, chars, peak memory."""
    km, kc = start(name, cwd)
    try:
        if name == "cellbox":
            execute(kc, f"%container {image} --network none")
        counts = [0, 0]
        begin = time.perf_counter()
        try:
            execute(kc, FLOOD[name], counts, timeout=limit)
        except TimeoutError:
            return None, counts[0], counts[1], peak_memory(km)
        return time.perf_counter() - begin, counts[0], counts[1], peak_memory(km)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--image", default="debian", choices=("debian", "busybox"))
    parser.add_argument("--flood-limit", type=float, default=120,
                        help="seconds a kernel may take for the throughput cell")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/cells.py runs containers: run it as root")
    # A SIGTERM (timeout, Ctrl-C in a wrapper) still cleans up what the run made.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_bash_kernel()
    kernels = ["cellbox", "bash", "python3"]
    results: dict[str, dict[str, Any]] = {k: {} for k in kernels}
    with cellbox_environment(args.image) as notebook:
        for name in kernels:
            results[name]["round trip"] = round_trip(name, notebook, args.cells, args.image)
            print(f"{LABELS[name]}: round trip {results[name]['round trip'] * 1000:.2f} ms",
                  flush=True)
        for name in kernels:
            samples = [cold_start(name, notebook, args.image) for _ in range(args.starts)]
            results[name]["cold start"] = statistics.median(samples)
            print(f"{LABELS[name]}: cold start {results[name]['cold start']:.3f} s", flush=True)
        for name in kernels:
            results[name]["throughput"] = throughput(name, notebook, args.image,
                                                     args.flood_limit)
            print(f"{LABELS[name]}: throughput {results[name]['throughput']}", flush=True)

    print(f"\nkernels: {', '.join(LABELS[k] for k in kernels)}; image {args.image}; "
          f"{args.cells} cells, {args.starts} starts; {os.cpu_count()} CPUs\n")
    width = max(len(v) for v in LABELS.values())
    print(f"{'round trip (median, `true`)':<40}")
    base = results["cellbox"]["round trip"]
    for name in kernels:
        value = results[name]["round trip"]
        print(f"  {LABELS[name]:<{width}}  {value * 1000:8.2f} ms   {value / base:6.1f}x cellbox")
    print(f"{'cold start (start + first output)':<40}")
    base = results["cellbox"]["cold start"]
    for name in kernels:
        value = results[name]["cold start"]
        extra = " (incl. %container)" if name == "cellbox" else ""
        print(f"  {LABELS[name]:<{width}}  {value:8.3f} s    {value / base:6.2f}x cellbox{extra}")
    print("throughput (seq 1 2000000)")
    for name in kernels:
        wall, messages, chars, peak = results[name]["throughput"]
        took = f"{wall:8.2f} s" if wall is not None else f"> {args.flood_limit:.0f} s"
        print(f"  {LABELS[name]:<{width}}  {took:>10}   {messages:6d} messages  "
              f"{chars / 1e6:6.2f} MB shown   kernel peak {peak / 2**20:6.1f} MiB")
    rt = results["cellbox"]["round trip"]
    ratio = results["bash"]["round trip"] / rt
    print(f"\ngoals: round trip {rt * 1000:.2f} ms (<= 10 ms: {'yes' if rt <= 0.010 else 'NO'}),"
          f" {ratio:.1f}x faster than bash_kernel (>= 10x: {'yes' if ratio >= 10 else 'NO'}),"
          f" cold start {results['cellbox']['cold start']:.2f} s (<= 1.5 s: "
          f"{'yes' if results['cellbox']['cold start'] <= 1.5 else 'NO'}),"
          f" peak {results['cellbox']['throughput'][3] / 2**20:.0f} MiB (< 200 MiB: "
          f"{'yes' if results['cellbox']['throughput'][3] < 200 * 2**20 else 'NO'})")


if __name__ == "__main__":
    main()
