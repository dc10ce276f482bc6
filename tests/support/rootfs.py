"""Root file systems and sandbox helpers for the sandbox's tests (no image store needed).

``unpacked(name)`` is the rootfs of a test image (tests.support.images) unpacked by
``umoci unpack``, cached next to the image layouts and shared read-only by every test:
each container gets it as its single overlay lower dir, with its own upper dir.
``new_spec`` makes a SandboxSpec whose state dir carries the session scope (so the leak
checks see its processes), ``run`` runs one to the end and returns what it printed.

``python -m tests.support.rootfs exec PID JSON [CONTROL_FD]`` calls ``exec_in`` in a fresh
single-threaded process, as ``cellbox exec`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.images import IMAGES, cache_dir, layout

__all__ = ["Result", "log_records", "new_spec", "run", "unpacked"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def unpacked(name: str) -> Path:
    """The rootfs directory of test image ``name``, unpacked once and cached."""
    src = layout(name)
    out = cache_dir() / "rootfs" / src.name
    if (out / "rootfs").is_dir():
        return out / "rootfs"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{name}-") as tmp:
        bundle = Path(tmp) / "bundle"
        subprocess.run(["umoci", "unpack", "--image", f"{src}:{IMAGES[name].tag}", str(bundle)],
                       check=True, capture_output=True)
        try:
            bundle.rename(out)
        except OSError:
            if not (out / "rootfs").is_dir():
                raise
    return out / "rootfs"


def new_spec(base: Path, lower: Path | list[Path], args: list[str], **kw: Any) -> Any:
    """A SandboxSpec with fresh upper/work/state dirs under ``base``."""
    from cellbox.runtime.records import fields
    from cellbox.runtime.sandbox import ProcessSpec, SandboxSpec

    scope = os.environ.get("CELLBOX_TEST_SCOPE", "cbxtest")
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"sbx-{scope}-", dir=base))
    for d in ("upper", "work", "state"):
        (root / d).mkdir()
    process_kw = {k: kw.pop(k) for k in list(kw) if k in fields(ProcessSpec)}
    process_kw.setdefault("env", [f"PATH={DEFAULT_PATH}"])
    lowers = [str(p) for p in lower] if isinstance(lower, list) else [str(lower)]
    kw.setdefault("hostname", "sbxhost")
    return SandboxSpec(
        id=root.name, lower_dirs=lowers, upper_dir=str(root / "upper"),
        work_dir=str(root / "work"), state_dir=str(root / "state"),
        log_path=str(root / "state" / "log.jsonl"), process=ProcessSpec(args=args, **process_kw),
        **kw,
    )


def log_records(spec: Any) -> list[dict[str, Any]]:
    path = Path(spec.log_path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@dataclass
class Result:
    code: int
    signal: int | None
    oom_killed: bool
    stdout: str
    stderr: str


def run(spec: Any, timeout: float = 60) -> Result:
    """Start ``spec``, wait for it, and return the exit status and the logged output."""
    from cellbox.runtime.sandbox import start_sandbox

    with start_sandbox(spec) as handle:
        status = handle.wait(timeout)
        if status is None:
            handle.signal(9)
            handle.wait(10)
            raise TimeoutError(f"container {spec.id} still running after {timeout} s")
    out = {"stdout": "", "stderr": ""}
    for record in log_records(spec):
        out[record["stream"]] += record["line"] + ("" if record.get("partial") else "\n")
    return Result(status.code, status.signal, status.oom_killed, out["stdout"], out["stderr"])


def exec_argv(pid: int, process: dict[str, Any], control_fd: int | None = None) -> list[str]:
    """The argv of a fresh process that runs ``exec_in`` (as ``cellbox exec`` would)."""
    argv = [sys.executable, "-m", "tests.support.rootfs", "exec", str(pid), json.dumps(process)]
    if control_fd is not None:
        argv.append(str(control_fd))
    return argv


def _exec_main(argv: list[str]) -> int:
    from cellbox.runtime.errors import CellboxError, SandboxError
    from cellbox.runtime.nsexec import exec_in

    pid, process = int(argv[0]), json.loads(argv[1])
    control = int(argv[2]) if len(argv) > 2 else None
    try:
        return exec_in(pid, process, control_fd=control)
    except SandboxError as exc:
        print(f"exec failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except CellboxError as exc:
        print(f"exec failed: {exc}", file=sys.stderr)
        return 125


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


if __name__ == "__main__":
    if sys.argv[1] == "exec":
        sys.exit(_exec_main(sys.argv[2:]))
    raise SystemExit(f"unknown command {sys.argv[1]!r}")
