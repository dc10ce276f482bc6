"""Where the settings come from, read without building :class:`~.settings.Settings`.

The hot paths (``cellbox exec``, the launcher) need only a directory or two, and
:mod:`.settings` costs dataclasses and pathlib to import. This module imports nothing but
``os`` (and ``tomllib``, only when a config file exists) and answers with plain strings;
:meth:`Settings.load() <.settings.Settings.load>` is built on the same functions, so the
precedence is one and the same: built-in defaults, then the config file, then the
environment.
"""

from __future__ import annotations

import os

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "config_file",
    "default_root",
    "default_run",
    "is_rootless",
    "read_config_file",
    "root_dir",
]


def is_rootless() -> bool:
    """True when cellbox runs without root and must use a user namespace."""
    return os.geteuid() != 0


def config_file() -> str | None:
    """The config file in use: ``$CELLBOX_CONFIG``, else the user's or the system's if any."""
    if explicit := os.environ.get("CELLBOX_CONFIG"):
        return explicit
    if is_rootless():
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        candidate = os.path.join(base, "cellbox", "config.toml")
    else:
        candidate = "/etc/cellbox/config.toml"
    return candidate if os.path.exists(candidate) else None


def read_config_file(path: str) -> dict[str, Any]:
    """The TOML table in ``path`` (ConfigError saying why when it cannot be read)."""
    import tomllib  # ≈ 5 ms: only when there is a file to read

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read cellbox config {path}: {exc}") from exc


def default_root() -> str:
    """``/var/lib/cellbox`` as root; ``$XDG_DATA_HOME/cellbox`` rootless."""
    if not is_rootless():
        return "/var/lib/cellbox"
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "cellbox")


def default_run() -> str:
    """``/run/cellbox`` as root; ``$XDG_RUNTIME_DIR/cellbox`` (or /tmp) rootless."""
    if not is_rootless():
        return "/run/cellbox"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.access(runtime_dir, os.W_OK):
        return os.path.join(runtime_dir, "cellbox")
    return f"/tmp/cellbox-{os.getuid()}"


def root_dir() -> str:
    """What ``Settings.load().root`` is, as a string: env, else the file, else the default."""
    if root := os.environ.get("CELLBOX_ROOT"):
        return root
    path = config_file()
    if path is not None:
        value = read_config_file(path).get("root")
        if value is not None:
            return str(value)
    return default_root()
