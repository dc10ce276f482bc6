"""What ``%%containerfile REF`` and ``%push REF`` do: build the cell as a Containerfile, push.

The kernel parses the magic line (kernel.magics) and calls these from a worker thread;
``on_output(stream, text)`` is how the build log reaches the cell as it happens (``stream``
is "stdout" or "stderr"; ``text`` ends with its newline, except a partial line a command
flushed). Both block until done and return one line to show at the end. Errors are the
runtime's: :class:`~cellbox.runtime.build.ContainerfileError` (a line of the cell that does
not parse), :class:`~cellbox.runtime.build.StepFailed` (its output was already streamed;
the message names the step, the cell line and the exit status), other ``BuildError`` s and
registry errors; nothing half-built is stored under ``REF``.

::

    %%containerfile myimage:v1 --build-arg PY=3.11
    FROM debian:bookworm
    COPY requirements.txt /srv/
    RUN pip install -r /srv/requirements.txt

The build context is the notebook's directory (its ``.containerignore`` or
``.dockerignore`` applies); only what COPY and ADD name is read from it. Line numbers in
messages are the cell's own: the Containerfile starts on the cell's second line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from cellbox.runtime.settings import Settings

__all__ = ["Output", "build_cell", "push_image"]

Output = Callable[[str, str], None]


def build_cell(
    reference: str,
    cell: str,
    notebook_dir: Path,
    *,
    on_output: Output,
    build_args: Mapping[str, str] | None = None,
    no_cache: bool = False,
    target: str | None = None,
    network: str = "none",
    pull: bool = False,
    first_line: int = 2,
    settings: Settings | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Build ``cell`` (the Containerfile) into the image ``reference``; a one-line summary.

    ``first_line`` is the cell line the Containerfile starts on (after the magic line), so
    that "cell line 3" in an error is the cell's line 3. Setting ``cancel`` (the kernel's
    interrupt) kills the running step and ends the build with a BuildError.
    """
    from cellbox.runtime.build import BuildOptions, build

    options = BuildOptions(
        tags=(reference,), build_args=dict(build_args or {}), target=target,
        no_cache=no_cache, network=network, pull=pull, filename="cell",
    )
    text = "\n" * max(0, first_line - 1) + cell
    result = build(text, notebook_dir, options, settings=settings, on_output=on_output,
                   cancel=cancel)
    image = result.image
    short = image.digest.removeprefix("sha256:")[:12]
    cached = f", {result.cached} from cache" if result.cached else ""
    name = image.reference or reference
    return f"built {name} ({short}): {result.steps} steps{cached}"


def push_image(
    reference: str,
    destination: str | None = None,
    *,
    on_output: Output,
    settings: Settings | None = None,
) -> str:
    """Push the stored image ``reference`` (to ``destination``); a one-line summary."""
    from cellbox.runtime.push import PushEvent, push

    labels = {"exists": "Layer already exists", "pushing": "Pushing", "pushed": "Pushed"}

    def progress(event: PushEvent) -> None:
        if event.kind == "manifest":
            return
        short = event.digest.removeprefix("sha256:")[:12]
        if event.status == "mounted":
            on_output("stdout", f"{short}: Mounted from {event.source}\n")
        elif event.status in labels:
            on_output("stdout", f"{short}: {labels[event.status]}\n")

    result = push(reference, destination, settings=settings, progress=progress)
    return f"pushed {result.reference}: digest {result.digest} size {result.size}"
