"""The v1 and v2 drivers on fixture trees: a pure-v2 host, a pure-v1 host, no root needed.

A :class:`FakeKernel` plays the kernel's part on a tree of plain files, as far as the
drivers can tell: mkdir fills a cgroup with the interface files its controllers give it,
cgroup.subtree_control enforces v2's rules (a controller must be offered by the parent; a
cgroup with processes cannot hand controllers down), v1 keeps memsw >= memory, exited
processes drop out of cgroup.procs, cgroup.kill kills, and rmdir refuses a busy cgroup.
Processes in these tests are real (``sleep``), so killing is checked for real.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cellbox.runtime.cgroups import CgroupLayout, Limits, create, fs, open_cgroup
from cellbox.runtime.errors import CgroupError, ConfigError

MiB = 1 << 20
V1_UNLIMITED = "9223372036854771712"
real_mkdir, real_write, real_rmdir, real_read_pids = fs.mkdir, fs.write_text, fs.rmdir, fs.read_pids


def _alive(pid: int) -> bool:
    """The kernel lists neither exited processes nor zombies in cgroup.procs."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _words(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.exists() else set()


class FakeKernel:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.root = root
        self.v2: Path | None = None
        self.v2_features = {"kill", "freeze", "peak", "swap"}
        self.v1: dict[Path, set[str]] = {}
        self.memsw = True
        self.denied: set[Path] = set()
        self.refuse: dict[str, int] = {}  # file name -> errno the kernel answers with
        self.writes: list[tuple[str, str]] = []
        monkeypatch.setattr(fs, "mkdir", self.mkdir)
        monkeypatch.setattr(fs, "write_text", self.write_text)
        monkeypatch.setattr(fs, "rmdir", self.rmdir)
        monkeypatch.setattr(fs, "read_pids", self.read_pids)

    # -- hosts ---------------------------------------------------------------------------

    def v2_host(self, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc") -> Path:
        self.v2 = self.root / "sys/fs/cgroup"
        self.v2.mkdir(parents=True)
        self._fill(self.v2, {"cgroup.controllers": controllers, "cgroup.subtree_control": "",
                             "cgroup.procs": "1\n"})
        return self.v2

    def v2_layout(self) -> CgroupLayout:
        assert self.v2 is not None
        return CgroupLayout("v2", {}, self.v2, frozenset(_words(self.v2 / "cgroup.controllers")))

    def v1_host(self, mounts: dict[str, set[str]]) -> CgroupLayout:
        layout: dict[str, Path] = {}
        for name, controllers in mounts.items():
            path = self.root / "sys/fs/cgroup" / name
            path.mkdir(parents=True)
            self.v1[path] = controllers
            self._fill(path, {"cgroup.procs": "1\n"})
            for controller in controllers:
                layout[controller] = path
        return CgroupLayout("v1", layout, None, frozenset())

    # -- the kernel's part ---------------------------------------------------------------

    def _fill(self, directory: Path, files: dict[str, str]) -> None:
        for name, value in files.items():
            (directory / name).write_text(value)

    def _check_denied(self, path: Path) -> None:
        if any(path == d or d in path.parents for d in self.denied):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def mkdir(self, path: str | Path) -> bool:
        path = Path(path)
        self._check_denied(path.parent)
        if not real_mkdir(path):
            return False
        files = {"cgroup.procs": ""}
        if self.v2 is not None and self.v2 in path.parents:
            enabled = _words(path.parent / "cgroup.subtree_control")
            files |= {"cgroup.controllers": " ".join(sorted(enabled)),
                      "cgroup.subtree_control": "", "cgroup.events": "populated 0\nfrozen 0\n",
                      "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"}
            if "kill" in self.v2_features:
                files["cgroup.kill"] = ""
            if "freeze" in self.v2_features:
                files["cgroup.freeze"] = "0"
            for controller in enabled:
                files |= self._v2_files(controller)
        else:
            mount = next(m for m in self.v1 if m in path.parents)
            controllers = self.v1[mount]
            if "memory" in controllers:
                files |= {"memory.limit_in_bytes": V1_UNLIMITED, "memory.usage_in_bytes": "0",
                          "memory.max_usage_in_bytes": "0", "memory.stat": "total_rss 0\n",
                          "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"}
                if self.memsw:
                    files |= {"memory.memsw.limit_in_bytes": V1_UNLIMITED,
                              "memory.memsw.usage_in_bytes": "0"}
            if "cpu" in controllers:
                files |= {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1"}
            if "cpuacct" in controllers:
                files["cpuacct.usage"] = "0"
            if "pids" in controllers:
                files |= {"pids.max": "max", "pids.current": "0"}
            if "freezer" in controllers:
                files["freezer.state"] = "THAWED"
        self._fill(path, files)
        return True

    def _v2_files(self, controller: str) -> dict[str, str]:
        """The interface files a v2 controller gives each cgroup it is enabled for."""
        files = {}
        if controller == "memory":
            files |= {"memory.max": "max", "memory.current": "0", "memory.stat": "anon 0\n",
                      "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"}
            if "peak" in self.v2_features:
                files["memory.peak"] = "0"
            if "swap" in self.v2_features:
                files |= {"memory.swap.max": "max", "memory.swap.current": "0"}
        elif controller == "cpu":
            files["cpu.max"] = "max 100000"
        elif controller == "pids":
            files |= {"pids.max": "max", "pids.current": "0"}
        return files

    def _hand_down(self, directory: Path, enabled: set[str]) -> None:
        """Like the kernel: children see the new controllers and get their files."""
        for child in (p for p in directory.iterdir() if p.is_dir()):
            old = _words(child / "cgroup.controllers")
            (child / "cgroup.controllers").write_text(" ".join(sorted(enabled)))
            for controller in enabled - old:
                self._fill(child, self._v2_files(controller))

    def write_text(self, path: str | Path, value: str) -> None:
        path = Path(path)
        self._check_denied(path)
        self.writes.append((str(path.relative_to(self.root)), value))
        if path.name in self.refuse:
            code = self.refuse[path.name]
            raise OSError(code, os.strerror(code), str(path))
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        directory = path.parent
        if path.name == "cgroup.subtree_control":
            enabled = _words(path)
            for token in value.split():
                if token[1:] not in _words(directory / "cgroup.controllers"):
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
                if directory != self.v2 and self.read_pids(directory / "cgroup.procs"):
                    raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
                (enabled.add if token[0] == "+" else enabled.discard)(token[1:])
            value = " ".join(sorted(enabled))
            self._hand_down(directory, enabled)
        elif path.name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
            memsw = directory / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                limit = int(value) if value != "-1" else int(V1_UNLIMITED)
                other = int((directory / "memory.limit_in_bytes").read_text())
                current_memsw = int(memsw.read_text())
                if path.name == "memory.limit_in_bytes" and limit > current_memsw:
                    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), str(path))
                if path.name == "memory.memsw.limit_in_bytes" and limit < other:
                    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), str(path))
            value = V1_UNLIMITED if value == "-1" else value
        elif path.name == "cgroup.kill":
            for pid in self.read_pids(directory / "cgroup.procs"):
                os.kill(pid, signal.SIGKILL)
        elif path.name == "cgroup.freeze":
            (directory / "cgroup.events").write_text(f"populated 1\nfrozen {value}\n")
        elif path.name == "freezer.state":
            value = "FROZEN" if value == "FROZEN" else "THAWED"
        elif path.name == "cgroup.procs":
            value = "\n".join(str(p) for p in [*self.read_pids(path), int(value)])
        real_write(path, value)

    def read_pids(self, path: str | Path) -> list[int]:
        return [pid for pid in real_read_pids(path) if _alive(pid)]

    def rmdir(self, path: str | Path, *, deadline: float = 0.0) -> bool:
        path = Path(path)
        if not path.exists():
            return False
        if any(p.is_dir() for p in path.iterdir()) or self.read_pids(path / "cgroup.procs"):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        for file in path.iterdir():
            file.unlink()
        return real_rmdir(path, deadline=deadline)

    def written(self, name: str) -> list[str]:
        """Values written to files called ``name``, in order."""
        return [value for path, value in self.writes if Path(path).name == name]


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeKernel:
    return FakeKernel(monkeypatch, tmp_path)


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Real processes to put into fake cgroups; killed and reaped whatever happens."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _sleep(procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "100"])
    procs.append(proc)
    return proc


