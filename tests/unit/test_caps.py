"""Capability names and masks."""

from __future__ import annotations

import pytest
from cellbox.runtime.caps import CAPABILITIES, DEFAULT_CAPS, LAST_CAP, mask, names
from cellbox.runtime.errors import ConfigError


def test_docker_default_set_is_capeff_a80425fb() -> None:
    assert mask(None) == 0xA80425FB
    assert mask(list(DEFAULT_CAPS)) == 0xA80425FB


def test_names_are_flexible() -> None:
    assert mask(["net_raw", "CAP_KILL", " chown "]) == (1 << 13) | (1 << 5) | 1
    assert mask([]) == 0
    assert mask(["ALL"]) == (1 << (LAST_CAP + 1)) - 1


def test_unknown_capability_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown capability 'CAP_FLY'"):
        mask(["CAP_FLY"])


def test_names_roundtrip() -> None:
    assert names(mask(None)) == sorted(DEFAULT_CAPS, key=CAPABILITIES.__getitem__)
    assert names(0) == []
