"""Docker-style sizes, CPUs, durations and their printing (runtime/units.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cellbox.runtime.errors import ConfigError
from cellbox.runtime.units import (
    format_ago,
    format_bytes,
    parse_cpus,
    parse_duration,
    parse_pids_limit,
    parse_since,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512m", 512 << 20),
        ("1g", 1 << 30),
        ("1.5g", 3 << 29),
        ("64MiB", 64 << 20),
        ("64mb", 64 << 20),
        ("100", 100),
        ("100b", 100),
        ("2k", 2048),
        ("1T", 1 << 40),
        (" 8m ", 8 << 20),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "m", "12x", "-5m", "0", "1.2.3g", "ten"])
def test_parse_size_refuses_nonsense_with_the_option_name(text: str) -> None:
    with pytest.raises(ConfigError, match="--memory"):
        parse_size(text, option="--memory")


def test_memory_swap_minus_one_is_unlimited() -> None:
    assert parse_size("-1", allow_unlimited=True) == -1
    with pytest.raises(ConfigError):
        parse_size("-1")


def test_parse_cpus() -> None:
    assert parse_cpus("0.5") == 0.5
    assert parse_cpus("2", available=2) == 2.0
    with pytest.raises(ConfigError, match="only 2 CPUs"):
        parse_cpus("3", available=2)
    for bad in ("0", "-1", "half", "nan", "0.001"):
        with pytest.raises(ConfigError, match="--cpus"):
            parse_cpus(bad)


def test_parse_pids_limit() -> None:
    assert parse_pids_limit("64") == 64
    assert parse_pids_limit("-1") is None
    assert parse_pids_limit("0") is None
    with pytest.raises(ConfigError, match="--pids-limit"):
        parse_pids_limit("-7")
    with pytest.raises(ConfigError, match="--pids-limit"):
        parse_pids_limit("lots")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("1h30m", 5400), ("45s", 45), ("2d", 172800), ("1.5h", 5400),
     ("500ms", 0.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "m10", "10m junk", "1y"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def test_parse_since_forms() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_since("10m", now=now) == datetime(2024, 5, 1, 11, 50, tzinfo=UTC)
    assert parse_since("2024-05-01T10:00:00Z", now=now) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    nano = parse_since("2024-05-01T10:00:00.123456789Z", now=now)
    assert nano.microsecond == 123456
    assert parse_since("1714557600", now=now) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(ConfigError):
        parse_since("2024-13-45T99:00:00Z", now=now)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (1023, "1023B"), (1024, "1KiB"), (64 << 20, "64MiB"), (3 << 29, "1.5GiB"),
     (2047 * 1024, "1.999MiB")],
)
def test_format_bytes_like_docker_stats(size: int, text: str) -> None:
    assert format_bytes(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "Less than a second"), (1, "1 second"), (30, "30 seconds"), (61, "About a minute"),
     (300, "5 minutes"), (3600, "About an hour"), (7200 * 3, "6 hours"),
     (86400 * 3, "3 days"), (86400 * 20, "2 weeks")],
)
def test_format_ago_like_docker_ps(seconds: float, text: str) -> None:
    assert format_ago(seconds) == text
