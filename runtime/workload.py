"""What a container process does between fork and execve: become the workload.

Shared by the container's PID 1 (starting the workload, :mod:`_init`) and by exec
(:mod:`nsexec`), so that both give exactly the same process: called in the forked child,
inside the container's namespaces and root, :func:`become` runs

1. ``setsid`` (and the pty as controlling terminal), stdio in place, signals reset to
   their defaults (Python ignores SIGPIPE), umask 022;
2. the user: ``ProcessSpec.user`` resolved against the container's own /etc/passwd and
   /etc/group (read inside the container's root, so a symlink in the image cannot point
   them at the host), else the numeric uid/gid; HOME from passwd, PATH and HOSTNAME
   defaults like Docker;
3. the working directory (created when missing for the workload, like Docker; an error
   for exec) and the program found on the container's PATH;
4. every fd but 0, 1, 2 marked close-on-exec (close_range);
5. capabilities (bounding set first, :mod:`caps`), groups, gid, uid, no_new_privs and the
   seccomp filter (:mod:`seccomp`) — in the order each step still has the privilege it
   needs;
6. execve.

A failure is written to ``error_fd`` (close-on-exec, so the parent reads EOF when execve
succeeded) as JSON ``{"error": ..., "exit_code": ...}``, and the child exits with that code.

The passwd/group parsers are pure and unit-tested.
"""

from __future__ import annotations

import errno
import os
import stat

from . import _leanjson as json
from . import caps, linux, seccomp

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Mapping
    from typing import Any, NoReturn
else:
    import _signal as signal  # not signal.py: it imports enum, on every container start

