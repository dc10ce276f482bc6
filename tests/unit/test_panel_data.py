"""The panel protocol's messages (kernel/panel_data.py): shapes, and what is not trusted."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cellbox.kernel import panel_data as m


def test_epoch_seconds_reads_the_runtime_s_timestamps() -> None:
    expected = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC).timestamp()
    assert m.epoch_seconds("2024-05-01T12:00:00.123456789Z") == pytest.approx(expected, abs=1e-6)
    assert m.epoch_seconds("2024-05-01T12:00:00Z") == pytest.approx(expected - 0.123456, abs=1e-6)
    assert m.epoch_seconds("2024-05-01T14:00:00.5+02:00") == pytest.approx(
        expected - 0.123456 + 0.5, abs=1e-6
    )


@pytest.mark.parametrize(
    "text", [None, "", "yesterday", "2024-05-01T12:00:00", "2024-13-01T00:00:00Z", "1.2.3"]
)
def test_epoch_seconds_refuses_what_it_cannot_place(text: str | None) -> None:
    assert m.epoch_seconds(text) is None


def test_sample_entry_cleans_figures() -> None:
    sample = m.sample_entry(
        t=100.12345, cpu_percent=12.3456, memory=5 << 20, memory_limit=64 << 20,
        pids=3, pids_limit=0, oom_kills=1,
    )
    assert sample == {
        "t": 100.123, "cpu": 12.35, "mem": 5 << 20, "mem_limit": 64 << 20,
        "pids": 3, "pids_limit": None, "oom_kills": 1,
    }
    odd = m.sample_entry(
        t=1, cpu_percent=float("nan"), memory=-1, memory_limit=None, pids=None,
        pids_limit=-1, oom_kills=0,
    )
    assert odd["cpu"] is None and odd["mem"] is None and odd["pids_limit"] is None


def test_log_entry_shapes_a_runtime_record() -> None:
    entry = m.log_entry(t="2024-05-01T12:00:00Z", stream="stderr", line="oops", cell="7")
    assert entry == {
        "t": pytest.approx(1714564800.0, abs=1e-6), "stream": "stderr", "line": "oops", "cell": 7,
    }
    assert m.log_entry(t=None, stream="weird", line="x", cell="a7")["stream"] == "stdout"
    assert m.log_entry(t=None, stream="stdout", line="x", cell="a7")["cell"] is None


def test_log_entry_shows_the_last_state_of_a_progress_bar() -> None:
    entry = m.log_entry(t=None, stream="stdout", line="10%\r50%\r100%\r", cell=None)
    assert entry["line"] == "100%"


def test_log_entry_cuts_a_huge_line() -> None:
    entry = m.log_entry(t=None, stream="stdout", line="x" * 100_000, cell=None)
    assert len(entry["line"]) < m.MAX_LINE_CHARS + 50
    assert entry["line"].endswith(f"[{100_000 - m.MAX_LINE_CHARS} more characters]")


def _container(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = dict(
        id="a" * 64, name="nb", image="docker.io/library/busybox:latest",
        image_digest="sha256:" + "1" * 64, state="running", exit_code=None, oom_killed=False,
        started_at="2024-05-01T12:00:00Z", memory=64 << 20, memory_swap=-1, cpus=0.5,
        pids_limit=64, layers=[], upper_size=10, upper_files=2,
    )
    fields.update(overrides)
    return m.container_entry(**fields)  # type: ignore[arg-type]


def test_container_entry() -> None:
    entry = _container()
    assert entry["limits"] == {"memory": 64 << 20, "memory_swap": -1, "cpus": 0.5, "pids": 64}
    assert entry["started_at"] == pytest.approx(1714564800.0, abs=1e-6)
    assert entry["upper"] == {"size": 10, "files": 2}
    # An exited container has no uptime.
    assert _container(state="exited", exit_code=137)["started_at"] is None
    assert _container(memory=None, cpus=0, pids_limit=None)["limits"] == {
        "memory": None, "memory_swap": -1, "cpus": None, "pids": None,
    }


def test_messages_carry_the_version_and_are_json() -> None:
    container = _container()
    layer = m.layer_entry(created=None, created_by='CMD ["sh"]', size=None, digest="",
                          empty_layer=True)
    assert layer == {"created": None, "created_by": 'CMD ["sh"]', "size": 0, "digest": None,
                     "empty_layer": True}
    messages = [
        m.snapshot_message(host_cpus=2, interval=1.0, history=300, containers=[container],
                           usage={"a" * 64: [{"t": 1}]}, logs={"a" * 64: ([], 3)}),
        m.containers_message([container]),
        m.containers_message([]),
        m.usage_message({"a" * 64: {"t": 1}}),
        m.logs_message("a" * 64, [{"line": "x"}], 2),
        m.error_message("boom"),
    ]
    for message in messages:
        assert message["version"] == m.PROTOCOL_VERSION
        json.dumps(message)
    snapshot = messages[0]
    assert snapshot["current"] == "a" * 64
    assert snapshot["logs"] == {"a" * 64: {"records": [], "skipped": 3}}
    assert messages[2]["current"] is None


def test_parse_client_message() -> None:
    default = m.Subscription()
    assert m.parse_client_message({"version": 1}, default) == ("open", m.Subscription(True, True))
    assert m.parse_client_message({"version": 1, "usage": True, "logs": False}, default) == (
        "open", m.Subscription(True, False),
    )
    assert m.parse_client_message({"type": "subscribe", "logs": False}, default) == (
        "subscribe", m.Subscription(True, False),
    )
    # A flag that is not a boolean keeps the current value.
    assert m.parse_client_message({"type": "subscribe", "usage": "no"}, default) == (
        "subscribe", default,
    )
    assert m.parse_client_message({"type": "refresh"}, default) == ("refresh", default)
    for junk in (None, [], "refresh", {"type": "shutdown"}, {}):
        assert m.parse_client_message(junk, default) is None
