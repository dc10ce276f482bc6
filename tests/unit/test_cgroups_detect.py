"""detect(): which cgroup layout a host has, from mountinfo texts of real hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cellbox.runtime.cgroups import CgroupLayout, detect, parse_mountinfo
from cellbox.runtime.cgroups.detect import layout_from_mounts
from cellbox.runtime.errors import CgroupError

# This project's machine: v1 controllers one per mount, systemd's named hierarchy, and a
# cgroup2 "unified" mount that holds only hugetlb.
HYBRID = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# A pure v1 host as CentOS 7 / Debian 9 had them: cpu and cpuacct co-mounted, optional
# fields (shared:N) before the separator, xattr and release_agent options.
PURE_V1 = """\
25 20 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup \
cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup \
cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup \
cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,pids
32 25 0:29 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - \
cgroup cgroup rw,net_cls,net_prio
33 25 0:30 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:15 - cgroup \
cgroup rw,freezer
""".replace("\\\n", "")

# Debian 12 / Fedora with systemd: one cgroup2 mount.
PURE_V2 = """\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 24 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
""".replace("\\\n", "")


def test_hybrid_host_uses_v1_controllers_and_keeps_the_unified_mount(tmp_path: Path) -> None:
    unified = tmp_path / "sys/fs/cgroup/unified"
    unified.mkdir(parents=True)
    (unified / "cgroup.controllers").write_text("hugetlb\n")
    (tmp_path / "mountinfo").write_text(HYBRID)

    layout = detect(tmp_path / "mountinfo", root=tmp_path)

    assert layout.version == "hybrid"
    assert layout.driver == "v1"
    assert layout.v1["memory"] == str(tmp_path / "sys/fs/cgroup/memory")
    assert layout.v1["cpu"] == str(tmp_path / "sys/fs/cgroup/cpu")
    assert layout.v1["cpuacct"] == str(tmp_path / "sys/fs/cgroup/cpuacct")
    assert set(layout.v1) == {
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"
    }
    assert layout.v2 == str(unified)
    assert layout.v2_controllers == {"hugetlb"}


def test_pure_v1_with_co_mounted_cpu_and_cpuacct() -> None:
    mounts = parse_mountinfo(PURE_V1)
    layout = detect_from(PURE_V1)

    assert layout.version == "v1"
    assert layout.v2 is None
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.v1["net_prio"] == "/sys/fs/cgroup/net_cls,net_prio"
    # name=systemd is a hierarchy without controllers; xattr/release_agent are not ones.
    systemd = next(m for m in mounts if m.name == "systemd")
    assert systemd.controllers == frozenset()
    assert "xattr" not in layout.v1 and "rw" not in layout.v1


def test_pure_v2_reads_the_controllers_of_the_root(tmp_path: Path) -> None:
    cgroup = tmp_path / "sys/fs/cgroup"
    cgroup.mkdir(parents=True)
    (cgroup / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (tmp_path / "mountinfo").write_text(PURE_V2)

    layout = detect(tmp_path / "mountinfo", root=tmp_path)

    assert layout == CgroupLayout(
        "v2", {}, cgroup, frozenset({"cpuset", "cpu", "io", "memory", "hugetlb", "pids",
                                     "rdma", "misc"})
    )
    assert layout.driver == "v2"


def test_mount_points_with_escaped_spaces() -> None:
    text = r"40 31 0:37 / /tmp/my\040cgroups rw - cgroup2 cgroup2 rw" + "\n"
    [mount] = parse_mountinfo(text)
    assert mount.mount_point == "/tmp/my cgroups"
    assert mount.fstype == "cgroup2"


def test_inside_a_container_the_mount_root_is_kept() -> None:
    text = "900 899 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"
    [mount] = parse_mountinfo(text)
    assert mount.root == "/docker/abc"
    assert mount.controllers == {"memory"}


def test_the_first_of_two_mounts_of_a_hierarchy_wins() -> None:
    text = (
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "99 31 0:32 / /mnt/memory-again rw - cgroup cgroup rw,memory\n"
    )
    assert detect_from(text).v1["memory"] == "/sys/fs/cgroup/memory"


def test_no_cgroup_mount_is_a_clear_error() -> None:
    with pytest.raises(CgroupError, match="no cgroup file system is mounted"):
        detect_from("22 27 0:21 / /proc rw,relatime - proc proc rw\n")


def test_garbage_lines_are_skipped() -> None:
    text = "garbage\n\n1 2 3\n" + HYBRID
    assert detect_from(text).version == "hybrid"


def test_this_machine() -> None:
    """The host the tests run on has some layout; detect() must make sense of it."""
    layout = detect()
    assert layout.version in ("v1", "v2", "hybrid")
    if layout.driver == "v1":
        assert "memory" in layout.v1


def detect_from(text: str) -> CgroupLayout:
    return layout_from_mounts(parse_mountinfo(text), v2_controllers="")
