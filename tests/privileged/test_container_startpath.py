"""How a container's init comes to be: forked ahead by a single-threaded command
(:mod:`cellbox.runtime.initfork`), or spawned for a multithreaded caller (the kernel).

Each case runs in a fresh Python process, so that "single-threaded" is under the test's
control, and reports what it saw as JSON lines.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from cellbox.runtime.settings import Settings

from tests.support.containers import VENV_PYTHON, cellbox, cellbox_env, container_images

__all__ = ["cellbox_env", "container_images"]  # fixtures used by name below

SCRIPT = """
import json, os, sys, threading
from cellbox.runtime import initfork
from cellbox.runtime.container import Container
from cellbox.runtime.containerstate import ContainerConfig

def report(**values):
    print(json.dumps(values), flush=True)

{body}
"""


def run_script(body: str) -> list[dict[str, object]]:
    code = SCRIPT.format(body=textwrap.dedent(body))
    result = subprocess.run([str(VENV_PYTHON), "-I", "-c", code], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_a_single_threaded_caller_forks_the_init_early(cellbox_env: Settings) -> None:
    (seen,) = run_script("""
        forked = initfork.prefork()
        c = Container.create(ContainerConfig(image="busybox", network="none",
                                             command=["sh", "-c", "echo $$; exit 3"]))
        c.start()
        kind = type(c._handle.init_process).__name__
        code = c.wait(30)
        out = [r.text for r in c.logs()]
        c.remove()
        report(forked=forked, kind=kind, code=code, out=out)
    """)
    # The workload is PID 1's child, pid 2... and "$$" is its own pid: 2.
    assert seen == {"forked": True, "kind": "ForkedInit", "code": 3, "out": ["2\n"]}


def test_the_forked_init_is_the_one_that_starts_the_container(cellbox_env: Settings) -> None:
    (seen,) = run_script("""
        initfork.prefork()
        forked_pid = initfork._pending.pid
        c = Container.create(ContainerConfig(image="busybox", network="none", keep=True))
        c.start()
        init = c._handle.init_process
        report(kind=type(init).__name__, same=init.pid == forked_pid, left=initfork.take())
        c.stop(timeout=5)
        c.remove()
    """)
    assert seen == {"kind": "ForkedInit", "same": True, "left": None}


def test_a_multithreaded_caller_spawns_the_init(cellbox_env: Settings) -> None:
    (seen,) = run_script("""
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait)
        worker.start()
        forked = initfork.prefork()  # refused: fork() and threads do not mix
        c = Container.create(ContainerConfig(image="busybox", network="none",
                                             command=["echo", "spawned"]))
        c.start()
        kind = type(c._handle.init_process).__name__
        code = c.wait(30)
        out = [r.text for r in c.logs()]
        c.remove()
        stop.set()
        worker.join()
        report(forked=forked, kind=kind, code=code, out=out)
    """)
    assert seen == {"forked": False, "kind": "Popen", "code": 0, "out": ["spawned\n"]}


def test_an_unused_forked_init_ends_with_the_command(cellbox_env: Settings) -> None:
    (seen,) = run_script("""
        initfork.prefork()
        pid = initfork._pending.pid
        initfork.discard()
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        report(alive=alive, again=initfork.take())
    """)
    assert seen == {"alive": False, "again": None}
    failed = cellbox("run", "--rm", "--pull", "never", "no-such-image")
    assert failed.returncode == 125 and "not in the store" in failed.stderr


def test_detached_output_goes_to_the_log_not_to_the_callers_pipes(
    cellbox_env: Settings,
) -> None:
    # capture_output: were the forked init holding our stdout, this would wait for it.
    started = cellbox("run", "-d", "--name", "quiet", "--network", "none", "busybox", "sh",
                      "-c", "echo to-the-log; sleep 1d", timeout=30)
    assert started.returncode == 0 and len(started.stdout.strip()) == 64
    logs = cellbox("logs", "quiet")
    assert logs.stdout == "to-the-log\n"
    cellbox("rm", "-f", "quiet", check=True)


def test_the_launcher_path_runs_containers(cellbox_env: Settings) -> None:
    # What bin/cellbox runs: python -I -S runtime/_boot.py cli ... (no site at all).
    import cellbox.runtime as runtime_pkg

    boot = f"{runtime_pkg.__path__[0]}/_boot.py"
    result = subprocess.run([str(VENV_PYTHON), "-I", "-S", boot, "cli", "run", "--rm",
                             "--network", "none", "busybox", "sh", "-c", "echo lean; exit 4"],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (4, "lean\n"), result.stderr


# What `cellbox run --rm` (image stored) and `cellbox exec` may not import: each costs
# milliseconds of every start (pathlib ≈ 14, dataclasses ≈ 20 with inspect, re ≈ 8 with
# enum and functools...).
HEAVY = {"pathlib", "dataclasses", "inspect", "enum", "re", "fnmatch", "urllib",
         "urllib.parse", "ipaddress", "typing", "json", "argparse", "tempfile", "shutil",
         "datetime", "hashlib", "_hashlib", "functools", "contextlib", "collections",
         "signal", "subprocess", "tomllib", "httpx", "pyroute2", "asyncio"}
# The launcher path (python -I -S _boot.py cli ...), reporting the command process's
# modules at its exit (the init and PID 1 leave with os._exit and report nothing).
REPORT_MODULES = """
import atexit, posix, sys
out = posix.open(sys.argv.pop(1), posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC, 0o600)
atexit.register(lambda: posix.write(out, " ".join(sorted(sys.modules)).encode()))
boot = sys.argv[1]
sys.argv = sys.argv[1:]
exec(compile(open(boot).read(), boot, "exec"), {"__name__": "__main__", "__file__": boot})
"""


def _modules_of(tmp_path: Path, *args: str) -> set[str]:
    import cellbox.runtime as runtime_pkg

    boot = f"{runtime_pkg.__path__[0]}/_boot.py"
    report = tmp_path / "modules"
    result = subprocess.run([str(VENV_PYTHON), "-I", "-S", "-c", REPORT_MODULES, str(report),
                             boot, "cli", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(report.read_text().split())


def test_run_and_exec_import_nothing_heavy(cellbox_env: Settings, tmp_path: Path) -> None:
    ran = _modules_of(tmp_path, "run", "--rm", "--network", "none", "busybox", "true")
    assert "cellbox.runtime.sandbox" in ran and not HEAVY & ran
    cellbox("run", "-d", "--name", "lean-exec", "--network", "none", "busybox", "sleep", "1d",
            check=True)
    try:
        execd = _modules_of(tmp_path, "exec", "lean-exec", "true")
        assert "cellbox.runtime.nsexec" in execd and not HEAVY & execd
    finally:
        cellbox("rm", "-f", "lean-exec", check=True)
