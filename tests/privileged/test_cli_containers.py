"""The container commands as a user types them: ``cellbox run|ps|logs|stop|rm|...``.

Each command runs in its own process (a second ``cellbox`` sees what the first made),
against real containers of the busybox test image.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cellbox.runtime.container import Container
from cellbox.runtime.containerstate import ContainerConfig
from cellbox.runtime.settings import Settings

from tests.support.containers import cellbox, cellbox_env, container_images, wait_for
from tests.support.registry import RegistryServer

__all__ = ["cellbox_env", "container_images"]  # fixtures used by name below


def test_run_attached_prints_and_returns_the_exit_status(cellbox_env: Settings) -> None:
    result = cellbox("run", "--rm", "busybox", "echo", "hi")
    assert (result.returncode, result.stdout) == (0, "hi\n")
    assert cellbox("run", "--rm", "busybox", "sh", "-c", "echo err >&2; exit 7").returncode == 7
    assert Container.list(all=True) == []  # --rm removed them


def test_stdout_and_stderr_stay_apart(cellbox_env: Settings) -> None:
    result = cellbox("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


def test_a_missing_command_is_127_and_says_so(cellbox_env: Settings) -> None:
    result = cellbox("run", "--rm", "busybox", "/no/such/thing")
    assert result.returncode == 127
    assert "/no/such/thing" in result.stderr
    assert Container.list(all=True) == []


def test_bad_options_fail_before_anything_is_made(cellbox_env: Settings) -> None:
    result = cellbox("run", "--memory", "lots", "busybox", "true")
    assert result.returncode == 125 and "--memory" in result.stderr
    result = cellbox("run", "--pull", "never", "nosuchimage", "true")
    assert result.returncode == 125 and "cellbox pull nosuchimage" in result.stderr
    assert Container.list(all=True) == []


def test_detached_then_logs(cellbox_env: Settings) -> None:
    run = cellbox("run", "-d", "--name", "talker", "busybox", "sh", "-c",
                  "echo one; echo two >&2; echo three", check=True)
    container_id = run.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", container_id)
    container = Container.load("talker")
    assert container.wait(timeout=10) == 0
    logs = cellbox("logs", "talker", check=True)
    assert (logs.stdout, logs.stderr) == ("one\nthree\n", "two\n")
    last = cellbox("logs", "--tail", "1", "talker")
    assert (last.stdout + last.stderr) in ("three\n", "two\n")  # two pipes: either is last
    stamped = cellbox("logs", "-t", container_id[:8]).stdout.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z one", stamped[0])
    assert cellbox("logs", "--since", "1h", "talker").stdout == "one\nthree\n"
    assert cellbox("logs", "--since", "2099-01-01T00:00:00Z", "talker").stdout == ""


def test_logs_follow_until_the_container_ends(cellbox_env: Settings) -> None:
    cellbox("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
            "for i in 1 2 3 4; do echo tick $i; sleep 0.3; done", check=True)
    start = time.monotonic()
    follow = cellbox("logs", "-f", "ticker", timeout=30)
    assert follow.stdout == "tick 1\ntick 2\ntick 3\ntick 4\n"
    assert time.monotonic() - start >= 0.6  # it followed, not just read what was there


def test_ps_from_another_process(cellbox_env: Settings) -> None:
    cellbox("run", "-d", "--name", "alive", "busybox", "sleep", "1d", check=True)
    cellbox("run", "--name", "done", "busybox", "true", check=True)
    running = cellbox("ps", check=True).stdout.splitlines()
    assert len(running) == 2 and running[1].endswith("alive")
    assert "Up " in running[1] and '"sleep 1d"' in running[1]
    everything = cellbox("ps", "-a", check=True).stdout
    assert re.search(r"Exited \(0\) .* ago\s+done$", everything, re.M)
    ids = cellbox("ps", "-a", "-q", check=True).stdout.split()
    assert len(ids) == 2 and all(len(i) == 12 for i in ids)


def test_names_are_unique(cellbox_env: Settings) -> None:
    cellbox("create", "--name", "twin", "busybox", "true", check=True)
    again = cellbox("create", "--name", "twin", "busybox", "true")
    assert again.returncode == 125 and "already used" in again.stderr
    assert len(Container.list(all=True)) == 1


def test_concurrent_creates_with_one_name_give_one_container(cellbox_env: Settings) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-I", "-m", "cellbox.runtime", "create", "--name",
                          "race", "busybox", "true"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    codes = sorted(p.wait(timeout=60) for p in procs)
    assert codes == [0, 125, 125, 125]
    assert [c.name for c in Container.list(all=True)] == ["race"]


def test_stop_escalates_to_sigkill_after_the_timeout(cellbox_env: Settings) -> None:
    cellbox("run", "-d", "--name", "stubborn", "busybox", "sh", "-c",
            "trap '' TERM; echo ready; while true; do sleep 0.1; done", check=True)
    assert wait_for(lambda: "ready" in cellbox("logs", "stubborn").stdout)
    start = time.monotonic()
    assert cellbox("stop", "-t", "1", "stubborn").returncode == 0
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 5
    state = Container.load("stubborn").inspect()["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)


def test_stop_of_a_polite_container_is_quick(cellbox_env: Settings) -> None:
    cellbox("run", "-d", "--name", "polite", "busybox", "sleep", "1d", check=True)
    start = time.monotonic()
    cellbox("stop", "polite", check=True)
    assert time.monotonic() - start < 3
    assert Container.load("polite").exit_code == 143  # sleep died of the forwarded TERM


def test_rm_refuses_a_running_container_unless_forced(cellbox_env: Settings) -> None:
    cellbox("run", "-d", "--name", "busy", "busybox", "sleep", "1d", check=True)
    refused = cellbox("rm", "busy")
    assert refused.returncode == 1 and "-f" in refused.stderr
    cellbox("rm", "-f", "busy", check=True)
    assert Container.list(all=True) == []


def test_detached_rm_removes_itself_on_exit(cellbox_env: Settings) -> None:
    # 3 s: still there when `run -d` has returned, even on a busy machine
    cellbox("run", "-d", "--rm", "--name", "ephemeral", "busybox", "sleep", "3", check=True)
    assert [c.name for c in Container.list(all=True)] == ["ephemeral"]
    assert wait_for(lambda: Container.list(all=True) == [], timeout=15)


def test_a_killed_init_reads_as_exited_not_running(cellbox_env: Settings) -> None:
    cellbox("run", "-d", "--name", "victim", "busybox", "sleep", "1d", check=True)
    container = Container.load("victim")
    pid = container.pid
    assert pid is not None
    subprocess.run(["kill", "-9", str(pid)], check=True)
    assert wait_for(lambda: "victim" not in cellbox("ps").stdout)
    assert "Exited (" in cellbox("ps", "-a").stdout
    # and it starts again
    cellbox("start", "victim", check=True)
    assert Container.load("victim").running


def test_start_attached_reruns_the_command_with_its_files(cellbox_env: Settings) -> None:
    cellbox("create", "--name", "again", "busybox", "sh", "-c",
            "if [ -f /seen ]; then echo again; else echo first > /seen; echo first; fi",
            check=True)
    first = cellbox("start", "-a", "again")
    assert (first.returncode, first.stdout) == (0, "first\n"), first.stderr
    second = cellbox("start", "-a", "again")
    assert (second.returncode, second.stdout) == (0, "again\n"), second.stderr


def test_stats_no_stream_shows_the_limits(cellbox_env: Settings) -> None:
    cellbox("run", "-d", "--name", "limited", "--memory", "64m", "--pids-limit", "50",
            "busybox", "sleep", "1d", check=True)
    out = cellbox("stats", "--no-stream", "limited", check=True).stdout.splitlines()
    assert out[0].startswith("CONTAINER ID")
    assert "/ 64MiB" in out[1] and out[1].endswith("/ 50")


def test_env_workdir_user_volumes(cellbox_env: Settings, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("from host\n")
    result = cellbox(
        "run", "--rm", "-e", "GREETING=hello", "-w", "/data", "-u", "1000",
        "-v", f"{data}:/data", "busybox", "sh", "-c",
        "echo $GREETING; pwd; id -u; cat in.txt; echo from container > /tmp/x; "
        "cp /tmp/x /data/out.txt 2>/dev/null || echo cannot write",
    )
    assert result.stdout.splitlines()[:4] == ["hello", "/data", "1000", "from host"]
    ro = cellbox("run", "--rm", "-v", f"{data}:/data:ro", "busybox", "sh", "-c",
                 "echo x > /data/new.txt")
    assert ro.returncode != 0 and not (data / "new.txt").exists()
    rw = cellbox("run", "--rm", "-v", f"{data}:/data", "busybox", "sh", "-c",
                 "echo x > /data/new.txt")
    assert rw.returncode == 0 and (data / "new.txt").read_text() == "x\n"


def test_hostname_and_etc_files(cellbox_env: Settings) -> None:
    result = cellbox("run", "--rm", "--network", "none", "--hostname", "box", "busybox",
                     "sh", "-c", "hostname; cat /etc/hostname; grep box /etc/hosts",
                     check=True)
    assert result.stdout.splitlines() == ["box", "box", "127.0.1.1\tbox"]


def test_exec_runs_in_the_container_with_its_options(cellbox_env: Settings) -> None:
    cellbox("run", "-d", "--name", "host1", "--hostname", "inside", "-e", "BASE=1",
            "busybox", "sleep", "1d", check=True)
    result = cellbox("exec", "-e", "EXTRA=2", "-w", "/tmp", "-u", "1000", "host1", "sh", "-c",
                     "hostname; echo $BASE $EXTRA; pwd; id -u; cat /proc/1/cmdline >/dev/null "
                     "&& echo sees-pid1", check=True)
    assert result.stdout.splitlines() == ["inside", "1 2", "/tmp", "1000", "sees-pid1"]
    assert cellbox("exec", "host1", "sh", "-c", "exit 9").returncode == 9
    missing = cellbox("exec", "host1", "no-such-command")
    assert missing.returncode == 127 and "no-such-command" in missing.stderr
    piped = cellbox("exec", "-i", "host1", "cat", input="through stdin\n")
    assert piped.stdout == "through stdin\n"
    assert cellbox("exec", "host1", "cat", input="ignored\n").stdout == ""  # no -i


def test_exec_into_a_stopped_container_says_so(cellbox_env: Settings) -> None:
    cellbox("create", "--name", "idle", "busybox", "true", check=True)
    result = cellbox("exec", "idle", "true")
    assert result.returncode == 125 and "not running" in result.stderr


def test_exec_argv_gives_the_kernel_a_working_command(cellbox_env: Settings) -> None:
    container = Container.create(ContainerConfig(image="busybox", name="kern", keep=True,
                                                 network="none"))
    container.start()
    argv = container.exec_argv(["sh", "-c", "echo $0 from $(hostname)"], env=["X=1"])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.stdout == f"sh from {container.short_id}\n"


def test_bridge_network_gives_an_address_and_publishes_ports(cellbox_env: Settings) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cellbox("run", "-d", "--name", "web", "--network", "bridge", "-p", f"{port}:8080",
            "busybox", "sh", "-c",
            "mkdir /www && echo served > /www/index.html && httpd -f -p 8080 -h /www",
            check=True)
    container = Container.load("web")
    ip = container.inspect()["NetworkSettings"]["IPAddress"]
    assert ip
    hosts = cellbox("exec", "web", "cat", "/etc/hosts", check=True).stdout
    assert f"{ip}\t{container.short_id}" in hosts
    assert f"127.0.0.1:{port}->8080/tcp" in cellbox("ps").stdout

    def fetch() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                return bool(answer.read() == b"served\n")
        except OSError:
            return False

    assert wait_for(fetch, timeout=10)
    cellbox("rm", "-f", "web", check=True)


def test_run_pulls_a_missing_image_from_the_registry(
    registry: RegistryServer, cellbox_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLBOX_REGISTRY_MIRRORS", registry.url)
    first = cellbox("run", "--rm", "--network", "none", "busybox", "echo", "pulled",
                    timeout=120)
    assert (first.returncode, first.stdout) == (0, "pulled\n")
    assert "pulling" in first.stderr
    never = cellbox("run", "--rm", "--pull", "never", "hello-world")
    assert never.returncode == 125 and "not in the store" in never.stderr


def test_run_of_a_stored_image_does_not_import_the_registry_code(
    cellbox_env: Settings,
) -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-X", "importtime", "-m", "cellbox.runtime", "run", "--rm",
         "--network", "none", "busybox", "true"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "cellbox.runtime.container" in imported
    assert not {"httpx", "pyroute2", "asyncio"} & imported


@pytest.fixture
def rootless_home() -> Iterator[Path]:
    """A directory the cellbox-test user can reach (pytest's tmp_path is root's only)."""
    import shutil
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="cellbox-rootless-"))
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_rootless_run_and_the_plain_refusal_of_limits(rootless_home: Path) -> None:
    import pwd
    import shutil

    from tests.support import images

    try:
        user = pwd.getpwnam("cellbox-test")
    except KeyError:
        pytest.skip("no cellbox-test user (scripts/test.sh creates it)")
    home = rootless_home
    cache = home / "cache" / "images"
    cache.mkdir(parents=True)
    layout = images.layout("busybox")
    shutil.copytree(layout, cache / layout.name, symlinks=True)
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(home)], check=True)
    env = [f"HOME={home}", f"CELLBOX_DEV_CACHE={home / 'cache'}",
           f"CELLBOX_ROOT={home / 'root'}", f"CELLBOX_RUN={home / 'run'}",
           f"PYTHONPATH={Path(__file__).resolve().parents[2]}"]

    def as_user(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", "cellbox-test", "--", "env", *env, *argv],
                              capture_output=True, text=True, timeout=120, cwd=home)

    stored = as_user(sys.executable, "-c", "from pathlib import Path; "
                     "from tests.support.containers import store_image; "
                     f"store_image(Path('{home / 'root'}'), 'busybox')")
    assert stored.returncode == 0, stored.stderr
    run = as_user(sys.executable, "-I", "-m", "cellbox.runtime", "run", "--rm", "busybox",
                  "sh", "-c", "id -u; cat /etc/hostname")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "0"  # root inside, the user outside
    limited = as_user(sys.executable, "-I", "-m", "cellbox.runtime", "run", "--rm",
                      "--memory", "64m", "busybox", "true")
    assert limited.returncode == 125
    assert "--memory cannot be enforced" in limited.stderr


def test_exec_gets_the_same_confinement_as_the_workload(cellbox_env: Settings) -> None:
    cellbox("run", "-d", "--name", "confined", "busybox", "sleep", "1d", check=True)
    show = "grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/{}/status"
    workload = cellbox("exec", "confined", "sh", "-c", show.format(2), check=True).stdout
    execed = cellbox("exec", "confined", "sh", "-c", show.format("self"), check=True).stdout
    assert workload == execed
    assert "CapEff:\t00000000a80425fb" in execed and "Seccomp:\t2" in execed


def test_interactive_terminal_for_run_and_exec(cellbox_env: Settings) -> None:
    import pexpect

    shell = pexpect.spawn(sys.executable, ["-I", "-m", "cellbox.runtime", "run", "-it",
                                           "--name", "tty", "busybox", "sh"],
                          timeout=20, encoding="utf-8")
    try:
        shell.expect("# ")  # typing before the prompt may be flushed when the tty goes raw
        shell.sendline("tty; echo $((6 * 7))")
        shell.expect(r"/dev/pts/\d+")
        shell.expect("42")
        inner = pexpect.spawn(sys.executable, ["-I", "-m", "cellbox.runtime", "exec", "-it",
                                               "tty", "sh"], timeout=20, encoding="utf-8")
        inner.expect("# ")
        inner.sendline("echo inside-$((2 + 3))")
        inner.expect("inside-5")
        inner.sendline("exit 3")
        inner.expect(pexpect.EOF)
        inner.close()
        assert inner.exitstatus == 3
        shell.sendline("exit 5")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)
    assert shell.exitstatus == 5