# == v2 =====================================================================================


def test_v2_create_enables_controllers_from_the_root_down(kernel: FakeKernel) -> None:
    mount = kernel.v2_host()
    group = create("c1", Limits(memory=64 * MiB, cpus=0.5, pids=32), parent="cellbox",
                   layout=kernel.v2_layout())

    leaf = mount / "cellbox/c1"
    assert group.version == "v2"
    assert group.procs_files() == [str(leaf / "cgroup.procs")]
    assert (mount / "cgroup.subtree_control").read_text() == "cpu memory pids"
    assert (mount / "cellbox/cgroup.subtree_control").read_text() == "cpu memory pids"
    # The root was set up before the parent: controllers flow down.
    order = [p for p, _ in kernel.writes if p.endswith("subtree_control")]
    assert order == ["sys/fs/cgroup/cgroup.subtree_control",
                     "sys/fs/cgroup/cellbox/cgroup.subtree_control"]
    assert (leaf / "memory.max").read_text() == str(64 * MiB)
    assert (leaf / "memory.swap.max").read_text() == str(64 * MiB)  # docker: swap = memory
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "pids.max").read_text() == "32"
    stats = group.stats()
    assert (stats.memory_limit, stats.swap_limit) == (64 * MiB, 64 * MiB)
    assert (stats.cpu_quota_cpus, stats.pids_limit, stats.oom_kills) == (0.5, 32, 0)


