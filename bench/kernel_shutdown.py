"""Kernel shutdown: cellbox side by side with ipykernel and bash_kernel, in one run.

    sudo .venv/bin/python bench/kernel_shutdown.py [--runs 7] [--image busybox]
        [--kernels cellbox,bash,python3]

What a frontend waits for when it shuts a kernel down (closing a notebook, restarting a
kernel): each kernel is started through jupyter_client, runs a cell (cellbox: ``%container
IMAGE --network none`` and ``echo hi``, then a completion request so that the side shell
runs too; the peers: ``echo hi`` / ``print('hi')``), and is sent a ``shutdown_request`` on
the control channel. Two figures per kernel, medians over ``--runs`` kernels, the three
kernels taking turns:

* reply: the ``shutdown_reply`` arrived (cellbox: its shells ended and its containers
  stopped, files kept);
* exit: the kernel process is gone (waited for directly, not with jupyter_client's 0.1 s
  polling).

Checked on the way: no child of a kernel (cellbox: the shells' ``cellbox exec`` relays)
outlives it, and cellbox's container is stopped (``exited``) with its upper dir kept. The
store, cgroup parent and notebook directory are private to the run and removed at the end,
also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "bench"))

from cells import LABELS, cellbox_environment, ensure_bash_kernel  # noqa: E402
from jupyter_client.manager import KernelManager, start_new_kernel  # noqa: E402

ECHO = {"bash": "echo hi", "python3": "print('hi')"}
PEERS = ("bash", "python3")
EXIT_LIMIT = 30.0  # seconds a kernel may take to exit after its shutdown_reply


def label(name: str) -> str:
    return LABELS.get(name, name)


def _children(pid: int) -> dict[int, bytes]:
    """The children of ``pid`` (every thread's), with their start times (/proc stat 22)."""
    found: dict[int, bytes] = {}
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                start = _start_time(int(child))
                if start is not None:
                    found[int(child)] = start
    return found


def _start_time(pid: int) -> bytes | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()[19]


def one_shutdown(name: str, notebook: Path, image: str) -> tuple[float, float]:
    """(seconds to the shutdown_reply, seconds until the kernel process is gone)."""
    km: KernelManager
    km, kc = start_new_kernel(kernel_name=name, cwd=str(notebook), startup_timeout=120)
    process: Any = km.provisioner.process  # type: ignore[union-attr]
    try:
        code = ECHO.get(name, f"%container {image} --network none\necho hi")
        reply = kc.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
        if name not in PEERS:
            kc.complete("ec", 2, reply=True, timeout=30)  # starts the side shell too
        children = _children(process.pid)  # cellbox: the shells' `cellbox exec` relays
        begin = time.perf_counter()
        msg_id = kc.shutdown()
        while True:
            msg = kc.control_channel.get_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id:
                break
        replied = time.perf_counter() - begin
        try:
            process.wait(EXIT_LIMIT)
        except subprocess.TimeoutExpired:  # stuck: counted as the limit, then killed below
            print(f"  ({label(name)}: still running {EXIT_LIMIT:.0f} s after its reply)")
        exited = time.perf_counter() - begin
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)  # already gone: this only cleans up after it
    left = [pid for pid, start in children.items() if _start_time(pid) == start]
    if name not in PEERS:
        assert not left, f"{name}: cellbox exec relays outlived the kernel: {left}"
        check_stopped()
    elif left:  # a peer's business (bash_kernel's bash ends on the hangup soon after)
        print(f"  ({label(name)}: {len(left)} child process(es) still there at its exit)")
    return replied, exited


def check_stopped() -> None:
    from cellbox.runtime.container import Container
    from cellbox.runtime.settings import Settings

    for container in Container.list(all=True, settings=Settings.load()):
        assert container.status == "exited", f"{container.name} is {container.status}"
        assert Path(container.upper_dir).is_dir(), f"{container.name} lost its files"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", default="busybox", choices=("debian", "busybox"))
    parser.add_argument("--kernels", default="cellbox,bash,python3",
                        help="kernelspecs to compare, the first is the base of the ratios")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/kernel_shutdown.py runs containers: run it as root")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_bash_kernel()
    kernels = args.kernels.split(",")
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in kernels}
    with cellbox_environment(args.image) as notebook:
        for run in range(args.runs):
            for name in kernels:
                samples[name].append(one_shutdown(name, notebook, args.image))
            print(f"run {run + 1}/{args.runs}: " + ", ".join(
                f"{label(k)} {samples[k][-1][1]:.3f} s" for k in kernels), flush=True)

    print(f"\n{' '.join(sys.argv)}\nkernel shutdown, median of {args.runs} "
          f"(image {args.image}; {os.cpu_count()} CPUs)\n")
    width = max(len(label(k)) for k in kernels)
    base = kernels[0]
    base_reply = statistics.median(s[0] for s in samples[base])
    base_exit = statistics.median(s[1] for s in samples[base])
    print(f"  {'':<{width}}  {'reply':>9}  {'exit':>9}  {'worst exit':>10}   "
          f"exit vs {label(base)}")
    for name in kernels:
        reply = statistics.median(s[0] for s in samples[name])
        gone = statistics.median(s[1] for s in samples[name])
        worst = max(s[1] for s in samples[name])
        print(f"  {label(name):<{width}}  {reply:7.3f} s  {gone:7.3f} s  {worst:8.3f} s   "
              f"{gone / base_exit:6.2f}x")
    print(f"\n{label(base)}: shutdown_reply after {base_reply * 1000:.0f} ms, process gone "
          f"after {base_exit * 1000:.0f} ms (medians)")


if __name__ == "__main__":
    main()
