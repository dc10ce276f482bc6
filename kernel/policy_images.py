"""Images from a container, checked before a browser sees them: PNG, JPEG and SVG.

Pure (bytes and text in, verdicts out). Nothing here trusts a header: every length is
checked against the bytes that are really there, and the decoded size of an image is
bounded *before* anything is decompressed, so a container cannot hand the browser (or the
kernel) a decompression bomb.

PNG (:func:`check_png`)
    The signature, every chunk's length and CRC-32, IHDR first with sane dimensions and a
    valid colour type / bit depth pair, PLTE where the colour type needs it, no unknown
    critical chunk, consecutive IDAT chunks, IEND last and nothing after it. The image
    data is then really inflated (zlib, in bounded steps): it must inflate to exactly the
    size the header promises (interlaced or not) and every scanline must start with a
    valid filter type. Only the filters are not undone: that changes no size.

JPEG (:func:`check_jpeg`)
    The marker structure from SOI to EOI: segment lengths inside the data, one frame
    header (SOF) with sane dimensions and components before the first scan, every scan's
    entropy-coded data skipped to its next marker, no unknown marker. The entropy-coded
    data itself is decoded by the browser's (sandboxed) decoder, not here.

SVG (:func:`clean_svg`)
    Parsed as XML with expat, refusing any DOCTYPE (so no entities: no "billion laughs",
    no external entities), with an ``svg`` root. JupyterLab shows SVG output in an
    ``<img>``, where scripts never run; but other frontends and exporters (nbconvert's
    HTML, VS Code, nbviewer) put the SVG inline, so it is also rewritten without scripts,
    ``foreignObject``, embedded documents, ``on*`` handlers, processing instructions and
    links other than ``#fragment`` or ``data:image/...`` ones.
"""

from __future__ import annotations

import re
import struct
import xml.parsers.expat
import zlib
from dataclasses import dataclass

from cellbox.runtime.errors import CellboxError

__all__ = [
    "ImageInfo",
    "ImageLimits",
    "UnsafeOutput",
    "check_jpeg",
    "check_png",
    "clean_svg",
    "safe_image_url",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class UnsafeOutput(CellboxError):
    """Output from a container that the kernel refuses to show (the message says why)."""


@dataclass(frozen=True)
class ImageLimits:
    """How big an image from a container may be."""

    max_side: int = 32768  # pixels, width or height
    max_pixels: int = 25_000_000  # width x height (a 6000 x 4000 photo)
    max_raw_bytes: int = 100 << 20  # a PNG's inflated scanlines (inflating costs ~0.3 s)


@dataclass(frozen=True)
class ImageInfo:
    """What a check found: the format and the dimensions."""

    format: str
    width: int
    height: int


# --------------------------------------------------------------------------- PNG

# colour type -> (channels, allowed bit depths)
_PNG_COLOUR = {
    0: (1, (1, 2, 4, 8, 16)),
    2: (3, (8, 16)),
    3: (1, (1, 2, 4, 8)),
    4: (2, (8, 16)),
    6: (4, (8, 16)),
}
_PNG_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))
_CHUNK_TYPE = re.compile(rb"[A-Za-z]{4}")
_VALID_FILTERS = bytes(range(5))
_INFLATE_STEP = 1 << 20


def _dimensions(kind: str, width: int, height: int, limits: ImageLimits) -> None:
    if width <= 0 or height <= 0:
        raise UnsafeOutput(f"{kind} image with no pixels ({width} x {height})")
    if width > limits.max_side or height > limits.max_side:
        raise UnsafeOutput(
            f"{kind} image of {width} x {height} pixels: a side is longer than "
            f"{limits.max_side} pixels"
        )
    if width * height > limits.max_pixels:
        raise UnsafeOutput(
            f"{kind} image of {width} x {height} pixels: more than {limits.max_pixels} pixels"
        )


