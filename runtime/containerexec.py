"""``cellbox exec`` the lean way: from a container's name to a process inside it.

The whole path is: find the id (names.json), read ``state.json`` and ``config.json`` as
plain dicts, check that PID 1 is alive, and hand :func:`.nsexec.exec_in` the process
(which pins PID 1 with a pidfd, joins the cgroups and namespaces, forks and drops
privileges). Nothing here imports dataclasses, pathlib, json or re: every import shows in
the time of each notebook cell's shell start and of every ``cellbox exec``.

A container that is not running is left to :meth:`.Container.load` (see
:func:`exec_running`), which finishes it if it just ended and says what to do.
"""

from __future__ import annotations

import os

from . import containerfiles, rawsettings
from .errors import ConfigError, ContainerError, ContainerNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["exec_process", "exec_running", "merge_env", "parse_env"]


def parse_env(items: list[str], environ: Mapping[str, str]) -> list[str]:
    """``-e`` values as KEY=VALUE; a bare KEY takes the host's value or is dropped."""
    out = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key or "\0" in key:
            raise ConfigError(f"-e: {item!r} is not KEY=VALUE")
        if sep:
            out.append(item)
        elif key in environ:
            out.append(f"{key}={environ[key]}")
    return out


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """``base`` with each KEY=VALUE of ``overrides`` replacing the same KEY, in order."""
    keys: dict[str, int] = {}
    out: list[str] = []
    for item in [*base, *overrides]:
        key = item.partition("=")[0]
        if key in keys:
            out[keys[key]] = item
        else:
            keys[key] = len(out)
            out.append(item)
    return out


def exec_process(
    args: list[str],
    *,
    container_env: list[str],
    container_workdir: str | None,
    container_user: str | None,
    tty: bool = False,
    env: list[str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """The exec'd process as the dict form of ``sandbox.ProcessSpec`` (what exec_in takes).

    The container's env, working directory and user apply unless ``-e``/``-w``/``-u``
    say otherwise, as with ``docker exec``.
    """
    if not args:
        raise ContainerError("exec needs a command to run")
    return {
        "args": list(args),
        "env": merge_env(container_env, parse_env(env or [], os.environ)),
        "cwd": workdir or container_workdir or "/",
        "user": (container_user or "") if user is None else user,
        "tty": tty,
    }


def _str_list(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def exec_running(
    key: str,
    args: list[str],
    *,
    tty: bool = False,
    env: list[str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    control_fd: int | None = None,
    root: str | None = None,
) -> int | None:
    """Run ``args`` in the running container ``key`` (name, id or id prefix) from here.

    Returns the command's exit status, or None when the container is not running (or its
    files do not read as expected): the caller then goes the long way through
    :class:`.Container`, which cleans up after a container that has just ended and raises
    the error a user should see. ``root`` is the cellbox root (default: the settings').
    Single-threaded callers only (see :func:`.nsexec.exec_in`).
    """
    containers = os.path.join(root or rawsettings.root_dir(), "containers")
    container_id = containerfiles.find_id(containers, key)
    directory = os.path.join(containers, container_id)
    try:
        state = containerfiles.load_json(os.path.join(directory, "state.json"))
        config = containerfiles.load_json(os.path.join(directory, "config.json"))
    except FileNotFoundError:
        raise ContainerNotFound(f"container {container_id[:12]} was removed") from None
    if not isinstance(state, dict) or not isinstance(config, dict):
        return None
    pid, ticks, boot = state.get("pid"), state.get("start_ticks"), state.get("boot_id")
    procs = _str_list(state.get("cgroup_procs"))
    container_env = _str_list(config.get("env"))
    if (state.get("status") != "running" or not isinstance(pid, int)
            or not isinstance(ticks, int) or not isinstance(boot, str) or procs is None
            or container_env is None
            or not containerfiles.process_alive(pid, ticks, boot)):
        return None
    workdir_default, user_default = config.get("workdir"), config.get("user")
    process = exec_process(
        args, container_env=container_env,
        container_workdir=workdir_default if isinstance(workdir_default, str) else None,
        container_user=user_default if isinstance(user_default, str) else None,
        tty=tty, env=env, workdir=workdir, user=user,
    )
    from .nsexec import exec_in

    return exec_in(pid, process, cgroup_procs=procs, start_time=ticks, control_fd=control_fd)
