"""The init's JSON without the json package agrees with the json package."""

from __future__ import annotations

import json

import pytest
from cellbox.runtime import _leanjson

VALUES = [
    {"t": "2024-01-01T00:00:00.000000000Z", "stream": "stdout", "line": "héllo \"x\"\t\\ \x00 ☃"},
    {"a": [1, 2.5, None, True, False, {"b": []}], "c": {}},
    [],
    "plain",
    {"nested": {"deep": [[["x"]]]}, "n": -3, "big": 2**70},
]


@pytest.mark.parametrize("value", VALUES)
def test_dumps_is_what_json_loads(value: object) -> None:
    assert json.loads(_leanjson.dumps(value)) == value


@pytest.mark.parametrize("value", VALUES)
def test_loads_reads_what_json_dumps(value: object) -> None:
    assert _leanjson.loads(json.dumps(value)) == value
    assert _leanjson.loads(json.dumps(value, indent=2).encode() + b"\n") == value


def test_dumps_matches_json_dumps_for_log_records() -> None:
    record = VALUES[0]
    assert _leanjson.dumps(record) == json.dumps(record, ensure_ascii=False)


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "NaN", "[1,]"])
def test_bad_json_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        _leanjson.loads(text)


def test_unknown_types_are_refused() -> None:
    with pytest.raises(TypeError):
        _leanjson.dumps({"x": object()})