def test_v2_cpu_is_enabled_only_for_a_quota(kernel: FakeKernel) -> None:
    mount = kernel.v2_host()
    group = create("c1", Limits(), parent="cellbox", layout=kernel.v2_layout())

    assert (mount / "cellbox/cgroup.subtree_control").read_text() == "memory pids"
    assert not (mount / "cellbox/c1/cpu.max").exists()
    stats = group.stats()
    assert stats.cpu_quota_cpus is None and stats.cpu_usage_ns == 0
    assert stats.memory_limit is None and stats.pids_limit is None
    # A fresh cgroup is unlimited already: nothing was written into it.
    assert not [p for p, _ in kernel.writes if "/c1/" in p]

    group.set_limits(Limits(cpus=1))
    assert (mount / "cellbox/cgroup.subtree_control").read_text() == "cpu memory pids"


def test_v2_set_limits_lifts_limits(kernel: FakeKernel) -> None:
    kernel.v2_host()
    group = create("c1", Limits(memory=64 * MiB, cpus=2, pids=10), parent="cellbox",
                   layout=kernel.v2_layout())
    group.set_limits(Limits())
    stats = group.stats()
    assert (stats.memory_limit, stats.swap_limit, stats.cpu_quota_cpus, stats.pids_limit) == (
        None, None, None, None
    )


def test_v2_delegated_subtree_reads_but_never_writes_the_ancestors(kernel: FakeKernel) -> None:
    mount = kernel.v2_host()
    service = mount / "user.slice/user-1000.slice/user@1000.service"
    (mount / "cgroup.subtree_control").write_text("cpu memory pids")
    for level in (mount / "user.slice", mount / "user.slice/user-1000.slice", service):
        real_mkdir(level)
        kernel._fill(level, {"cgroup.controllers": "cpu memory pids", "cgroup.procs": "",
                             "cgroup.subtree_control": "cpu memory pids"})
    kernel.denied = {mount / "cgroup.subtree_control", mount / "user.slice/cgroup.subtree_control",
                     mount / "user.slice/user-1000.slice/cgroup.subtree_control"}

    parent = "user.slice/user-1000.slice/user@1000.service/cellbox.slice"
    group = create("c1", Limits(memory=64 * MiB, cpus=1), parent=parent,
                   layout=kernel.v2_layout())

    assert group.procs_files() == [str(service / "cellbox.slice/c1/cgroup.procs")]
    assert [p for p, _ in kernel.writes if p.endswith("subtree_control")] == [
        f"sys/fs/cgroup/{parent}/cgroup.subtree_control"
    ]
    group.remove()
    assert not (service / "cellbox.slice").exists()
    assert service.is_dir()


