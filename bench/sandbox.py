"""The sandbox layer against runc, side by side: start, exec, and PID 1's memory.

    sudo .venv/bin/python bench/sandbox.py [--runs 20]

The same busybox rootfs (``umoci unpack`` of the test image) for both:

* start: a fresh Python process that calls ``start_sandbox`` for ``true`` and waits for
  it (overlay rootfs, /proc, /dev, /sys, cgroup mounts, masks, pivot_root, caps, seccomp —
  what ``cellbox run`` does below its store and cgroup work) vs ``runc run`` of the bundle;
  and ``start_sandbox`` called in this process (what the Jupyter kernel, a long-running
  process, pays);
* exec: a fresh Python process that calls ``exec_in`` for ``true`` in a running container
  (what ``cellbox exec`` does) vs ``runc exec``;
* idle memory: PSS/USS of the container's host processes — cellbox's PID 1 (no workload)
  vs runc's ``sleep`` (runc leaves no monitor process; podman adds conmon);
* the init's import time (``python -X importtime``).

Runs alternate between the peers; medians are printed with the ratio cellbox/runc. The
whole-CLI comparison with podman is bench/start.py. Everything made is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from tests.support.images import IMAGES, layout  # noqa: E402

PYTHON = sys.executable
SCOPE = f"cbxbench{os.getpid()}"

START = r"""
import sys
from cellbox.runtime.sandbox import ProcessSpec, SandboxSpec, start_sandbox
base, lower = sys.argv[1], sys.argv[2]
spec = SandboxSpec(id="bench", hostname="bench", lower_dirs=[lower], upper_dir=base + "/upper",
                   work_dir=base + "/work", state_dir=base + "/state",
                   log_path=base + "/state/log.jsonl", process=ProcessSpec(args=sys.argv[3:]))
handle = start_sandbox(spec)
sys.exit(handle.wait().code)
"""
EXEC = r"""
import sys
from cellbox.runtime.nsexec import exec_in
sys.exit(exec_in(int(sys.argv[1]), {"args": sys.argv[2:], "env": ["PATH=/bin"]}))
"""


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[:4]}... failed: {result.stderr[-2000:]}")
    return elapsed


def memory(pid: int) -> tuple[int, int]:
    """(PSS, USS) in KiB of one process."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            fields[parts[0].rstrip(":")] = int(parts[1])
    return fields["Pss"], fields["Private_Clean"] + fields["Private_Dirty"]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def fresh_dirs(base: Path, name: str) -> Path:
    path = base / name
    shutil.rmtree(path, ignore_errors=True)
    for sub in ("upper", "work", "state"):
        (path / sub).mkdir(parents=True)
    return path


def runc_bundle(base: Path) -> Path:
    bundle = base / "bundle"
    src = layout("busybox")
    subprocess.run(["umoci", "unpack", "--image", f"{src}:{IMAGES['busybox'].tag}", str(bundle)],
                   check=True, capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def set_args(bundle: Path, args: list[str]) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = args
    (bundle / "config.json").write_text(json.dumps(config))


def alternate(runs: int, peers: dict[str, Callable[[int], float]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in peers}
    for i in range(runs):
        for name, fn in peers.items():
            times[name].append(fn(i))
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    cell, runc = median_ms(times["cellbox"]), median_ms(times["runc"])
    print(f"{title:<28} cellbox {cell:7.1f} ms   runc {runc:7.1f} ms   ratio {cell / runc:.2f}x")


def import_time() -> float:
    code = ("import sys; M=type(sys); c=M('cellbox'); c.__path__=[]; r=M('cellbox.runtime');"
            f"r.__path__=[{str(HERE / 'runtime')!r}]; sys.modules['cellbox']=c;"
            "sys.modules['cellbox.runtime']=r; import cellbox.runtime._init")
    result = subprocess.run([PYTHON, "-I", "-S", "-X", "importtime", "-c", code],
                            capture_output=True, text=True, check=True)
    last = [line for line in result.stderr.splitlines() if "cellbox.runtime._init" in line][-1]
    return int(last.split("|")[1]) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/sandbox.py needs root (runc and the root sandbox)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix=f"{SCOPE}-"))
    runc_root = base / "runc-root"
    started: list[str] = []
    handles = []
    try:
        bundle = runc_bundle(base)
        lower = str(bundle / "rootfs")
        runc = ["runc", "--root", str(runc_root)]

        def cellbox_start(i: int) -> float:
            path = fresh_dirs(base, "c")
            return timed([PYTHON, "-I", "-c", START, str(path), lower, "true"])

        def runc_start(i: int) -> float:
            return timed([*runc, "run", "--bundle", str(bundle), f"{SCOPE}-run{i}"])

        timed([PYTHON, "-I", "-c", START, str(fresh_dirs(base, "c")), lower, "true"])  # warm
        report("start `true` (new process)", alternate(args.runs, {"cellbox": cellbox_start,
                                                                   "runc": runc_start}))
        from cellbox.runtime.sandbox import ProcessSpec, SandboxSpec, start_sandbox

        def in_process(i: int) -> float:
            path = fresh_dirs(base, "c")
            spec = SandboxSpec(id="b", hostname="b", lower_dirs=[lower],
                               upper_dir=str(path / "upper"), work_dir=str(path / "work"),
                               state_dir=str(path / "state"),
                               log_path=str(path / "state/log.jsonl"),
                               process=ProcessSpec(args=["true"]))
            start = time.perf_counter()
            with start_sandbox(spec) as handle:
                handle.wait()
            return time.perf_counter() - start

        report("start `true` (in process)", alternate(args.runs, {"cellbox": in_process,
                                                                  "runc": runc_start}))

        # exec into running containers: cellbox's idle PID 1, runc's sleep

        path = fresh_dirs(base, "idle")
        spec = SandboxSpec(id="idle", hostname="idle", lower_dirs=[lower],
                           upper_dir=str(path / "upper"), work_dir=str(path / "work"),
                           state_dir=str(path / "state"), log_path=str(path / "state/log.jsonl"),
                           process=ProcessSpec(args=[]))
        handle = start_sandbox(spec)
        handles.append(handle)
        set_args(bundle, ["sleep", "1000000"])
        name = f"{SCOPE}-idle"
        subprocess.run([*runc, "run", "--detach", "--bundle", str(bundle), name], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        started.append(name)
        state = json.loads(subprocess.run([*runc, "state", name], capture_output=True,
                                          text=True, check=True).stdout)
        report("exec `true`", alternate(args.runs, {
            "cellbox": lambda i: timed([PYTHON, "-I", "-c", EXEC, str(handle.pid), "true"]),
            "runc": lambda i: timed([*runc, "exec", name, "true"]),
        }))

        time.sleep(0.5)
        pss, uss = memory(handle.pid)
        rpss, russ = memory(int(state["pid"]))
        print(f"{'idle memory (PSS / USS)':<28} cellbox PID 1 {pss / 1024:.1f} / {uss / 1024:.1f}"
              f" MiB   runc's sleep {rpss / 1024:.1f} / {russ / 1024:.1f} MiB")
        print(f"{'init import time':<28} {import_time():.1f} ms (python -X importtime)")
        return 0
    finally:
        for handle in handles:
            handle.signal(signal.SIGKILL)
            handle.wait(10)
        for name in started:
            subprocess.run([*runc, "kill", name, "KILL"], capture_output=True)
            time.sleep(0.2)
            subprocess.run([*runc, "delete", "--force", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
