"""The pure parts of cgroups: limits as files to write, and the files read back as figures."""

from __future__ import annotations

import pytest
from cellbox.runtime.cgroups import CgroupStats, Limits, cpu, freezer, memory, pids
from cellbox.runtime.cgroups.stats import parse_int, parse_keyed
from cellbox.runtime.errors import CgroupError, ConfigError

MiB = 1 << 20

# Real files, as a 6.x kernel writes them.
V1_MEMORY_STAT = """\
cache 0
rss 0
inactive_anon 0
inactive_file 0
hierarchical_memory_limit 67108864
hierarchical_memsw_limit 134217728
total_cache 618647552
total_rss 41082880
total_inactive_anon 40910848
total_active_anon 176128
total_inactive_file 266842112
total_active_file 351776768
"""
V1_OOM_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"
V1_OOM_CONTROL_OLD = "oom_kill_disable 0\nunder_oom 0\n"  # before 4.13: no oom_kill line
V2_MEMORY_EVENTS = "low 0\nhigh 0\nmax 27\noom 2\noom_kill 1\noom_group_kill 0\n"
V2_MEMORY_STAT = """\
anon 44896256
file 170000384
kernel 6356992
sock 0
shmem 90112
file_mapped 46661632
inactive_anon 44711936
active_anon 184320
inactive_file 100663296
active_file 69337088
unevictable 0
pgfault 8343239
"""
V2_CPU_STAT = """\
usage_usec 480518920
user_usec 302020053
system_usec 178498866
core_sched.force_idle_usec 0
nr_periods 120
nr_throttled 61
throttled_usec 3012345
nr_bursts 0
burst_usec 0
"""
V2_CGROUP_EVENTS_FROZEN = "populated 1\nfrozen 1\n"
V1_UNLIMITED = "9223372036854771712\n"


# -- single values and keyed files -------------------------------------------------------


def test_parse_int_and_keyed() -> None:
    assert parse_int("490205794838\n") == 490205794838
    assert parse_keyed("a 1\nb 2\nnot a number\nc\n\n") == {"a": 1, "b": 2}
    with pytest.raises(CgroupError, match=r"memory\.current: expected a number"):
        parse_int("max\n", what="memory.current")


# -- memory --------------------------------------------------------------------------------


def test_memory_v1_figures() -> None:
    assert memory.v1_limit("67108864\n") == 64 * MiB
    assert memory.v1_limit(V1_UNLIMITED) is None
    # 64 KiB pages round "unlimited" down further; still unlimited.
    assert memory.v1_limit("9223372036854710272\n") is None
    assert memory.v1_cache(V1_MEMORY_STAT) == 266842112
    assert memory.oom_kills(V1_OOM_CONTROL) == 1
    assert memory.oom_kills(V1_OOM_CONTROL_OLD) == 0


def test_memory_v2_figures() -> None:
    assert memory.v2_limit("max\n") is None
    assert memory.v2_limit("67108864\n") == 64 * MiB
    assert memory.v2_cache(V2_MEMORY_STAT) == 100663296
    assert memory.oom_kills(V2_MEMORY_EVENTS) == 1
    assert memory.oom_events(V2_MEMORY_EVENTS) == 2


def test_memory_v1_writes_follow_docker_swap_semantics() -> None:
    # --memory alone: swap may be as large again (memsw = 2 x memory), like docker.
    assert memory.v1_writes(Limits(memory=64 * MiB), fresh=True) == [
        ("memory.limit_in_bytes", str(64 * MiB)),
        ("memory.memsw.limit_in_bytes", str(128 * MiB)),
    ]
    # --memory-swap equal to --memory: no swap at all.
    assert memory.v1_writes(Limits(memory=64 * MiB, memory_swap=64 * MiB), fresh=True)[1] == (
        "memory.memsw.limit_in_bytes",
        str(64 * MiB),
    )
    # --memory-swap -1 on a fresh cgroup: memsw is unlimited already, not written.
    assert memory.v1_writes(Limits(memory=64 * MiB, memory_swap=-1), fresh=True) == [
        ("memory.limit_in_bytes", str(64 * MiB))
    ]
    assert memory.v1_writes(Limits(), fresh=True) == []
    # Lifting limits on a used cgroup writes -1 to both.
    assert memory.v1_writes(Limits(), fresh=False) == [
        ("memory.limit_in_bytes", "-1"),
        ("memory.memsw.limit_in_bytes", "-1"),
    ]


def test_memory_v2_writes_swap_alone() -> None:
    assert memory.v2_writes(Limits(memory=64 * MiB), fresh=True) == [
        ("memory.max", str(64 * MiB)),
        ("memory.swap.max", str(64 * MiB)),
    ]
    assert memory.v2_writes(Limits(memory=64 * MiB, memory_swap=96 * MiB), fresh=True) == [
        ("memory.max", str(64 * MiB)),
        ("memory.swap.max", str(32 * MiB)),
    ]
    assert memory.v2_writes(Limits(memory=64 * MiB, memory_swap=64 * MiB), fresh=True)[1] == (
        "memory.swap.max",
        "0",
    )
    assert memory.v2_writes(Limits(memory=64 * MiB, memory_swap=-1), fresh=True) == [
        ("memory.max", str(64 * MiB))
    ]
    assert memory.v2_writes(Limits(), fresh=False) == [
        ("memory.max", "max"),
        ("memory.swap.max", "max"),
    ]


