"""cgroups for real, as root, on this host's layout (hybrid v1 here) and, where the host has
a cgroup2 mount, the v2 driver's mechanics on it (on a hybrid host that mount holds no
controllers, so only joining, killing and removing are exercised there).

Every cgroup is made under this session's parent (CELLBOX_CGROUP_PARENT, set per session
by tests/conftest.py) and removed by the fixtures even when a test fails; processes that
fork are run under a small reaper (PR_SET_CHILD_SUBREAPER) outside the cgroup, so that
killed orphans are reaped instead of piling up as zombies under PID 1.
"""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cellbox.runtime.cgroups import (
    Cgroup,
    CgroupLayout,
    Limits,
    create,
    default_layout,
    open_cgroup,
)
from cellbox.runtime.cgroups.v2 import V2Cgroup
from cellbox.runtime.errors import CgroupError
from cellbox.runtime.settings import Settings

MiB = 1 << 20
PARENT = Settings.load().cgroup_parent

# A process that waits for a line on stdin before it runs CODE: the test moves it into the
# cgroup in between, so everything CODE does is charged there.
GATED = "import sys\nsys.stdin.readline()\n"

# Forks SHELL as a child that waits for "go", prints the child's pid, then reaps every
# descendant (they are re-parented to it) until none is left.
REAPER = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)
    os.execvp("sh", ["sh", "-c", sys.argv[1]])
os.close(r)
print(pid, flush=True)
sys.stdin.readline()
os.write(w, b"x")
os.close(w)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""

FORK_UNTIL_REFUSED = """
import errno, os
r, w = os.pipe()
kids, failure = [], "none"
while len(kids) < 200:
    try:
        pid = os.fork()
    except OSError as exc:
        failure = errno.errorcode[exc.errno]
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    kids.append(pid)
os.close(w)
for kid in kids:
    os.waitpid(kid, 0)
print(len(kids), failure)
"""


