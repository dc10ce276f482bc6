"""Cold pull + unpack: cellbox side by side with podman and skopeo + umoci.

    sudo .venv/bin/python bench/pull.py [--runs 3]

The image: the test debian layout (tests/support/images.py) plus two layers of
incompressible data added with ``umoci insert`` — three layers, over 150 MB compressed;
built once and cached next to the test images. A docker-registry on 127.0.0.1, started
here and stopped at the end, serves it. Each run pulls into fresh, empty storage:

* cellbox:       ``python -m cellbox.runtime pull -q 127.0.0.1:PORT/bench/pull:1``
                 (fresh CELLBOX_ROOT); its peak RSS is the child's ru_maxrss
* podman:        ``podman --root DIR --runroot DIR2 pull --tls-verify=false ...``
* skopeo+umoci:  ``skopeo copy docker://... oci:DIR:1`` then ``umoci unpack``

The peers run alternately, ``--runs`` times each; medians and the ratios cellbox/peer are
printed. Nothing is deleted until the end: ext4 (without a journal, as here) makes new
inodes skip recently deleted ones, so a run right after another's 10,000-file delete would
pay for it (up to a millisecond per file created). The issue's goal: cellbox at most 0.6x
podman's time, peak memory under 100 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from tests.support import images  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

RECIPE = "bench-pull-1"  # bump to rebuild the cached image
RANDOM_LAYERS = (40 << 20, 40 << 20)  # bytes of incompressible data per extra layer
IMAGE = "bench/pull"


def run(cmd: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                            timeout=900, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")
    return result  # type: ignore[no-any-return]


def bench_layout() -> Path:
    """The benchmark image as an OCI layout (tag "1"), built on first use and cached."""
    digest = hashlib.sha256(f"{RECIPE}{RANDOM_LAYERS}".encode()).hexdigest()[:12]
    out = images.cache_dir() / "images" / f"bench-pull-{digest}"
    if (out / "index.json").exists():
        return out
    debian = images.layout("debian")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".bench-pull-") as tmp:
        work = Path(tmp)
        staged = work / "layout"
        shutil.copytree(debian, staged)
        img = f"{staged}:1"
        run(["umoci", "tag", "--image", f"{staged}:{images.IMAGES['debian'].tag}", "1"])
        rng = random.Random(1234)
        for number, size in enumerate(RANDOM_LAYERS, 1):
            data = work / f"data{number}"
            data.mkdir()
            for part in range(4):  # a few files per layer, like real data
                with open(data / f"blob{part}.bin", "wb") as f:
                    left = size // 4
                    while left:
                        chunk = min(left, 1 << 20)
                        f.write(rng.randbytes(chunk))
                        left -= chunk
            run(["umoci", "insert", "--image", img, "--history.created_by",
                 f"COPY data{number} /opt/data{number}", data, f"/opt/data{number}"])
        run(["umoci", "gc", "--layout", staged])
        staged.rename(out)
    return out


def compressed_size(layout: Path) -> tuple[int, int]:
    """(total compressed layer bytes, number of layers) of tag 1."""
    import json

    index = json.loads((layout / "index.json").read_text())
    entry = next(m for m in index["manifests"]
                 if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "1")
    manifest = json.loads((layout / "blobs/sha256" / entry["digest"][7:]).read_text())
    return sum(layer["size"] for layer in manifest["layers"]), len(manifest["layers"])


def timed_child(cmd: list[str | Path], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {stderr}")
    return elapsed, usage.ru_maxrss * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/pull.py compares with podman's root storage: run it as root",
              file=sys.stderr)
        return 2
    print("building the benchmark image (cached after the first time)...", flush=True)
    layout = bench_layout()
    size, count = compressed_size(layout)
    work = Path(tempfile.mkdtemp(prefix=f"cbxbench-pull-{os.getpid()}-"))
    results: dict[str, list[float]] = {"cellbox": [], "podman": [], "skopeo+umoci": []}
    rss: list[int] = []
    podman_roots: list[tuple[Path, Path]] = []
    try:
        with RegistryServer(work / "registry") as registry:
            registry.push(layout, "1", f"{IMAGE}:1")
            ref = f"{registry.host}/{IMAGE}:1"

            def cellbox(n: int) -> float:
                root = work / f"cellbox-{n}"
                env = {**os.environ, "CELLBOX_ROOT": str(root),
                       "CELLBOX_RUN": str(work / f"cellbox-run-{n}")}
                seconds, peak = timed_child(
                    [sys.executable, "-m", "cellbox.runtime", "pull", "-q", ref], env)
                rss.append(peak)
                return seconds

            def podman(n: int) -> float:
                root, runroot = work / f"podman-{n}", work / f"podman-run-{n}"
                seconds, _ = timed_child(["podman", "--root", root, "--runroot", runroot,
                                          "--events-backend", "none", "pull", "-q",
                                          "--tls-verify=false", ref])
                podman_roots.append((root, runroot))
                return seconds

            def skopeo_umoci(n: int) -> float:
                oci, bundle = work / f"oci-{n}", work / f"bundle-{n}"
                start = time.perf_counter()
                run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                     f"docker://{ref}", f"oci:{oci}:1"])
                run(["umoci", "unpack", "--image", f"{oci}:1", bundle])
                return time.perf_counter() - start

            peers: dict[str, Callable[[int], float]] = {
                "cellbox": cellbox, "podman": podman, "skopeo+umoci": skopeo_umoci}
            for n in range(args.runs):
                for name, peer in peers.items():
                    seconds = peer(n)
                    results[name].append(seconds)
                    print(f"  run {n + 1}: {name:<13} {seconds:6.2f} s", flush=True)
    finally:
        for root, runroot in podman_roots:
            subprocess.run(["podman", "--root", str(root), "--runroot", str(runroot),
                            "--events-backend", "none", "system", "reset", "--force"],
                           capture_output=True, timeout=300)
        shutil.rmtree(work, ignore_errors=True)
    median = {name: statistics.median(times) for name, times in results.items()}
    print()
    print(f"cold pull + unpack of a {count}-layer image, {size / 1e6:.0f} MB compressed, "
          f"{args.runs} runs each, alternating (command: {' '.join(sys.argv)})")
    for name, seconds in median.items():
        print(f"  {name:<13} median {seconds:6.2f} s")
    print(f"  ratio cellbox/podman        {median['cellbox'] / median['podman']:.2f}  "
          "(goal <= 0.60)")
    print(f"  ratio cellbox/skopeo+umoci  {median['cellbox'] / median['skopeo+umoci']:.2f}")
    print(f"  cellbox peak RSS            {max(rss) / (1 << 20):.1f} MiB  (goal < 100 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