# -- cpu -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "quota"), [(0.5, 50_000), (1, 100_000), (1.5, 150_000), (0.01, 1_000), (2, 200_000)]
)
def test_cpu_quota(cpus: float, quota: int) -> None:
    assert cpu.quota_us(cpus) == quota
    assert cpu.v1_writes(Limits(cpus=cpus), fresh=True) == [
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", str(quota)),
    ]
    assert cpu.v2_writes(Limits(cpus=cpus), fresh=True) == [("cpu.max", f"{quota} 100000")]


def test_cpu_unlimited() -> None:
    assert cpu.v1_writes(Limits(), fresh=True) == []
    assert cpu.v1_writes(Limits(), fresh=False) == [("cpu.cfs_quota_us", "-1")]
    assert cpu.v2_writes(Limits(), fresh=False) == [("cpu.max", "max 100000")]
    assert cpu.v1_quota_cpus("-1\n", "100000\n") is None
    assert cpu.v2_quota_cpus("max 100000\n") is None


def test_cpu_figures() -> None:
    assert cpu.v1_quota_cpus("50000\n", "100000\n") == 0.5
    assert cpu.v1_quota_cpus("150000\n", "50000\n") == 3.0
    assert cpu.v2_quota_cpus("50000 100000\n") == 0.5
    assert cpu.v2_quota_cpus("25000\n") == 0.25  # period left out: the default
    assert cpu.v1_usage_ns("490205794838\n") == 490205794838
    assert cpu.v2_usage_ns(V2_CPU_STAT) == 480518920000
    assert cpu.v2_usage_ns("") is None


# -- pids and freezer ----------------------------------------------------------------------


def test_pids() -> None:
    assert pids.limit("max\n") is None
    assert pids.limit("32\n") == 32
    assert pids.current("7\n") == 7
    assert pids.fork_failures("max 12\n") == 12
    assert pids.writes(Limits(pids=32), fresh=True) == [("pids.max", "32")]
    assert pids.writes(Limits(), fresh=True) == []
    assert pids.writes(Limits(), fresh=False) == [("pids.max", "max")]


def test_freezer() -> None:
    assert freezer.v1_is_frozen("FROZEN\n")
    assert not freezer.v1_is_frozen("FREEZING\n")
    assert not freezer.v1_is_frozen("THAWED\n")
    assert freezer.v2_is_frozen(V2_CGROUP_EVENTS_FROZEN)
    assert not freezer.v2_is_frozen("populated 1\nfrozen 0\n")
    assert freezer.v2_is_populated(V2_CGROUP_EVENTS_FROZEN)
    assert not freezer.v2_is_populated("populated 0\nfrozen 0\n")


# -- Limits and CgroupStats ----------------------------------------------------------------


def test_limits_docker_semantics() -> None:
    assert Limits().any is False
    assert Limits(pids=1).any
    assert Limits(memory=64 * MiB).swap_total() == 128 * MiB
    assert Limits(memory=64 * MiB, memory_swap=100 * MiB).swap_total() == 100 * MiB
    assert Limits(memory=64 * MiB, memory_swap=-1).swap_total() is None
    assert Limits().swap_total() is None
    assert Limits(memory=64 * MiB, cpus=0.5, pids=3).controllers() == {"memory", "cpu", "pids"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory": 1 * MiB}, "--memory: 1 MiB is below the minimum of 6 MiB"),
        ({"memory_swap": 128 * MiB}, "--memory-swap needs --memory"),
        ({"memory": 64 * MiB, "memory_swap": 32 * MiB}, "32 MiB is less than --memory 64 MiB"),
        ({"memory": 64 * MiB, "memory_swap": 0}, "less than --memory"),
        ({"cpus": 0.001}, "--cpus: 0.001 must be a number of CPUs, at least 0.01"),
        ({"cpus": float("nan")}, "--cpus"),
        ({"pids": 0}, "--pids-limit: 0 must be a positive number"),
    ],
)
def test_limits_refuse_what_cannot_work(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Limits(**kwargs)  # type: ignore[arg-type]


def test_stats_memory_usage_is_dockers_figure() -> None:
    stats = CgroupStats(memory_current=300 * MiB, memory_cache=100 * MiB)
    assert stats.memory_usage == 200 * MiB
    assert CgroupStats().memory_usage is None
    data = stats.to_dict()
    assert data["memory_usage"] == 200 * MiB
    assert data["memory_current"] == 300 * MiB
    assert data["oom_kills"] == 0
