"""Execute a notebook headless with nbclient and print what its cells printed.

    python scripts/run_notebook.py notebooks/tour.ipynb [--save OUT.ipynb] [--timeout 600]

Used by the demo (scripts/demo.sh). Cells tagged ``raises-exception`` may fail; any other
failing cell stops the run with its error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    if output.get("output_type") == "error":
        return f"{output.get('ename')}: {output.get('evalue')}\n"
    data = output.get("data", {})
    if "text/plain" in data:
        return str(data["text/plain"]) + "\n"
    kinds = ", ".join(sorted(data)) or "nothing"
    return f"[{kinds}]\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--save", type=Path, help="write the executed notebook here")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--kernel", default="cellbox")
    args = parser.parse_args()

    nb = nbformat.read(args.notebook, as_version=4)
    # What Jupyter's server tells a kernel: which notebook it serves (names its containers).
    os.environ["JPY_SESSION_NAME"] = str(args.notebook.resolve())
    client = NotebookClient(
        nb, timeout=args.timeout, kernel_name=args.kernel,
        resources={"metadata": {"path": str(args.notebook.parent.resolve())}},
    )
    start = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as exc:
        print(f"a cell failed:\n{exc}", file=sys.stderr)
        return 1
    finally:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.get("outputs"):
                continue
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            print(f"\033[1m[{index}] {first}\033[0m")
            for output in cell.outputs:
                sys.stdout.write(_text(output))
        if args.save:
            nbformat.write(nb, args.save)
    print(f"\n{args.notebook.name}: {len(nb.cells)} cells in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
