"""A notebook executed end to end by nbclient, as CI and papermill-like tools do."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient


def test_nbclient_runs_a_notebook(kernel_env: Path) -> None:
    cells = [
        "%container busybox --network none",
        "echo 'x,y' > points.csv\nfor i in 1 2 3; do echo \"$i,$((i*i))\" >> points.csv; done",
        "wc -l < points.csv\ntail -1 points.csv",
        "printf '<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"/>' "
        "> dot.svg\ndisplay dot.svg",
        "%%container debian:bookworm --network none\npython3 -c 'print(sum(range(10)))'",
        "%stats",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    path = kernel_env / "analysis.ipynb"
    nbformat.write(nb, path)
    client = NotebookClient(
        nb, timeout=120, kernel_name="cellbox", resources={"metadata": {"path": str(kernel_env)}}
    )
    client.execute()
    outputs = [cell.outputs for cell in nb.cells]
    assert outputs[2][0]["text"] == "4\n3,9\n"
    assert outputs[3][0]["output_type"] == "display_data"
    assert "image/svg+xml" in outputs[3][0]["data"]
    assert outputs[4][0]["text"] == "45\n"
    assert "MEM USAGE" in outputs[5][0]["text"]
    assert (kernel_env / "points.csv").read_text().startswith("x,y\n1,1\n")
