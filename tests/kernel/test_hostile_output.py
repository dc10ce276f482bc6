"""A hostile container's rich output: what the frontend receives is safe and bounded.

The images come from tests/support/hostile.py, pushed to the session's registry and pulled
by ``%container`` like any user's image.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.kernel.driver import KernelDriver
from tests.support.hostile import Cell, Frontend, push_hostile
from tests.support.registry import RegistryServer

ACTIVE = [
    "<script", "onerror", "onload", "onclick", "<iframe", "javascript:", "JaVaScRiPt",
    "data:text/html", "<form", "<input", "<object", "<style", "style=", "<base", "<meta",
    "foreignObject", "SCRIPT-RAN", "ONERROR-RAN", "SVGSCRIPT", "SVGONLOAD", "SVGLINK",
    "SVGINHTML", "MDSCRIPT", "MDLINK", "MDONERROR", "NOTPNG", "JS-RAN", "IFRAME", "FORM",
    "OBJECT", "BASE/", "META", "application/javascript",
]


@pytest.fixture(scope="module")
def hostile(registry: RegistryServer) -> dict[str, str]:
    """The hostile images, pushed to the session registry: name -> reference."""
    return push_hostile(registry)


def shown(cell: Cell) -> str:
    """What the frontend renders as markup or script from the cell's display_data, as one
    string (text/plain is shown as text: a ``<script>`` there is only letters)."""
    return json.dumps([
        {"data": {k: v for k, v in c["data"].items() if k != "text/plain"},
         "metadata": c["metadata"]}
        for c in cell.of("display_data")
    ])


def table_cells(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    return [re.findall(r"<t[hd]>(.*?)</t[hd]>", row, re.S) for row in rows]


def test_hostile_display_items_reach_the_frontend_sanitised(
    kernel: KernelDriver, hostile: dict[str, str]
) -> None:
    fe = Frontend(kernel)
    cell = fe.run(f"%container {hostile['display']} --network none\nhostile-display")
    assert cell.status == "ok", cell.text
    assert "HOSTILE-DISPLAY-DONE" in cell.stdout
    everything = shown(cell) + cell.text
    for bad in ACTIVE:
        assert bad not in shown(cell), f"{bad!r} reached the frontend"
    # What a person should still see.
    for good in ("VISIBLE-TEXT", "VISIBLE-HEADING", "VISIBLE-MARKDOWN", "<b>bold</b>"):
        assert good in everything, good
    tables = [d["text/html"] for d in cell.displays if "Lyon" in d.get("text/html", "")]
    assert len(tables) == 1
    assert table_cells(tables[0]) == [
        ["", "city", "population"], ["0", "Lyon", "522250"], ["1", "Nantes", "320732"],
        ["2", "Lille", "236710"],
    ]
    svgs = [d["image/svg+xml"] for d in cell.displays if "image/svg+xml" in d]
    assert len(svgs) == 1 and "<circle" in svgs[0]
    # Each refusal is said, on stderr, without the kernel reading anything outside.
    notes = cell.stderr
    for said in ("application/javascript", "not a PNG", "shadow-link", "rel-link",
                 "fifo", "big"):
        assert said in notes, said
    host_hostname = Path("/etc/hostname").read_text().strip()
    assert host_hostname not in shown(cell)
    assert "root:" not in shown(cell)
    # The kernel and the container go on.
    assert fe.run("echo alive").stdout == "alive\n"
    left = fe.run("ls -A /.cellbox/out | grep -v -e shadow-link -e rel-link -e fifo | wc -l")
    assert left.stdout.strip() == "0"


def test_trust_output_lets_html_and_scripts_through_and_says_so(
    kernel: KernelDriver, hostile: dict[str, str]
) -> None:
    fe = Frontend(kernel)
    cell = fe.run(
        f"%container {hostile['display']} --network none --trust-output\n"
        "display -t html /hostile/attack.html"
    )
    assert cell.status == "ok", cell.text
    html = [d["text/html"] for d in cell.displays if "text/html" in d]
    assert len(html) == 1 and "<script>" in html[0]
    assert "--trust-output is on" in cell.text
    # Without the option, the same container's output is filtered again.
    plain = fe.run(f"%container {hostile['display']} --network none\n"
                   "display -t html /hostile/attack.html")
    assert "<script" not in shown(plain) and "--trust-output is on" not in plain.text


def _max_per_window(times: list[float], window: float = 1.0) -> int:
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


# Long enough for several one-second windows of the rate cap and for `yes` to pass the
# 2 MiB output cap many times over (it writes hundreds of MiB a second); every second more
# costs about two cores' worth of CPU.
FLOOD_SECONDS = 5


def test_a_flood_is_rate_capped_and_the_kernel_stays_small(
    kernel: KernelDriver, hostile: dict[str, str]
) -> None:
    fe = Frontend(kernel)
    assert fe.run(f"%container {hostile['display']} --network none\necho ready").status == "ok"
    before = fe.memory()["VmRSS"]
    peak = before
    started = time.monotonic()
    interrupted_at: list[float] = []

    def watch(cell: Cell) -> None:
        nonlocal peak
        peak = max(peak, fe.memory()["VmRSS"])
        if not interrupted_at and time.monotonic() - started > FLOOD_SECONDS:
            interrupted_at.append(time.monotonic())
            kernel.km.interrupt_kernel()

    cell = fe.finish(fe.start("yes"), timeout=60, during=watch)
    ended = time.monotonic()
    assert interrupted_at, "the flood ended by itself"
    assert ended - interrupted_at[0] < 5, "the interrupt took too long"
    assert cell.status == "error"
    assert any(c["ename"] == "Interrupted" for c in cell.of("error"))
    streams = cell.times("stream")
    assert streams, "no output reached the frontend"
    assert _max_per_window(streams) <= 60, "more than 60 messages in one second"
    assert len(cell.stdout) <= 2 << 20
    assert "output cut" in cell.stderr
    assert peak - before < 100 << 20, f"the kernel grew by {(peak - before) >> 20} MiB"
    assert fe.run("echo after-flood").stdout == "after-flood\n"


def test_a_display_loop_is_rate_capped_and_nothing_is_lost(
    kernel: KernelDriver, hostile: dict[str, str]
) -> None:
    fe = Frontend(kernel)
    cell = fe.run(
        f"%container {hostile['display']} --network none\n"
        "i=0; while [ $i -lt 200 ]; do echo \"<b>item $i</b>\" | display -t html; "
        "i=$((i+1)); done; echo $EPOCHREALTIME > /tmp/loop-end; echo done"
    )
    assert cell.status == "ok", cell.text
    items = [d["text/html"] for d in cell.displays if "text/html" in d]
    assert items == [f"<b>item {i}</b>\n" for i in range(200)], (items[:3], cell.stderr[:500])
    # While the loop ran, display_data went out at the capped rate; what waited went out
    # at the end of the cell, all at once. The kernel stamps each message as it sends it
    # (header date); the container's clock is the host's.
    loop_end = float(fe.run("cat /tmp/loop-end").stdout)
    times = [t for t, kind, c in cell.messages
             if kind == "display_data" and "text/html" in c["data"]]
    during = [t for t in times if t <= loop_end]
    assert during, "nothing was shown while the loop ran"
    assert _max_per_window(during) <= 60
