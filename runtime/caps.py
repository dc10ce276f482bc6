"""Linux capabilities: names, Docker's default set, and dropping to a set.

``DEFAULT_CAPS`` is Docker's (and podman's) default for containers; for uid 0 it gives
``CapEff: 00000000a80425fb`` in /proc/self/status. :func:`mask` turns names into a bit mask
(pure); :func:`drop_to` applies a mask to the calling process, in the order the kernel
requires:

1. the bounding set first, with ``PR_CAPBSET_DROP`` — this is what limits root after
   execve (capset alone is undone by exec for uid 0), and it needs CAP_SETPCAP, so it must
   happen before CAP_SETPCAP itself is dropped;
2. the ambient set cleared;
3. effective = permitted = the mask, inheritable empty (Docker dropped inheritable
   capabilities for CVE-2022-24769) — with capset, last.

Changing uid to non-root between 2 and 3 clears permitted and effective, as for Docker's
non-root users: they keep only the bounding set.
"""

from __future__ import annotations

from . import linux
from .errors import ConfigError

__all__ = [
    "CAPABILITIES", "DEFAULT_CAPS", "LAST_CAP", "drop_bounding", "drop_to", "mask", "names",
]

CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
LAST_CAP = max(CAPABILITIES.values())

DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def _normalise(name: str) -> str:
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") else f"CAP_{upper}"


def mask(cap_names: list[str] | tuple[str, ...] | None) -> int:
    """The bit mask of ``cap_names`` (``None`` = Docker's default set).

    Names may omit the ``CAP_`` prefix and use any case; ``ALL`` means every capability.
    """
    if cap_names is None:
        cap_names = DEFAULT_CAPS
    bits = 0
    for raw in cap_names:
        name = _normalise(raw)
        if name == "CAP_ALL":
            return (1 << (LAST_CAP + 1)) - 1
        if name not in CAPABILITIES:
            raise ConfigError(
                f"unknown capability {raw!r}; known: "
                + ", ".join(n.removeprefix("CAP_") for n in CAPABILITIES)
            )
        bits |= 1 << CAPABILITIES[name]
    return bits


def names(bits: int) -> list[str]:
    """The capability names in ``bits``, in kernel order."""
    return [name for name, number in CAPABILITIES.items() if bits & (1 << number)]


def _last_cap() -> int:
    """The highest capability this kernel knows (newer kernels may know more than we do)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return LAST_CAP


def drop_bounding(keep: int) -> None:
    """Remove every capability not in ``keep`` from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(_last_cap() + 1):
        if not keep & (1 << cap):
            linux.cap_bound_drop(cap)


def drop_to(keep: int, *, bounding: bool = True) -> None:
    """Reduce the calling process's capabilities to ``keep`` (see the module docstring).

    With ``bounding`` false only ambient, effective, permitted and inheritable change
    (for a process that never execs, like the container's PID 1 after set-up).
    """
    if bounding:
        drop_bounding(keep)
    linux.cap_ambient_clear()
    _effective, permitted, _inheritable = linux.capget()
    keep &= permitted
    linux.capset(keep, keep, 0)
