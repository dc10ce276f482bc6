"""Cells as a notebook user sees them: state, containers, the notebook's directory, output."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

from tests.kernel.driver import KernelDriver


def test_state_lives_across_cells(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none")
    kernel.ok("cd /tmp && export GREETING=hello && greet() { echo \"$GREETING, $1\"; }")
    kernel.ok("sleep 30 & echo started")
    result = kernel.ok("pwd; greet notebook; jobs")
    assert result.stdout.splitlines()[:2] == ["/tmp", "hello, notebook"]
    assert "sleep 30" in result.stdout
    kernel.ok("kill %1; wait")


def test_multiline_cells_heredocs_and_functions(kernel: KernelDriver) -> None:
    code = (
        "%container busybox --network none\n"
        "count() {\n"
        "  for i in 1 2 3; do\n"
        "    echo \"n=$i\"\n"
        "  done\n"
        "}\n"
        "count\n"
        "cat <<'EOF'\n"
        "a $literal line\n"
        "EOF\n"
    )
    result = kernel.ok(code)
    assert result.stdout == "n=1\nn=2\nn=3\na $literal line\n"


def test_a_failing_command_ends_the_cell_with_its_status(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none")
    result = kernel.run("echo before; (exit 3)")
    assert result.status == "error"
    assert result.error == ("ExitStatus", "exit status 3")
    assert result.stdout == "before\n"
    assert kernel.ok("echo after").stdout == "after\n"


def test_two_containers_in_one_notebook(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none")
    kernel.ok("echo in-busybox > /tmp/where")
    other = kernel.ok(
        "%%container debian:bookworm --network none\n"
        "python3 -c 'print(\"python here\")'; cat /tmp/where 2>&1 || true"
    )
    assert "python here" in other.stdout
    assert "in-busybox" not in other.stdout
    back = kernel.ok("cat /tmp/where; busybox | head -1")
    assert "in-busybox" in back.stdout and "BusyBox" in back.stdout
    listing = kernel.ok("%ps").stdout
    assert "busybox" in listing and "debian" in listing


def test_the_notebook_directory_is_the_working_directory(kernel: KernelDriver) -> None:
    (kernel.notebook / "data.csv").write_text("a,b\n1,2\n")
    kernel.ok("%container busybox --network none")
    result = kernel.ok("pwd; ls; cat data.csv; echo from-the-container > result.txt")
    assert result.stdout.splitlines()[0] == "/notebook"
    assert "data.csv" in result.stdout and "1,2" in result.stdout
    assert (kernel.notebook / "result.txt").read_text() == "from-the-container\n"


def test_a_cell_without_container_runs_in_the_default_image(kernel: KernelDriver) -> None:
    first = kernel.ok("cat /etc/os-release | grep -c Debian")
    assert "no %container yet" in first.stdout and "debian" in first.stdout
    second = kernel.ok("echo again")
    assert second.stdout == "again\n"  # said once only


def test_hostile_prompt_and_xtrace_do_not_break_cell_ends(kernel: KernelDriver) -> None:
    kernel.ok("%container debian:bookworm --network none")
    kernel.ok(
        "PS1='$(echo HOSTILE-PS1) \\x1e '; PS0='PS0-RAN'; PROMPT_COMMAND='echo PROMPT-RAN'; "
        "PS2='> '"
    )
    result = kernel.ok("echo one")
    assert result.stdout == "one\n"
    traced = kernel.ok("set -x; echo two")
    assert "echo two" in traced.stdout and "two\n" in traced.stdout
    assert "__cbx" not in traced.stdout  # the kernel's own wrapper is not traced
    still = kernel.ok("echo three; set +x")
    assert "three" in still.stdout
    # A fake end marker (wrong nonce) is just output; the cell goes on after it.
    fake = kernel.ok("printf '\\036%s 0\\036' 0123456789abcdef0123456789abcdef; echo after")
    assert fake.stdout.endswith("after\n")
    assert "HOSTILE" not in kernel.ok("echo four").text
    assert "PROMPT-RAN" not in kernel.ok("echo five").text


def test_utf8_progress_bars_and_partial_lines(kernel: KernelDriver) -> None:
    kernel.ok("%container debian:bookworm --network none")
    result = kernel.ok(
        "python3 -c \"import sys; sys.stdout.buffer.write('é€😀'.encode()[:3]); "
        "sys.stdout.flush(); sys.stdout.buffer.write('é€😀'.encode()[3:])\"; echo; "
        "for i in 1 2 3; do printf '\\r%s%%' $((i*33)); sleep 0.05; done; echo"
    )
    assert result.stdout.startswith("é€😀\n")
    assert "\r33%\r66%\r99%\n" in result.stdout


def test_large_output_streams_and_is_cut_with_a_note(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none")
    result = kernel.ok("yes 0123456789012345678901234567890123456789 | head -c 20000000")
    streams = result.of_type("stream")
    assert len(streams) >= 2  # streamed in pieces, not one message at the end
    assert len(result.stdout) <= 1 << 20
    assert "output cut after 1.0 MiB" in result.stderr
    assert "in the container's log" in result.stderr or "container's log" in result.stderr
    tail = kernel.ok("%logs --tail 2").stdout
    assert "0123456789012345678901234567890123456789" in tail


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def test_display_shows_a_png_and_html(kernel: KernelDriver) -> None:
    png = _png(4, 3)
    (kernel.notebook / "dot.png").write_bytes(png)
    kernel.ok("%container busybox --network none")
    result = kernel.ok("echo before; display dot.png; echo after")
    displays = result.of_type("display_data")
    assert len(displays) == 1
    assert base64.b64decode(displays[0]["content"]["data"]["image/png"]) == png
    assert result.stdout == "before\nafter\n"
    html = kernel.ok("echo '<b>bold</b><script>alert(1)</script>' | display -t html")
    shown = html.of_type("display_data")[0]["content"]["data"]["text/html"]
    assert "<b>bold</b>" in shown and "<script>" not in shown
    # The exchange directory is emptied as displays are shown.
    assert kernel.ok("ls /.cellbox/out | wc -l").stdout.strip() == "0"


def test_display_never_reads_outside_the_exchange_directory(
    kernel: KernelDriver, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    kernel.ok("%container busybox --network none")
    result = kernel.ok(
        f"ln -s {secret} /.cellbox/out/link; printf '\\036cellbox-display link\\036'; "
        "printf '\\036cellbox-display ..\\036'; echo done"
    )
    assert "host secret" not in result.text
    assert not result.of_type("display_data")
    assert "cannot open link" in result.stderr
