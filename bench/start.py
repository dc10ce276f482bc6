"""Container start, exec and density: cellbox side by side with podman (runc) and runc.

    sudo .venv/bin/python bench/start.py [--runs 20] [--density 50] [--network none]
        [--install editable] [--install wheel] [--cellbox NAME=COMMAND ...]

Everything runs in one go against the same busybox image, served by a docker-registry on
127.0.0.1 that the script starts (and stops):

* start: ``cellbox run --rm IMG true`` (image stored) vs ``podman --runtime runc run --rm
  --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 IMG true`` (image pulled into a
  private podman storage first) vs ``runc run`` of a bundle made by ``umoci unpack``;
  runs alternate, medians and ratios are printed. Goal: cellbox <= 0.3x podman.
* exec: ``cellbox exec NAME true`` vs ``podman exec NAME true`` into a running container.
  Goal: <= 0.3x podman.
* density: N idle containers at once, kernel-style (``run -d --keep``: PID 1 just waits)
  and ``run -d busybox sleep 1d``: host memory per container (PSS and USS of every host
  process of the container: its init and whatever runs in it) — goal <= 8 MiB — and the
  start time of the last vs the first — goal within 1.5x.

Which ``cellbox``: the command a user runs, installed the way a user installs it. Each
``--install`` makes a virtualenv under the temp dir with this checkout installed
``editable`` (``pip install -e``, as scripts/setup.sh does) or from a ``wheel`` (``pip
wheel`` + ``pip install``), and measures its ``bin/cellbox``; ``--cellbox NAME=COMMAND``
adds any other command (another checkout's, ``"python -I -m cellbox.runtime"``...). The
default is both installs. The first cellbox listed is the one the density runs use.

Networking defaults to ``none`` for every peer (``--network bridge`` to measure that too):
the machine is shared, and bridge mode puts veths on the host that other people's leak
checks would see. Everything the script makes is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from tests.support import images  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

PYTHON = sys.executable
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
SCOPE = f"cbxbench{os.getpid()}"
# What a source tree needs to be installed (pyproject's packages, scripts, data files).
SOURCES = ("pyproject.toml", "README.md", "runtime", "kernel", "bin", "labextension/prebuilt")


def run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")
    return result


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, timeout=120)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr}")
    return elapsed


# ---------------------------------------------------------------------------- installs

def _copy_sources(work: Path) -> Path:
    """A copy of what the checkout installs from (so builds write nothing into it)."""
    src = work / "src"
    for name in SOURCES:
        if (HERE / name).exists():
            dest = src / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if (HERE / name).is_dir():
                shutil.copytree(HERE / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(HERE / name, dest)
    return src


def install(kind: str, work: Path) -> list[str]:
    """A fresh virtualenv with this checkout installed ``kind``-wise; its cellbox command.

    Dependencies are not installed: starting and entering a container of a stored image
    needs none of them (the images are pulled by the project's own environment).
    """
    venv = work / f"venv-{kind}"
    run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)])
    pip = [PYTHON, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
           "--no-deps"]
    if kind == "editable":
        # As a developer (scripts/setup.sh) has it: the source is the checkout itself.
        run([*pip, "-e", str(HERE)], timeout=600)
    else:
        wheels = work / "wheels"
        run([PYTHON, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
             "-w", str(wheels), str(_copy_sources(work))], timeout=600)
        (wheel,) = wheels.glob("cellbox-*.whl")
        run([*pip, str(wheel)])
    return [str(venv / "bin" / "cellbox")]


# ---------------------------------------------------------------------------- peers

class Peers:
    """The runtimes, each with private state under one temp dir."""

    def __init__(self, work: Path, registry: RegistryServer, network: str,
                 cellboxes: dict[str, list[str]]) -> None:
        self.work = work
        self.network = network
        self.image_ref = f"{registry.host}/library/busybox:latest"
        self.env = dict(os.environ)
        self.env.update({
            "CELLBOX_ROOT": str(work / "cellbox-root"),
            "CELLBOX_RUN": str(work / "cellbox-run"),
            "CELLBOX_CGROUP_PARENT": f"cellbox-{SCOPE}",
            "CELLBOX_REGISTRY_MIRRORS": registry.url,
            "CELLBOX_INSECURE_REGISTRIES": registry.host,
        })
        self.cellboxes = cellboxes
        # Set-up and clean-up go through the project's environment (it has httpx).
        self.cellbox = [PYTHON, "-I", "-m", "cellbox.runtime"]
        self.podman = ["podman", "--root", str(work / "podman-root"), "--runroot",
                       str(work / "podman-run"), "--runtime", "runc",
                       "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
                       "--events-backend", "none"]
        self.runc = ["runc", "--root", str(work / "runc-state")]
        self.bundle = work / "bundle"
        self.cellbox_image = "busybox"

    def prepare(self) -> None:
        run([*self.cellbox, "pull", "-q", "busybox"], env=self.env)
        run([*self.podman, "pull", "-q", "--tls-verify=false", self.image_ref])
        layout = images.layout("busybox")
        run(["umoci", "unpack", "--image", f"{layout}:latest", str(self.bundle)])
        config_path = self.bundle / "config.json"
        config = json.loads(config_path.read_text())
        config["process"]["args"] = ["true"]
        config["process"]["terminal"] = False
        if self.network != "none":
            config["linux"]["namespaces"] = [
                ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"
            ]
        config_path.write_text(json.dumps(config))

    # -- start --------------------------------------------------------------------------

    def start_cellbox(self, command: list[str]) -> Callable[[], float]:
        return lambda: timed([*command, "run", "--rm", "--network", self.network,
                              self.cellbox_image, "true"], self.env)

    def start_podman(self) -> float:
        net = "none" if self.network == "none" else "bridge"
        return timed([*self.podman, "run", "--rm", *ULIMITS, "--network", net,
                      self.image_ref, "true"])

    def start_runc(self) -> float:
        return timed([*self.runc, "run", "-b", str(self.bundle), f"{SCOPE}-runc"])

    # -- exec ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def running_pair(self) -> Iterator[str]:
        name = f"{SCOPE}-exec"
        run([*self.cellbox, "run", "-d", "--name", name, "--network", self.network,
             self.cellbox_image, "sleep", "1d"], env=self.env)
        net = "none" if self.network == "none" else "bridge"
        run([*self.podman, "run", "-d", "--name", name, *ULIMITS, "--network", net,
             self.image_ref, "sleep", "1d"])
        try:
            yield name
        finally:
            run([*self.cellbox, "rm", "-f", name], env=self.env, check=False)
            run([*self.podman, "rm", "-f", "-t", "0", name], check=False)

    def cleanup(self) -> None:
        ids = run([*self.cellbox, "ps", "-a", "-q", "--no-trunc"], env=self.env,
                  check=False).stdout.split()
        if ids:
            run([*self.cellbox, "rm", "-f", *ids], env=self.env, check=False)
        run([*self.podman, "rm", "-a", "-f", "-t", "0"], check=False)
        run([*self.runc, "delete", "-f", f"{SCOPE}-runc"], check=False)
        run([*self.podman, "system", "reset", "-f"], check=False)
        # podman's overlay storage may leave mounts behind in its private root
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mountpoint = line.split()[4]
            if mountpoint.startswith(str(self.work)):
                subprocess.run(["umount", "-l", mountpoint], check=False)


def alternate(runs: int, peers: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in peers}
    for fn in peers.values():
        fn()  # warm caches once
    for _ in range(runs):
        for name, fn in peers.items():
            times[name].append(fn())
    return times


def report(title: str, times: dict[str, list[float]], bases: tuple[str, ...]) -> None:
    print(f"\n{title}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    width = max(len(name) for name in times)
    for name, med in medians.items():
        spread = f"min {min(times[name]) * 1000:6.1f}  max {max(times[name]) * 1000:6.1f}"
        ratios = "  ".join(f"{med / medians[b]:5.2f}x {b}" for b in bases
                           if b in medians and b != name)
        print(f"  {name:<{width}}  median {med * 1000:6.1f} ms   {spread}   {ratios}")


# ---------------------------------------------------------------------------- density

def _rollup(pid: int) -> tuple[int, int]:
    """(PSS, USS) of a process in bytes, from /proc/PID/smaps_rollup."""
    pss = uss = 0
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "Pss":
            pss += int(value.split()[0]) * 1024
        elif key in ("Private_Clean", "Private_Dirty"):
            uss += int(value.split()[0]) * 1024
    return pss, uss


def _container_pids(root: Path, container_id: str) -> tuple[int, list[int]]:
    """The init's host pid and every host pid in the container's pid namespace."""
    state = json.loads((root / "containers" / container_id / "state.json").read_text())
    init = int(state["pid"])
    ns = os.readlink(f"/proc/{init}/ns/pid")
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    pids.append(int(entry))
    return init, pids


def density(peers: Peers, command: list[str], count: int, keep: bool) -> None:
    label = "kernel-style (--keep)" if keep else "busybox sleep 1d"
    args = ["--keep", peers.cellbox_image] if keep else [peers.cellbox_image, "sleep", "1d"]
    root = Path(peers.env["CELLBOX_ROOT"])
    starts, ids = [], []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            out = run([*command, "run", "-d", "--network", peers.network, *args],
                      env=peers.env).stdout.strip()
            starts.append(time.perf_counter() - t0)
            ids.append(out)
        time.sleep(1.0)  # let every init settle (gc, malloc_trim) before measuring
        init_pss = init_uss = all_pss = all_uss = 0
        for cid in ids:
            init, pids = _container_pids(root, cid)
            pss, uss = _rollup(init)
            init_pss, init_uss = init_pss + pss, init_uss + uss
            for pid in pids:
                pss, uss = _rollup(pid)
                all_pss, all_uss = all_pss + pss, all_uss + uss
    finally:
        if ids:
            run([*peers.cellbox, "rm", "-f", *ids], env=peers.env, check=False, timeout=600)
    mib = 1 << 20
    first, last = statistics.mean(starts[:3]), statistics.mean(starts[-3:])
    print(f"\ndensity: {count} containers, {label}")
    print(f"  init only:      PSS {init_pss / count / mib:5.2f} MiB   USS "
          f"{init_uss / count / mib:5.2f} MiB per container")
    print(f"  all processes:  PSS {all_pss / count / mib:5.2f} MiB   USS "
          f"{all_uss / count / mib:5.2f} MiB per container   (goal <= 8 MiB)")
    print(f"  start: first 3 {first * 1000:6.1f} ms, last 3 {last * 1000:6.1f} ms "
          f"-> {last / first:.2f}x   (goal <= 1.5x)")


# ---------------------------------------------------------------------------- main

def _cellbox_commands(args: argparse.Namespace, work: Path) -> dict[str, list[str]]:
    commands: dict[str, list[str]] = {}
    installs = args.install or ["editable", "wheel"]
    for kind in installs:
        commands[f"cellbox-{kind}"] = install(kind, work)
    for item in args.cellbox:
        name, sep, command = item.partition("=")
        if not sep or not name or not command:
            raise SystemExit(f"--cellbox {item!r}: use NAME=COMMAND")
        commands[name] = shlex.split(command)
    return commands


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--density", type=int, default=50)
    parser.add_argument("--network", choices=("none", "bridge"), default="none")
    parser.add_argument("--install", action="append", default=[],
                        choices=("editable", "wheel"),
                        help="measure this checkout installed so (default: both)")
    parser.add_argument("--cellbox", action="append", default=[], metavar="NAME=COMMAND",
                        help="measure another cellbox command too")
    parser.add_argument("--skip", action="append", default=[],
                        choices=("start", "exec", "density"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/start.py needs root (podman, runc and cellbox run as root)")
        return 2
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    with open("/proc/loadavg") as f:
        print(f"load average at the start: {' '.join(f.read().split()[:3])}")
    with tempfile.TemporaryDirectory(prefix=f"{SCOPE}-") as tmp:
        work = Path(tmp)
        cellboxes = _cellbox_commands(args, work)
        for name, command in cellboxes.items():
            print(f"  {name}: {shlex.join(command)}")
        with RegistryServer(work / "registry") as registry:
            images.push_all(registry, {"library/busybox": ("busybox", ("latest",))})
            peers = Peers(work, registry, args.network, cellboxes)
            try:
                peers.prepare()
                if "start" not in args.skip:
                    starters = {name: peers.start_cellbox(command)
                                for name, command in cellboxes.items()}
                    times = alternate(args.runs, {**starters, "podman": peers.start_podman,
                                                  "runc": peers.start_runc})
                    report(f"start: run --rm busybox true, network {args.network} "
                           f"({args.runs} runs each, alternating)", times, ("podman", "runc"))
                if "exec" not in args.skip:
                    with peers.running_pair() as name:
                        execs: dict[str, Callable[[], float]] = {
                            cellbox: (lambda c=command: timed([*c, "exec", name, "true"],
                                                              peers.env))
                            for cellbox, command in cellboxes.items()
                        }
                        execs["podman"] = lambda: timed([*peers.podman, "exec", name, "true"])
                        times = alternate(args.runs, execs)
                    report(f"exec: exec NAME true ({args.runs} runs each, alternating)", times,
                           ("podman",))
                if "density" not in args.skip:
                    first = next(iter(cellboxes.values()))
                    density(peers, first, args.density, keep=True)
                    density(peers, first, args.density, keep=False)
            finally:
                peers.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
