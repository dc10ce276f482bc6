"""``display``: files from the exchange directory become display_data, and nothing else does."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
from cellbox.kernel.display import DisplayError, read_display, sniff, to_bundle
from cellbox.kernel.protocol import DisplayRequest

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
SCRIPT = Path(__file__).parents[2] / "kernel" / "bin" / "display"


def test_a_file_is_read_once_then_removed(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    assert read_display(tmp_path, DisplayRequest("a.png", None)) == PNG
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("name", ["..", ".", "a/b", ""])
def test_names_that_are_not_plain_file_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(DisplayError):
        read_display(tmp_path, DisplayRequest(name, None))


def test_a_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(secret)
    with pytest.raises(DisplayError, match="cannot open link"):
        read_display(out, DisplayRequest("link", "text/plain"))
    assert secret.read_text() == "host secret"


def test_a_fifo_or_a_directory_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("fifo", "dir"):
        with pytest.raises(DisplayError, match="not a regular file"):
            read_display(tmp_path, DisplayRequest(name, None))


def test_the_size_is_capped(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 1001)
    with pytest.raises(DisplayError, match="more than the limit"):
        read_display(tmp_path, DisplayRequest("big", None), max_bytes=1000)


def test_bundles_by_type() -> None:
    assert base64.b64decode(to_bundle(PNG, "image/png")["image/png"]) == PNG
    assert "image/jpeg" in to_bundle(JPEG, None)
    assert to_bundle(b'{"a": [1]}', None)["application/json"] == {"a": [1]}
    assert to_bundle(b"<svg xmlns='x'/>", None)["image/svg+xml"].startswith("<svg")
    assert to_bundle(b"# T", "text/markdown")["text/markdown"] == "# T"
    html = to_bundle(b"<b>x</b><script>bad()</script>", "text/html")["text/html"]
    assert "<b>x</b>" in html and "script" not in html
    assert to_bundle(b"plain", None) == {"text/plain": "plain"}


@pytest.mark.parametrize(
    ("data", "claimed", "message"),
    [
        (b"not a png", "image/png", "not a PNG"),
        (PNG, "image/jpeg", "not a JPEG"),
        (b"<div/>", "image/svg+xml", "not an SVG"),
        (b"{bad json", "application/json", "not valid JSON"),
        (b"\xff\xfe\x00binary", None, "cannot show"),
        (b"x", "application/x-evil", "cannot show"),
    ],
)
def test_claims_are_checked_against_the_bytes(data: bytes, claimed: str | None, message: str
                                              ) -> None:
    with pytest.raises(DisplayError, match=message):
        to_bundle(data, claimed)


def test_sniff() -> None:
    assert sniff(PNG) == "image/png"
    assert sniff(b"<?xml version='1.0'?><svg/>") == "image/svg+xml"
    assert sniff(b"<!DOCTYPE html><p>") == "text/html"
    assert sniff(b"[1, 2]") == "application/json"


def test_the_display_script_writes_a_file_and_a_record(tmp_path: Path) -> None:
    """kernel/bin/display in a plain sh, with the exchange directory moved to a temp dir."""
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "display"
    script.write_text(SCRIPT.read_text().replace("out=/.cellbox/out", f"out={out}"))
    (tmp_path / "pic.PNG").write_bytes(PNG)
    result = subprocess.run(["sh", str(script), str(tmp_path / "pic.PNG")], capture_output=True,
                            timeout=10)
    assert result.returncode == 0, result.stderr
    record = result.stdout
    assert record.startswith(b"\x1ecellbox-display display.") and record.endswith(
        b" image/png\x1e")
    name = record[len(b"\x1ecellbox-display "):].split(b" ")[0].decode()
    assert (out / name).read_bytes() == PNG
    piped = subprocess.run(["sh", str(script), "-t", "svg"], input=b"<svg/>", capture_output=True,
                           timeout=10)
    assert piped.stdout.endswith(b" image/svg+xml\x1e")
    bad = subprocess.run(["sh", str(script), "-t", "gif"], capture_output=True, timeout=10)
    assert bad.returncode == 2 and b"unknown type gif" in bad.stderr
    missing = subprocess.run(["sh", str(script), str(tmp_path / "none.png")], capture_output=True,
                             timeout=10)
    assert missing.returncode == 1 and b"no such file" in missing.stderr
