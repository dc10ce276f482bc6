"""JSON for the container's init without ``import json`` (which pulls in re, enum,
functools and collections: ~10 ms and ~1 MiB per container).

The C accelerator ``_json`` that the json package itself uses does the real work:
``make_scanner`` parses, ``encode_basestring`` quotes strings. :func:`loads` accepts what
``json.loads`` accepts (without NaN/Infinity); :func:`dumps` writes dicts, lists, strings,
ints, floats, bools and None with ``ensure_ascii=False``, like ``json.dumps``.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["dumps", "loads"]


def _no_constants(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


class _Context:
    """The attributes ``_json.make_scanner`` reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constants)
    memo: dict[str, str] = {}  # noqa: RUF012 - the C scanner wants a dict


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed decoder


def loads(text: str | bytes) -> Any:
    """Parse one JSON document (surrounding whitespace allowed)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    start = len(text) - len(text.lstrip())
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"not JSON at offset {exc.value}") from None
    if text[end:].strip():
        raise ValueError(f"extra data after JSON at offset {end}")
    return value


def dumps(value: Any) -> str:
    """Encode ``value`` compactly (``", "`` and ``": "`` separators, like json.dumps)."""
    if isinstance(value, str):
        return str(_json.encode_basestring(value))
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
