"""How a container's init comes to be: forked ahead by a single-threaded command
(:mod:`cellbox.runtime.initfork`), or spawned for a multithreaded caller (the kernel).

Each case runs in a fresh Python process, so that "single-threaded" is under the test's
control, and reports what it saw as JSON lines.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

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
