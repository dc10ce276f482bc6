"""The output policy's cost, side by side with the peers, in one run.

    .venv/bin/python bench/policy.py

* HTML: a 1000-row pandas-style table and a page of attacks, sanitised by the policy
  (nh3, our allow-list and URL filter) and by bleach (what nbconvert and older Jupyter
  tools use), each with a comparable allow-list;
* PNG: a 2000 x 1500 RGB image checked by the policy (chunks, CRCs, full inflate) and
  decoded by Pillow (``Image.open`` + ``load``: a real decode);
* JPEG: the same picture as JPEG, structure check vs Pillow's decode;
* terminal text: 20 MB of plain output and 2 MB full of escapes through
  :class:`~cellbox.kernel.policy_text.TerminalText`, against a one-regex strip of ANSI
  sequences (what bash_kernel-style kernels do, when they do anything).

Prints the median of several runs and the ratio peer / policy (> 1: the policy is faster).
"""

from __future__ import annotations

import io
import re
import statistics
import time
from collections.abc import Callable

from cellbox.kernel.policy import OutputPolicy
from cellbox.kernel.policy_images import check_jpeg, check_png
from cellbox.kernel.policy_text import TerminalText
from PIL import Image

ROWS = 1000
TABLE = (
    '<table border="1" class="dataframe"><thead><tr style="text-align: right;"><th></th>'
    "<th>a</th><th>b</th><th>c</th></tr></thead><tbody>"
    + "".join(f"<tr><th>{i}</th><td>{i * 3}</td><td>x{i}</td><td>{i / 7:.4f}</td></tr>"
              for i in range(ROWS))
    + "</tbody></table>"
)
ATTACKS = "".join(
    [
        "<script>alert(1)</script>", '<img src=x onerror="alert(1)">',
        '<a href="javascript:alert(1)">x</a>', "<iframe src=https://e></iframe>",
        '<div style="position:fixed">o</div>', "<svg><script>a</script></svg>",
    ] * 200
)
BLEACH_TAGS = {"table", "thead", "tbody", "tr", "th", "td", "a", "img", "b", "i", "div", "p",
               "span"}
BLEACH_ATTRS = {"a": ["href"], "img": ["src", "alt"], "table": ["border"]}


def median_time(fn: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(name: str, ours: float, peer_name: str, peer: float) -> None:
    print(f"{name:<34} policy {ours * 1000:9.2f} ms   {peer_name:<16} {peer * 1000:9.2f} ms"
          f"   ratio {peer / ours:6.2f}x")


def main() -> None:
    import bleach

    policy = OutputPolicy()
    for name, html in (("HTML table, 1000 rows", TABLE), ("HTML attacks, 1200 items", ATTACKS)):
        data = html.encode()
        ours = median_time(lambda data=data: policy.file(data, "text/html"))
        peer = median_time(lambda html=html: bleach.clean(
            html, tags=BLEACH_TAGS, attributes=BLEACH_ATTRS, strip=True))
        row(name, ours, "bleach", peer)

    picture = Image.radial_gradient("L").resize((2000, 1500)).convert("RGB")
    for fmt, check in (("PNG", check_png), ("JPEG", check_jpeg)):
        buf = io.BytesIO()
        picture.save(buf, fmt)
        data = buf.getvalue()

        def decode(data: bytes = data) -> None:
            with Image.open(io.BytesIO(data)) as im:
                im.load()

        ours = median_time(lambda data=data, check=check: check(data))
        row(f"{fmt} 2000x1500 ({len(data) >> 10} KiB)", ours, "Pillow decode", median_time(decode))

    ansi = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
    plain = "y\n" * 32768
    noisy = ("\x1b[1;31mred\x1b[0m \x1b]0;t\x07\x1b[2Jtext\r\n" * 2000)
    for name, chunk, count in (("terminal text, plain, 20 MB", plain, 300),
                               ("terminal text, escapes, 2 MB", noisy, 30)):
        def ours_run(chunk: str = chunk, count: int = count) -> None:
            stream = TerminalText()
            for _ in range(count):
                stream.feed(chunk)

        def peer_run(chunk: str = chunk, count: int = count) -> None:
            for _ in range(count):
                ansi.sub("", chunk)

        row(name, median_time(ours_run, 3), "one regex", median_time(peer_run, 3))


if __name__ == "__main__":
    main()
