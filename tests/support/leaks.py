"""What a test could leave behind on the machine, so the suite can prove it leaves nothing.

``snapshot()`` records mounts, cellbox cgroups, named network namespaces, veth links,
container processes and docker-registry processes. ``leaked(before)`` waits a little (some
teardown in the kernel is asynchronous) and returns what is new since ``before``.

Several test sessions may share a machine (developers run suites side by side), so cgroups
and container processes are only counted when they belong to this session: its cgroup
parent (``CELLBOX_CGROUP_PARENT``, set per session by tests/conftest.py) or its store root
(``CELLBOX_ROOT`` or ``CELLBOX_TEST_SCOPE`` in the process's command line), and veths
only when they are not on another session's bridge or another session's uplink, and
mounts only when they are not under another session's temporary directory (scripts/test.sh
runs the machine's suites in pytest-xdist workers side by side, each a session of its own).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Snapshot", "leaked", "snapshot", "sweep_session"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _foreign_tmp() -> tuple[str, str] | None:
    """(the root of every pytest session's temporary files, this session's own), when the
    session said where its own are (CELLBOX_TEST_TMP, tests/conftest.py)."""
    own = os.environ.get("CELLBOX_TEST_TMP")
    if not own:
        return None
    for parent in Path(own).parents:
        if parent.name.startswith("pytest-of-"):  # pytest's default place
            return f"{parent}/", f"{own}/"
    if Path(own).name.startswith("popen-gw"):  # an xdist worker under --basetemp
        return f"{Path(own).parent}/", f"{own}/"
    return None


def _mounts() -> set[str]:
    """Mounts, but for those under another session's temporary directory (another pytest
    session or xdist worker running beside this one)."""
    tmp = _foreign_tmp()
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            root, point = line.split()[3:5]
            if tmp and point.startswith(tmp[0]) and not f"{point}/".startswith(tmp[1]):
                continue
            found.add(f"{root} {point}")
    return found


def _scope_words() -> tuple[str, ...]:
    words = [
        os.environ.get("CELLBOX_CGROUP_PARENT", "cellbox"),
        os.environ.get("CELLBOX_TEST_SCOPE", ""),
    ]
    return tuple(w for w in words if w)


def _named(word: str, text: str) -> bool:
    """``word`` in ``text``, not as the start of a longer pid: the scope of the session with
    pid 123 is not that of pid 1234 (sessions run side by side, see scripts/test.sh)."""
    return re.search(re.escape(word) + r"(?!\d)", text) is not None


def _cgroups() -> set[str]:
    found = set()
    parent = os.environ.get("CELLBOX_CGROUP_PARENT", "cellbox")
    for depth1 in CGROUP_ROOT.iterdir():
        try:
            for path in depth1.rglob(f"*{parent}*"):
                if path.is_dir() and _named(parent, path.name):
                    found.add(str(path))
        except OSError:
            continue
    return found


def _netns() -> set[str]:
    run = Path("/run/netns")
    return {p.name for p in run.iterdir()} if run.is_dir() else set()


def _foreign_bridge(dev: Path) -> bool:
    """Whether ``dev`` is enslaved to another test session's bridge (cbxtest<pid>,
    cbxui<pid>): that session's container, not ours, so not our leak either."""
    try:
        master = os.path.basename(os.readlink(dev / "master"))
    except OSError:
        return False  # no master (yet, or any more): counted
    ours = os.environ.get("CELLBOX_BRIDGE", "")
    return master != ours and master.startswith(("cbxtest", "cbxui"))


def _foreign_uplink(name: str) -> bool:
    """Whether ``name`` is another session's uplink to an 'outside' netns
    (``cbxo<pid of the session>``, tests/privileged/test_network_bridge.py)."""
    found = re.fullmatch(r"cbxo(\d+)", name)
    return found is not None and int(found[1]) != os.getpid()


def _links() -> set[str]:
    found = set()
    for dev in Path("/sys/class/net").iterdir():
        kind = ""
        try:
            uevent = (dev / "uevent").read_text()
        except OSError:
            continue
        for line in uevent.splitlines():
            if line.startswith("DEVTYPE="):
                kind = line.split("=", 1)[1]
        if kind == "veth" and not _foreign_bridge(dev) and not _foreign_uplink(dev.name):
            found.add(dev.name)
    return found


def _processes() -> set[str]:
    own = os.readlink("/proc/self/ns/pid")
    scope = _scope_words()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.readlink(f"/proc/{entry}/ns/pid")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            cgroup = Path(f"/proc/{entry}/cgroup").read_text()
        except OSError:
            continue
        text = cmdline.decode(errors="replace").strip()
        if not text:
            continue  # kernel thread or zombie
        ours = any(_named(word, text) or _named(word, cgroup) for word in scope)
        if ours and (ns != own or "cellbox" in text or "docker-registry" in text):
            found.add(f"{entry} {text[:160]}")
    return found


@dataclass(frozen=True)
class Snapshot:
    mounts: set[str] = field(default_factory=set)
    cgroups: set[str] = field(default_factory=set)
    netns: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    processes: set[str] = field(default_factory=set)


def snapshot() -> Snapshot:
    return Snapshot(_mounts(), _cgroups(), _netns(), _links(), _processes())


def _diff(before: Snapshot, after: Snapshot) -> dict[str, set[str]]:
    out = {}
    for name in ("mounts", "cgroups", "netns", "links", "processes"):
        new = getattr(after, name) - getattr(before, name)
        if new:
            out[name] = new
    return out


def leaked(before: Snapshot, grace: float = 3.0) -> dict[str, set[str]]:
    """What is new since ``before``, after waiting up to ``grace`` seconds for it to go."""
    deadline = time.monotonic() + grace
    while True:
        diff = _diff(before, snapshot())
        if not diff or time.monotonic() > deadline:
            return diff
        time.sleep(0.1)


def sweep_session() -> list[str]:
    """The last resort when a session ends: this session's cgroups still on the machine (a
    test killed half-way, a kernel that died), emptied and removed deepest first.

    Returns what it found, for the session to report as a leak: the suite must neither hide
    leaks nor leave them for the next run.
    """
    if not os.environ.get("CELLBOX_CGROUP_PARENT", "").startswith("cellbox-cbx"):
        return []  # only a test session's own parent, never a real one
    found = sorted(_cgroups())
    for top in found:
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            _empty_cgroup(Path(dirpath))
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
    return found


def _empty_cgroup(path: Path) -> None:
    freezer = path / "freezer.state"
    if freezer.exists():
        freezer.write_text("THAWED")  # a frozen process never gets to die
    for _ in range(50):
        try:
            pids = (path / "cgroup.procs").read_text().split()
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.1)
