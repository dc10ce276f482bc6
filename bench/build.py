"""Image builds: ``cellbox build`` side by side with ``buildah bud``, cold and cached.

    sudo .venv/bin/python bench/build.py [--runs 5]

Both build the same Containerfile (FROM busybox, three RUN steps, a COPY) from the same
context, with the base image already in their stores (pulled once from a docker-registry
on 127.0.0.1 that the script starts), RUN steps without network, and private storage under
one temp dir:

* cold: every step runs (``--no-cache``); buildah with ``--layers`` so that it caches like
  cellbox and Docker do, ``--runtime runc`` and the ulimits podman needs on this machine;
* no-change rebuild: the same build again, every step from the cache. Goal: cellbox
  within 1.0x buildah's cold time, and a rebuild under 0.2 s.

Runs alternate between the peers; medians, spreads and ratios are printed. Everything the
script makes is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from tests.support import images  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

PYTHON = sys.executable
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
SCOPE = f"cbxbench{os.getpid()}"
CONTAINERFILE = """\
FROM {base}
RUN echo one > /one
RUN echo two > /two && ls / > /listing
COPY data.txt /data.txt
RUN cat /data.txt /one /two > /all
"""


def run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")
    return result


CPU: dict[str, list[float]] = {}  # per peer: CPU seconds (user + sys) of each measured run


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of ``cmd``; its CPU time (with its children's) goes into CPU[cmd[0]]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run(cmd, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(cmd[0], []).append(cpu)
    return elapsed


class Peers:
    def __init__(self, work: Path, registry: RegistryServer) -> None:
        self.work = work
        self.base = f"{registry.host}/library/busybox:latest"
        self.context = work / "context"
        self.context.mkdir()
        (self.context / "data.txt").write_text("some data\n" * 100)
        (self.context / "Containerfile").write_text(CONTAINERFILE.format(base=self.base))
        self.env = dict(os.environ)
        self.env.update({
            "CELLBOX_ROOT": str(work / "cellbox-root"),
            "CELLBOX_RUN": str(work / "cellbox-run"),
            "CELLBOX_CGROUP_PARENT": f"cellbox-{SCOPE}",
        })
        self.cellbox = [PYTHON, "-I", "-m", "cellbox.runtime"]
        self.buildah = ["buildah", "--root", str(work / "buildah-root"), "--runroot",
                        str(work / "buildah-run"), "--storage-driver", "overlay"]

    def prepare(self) -> None:
        run([*self.cellbox, "pull", "-q", self.base], env=self.env)
        run([*self.buildah, "pull", "-q", "--tls-verify=false", self.base])

    def cellbox_build(self, *, cold: bool) -> float:
        flags = ["--no-cache"] if cold else []
        return timed([*self.cellbox, "build", "-q", *flags, "-t", "bench/built",
                      str(self.context)], self.env)

    def buildah_build(self, *, cold: bool) -> float:
        flags = ["--no-cache"] if cold else []
        return timed([*self.buildah, "bud", "-q", "--layers", *flags, "--runtime", "runc",
                      *ULIMITS, "--network", "none", "--cgroup-manager", "cgroupfs",
                      "-t", "bench/built", "-f", str(self.context / "Containerfile"),
                      str(self.context)])

    def cleanup(self) -> None:
        ids = run([*self.cellbox, "ps", "-a", "-q", "--no-trunc"], env=self.env,
                  check=False).stdout.split()
        if ids:
            run([*self.cellbox, "rm", "-f", *ids], env=self.env, check=False)
        run([*self.buildah, "rm", "--all"], check=False)
        run([*self.buildah, "rmi", "--all", "--force"], check=False)
        # buildah's overlay storage may leave mounts behind in its private root
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mountpoint = line.split()[4]
            if mountpoint.startswith(str(self.work)):
                subprocess.run(["umount", "-l", mountpoint], check=False)


def report(title: str, times: dict[str, list[float]], cpu: dict[str, list[float]],
           goal: str) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{title}   ({goal})")
    for name, values in times.items():
        ratio = f"{medians[name] / medians['buildah']:.2f}x buildah" if name != "buildah" else ""
        print(f"  {name:<8} median {medians[name] * 1000:8.1f} ms   "
              f"min {min(values) * 1000:8.1f}  max {max(values) * 1000:8.1f}   "
              f"cpu {statistics.median(cpu[name]) * 1000:7.1f} ms   {ratio}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (RUN steps need namespaces and cgroups)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="cbx-bench-build-", dir="/tmp"))
    try:
        with RegistryServer(work / "registry") as registry:
            registry.push(images.layout("busybox"), "latest", "library/busybox:latest")
            peers = Peers(work, registry)
            try:
                peers.prepare()
                # one unmeasured cold build each: imports, page cache, image unpacking
                peers.cellbox_build(cold=True)
                peers.buildah_build(cold=True)
                cold: dict[str, list[float]] = {"cellbox": [], "buildah": []}
                warm: dict[str, list[float]] = {"cellbox": [], "buildah": []}
                CPU.clear()
                for _ in range(args.runs):
                    cold["cellbox"].append(peers.cellbox_build(cold=True))
                    cold["buildah"].append(peers.buildah_build(cold=True))
                cold_cpu = {"cellbox": CPU.pop(PYTHON), "buildah": CPU.pop("buildah")}
                for _ in range(args.runs):
                    warm["cellbox"].append(peers.cellbox_build(cold=False))
                    warm["buildah"].append(peers.buildah_build(cold=False))
                warm_cpu = {"cellbox": CPU.pop(PYTHON), "buildah": CPU.pop("buildah")}
            finally:
                peers.cleanup()
        print(f"build of FROM busybox + 3 RUN + COPY, {args.runs} runs each, alternating")
        report("cold build (--no-cache)", cold, cold_cpu, "goal: cellbox <= 1.0x buildah")
        report("no-change rebuild (all cached)", warm, warm_cpu, "goal: cellbox < 200 ms")
        load = os.getloadavg()[0]
        print(f"\nload average {load:.1f} on {os.cpu_count()} CPUs: wall times include "
              "waiting for a CPU; cpu is user + sys of the command and its children")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
