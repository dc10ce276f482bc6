"""A container's life as PID 1 runs it: output, exit codes, signals, zombies, teardown."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from cellbox.runtime.errors import SandboxError
from cellbox.runtime.sandbox import read_exit_status, start_sandbox

from tests.support.rootfs import log_records, new_spec, run, unpacked


@pytest.fixture(scope="module")
def busybox() -> Path:
    return unpacked("busybox")


def test_output_goes_to_the_log_and_exit_json(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, ["sh", "-c", "echo hello; echo oops >&2; printf tail"])
    result = run(spec)
    assert result.code == 0
    assert result.stdout == "hello\ntail"
    assert result.stderr == "oops\n"
    records = log_records(spec)
    assert {r["stream"] for r in records} == {"stdout", "stderr"}
    assert records[-1]["partial"] is True
    assert all(r["t"].endswith("Z") and len(r["t"]) == 30 for r in records)
    exit_json = json.loads((Path(spec.state_dir) / "exit.json").read_text())
    assert exit_json["code"] == 0 and exit_json["signal"] is None
    assert exit_json["oom_killed"] is False


def test_exit_code_and_signal_propagate(tmp_path: Path, busybox: Path) -> None:
    assert run(new_spec(tmp_path, busybox, ["sh", "-c", "exit 42"])).code == 42
    killed = run(new_spec(tmp_path, busybox, ["sh", "-c", "kill -9 $$"]))
    assert (killed.code, killed.signal) == (137, 9)


def test_sigterm_is_forwarded_to_the_workload(tmp_path: Path, busybox: Path) -> None:
    script = 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done'
    spec = new_spec(tmp_path, busybox, ["sh", "-c", script])
    with start_sandbox(spec) as handle:
        deadline = time.monotonic() + 10
        while "ready" not in [r["line"] for r in log_records(spec)]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        handle.signal(signal.SIGTERM)
        status = handle.wait(10)
    assert status is not None and status.code == 7
    assert "got-term" in [r["line"] for r in log_records(spec)]
    assert read_exit_status(spec.state_dir) == status


def test_pid1_reaps_orphaned_zombies(tmp_path: Path, busybox: Path) -> None:
    # The inner sh exits at once; its child is reparented to PID 1 and exits later:
    # only PID 1 can reap it.
    script = ("sh -c 'sleep 0.2 & exit 0'; sleep 0.6; "
              "for f in /proc/[0-9]*/stat; do read -r line < $f; echo \"$line\"; done")
    result = run(new_spec(tmp_path, busybox, ["sh", "-c", script]))
    lines = [line for line in result.stdout.splitlines() if ")" in line]
    states = [line.rsplit(")", 1)[1].split()[0] for line in lines]
    assert states and "Z" not in states, result.stdout


def test_missing_command_is_a_clear_error_and_leaves_nothing(tmp_path: Path,
                                                             busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, ["no-such-command"])
    with pytest.raises(SandboxError, match="executable file not found") as info:
        start_sandbox(spec)
    assert info.value.exit_code == 127
    assert read_exit_status(spec.state_dir).code == 127  # type: ignore[union-attr]
    spec = new_spec(tmp_path, busybox, ["/etc/passwd"])
    with pytest.raises(SandboxError, match="permission denied") as info:
        start_sandbox(spec)
    assert info.value.exit_code == 126


def test_unknown_user_is_a_clear_error(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, ["id"], user="nosuchuser")
    with pytest.raises(SandboxError, match="unable to find user nosuchuser"):
        start_sandbox(spec)


def test_user_is_resolved_in_the_image(tmp_path: Path, busybox: Path) -> None:
    result = run(new_spec(tmp_path, busybox, ["sh", "-c", "id; echo $HOME; pwd"],
                          user="user", cwd="/tmp/new/dir"))
    assert result.stdout.splitlines()[0].startswith("uid=1000(user) gid=1000(user)")
    assert result.stdout.splitlines()[1:] == ["/home/user", "/tmp/new/dir"]
    numeric = run(new_spec(tmp_path, busybox, ["id", "-u"], user="4242:4243"))
    assert numeric.stdout == "4242\n"


def test_non_root_user_has_no_capabilities(tmp_path: Path, busybox: Path) -> None:
    result = run(new_spec(tmp_path, busybox, ["grep", "^Cap", "/proc/self/status"],
                          user="1000"))
    caps = dict(line.split(":\t") for line in result.stdout.splitlines())
    assert caps["CapEff"] == caps["CapPrm"] == "0000000000000000"
    assert caps["CapBnd"] == "00000000a80425fb"


def test_files_persist_in_the_upper_dir(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, ["sh", "-c", "echo data > /root/file; rm /bin/vi"])
    assert run(spec).code == 0
    assert (Path(spec.upper_dir) / "root/file").read_text() == "data\n"
    assert (busybox / "bin/vi").is_symlink()  # the lower dir is untouched


def test_nothing_is_mounted_on_the_host(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, ["sh", "-c", "sleep 0.3"])
    with start_sandbox(spec) as handle:
        mounts = Path("/proc/self/mountinfo").read_text()
        assert spec.state_dir not in mounts
        assert handle.wait(10) is not None
    assert spec.state_dir not in Path("/proc/self/mountinfo").read_text()


def test_on_created_runs_before_the_workload(tmp_path: Path, busybox: Path) -> None:
    seen: list[int] = []
    marker = tmp_path / "marker"

    def created(pid: int) -> None:
        seen.append(pid)
        time.sleep(0.2)
        marker.write_text("attached")

    spec = new_spec(tmp_path, busybox, ["true"])
    with start_sandbox(spec, on_created=created) as handle:
        assert seen == [handle.pid]
        assert handle.wait(10) is not None
    assert marker.read_text() == "attached"


def test_failing_on_created_kills_the_container(tmp_path: Path, busybox: Path) -> None:
    def created(pid: int) -> None:
        raise RuntimeError("network attach failed")

    spec = new_spec(tmp_path, busybox, ["sleep", "100"])
    with pytest.raises(RuntimeError, match="network attach failed"):
        start_sandbox(spec, on_created=created)


def test_log_rotates_at_the_cap(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox,
                    ["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done"],
                    log_max_bytes=8192)
    assert run(spec).code == 0
    state = Path(spec.state_dir)
    assert (state / "log.1").exists()
    assert (state / "log.jsonl").stat().st_size <= 8192
    last = json.loads((state / "log.jsonl").read_text().splitlines()[-1])
    assert last["line"] == "line-399"


def test_no_workload_waits_until_stopped(tmp_path: Path, busybox: Path) -> None:
    spec = new_spec(tmp_path, busybox, [])
    with start_sandbox(spec) as handle:
        assert handle.wait(0.3) is None
        handle.signal(signal.SIGTERM)
        status = handle.wait(10)
    assert status is not None and status.code == 0
