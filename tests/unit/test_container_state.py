"""Container config/state files, ids, names and the name index (runtime/containerstate.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cellbox.runtime.containerstate import (
    ContainerConfig,
    ContainerState,
    NameIndex,
    VolumeSpec,
    boot_id,
    list_ids,
    new_id,
    process_alive,
    process_start_ticks,
    random_name,
    resolve,
    validate_name,
    write_json,
)
from cellbox.runtime.errors import ConfigError, ContainerExists, ContainerNotFound
from cellbox.runtime.portmap import PortMapping


def test_ids_are_64_hex() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids)


def test_random_names_look_like_adjective_noun() -> None:
    assert re.fullmatch(r"[a-z]+_[a-z]+", random_name())


@pytest.mark.parametrize("name", ["web", "my-box.1", "A_b", "x" * 128])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "é", "x" * 129, "x" * 200, "ab" * 32,
                                  "web\n", "\nweb", "w\neb"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ConfigError, match="--name"):
        validate_name(name)


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    config = ContainerConfig(
        image="busybox", name="x", id=new_id(), entrypoint=["/bin/sh"], command=["-c", "id"],
        ports=[PortMapping(8080, 80)], volumes=[VolumeSpec("/srv", "/data", True)],
        memory=64 << 20, labels={"a": "b"},
    )
    write_json(tmp_path / "config.json", config.to_dict())
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["ports"][0]["host_port"] == 8080
    again = ContainerConfig.from_dict(data)
    assert again == config
    assert again.argv == ["/bin/sh", "-c", "id"]
    assert ContainerConfig.from_dict({**data, "from_the_future": 1}) == config


def test_kept_containers_run_nothing() -> None:
    assert ContainerConfig(image="x", command=["sleep", "1"], keep=True).argv == []


def test_write_json_is_atomic_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_living_process_is_recognised_and_a_dead_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ticks = process_start_ticks(child.pid)
        assert ticks is not None
        assert process_alive(child.pid, ticks, boot_id())
        assert not process_alive(child.pid, ticks + 1, boot_id())  # pid reused
        assert not process_alive(child.pid, ticks, "another-boot")  # rebooted
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid, ticks, boot_id())


def test_running_state_with_a_dead_pid_is_not_alive() -> None:
    state = ContainerState(status="running", pid=2**22 + 7, start_ticks=1, boot_id=boot_id())
    assert not state.alive()


def test_name_index_claims_releases_and_refuses_duplicates(tmp_path: Path) -> None:
    index = NameIndex(tmp_path, tmp_path / "lock")
    a, b = new_id(), new_id()
    with index.lock():
        assert index.claim("web", a, {a}) == "web"
    with index.lock(), pytest.raises(ContainerExists, match="web"):
        index.claim("web", b, {a, b})
    # A name whose owner is gone (a crash between steps) can be taken again.
    with index.lock():
        assert index.claim("web", b, {b}) == "web"
        index.release("web", a)  # not a's any more: kept
        assert index.lookup("web") == b
        index.release("web", b)
        assert index.lookup("web") is None
    with index.lock():
        random = index.claim(None, a, {a})
    assert re.fullmatch(r"[a-z]+_[a-z]+\d*", random)


def test_resolve_by_name_id_and_prefix(tmp_path: Path) -> None:
    index = NameIndex(tmp_path, tmp_path / "lock")
    ids = ["abc" + "0" * 61, "abd" + "0" * 61]
    for i in ids:
        (tmp_path / i).mkdir()
        (tmp_path / i / "config.json").write_text("{}")
    with index.lock():
        index.claim("one", ids[0], set(ids))
    assert resolve(tmp_path, index, "one") == ids[0]
    assert resolve(tmp_path, index, ids[1]) == ids[1]
    assert resolve(tmp_path, index, "abd") == ids[1]
    with pytest.raises(ContainerNotFound, match="matches 2"):
        resolve(tmp_path, index, "ab")
    with pytest.raises(ContainerNotFound, match="no such container"):
        resolve(tmp_path, index, "nope")
    assert sorted(list_ids(tmp_path)) == ids
