"""The upper dir as a deterministic OCI layer (runtime/commit.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from cellbox.runtime.commit import apply_changes, commit_config, default_epoch, write_layer
from cellbox.runtime.errors import ConfigError, ContainerError


def can_mknod_whiteout(tmp: Path) -> bool:
    try:
        os.mknod(tmp / ".probe", stat.S_IFCHR | 0o600, 0)
    except PermissionError:
        return False
    os.unlink(tmp / ".probe")
    return True


def make_upper(root: Path) -> Path:
    upper = root / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "motd").write_text("hello\n")
    (upper / "data" / "sub").mkdir(parents=True)
    (upper / "data" / "sub" / "big.bin").write_bytes(os.urandom(300_000))
    (upper / "data" / "a").write_text("a")
    os.link(upper / "data" / "a", upper / "data" / "z-link")
    (upper / "data" / "shadow").symlink_to("/etc/shadow")
    (upper / ("n" * 120)).write_text("long name")
    os.chmod(upper / "etc" / "motd", 0o4755)
    return upper


def members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return tar.getmembers()


def layer_bytes(upper: Path, **kw: object) -> tuple[bytes, object]:
    out = io.BytesIO()
    digests = write_layer(upper, out, **kw)  # type: ignore[arg-type]
    return out.getvalue(), digests


def test_layer_content_and_digests(tmp_path: Path) -> None:
    upper = make_upper(tmp_path)
    blob, digests = layer_bytes(upper)
    assert digests.digest == "sha256:" + hashlib.sha256(blob).hexdigest()  # type: ignore[attr-defined]
    assert digests.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()  # type: ignore[attr-defined]
    assert digests.size == len(blob)  # type: ignore[attr-defined]
    by_name = {m.name: m for m in members(blob)}
    names = [m.name for m in members(blob)]
    assert names == sorted(names, key=lambda n: [os.fsencode(p) for p in n.split("/")])
    assert by_name["data/shadow"].issym() and by_name["data/shadow"].linkname == "/etc/shadow"
    assert by_name["data/z-link"].islnk() and by_name["data/z-link"].linkname == "data/a"
    assert by_name["data/sub/big.bin"].size == 300_000
    assert by_name["etc/motd"].mode == 0o4755
    assert by_name["n" * 120].isfile()  # a long name, via PAX
    for m in by_name.values():
        assert m.mtime == 0 and m.uname == "" and m.gname == ""
        assert "atime" not in m.pax_headers and "ctime" not in m.pax_headers
    short = by_name["etc/motd"]
    assert short.pax_headers == {}  # PAX only where needed


def test_same_upper_same_digest_and_mtime_clamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    upper = make_upper(tmp_path)
    first, d1 = layer_bytes(upper)
    os.utime(upper / "etc" / "motd", (1, 1))  # older than the epoch: kept as is
    os.utime(upper / "etc" / "motd")  # touched now: clamped, so no change at all
    second, d2 = layer_bytes(upper)
    assert first == second and d1 == d2
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert default_epoch() == 1700000000
    clamped = {m.name: m.mtime for m in members(layer_bytes(upper)[0])}
    assert set(clamped.values()) == {1700000000}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(ConfigError):
        default_epoch()


def test_whiteouts_and_opaque_dirs_become_oci_markers(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    if not can_mknod_whiteout(upper):
        pytest.skip("cannot make a whiteout device here")
    os.mknod(upper / "etc" / "gone", stat.S_IFCHR | 0o600, 0)
    (upper / "opaque").mkdir()
    (upper / "opaque" / "new").write_text("n")
    try:
        os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    except PermissionError:
        pytest.skip("trusted.* xattrs need root")
    (upper / "uopaque").mkdir()
    os.setxattr(upper / "uopaque", "user.overlay.opaque", b"y")
    names = [m.name for m in members(layer_bytes(upper)[0])]
    assert "etc/.wh.gone" in names and "etc/gone" not in names
    assert names.index("opaque/.wh..wh..opq") == names.index("opaque") + 1
    assert "opaque/new" in names
    assert "uopaque/.wh..wh..opq" in names


def test_xattrs_kept_and_overlay_internals_dropped(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "f").write_text("x")
    os.setxattr(upper / "f", "user.note", b"hi")
    os.setxattr(upper / "f", "trusted.overlay.origin", b"\x00abc")
    info = next(m for m in members(layer_bytes(upper)[0]) if m.name == "f")
    assert info.pax_headers == {"SCHILY.xattr.user.note": "hi"}


def test_redirected_dirs_are_refused(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "user.overlay.redirect", b"/old")
    with pytest.raises(ContainerError, match="redirect_dir"):
        write_layer(upper, None)


def test_a_name_that_reads_as_a_whiteout_is_refused(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / ".wh.passwd").write_text("")
    with pytest.raises(ContainerError, match=r"\.wh\."):
        write_layer(upper, None)


def test_excluded_paths_are_left_out(tmp_path: Path) -> None:
    upper = make_upper(tmp_path)
    (upper / ".cellbox" / "in").mkdir(parents=True)
    names = [m.name for m in members(layer_bytes(upper, exclude={"/.cellbox", "/data"})[0])]
    assert not any(n.startswith((".cellbox", "data")) for n in names)
    assert "etc/motd" in names


def test_changes_apply_like_docker_commit() -> None:
    base = {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"]}
    out = apply_changes(base, ['CMD ["python3", "-V"]', "ENTRYPOINT /start", "ENV A=2 B=3",
                               "WORKDIR /app", "USER 1000", "LABEL x=y", "EXPOSE 80 53/udp"])
    assert out["Cmd"] == ["python3", "-V"]
    assert out["Entrypoint"] == ["/bin/sh", "-c", "/start"]
    assert out["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert (out["WorkingDir"], out["User"], out["Labels"]) == ("/app", "1000", {"x": "y"})
    assert out["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert base == {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"]}  # not modified
    for bad in ["RUN make", "CMD", 'CMD ["x", 1]', "WORKDIR rel", "ENV novalue"]:
        with pytest.raises(ConfigError):
            apply_changes(base, [bad])


def test_commit_config_appends_diff_id_and_history() -> None:
    parent = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]},
              "history": [{"created_by": "base"}]}
    config = commit_config(parent, "sha256:b", created="2024-01-01T00:00:00Z",
                           created_by="cellbox commit box", comment="msg",
                           changes=['CMD ["x"]'])
    assert config["rootfs"]["diff_ids"] == ["sha256:a", "sha256:b"]
    assert config["history"][-1] == {"created": "2024-01-01T00:00:00Z",
                                     "created_by": "cellbox commit box", "comment": "msg"}
    assert config["config"]["Cmd"] == ["x"]
    assert parent["rootfs"]["diff_ids"] == ["sha256:a"]  # type: ignore[index]
