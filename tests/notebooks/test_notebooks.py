"""CI executes every notebook in notebooks/ with nbclient and checks what the cells printed.

A code cell states what its output must show in its metadata:

    "cellbox": {"expect": ["regex", ...], "expect_not": ["regex", ...]}

Each regex must match (``re.search``, MULTILINE) the cell's text output: streams, the
text/plain of displays and results, and error names and values. Cells tagged
``raises-exception`` may end in an error (nbclient's own convention). The notebooks run in
a copy of notebooks/ (they write results next to themselves), against the session registry
acting as the docker.io mirror, with a fresh cellbox root that already holds debian.

A notebook that pushes to a registry of its own names it in its metadata, ``"cellbox":
{"registry": "127.0.0.1:5000"}`` (share.ipynb: the demo's registry, as ``localhost:5000``):
one already answering there (a developer's demo registry) is used, else the test starts
one for the notebook and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

from tests.support.containers import stored_copy
from tests.support.leaks import leaked, snapshot
from tests.support.registry import RegistryServer

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def cell_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(output.get("text", ""))
        elif kind == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
        else:
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _answers(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/v2/", timeout=2).status_code in (200, 401)
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def registry_at(address: str, directory: Path) -> Iterator[None]:
    """A registry at ``address`` (127.0.0.1:PORT) while the block runs: the one answering
    there already, else one of our own, stopped at the end."""
    if _answers(address):
        yield
        return
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1", f"a notebook's registry must be on 127.0.0.1, not {address}"
    server = RegistryServer(directory, port=int(port))
    try:
        server.start()
    except RuntimeError:
        if not _answers(address):  # not another session's, started meanwhile: a failure
            raise
        yield
        return
    try:
        yield
    finally:
        server.stop()


@pytest.fixture
def notebook_env(
    registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS[0].parent, work)
    monkeypatch.setenv("CELLBOX_REGISTRY_MIRRORS", registry.url)
    # debian is in the store already, as on a machine that used it before (storing it
    # costs 6 s of CPU a notebook); busybox and hello-world are pulled from the registry.
    root = stored_copy(tmp_path / f"root-{os.environ['CELLBOX_TEST_SCOPE']}", ("debian",))
    monkeypatch.setenv("CELLBOX_ROOT", str(root))
    monkeypatch.setenv("CELLBOX_RUN", str(tmp_path / "run"))
    before = snapshot()
    yield work
    left = leaked(before, grace=10)
    assert not left, f"the notebook left things behind: {left}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(path: Path, notebook_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = notebook_env / path.name
    monkeypatch.setenv("JPY_SESSION_NAME", str(copy))  # as Jupyter's server tells the kernel
    nb = nbformat.read(copy, as_version=4)
    with contextlib.ExitStack() as stack:
        address = nb.metadata.get("cellbox", {}).get("registry")
        if address:
            stack.enter_context(registry_at(address, notebook_env.parent / "registry"))
        NotebookClient(
            nb, timeout=300, kernel_name="cellbox",
            resources={"metadata": {"path": str(notebook_env)}},
        ).execute()
    checked = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        spec = cell.metadata.get("cellbox", {})
        text = cell_text(cell)
        for pattern in spec.get("expect", []):
            assert re.search(pattern, text, re.MULTILINE), (
                f"{path.name} cell {index} should match {pattern!r}:\n{cell.source}\n---\n{text}"
            )
            checked += 1
        for pattern in spec.get("expect_not", []):
            assert not re.search(pattern, text, re.MULTILINE), (
                f"{path.name} cell {index} should not match {pattern!r}:\n{text}"
            )
    assert checked >= 3, f"{path.name} checks too little of its output"
