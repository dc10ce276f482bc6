"""Where cellbox keeps things and which registries it talks to.

Settings come, in rising order of precedence, from built-in defaults, a TOML file
(``$CELLBOX_CONFIG``, else ``$XDG_CONFIG_HOME/cellbox/config.toml`` for a user, else
``/etc/cellbox/config.toml``) and environment variables:

    CELLBOX_ROOT                  store and container state (root: /var/lib/cellbox,
                                  rootless: $XDG_DATA_HOME/cellbox)
    CELLBOX_RUN                   runtime state that dies with the machine (locks, sockets)
    CELLBOX_REGISTRY_MIRRORS      comma-separated mirror URLs for docker.io
    CELLBOX_INSECURE_REGISTRIES   comma-separated host[:port] allowed over plain http
    CELLBOX_DEFAULT_IMAGE         image for cells run before any %container (debian)
    CELLBOX_CGROUP_PARENT         the cgroup every container's cgroup is made under (cellbox)
    CELLBOX_BRIDGE                the bridge of --network bridge containers (cellbox0)
    CELLBOX_SUBNET                its IPv4 subnet; the bridge takes the first address
                                  (10.89.0.0/16: podman's default is 10.88.0.0/16)
    CELLBOX_LAYER_MAX_BYTES       cap on one layer's uncompressed size (16 GiB)
    CELLBOX_LAYER_MAX_ENTRIES     cap on one layer's files, dirs and links (1000000)
    DOCKER_CONFIG                 directory of config.json with registry credentials

The TOML file uses the same names in lower case without the prefix: ``root``,
``registry_mirrors`` (a list), ``insecure_registries`` (a list), ``default_image``,
``cgroup_parent``, ``bridge``, ``subnet``, ``layer_max_bytes``, ``layer_max_entries``.

The directories (``root``, ``run``, ``docker_config``) are plain strings: every
``cellbox run`` loads the settings, and pathlib costs ≈ 14 ms to import (re, fnmatch,
urllib). They may be given as any path-like (``Settings(root=tmp_path)``).
"""

from __future__ import annotations

import os

from .errors import ConfigError
from .paths import clean
from .rawsettings import config_file, default_root, default_run, is_rootless, read_config_file
from .records import field, record

__all__ = ["Settings", "is_rootless"]


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _positive(value: str, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise ConfigError(f"{what} must be a positive whole number, not {value!r}")
    return number


@record(frozen=True)
class Settings:
    """The resolved configuration. Build it with :meth:`load`."""

    root: str = field(default_factory=default_root)
    run: str = field(default_factory=default_run)
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    default_image: str = "debian"
    cgroup_parent: str = "cellbox"
    bridge: str = "cellbox0"
    subnet: str = "10.89.0.0/16"
    layer_max_bytes: int = 16 << 30
    layer_max_entries: int = 1_000_000
    docker_config: str = field(default_factory=lambda: os.path.expanduser("~/.docker"))

    def __post_init__(self) -> None:
        # Spelled as str(Path(...)) was when these were Paths, whatever was given.
        for key in ("root", "run", "docker_config"):
            object.__setattr__(self, key, clean(getattr(self, key)))

    @classmethod
    def load(cls) -> Settings:
        """Defaults, then the config file, then the environment."""
        values: dict[str, object] = {}
        path = config_file()
        if path is not None:
            data = read_config_file(path)  # tomllib is imported only then
            for key in ("root", "run"):
                if key in data:
                    values[key] = str(data[key])
            for key in ("default_image", "cgroup_parent", "bridge", "subnet"):
                if key in data:
                    values[key] = str(data[key])
            for key in ("layer_max_bytes", "layer_max_entries"):
                if key in data:
                    values[key] = _positive(str(data[key]), f"{path}: {key}")
            for key in ("registry_mirrors", "insecure_registries"):
                if key in data:
                    if not isinstance(data[key], list):
                        raise ConfigError(f"{path}: {key} must be a list of strings")
                    values[key] = tuple(str(v) for v in data[key])
        env = os.environ
        if env.get("CELLBOX_ROOT"):
            values["root"] = env["CELLBOX_ROOT"]
        if env.get("CELLBOX_RUN"):
            values["run"] = env["CELLBOX_RUN"]
        if "CELLBOX_REGISTRY_MIRRORS" in env:
            values["registry_mirrors"] = tuple(_split(env["CELLBOX_REGISTRY_MIRRORS"]))
        if "CELLBOX_INSECURE_REGISTRIES" in env:
            values["insecure_registries"] = tuple(_split(env["CELLBOX_INSECURE_REGISTRIES"]))
        if env.get("CELLBOX_DEFAULT_IMAGE"):
            values["default_image"] = env["CELLBOX_DEFAULT_IMAGE"]
        if env.get("CELLBOX_CGROUP_PARENT"):
            values["cgroup_parent"] = env["CELLBOX_CGROUP_PARENT"]
        if env.get("CELLBOX_BRIDGE"):
            values["bridge"] = env["CELLBOX_BRIDGE"]
        if env.get("CELLBOX_SUBNET"):
            values["subnet"] = env["CELLBOX_SUBNET"]
        for key in ("layer_max_bytes", "layer_max_entries"):
            if env.get(f"CELLBOX_{key.upper()}"):
                values[key] = _positive(env[f"CELLBOX_{key.upper()}"], f"CELLBOX_{key.upper()}")
        if env.get("DOCKER_CONFIG"):
            values["docker_config"] = env["DOCKER_CONFIG"]
        return cls(**values)  # type: ignore[arg-type]
