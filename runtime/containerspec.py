"""From what the user asked for and the image's config to a complete container config. Pure.

Docker's rules, so a command line behaves as people expect:

* command: ``--entrypoint`` replaces the image's Entrypoint *and* drops its Cmd; command
  arguments replace the image's Cmd. What runs is entrypoint + command. Nothing at all is
  an error (unless the container is a kernel's, whose PID 1 runs nothing).
* env: the image's Env, then each ``-e KEY=VALUE`` replaces or adds; ``-e KEY`` copies the
  host's value (and is dropped when the host has none). PATH gets Docker's default when the
  image sets none; HOSTNAME is the container's hostname; TERM=xterm with a tty.
* workdir: ``-w``, else the image's WorkingDir, else ``/``; user: ``-u``, else the image's
  User, else root.
* network: ``bridge`` as root, ``none`` rootless (which can do nothing else); published
  ports need ``bridge``.
* volumes: ``-v HOST:CONTAINER[:ro|rw]``; the host path is made absolute and must exist
  (Docker would create it; a typo silently becoming an empty dir is worse); the container
  path must be absolute.
* limits: memory at least 6 MiB; memory-swap needs memory and is at least as much (or -1);
  rootless on cgroup v1 cannot enforce any of them, and says so.
"""

from __future__ import annotations

import os
import posixpath

from .containerexec import merge_env, parse_env
from .containerstate import ContainerConfig, VolumeSpec
from .errors import ConfigError
from .records import replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # not at run time: `cellbox run` pays for every import
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "DEFAULT_PATH",
    "MIN_MEMORY",
    "NETWORK_MODES",
    "check_limits_enforceable",
    "default_network",
    "merge_env",
    "parse_env",
    "parse_volume",
    "resolve_command",
    "resolve_config",
]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIN_MEMORY = 6 << 20
NETWORK_MODES = ("none", "bridge", "host")


def _str_list(value: Any) -> list[str]:
    """A list of strings from an untrusted image config field ([] for anything else)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def resolve_command(
    image_config: Mapping[str, Any],
    entrypoint: list[str] | None,
    command: list[str] | None,
) -> tuple[list[str], list[str]]:
    """(entrypoint, command) with Docker's rules (see the module docstring)."""
    if entrypoint is not None:
        # An explicit --entrypoint (even "") discards the image's Cmd as well.
        return [e for e in entrypoint if e != ""] if entrypoint != [""] else [], command or []
    image_entrypoint = _str_list(image_config.get("Entrypoint"))
    if command:
        return image_entrypoint, list(command)
    return image_entrypoint, _str_list(image_config.get("Cmd"))


def parse_volume(text: str, *, cwd: str | None = None) -> VolumeSpec:
    """``-v HOST:CONTAINER[:ro|rw]`` with the host path absolute and existing."""
    parts = text.split(":")
    readonly = False
    if len(parts) == 3:
        if parts[2] not in ("ro", "rw"):
            raise ConfigError(f"-v {text!r}: the mode must be ro or rw, not {parts[2]!r}")
        readonly = parts[2] == "ro"
        parts = parts[:2]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ConfigError(
            f"-v {text!r}: use HOST_PATH:CONTAINER_PATH[:ro] (named volumes are not supported)"
        )
    source, destination = parts
    if not (source.startswith(("/", ".", "~"))):
        raise ConfigError(
            f"-v {text!r}: {source!r} is not a host path; named volumes are not supported, "
            "give a path such as ./data or /srv/data"
        )
    source = os.path.abspath(os.path.join(cwd or os.getcwd(), os.path.expanduser(source)))
    if not os.path.exists(source):
        raise ConfigError(f"-v {text!r}: the host path {source} does not exist; create it first")
    return VolumeSpec(source, _container_path(destination, f"-v {text!r}"), readonly)


