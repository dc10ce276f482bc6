"""The container's seccomp filter: a classic BPF program generated in pure Python.

No libseccomp at run time (pyseccomp alone costs ~55 ms of import on the start path). The
policy is a deny list at least as strict as Docker's default profile for a container
without CAP_SYS_ADMIN:

* the architecture is checked first: the host's native one (x86_64 or aarch64) passes,
  anything else (i386 via int 0x80, arm32 compat) is killed — a compat syscall has other
  numbers and would slip past the table; x32 syscalls (nr with bit 30) get EPERM;
* mount and the new mount API, pivot_root, namespaces (unshare, setns, clone with any
  CLONE_NEW* flag — a masked check of clone's flags — and clone3, which gets ENOSYS so
  that libc falls back to clone, whose flags we can see), modules, kexec, keyrings, bpf,
  perf, userfaultfd, io_uring (its operations bypass seccomp), swap, reboot, clock and
  time setting, syslog, acct, handle-based opens, raw I/O ports, quotactl, kcmp,
  process_vm_readv/writev, obsolete calls, and personality() except the values Docker
  allows, all fail with EPERM.
* ptrace is allowed, as Docker does on kernels >= 4.8 (where seccomp is re-checked after a
  tracer changes a syscall): strace and gdb work inside a notebook, and the kernel's own
  checks still stop a workload from tracing what it must not (the container's PID 1 is not
  dumpable and keeps capabilities the workload lacks, and nothing outside the PID
  namespace is visible).

:func:`program` returns the bytes for ``seccomp(SECCOMP_SET_MODE_FILTER)``, built once per
process. :func:`run_filter` is a tiny interpreter of the BPF subset we emit, for tests.
"""

from __future__ import annotations

import errno
import os
import struct

__all__ = [
    "ARCHES",
    "AUDIT_ARCH_AARCH64",
    "AUDIT_ARCH_I386",
    "AUDIT_ARCH_X86_64",
    "BLOCKED",
    "SECCOMP_RET_ALLOW",
    "SECCOMP_RET_ERRNO",
    "SECCOMP_RET_KILL_PROCESS",
    "build",
    "program",
    "run_filter",
]

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
AUDIT_ARCH_I386 = 0x40000003

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

_X32_SYSCALL_BIT = 0x40000000

# classic BPF opcodes we use
_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JMP_JEQ_K = 0x15
_JMP_JGE_K = 0x35
_JMP_JSET_K = 0x45
_JMP_JGT_K = 0x25
_ALU_AND_K = 0x54
_RET_K = 0x06

# struct seccomp_data offsets
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG0_LO = 16  # little-endian: the low 32 bits of args[0] come first

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET. (CLONE_NEWTIME is
# 0x80, which in clone()'s flags is part of the exit signal: clone cannot ask for it.)
CLONE_NS_MASK = 0x7E020000

# personality() values Docker's profile allows: PER_LINUX, PER_LINUX32, UNAME26,
# UNAME26|PER_LINUX32, and 0xffffffff (query).
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# Every syscall the filter refuses outright, by name. clone and personality are checked
# on their arguments; clone3 answers ENOSYS.
BLOCKED: tuple[str, ...] = (
    "mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "move_mount",
    "open_tree", "open_tree_attr", "fspick", "mount_setattr",
    "unshare", "setns",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "get_kernel_syms", "query_module",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "swapon", "swapoff", "reboot", "syslog", "acct",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "open_by_handle_at", "name_to_handle_at",
    "iopl", "ioperm", "lookup_dcookie", "quotactl", "quotactl_fd", "nfsservctl",
    "kcmp", "process_vm_readv", "process_vm_writev",
    "uselib", "ustat", "sysfs", "_sysctl", "vhangup",
    "afs_syscall", "tuxcall", "security", "getpmsg", "putpmsg", "vserver",
)

# Syscall numbers of the names above (and clone, clone3, personality, ptrace) per
# architecture. Names a table lacks do not exist there (iopl on aarch64).
_X86_64: dict[str, int] = {
    "clone": 56, "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135,
    "ustat": 136, "sysfs": 139, "vhangup": 153, "pivot_root": 155, "_sysctl": 156,
    "adjtimex": 159, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166,
    "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173,
    "create_module": 174, "init_module": 175, "delete_module": 176, "get_kernel_syms": 177,
    "query_module": 178, "quotactl": 179, "nfsservctl": 180, "getpmsg": 181, "putpmsg": 182,
    "afs_syscall": 183, "tuxcall": 184, "security": 185, "lookup_dcookie": 212,
    "clock_settime": 227, "vserver": 236, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
}
_AARCH64: dict[str, int] = {
    "lookup_dcookie": 18, "umount2": 39, "mount": 40, "pivot_root": 41, "nfsservctl": 42,
    "vhangup": 58, "quotactl": 60, "acct": 89, "personality": 92, "unshare": 97,
    "kexec_load": 104, "init_module": 105, "delete_module": 106, "clock_settime": 112,
    "syslog": 116, "ptrace": 117, "reboot": 142, "settimeofday": 170, "adjtimex": 171,
    "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224,
    "swapoff": 225, "perf_event_open": 241, "name_to_handle_at": 264,
    "open_by_handle_at": 265, "clock_adjtime": 266, "setns": 268, "process_vm_readv": 270,
    "process_vm_writev": 271, "kcmp": 272, "finit_module": 273, "bpf": 280,
    "userfaultfd": 282, "kexec_file_load": 294,
}
# Numbers from 424 on are the same on every architecture.
_COMMON: dict[str, int] = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443,
    "open_tree_attr": 467,
}

ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (AUDIT_ARCH_X86_64, {**_X86_64, **_COMMON}),
    "aarch64": (AUDIT_ARCH_AARCH64, {**_AARCH64, **_COMMON}),
}