__all__ = [
    "DEFAULT_PATH",
    "User",
    "WorkloadError",
    "become",
    "build_env",
    "find_program",
    "parse_group",
    "parse_passwd",
    "resolve_user",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_DB_BYTES = 4 << 20
_RESET_SIGNALS = tuple(
    s for s in range(1, signal.NSIG) if s not in (signal.SIGKILL, signal.SIGSTOP)
)


class WorkloadError(Exception):
    """The workload could not be started; ``exit_code`` as Docker reports it."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class User:
    """A resolved user: uid, gid, supplementary groups and home directory."""

    __slots__ = ("gid", "groups", "home", "uid")

    def __init__(self, uid: int, gid: int, groups: list[int], home: str) -> None:
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.home = home

    def __repr__(self) -> str:
        return f"User(uid={self.uid}, gid={self.gid}, groups={self.groups}, home={self.home!r})"


def parse_passwd(text: str) -> list[tuple[str, int, int, str]]:
    """(name, uid, gid, home) of each well-formed /etc/passwd line."""
    entries = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 7 or line.startswith("#"):
            continue
        try:
            entries.append((fields[0], int(fields[2]), int(fields[3]), fields[5]))
        except ValueError:
            continue
    return entries


def parse_group(text: str) -> list[tuple[str, int, list[str]]]:
    """(name, gid, members) of each well-formed /etc/group line."""
    entries = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 4 or line.startswith("#"):
            continue
        try:
            members = [m for m in fields[3].split(",") if m]
            entries.append((fields[0], int(fields[2]), members))
        except ValueError:
            continue
    return entries


def _read_db(path: str) -> str:
    """A user database file of the container (we are inside its root), size-capped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""  # a FIFO or device in the image must not hang or feed us
        return os.read(fd, _MAX_DB_BYTES).decode("utf-8", "replace")
    finally:
        os.close(fd)


def resolve_user(spec: str, passwd: str, group: str) -> User:
    """Resolve a Docker ``--user`` value ("name", "uid", "name:group", "uid:gid").

    Raises :class:`WorkloadError` for a name that is in neither database.
    """
    user_part, _, group_part = spec.partition(":")
    users = parse_passwd(passwd)
    groups = parse_group(group)
    name = None
    if user_part.isdigit():
        uid = int(user_part)
        match = next((u for u in users if u[1] == uid), None)
    else:
        match = next((u for u in users if u[0] == user_part), None)
        if match is None:
            raise WorkloadError(
                f"unable to find user {user_part}: no matching entries in passwd file", 125
            )
        uid = match[1]
    if match is not None:
        name, gid, home = match[0], match[2], match[3] or "/"
    else:
        gid, home = 0, "/"
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            found = next((g for g in groups if g[0] == group_part), None)
            if found is None:
                raise WorkloadError(
                    f"unable to find group {group_part}: no matching entries in group file",
                    125,
                )
            gid = found[1]
    supplementary = [g[1] for g in groups if name is not None and name in g[2]]
    return User(uid, gid, sorted(set(supplementary) - {gid}), home)


def build_env(env: list[str], *, home: str, hostname: str | None, tty: bool) -> list[str]:
    """The workload's environment: the spec's, plus Docker's defaults where missing."""
    names = {item.partition("=")[0] for item in env}
    out = list(env)
    if "PATH" not in names:
        out.insert(0, f"PATH={DEFAULT_PATH}")
    if hostname is not None and "HOSTNAME" not in names:
        out.append(f"HOSTNAME={hostname}")
    if tty and "TERM" not in names:
        out.append("TERM=xterm")
    if "HOME" not in names:
        out.append(f"HOME={home}")
    return out


def find_program(name: str, path: str) -> str:
    """The file execve should run for ``name``, looked up on ``path`` like execvp."""
    if "/" in name:
        return name
    denied = False
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if os.access(candidate, os.X_OK):
            return candidate
        denied = True
    if denied:
        raise WorkloadError(f'exec: "{name}": permission denied', 126)
    raise WorkloadError(f'exec: "{name}": executable file not found in $PATH', 127)


def _env_value(env: list[str], key: str) -> str | None:
    for item in env:
        name, sep, value = item.partition("=")
        if sep and name == key:
            return value
    return None


def _chdir(cwd: str, create: bool) -> None:
    try:
        os.chdir(cwd)
        return
    except FileNotFoundError:
        if not create:
            raise WorkloadError(
                f"chdir to cwd ({cwd!r}) set in config: no such file or directory", 126
            ) from None
    except OSError as exc:
        raise WorkloadError(f"chdir to cwd ({cwd!r}): {exc.strerror}", 126) from None
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
        os.chdir(cwd)
    except OSError as exc:
        raise WorkloadError(f"cannot create the working directory {cwd!r}: {exc}") from None


def _setgroups(groups: list[int]) -> None:
    try:
        os.setgroups(groups)
    except PermissionError:
        # A rootless single-id mapping denies setgroups; that is fine if nothing changes.
        if set(groups) - set(os.getgroups()):
            raise WorkloadError(
                "cannot set supplementary groups: setgroups is denied in this user "
                "namespace (rootless without a subordinate gid range)"
            ) from None


def _env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep and key:
            out[key] = value
    return out


def _exec_error(exc: OSError, program: str) -> WorkloadError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return WorkloadError(f"exec {program}: no such file or directory", 127)
    if exc.errno == errno.EACCES:
        return WorkloadError(f"exec {program}: permission denied", 126)
    if exc.errno == errno.ENOEXEC:
        return WorkloadError(f"exec {program}: exec format error", 126)
    return WorkloadError(f"exec {program}: {exc.strerror}", 126)


def _prepare(process: Mapping[str, Any], *, create_cwd: bool,
             hostname: str | None) -> tuple[str, list[str], list[str], User]:
    user_spec = process.get("user") or ""
    if user_spec:
        user = resolve_user(user_spec, _read_db("/etc/passwd"), _read_db("/etc/group"))
    else:
        home = "/root" if int(process.get("uid", 0)) == 0 else "/"
        user = User(int(process.get("uid", 0)), int(process.get("gid", 0)),
                    [int(g) for g in process.get("additional_gids") or []], home)
        if user.uid:
            match = next((u for u in parse_passwd(_read_db("/etc/passwd"))
                          if u[1] == user.uid), None)
            user.home = match[3] if match else "/"
    user.groups = sorted(set(user.groups) | {int(g) for g in process.get("additional_gids")
                                              or []})
    args = [str(a) for a in process["args"]]
    env = build_env([str(e) for e in process.get("env") or []], home=user.home,
                    hostname=hostname, tty=bool(process.get("tty")))
    _chdir(str(process.get("cwd") or "/"), create_cwd)
    program = find_program(args[0], _env_value(env, "PATH") or DEFAULT_PATH)
    return program, args, env, user


def _drop_privileges(process: Mapping[str, Any], user: User) -> None:
    keep = caps.mask(process.get("capabilities"))
    nnp = bool(process.get("no_new_privs", True))
    use_seccomp = bool(process.get("seccomp", True))
    filter_bytes = seccomp.program() if use_seccomp else b""
    # Bounding set first: it needs CAP_SETPCAP, which may be among the dropped ones.
    caps.drop_bounding(keep)
    linux.cap_ambient_clear()
    if use_seccomp and not nnp:
        # Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we
        # still have it. The filter allows everything that follows.
        linux.seccomp_set_filter(filter_bytes)
    _setgroups(user.groups)
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    caps.drop_to(keep if user.uid == 0 else 0, bounding=False)
    if nnp:
        linux.set_no_new_privs()
        if use_seccomp:
            linux.seccomp_set_filter(filter_bytes)


def become(
    process: Mapping[str, Any],
    *,
    stdio: tuple[int, int, int],
    tty: int | None,
    error_fd: int,
    create_cwd: bool,
    hostname: str | None = None,
) -> NoReturn:
    """Turn the calling (forked) process into the workload; never returns.

    ``process`` is a ProcessSpec as a dict. ``stdio`` are fds to put at 0, 1, 2, or
    ``tty`` the slave of a pty to use for all three as the controlling terminal.
    """
    code = 125
    try:
        signal.set_wakeup_fd(-1)
        for sig in _RESET_SIGNALS:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                linux.default_signal(sig)  # 32 and 33, which glibc keeps to itself
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.setsid()
        if tty is not None:
            linux.tty_set_controlling(tty)
            stdio = (tty, tty, tty)
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target, inheritable=True)
            else:
                os.set_inheritable(fd, True)
        os.umask(0o022)
        program, args, env, user = _prepare(process, create_cwd=create_cwd,
                                            hostname=hostname)
        linux.close_range(3, cloexec=True)
        _drop_privileges(process, user)
        try:
            os.execve(program, args, _env_dict(env))
        except OSError as exc:
            raise _exec_error(exc, program) from None
    except WorkloadError as exc:
        code = exc.exit_code
        message = str(exc)
    except BaseException as exc:
        message = f"starting the process failed: {exc}"
    try:
        os.write(error_fd, json.dumps({"error": message, "exit_code": code}).encode())
    finally:
        os._exit(code)
