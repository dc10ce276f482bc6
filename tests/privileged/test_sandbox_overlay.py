"""The overlay rootfs: hundreds of layers (past mount(2)'s 4095-byte option limit), the
mount(2) fallback for kernels without ``lowerdir+``, and what the workload inherits."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from cellbox.runtime import linux, mounts
from cellbox.runtime.errors import SandboxError
from cellbox.runtime.sandbox import start_sandbox

from tests.support.rootfs import log_records, new_spec, run, unpacked


@pytest.fixture(scope="module")
def busybox() -> Path:
    return unpacked("busybox")


def make_layers(base: Path, count: int) -> list[Path]:
    """``count`` layers with long names; each adds /layers/N and overwrites /layers/top."""
    layers = []
    for i in range(count):
        layer = base / f"layer-with-a-rather-long-directory-name-like-a-chain-id-{i:04d}" / "diff"
        (layer / "layers").mkdir(parents=True)
        (layer / "layers" / str(i)).write_text(str(i))
        (layer / "layers" / "top").write_text(str(i))
        layers.append(layer)
    return layers[::-1]  # top first


def test_hundreds_of_layers_are_all_mounted(tmp_path: Path, busybox: Path) -> None:
    layers = make_layers(tmp_path / "layers", 300)
    assert len(",".join(map(str, layers))) > 4095 * 4
    result = run(new_spec(tmp_path, [*layers, busybox],
                          ["sh", "-c", "ls /layers | wc -l; cat /layers/top; echo; "
                                       "cat /layers/0"]))
    assert result.code == 0, result
    assert result.stdout.split() == ["301", "299", "0"]  # 300 files + top; the top layer won


def _in_mount_namespace(fn: object) -> dict[str, object]:
    """Run ``fn()`` in a forked child with its own mount namespace; return what it returns."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            linux.unshare(linux.CLONE_NEWNS)
            mounts.make_root_private()
            out = fn()  # type: ignore[operator]
        except BaseException as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    result: dict[str, object] = json.loads(data)
    return result


def test_mount2_fallback_with_relative_lower_dirs(tmp_path: Path) -> None:
    layers = make_layers(tmp_path / "layers", 40)
    assert len(":".join(map(str, layers))) > 4095  # absolute paths would not fit
    for d in ("upper", "work", "target"):
        (tmp_path / d).mkdir()

    def mount_and_list() -> dict[str, object]:
        fd = mounts._mount_overlay_legacy([str(p) for p in layers], str(tmp_path / "upper"),
                                          str(tmp_path / "work"), str(tmp_path / "target"),
                                          False)
        os.close(fd)
        target = tmp_path / "target" / "layers"
        return {"count": len(os.listdir(target)), "top": (target / "top").read_text()}

    assert _in_mount_namespace(mount_and_list) == {"count": 41, "top": "39"}
    assert not os.listdir(tmp_path / "target")  # the mount stayed in the child's namespace


def test_mount2_fallback_refuses_too_many_layers(tmp_path: Path) -> None:
    layers = make_layers(tmp_path / "layers", 120)
    with pytest.raises(SandboxError, match="do not fit"):
        mounts._mount_overlay_legacy([str(p) for p in layers], str(tmp_path), str(tmp_path),
                                     str(tmp_path), False)


def test_workload_inherits_only_stdio(tmp_path: Path, busybox: Path) -> None:
    result = run(new_spec(tmp_path, busybox, ["ls", "/proc/self/fd"]))
    assert result.stdout.split() == ["0", "1", "2", "3"]  # 3: ls's own directory fd


def test_partial_line_is_flushed_before_exit(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, ["sh", "-c", "printf 'progress 50%%'; sleep 2; echo"])
    with start_sandbox(spec) as handle:
        deadline = time.monotonic() + 1.5
        records: list[dict[str, object]] = []
        while not records and time.monotonic() < deadline:
            time.sleep(0.05)
            records = log_records(spec)
        assert records, "the partial line was not flushed while the workload ran"
        assert (records[0]["line"], records[0].get("partial")) == ("progress 50%", True)
        assert handle.wait(10) is not None


def test_missing_layer_is_a_clear_error(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, [tmp_path / "no-such-layer", busybox], ["true"])
    with pytest.raises(SandboxError, match="overlay"):
        start_sandbox(spec)