def _png_scanlines(width: int, height: int, bpp: int, interlace: int) -> list[tuple[int, int]]:
    """(stride, rows) of each pass: a stride is the filter byte plus one row's bytes."""
    if interlace == 0:
        return [(1 + (width * bpp + 7) // 8, height)]
    passes = []
    for x0, y0, dx, dy in _ADAM7:
        w = (width - x0 + dx - 1) // dx if width > x0 else 0
        h = (height - y0 + dy - 1) // dy if height > y0 else 0
        if w and h:
            passes.append((1 + (w * bpp + 7) // 8, h))
    return passes


class _ScanlineCheck:
    """Follows inflated bytes across scanlines: the size and every filter type byte."""

    def __init__(self, passes: list[tuple[int, int]]) -> None:
        self._passes = passes
        self._index = 0
        self._pos = 0  # bytes into the current pass

    @property
    def complete(self) -> bool:
        return self._index == len(self._passes)

    def feed(self, data: bytes) -> None:
        while data:
            if self.complete:
                raise UnsafeOutput("PNG image data is longer than its header says")
            stride, rows = self._passes[self._index]
            take = min(len(data), stride * rows - self._pos)
            piece, data = data[:take], data[take:]
            filters = piece[(-self._pos) % stride :: stride]
            if filters.translate(None, _VALID_FILTERS):
                raise UnsafeOutput("PNG scanline with an invalid filter type")
            self._pos += take
            if self._pos == stride * rows:
                self._index += 1
                self._pos = 0


def check_png(data: bytes, limits: ImageLimits | None = None) -> ImageInfo:
    """Check that ``data`` is one well-formed PNG image within ``limits``; raise otherwise."""
    limits = limits or ImageLimits()
    if not data.startswith(PNG_SIGNATURE):
        raise UnsafeOutput("not a PNG image (no PNG signature)")
    pos = len(PNG_SIGNATURE)
    seen: list[bytes] = []
    header: tuple[int, int, int, int, int] | None = None
    check: _ScanlineCheck | None = None
    inflate = zlib.decompressobj()
    idat_done = False
    while True:
        if pos + 8 > len(data):
            raise UnsafeOutput("PNG image is truncated (no IEND chunk)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFFFFFF or pos + 12 + length > len(data):
            raise UnsafeOutput(f"PNG chunk {kind!r} is longer than the data")
        if not _CHUNK_TYPE.fullmatch(kind):
            raise UnsafeOutput(f"PNG chunk with an invalid type {kind!r}")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(kind + body) != crc:
            raise UnsafeOutput(f"PNG chunk {kind.decode()} has a wrong CRC")
        pos += 12 + length
        if not seen and kind != b"IHDR":
            raise UnsafeOutput("PNG image does not start with IHDR")
        if kind[0:1].isupper() and kind not in _PNG_CRITICAL:
            raise UnsafeOutput(f"PNG image with an unknown critical chunk {kind.decode()}")
        if kind == b"IHDR":
            if seen:
                raise UnsafeOutput("PNG image with a second IHDR")
            header = _png_header(body, limits)
            width, height, depth, colour, interlace = header
            bpp = depth * _PNG_COLOUR[colour][0]
            passes = _png_scanlines(width, height, bpp, interlace)
            if sum(stride * rows for stride, rows in passes) > limits.max_raw_bytes:
                raise UnsafeOutput(
                    f"PNG image of {width} x {height} pixels inflates to more than "
                    f"{limits.max_raw_bytes} bytes"
                )
            check = _ScanlineCheck(passes)
        elif kind == b"IDAT":
            if idat_done:
                raise UnsafeOutput("PNG image data (IDAT) is not in one run of chunks")
            assert check is not None
            _inflate(inflate, body, check)
        elif kind == b"PLTE" and (b"IDAT" in seen or b"PLTE" in seen):
            raise UnsafeOutput("PNG palette after the image data, or twice")
        if seen and seen[-1] == b"IDAT" and kind != b"IDAT":
            idat_done = True
        seen.append(kind)
        if kind == b"IEND":
            break
    if pos != len(data):
        raise UnsafeOutput(f"PNG image has {len(data) - pos} bytes after its IEND chunk")
    assert header is not None and check is not None
    if header[3] == 3 and b"PLTE" not in seen:
        raise UnsafeOutput("PNG image with a palette colour type but no palette")
    if b"IDAT" not in seen:
        raise UnsafeOutput("PNG image without image data")
    if not inflate.eof or not check.complete:
        raise UnsafeOutput("PNG image data is shorter than its header says")
    return ImageInfo("png", header[0], header[1])


def _png_header(body: bytes, limits: ImageLimits) -> tuple[int, int, int, int, int]:
    if len(body) != 13:
        raise UnsafeOutput("PNG IHDR chunk of the wrong length")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", body
    )
    _dimensions("PNG", width, height, limits)
    if colour not in _PNG_COLOUR or depth not in _PNG_COLOUR[colour][1]:
        raise UnsafeOutput(f"PNG image with colour type {colour} and bit depth {depth}")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise UnsafeOutput("PNG image with an unknown compression, filter or interlace method")
    return width, height, depth, colour, interlace


def _inflate(inflate: zlib._Decompress, body: bytes, check: _ScanlineCheck) -> None:
    if inflate.eof:
        if body:
            raise UnsafeOutput("PNG image data continues after its zlib stream ended")
        return
    pending = body
    try:
        while pending and not inflate.eof:
            # Bounded steps: memory stays at ~1 MiB whatever the data inflates to.
            check.feed(inflate.decompress(pending, _INFLATE_STEP))
            pending = inflate.unconsumed_tail
        while not inflate.eof:
            more = inflate.decompress(b"", _INFLATE_STEP)
            if not more:
                break
            check.feed(more)
    except zlib.error as exc:
        raise UnsafeOutput(f"PNG image data does not inflate: {exc}") from None
    if inflate.unused_data:
        raise UnsafeOutput("PNG image data continues after its zlib stream ended")


# --------------------------------------------------------------------------- JPEG

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Segments that are only skipped: DHT, DAC, DQT, DNL, DRI, DHP, EXP, APPn, COM.
_SKIP = {0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xFE, *range(0xE0, 0xF0)}
_RST = range(0xD0, 0xD8)


def check_jpeg(data: bytes, limits: ImageLimits | None = None) -> ImageInfo:
    """Check the marker structure of the JPEG image ``data``; raise :class:`UnsafeOutput`."""
    limits = limits or ImageLimits()
    if not data.startswith(b"\xff\xd8"):
        raise UnsafeOutput("not a JPEG image (no SOI marker)")
    pos = 2
    frame: tuple[int, int] | None = None
    scans = 0
    size = len(data)
    while True:
        if pos >= size or data[pos] != 0xFF:
            raise UnsafeOutput("JPEG image is truncated or has data between its segments")
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            raise UnsafeOutput("JPEG image is truncated (no EOI marker)")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI; bytes after it (camera trailers) are ignored by decoders
            break
        if marker in (0xD8, 0x00, 0x01) or marker in _RST:
            raise UnsafeOutput(f"JPEG image with a misplaced marker 0xFF{marker:02X}")
        if pos + 2 > size:
            raise UnsafeOutput("JPEG image is truncated")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > size:
            raise UnsafeOutput(f"JPEG segment 0xFF{marker:02X} is longer than the data")
        body = data[pos + 2 : pos + length]
        pos += length
        if marker in _SOF:
            if frame is not None:
                raise UnsafeOutput("JPEG image with two frame headers")
            frame = _jpeg_frame(body, limits)
        elif marker == 0xDA:
            if frame is None:
                raise UnsafeOutput("JPEG scan before the frame header")
            if not body or len(body) != 4 + 2 * body[0] or not 1 <= body[0] <= 4:
                raise UnsafeOutput("JPEG scan header of the wrong length")
            scans += 1
            pos = _skip_entropy(data, pos)
        elif marker not in _SKIP:
            raise UnsafeOutput(f"JPEG image with an unknown marker 0xFF{marker:02X}")
    if frame is None or scans == 0:
        raise UnsafeOutput("JPEG image without a frame or a scan")
    return ImageInfo("jpeg", frame[0], frame[1])


def _jpeg_frame(body: bytes, limits: ImageLimits) -> tuple[int, int]:
    if len(body) < 6:
        raise UnsafeOutput("JPEG frame header is too short")
    precision, height, width, components = struct.unpack_from(">BHHB", body)
    if precision not in (8, 12, 16) or not 1 <= components <= 4:
        raise UnsafeOutput(f"JPEG frame with precision {precision}, {components} components")
    if len(body) != 6 + 3 * components:
        raise UnsafeOutput("JPEG frame header of the wrong length")
    _dimensions("JPEG", width, height, limits)
    return width, height


def _skip_entropy(data: bytes, pos: int) -> int:
    """The position of the marker that ends the entropy-coded data starting at ``pos``."""
    while True:
        at = data.find(b"\xff", pos)
        if at < 0 or at + 1 >= len(data):
            raise UnsafeOutput("JPEG image is truncated inside a scan")
        following = data[at + 1]
        if following == 0x00 or following in _RST or following == 0xFF:
            pos = at + 1 if following == 0xFF else at + 2
            continue
        return at


# --------------------------------------------------------------------------- SVG

_SVG_DROP = {"script", "foreignobject", "iframe", "embed", "object", "handler", "listener"}
_SVG_ANIMATE = {"set", "animate"}
_SAFE_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*\Z", re.I)
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")


def safe_image_url(value: str, *, https: bool) -> bool:
    """Whether ``value`` may be an image's source: an inline PNG/JPEG/GIF/WebP, or https."""
    url = _URL_NOISE.sub("", value)  # browsers drop tabs and newlines inside URLs
    if _SAFE_DATA_IMAGE.match(url):
        return True
    return https and url[:8].lower() == "https://"


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1].lower()


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attr(text: str) -> str:
    return (
        _escape_text(text).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


class _SvgWriter:
    """expat handlers that write the cleaned document and note what they left out."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.removed: set[str] = set()
        self._skip = 0  # depth inside a dropped element
        self._root = True

    def start(self, name: str, attrs: list[str]) -> None:
        local = _local(name)
        if self._root:
            if local != "svg":
                raise UnsafeOutput(f"an SVG image must have an <svg> root, not <{name}>")
            self._root = False
        if self._skip:
            self._skip += 1
            return
        pairs = list(zip(attrs[::2], attrs[1::2], strict=True))
        if local in _SVG_DROP or (local in _SVG_ANIMATE and _animates_link(pairs)):
            self.removed.add(f"<{local}>")
            self._skip = 1
            return
        parts = [name]
        for key, value in pairs:
            if self._allowed(key, value):
                parts.append(f'{key}="{_escape_attr(value)}"')
        self.out.append("<" + " ".join(parts) + ">")

    def _allowed(self, key: str, value: str) -> bool:
        local = _local(key)
        if local.startswith("on"):
            self.removed.add(f"{local}=")
            return False
        if key.lower() == "xml:base":
            self.removed.add("xml:base=")
            return False
        if local == "href" and not (value.strip().startswith("#")
                                    or safe_image_url(value, https=False)):
            self.removed.add("href to elsewhere")
            return False
        return True

    def end(self, name: str) -> None:
        if self._skip:
            self._skip -= 1
            return
        self.out.append(f"</{name}>")

    def text(self, data: str) -> None:
        if not self._skip:
            self.out.append(_escape_text(data))


def _animates_link(pairs: list[tuple[str, str]]) -> bool:
    for key, value in pairs:
        if _local(key) == "attributename":
            target = _local(value.strip())
            return target == "href" or target.startswith("on")
    return False


def clean_svg(text: str) -> tuple[str, list[str]]:
    """``text`` as an SVG document without active content, and what was removed.

    Raises :class:`UnsafeOutput` when it is not well-formed XML with an ``svg`` root, or
    declares a DOCTYPE (entities).
    """
    writer = _SvgWriter()
    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True
    parser.ordered_attributes = True
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse_doctype(*args: object) -> None:
        raise UnsafeOutput("an SVG image with a DOCTYPE (entities are not allowed)")

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_doctype
    parser.StartElementHandler = writer.start
    parser.EndElementHandler = writer.end
    parser.CharacterDataHandler = writer.text
    # Comments and processing instructions (<?xml-stylesheet ...?>) are left out.
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        raise UnsafeOutput(f"not a well-formed SVG image: {exc}") from None
    if writer._root:
        raise UnsafeOutput("an SVG image without an <svg> element")
    return "".join(writer.out), sorted(writer.removed)
