"""Hostile test images, and a small Jupyter frontend to run cells against them.

The images are the test images of :mod:`tests.support.images` (busybox, debian) with one
more layer and a changed config, made with umoci, cached like the others under
``$CELLBOX_DEV_CACHE/images/hostile-<recipe hash>`` (the base blobs are hard-linked, not
copied) and pushed by a fixture to the session's registry:

    display   busybox + /usr/local/bin/hostile-display: shows HTML with scripts, handlers,
              iframes, forms, ``javascript:`` links and SVG-in-HTML; an SVG with a script;
              Markdown with raw HTML; a "PNG" that is HTML; a pandas-style table; and
              writes display frames ``display`` never would (a script type, ``..``, a
              symlink to the host's /etc/shadow, a FIFO, an 11 MiB file)
    env       debian (bash) whose config sets the shell's startup hooks and traps:
              BASH_ENV, ENV, PROMPT_COMMAND, PS0, PS1, PS2, PS4 + SHELLOPTS=xtrace,
              LD_PRELOAD (a real library that says when it is loaded), TERM, TMOUT=1,
              MAIL, POSIXLY_CORRECT, exported bash functions that hijack ``command``,
              ``printf``, ``unset`` and ``stty``, and an /etc/bash.bashrc and /etc/profile
              that print and then loop forever
    ghost     busybox whose config User does not exist
    workdir   busybox whose WorkingDir is ``/proc/self/root/../../etc/nonexistent``
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import images
from .registry import RegistryServer

__all__ = ["HOSTILE", "Cell", "Frontend", "hostile_layout", "push_hostile"]

RECIPE = "hostile-3"  # bump to rebuild
PRELOAD_LOG = "/tmp/cbx-hostile-preload.log"  # inside the container

PRELOAD_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void hostile_preload(void) {
    dprintf(2, "PRELOAD-RAN\n");
    int fd = open("PRELOAD_LOG", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd >= 0) {
        char exe[256] = "";
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) exe[n] = 0;
        dprintf(fd, "%d %s\n", (int)getpid(), exe);
        close(fd);
    }
}
""".replace("PRELOAD_LOG", PRELOAD_LOG)

ATTACK_HTML = """<h3>VISIBLE-HEADING</h3>
<p>VISIBLE-TEXT <b>bold</b></p>
<script>document.title = 'SCRIPT-RAN'</script>
<img src="x" onerror="alert('ONERROR-RAN')">
<iframe src="https://example.org/IFRAME"></iframe>
<a href="javascript:alert('JSLINK')">js link</a>
<a href="JaVaScRiPt:alert('JSLINK2')">js link 2</a>
<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">data link</a>
<svg><script>alert('SVGINHTML')</script><circle r="1"/></svg>
<form action="https://example.org/FORM"><input name="password"></form>
<object data="https://example.org/OBJECT"></object>
<style>body { display: none }</style>
<div style="position: fixed; top: 0">OVERLAY</div>
<base href="https://example.org/BASE/">
<meta http-equiv="refresh" content="0;url=https://example.org/META">
"""

PANDAS_HTML = """<div>
<style scoped>
    .dataframe thead th { text-align: right; }
</style>
<table border="1" class="dataframe">
  <thead>
    <tr style="text-align: right;"><th></th><th>city</th><th>population</th></tr>
  </thead>
  <tbody>
    <tr><th>0</th><td>Lyon</td><td>522250</td></tr>
    <tr><th>1</th><td>Nantes</td><td>320732</td></tr>
    <tr><th>2</th><td>Lille</td><td>236710</td></tr>
  </tbody>
</table>
</div>"""

ATTACK_SVG = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="20" height="20" onload="alert('SVGONLOAD')">
  <script>alert('SVGSCRIPT')</script>
  <foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="https://example.org/FO"/>
  </foreignObject>
  <a xlink:href="javascript:alert('SVGLINK')"><circle cx="10" cy="10" r="8" fill="teal"/></a>
</svg>"""

ATTACK_MD = """# VISIBLE-MARKDOWN

<script>alert('MDSCRIPT')</script>