def test_v2_without_delegation_says_limits_cannot_be_enforced(kernel: FakeKernel) -> None:
    mount = kernel.v2_host()
    kernel.denied = {mount}
    with pytest.raises(CgroupError) as info:
        create("c1", Limits(memory=64 * MiB), parent="cellbox", layout=kernel.v2_layout())
    message = str(info.value)
    assert "cannot be enforced" in message
    assert "not delegated" in message
    assert "user@" in message and "CELLBOX_CGROUP_PARENT" in message


def test_v2_missing_controller_is_named(kernel: FakeKernel) -> None:
    mount = kernel.v2_host(controllers="cpu io memory")
    with pytest.raises(CgroupError, match="--pids-limit cannot be enforced: the pids cgroup "
                       "controller is not available"):
        create("c1", Limits(pids=10), parent="cellbox", layout=kernel.v2_layout())
    assert not (mount / "cellbox").exists()  # nothing left behind

    group = create("c2", Limits(memory=64 * MiB), parent="cellbox", layout=kernel.v2_layout())
    assert group.stats().pids_limit is None
    assert (mount / "cellbox/cgroup.subtree_control").read_text() == "memory"


def test_v2_no_internal_processes(kernel: FakeKernel, sleepers: list[subprocess.Popen[bytes]]
                                  ) -> None:
    mount = kernel.v2_host()
    kernel.mkdir(mount / "busy")
    real_write(mount / "busy/cgroup.procs", str(_sleep(sleepers).pid))

    with pytest.raises(CgroupError, match="no-internal-processes"):
        create("c1", Limits(memory=64 * MiB), parent="busy", layout=kernel.v2_layout())
    assert not (mount / "busy/c1").exists()

    # cellbox's own parent never holds a process: add() puts it in the leaf only.
    group = create("c1", Limits(memory=64 * MiB), parent="cellbox", layout=kernel.v2_layout())
    proc = _sleep(sleepers)
    group.add(proc.pid)
    assert group.pids() == [proc.pid]
    assert kernel.read_pids(mount / "cellbox/cgroup.procs") == []


def test_v2_without_swap_accounting_warns_only_for_memory_swap(kernel: FakeKernel) -> None:
    kernel.v2_host()
    kernel.v2_features.discard("swap")
    quiet = create("c1", Limits(memory=64 * MiB), parent="cellbox", layout=kernel.v2_layout())
    loud = create("c2", Limits(memory=64 * MiB, memory_swap=128 * MiB), parent="cellbox",
                  layout=kernel.v2_layout())
    assert quiet.warnings == []
    assert loud.warnings and "--memory-swap is not enforced" in loud.warnings[0]
    assert quiet.stats().swap_limit is None


def test_v2_peak_before_5_19_is_the_highest_sample(kernel: FakeKernel) -> None:
    mount = kernel.v2_host()
    kernel.v2_features.discard("peak")
    group = create("c1", Limits(memory=64 * MiB), parent="cellbox", layout=kernel.v2_layout())
    peaks = []
    for current in (10, 30, 20):
        real_write(mount / "cellbox/c1/memory.current", str(current * MiB))
        peaks.append(group.stats().memory_peak)
    assert peaks == [10 * MiB, 30 * MiB, 30 * MiB]


