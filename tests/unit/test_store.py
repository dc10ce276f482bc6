"""The store: layers and images added locally, lookups, tag, rmi, prune, leftovers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cellbox.runtime.errors import ImageNotFound, StoreError
from cellbox.runtime.images import Image, Layer, chain_ids, history, image_size
from cellbox.runtime.layers import ApplyOptions
from cellbox.runtime.store import Store

from tests.support.oci import Dir, File, tar_layer

BASE = tar_layer([Dir("etc"), File("etc/os-release", b"ID=test\n"), File("bin/sh", b"sh")])
TOP = tar_layer([File("app/main.py", b"print('hi')\n")])


def make_store(root: Path) -> Store:
    return Store(root, options=ApplyOptions(rootless=True))


def config_for(layers: list[Layer], created_by: list[str]) -> dict[str, object]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-06T07:08:09Z",
        "config": {"Cmd": ["sh"]},
        "history": [{"created": "2024-05-06T07:08:09Z", "created_by": c,
                     **({"empty_layer": True} if c.startswith("CMD") else {})}
                    for c in created_by],
    }


def two_layer_image(store: Store, name: str = "example.com/app:1") -> Image:
    base = store.add_layer(io.BytesIO(BASE), None)
    top = store.add_layer(io.BytesIO(TOP), base.chain_id)
    config = config_for([base, top], ["ADD rootfs /", "CMD [\"sh\"]", "COPY app /app"])
    return store.add_image(name, config, [base, top])


def test_add_layer_stores_blob_and_unpacked_dir(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    layer = store.add_layer(io.BytesIO(BASE), None)
    assert layer.chain_id == layer.diff_id
    assert (layer.path / "etc/os-release").read_text() == "ID=test\n"
    assert store.has_blob(layer.digest)
    info = json.loads((layer.path.parent / "layer.json").read_text())
    assert info["diff_id"] == layer.diff_id and info["content_size"] == 10
    assert os.listdir(tmp_path / "root" / "tmp") == []


def test_the_same_tar_twice_gives_the_same_layer(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    first = store.add_layer(io.BytesIO(BASE), None)
    second = store.add_layer([BASE[:1000], BASE[1000:]], None)
    assert first == second
    assert len(os.listdir(store.layers)) == 1


def test_a_layer_needs_its_parent_in_the_store(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    with pytest.raises(StoreError, match="not in the store"):
        store.add_layer(io.BytesIO(TOP), "sha256:" + "a" * 64)


def test_add_image_and_get_it_back(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    image = two_layer_image(store)
    again = store.get_image("example.com/app:1")
    assert again == image
    assert image.reference == "example.com/app:1"
    assert [layer.chain_id for layer in image.layers] == chain_ids(
        [layer.diff_id for layer in image.layers]
    )
    assert image.lower_dirs() == [image.layers[1].path, image.layers[0].path]
    manifest = json.loads(store.manifest_bytes(image))
    assert [d["digest"] for d in manifest["layers"]] == [la.digest for la in image.layers]
    assert image.config["rootfs"]["diff_ids"] == [la.diff_id for la in image.layers]
    # by manifest digest, by short id, by config digest prefix
    assert store.get_image(image.digest).digest == image.digest
    assert store.get_image(image.digest[7:19]).digest == image.digest
    assert store.get_image(image.config_digest[7:19]).digest == image.digest


def test_history_lists_every_step_newest_first(tmp_path: Path) -> None:
    image = two_layer_image(make_store(tmp_path / "root"))
    rows = history(image)
    assert [r.created_by for r in rows] == ["COPY app /app", 'CMD ["sh"]', "ADD rootfs /"]
    assert [r.empty_layer for r in rows] == [False, True, False]
    assert rows[0].digest == image.layers[1].digest and rows[1].digest is None
    assert rows[0].size == len(b"print('hi')\n") and rows[1].size == 0
    assert image_size(image) == 10 + 12


def test_an_unknown_image_says_how_to_pull_it(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    with pytest.raises(ImageNotFound, match="cellbox pull alpine:3"):
        store.get_image("alpine:3")


def test_a_corrupt_index_is_a_store_error(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    two_layer_image(store)
    store.index_path.write_text("{not json")
    with pytest.raises(StoreError, match=r"images\.json"):
        store.get_image("example.com/app:1")


def test_tag_and_untag(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    image = two_layer_image(store)
    store.tag("example.com/app:1", "other/name:2")
    assert store.get_image("other/name:2").digest == image.digest
    names = [i.reference for i in store.images()]
    assert names == ["docker.io/other/name:2", "example.com/app:1"]
    report = store.remove("other/name:2")
    assert report.untagged == ["docker.io/other/name:2"] and not report.deleted
    assert store.get_image("example.com/app:1").layers[0].path.is_dir()


def test_rmi_removes_what_only_that_image_used(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    image = two_layer_image(store)
    base = image.layers[0]
    # a second image sharing the base layer
    other = store.add_layer(io.BytesIO(tar_layer([File("other")])), base.chain_id)
    store.add_image("example.com/other:1", config_for([base, other], ["a", "b"]), [base, other])
    report = store.remove("example.com/app:1")
    assert report.deleted == [image.digest]
    assert report.layers == [image.layers[1].chain_id]
    assert base.path.is_dir() and not image.layers[1].path.exists()
    assert not store.has_blob(image.layers[1].digest) and store.has_blob(base.digest)
    assert not store.has_blob(image.digest) and not store.has_blob(image.config_digest)
    store.remove("example.com/other:1")
    assert os.listdir(store.layers) == [] and os.listdir(store.blobs) == []


def _container(store: Store, image: Image, name: str = "c1") -> None:
    directory = store.containers / ("f" * 64)
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({
        "name": name,
        "image_digest": image.digest,
        "layers": [layer.chain_id for layer in image.layers],
    }))


def test_rmi_refuses_an_image_a_container_uses_unless_forced(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    image = two_layer_image(store)
    _container(store, image, "busy_bee")
    with pytest.raises(StoreError, match="busy_bee"):
        store.remove("example.com/app:1")
    report = store.remove("example.com/app:1", force=True)
    assert report.untagged == ["example.com/app:1"] and not report.deleted
    # untagged but kept, with its layers, for the container
    assert all(layer.path.is_dir() for layer in image.layers)
    assert [i.reference for i in store.images()] == [""]
    assert not store.prune().layers  # still in use
    for entry in store.containers.iterdir():
        (entry / "config.json").unlink()
        entry.rmdir()
    report2 = store.prune()
    assert report2.images == [image.digest]
    assert sorted(report2.layers) == sorted(la.chain_id for la in image.layers)
    assert os.listdir(store.blobs) == []


def test_prune_keeps_named_images_and_given_chain_ids(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    image = two_layer_image(store)
    loose = store.add_layer(io.BytesIO(tar_layer([File("loose")])), None)
    kept = store.add_layer(io.BytesIO(tar_layer([File("kept")])), None)
    report = store.prune(in_use_chain_ids=[kept.chain_id])
    assert report.layers == [loose.chain_id]
    assert report.blobs == [loose.digest]
    assert report.freed > 0
    assert store.get_image("example.com/app:1").digest == image.digest
    assert kept.path.is_dir()


def test_leftovers_of_a_killed_writer_are_invisible_and_cleaned(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    two_layer_image(store)
    leftover = store.tmp / "txn-killed"
    (leftover / "layer-x" / "diff").mkdir(parents=True)
    (leftover / "blob-y").write_bytes(b"half a blob")
    assert len(store.images()) == 1
    store.add_layer(io.BytesIO(TOP), None)  # the next writer finds the store idle
    assert not leftover.exists()
    (store.tmp / "txn-again").mkdir()
    assert "txn-again" in store.prune().temp


def test_a_recent_foreign_temp_file_is_left_alone(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    store.tmp.mkdir(parents=True)
    (store.tmp / "commit-123.tar.gz").write_bytes(b"being written")
    store.prune()
    assert (store.tmp / "commit-123.tar.gz").exists()


def test_add_image_checks_the_layers(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    base = store.add_layer(io.BytesIO(BASE), None)
    with pytest.raises(StoreError, match="diff_ids"):
        store.add_image("x/y:1", {"rootfs": {"type": "layers", "diff_ids": []}}, [base])
    ghost = Layer("sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "2" * 64, 1,
                  tmp_path / "nowhere")
    with pytest.raises(StoreError, match="not in the store"):
        store.add_image("x/y:1", {}, [ghost])
    assert not store.index_path.exists()


def test_two_processes_adding_the_same_layer(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (tmp_path / "layer.tar").write_bytes(BASE)
    code = (
        "import sys; from pathlib import Path; "
        "from cellbox.runtime.store import Store; "
        "from cellbox.runtime.layers import ApplyOptions; "
        "s = Store(Path(sys.argv[1]), options=ApplyOptions(rootless=True)); "
        "l = s.add_layer(open(sys.argv[2], 'rb'), None); print(l.chain_id)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root), str(tmp_path / "layer.tar")],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outs) == 1
    assert os.listdir(root / "layers") == [outs.pop()[7:]]
    assert os.listdir(root / "tmp") == []


def test_prune_drops_the_lock_files_of_content_it_removed(tmp_path: Path) -> None:
    store = make_store(tmp_path / "root")
    layer = store.add_layer(io.BytesIO(BASE), None)
    assert store.lock_path("blob", layer.digest).exists()
    store.prune()
    assert not store.lock_path("blob", layer.digest).exists()
    assert (store.locks / "gc.lock").exists()
