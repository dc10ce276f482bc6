"""A pull by an ordinary user (the rootless rules for real): whiteouts made without
privileges, opaque dirs as user.overlay.opaque, device nodes skipped, setuid dropped."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.oci import Device, Dir, File, OciLayout, tar_layer
from tests.support.registry import RegistryServer

USER = "cellbox-test"
HERE = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, os, sys
from pathlib import Path
from cellbox.runtime.pull import pull
from cellbox.runtime.settings import Settings
image = pull(sys.argv[1], settings=Settings(root=Path(sys.argv[2])))
base, top = image.layers[0].path, image.layers[1].path
st = os.lstat(top / "suid")
print(json.dumps({
    "opaque": os.getxattr(top / "a", "user.overlay.opaque").decode(),
    "whiteout": [st.st_rdev, oct(st.st_mode)],
    "device": (top / "dev/null").exists(),
    "suid": oct(os.stat(base / "suid").st_mode & 0o7777),
    "owner": os.stat(base / "a/x").st_uid,
}))
"""


@pytest.fixture
def user_dir() -> Iterator[Path]:
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"no user {USER} (scripts/test.sh creates it)")
    path = Path(tempfile.mkdtemp(prefix="cbxtest-rootless-"))
    os.chown(path, entry.pw_uid, entry.pw_gid)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_a_user_pulls_with_the_rootless_rules(registry: RegistryServer, tmp_path: Path,
                                              user_dir: Path) -> None:
    layout = OciLayout(tmp_path / "layout")
    layout.add_image("1", [
        tar_layer([Dir("a"), File("a/x", b"1", uid=1000), File("suid", b"s", mode=0o4755)]),
        tar_layer([File("a/.wh..wh..opq"), File(".wh.suid"), Device("dev/null", "chr", 1, 3)]),
    ])
    registry.push(layout.path, "1", "rootless/test:1")
    result = subprocess.run(
        ["runuser", "-u", USER, "--", sys.executable, "-c", SCRIPT,
         f"{registry.host}/rootless/test:1", str(user_dir / "store")],
        capture_output=True, text=True, timeout=120, cwd=HERE,
        env={"PATH": os.environ["PATH"], "HOME": str(user_dir), "PYTHONPATH": str(HERE)},
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    uid = pwd.getpwnam(USER).pw_uid
    assert seen == {"opaque": "y", "whiteout": [0, oct(0o20000)], "device": False,
                    "suid": oct(0o755), "owner": uid}
