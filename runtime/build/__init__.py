"""Building images from Containerfiles: the parser (pure), the build context, the builder.

    from cellbox.runtime.build import build, BuildOptions
    result = build(Path("Containerfile").read_text(), Path("."),
                   BuildOptions(tags=["myimage:latest"]))

See :mod:`.containerfile` (parsing), :mod:`.context` and :mod:`.ignore` (the context and
``.containerignore``), :mod:`.builder` (steps, cache, history).
"""

from __future__ import annotations

from .builder import BuildOptions, BuildResult, StepFailed, build
from .containerfile import Containerfile, ContainerfileError, parse

__all__ = [
    "BuildOptions",
    "BuildResult",
    "Containerfile",
    "ContainerfileError",
    "StepFailed",
    "build",
    "parse",
]
