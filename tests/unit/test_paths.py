"""``paths.clean``: pathlib's spelling of a path, for the hot paths that avoid pathlib."""

from __future__ import annotations

import itertools
from pathlib import Path, PurePosixPath

import pytest
from cellbox.runtime.paths import clean


def test_clean_spells_every_path_as_pathlib_does() -> None:
    pieces = ["", "/", "//", "///", ".", "..", "a", ".a", "a.", "b/"]
    for n in range(1, 5):
        for combo in itertools.product(pieces, repeat=n):
            text = "".join(combo)
            assert clean(text) == str(PurePosixPath(text)), text


def test_clean_takes_path_likes_and_refuses_bytes(tmp_path: Path) -> None:
    assert clean(tmp_path / "x") == str(tmp_path / "x")
    with pytest.raises(TypeError, match="str path"):
        clean(b"/x")  # type: ignore[arg-type]
