"""What ``cellbox run`` and ``cellbox exec`` load: each import is paid on every start.

The hot modules are imported in a fresh ``python -I -S`` (as the launcher starts them) and
``sys.modules`` is checked for what must not be there. Also: the ``cellbox`` launcher
(bin/cellbox) finds the package in a wheel or an editable install, and
``sitepath.ensure`` gives a ``-S`` process its site-packages when a command needs them.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cellbox.runtime import mediatypes
from cellbox.runtime.images import OCI_LAYER_GZIP
from cellbox.runtime.layers import ApplyOptions
from cellbox.runtime.store import Store

from tests.support.oci import File, tar_layer

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
LAUNCHER = RUNTIME.parent / "bin" / "cellbox"
# What no hot path may load: a registry client, netlink, an event loop, argparse, a TOML
# parser, a subprocess module, OpenSSL's hashlib, the layer code.
NEVER = {"httpx", "pyroute2", "asyncio", "argparse", "tomllib", "subprocess", "_hashlib",
         "cellbox.runtime.layers", "cellbox.runtime.layerio", "tarfile", "shutil", "tempfile"}
EXEC_NEVER = NEVER | {"dataclasses", "typing", "json", "re", "pathlib", "enum", "signal",
                      "cellbox.runtime.ptyrelay", "cellbox.runtime.container",
                      "cellbox.runtime.settings"}
RUN_MODULES = ["cli", "cli_containers", "settings", "container", "containerstate",
               "containerspec", "store", "images", "sandbox", "initfork", "_init"]


def loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """sys.modules of a ``python -I -S`` that registered the package as _boot does, ran code."""
    boot = (
        "import sys; m = type(sys); top = m('cellbox'); top.__path__ = []; "
        "rt = m('cellbox.runtime'); rt.__path__ = [sys.argv[1]]; "
        "sys.modules['cellbox'] = top; sys.modules['cellbox.runtime'] = rt\n"
    )
    tail = "\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-I", "-S", "-c", boot + code + tail, str(RUNTIME)],
                            capture_output=True, text=True, check=True, env=env)
    return set(result.stdout.split())


def test_the_exec_path_is_lean() -> None:
    loaded = loaded_after("import cellbox.runtime.cli, cellbox.runtime.cli_containers, "
                          "cellbox.runtime.containerexec, cellbox.runtime.nsexec")
    assert not EXEC_NEVER & loaded


def test_the_run_path_modules_are_lean() -> None:
    loaded = loaded_after("\n".join(f"import cellbox.runtime.{m}" for m in RUN_MODULES))
    assert not NEVER & loaded
    assert not {"typing", "json", "cellbox.runtime.reference", "cellbox.runtime.locks"} & loaded


# Nor what the start path may not import beyond that (the real run, exec included, is
# checked as root in tests/privileged/test_container_startpath.py).
START_NEVER = EXEC_NEVER - {"cellbox.runtime.container", "cellbox.runtime.settings"} | {
    "inspect", "fnmatch", "urllib", "ipaddress", "datetime", "functools", "contextlib",
    "collections", "hashlib"}


def test_the_start_path_modules_import_nothing_heavy() -> None:
    modules = [*RUN_MODULES, "reference", "hosts", "cgroups", "cgroups.v1", "containerexec"]
    loaded = loaded_after("\n".join(f"import cellbox.runtime.{m}" for m in modules))
    assert not START_NEVER & loaded, START_NEVER & loaded


def test_reading_an_image_needs_no_writer_code(tmp_path: Path) -> None:
    store = Store(tmp_path, options=ApplyOptions(rootless=True))
    layer = store.add_layer(io.BytesIO(tar_layer([File("bin/sh", b"sh")])), None)
    store.add_image("example.com/app:1", {"architecture": "amd64", "os": "linux"}, [layer])
    loaded = loaded_after(
        "from cellbox.runtime.store import Store\n"
        f"image = Store({str(tmp_path)!r}).get_image('example.com/app:1')\n"
        "assert image.layers[0].media_type == 'application/vnd.oci.image.layer.v1.tar+gzip'"
    )
    assert not NEVER & loaded
    assert OCI_LAYER_GZIP == mediatypes.OCI_LAYER_GZIP


def test_sitepath_gives_a_no_site_process_its_site_packages() -> None:
    loaded = loaded_after("from cellbox.runtime import sitepath\nsitepath.ensure()\n"
                          "sitepath.ensure()\nimport httpx")
    assert "httpx" in loaded


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    """A virtualenv's layout around a copy of bin/cellbox, python3 being ours."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy2(LAUNCHER, venv / "bin" / "cellbox")
    (venv / "bin" / "python3").symlink_to(sys.executable)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (venv / "lib" / version / "site-packages").mkdir(parents=True)
    return venv


