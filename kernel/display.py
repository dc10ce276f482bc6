"""Rich output from a cell: what ``display`` left in the exchange directory, as display_data.

The container's ``display`` command (kernel/bin/display) copies a file into
``/.cellbox/out`` -- on the host, the container's ``exchange/out`` -- and prints a framed
record with the file's name (:class:`~cellbox.kernel.protocol.DisplayRequest`). Nothing
about it is trusted:

* the name must be a plain file name (no ``/``, not ``.`` or ``..``) and is opened with
  ``openat2`` relative to the directory's fd with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
  | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`` and ``O_NOFOLLOW``: a symlink or a path out
  of the exchange directory is refused, so a container cannot make the kernel read a host
  file; ``O_NONBLOCK`` and a regular-file check keep a FIFO or a device from hanging it;
* at most ``max_bytes`` are read;
* what the bytes may become is the container's output policy's decision
  (:class:`~cellbox.kernel.policy.OutputPolicy`, applied by
  :class:`~cellbox.kernel.cellio.KernelIO`): images decoded and size-checked, markup
  sanitised, scripts and unknown types dropped. :func:`sniff` guesses a type that was not
  claimed; :func:`to_bundle` is a plain conversion without that policy.

The file is removed once read.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from cellbox.runtime import linux
from cellbox.runtime.errors import CellboxError

from .protocol import DisplayRequest

__all__ = ["MAX_BYTES", "MIME_TYPES", "DisplayError", "read_display", "to_bundle"]

MAX_BYTES = 10 << 20
MIME_TYPES = (
    "image/png",
    "image/jpeg",
    "image/svg+xml",
    "text/html",
    "text/markdown",
    "application/json",
    "text/plain",
)
_RESOLVE = (
    linux.RESOLVE_BENEATH
    | linux.RESOLVE_NO_SYMLINKS
    | linux.RESOLVE_NO_MAGICLINKS
    | linux.RESOLVE_NO_XDEV
)
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class DisplayError(CellboxError):
    """A display request the kernel refuses (named in the message)."""


def read_display(out_dir: Path, request: DisplayRequest, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of the file ``request`` names in ``out_dir`` (then removes it)."""
    name = request.name
    if name in (".", "..") or "/" in name or not name:
        raise DisplayError(f"display: {name!r} is not a file name")
    try:
        dir_fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise DisplayError(f"display: cannot open the exchange directory {out_dir}: {exc}") from exc
    try:
        try:
            fd = linux.openat2(dir_fd, name, _FLAGS, 0, _RESOLVE)
        except OSError as exc:
            raise DisplayError(
                f"display: cannot open {name} (only plain files of /.cellbox/out are shown): "
                f"{exc.strerror}"
            ) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise DisplayError(f"display: {name} is not a regular file")
            if info.st_size > max_bytes:
                raise DisplayError(
                    f"display: {name} has {info.st_size} bytes, more than the limit of "
                    f"{max_bytes} bytes; make it smaller"
                )
            data = _read_at_most(fd, max_bytes + 1)
            if len(data) > max_bytes:  # it grew after the fstat
                raise DisplayError(f"display: {name} is larger than {max_bytes} bytes")
            return data
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        os.close(dir_fd)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        try:
            chunk = os.read(fd, min(1 << 20, limit - size))
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def sniff(data: bytes) -> str | None:
    """The type of ``data`` from its first bytes (None when it is no type we show)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "image/svg+xml"
    if head.startswith((b"<!doctype html", b"<html", b"<div", b"<table", b"<p>", b"<h1")):
        return "text/html"
    if head.startswith((b"{", b"[")):
        with contextlib.suppress(ValueError):
            json.loads(data)
            return "application/json"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain"


def to_bundle(data: bytes, claimed: str | None, name: str = "") -> dict[str, Any]:
    """A display_data bundle for ``data`` of type ``claimed`` (checked), or sniffed."""
    mime = claimed or sniff(data)
    if mime is None or mime not in MIME_TYPES:
        raise DisplayError(
            f"display: cannot show {name or 'this'} ({claimed or 'unknown type'}); "
            "use -t png|jpeg|svg|html|markdown|json|text"
        )
    if mime == "image/png" and not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DisplayError("display: the data is not a PNG image")
    if mime == "image/jpeg" and not data.startswith(b"\xff\xd8\xff"):
        raise DisplayError("display: the data is not a JPEG image")
    summary = f"<{mime}, {len(data)} bytes>"
    if mime in ("image/png", "image/jpeg"):
        return {mime: base64.b64encode(data).decode("ascii"), "text/plain": summary}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DisplayError(f"display: {mime} must be UTF-8 text") from None
    if mime == "application/json":
        try:
            return {mime: json.loads(text), "text/plain": text[:2000]}
        except ValueError as exc:
            raise DisplayError(f"display: not valid JSON ({exc})") from None
    if mime == "text/html":
        import nh3

        return {mime: nh3.clean(text), "text/plain": summary}
    if mime == "image/svg+xml":
        if "<svg" not in text[:4096].lower():
            raise DisplayError("display: the data is not an SVG image")
        return {mime: text, "text/plain": summary}
    if mime == "text/markdown":
        return {mime: text, "text/plain": text}
    return {"text/plain": text}