def test_v2_stats_of_a_busy_container(kernel: FakeKernel) -> None:
    mount = kernel.v2_host()
    group = create("c1", Limits(memory=64 * MiB, cpus=0.5), parent="cellbox",
                   layout=kernel.v2_layout())
    leaf = mount / "cellbox/c1"
    kernel._fill(leaf, {
        "memory.current": "50331648", "memory.peak": "67108864",
        "memory.stat": "anon 40000000\nfile 10000000\ninactive_file 8388608\n",
        "memory.events": "low 0\nhigh 0\nmax 40\noom 3\noom_kill 1\noom_group_kill 0\n",
        "memory.swap.current": "4096", "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\n",
        "pids.current": "7",
    })
    stats = group.stats()
    assert stats.memory_current == 48 * MiB
    assert stats.memory_peak == 64 * MiB
    assert stats.memory_usage == 40 * MiB
    assert (stats.swap_current, stats.cpu_usage_ns, stats.pids_current) == (4096, 1_500_000_000, 7)
    assert (stats.oom_kills, stats.oom_events) == (1, 3)
    assert group.oom_kills() == 1
    assert group.oom_killed_since(0) and not group.oom_killed_since(1)


def test_v2_kill_all_uses_cgroup_kill(kernel: FakeKernel,
                                      sleepers: list[subprocess.Popen[bytes]]) -> None:
    kernel.v2_host()
    group = create("c1", Limits(), parent="cellbox", layout=kernel.v2_layout())
    procs = [_sleep(sleepers), _sleep(sleepers)]
    for proc in procs:
        group.add(proc.pid)
    assert group.pids() == sorted(p.pid for p in procs)

    group.kill_all()

    assert group.pids() == []
    assert [p.wait(5) for p in procs] == [-signal.SIGKILL] * 2
    assert kernel.written("cgroup.kill") == ["1"]
    assert kernel.written("cgroup.freeze") == []