def launch(venv: Path, *args: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CELLBOX_ROOT": str(root), "HOME": str(root)}
    return subprocess.run([str(venv / "bin" / "cellbox"), *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_the_launcher_finds_a_wheel_install(fake_venv: Path, tmp_path: Path) -> None:
    site = next((fake_venv / "lib").iterdir()) / "site-packages"
    (site / "cellbox").mkdir()
    (site / "cellbox" / "runtime").symlink_to(RUNTIME, target_is_directory=True)
    result = launch(fake_venv, "ps", "-a", root=tmp_path / "root")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CONTAINER ID")
    assert launch(fake_venv, "--help", root=tmp_path).stdout.startswith("usage: cellbox")


def test_the_launcher_finds_an_editable_install(fake_venv: Path, tmp_path: Path) -> None:
    site = next((fake_venv / "lib").iterdir()) / "site-packages"
    (site / "__editable___cellbox_0_1_0_finder.py").write_text(
        f"MAPPING: dict[str, str] = {{'cellbox.kernel': '/nowhere', "
        f"'cellbox.runtime': '{RUNTIME}'}}\n"
    )
    result = launch(fake_venv, "ps", "-q", root=tmp_path / "root")
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    bad = launch(fake_venv, "run", "--network", "wifi", "busybox", root=tmp_path)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr  # argparse, as ever


def test_the_launcher_outside_a_virtualenv_starts_the_usual_way(tmp_path: Path) -> None:
    alone = tmp_path / "bin"
    alone.mkdir()
    shutil.copy2(LAUNCHER, alone / "cellbox")
    # No python3 next to it: `python3 -P -m cellbox.runtime` from PATH, here ours.
    python3 = tmp_path / "python3"
    python3.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python3.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "CELLBOX_ROOT": str(tmp_path / "root"),
           "HOME": str(tmp_path)}
    result = subprocess.run([str(alone / "cellbox"), "--help"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("usage: cellbox"), result.stderr


@pytest.mark.parametrize(("body", "status", "out"), [
    # a lean command: its buffered output is flushed before the quick exit
    ("print('partial line', end='')\n    return 3", 3, "partial line"),
    # an atexit handler or a thread: the interpreter's usual exit, handlers run
    ("import atexit; atexit.register(print, 'at exit')\n    print('body')\n    return 4", 4,
     "body\nat exit\n"),
    ("import threading\n    t = threading.Thread(target=print, args=('thread',))\n"
     "    t.start()\n    return 0", 0, "thread\n"),
    # statuses sys.exit alone knows what to do with
    ("return 'a message'", 1, ""),
    ("return None", 0, ""),
    ("return 256 + 7", 7, ""),
])
def test_boot_exits_quickly_only_when_nothing_is_lost(tmp_path: Path, body: str, status: int,
                                                      out: str) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    shutil.copy2(RUNTIME / "_boot.py", runtime / "_boot.py")
    (runtime / "probe.py").write_text(f"def main(argv):\n    {body}\n")
    result = subprocess.run([sys.executable, "-I", "-S", str(runtime / "_boot.py"), "probe"],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (status, out), result.stderr
