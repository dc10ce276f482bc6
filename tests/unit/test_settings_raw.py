"""``rawsettings``: the lean answers agree with ``Settings.load()``; TOML only with a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cellbox.runtime import rawsettings
from cellbox.runtime.errors import ConfigError
from cellbox.runtime.settings import Settings


def test_root_dir_precedence_is_the_settings_one(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELLBOX_ROOT", raising=False)
    config = tmp_path / "config.toml"
    config.write_text(f'root = "{tmp_path / "from-file"}"\n')
    monkeypatch.setenv("CELLBOX_CONFIG", str(config))
    assert rawsettings.root_dir() == str(tmp_path / "from-file") == str(Settings.load().root)
    monkeypatch.setenv("CELLBOX_ROOT", str(tmp_path / "from-env"))
    assert rawsettings.root_dir() == str(tmp_path / "from-env") == str(Settings.load().root)
    config.write_text("root = [\n")
    monkeypatch.delenv("CELLBOX_ROOT")
    with pytest.raises(ConfigError, match="cannot read cellbox config"):
        rawsettings.root_dir()


def test_settings_without_a_config_file_import_no_toml_parser(tmp_path: Path) -> None:
    code = ("import sys; from cellbox.runtime.settings import Settings; Settings.load(); "
            "print('tomllib' in sys.modules, 'dataclasses' in sys.modules)")
    env = {"CELLBOX_CONFIG": "", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]  # no TOML parser, and no dataclasses either
