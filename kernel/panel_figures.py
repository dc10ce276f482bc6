"""The panel's reads from the runtime: a container's state, usage, new log lines, image
history and upper-dir size, through cellbox.runtime's public API only.

These run in the panel's worker thread (see :mod:`.panel`), never on the kernel's event
loop. Each is cheap except the upper dir's walk, which is spaced out in proportion to its
own cost.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellbox.runtime.containerstate import ContainerState, read_json
from cellbox.runtime.stats import cpu_percent

from . import panel_data as msgs
from .panel_data import Json
from .panel_logs import LogTail

if TYPE_CHECKING:
    from cellbox.runtime.container import Container
    from cellbox.runtime.stats import StatsSample

__all__ = [
    "Tracked",
    "container_info",
    "image_history",
    "read_new_logs",
    "upper_usage",
    "usage_sample",
]

# The upper dir's size is a walk of a tree the container fills (a pip install: tens of
# thousands of files). Walk at most this often, and back off in proportion to how long the
# last walk took, so that it costs at most 1 % of a core.
UPPER_MIN_PERIOD = 10.0
UPPER_COST_FACTOR = 100.0
UPPER_MAX_ENTRIES = 500_000

# Samples further apart than this many intervals (and seconds) do not make a CPU %: the
# sampling was paused, and an average over the pause is not what the chart means.
MAX_CPU_GAP = 3.0
MAX_CPU_GAP_SECONDS = 5.0


@dataclass
class Tracked:
    """What the sampler keeps about one container (bounded)."""

    container: Container
    history: int
    log_backlog: int
    samples: deque[Json] = field(init=False)
    recent_logs: deque[Json] = field(init=False)
    last_stats: StatsSample | None = None
    last_sampled: float = 0.0
    tail: LogTail | None = None
    skipped: int = 0
    layers_key: str | None = None
    layers: list[Json] = field(default_factory=list)
    upper_size: int | None = None
    upper_files: int | None = None
    upper_due: float = 0.0

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=self.history)
        self.recent_logs = deque(maxlen=self.log_backlog)

    def close(self) -> None:
        """Close the log fd (sampling stopped or the container went away)."""
        if self.tail is not None:
            self.tail.close()
            self.tail = None


def _state(container: Container) -> ContainerState:
    """The container's recorded state, read afresh (the kernel's object may be stale;
    the panel never changes it)."""
    try:
        return ContainerState.from_dict(read_json(container.directory / "state.json"))
    except FileNotFoundError:
        return ContainerState(status="removed")


def _status(state: ContainerState) -> str:
    if state.status == "running" and not state.alive():
        return "exited"  # PID 1 is gone; the runtime records it at its next look
    return state.status


def container_info(tracked: Tracked, now: float) -> Json:
    """The "Container" entry of the protocol for one container."""
    container = tracked.container
    config = container.config
    state = _state(container)
    status = _status(state)
    if tracked.layers_key != config.image_digest:
        tracked.layers = image_history(container)
        tracked.layers_key = config.image_digest
    if now >= tracked.upper_due:
        started = time.monotonic()
        tracked.upper_size, tracked.upper_files = upper_usage(container.upper_dir)
        cost = time.monotonic() - started
        tracked.upper_due = now + max(UPPER_MIN_PERIOD, cost * UPPER_COST_FACTOR)
    return msgs.container_entry(
        id=config.id,
        name=config.name,
        image=config.image,
        image_digest=config.image_digest,
        state=status,
        exit_code=state.exit_code,
        oom_killed=state.oom_killed,
        started_at=state.started_at,
        memory=config.memory,
        memory_swap=config.memory_swap,
        cpus=config.cpus,
        pids_limit=config.pids_limit,
        layers=tracked.layers,
        upper_size=tracked.upper_size,
        upper_files=tracked.upper_files,
    )


def usage_sample(tracked: Tracked, now: float, interval: float) -> Json | None:
    """A usage sample of a running container (also kept in its history), or None."""
    stats = tracked.container.stats()
    if not stats.running:
        return None
    previous = tracked.last_stats
    gap = max(MAX_CPU_GAP * interval, MAX_CPU_GAP_SECONDS)
    if previous is not None and now - tracked.last_sampled > gap:
        previous = None
    cpu = cpu_percent(previous, stats) if previous is not None else None
    tracked.last_stats, tracked.last_sampled = stats, now
    sample = msgs.sample_entry(
        t=now,
        cpu_percent=cpu,
        memory=stats.memory_usage,
        memory_limit=stats.memory_limit,
        pids=stats.pids,
        pids_limit=stats.pids_limit,
        oom_kills=stats.oom_kills,
    )
    tracked.samples.append(sample)
    return sample


def read_new_logs(tracked: Tracked) -> tuple[list[Json], int]:
    """The log lines written since the last call (the backlog on the first), and how many
    were skipped in a flood."""
    if tracked.tail is None:
        tracked.tail = LogTail(tracked.container.directory)
        tracked.recent_logs.clear()
        backlog = tracked.tail.start(tracked.log_backlog)
        entries = [_entry(r) for r in backlog]
        tracked.recent_logs.extend(entries)
        return [], 0  # the backlog goes out in snapshots, not as news
    records, skipped = tracked.tail.poll()
    entries = [_entry(r) for r in records]
    tracked.recent_logs.extend(entries)
    tracked.skipped += skipped
    return entries, skipped


def _entry(record: Any) -> Json:
    return msgs.log_entry(t=record.t, stream=record.stream, line=record.line, cell=record.cell)


def image_history(container: Container) -> list[Json]:
    """The container's image as ``docker history`` rows, top layer first.

    From the store (sizes and digests of the layers) when the image is still there; else
    from the image config the container keeps (sizes unknown).
    """
    try:
        from cellbox.runtime.images import history
        from cellbox.runtime.store import Store

        store = Store(container.settings.root)
        image = store.get_image(container.config.image_digest or container.config.image)
        entries = history(image)
    except Exception:
        return _history_from_config(container.image_config())
    return [
        msgs.layer_entry(
            created=getattr(e, "created", None),
            created_by=str(getattr(e, "created_by", "") or ""),
            size=getattr(e, "size", 0),
            digest=getattr(e, "digest", None),
            empty_layer=bool(getattr(e, "empty_layer", False)),
        )
        for e in entries
    ]


def _history_from_config(config: dict[str, Any]) -> list[Json]:
    history = config.get("history")
    if not isinstance(history, list):
        return []
    rows = []
    for item in history:
        if not isinstance(item, dict):
            continue
        rows.append(
            msgs.layer_entry(
                created=item.get("created") if isinstance(item.get("created"), str) else None,
                created_by=str(item.get("created_by") or ""),
                size=None,
                digest=None,
                empty_layer=item.get("empty_layer") is True,
            )
        )
    rows.reverse()  # top layer first, like docker history
    return rows


def upper_usage(upper: Path, max_entries: int = UPPER_MAX_ENTRIES) -> tuple[int, int]:
    """Apparent size in bytes and number of entries of a container's upper dir.

    Never follows a symlink (the tree is the container's). Stops counting after
    ``max_entries`` entries (the figures are then a lower bound).
    """
    size = files = 0
    stack = [os.fspath(upper)]
    while stack and files < max_entries:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                files += 1
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        size += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return size, files