[click](javascript:alert('MDLINK')) <img src=x onerror="alert('MDONERROR')">
"""

HOSTILE_DISPLAY = r"""#!/bin/sh
# Everything a hostile image might hand the kernel through /.cellbox/out.
out=/.cellbox/out
display -t html /hostile/attack.html
display -t html /hostile/table.html
display /hostile/attack.svg
display -t markdown /hostile/attack.md
display /hostile/not-a-png.png
# frames the display command never writes:
cp /hostile/attack.js $out/js-item
printf '\036cellbox-display js-item application/javascript\036'
printf '\036cellbox-display ..\036'
printf '\036cellbox-display ../../../../../../etc/passwd\036'
ln -sf /etc/shadow $out/shadow-link && printf '\036cellbox-display shadow-link text/plain\036'
ln -sf ../../../../../../../../etc/hostname $out/rel-link
printf '\036cellbox-display rel-link text/plain\036'
rm -f $out/fifo; mkfifo $out/fifo && printf '\036cellbox-display fifo text/plain\036'
dd if=/dev/zero of=$out/big bs=1048576 count=11 2>/dev/null
printf '\036cellbox-display big text/plain\036'
echo HOSTILE-DISPLAY-DONE
"""

LOOP = 'echo "{name}-RAN"\nwhile :; do sleep 1; done\n'

ENV_TRAPS = [
    "BASH_ENV=/hostile/rc",
    "ENV=/hostile/rc",
    "PROMPT_COMMAND=echo PROMPT_COMMAND-RAN; sleep 1",
    "PS0=$(echo PS0-RAN; sleep 1)",
    "PS1=HOSTILE-PS1$ ",
    "PS2=HOSTILE-PS2> ",
    "PS4=$(echo PS4-RAN; sleep 1)+ ",
    "SHELLOPTS=xtrace",
    "LD_PRELOAD=/hostile/preload.so",
    "TERM=$(echo TERM-RAN)",
    "TMOUT=1",
    "MAIL=/hostile/mail",
    "MAILCHECK=0",
    "POSIXLY_CORRECT=1",
    "BASH_FUNC_command%%=() { echo COMMAND-HIJACKED; }",
    "BASH_FUNC_printf%%=() { echo PRINTF-HIJACKED; }",
    "BASH_FUNC_unset%%=() { echo UNSET-HIJACKED; }",
    "BASH_FUNC_stty%%=() { echo STTY-HIJACKED; }",
]


@dataclass(frozen=True)
class HostileImage:
    base: str  # a test image of tests.support.images
    files: dict[str, str | bytes]  # path in the image -> content ("" for a directory)
    config: list[str]  # umoci config arguments
    executable: tuple[str, ...] = ()


def _display_files() -> dict[str, str | bytes]:
    return {
        "hostile/attack.html": ATTACK_HTML,
        "hostile/table.html": PANDAS_HTML,
        "hostile/attack.svg": ATTACK_SVG,
        "hostile/attack.md": ATTACK_MD,
        "hostile/attack.js": "document.title = 'JS-RAN';\n",
        "hostile/not-a-png.png": "<script>alert('NOTPNG')</script>",
        "usr/local/bin/hostile-display": HOSTILE_DISPLAY,
    }


def _env_files() -> dict[str, str | bytes]:
    return {
        "hostile/rc": "echo RC-RAN\nsleep 2\n",
        "hostile/mail": "From x\nSubject: MAIL-ARRIVED\n\nhello\n",
        "hostile/preload.so": b"",  # compiled at build time
        "etc/bash.bashrc": LOOP.format(name="BASHRC"),
        "etc/profile": LOOP.format(name="PROFILE"),
    }


HOSTILE: dict[str, HostileImage] = {
    "display": HostileImage("busybox", _display_files(), [],
                            executable=("usr/local/bin/hostile-display",)),
    "env": HostileImage("debian", _env_files(),
                        [arg for env in ENV_TRAPS for arg in ("--config.env", env)]),
    "ghost": HostileImage("busybox", {}, ["--config.user", "ghost"]),
    "workdir": HostileImage("busybox", {},
                            ["--config.workingdir", "/proc/self/root/../../etc/nonexistent"]),
}


def _run(*cmd: str | Path) -> None:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {result.stdout}{result.stderr}")


def _write_tree(root: Path, spec: HostileImage, work: Path) -> None:
    for rel, content in spec.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".so"):
            source = work / "preload.c"
            source.write_text(PRELOAD_C)
            _run("gcc", "-shared", "-fPIC", "-O2", "-o", path, source)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        path.chmod(0o755 if rel in spec.executable else 0o644)


def _copy_layout(src: Path, dst: Path) -> None:
    """The base layout, its blobs hard-linked (umoci only ever adds blobs)."""
    dst.mkdir(parents=True)
    for name in ("index.json", "oci-layout"):
        shutil.copy2(src / name, dst / name)
    for blob in (src / "blobs" / "sha256").iterdir():
        target = dst / "blobs" / "sha256" / blob.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(blob, target)
        except OSError:
            shutil.copy2(blob, target)


def hostile_layout(name: str) -> Path:
    """The OCI layout of the hostile image ``name`` (tag ``name``), built on first use."""
    spec = HOSTILE[name]
    base_image = images.IMAGES[spec.base]
    recipe = json.dumps(
        [RECIPE, base_image.recipe, sorted(map(str, spec.files.items())), spec.config,
         PRELOAD_C], sort_keys=True,
    )
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    out = images.cache_dir() / "images" / f"hostile-{name}-{digest}"
    if (out / "index.json").exists():
        return out
    base = images.layout(spec.base)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".hostile-{name}-") as tmp:
        work = Path(tmp)
        layout = work / "layout"
        _copy_layout(base, layout)
        _run("umoci", "tag", "--image", f"{layout}:{base_image.tag}", name)
        oci = f"{layout}:{name}"
        if spec.files:
            tree = work / "tree"
            tree.mkdir()
            _write_tree(tree, spec, work)
            _run("umoci", "insert", "--image", oci, "--history.created_by",
                 f"hostile {name} files", tree, "/")
        if spec.config:
            _run("umoci", "config", "--image", oci, *spec.config,
                 "--history.created_by", f"hostile {name} config")
        layout.rename(out)
    return out


def push_hostile(registry: RegistryServer) -> dict[str, str]:
    """Push every hostile image; their references (``127.0.0.1:PORT/cbx-hostile/NAME``)."""
    return {
        name: registry.push(hostile_layout(name), name, f"cbx-hostile/{name}:latest")
        for name in HOSTILE
    }


# ------------------------------------------------------------------------------ frontend


@dataclass
class Cell:
    """Everything iopub said about one execute request, with the kernel's send times."""

    msg_id: str
    reply: dict[str, Any] = field(default_factory=dict)
    messages: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [content for _, k, content in self.messages if k == kind]

    def times(self, kind: str) -> list[float]:
        return [t for t, k, _ in self.messages if k == kind]

    @property
    def stdout(self) -> str:
        return "".join(c["text"] for c in self.of("stream") if c["name"] == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(c["text"] for c in self.of("stream") if c["name"] == "stderr")

    @property
    def text(self) -> str:
        """All text the user sees: streams and the error."""
        parts = [c["text"] for c in self.of("stream")]
        parts += [f"{c['ename']}: {c['evalue']}" for c in self.of("error")]
        return "".join(parts)

    @property
    def status(self) -> str:
        return str(self.reply.get("status"))

    @property
    def displays(self) -> list[dict[str, Any]]:
        return [c["data"] for c in self.of("display_data")]


class Frontend:
    """Runs cells on a kernel (a tests.kernel.driver.KernelDriver) and keeps every iopub
    message with the time the kernel sent it, so rates can be measured."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.kc = driver.kc
        self.pid = int(driver.km.provisioner.pid)

    def start(self, code: str) -> Cell:
        # stop_on_error=False: see tests/kernel/driver.py KernelDriver.run
        return Cell(str(self.kc.execute(code, allow_stdin=False, stop_on_error=False)))

    def finish(self, cell: Cell, timeout: float = 120.0,
               during: Callable[[Cell], None] | None = None) -> Cell:
        """Collect ``cell``'s messages until the kernel is idle after it, and its reply;
        ``during`` is called about every 0.2 s meanwhile."""
        deadline = time.monotonic() + timeout
        idle = False
        last_call = 0.0
        while not idle:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"the cell did not finish within {timeout} s: {cell.text[-2000:]}"
                )
            if during is not None and time.monotonic() - last_call > 0.2:
                last_call = time.monotonic()
                during(cell)
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != cell.msg_id:
                continue
            kind = msg["msg_type"]
            content = msg["content"]
            if kind == "status":
                idle = content["execution_state"] == "idle"
                continue
            sent = msg["header"]["date"]
            cell.messages.append((sent.timestamp() if hasattr(sent, "timestamp")
                                  else time.time(), kind, content))
        while True:
            reply = self.kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 5))
            if reply["parent_header"].get("msg_id") == cell.msg_id:
                cell.reply = reply["content"]
                return cell

    def run(self, code: str, timeout: float = 120.0) -> Cell:
        return self.finish(self.start(code), timeout)

    def memory(self) -> dict[str, int]:
        """The kernel process's VmRSS and VmHWM, in bytes."""
        found = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found[key] = int(value.split()[0]) * 1024
        return found