class Made:
    """The cgroups and processes a test made; all of them go at teardown."""

    def __init__(self) -> None:
        self.groups: list[Cgroup] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def cgroup(self, name: str, limits: Limits, layout: CgroupLayout | None = None) -> Cgroup:
        group = create(name, limits, parent=PARENT, layout=layout)
        self.groups.append(group)
        return group

    def gated(self, group: Cgroup, code: str) -> subprocess.Popen[bytes]:
        """A Python process in ``group`` running ``code``; its stdout is a pipe."""
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", GATED + code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.procs.append(proc)
        group.add(proc.pid)
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        return proc

    def reaped_shell(self, group: Cgroup, script: str) -> subprocess.Popen[bytes]:
        """``sh -c script`` in ``group``, under a reaper outside it."""
        reaper = subprocess.Popen(
            [sys.executable, "-I", "-c", REAPER, script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.procs.append(reaper)
        assert reaper.stdout is not None and reaper.stdin is not None
        group.add(int(reaper.stdout.readline()))
        reaper.stdin.write(b"go\n")
        reaper.stdin.flush()
        return reaper

    def cleanup(self) -> None:
        for group in self.groups:
            try:
                group.remove()
            except CgroupError as exc:  # report, but still try the rest
                print(f"cleanup: {exc}", file=sys.stderr)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def made() -> Iterator[Made]:
    things = Made()
    try:
        yield things
    finally:
        things.cleanup()


def _hierarchies(layout: CgroupLayout) -> list[Path]:
    """Every directory a cellbox cgroup could be in on this host."""
    found = {Path(d) for d in layout.v1.values()}
    if layout.v2 is not None:
        found.add(Path(layout.v2))
    return sorted(found)


def _wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# == this host's layout (v1 controllers here) ================================================


def test_limits_are_written_and_read_back(made: Made) -> None:
    layout = default_layout()
    group = made.cgroup("limits", Limits(memory=64 * MiB, cpus=0.5, pids=32))

    if layout.driver == "v1":
        memory_dir = Path(layout.v1["memory"]) / PARENT / "limits"
        assert (memory_dir / "memory.limit_in_bytes").read_text() == f"{64 * MiB}\n"
        memsw = memory_dir / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            assert memsw.read_text() == f"{128 * MiB}\n"
        cpu_dir = Path(layout.v1["cpu"]) / PARENT / "limits"
        assert (cpu_dir / "cpu.cfs_period_us").read_text() == "100000\n"
        assert (cpu_dir / "cpu.cfs_quota_us").read_text() == "50000\n"
        assert (Path(layout.v1["pids"]) / PARENT / "limits/pids.max").read_text() == "32\n"
        assert len(group.procs_files()) == len(set(group.directories())) >= 4
    stats = group.stats()
    assert (stats.memory_limit, stats.cpu_quota_cpus, stats.pids_limit) == (64 * MiB, 0.5, 32)
    assert (stats.memory_current, stats.pids_current, stats.oom_kills) == (0, 0, 0)

    group.set_limits(Limits(memory=1024 * MiB))  # above the old memsw: needs memsw first
    assert group.stats().memory_limit == 1024 * MiB
    group.set_limits(Limits())
    stats = group.stats()
    assert (stats.memory_limit, stats.cpu_quota_cpus, stats.pids_limit) == (None, None, None)


def test_a_process_joins_by_writing_its_pid_to_the_procs_files(made: Made) -> None:
    """What a container's init does: write its own pid into each cgroup.procs."""
    group = made.cgroup("join", Limits())
    files = [str(p) for p in group.procs_files()]
    code = (
        "import os, sys\n"
        "for f in sys.argv[1:]:\n"
        "    fd = os.open(f, os.O_WRONLY | os.O_CLOEXEC); os.write(fd, b'0'); os.close(fd)\n"
        "print(open('/proc/self/cgroup').read())\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code, *files], check=True, capture_output=True, text=True
    ).stdout
    joined = {line.split(":")[1] for line in out.splitlines() if line.endswith(group.path)}
    if group.version == "v1":
        assert {"memory", "cpu", "cpuacct", "pids", "freezer"} <= {
            c for field in joined for c in field.split(",")
        }
    else:
        assert joined == {""}


def test_memory_hog_is_oom_killed(made: Made) -> None:
    group = made.cgroup("oom", Limits(memory=64 * MiB, memory_swap=64 * MiB))
    before = group.oom_kills()
    hog = made.gated(group, "data = b'x' * (256 << 20)\nprint('survived')\n")

    out, _ = hog.communicate(timeout=60)

    assert hog.returncode == -signal.SIGKILL  # a shell reports it as exit 137
    assert out == b""
    stats = group.stats()
    assert stats.oom_kills == 1
    assert group.oom_killed_since(before)
    assert stats.memory_peak is not None and stats.memory_peak > 48 * MiB


def test_pids_limit_makes_fork_fail_with_eagain(made: Made) -> None:
    group = made.cgroup("pids", Limits(pids=32))
    forker = made.gated(group, FORK_UNTIL_REFUSED)

    out, _ = forker.communicate(timeout=60)

    forked, failure = out.decode().split()
    assert failure == errno.errorcode[errno.EAGAIN]
    assert 20 <= int(forked) < 32  # the forker itself is one of the 32
    assert group.stats().pids_limit == 32


def test_cpu_quota_of_half_a_cpu(made: Made) -> None:
    group = made.cgroup("cpu", Limits(cpus=0.5))
    # Two processes spin for 1 s: together they ask for more than half a CPU even on a
    # busy machine (the suite's other workers), where one alone may get less.
    spin = (
        "import os, time\nend = time.monotonic() + 1.0\nchild = os.fork()\n"
        "while time.monotonic() < end:\n    pass\n"
        "if child == 0:\n    os._exit(0)\nos.waitpid(child, 0)\n"
    )
    busy = made.gated(group, spin)

    busy.communicate(timeout=30)

    used = (group.stats().cpu_usage_ns or 0) / 1e9
    # ≈ 0.5 s; the upper bound is the limit at work, the lower one allows a busy machine.
    assert 0.2 <= used <= 0.7, f"{used:.2f} s of CPU in 1 s under --cpus 0.5"


def test_kill_all_empties_a_fork_bomb(made: Made) -> None:
    group = made.cgroup("bomb", Limits(pids=256))
    # Every bomb waits in a `sleep` once it has forked: the classic bomb, whose shells exit
    # as soon as they have forked, can collapse between two looks on a busy machine.
    reaper = made.reaped_shell(group, "bomb() { bomb | bomb & sleep 100; }; bomb; sleep 100")
    assert _wait_for(lambda: (group.stats().pids_current or 0) >= 100, 30), "bomb did not go off"

    start = time.monotonic()
    group.kill_all()
    took = time.monotonic() - start

    assert group.pids() == []
    assert took < 5, f"kill_all took {took:.1f} s"
    assert reaper.wait(10) == 0  # every descendant died and was reaped
    assert group.stats().pids_current == 0


def test_remove_leaves_nothing_in_any_hierarchy(made: Made) -> None:
    layout = default_layout()
    one = made.cgroup("rm-one", Limits(memory=64 * MiB, pids=10))
    two = made.cgroup("rm-two", Limits(cpus=1))
    sleeper = made.gated(one, "import time\ntime.sleep(100)\n")

    one.remove()  # kills the sleeper first

    assert sleeper.wait(10) == -signal.SIGKILL
    assert open_cgroup("rm-one", parent=PARENT) is None
    assert any((h / PARENT).is_dir() for h in _hierarchies(layout))  # rm-two is still there
    two.remove()
    assert not [h / PARENT for h in _hierarchies(layout) if (h / PARENT).exists()]
    one.remove()  # gone already: not an error


def test_open_cgroup_from_another_process(made: Made) -> None:
    group = made.cgroup("open", Limits(pids=50))
    sleeper = made.gated(group, "import time\ntime.sleep(100)\n")
    code = (
        "import sys\nfrom cellbox.runtime.cgroups import open_cgroup\n"
        f"g = open_cgroup('open', parent={PARENT!r})\n"
        "print(g.pids(), g.stats().pids_limit, open_cgroup('nope', parent="
        f"{PARENT!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.split() == [f"[{sleeper.pid}]", "50", "None"]


def test_without_root_limits_cannot_be_enforced(made: Made) -> None:
    code = (
        "from cellbox.runtime.cgroups import Limits, create\n"
        "from cellbox.runtime.errors import CgroupError\n"
        "try:\n"
        f"    create('rootless', Limits(memory=64 << 20), parent={PARENT!r})\n"
        "except CgroupError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        user=65534,
        group=65534,
        extra_groups=[],
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert "cannot be enforced" in result.stdout
    assert "uid 65534" in result.stdout


# == the v2 driver on the cgroup2 mount ========================================================


@pytest.fixture
def unified() -> CgroupLayout:
    layout = default_layout()
    if layout.v2 is None:
        pytest.skip("this host has no cgroup2 mount")
    return CgroupLayout("v2", {}, layout.v2, layout.v2_controllers)


def test_v2_join_kill_and_remove(made: Made, unified: CgroupLayout) -> None:
    group = made.cgroup("v2", Limits(), layout=unified)
    assert group.version == "v2"
    sleeper = made.gated(group, "import time\ntime.sleep(100)\n")
    assert f"0::{group.path}\n" in Path(f"/proc/{sleeper.pid}/cgroup").read_text()

    group.kill_all()

    assert sleeper.wait(10) == -signal.SIGKILL
    group.remove()
    assert unified.v2 is not None and not (Path(unified.v2) / PARENT).exists()


def test_v2_freeze_then_kill_catches_a_respawning_shell(made: Made, unified: CgroupLayout) -> None:
    """Before cgroup.kill (5.14): freeze, signal, thaw — forks during the kill are caught."""
    group = made.cgroup("v2-freeze", Limits(), layout=unified)
    assert isinstance(group, V2Cgroup)
    group._has_kill = False  # as on a kernel before 5.14
    reaper = made.reaped_shell(group, "while :; do sleep 100 & sleep 0.01; done")
    assert _wait_for(lambda: len(group.pids()) >= 20, 10)

    group.kill_all()

    assert group.pids() == []
    assert reaper.wait(10) == 0
    assert (Path(group.directories()[0]) / "cgroup.freeze").read_text() == "0\n"  # thawed


def test_v2_limit_without_the_controller_is_refused(made: Made, unified: CgroupLayout) -> None:
    if "memory" in unified.v2_controllers:
        pytest.skip("this cgroup2 mount has the memory controller")
    with pytest.raises(CgroupError, match="--memory cannot be enforced: the memory cgroup "):
        made.cgroup("v2-mem", Limits(memory=64 * MiB), layout=unified)
    assert unified.v2 is not None and not (Path(unified.v2) / PARENT).exists()
