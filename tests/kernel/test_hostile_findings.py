"""Holes in other modules, found while writing docs/security.md: each test shows one.

These tests fail until the owner of the module fixes the hole; the docstring of each says
where it is and how it could be fixed. They are kept out of xfail on purpose: a hole
should be seen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.driver import KernelDriver, start_kernel

STEAL = r"""cat > /tmp/steal.py <<'EOF'
import os, re, sys
# Read the cell shell (our parent) and print the end markers it may be waiting for.
found = []
with open(f"/proc/{os.getppid()}/maps") as maps, \
        open(f"/proc/{os.getppid()}/mem", "rb", 0) as mem:
    for line in maps:
        span, perms = line.split()[:2]
        start, end = (int(x, 16) for x in span.split("-"))
        if "r" not in perms or end - start > 64 << 20 or "[v" in line:
            continue
        try:
            mem.seek(start)
            found += re.findall(rb"036' ([0-9a-f]{32})", mem.read(end - start))
        except OSError:
            pass
for nonce in dict.fromkeys(reversed(found)):
    sys.stdout.write("\x1e%s 0\x1e" % nonce.decode())
EOF
"""


def test_a_program_that_reads_the_shell_cannot_end_its_cell_early(kernel: KernelDriver) -> None:
    """kernel/protocol.py + kernel/shell.py: the end-of-cell nonce is typed into the shell
    (``cell_line``), so it sits in bash's memory while the cell runs. Every process of the
    cell has bash's uid, seccomp allows ptrace (runtime/seccomp.py, as Docker does) and
    bash is dumpable, so a program can read ``/proc/$PPID/mem``, print the marker and end
    its cell early with status 0; the real marker (status 9) then shows up as text in the
    *next* cell, with the rest of the program's output.

    Suggested fix: (1) in ``ShellOutput._framed`` keep the nonce that matched in the stale
    set, so its second (real) marker is swallowed and not shown as text; (2) accept an end
    marker only when the relay confirms the shell itself is back in the terminal's
    foreground (the ``reading`` event with the shell's pid, or the foreground process
    group read with TIOCGPGRP by the exec relay and sent on the control socket) — a
    printed marker while the cell's job holds the terminal is then just text.
    """
    kernel.ok("%container debian:bookworm --network none")
    kernel.ok(STEAL)
    started = time.monotonic()
    result = kernel.run("python3 /tmp/steal.py; sleep 2; echo AFTER-FAKE; (exit 9)")
    elapsed = time.monotonic() - started
    following = kernel.run("echo next")
    assert following.stdout == "next\n", following.stdout
    assert elapsed >= 2, f"the cell was ended after {elapsed:.1f} s by a forged marker"
    assert result.error == ("ExitStatus", "exit status 9")


@pytest.fixture
def home_notebook(kernel_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KernelDriver]:
    """A kernel whose notebook directory is the user's home (Jupyter started in ~)."""
    (kernel_env / ".bashrc").write_text("# the user's own\n")
    monkeypatch.setenv("HOME", str(kernel_env))
    driver = start_kernel(kernel_env)
    try:
        yield driver
    finally:
        driver.shutdown()


def test_a_container_cannot_plant_code_in_the_users_home(home_notebook: KernelDriver) -> None:
    """kernel/session.py ``NotebookSession._config``: the notebook's directory is bind-mounted
    read-write at /notebook. When that directory is the user's home (a Jupyter server
    started in ``~``, JupyterHub's default), a container writes ``~/.bashrc``,
    ``~/.ssh/authorized_keys``, ``~/.jupyter/jupyter_server_config.py`` or
    ``~/.ipython/profile_default/startup/*.py`` — code the host then runs as the user (in
    root mode, files owned by root).

    Suggested fix: when the notebook directory is $HOME or one of its ancestors, do not
    mount it read-write — mount it read-only (and say so once, with an option such as
    ``-v .:/notebook`` to ask for write access explicitly), or mount a tmpfs over its
    dot-directories and dotfiles.
    """
    home = home_notebook.notebook
    home_notebook.run(
        "%container busybox --network none\n"
        "echo 'echo PLANTED' >> /notebook/.bashrc; mkdir -p /notebook/.ssh; "
        "echo 'ssh-ed25519 AAAA attacker' >> /notebook/.ssh/authorized_keys"
    )
    assert (home / ".bashrc").read_text() == "# the user's own\n"
    assert not (home / ".ssh" / "authorized_keys").exists()
