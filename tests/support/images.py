"""The real images the demo and the tests serve from a local registry.

Each image is built once by real tools into an OCI layout under
``$CELLBOX_DEV_CACHE/images/<name>-<recipe hash>`` and reused until its recipe changes:

    busybox        busybox-static and its applet links, with /etc/passwd (root, nobody,
                   user 1000), umoci
    hello-world    a static C program compiled here with gcc, like Docker's hello-world
    debian         ``mmdebstrap --variant=minbase --include=python3,procps bookworm``, one
                   layer added verbatim with ``umoci raw add-layer``

Command line (used by scripts/setup.sh and scripts/demo.sh):

    python -m tests.support.images build
    python -m tests.support.images serve --port 5000 --state DIR   # a registry, seeded
    python -m tests.support.images stop --state DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from .registry import RegistryServer

__all__ = ["DEMO_NAMES", "IMAGES", "TestImage", "cache_dir", "layout", "push_all"]

DEBIAN_MIRROR = os.environ.get("CELLBOX_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cache_dir() -> Path:
    base = os.environ.get("CELLBOX_DEV_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cellbox-dev"
    )
    return Path(base)


def _run(*cmd: str | Path, cwd: Path | None = None) -> None:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )


def _umoci_config(oci: str, *args: str) -> None:
    _run("umoci", "config", "--image", oci, *args)


def _etc_files(root: Path) -> None:
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "user:x:1000:1000:user:/home/user:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (etc / "group").write_text("root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n")
    for d in ("root", "tmp", "home/user", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    os.chown(root / "home/user", 1000, 1000)


def build_busybox(out: Path, work: Path) -> None:
    rootfs = work / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin/busybox")
    applets = subprocess.run(
        ["/bin/busybox", "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = rootfs / applet
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    _etc_files(rootfs)
    oci = f"{out}:latest"
    _run("umoci", "init", "--layout", out)
    _run("umoci", "new", "--image", oci)
    _run("umoci", "insert", "--image", oci, "--history.created_by",
         "COPY busybox-static rootfs /", rootfs, "/")
    _umoci_config(oci, "--config.env", PATH_ENV, "--config.cmd", "sh",
                  "--history.created_by", 'CMD ["sh"]')


HELLO_C = r"""
#include <unistd.h>
static const char msg[] =
"\nHello from cellbox!\n"
"This message shows that your installation appears to be working correctly.\n\n"
"To generate this message, cellbox took the following steps:\n"
" 1. The cellbox kernel read your %container magic.\n"
" 2. cellbox pulled the \"hello-world\" image from the registry.\n"
" 3. cellbox created a new container from that image which runs the\n"
"    executable that produced the output you are currently reading.\n"
" 4. cellbox streamed that output to your notebook.\n\n";
int main(void) { return write(1, msg, sizeof msg - 1) == sizeof msg - 1 ? 0 : 1; }
"""


def build_hello_world(out: Path, work: Path) -> None:
    rootfs = work / "rootfs"
    rootfs.mkdir()
    (work / "hello.c").write_text(HELLO_C)
    _run("gcc", "-static", "-Os", "-s", "-o", rootfs / "hello", work / "hello.c")
    oci = f"{out}:latest"
    _run("umoci", "init", "--layout", out)
    _run("umoci", "new", "--image", oci)
    _run("umoci", "insert", "--image", oci, "--history.created_by",
         "COPY hello /", rootfs / "hello", "/hello")
    _umoci_config(oci, "--config.cmd", "/hello", "--history.created_by", 'CMD ["/hello"]')


def build_debian(out: Path, work: Path) -> None:
    tar = work / "rootfs.tar"
    _run("mmdebstrap", "--quiet", "--variant=minbase", "--include=python3,procps",
         "bookworm", tar, DEBIAN_MIRROR)
    oci = f"{out}:bookworm"
    _run("umoci", "init", "--layout", out)
    _run("umoci", "new", "--image", oci)
    _run("umoci", "raw", "add-layer", "--image", oci, "--history.created_by",
         "mmdebstrap --variant=minbase --include=python3,procps bookworm", tar)
    _umoci_config(oci, "--config.env", PATH_ENV, "--config.cmd", "bash",
                  "--history.created_by", 'CMD ["bash"]')


@dataclass(frozen=True)
class TestImage:
    name: str
    tag: str
    recipe: str  # bump to rebuild
    build: Callable[[Path, Path], None]


IMAGES: dict[str, TestImage] = {
    "busybox": TestImage("busybox", "latest", "busybox-1", build_busybox),
    "hello-world": TestImage("hello-world", "latest", "hello-1", build_hello_world),
    "debian": TestImage("debian", "bookworm", "debian-1", build_debian),
}

# what the demo registry serves as docker.io: repository -> (image, tags)
DEMO_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "library/busybox": ("busybox", ("latest",)),
    "library/hello-world": ("hello-world", ("latest",)),
    "library/debian": ("debian", ("bookworm", "latest", "12")),
}


def layout(name: str) -> Path:
    """The OCI layout of a test image, built on first use."""
    image = IMAGES[name]
    digest = hashlib.sha256(image.recipe.encode()).hexdigest()[:12]
    out = cache_dir() / "images" / f"{name}-{digest}"
    if (out / "index.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{name}-") as tmp:
        work = Path(tmp)
        staged = work / "layout"
        image.build(staged, work)
        staged.rename(out)
    return out


def push_all(registry: RegistryServer, names: dict[str, tuple[str, tuple[str, ...]]]) -> None:
    for repo, (image, tags) in names.items():
        src = layout(image)
        for tag in tags:
            registry.push(src, IMAGES[image].tag, f"{repo}:{tag}")


def _serve(port: int, state: Path) -> None:
    pidfile = state / "registry.pid"
    if pidfile.exists():
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), 0)
            print(f"registry already running on 127.0.0.1:{port}")
            return
    server = RegistryServer(state, port=port).start()
    assert server.process is not None
    pidfile.write_text(str(server.process.pid))
    marker = state / "seeded.json"
    wanted = json.dumps(
        {repo: [IMAGES[img].recipe, tags] for repo, (img, tags) in DEMO_NAMES.items()}
    )
    if not marker.exists() or marker.read_text() != wanted:
        push_all(server, DEMO_NAMES)
        marker.write_text(wanted)
    print(f"registry on 127.0.0.1:{port} serving: {', '.join(DEMO_NAMES)}")


def _stop(state: Path) -> None:
    pidfile = state / "registry.pid"
    with suppress(FileNotFoundError, ProcessLookupError, ValueError):
        pid = int(pidfile.read_text())
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
    pidfile.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.images")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build")
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--state", type=Path, required=True)
    stop = sub.add_parser("stop")
    stop.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "build":
        for name in IMAGES:
            start = time.monotonic()
            path = layout(name)
            print(f"{name}: {path} ({time.monotonic() - start:.1f} s)")
    elif args.cmd == "serve":
        _serve(args.port, args.state)
    else:
        _stop(args.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