def _container_path(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise ConfigError(f"{what}: the container path {path!r} must be absolute")
    norm = posixpath.normpath(path)
    if norm == "/" or ".." in path.split("/"):
        raise ConfigError(f"{what}: {path!r} cannot be a mount point")
    return norm


def check_limits_enforceable(config: ContainerConfig, *, rootless: bool, cgroup_v1: bool) -> None:
    """Refuse limits that cannot be enforced (rootless on cgroup v1) instead of pretending."""
    if rootless and cgroup_v1 and config.has_limits:
        asked = [
            flag for flag, value in (
                ("--memory", config.memory), ("--memory-swap", config.memory_swap),
                ("--cpus", config.cpus), ("--pids-limit", config.pids_limit),
            ) if value is not None
        ]
        raise ConfigError(
            f"{', '.join(asked)} cannot be enforced: cellbox runs rootless and this host has "
            "cgroup v1, where an unprivileged user cannot create cgroups. Drop the limits, "
            "run as root, or use a host with cgroup v2 and a delegated cgroup (systemd)"
        )


def _check_limits(config: ContainerConfig, online_cpus: int) -> None:
    if config.memory is not None and config.memory < MIN_MEMORY:
        raise ConfigError("--memory: the minimum is 6m (6 MiB)")
    if config.memory_swap is not None and config.memory_swap != -1:
        if config.memory is None:
            raise ConfigError("--memory-swap needs --memory as well")
        if config.memory_swap < config.memory:
            raise ConfigError(
                "--memory-swap is memory plus swap, so it must be at least --memory "
                "(or -1 for unlimited swap)"
            )
    if config.cpus is not None and not 0.01 <= config.cpus <= online_cpus:
        raise ConfigError(
            f"--cpus: the range is 0.01 to {online_cpus:.2f}, as there are only "
            f"{online_cpus} CPUs available"
        )
    if config.pids_limit is not None and config.pids_limit < 1:
        raise ConfigError("--pids-limit must be positive")


def default_network(*, rootless: bool) -> str:
    """``--network`` when not given: ``bridge`` as root; rootless can only have ``none``."""
    return "none" if rootless else "bridge"


_HOSTNAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")


def _hostname_ok(hostname: str) -> bool:
    """``[A-Za-z0-9][A-Za-z0-9.-]*``."""
    return (bool(hostname) and hostname[0] not in ".-"
            and _HOSTNAME_CHARS.issuperset(hostname))


def resolve_config(
    request: ContainerConfig,
    image_config: Mapping[str, Any],
    *,
    container_id: str,
    created: str,
    rootless: bool,
    online_cpus: int,
    environ: Mapping[str, str] | None = None,
) -> ContainerConfig:
    """The complete config of a new container (name and image fields are the caller's)."""
    environ = os.environ if environ is None else environ
    section = image_config.get("config")
    section = section if isinstance(section, dict) else {}
    entrypoint, command = resolve_command(section, request.entrypoint, request.command)
    if not entrypoint and not command and not request.keep:
        raise ConfigError(
            f"no command to run: the image {request.image} has neither Entrypoint nor Cmd; "
            "give one after the image name"
        )
    network = request.network or default_network(rootless=rootless)
    if network not in NETWORK_MODES:
        raise ConfigError(f"--network {network!r}: use none, bridge or host")
    if rootless and network != "none":
        raise ConfigError(
            f"--network {network} needs root; rootless containers can only use --network none"
        )
    if request.ports and network != "bridge":
        raise ConfigError(f"-p needs --network bridge (this container uses {network})")
    _check_limits(request, online_cpus)
    hostname = request.hostname or container_id[:12]
    if len(hostname) > 64 or not _hostname_ok(hostname):
        raise ConfigError(f"--hostname {hostname!r}: use letters, digits, '.' and '-'")
    image_env = _str_list(section.get("Env"))
    if not any(e.startswith("PATH=") for e in image_env):
        image_env = [DEFAULT_PATH, *image_env]
    extra = [f"HOSTNAME={hostname}"] + (["TERM=xterm"] if request.tty else [])
    env = merge_env(merge_env(image_env, extra), parse_env(request.env, environ))
    workdir = request.workdir or section.get("WorkingDir") or "/"
    if not isinstance(workdir, str) or not workdir.startswith("/"):
        raise ConfigError(f"-w {workdir!r}: the working directory must be an absolute path")
    user = request.user if request.user is not None else section.get("User") or ""
    if not isinstance(user, str):
        user = ""
    volumes = [replace(v, destination=_container_path(v.destination, "-v")) for v in
               request.volumes]
    return replace(
        request,
        id=container_id,
        created=created,
        entrypoint=entrypoint,
        command=command,
        env=env,
        workdir=posixpath.normpath(workdir),
        user=user,
        hostname=hostname,
        network=network,
        volumes=volumes,
    )
