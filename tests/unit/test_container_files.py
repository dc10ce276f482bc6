"""``containerfiles``: the lean readers and writers of a container's files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cellbox.runtime import containerfiles
from cellbox.runtime.containerstate import ContainerConfig, NameIndex, resolve, write_json
from cellbox.runtime.errors import ContainerError, ContainerNotFound


@pytest.mark.parametrize("value", [
    {}, [], "text", 3, -0.5, 1e300, True, None,
    {"b": [1, 2.5, None, False, "é\n\"q\\", {"z": {}, "a": []}], "a": {"k": [[]]}},
    ContainerConfig(image="busybox", env=["A=1"], labels={"x": "ü"}).to_dict(),
])
def test_dump_json_writes_what_json_dumps_writes(value: object) -> None:
    assert containerfiles.dump_json(value) == json.dumps(value, indent=1, sort_keys=True)


def test_dump_json_refuses_what_it_cannot_write() -> None:
    with pytest.raises(TypeError):
        containerfiles.dump_json({1: "a"})
    with pytest.raises(TypeError):
        containerfiles.dump_json({"a": object()})
    with pytest.raises(ValueError):
        containerfiles.dump_json(float("nan"))


def test_load_json_reads_and_reports_damage(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    write_json(good, {"a": [1, "ü"]})
    bad.write_text('{"a": ')
    assert containerfiles.load_json(str(good)) == {"a": [1, "ü"]}
    with pytest.raises(ContainerError, match="is damaged"):
        containerfiles.load_json(str(bad))
    with pytest.raises(FileNotFoundError):
        containerfiles.load_json(str(tmp_path / "missing.json"))


def test_find_id_agrees_with_resolve(tmp_path: Path) -> None:
    ids = ["ab" + "0" * 62, "abd" + "1" * 61]
    for cid in ids:
        (tmp_path / cid).mkdir()
        (tmp_path / cid / "config.json").write_text("{}")
    index = NameIndex(tmp_path, tmp_path / "lock")
    with index.lock():
        index.claim("one", ids[0], set(ids))
    for key in ("one", ids[1], "abd"):
        assert containerfiles.find_id(str(tmp_path), key) == resolve(tmp_path, index, key)
    for key in ("ab", "nope", ""):
        with pytest.raises(ContainerNotFound):
            containerfiles.find_id(str(tmp_path), key)


def test_remove_tree_removes_everything_and_follows_no_symlink(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "file").write_text("x")
    doomed = tmp_path / "doomed"
    (doomed / "upper" / "etc").mkdir(parents=True)
    (doomed / "upper" / "etc" / "hosts").write_text("x")
    (doomed / "work" / "work").mkdir(parents=True)
    (doomed / "work" / "work").chmod(0)
    (doomed / "link").symlink_to(keep)
    (doomed / "upper" / "dirlink").symlink_to(keep, target_is_directory=True)
    containerfiles.remove_tree(str(doomed))
    assert not doomed.exists()
    assert (keep / "file").read_text() == "x"
    containerfiles.remove_tree(str(doomed))  # already gone: fine
    link = tmp_path / "alink"
    link.symlink_to(keep)
    containerfiles.remove_tree(str(link))
    assert not link.exists() and keep.exists()


def test_discard_tree_is_gone_soon_and_holds_none_of_our_fds(tmp_path: Path) -> None:
    doomed = tmp_path / "doomed"
    (doomed / "a" / "b").mkdir(parents=True)
    read_end, write_end = os.pipe()
    try:
        containerfiles.discard_tree(str(doomed))
        os.close(write_end)
        write_end = -1
        # The background remover got none of our fds: end-of-file at once.
        assert os.read(read_end, 1) == b""
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    import time

    deadline = time.monotonic() + 10
    while doomed.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not doomed.exists()
