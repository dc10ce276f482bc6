"""The comm target ``cellbox``: feeds the JupyterLab panel its containers, layers, logs and
usage (the messages are in docs/protocol.md, built by :mod:`.panel_data`).

The kernel wires it up with two lines::

    self.panel = Panel(self.session.containers)   # a callable: containers, current first
    self.panel.register(self)                      # the kernel's comm manager gets "cellbox"

Cost: nothing runs while no comm is open. The first comm starts one asyncio task in the
kernel's event loop; each interval (1 s) it hands the sampling (cgroup files, the log's
new bytes, at times a walk of the upper dir) to a worker thread, so the loop never waits
on a file, and sends what changed. The last comm closing ends the task and closes the log
fds. What the kernel keeps is bounded: ``history`` samples and ``log_backlog`` lines per
container, forgotten with the container.

Ordering: all of the sampler's state is touched only inside the worker thread, and read on
the loop only between two samplings (the task awaits the thread), so no lock is needed. A
comm that opens is answered with a snapshot right after the next sampling (it wakes the
task early), and only from then on gets the deltas, so it never sees a line twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import panel_data as msgs
from .panel_data import Json, Subscription
from .panel_figures import Tracked, container_info, read_new_logs, usage_sample

if TYPE_CHECKING:
    from cellbox.runtime.container import Container

__all__ = ["COMM_TARGET", "Panel"]

COMM_TARGET = "cellbox"
log = logging.getLogger("cellbox.kernel.panel")

ContainersSource = Callable[[], "Sequence[Container]"]

@dataclass
class _Round:
    """What one sampling produced, for the loop to send."""

    containers: list[Json]
    samples: dict[str, Json]
    logs: dict[str, tuple[list[Json], int]]
    error: str | None = None


class Panel:
    """The kernel side of the ``cellbox`` comm. See the module docstring."""

    def __init__(
        self,
        containers: ContainersSource,
        *,
        interval: float = 1.0,
        history: int = 300,
        log_backlog: int = 500,
    ) -> None:
        self._containers = containers
        self.interval = interval
        self.history = history
        self.log_backlog = log_backlog
        self._comms: dict[str, tuple[Any, Subscription]] = {}
        self._pending: dict[str, Any] = {}  # comms waiting for their snapshot
        self._tracked: dict[str, Tracked] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._last_containers: list[Json] | None = None
        self._last_error: str | None = None
        self.rounds = 0  # samplings done since the kernel started (for tests and benches)

    # -- wiring ------------------------------------------------------------------------

    def register(self, kernel: Any) -> None:
        """Register the ``cellbox`` target with the kernel's comm manager (made if the
        kernel has none yet, with its shell handlers for comm_open/msg/close)."""
        manager = getattr(kernel, "comm_manager", None)
        if manager is None:
            from ipykernel.comm import CommManager

            manager = CommManager(parent=kernel, kernel=kernel)  # type: ignore[no-untyped-call]
            kernel.comm_manager = manager
            for msg_type in ("comm_open", "comm_msg", "comm_close"):
                kernel.shell_handlers[msg_type] = getattr(manager, msg_type)
        manager.register_target(COMM_TARGET, self._on_open)

    @property
    def listening(self) -> bool:
        """Whether any comm is open (and so the sampler runs)."""
        return bool(self._comms)

    def close(self) -> None:
        """Stop sampling and close every comm (the kernel is shutting down)."""
        for comm, _ in list(self._comms.values()):
            with contextlib.suppress(Exception):
                comm.close()
        self._comms.clear()
        self._pending.clear()
        self._stop()

    # -- comm handlers (called on the kernel's event loop) -----------------------------

    def _on_open(self, comm: Any, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data", {})
        parsed = msgs.parse_client_message(data, Subscription())
        version = data.get("version") if isinstance(data, dict) else None
        if parsed is None or version != msgs.PROTOCOL_VERSION:
            comm.send(
                msgs.error_message(
                    f"this kernel speaks panel protocol {msgs.PROTOCOL_VERSION}, the panel "
                    f"{version!r}: install matching versions of cellbox and its extension"
                )
            )
            comm.close()
            return
        self._comms[comm.comm_id] = (comm, parsed[1])
        self._pending[comm.comm_id] = comm
        comm.on_msg(self._on_msg)
        comm.on_close(self._on_close)
        self._start()

    def _on_msg(self, msg: dict[str, Any]) -> None:
        content = msg.get("content", {})
        comm_id = content.get("comm_id")
        entry = self._comms.get(comm_id)
        if entry is None:
            return
        comm, current = entry
        parsed = msgs.parse_client_message(content.get("data"), current)
        if parsed is None:
            return  # a message a newer panel sends: ignored, as the protocol says
        kind, subscription = parsed
        self._comms[comm_id] = (comm, subscription)
        if kind == "refresh" or (subscription.logs and not current.logs):
            # A snapshot brings the log backlog this comm did not get while it was not
            # subscribed to logs.
            self._pending[comm_id] = comm
        if self._wake is not None:
            self._wake.set()

    def _on_close(self, msg: dict[str, Any]) -> None:
        comm_id = msg.get("content", {}).get("comm_id")
        self._comms.pop(comm_id, None)
        self._pending.pop(comm_id, None)
        if not self._comms:
            self._stop()

    # -- the sampler ---------------------------------------------------------------

    def _start(self) -> None:
        if self._wake is not None:
            self._wake.set()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._wake.set()  # the first comm wants its snapshot now
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._wake = None
        for tracked in self._tracked.values():
            tracked.close()
            tracked.last_stats = None  # a CPU % across the pause would mean nothing
        self._last_containers = None

    def _wants(self) -> Subscription:
        subs = [sub for _, sub in self._comms.values()]
        return Subscription(usage=any(s.usage for s in subs), logs=any(s.logs for s in subs))

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        try:
            while self._comms:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.interval)
                wake.clear()
                if not self._comms:
                    break
                containers = list(self._containers())
                wants = self._wants()
                result = await asyncio.to_thread(self._sample, containers, wants)
                self.rounds += 1
                self._publish(result)
        except asyncio.CancelledError:
            raise
        except Exception:  # never let the panel take the kernel down
            log.exception("the cellbox panel's sampler failed")

    def _sample(self, containers: list[Container], wants: Subscription) -> _Round:
        """One sampling; runs in a worker thread (see the module docstring)."""
        now = time.time()
        infos: list[Json] = []
        samples: dict[str, Json] = {}
        logs: dict[str, tuple[list[Json], int]] = {}
        error: str | None = None
        seen: set[str] = set()
        for container in containers:
            cid = container.id
            if cid in seen:
                continue
            seen.add(cid)
            tracked = self._tracked.get(cid)
            if tracked is None or tracked.container is not container:
                if tracked is not None:
                    tracked.close()
                tracked = Tracked(container, self.history, self.log_backlog)
                self._tracked[cid] = tracked
            try:
                info = container_info(tracked, now)
                infos.append(info)
                if wants.usage and info["state"] == "running":
                    sample = usage_sample(tracked, now, self.interval)
                    if sample is not None:
                        samples[cid] = sample
                if wants.logs:
                    logs[cid] = read_new_logs(tracked)
                elif tracked.tail is not None:
                    tracked.close()
            except Exception as exc:  # a container removed under us, a damaged file...
                log.debug("panel: sampling %s failed", cid[:12], exc_info=True)
                error = f"cannot read container {container.name}: {exc}"
        for cid in list(self._tracked):
            if cid not in seen:
                self._tracked.pop(cid).close()
        return _Round(infos, samples, logs, error)

    def _publish(self, result: _Round) -> None:
        """Send the round's news to the comms that want it; snapshots to new comms."""
        pending = dict(self._pending)
        self._pending.clear()
        established = {
            cid: entry for cid, entry in self._comms.items() if cid not in pending
        }
        if result.containers != self._last_containers:
            self._send_all(established, msgs.containers_message(result.containers))
            self._last_containers = result.containers
        if result.samples:
            message = msgs.usage_message(result.samples)
            self._send_all({k: v for k, v in established.items() if v[1].usage}, message)
        for cid, (records, skipped) in result.logs.items():
            if records or skipped:
                message = msgs.logs_message(cid, records, skipped)
                self._send_all({k: v for k, v in established.items() if v[1].logs}, message)
        if result.error != self._last_error and result.error is not None:
            self._send_all(self._comms, msgs.error_message(result.error))
        self._last_error = result.error
        for comm_id, comm in pending.items():
            if comm_id in self._comms:
                self._send(comm, self._snapshot(result, self._comms[comm_id][1]))

    def _snapshot(self, result: _Round, subscription: Subscription) -> Json:
        ids = [info["id"] for info in result.containers]
        tracked = {cid: self._tracked[cid] for cid in ids if cid in self._tracked}
        return msgs.snapshot_message(
            host_cpus=os.cpu_count() or 1,
            interval=self.interval,
            history=self.history,
            containers=result.containers,
            usage={cid: list(t.samples) for cid, t in tracked.items()},
            logs=(
                {cid: (list(t.recent_logs), t.skipped) for cid, t in tracked.items()}
                if subscription.logs
                else {}
            ),
        )

    def _send_all(self, comms: dict[str, tuple[Any, Subscription]], message: Json) -> None:
        for comm, _ in comms.values():
            self._send(comm, message)

    def _send(self, comm: Any, message: Json) -> None:
        try:
            comm.send(message)
        except Exception:  # a comm whose frontend went away: its close will follow
            log.debug("panel: send failed", exc_info=True)