def test_v2_before_5_14_freezes_signals_and_thaws(
    kernel: FakeKernel, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    kernel.v2_host()
    kernel.v2_features.discard("kill")
    group = create("c1", Limits(), parent="cellbox", layout=kernel.v2_layout())
    procs = [_sleep(sleepers), _sleep(sleepers)]
    for proc in procs:
        group.add(proc.pid)

    group.kill_all(signal.SIGTERM)  # any other signal: once to each, no waiting
    assert [p.wait(5) for p in procs] == [-signal.SIGTERM] * 2
    assert kernel.written("cgroup.freeze") == ["1", "0"]

    proc = _sleep(sleepers)
    group.add(proc.pid)
    group.remove()
    assert proc.wait(5) == -signal.SIGKILL
    assert kernel.written("cgroup.freeze") == ["1", "0", "1", "0"]
    assert open_cgroup("c1", parent="cellbox", layout=kernel.v2_layout()) is None


def test_v2_remove_takes_the_parent_with_the_last_container(kernel: FakeKernel) -> None:
    mount = kernel.v2_host()
    layout = kernel.v2_layout()
    one = create("c1", Limits(), parent="cellbox", layout=layout)
    two = create("c2", Limits(), parent="cellbox", layout=layout)

    one.remove()
    assert not (mount / "cellbox/c1").exists() and (mount / "cellbox/c2").is_dir()
    two.remove()
    assert not (mount / "cellbox").exists()
    assert mount.is_dir()
    two.remove()  # again: nothing to do, no error
    assert open_cgroup("c2", parent="cellbox", layout=layout) is None


def test_v2_failed_create_leaves_nothing(kernel: FakeKernel) -> None:
    mount = kernel.v2_host()
    kernel.refuse["pids.max"] = errno.EINVAL
    with pytest.raises(CgroupError, match=r"cannot set pids.max of cgroup /cellbox/c1 to '5'"):
        create("c1", Limits(pids=5), parent="cellbox", layout=kernel.v2_layout())
    assert not (mount / "cellbox").exists()


def test_v2_an_existing_cgroup_is_reused(kernel: FakeKernel) -> None:
    kernel.v2_host()
    layout = kernel.v2_layout()
    create("c1", Limits(pids=5), parent="cellbox", layout=layout)
    again = create("c1", Limits(), parent="cellbox", layout=layout)  # after a crash
    assert again.stats().pids_limit is None  # limits reset, not inherited


# == v1 =====================================================================================

PURE_V1 = {"cpu,cpuacct": {"cpu", "cpuacct"}, "memory": {"memory"}, "pids": {"pids"},
           "freezer": {"freezer"}, "devices": {"devices"}}


def test_v1_co_mounted_cpu_and_cpuacct_is_joined_once(kernel: FakeKernel) -> None:
    layout = kernel.v1_host(PURE_V1)
    group = create("c1", Limits(memory=64 * MiB, cpus=0.5, pids=32), parent="cellbox",
                   layout=layout)
    base = kernel.root / "sys/fs/cgroup"
    assert group.version == "v1"
    assert sorted(group.procs_files()) == sorted(
        str(base / m / "cellbox/c1/cgroup.procs")
        for m in ("memory", "cpu,cpuacct", "pids", "freezer")
    )
    assert [(Path(p).name, v) for p, v in kernel.writes] == [
        ("memory.limit_in_bytes", str(64 * MiB)),
        ("memory.memsw.limit_in_bytes", str(128 * MiB)),
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", "50000"),
        ("pids.max", "32"),
    ]
    stats = group.stats()
    assert (stats.memory_limit, stats.swap_limit, stats.cpu_quota_cpus, stats.pids_limit) == (
        64 * MiB, 64 * MiB, 0.5, 32
    )


def test_v1_raising_memory_above_memsw_raises_memsw_first(kernel: FakeKernel) -> None:
    layout = kernel.v1_host(PURE_V1)
    group = create("c1", Limits(memory=64 * MiB), parent="cellbox", layout=layout)
    kernel.writes.clear()

    group.set_limits(Limits(memory=1024 * MiB))
    assert [(Path(p).name, v) for p, v in kernel.writes if p.startswith("sys/fs/cgroup/memory")
            ] == [
        ("memory.limit_in_bytes", str(1024 * MiB)),  # refused: above the old memsw
        ("memory.memsw.limit_in_bytes", str(2048 * MiB)),
        ("memory.limit_in_bytes", str(1024 * MiB)),
    ]
    group.set_limits(Limits(memory=32 * MiB, memory_swap=32 * MiB))  # lowering: memory first
    assert group.stats().memory_limit == 32 * MiB and group.stats().swap_limit == 0
    group.set_limits(Limits())
    assert group.stats().memory_limit is None


def test_v1_without_swap_accounting(kernel: FakeKernel) -> None:
    layout = kernel.v1_host(PURE_V1)
    kernel.memsw = False
    quiet = create("c1", Limits(memory=64 * MiB), parent="cellbox", layout=layout)
    loud = create("c2", Limits(memory=64 * MiB, memory_swap=96 * MiB), parent="cellbox",
                  layout=layout)
    assert quiet.warnings == [] and quiet.stats().memory_limit == 64 * MiB
    assert loud.warnings and "swapaccount=1" in loud.warnings[0]
    assert quiet.stats().swap_current is None


def test_v1_limit_without_its_controller_is_refused(kernel: FakeKernel) -> None:
    layout = kernel.v1_host({"memory": {"memory"}, "cpu,cpuacct": {"cpu", "cpuacct"}})
    with pytest.raises(CgroupError, match="--pids-limit cannot be enforced"):
        create("c1", Limits(pids=10), parent="cellbox", layout=layout)
    assert not (kernel.root / "sys/fs/cgroup/memory/cellbox").exists()
    group = create("c1", Limits(memory=64 * MiB), parent="cellbox", layout=layout)
    assert group.stats().pids_current is None


def test_v1_as_a_user_says_cgroup_v1_cannot_be_delegated(kernel: FakeKernel) -> None:
    layout = kernel.v1_host(PURE_V1)
    kernel.denied = set(kernel.v1)
    with pytest.raises(CgroupError, match="cgroup v1 cannot be delegated") as info:
        create("c1", Limits(memory=64 * MiB), parent="cellbox", layout=layout)
    assert "cannot be enforced" in str(info.value)


def test_v1_failed_limit_removes_what_it_made(kernel: FakeKernel) -> None:
    layout = kernel.v1_host(PURE_V1)
    kernel.refuse["cpu.cfs_quota_us"] = errno.EINVAL
    with pytest.raises(CgroupError, match=r"cannot set cpu\.cfs_quota_us"):
        create("c1", Limits(cpus=1), parent="cellbox", layout=layout)
    assert not any((mount / "cellbox").exists() for mount in kernel.v1)


def test_v1_kill_all_freezes_and_remove_cleans_every_hierarchy(
    kernel: FakeKernel, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    layout = kernel.v1_host(PURE_V1)
    group = create("c1", Limits(pids=10), parent="cellbox", layout=layout)
    other = create("c2", Limits(), parent="cellbox", layout=layout)
    procs = [_sleep(sleepers), _sleep(sleepers)]
    for proc in procs:
        group.add(proc.pid)

    group.remove()

    assert [p.wait(5) for p in procs] == [-signal.SIGKILL] * 2
    assert kernel.written("freezer.state") == ["FROZEN", "THAWED"]
    assert open_cgroup("c1", parent="cellbox", layout=layout) is None
    assert all((mount / "cellbox/c2").is_dir() for mount in kernel.v1 if mount.name != "devices")
    other.remove()
    assert not any((mount / "cellbox").exists() for mount in kernel.v1)


def test_v1_stats(kernel: FakeKernel) -> None:
    layout = kernel.v1_host(PURE_V1)
    group = create("c1", Limits(memory=64 * MiB), parent="cellbox", layout=layout)
    base = kernel.root / "sys/fs/cgroup"
    kernel._fill(base / "memory/cellbox/c1", {
        "memory.usage_in_bytes": str(50 * MiB), "memory.max_usage_in_bytes": str(60 * MiB),
        "memory.memsw.usage_in_bytes": str(52 * MiB),
        "memory.stat": "cache 0\ntotal_cache 20971520\ntotal_inactive_file 10485760\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    })
    kernel._fill(base / "cpu,cpuacct/cellbox/c1", {"cpuacct.usage": "523000000"})
    kernel._fill(base / "pids/cellbox/c1", {"pids.current": "3"})
    stats = group.stats()
    assert (stats.memory_current, stats.memory_peak, stats.memory_usage) == (
        50 * MiB, 60 * MiB, 40 * MiB
    )
    assert (stats.swap_current, stats.swap_limit) == (2 * MiB, 64 * MiB)
    assert (stats.cpu_usage_ns, stats.pids_current, stats.oom_kills) == (523_000_000, 3, 2)
    assert stats.oom_events is None
    assert group.oom_kill_file() == str(base / "memory/cellbox/c1/memory.oom_control")
    assert group.oom_killed_since(1)


# == names ==================================================================================


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "x y", "cgroup.procs", "é"])
def test_container_ids_that_are_not_one_safe_name_are_refused(kernel: FakeKernel, bad: str
                                                              ) -> None:
    layout = kernel.v1_host(PURE_V1)
    with pytest.raises(ConfigError, match="container id"):
        create(bad, Limits(), parent="cellbox", layout=layout)


@pytest.mark.parametrize("bad", ["/", "", "a/../b", "a/./b"])
def test_parents_that_escape_or_name_the_root_are_refused(kernel: FakeKernel, bad: str) -> None:
    layout = kernel.v1_host(PURE_V1)
    with pytest.raises(ConfigError, match="cgroup parent"):
        create("c1", Limits(), parent=bad, layout=layout)


def test_parent_defaults_to_the_setting(kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    layout = kernel.v1_host(PURE_V1)
    monkeypatch.setenv("CELLBOX_CGROUP_PARENT", "/from-env/")
    group = create("c1", Limits(), layout=layout)
    assert group.path == "/from-env/c1"
    assert (kernel.root / "sys/fs/cgroup/memory/from-env/c1").is_dir()
