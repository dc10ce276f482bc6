"""cgroups on the container start path: create + join + remove, side by side with peers.

Run as root:  .venv/bin/python bench/cgroups.py [--rounds 300]

One round makes a container's cgroup with limits (--memory 64m --cpus 0.5 --pids-limit 100),
moves a process in (the join a container's init does), moves it back out (not timed: in
real life the process exits), and removes the cgroup. Compared, in one run:

  cellbox      cellbox.runtime.cgroups: create(), add(), remove()
  raw          the same mkdirs, writes and rmdirs as bare os calls, no checks: the floor
  sh           the same as one `sh -c` script (how shell-based tools do it): fork + exec

Each is timed twice: "alone" (the parent cgroup is made and removed every round, as for a
notebook's single container) and "beside" another container (the parent stays). Also:
detect() and stats() per call, and kill_all() + remove() of a cgroup with a live process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cellbox.runtime import cgroups
from cellbox.runtime.cgroups import Limits

PARENT = f"cellbox-bench{os.getpid()}"
LIMITS = Limits(memory=64 << 20, cpus=0.5, pids=100)
V1_FILES = [
    ("memory", "memory.limit_in_bytes", str(64 << 20)),
    ("memory", "memory.memsw.limit_in_bytes", str(128 << 20)),
    ("cpu", "cpu.cfs_period_us", "100000"),
    ("cpu", "cpu.cfs_quota_us", "50000"),
    ("pids", "pids.max", "100"),
]


def _write(path: Path | str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


class Bench:
    def __init__(self, layout: cgroups.CgroupLayout, sleeper: int) -> None:
        self.layout = layout
        self.sleeper = sleeper
        self.roots = (
            [layout.v2]
            if layout.driver == "v2" and layout.v2
            else list(dict.fromkeys(layout.v1[c] for c in ("memory", "cpu", "cpuacct", "pids",
                                                            "freezer") if c in layout.v1))
        )

    def move_out(self) -> None:
        """Put the sleeper back where it came from (untimed)."""
        for root in self.roots:
            _write(root / "cgroup.procs", str(self.sleeper))

    def cellbox(self, name: str) -> float:
        start = time.perf_counter()
        group = cgroups.create(name, LIMITS, parent=PARENT, layout=self.layout)
        group.add(self.sleeper)
        mid = time.perf_counter()
        self.move_out()
        resume = time.perf_counter()
        group.remove()
        return (mid - start) + (time.perf_counter() - resume)

    def raw(self, name: str) -> float:
        if self.layout.driver != "v1":
            return float("nan")
        v1 = self.layout.v1
        dirs = [root / PARENT / name for root in self.roots]
        start = time.perf_counter()
        for d in dirs:
            try:
                os.mkdir(d)
            except FileNotFoundError:
                os.mkdir(d.parent)
                os.mkdir(d)
        for controller, file, value in V1_FILES:
            _write(v1[controller] / PARENT / name / file, value)
        for d in dirs:
            _write(d / "cgroup.procs", str(self.sleeper))
        mid = time.perf_counter()
        self.move_out()
        resume = time.perf_counter()
        for d in dirs:
            os.rmdir(d)
        for d in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(d.parent)
        return (mid - start) + (time.perf_counter() - resume)

    def sh(self, name: str) -> float:
        if self.layout.driver != "v1":
            return float("nan")
        v1 = self.layout.v1
        dirs = [shlex.quote(str(root / PARENT / name)) for root in self.roots]
        make = "mkdir -p " + " ".join(dirs)
        limits = "; ".join(
            f"echo {value} > {shlex.quote(str(v1[c] / PARENT / name / f))}"
            for c, f, value in V1_FILES
        )
        join = "; ".join(f"echo {self.sleeper} > {d}/cgroup.procs" for d in dirs)
        start = time.perf_counter()
        subprocess.run(["sh", "-c", f"{make}; {limits}; {join}"], check=True)
        mid = time.perf_counter()
        self.move_out()
        resume = time.perf_counter()
        parents = " ".join(shlex.quote(str(root / PARENT)) for root in self.roots)
        subprocess.run(
            ["sh", "-c", f"rmdir {' '.join(dirs)}; rmdir {parents} 2>/dev/null; true"],
            check=True,
        )
        return (mid - start) + (time.perf_counter() - resume)


def _time(fn: Callable[[str], float], rounds: int) -> float:
    return _median_us([fn(f"r{i}") for i in range(rounds)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/cgroups.py needs root (it makes real cgroups)", file=sys.stderr)
        return 2

    import_ms = _import_ms()
    start = time.perf_counter()
    layout = cgroups.detect()
    detect_us = (time.perf_counter() - start) * 1e6
    sleeper = subprocess.Popen(["sleep", "1000"])
    keeper = None
    try:
        bench = Bench(layout, sleeper.pid)
        for fn in (bench.cellbox, bench.raw, bench.sh):  # warm caches and code paths
            fn("warm")
        alone = {fn.__name__: _time(fn, args.rounds) for fn in (bench.cellbox, bench.raw)}
        alone["sh"] = _time(bench.sh, max(20, args.rounds // 10))
        keeper = cgroups.create("keeper", Limits(), parent=PARENT, layout=layout)
        beside = {fn.__name__: _time(fn, args.rounds) for fn in (bench.cellbox, bench.raw)}
        beside["sh"] = _time(bench.sh, max(20, args.rounds // 10))

        group = cgroups.create("stats", LIMITS, parent=PARENT, layout=layout)
        stats_us = _median_us([_timed(group.stats) for _ in range(args.rounds)])
        group.remove()
        kill_us = _median_us([_kill_round(layout) for _ in range(20)])
    finally:
        if keeper is not None:
            keeper.remove()
        sleeper.kill()
        sleeper.wait()

    print(f"layout: {layout.version} (driver {layout.driver}); {args.rounds} rounds, medians")
    print(
        f"import cellbox.runtime.cgroups: {import_ms[0]:.1f} ms (dataclasses: "
        f"{import_ms[1]:.1f} ms of it)   detect(): {detect_us:.0f} µs"
    )
    print()
    print(f"{'create + join + remove':<28}{'alone':>12}{'beside another':>16}")
    for name in ("cellbox", "raw", "sh"):
        print(f"  {name:<26}{alone[name]:>10.0f}µs{beside[name]:>14.0f}µs")
    print()
    for name in ("raw", "sh"):
        print(
            f"  cellbox / {name:<16}{alone['cellbox'] / alone[name]:>11.2f}x"
            f"{beside['cellbox'] / beside[name]:>15.2f}x"
        )
    print()
    print(f"stats() per sample: {stats_us:.0f} µs")
    print(f"kill_all() + remove() with one live process: {kill_us / 1000:.2f} ms")
    return 0


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _kill_round(layout: cgroups.CgroupLayout) -> float:
    proc = subprocess.Popen(["sleep", "1000"])
    group = cgroups.create("kill", Limits(), parent=PARENT, layout=layout)
    group.add(proc.pid)
    start = time.perf_counter()
    group.remove()
    took = time.perf_counter() - start
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return took


def _import_ms() -> tuple[float, float]:
    """Import time of the package in a fresh interpreter, over importing cellbox.runtime
    itself (the editable-install machinery every cellbox command pays): in all, and how
    much of it is dataclasses (which the start path imports for its settings anyway)."""

    def run(code: str) -> float:
        samples = []
        for _ in range(15):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-I", "-c", code], check=True)
            samples.append(time.perf_counter() - start)
        return min(samples)

    base = run("import cellbox.runtime.errors")
    with_dataclasses = run("import cellbox.runtime.errors, dataclasses")
    total = run("import cellbox.runtime.cgroups")
    return (total - base) * 1000, (with_dataclasses - base) * 1000


if __name__ == "__main__":
    sys.exit(main())
