"""PNG, JPEG and SVG from a container: real images pass, hostile ones are refused."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from cellbox.kernel.policy_images import (
    PNG_SIGNATURE,
    ImageLimits,
    UnsafeOutput,
    check_jpeg,
    check_png,
    clean_svg,
)
from PIL import Image


def pillow(fmt: str, mode: str = "RGB", size: tuple[int, int] = (37, 23), **kw: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 7).save(out, fmt, **kw)
    return out.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def ihdr(width: int, height: int, depth: int = 8, colour: int = 0, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))


def png(*chunks: bytes) -> bytes:
    return PNG_SIGNATURE + b"".join(chunks)


def grey(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A valid 8-bit greyscale PNG, or one whose IDAT inflates to ``rows``."""
    raw = rows if rows is not None else (b"\x00" + b"\x80" * width) * height
    return png(ihdr(width, height), chunk(b"IDAT", zlib.compress(raw)), chunk(b"IEND", b""))


# ------------------------------------------------------------------------------ PNG


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "I;16", "LA"])
@pytest.mark.parametrize("interlace", [0, 1])
def test_real_pngs_of_every_colour_type_pass(mode: str, interlace: int) -> None:
    data = pillow("PNG", mode, interlace=interlace) if interlace else pillow("PNG", mode)
    info = check_png(data)
    assert (info.format, info.width, info.height) == ("png", 37, 23)


def test_a_hand_made_png_passes_and_split_idat_chunks_too() -> None:
    assert check_png(grey(5, 3)).width == 5
    stream = zlib.compress((b"\x01" + b"\x10" * 5) * 3)
    split = png(ihdr(5, 3), chunk(b"IDAT", stream[:4]), chunk(b"IDAT", stream[4:]),
                chunk(b"tEXt", b"Comment\x00<script>ok in a PNG</script>"), chunk(b"IEND", b""))
    assert check_png(split).height == 3


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"GIF89a" + b"\x00" * 20, "no PNG signature"),
        (grey(5, 3)[:-12], "truncated"),
        (grey(5, 3) + b"<html>", "after its IEND"),
        (png(chunk(b"IDAT", b""), chunk(b"IEND", b"")), "does not start with IHDR"),
        (png(ihdr(5, 3), chunk(b"IEND", b"")), "without image data"),
        (png(ihdr(5, 3), chunk(b"IDAT", b"not zlib"), chunk(b"IEND", b"")), "does not inflate"),
        (png(ihdr(5, 3), chunk(b"IDAT", zlib.compress(b"\x00" * 12)), chunk(b"vpAg", b""),
             chunk(b"IEND", b"")), "shorter"),
        (grey(5, 3, (b"\x00" + b"\x80" * 5) * 3 + b"\x00"), "longer"),
        (grey(5, 3, (b"\x07" + b"\x80" * 5) * 3), "filter type"),
        (png(ihdr(5, 3), chunk(b"XXXX", b""), chunk(b"IEND", b"")), "unknown critical"),
        (png(ihdr(5, 3, colour=3), chunk(b"IDAT", zlib.compress(b"\x00\x00" * 3)),
             chunk(b"IEND", b"")), "no palette"),
        (png(ihdr(5, 3, depth=3)), "bit depth"),
        (png(ihdr(0, 3)), "no pixels"),
        (png(ihdr(1 << 20, 1)), "longer than"),
        (png(ihdr(20000, 20000)), "pixels"),
    ],
)
def test_broken_or_hostile_pngs_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(UnsafeOutput, match=why):
        check_png(data)


def test_a_wrong_crc_is_refused() -> None:
    data = bytearray(grey(5, 3))
    data[-1] ^= 0xFF  # IEND's CRC
    with pytest.raises(UnsafeOutput, match="wrong CRC"):
        check_png(bytes(data))


def test_idat_chunks_that_are_not_consecutive_are_refused() -> None:
    stream = zlib.compress((b"\x00" + b"\x80" * 5) * 3)
    data = png(ihdr(5, 3), chunk(b"IDAT", stream[:4]), chunk(b"tEXt", b"a\x00b"),
               chunk(b"IDAT", stream[4:]), chunk(b"IEND", b""))
    with pytest.raises(UnsafeOutput, match="one run"):
        check_png(data)


def test_a_decompression_bomb_is_refused_fast_and_in_little_memory() -> None:
    # 1 GB of zeros inflates from ~1 MB; the header claims a small image.
    bomb = zlib.compressobj(9)
    body = bomb.compress(b"\x00" * (64 << 20)) + bomb.flush()
    data = png(ihdr(1000, 1000), chunk(b"IDAT", body), chunk(b"IEND", b""))
    started = time.monotonic()
    with pytest.raises(UnsafeOutput, match="longer than its header"):
        check_png(data)
    assert time.monotonic() - started < 1.0


