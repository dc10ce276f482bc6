"""String paths for the hot paths: pathlib's spelling of a path, without pathlib.

``cellbox run`` and ``cellbox exec`` keep their paths as ``str`` and join them with
``os.path``: importing pathlib costs ≈ 14 ms (it brings re, fnmatch, urllib.parse and
ntpath), a sixth of a whole container start. Public APIs that took a ``Path`` accept
any path-like still; :func:`clean` turns one into the string ``str(Path(path))`` would
give, so that a value reads the same whichever way it came in.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = "str | os.PathLike[str]"

__all__ = ["clean"]  # and, for type checkers only, StrPath


def clean(path: StrPath) -> str:
    """``str(pathlib.PurePosixPath(path))``: no empty or ``.`` parts, no trailing slash.

    ``..`` is kept (as pathlib keeps it: it may cross a symlink); so is a leading ``//``,
    which POSIX leaves to the implementation.
    """
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"expected a str path, not {type(text).__name__}")
    if "//" not in text and "/." not in text and not text.endswith("/") \
            and not text.startswith("./") and text not in ("", "."):
        return text  # the usual case: already clean
    if text.startswith("//") and not text.startswith("///"):
        head = "//"
    elif text.startswith("/"):
        head = "/"
    else:
        head = ""
    parts = [part for part in text.split("/") if part and part != "."]
    return head + "/".join(parts) or "."
