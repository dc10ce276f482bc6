"""Docker-style sizes, CPU counts and durations: parse what people type, print what they read.

Pure functions shared by the ``cellbox`` command line and the kernel's magics::

    parse_size("512m")   -> 536870912        (b, k, m, g, t; binary multiples, like docker)
    parse_size("1.5g")   -> 1610612736
    parse_cpus("0.5")    -> 0.5              (a fraction of the host's CPUs, > 0)
    parse_duration("10m") -> timedelta(minutes=10)   (for ``logs --since``)
    format_bytes(1610612736) -> "1.5GiB"     (as ``docker stats`` prints it)
    format_ago(seconds)  -> "5 minutes"      (as ``docker ps`` prints it)

Every bad value raises :class:`~cellbox.runtime.errors.ConfigError` naming the option and
showing what a good value looks like.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from .errors import ConfigError

__all__ = [
    "format_ago",
    "format_bytes",
    "parse_cpus",
    "parse_duration",
    "parse_pids_limit",
    "parse_since",
    "parse_size",
]

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
    "d": 86400.0,
}


def parse_size(text: str | int, *, option: str = "size", allow_unlimited: bool = False) -> int:
    """Bytes from ``512m``, ``1g``, ``1.5g``, ``64MiB`` or a plain number of bytes.

    ``-1`` means unlimited (returned as -1) where ``allow_unlimited`` is set, as in
    docker's ``--memory-swap -1``.
    """
    if isinstance(text, int):
        value = text
    else:
        if allow_unlimited and text.strip() == "-1":
            return -1
        match = _SIZE.match(text)
        if not match:
            raise ConfigError(
                f"{option}: {text!r} is not a size; use a number of bytes or a number with "
                "a unit b, k, m, g or t (for example 512m or 1.5g)"
            )
        number, unit = match.groups()
        value = math.floor(float(number) * _SIZE_UNITS[unit.lower()])
    if value == -1 and allow_unlimited:
        return -1
    if value <= 0:
        raise ConfigError(f"{option}: {text!r} must be more than 0 bytes")
    return value


def parse_cpus(text: str | float, *, available: int | None = None) -> float:
    """A CPU quota from ``0.5``, ``1``, ``1.5``: how many CPUs' worth of time per period.

    Like docker, more CPUs than the host has (``available``) is refused, and the smallest
    quota is 0.01 CPU.
    """
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"--cpus: {text!r} is not a number of CPUs (for example 0.5 or 2)"
        ) from None
    if not math.isfinite(value) or value < 0.01:
        raise ConfigError(f"--cpus: {text!r} must be at least 0.01")
    if available is not None and value > available:
        raise ConfigError(
            f"--cpus: {text!r} is more than this machine has; the range is 0.01 to "
            f"{available:.2f}, as there are only {available} CPUs available"
        )
    return round(value, 2)


def parse_pids_limit(text: str | int) -> int | None:
    """A pids limit: a positive number of processes, or ``-1``/``0`` for unlimited (None)."""
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(
            f"--pids-limit: {text!r} is not a whole number of processes (for example 100)"
        ) from None
    if value in (-1, 0):
        return None
    if value < 0:
        raise ConfigError(f"--pids-limit: {text!r} must be positive, or -1 for unlimited")
    return value


def parse_duration(text: str) -> timedelta:
    """A Go-style duration: ``10m``, ``1h30m``, ``45s``, ``2d``, ``1.5h``."""
    stripped = text.strip()
    pos, total, parts = 0, 0.0, 0
    for match in _DURATION.finditer(stripped):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos, parts = match.end(), parts + 1
    if parts == 0 or pos != len(stripped):
        raise ConfigError(
            f"{text!r} is not a duration; use a number with a unit s, m, h or d "
            "(for example 10m or 1h30m)"
        )
    return timedelta(seconds=total)


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``10m``), an RFC 3339 time, or Unix seconds."""
    now = now or datetime.now(UTC)
    stripped = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", stripped):
        return datetime.fromtimestamp(float(stripped), UTC)
    if re.fullmatch(r"\d{4}-\d\d-\d\d.*", stripped):
        try:
            when = datetime.fromisoformat(_trim_fraction(stripped.replace("Z", "+00:00")))
        except ValueError:
            raise ConfigError(
                f"--since: {text!r} is not an RFC 3339 time (for example "
                "2024-05-01T12:00:00Z)"
            ) from None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return now - parse_duration(stripped)


def _trim_fraction(text: str) -> str:
    """Python 3.11 parses at most 6 fractional digits; RFC 3339 nanoseconds have 9."""
    return re.sub(r"(\.\d{6})\d+", r"\1", text)


def format_bytes(size: float) -> str:
    """``docker stats`` style: 4 significant digits and a binary unit (``1.5GiB``)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    value, index = float(size), 0
    while abs(value) >= 1024 and index < len(units) - 1:
        value /= 1024
        index += 1
    return f"{value:.4g}{units[index]}"


def format_ago(seconds: float) -> str:
    """``docker ps`` style human duration: ``Less than a second``, ``5 minutes``, ``2 days``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