def _insn(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k & 0xFFFFFFFF)


Insn = tuple[int, int, int, int]


def _arch_body(numbers: dict[str, int], *, x86: bool) -> list[Insn]:
    eperm = SECCOMP_RET_ERRNO | errno.EPERM
    body: list[Insn] = [_insn(_LD_W_ABS, _OFF_NR)]
    if x86:
        # x32 ABI: the same numbers with bit 30 set; refuse the whole ABI.
        body += [_insn(_JMP_JGE_K, _X32_SYSCALL_BIT, 0, 1), _insn(_RET_K, eperm)]
    for nr in sorted({numbers[name] for name in BLOCKED if name in numbers}):
        body += [_insn(_JMP_JEQ_K, nr, 0, 1), _insn(_RET_K, eperm)]
    body += [
        _insn(_JMP_JEQ_K, numbers["clone3"], 0, 1),
        _insn(_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS),
        # clone: refuse any namespace flag in the low 32 bits of args[0] (the kernel uses
        # only those for clone's flags).
        _insn(_JMP_JEQ_K, numbers["clone"], 0, 4),
        _insn(_LD_W_ABS, _OFF_ARG0_LO),
        _insn(_JMP_JSET_K, CLONE_NS_MASK, 0, 1),
        _insn(_RET_K, eperm),
        _insn(_RET_K, SECCOMP_RET_ALLOW),
    ]
    allowed = PERSONALITY_ALLOWED
    body.append(_insn(_JMP_JEQ_K, numbers["personality"], 0, len(allowed) + 3))
    body.append(_insn(_LD_W_ABS, _OFF_ARG0_LO))
    for i, value in enumerate(allowed):
        # jump over the remaining compares and the EPERM to the ALLOW
        body.append(_insn(_JMP_JEQ_K, value, len(allowed) - i, 0))
    body += [_insn(_RET_K, eperm), _insn(_RET_K, SECCOMP_RET_ALLOW)]
    body.append(_insn(_RET_K, SECCOMP_RET_ALLOW))
    return body


def build(arch: str) -> list[Insn]:
    """The filter for a process of architecture ``arch`` ("x86_64" or "aarch64")."""
    if arch not in ARCHES:
        raise ValueError(f"no seccomp table for architecture {arch!r}")
    audit_arch, numbers = ARCHES[arch]
    body = _arch_body(numbers, x86=arch == "x86_64")
    head = [
        _insn(_LD_W_ABS, _OFF_ARCH),
        _insn(_JMP_JEQ_K, audit_arch, 1, 0),
        _insn(_RET_K, SECCOMP_RET_KILL_PROCESS),
    ]
    prog = head + body
    for code, jt, jf, _k in prog:
        if code & 0x07 == 0x05 and (jt > 255 or jf > 255):
            raise AssertionError("BPF jump out of range")  # cannot happen with this layout
    return prog


def encode(prog: list[Insn]) -> bytes:
    """``struct sock_filter[]`` bytes."""
    return b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in prog)


_cached: bytes | None = None


def program() -> bytes:
    """The encoded filter for this machine, built on first use and cached."""
    global _cached
    if _cached is None:
        _cached = encode(build(os.uname().machine))
    return _cached


def run_filter(prog: list[Insn], arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """Evaluate ``prog`` on one syscall (a test helper): returns the SECCOMP_RET_* value.

    Knows the classic BPF subset seccomp filters use: absolute word loads, AND, and the
    JA/JEQ/JGT/JGE/JSET jumps.
    """
    full_args = (tuple(args) + (0,) * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & (2**64 - 1) for a in full_args])
    acc = 0
    pc = 0
    while True:
        if pc >= len(prog):
            raise ValueError("BPF program ran off its end")
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == _LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == _RET_K:
            return k
        elif code == _JMP_JA:
            pc += k
        elif code == _JMP_JEQ_K:
            pc += jt if acc == k else jf
        elif code == _JMP_JGE_K:
            pc += jt if acc >= k else jf
        elif code == _JMP_JSET_K:
            pc += jt if acc & k else jf
        elif code == _JMP_JGT_K:
            pc += jt if acc > k else jf
        elif code == _ALU_AND_K:  # libseccomp uses it (for cross-checks in tests)
            acc &= k
        else:
            raise ValueError(f"unsupported BPF opcode {code:#x} at {pc - 1}")
