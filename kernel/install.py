"""``cellbox kernel install``: install the "cellbox" kernelspec for Jupyter.

The wheel already ships the kernelspec under ``share/jupyter/kernels/cellbox``; this command
is for editable installs and for installing into another prefix or the user's directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

__all__ = ["install_kernelspec", "setup"]

KERNEL_NAME = "cellbox"


def install_kernelspec(*, user: bool = False, prefix: str | None = None) -> str:
    """Install the kernelspec; return the directory it went to."""
    from jupyter_client.kernelspec import KernelSpecManager

    resources = files("cellbox.kernel") / "resources"
    with tempfile.TemporaryDirectory() as tmp:
        spec_dir = Path(tmp) / KERNEL_NAME
        spec_dir.mkdir()
        for name in ("kernel.json", "logo-32x32.png", "logo-64x64.png", "logo-svg.svg"):
            source = resources / name
            if source.is_file():
                (spec_dir / name).write_bytes(source.read_bytes())
        spec = json.loads((spec_dir / "kernel.json").read_text())
        # A kernelspec outside our own prefix must still find this Python.
        if user or (prefix and Path(prefix).resolve() != Path(sys.prefix).resolve()):
            spec["argv"][0] = sys.executable
        (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        dest: str = KernelSpecManager().install_kernel_spec(
            str(spec_dir), KERNEL_NAME, user=user, prefix=prefix
        )
    return dest


def setup(command: str, parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    sub = parser.add_subparsers(dest="action", required=True)
    install = sub.add_parser("install", help="install the cellbox kernelspec")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into ~/.local/share/jupyter")
    where.add_argument("--sys-prefix", action="store_true", help=f"into {sys.prefix}")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter")

    def run(args: argparse.Namespace) -> int:
        prefix = sys.prefix if args.sys_prefix else args.prefix
        dest = install_kernelspec(user=args.user, prefix=prefix)
        print(f"installed kernelspec {KERNEL_NAME} in {dest}")
        return 0

    return run
