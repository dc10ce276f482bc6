"""docker-stats figures and table (runtime/stats.py)."""

from __future__ import annotations

from cellbox.runtime.stats import (
    StatsSample,
    cpu_percent,
    format_decimal_bytes,
    render_table,
    stats_row,
)

ID = "ab" * 32


def sample(t_ms: int, cpu_ms: int, **kw: object) -> StatsSample:
    return StatsSample(id=ID, name="box", monotonic_ns=t_ms * 10**6,
                       cpu_usage_ns=cpu_ms * 10**6, online_cpus=2, host_memory=8 << 30,
                       **kw)  # type: ignore[arg-type]


def test_cpu_percent_is_of_one_cpu() -> None:
    assert cpu_percent(sample(0, 0), sample(1000, 500)) == 50.0
    assert cpu_percent(sample(0, 0), sample(1000, 2000)) == 200.0
    assert cpu_percent(None, sample(1000, 2000)) == 0.0


def test_cpu_percent_never_exceeds_the_limit_or_the_cpus() -> None:
    assert cpu_percent(sample(0, 0), sample(1000, 900, cpu_limit=0.5)) == 50.0
    assert cpu_percent(sample(0, 0), sample(1000, 2500)) == 200.0


def test_row_against_the_limit_or_the_host() -> None:
    limited = stats_row(sample(0, 0), sample(1000, 250, memory_usage=16 << 20,
                                             memory_limit=64 << 20, pids=3, pids_limit=64))
    assert limited.cpu == "25.00%"
    assert limited.mem_usage == "16MiB / 64MiB"
    assert limited.mem_percent == "25.00%"
    assert limited.pids == "3 / 64"
    free = stats_row(None, sample(0, 0, memory_usage=1 << 30, pids=1))
    assert free.mem_usage == "1GiB / 8GiB"
    assert free.pids == "1"


def test_a_stopped_container_shows_dashes() -> None:
    row = stats_row(None, sample(0, 0, running=False))
    assert row.cpu == "--" and row.pids == "--"


def test_table_has_docker_headers() -> None:
    text = render_table([stats_row(None, sample(0, 0, net_rx=1234, net_tx=648))])
    header, line = text.splitlines()
    assert header.split("   ")[0] == "CONTAINER ID"
    assert "MEM USAGE / LIMIT" in header and "PIDS" in header
    assert line.startswith(ID[:12]) and "1.23kB / 648B" in line


def test_decimal_bytes() -> None:
    assert format_decimal_bytes(0) == "0B"
    assert format_decimal_bytes(1500000) == "1.5MB"