def test_a_header_promising_too_many_bytes_is_refused_before_inflating() -> None:
    limits = ImageLimits(max_raw_bytes=1 << 20)
    with pytest.raises(UnsafeOutput, match="inflates to more than"):
        check_png(grey(1100, 1000), limits)


# ------------------------------------------------------------------------------ JPEG


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"quality": 30}])
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_real_jpegs_pass(mode: str, options: dict[str, object]) -> None:
    info = check_jpeg(pillow("JPEG", mode, (300, 200), **options))
    assert (info.format, info.width, info.height) == ("jpeg", 300, 200)


def _with_frame(height: int, width: int) -> bytes:
    data = pillow("JPEG", "L", (16, 16))
    at = data.index(b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x89PNG", "no SOI"),
        (pillow("JPEG", "L")[:-40], "truncated|longer than the data"),
        (_with_frame(0, 16), "no pixels"),
        (_with_frame(60000, 60000), "longer than"),
        (b"\xff\xd8\xff\xe0\xff\xff", "longer than the data"),
        (b"\xff\xd8\xff\xf7\x00\x02\xff\xd9", "unknown marker"),
        (b"\xff\xd8\xff\xd9", "without a frame"),
        (b"\xff\xd8\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\xff\xd9", "before the frame"),
        (b"\xff\xd8hello\xff\xd9", "between its segments"),
    ],
)
def test_broken_or_hostile_jpegs_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(UnsafeOutput, match=why):
        check_jpeg(data)


# ------------------------------------------------------------------------------ SVG

HOSTILE_SVG = """<?xml version="1.0"?>
<?xml-stylesheet href="javascript:alert(1)"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     xmlns:s="http://www.w3.org/2000/svg" width="10" height="10" onload="alert(1)">
  <!-- a comment -->
  <style>circle { fill: red }</style>
  <script>alert(2)</script>
  <s:script>alert(3)</s:script>
  <foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="x"/></foreignObject>
  <a xlink:href="javascript:alert(4)"><circle r="3" onclick="alert(5)"/></a>
  <a href=" jav&#x09;ascript:alert(6)"><rect width="1" height="1"/></a>
  <set attributeName="xlink:href" to="javascript:alert(7)"/>
  <animate attributeName="onclick" values="alert(8)"/>
  <animate attributeName="r" values="1;3" dur="1s"/>
  <use href="#c"/>
  <image href="data:image/png;base64,iVBORw0KGgo="/>
  <text x="1" y="2">a &lt; b &amp; c</text>
</svg>"""


def test_svg_loses_scripts_handlers_and_foreign_links_and_keeps_the_drawing() -> None:
    cleaned, removed = clean_svg(HOSTILE_SVG)
    lowered = cleaned.lower()
    for bad in ("script", "alert", "onload", "onclick", "foreignobject", "iframe",
                "javascript", "xml-stylesheet", "<set"):
        assert bad not in lowered, bad
    for kept in ('<circle r="3">', "<style>circle { fill: red }</style>", '<use href="#c">',
                 'href="data:image/png;base64,', 'attributeName="r"', "a &lt; b &amp; c"):
        assert kept in cleaned, kept
    assert {"<script>", "<foreignobject>", "onload=", "onclick="} <= set(removed)
    # what comes out is itself an SVG that passes unchanged
    assert clean_svg(cleaned) == (cleaned, [])


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>', "DOCTYPE"),
        ('<!DOCTYPE svg SYSTEM "file:///etc/passwd"><svg/>', "DOCTYPE"),
        ("<html><script>alert(1)</script></html>", "<svg> root"),
        ("<svg><g></svg>", "well-formed"),
        ("not xml at all", "well-formed"),
        ("", "well-formed"),
    ],
)
def test_svg_that_is_not_a_plain_xml_svg_is_refused(text: str, why: str) -> None:
    with pytest.raises(UnsafeOutput, match=why):
        clean_svg(text)


def test_a_matplotlib_style_svg_passes_whole() -> None:
    svg = (
        '<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="460pt" height="345pt" '
        'viewBox="0 0 460 345" xmlns="http://www.w3.org/2000/svg" version="1.1">'
        "<metadata><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">"
        "<rdf:Description/></rdf:RDF></metadata><defs><style type=\"text/css\">"
        "*{stroke-linejoin: round}</style></defs><g id=\"figure_1\"><path d=\"M 0 345 L 460 0\" "
        "style=\"fill: #ffffff\"/><use xlink:href=\"#m0\" x=\"57\" y=\"307\"/></g></svg>"
    )
    cleaned, removed = clean_svg(svg)
    assert removed == []
    assert 'xlink:href="#m0"' in cleaned and 'style="fill: #ffffff"' in cleaned
