"""Registry download speed: cellbox's RegistryClient beside skopeo and curl, in one run.

    .venv/bin/python bench/registry.py [--rounds 5] [--image library/debian:bookworm]

Starts its own docker-registry on 127.0.0.1 (a free port, a temp dir, stopped at the end)
seeded with the test images of tests/support/images.py, then per round downloads the
manifest and every blob of the image into a fresh directory:

  cellbox    RegistryClient: get_manifest, then fetch_blob of config and layers in threads;
             every blob sha256-verified while streaming (a new client each round: TCP
             connection and auth included)
  skopeo     ``skopeo copy docker://... dir:DIR`` (verifies digests as well)
  curl       one curl per blob into a file, no verification: what the wire allows
  curl+sha   the same piped through sha256sum: the wire plus the hash, in C

Prints the median of each and cellbox's time as a ratio of each peer's (< 1: cellbox is
faster). The pull benchmark (bench/pull.py) adds unpacking and the store on top of this.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

from cellbox.runtime.reference import Reference
from cellbox.runtime.registry import RegistryClient
from cellbox.runtime.settings import Settings

from tests.support import images
from tests.support.registry import RegistryServer


def timed(
    contenders: dict[str, Callable[[Path], object]], rounds: int, work: Path
) -> dict[str, list[float]]:
    """Each contender once per round, in turns, so that a busy moment hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds + 1):  # the first round only warms caches and connections
        for name, fn in contenders.items():
            out = work / "out"
            out.mkdir()
            start = time.perf_counter()
            fn(out)
            samples[name].append(time.perf_counter() - start)
            shutil.rmtree(out)
    return {name: times[1:] for name, times in samples.items()}


def cellbox(ref: Reference, settings: Settings) -> Callable[[Path], object]:
    def run(out: Path) -> None:
        with RegistryClient(settings) as client:
            resolved = client.get_manifest(ref)
            blobs = [resolved.config, *resolved.layers]
            with ThreadPoolExecutor(4) as pool:
                list(
                    pool.map(
                        lambda d: client.fetch_blob(ref, d.digest, d.size, out / d.digest[7:]),
                        blobs,
                    )
                )

    return run


def skopeo(ref: Reference) -> Callable[[Path], object]:
    def run(out: Path) -> None:
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                f"docker://{ref}",
                f"dir:{out / 'image'}",
            ],
            check=True,
            capture_output=True,
        )

    return run


def curl(ref: Reference, digests: list[str], *, hashed: bool) -> Callable[[Path], object]:
    base = f"http://{ref.registry}/v2/{ref.repository}"

    def run(out: Path) -> None:
        accept = "Accept: application/vnd.oci.image.manifest.v1+json"
        subprocess.run(
            [
                "curl",
                "-sf",
                "-H",
                accept,
                "-o",
                str(out / "manifest"),
                f"{base}/manifests/{ref.tag}",
            ],
            check=True,
        )
        for digest in digests:
            url = f"{base}/blobs/{digest}"
            if hashed:
                subprocess.run(
                    f"curl -sf {url} | tee {out / digest[7:]} | sha256sum >/dev/null",
                    shell=True,
                    check=True,
                )
            else:
                subprocess.run(["curl", "-sf", "-o", str(out / digest[7:]), url], check=True)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default="library/debian:bookworm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cellbox-bench-registry-") as tmp:
        work = Path(tmp)
        with RegistryServer(work / "registry") as server:
            images.push_all(
                server,
                {
                    "library/debian": ("debian", ("bookworm",)),
                    "library/busybox": ("busybox", ("latest",)),
                },
            )
            ref = Reference.parse(f"{server.host}/{args.image}")
            settings = Settings(root=work / "root", run=work / "run", docker_config=work / "docker")
            with RegistryClient(settings) as client:
                resolved = client.get_manifest(ref)
            blobs = [resolved.config, *resolved.layers]
            total = sum(d.size for d in blobs)
            print(
                f"{ref.familiar}: {len(blobs)} blobs, {total / 1e6:.1f} MB, "
                f"{args.rounds} rounds, median"
            )
            contenders = {
                "cellbox": cellbox(ref, settings),
                "skopeo": skopeo(ref),
                "curl": curl(ref, [d.digest for d in blobs], hashed=False),
                "curl+sha": curl(ref, [d.digest for d in blobs], hashed=True),
            }
            results = {
                name: statistics.median(times)
                for name, times in timed(contenders, args.rounds, work).items()
            }
            mine = results["cellbox"]
            for name, seconds in results.items():
                ratio = "" if name == "cellbox" else f"   cellbox/{name} = {mine / seconds:.2f}"
                print(
                    f"  {name:9} {seconds * 1e3:8.1f} ms  {total / seconds / 1e6:7.0f} MB/s{ratio}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
