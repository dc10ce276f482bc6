"""jupyter_kernel_test's conformance suite on the installed "cellbox" kernelspec.

Every sample the kernel supports is filled in. Not supported, and why: ``execute_result``
(a shell has no results, only output), ``history`` (cells are files in the container,
not a history database) and the pager payload. Program stderr shares the terminal with
stdout, as in a terminal (a pty cannot tell them apart); the kernel's own notes -- here a
``display`` it refuses -- are the ``stderr`` stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import jupyter_kernel_test
import pytest
from jupyter_client.manager import start_new_kernel

from tests.support.leaks import leaked, snapshot


@pytest.fixture(scope="class")
def conformance_kernel(
    request: pytest.FixtureRequest, container_images: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """One kernel for the whole class, on a root of its own; nothing left afterwards."""
    from cellbox.runtime.container import Container
    from cellbox.runtime.settings import Settings

    base = tmp_path_factory.mktemp("conformance")
    root, notebook = base / "root", base / "notebooks"
    root.mkdir()
    notebook.mkdir()
    for name in ("blobs", "layers"):
        (root / name).symlink_to(container_images / name)
    (root / "images.json").write_bytes((container_images / "images.json").read_bytes())
    saved = {k: os.environ.get(k) for k in ("CELLBOX_ROOT", "CELLBOX_RUN")}
    os.environ["CELLBOX_ROOT"] = str(root)
    os.environ["CELLBOX_RUN"] = str(base / "run")
    before = snapshot()
    km, kc = start_new_kernel(kernel_name="cellbox", cwd=str(notebook), startup_timeout=60)
    cls = request.cls
    assert cls is not None
    cls.km, cls.kc = km, kc
    try:
        reply = kc.execute_interactive("%container debian:bookworm --network none", timeout=120)
        assert reply["content"]["status"] == "ok"
        yield
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
        settings = Settings.load()
        for container in Container.list(all=True, settings=settings):
            container.remove(force=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    left = leaked(before, grace=5)
    assert not left, f"the conformance suite left things behind: {left}"


@pytest.mark.usefixtures("conformance_kernel")
class TestCellboxKernel(jupyter_kernel_test.KernelTests):
    kernel_name = "cellbox"
    language_name = "bash"
    file_extension = ".sh"

    @classmethod
    def setUpClass(cls) -> None:
        """The conformance_kernel fixture starts the kernel (with its own environment)."""

    @classmethod
    def tearDownClass(cls) -> None:
        """... and stops it."""

    code_hello_world = "echo 'hello, world'"
    code_stderr = "printf 'not a png' > /tmp/x; display -t png /tmp/x"
    code_generate_error = "false"
    code_clear_output = "echo first; printf '\\033[H\\033[2J'; echo second"
    code_inspect_sample = "ls"

    completion_samples = [  # noqa: RUF012 - jupyter_kernel_test's attribute
        {"text": "ech"},
        {"text": "cat /etc/hostnam", "matches": {"/etc/hostname"}},
        {"text": "echo $HOM", "matches": {"HOME"}},
        {"text": "%hel", "matches": {"%help"}},
    ]
    complete_code_samples = [  # noqa: RUF012
        "echo hi", "if true; then echo yes; fi", "cat <<EOF\nbody\nEOF", "f() { echo; }",
    ]
    incomplete_code_samples = [  # noqa: RUF012
        "if true; then", "echo 'open", "for i in 1 2; do", "cat <<EOF", "echo $(date",
        "ls |",
    ]
    invalid_code_samples = ["fi", "done", ")", "esac"]  # noqa: RUF012
    code_display_data = [  # noqa: RUF012
        {"code": "echo '<b>bold</b>' | display -t html", "mime": "text/html"},
        {"code": "echo '{\"a\": 1}' | display -t json", "mime": "application/json"},
        {"code": "echo '# Title' | display -t markdown", "mime": "text/markdown"},
        {"code": "echo '<svg xmlns=\"http://www.w3.org/2000/svg\"/>' | display",
         "mime": "image/svg+xml"},
    ]
