"""The seccomp filter, run through a BPF interpreter on (arch, nr, args) tuples, and
cross-checked against libseccomp's syscall tables and its own compiled filter."""

from __future__ import annotations

import errno
import struct
import tempfile

import pytest
from cellbox.runtime import seccomp
from cellbox.runtime.seccomp import (
    ARCHES,
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_I386,
    AUDIT_ARCH_X86_64,
    BLOCKED,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    build,
    run_filter,
)

EPERM = SECCOMP_RET_ERRNO | errno.EPERM
ENOSYS = SECCOMP_RET_ERRNO | errno.ENOSYS
SIGCHLD = 17
CLONE_FLAGS_NS = {
    "NEWNS": 0x00020000, "NEWCGROUP": 0x02000000, "NEWUTS": 0x04000000,
    "NEWIPC": 0x08000000, "NEWUSER": 0x10000000, "NEWPID": 0x20000000,
    "NEWNET": 0x40000000,
}
# what glibc's pthread_create and fork pass
CLONE_THREAD_FLAGS = 0x3D0F00
CLONE_FORK_FLAGS = 0x01200000 | SIGCHLD


@pytest.fixture(params=sorted(ARCHES))
def arch(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def verdict(arch: str, nr: int, *args: int, audit: int | None = None) -> int:
    audit_arch, _ = ARCHES[arch]
    return run_filter(build(arch), audit if audit is not None else audit_arch, nr, args)


def test_everyday_syscalls_are_allowed(arch: str) -> None:
    numbers = ARCHES[arch][1]
    blocked = {numbers[n] for n in (*BLOCKED, "clone", "clone3", "personality")
               if n in numbers}
    for nr in range(0, 460):
        if nr not in blocked:
            assert verdict(arch, nr) == SECCOMP_RET_ALLOW, nr


def test_blocked_syscalls_get_eperm(arch: str) -> None:
    numbers = ARCHES[arch][1]
    present = [name for name in BLOCKED if name in numbers]
    assert {"mount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "bpf",
            "fsopen", "fsmount", "move_mount", "open_tree", "mount_setattr", "fspick",
            "finit_module", "init_module", "kexec_load", "perf_event_open", "userfaultfd",
            "process_vm_writev", "kcmp", "open_by_handle_at", "io_uring_setup"} <= set(present)
    for name in present:
        assert verdict(arch, numbers[name], 0, 0) == EPERM, name


def test_ptrace_is_allowed(arch: str) -> None:
    assert verdict(arch, ARCHES[arch][1]["ptrace"]) == SECCOMP_RET_ALLOW


def test_clone3_gets_enosys(arch: str) -> None:
    assert verdict(arch, 435) == ENOSYS


def test_clone_with_namespace_flags_is_refused(arch: str) -> None:
    clone = ARCHES[arch][1]["clone"]
    assert verdict(arch, clone, CLONE_FORK_FLAGS) == SECCOMP_RET_ALLOW
    assert verdict(arch, clone, CLONE_THREAD_FLAGS) == SECCOMP_RET_ALLOW
    for name, flag in CLONE_FLAGS_NS.items():
        assert verdict(arch, clone, flag | SIGCHLD) == EPERM, name
        assert verdict(arch, clone, CLONE_THREAD_FLAGS | flag) == EPERM, name
    # high bits of the 64-bit argument do not count, as for the kernel
    assert verdict(arch, clone, (1 << 40) | SIGCHLD) == SECCOMP_RET_ALLOW


def test_personality_values(arch: str) -> None:
    nr = ARCHES[arch][1]["personality"]
    for value in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert verdict(arch, nr, value) == SECCOMP_RET_ALLOW, hex(value)
    for value in (0x0040000, 0x0400000, 1):  # ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...
        assert verdict(arch, nr, value) == EPERM, hex(value)


def test_foreign_architectures_are_killed() -> None:
    prog = build("x86_64")
    for audit in (AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, 0):
        assert run_filter(prog, audit, 0) == SECCOMP_RET_KILL_PROCESS
    assert run_filter(build("aarch64"), AUDIT_ARCH_X86_64, 0) == SECCOMP_RET_KILL_PROCESS


def test_x32_syscalls_are_refused() -> None:
    assert verdict("x86_64", 0x40000000 | 0) == EPERM  # x32 read
    assert verdict("x86_64", 0x40000000 | 165) == EPERM  # x32 mount


def test_program_is_cached_and_encoded() -> None:
    first = seccomp.program()
    assert first is seccomp.program()
    assert len(first) % 8 == 0 and len(first) // 8 < 4096
    decoded = [struct.unpack_from("HBBI", first, i) for i in range(0, len(first), 8)]
    assert decoded[0] == (0x20, 0, 0, 4)  # load the architecture first


def test_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="riscv"):
        build("riscv64")


pyseccomp = pytest.importorskip("pyseccomp")
_LIBSECCOMP_ARCH = {"x86_64": "X86_64", "aarch64": "AARCH64"}


def test_numbers_match_libseccomp(arch: str) -> None:
    lib_arch = getattr(pyseccomp.Arch, _LIBSECCOMP_ARCH[arch])
    numbers = ARCHES[arch][1]
    for name, nr in numbers.items():
        theirs = pyseccomp.resolve_syscall(lib_arch, name)
        if theirs == -1:  # newer than this libseccomp (open_tree_attr)
            continue
        assert theirs == nr, name
    for name in BLOCKED:
        if name not in numbers:
            # absent from our table: libseccomp must agree it does not exist there
            assert pyseccomp.resolve_syscall(lib_arch, name) < 0, name


def _libseccomp_program() -> list[tuple[int, int, int, int]]:
    f = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in BLOCKED:
        if pyseccomp.resolve_syscall(pyseccomp.Arch.X86_64, name) >= 0:
            f.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
    f.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    for flag in CLONE_FLAGS_NS.values():
        f.add_rule(pyseccomp.ERRNO(errno.EPERM), "clone",
                   pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        data = out.read()
    return [struct.unpack_from("HBBI", data, i) for i in range(0, len(data), 8)]


@pytest.mark.skipif(__import__("os").uname().machine != "x86_64", reason="x86_64 host")
def test_same_verdicts_as_libseccomp() -> None:
    theirs = _libseccomp_program()
    ours = build("x86_64")
    personality = ARCHES["x86_64"][1]["personality"]
    clone = ARCHES["x86_64"][1]["clone"]
    cases: list[tuple[int, tuple[int, ...]]] = [
        (nr, (0,)) for nr in range(0, 460) if nr not in (personality, clone)
    ]
    cases += [(clone, (flags,)) for flags in
              (CLONE_FORK_FLAGS, CLONE_THREAD_FLAGS,
               *[f | SIGCHLD for f in CLONE_FLAGS_NS.values()])]
    for nr, args in cases:
        a = run_filter(ours, AUDIT_ARCH_X86_64, nr, args)
        b = run_filter(theirs, AUDIT_ARCH_X86_64, nr, args)
        assert a == b, (nr, args, hex(a), hex(b))
