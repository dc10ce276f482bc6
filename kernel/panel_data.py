"""The messages of the ``cellbox`` comm (docs/protocol.md), built from runtime figures. Pure.

Every function here turns figures the runtime gave (a container's config and state, a
usage sample, log records, image history) into the JSON-able dicts the JupyterLab panel
receives, or checks a message the panel sent. Nothing here reads a file or a clock, so
each message shape is unit-tested (tests/unit/test_panel_data.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "MAX_LINE_CHARS",
    "PROTOCOL_VERSION",
    "Subscription",
    "container_entry",
    "containers_message",
    "epoch_seconds",
    "error_message",
    "layer_entry",
    "log_entry",
    "logs_message",
    "parse_client_message",
    "sample_entry",
    "snapshot_message",
    "usage_message",
]

PROTOCOL_VERSION = 1

# A log line longer than this is cut for the panel (the log file keeps it whole): one
# minified JSON blob printed by a cell must not become a megabyte comm message.
MAX_LINE_CHARS = 4000

Json = dict[str, Any]


def epoch_seconds(text: str | None) -> float | None:
    """An RFC 3339 time (``2024-05-01T12:00:00.123456789Z``) as seconds since the epoch."""
    if not text:
        return None
    head, dot, rest = text.partition(".")
    if dot:
        # Python 3.11's fromisoformat takes at most 6 fractional digits.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)] or '0'}{rest[digits:]}"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None  # a time without a zone is ambiguous: better none than a wrong one
    return when.timestamp()


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value) if value >= 0 else None


def _limit(value: object) -> int | None:
    # 0 and negative numbers mean "no limit" in the runtime's figures (-1: unlimited swap).
    n = _count(value)
    return n if n else None


def layer_entry(
    *, created: str | None, created_by: str, size: int | None, digest: str | None,
    empty_layer: bool,
) -> Json:
    """One row of the image's history, like ``docker history`` (docs/protocol.md, "Layer")."""
    return {
        "created": created or None,
        "created_by": created_by,
        "size": _count(size) or 0,
        "digest": digest or None,
        "empty_layer": bool(empty_layer),
    }


def container_entry(
    *,
    id: str,
    name: str,
    image: str,
    image_digest: str,
    state: str,
    exit_code: int | None,
    oom_killed: bool,
    started_at: str | None,
    memory: int | None,
    memory_swap: int | None,
    cpus: float | None,
    pids_limit: int | None,
    layers: Sequence[Json],
    upper_size: int | None,
    upper_files: int | None,
) -> Json:
    """One container (docs/protocol.md, "Container"); ``layers`` top first."""
    cpu_limit = cpus if isinstance(cpus, int | float) and cpus > 0 else None
    swap = memory_swap if isinstance(memory_swap, int) and memory_swap != 0 else None
    return {
        "id": id,
        "name": name,
        "image": image,
        "image_digest": image_digest,
        "state": state,
        "exit_code": exit_code,
        "oom_killed": bool(oom_killed),
        "started_at": epoch_seconds(started_at) if state == "running" else None,
        "limits": {
            "memory": _limit(memory),
            "memory_swap": swap,
            "cpus": cpu_limit,
            "pids": _limit(pids_limit),
        },
        "layers": list(layers),
        "upper": {"size": _count(upper_size), "files": _count(upper_files)},
    }


def sample_entry(
    *,
    t: float,
    cpu_percent: float | None,
    memory: int | None,
    memory_limit: int | None,
    pids: int | None,
    pids_limit: int | None,
    oom_kills: int,
) -> Json:
    """One usage sample (docs/protocol.md, "Sample")."""
    cpu = None
    if cpu_percent is not None and math.isfinite(cpu_percent) and cpu_percent >= 0:
        cpu = round(cpu_percent, 2)
    return {
        "t": round(t, 3),
        "cpu": cpu,
        "mem": _count(memory),
        "mem_limit": _limit(memory_limit),
        "pids": _count(pids),
        "pids_limit": _limit(pids_limit),
        "oom_kills": _count(oom_kills) or 0,
    }


def log_entry(
    *, t: str | None, stream: str, line: str, cell: str | int | None
) -> Json:
    """One log line (docs/protocol.md, "LogRecord"). A progress bar's ``\\r`` rewrites
    show as their last state; an over-long line is cut with a note."""
    if "\r" in line:
        pieces = [p for p in line.split("\r") if p]
        line = pieces[-1] if pieces else ""
    if len(line) > MAX_LINE_CHARS:
        line = f"{line[:MAX_LINE_CHARS]}… [{len(line) - MAX_LINE_CHARS} more characters]"
    cell_number: int | None = None
    if isinstance(cell, int) and not isinstance(cell, bool):
        cell_number = cell
    elif isinstance(cell, str) and cell.isdigit():
        cell_number = int(cell)
    return {
        "t": epoch_seconds(t) or 0.0,
        "stream": "stderr" if stream == "stderr" else "stdout",
        "line": line,
        "cell": cell_number,
    }


def _message(kind: str, **fields: Any) -> Json:
    return {"version": PROTOCOL_VERSION, "type": kind, **fields}


def snapshot_message(
    *,
    host_cpus: int,
    interval: float,
    history: int,
    containers: Sequence[Json],
    usage: Mapping[str, Iterable[Json]],
    logs: Mapping[str, tuple[Iterable[Json], int]],
) -> Json:
    """Everything the panel needs to draw itself (sent when the comm opens)."""
    return _message(
        "snapshot",
        kernel={"host_cpus": host_cpus, "interval": interval, "history": history},
        current=containers[0]["id"] if containers else None,
        containers=list(containers),
        usage={cid: list(samples) for cid, samples in usage.items()},
        logs={
            cid: {"records": list(records), "skipped": skipped}
            for cid, (records, skipped) in logs.items()
        },
    )


def containers_message(containers: Sequence[Json]) -> Json:
    """The notebook's containers changed (a new one, a state, a size)."""
    return _message(
        "containers",
        current=containers[0]["id"] if containers else None,
        containers=list(containers),
    )


def usage_message(samples: Mapping[str, Json]) -> Json:
    """One sample per running container, every interval."""
    return _message("usage", samples=dict(samples))


def logs_message(container_id: str, records: Sequence[Json], skipped: int = 0) -> Json:
    """New log lines of one container; ``skipped`` lines were left out (a flood)."""
    return _message("logs", container=container_id, records=list(records), skipped=skipped)


def error_message(text: str) -> Json:
    """Something the panel should show (the comm stays open)."""
    return _message("error", message=text)


@dataclass(frozen=True)
class Subscription:
    """What one comm wants pushed."""

    usage: bool = True
    logs: bool = True


def _flag(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    return value if isinstance(value, bool) else default


def parse_client_message(
    data: object, current: Subscription
) -> tuple[str, Subscription] | None:
    """Check a message from the panel: ``("open" | "subscribe" | "refresh", subscription)``,
    or None for one this version does not know (it is ignored, as docs/protocol.md says).

    The comm_open data (``{"version": 1, "usage": ..., "logs": ...}``) is parsed with
    ``current`` = the default subscription and comes back as ``"open"``.
    """
    if not isinstance(data, Mapping):
        return None
    kind = data.get("type", "open" if "version" in data else None)
    if kind in ("open", "subscribe"):
        return kind, Subscription(
            usage=_flag(data, "usage", current.usage), logs=_flag(data, "logs", current.logs)
        )
    if kind == "refresh":
        return "refresh", current
    return None
