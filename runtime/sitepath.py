"""site-packages for a process started without ``site`` (``python -I -S``).

The ``cellbox`` launcher (bin/cellbox) and ``_boot.py`` start Python with ``-S``: site and
an editable install's import hook cost ≈ 15 ms, and ``run``/``exec`` of a stored image need
nothing from site-packages. What does need it — httpx to pull, pyroute2 for a bridge,
cellbox.kernel, ``importlib.metadata`` — calls :func:`ensure` first, which runs what
``site`` would have run at start-up (site-packages of the virtualenv, its ``.pth`` files
and import hooks). Started normally, :func:`ensure` does nothing.
"""

from __future__ import annotations

import sys

__all__ = ["ensure"]

_done = False


def ensure() -> None:
    """Make site-packages importable if this process was started without site."""
    global _done
    if _done or not sys.flags.no_site:
        return
    _done = True
    import site

    site.main()  # what -S skipped: the venv's site-packages, .pth files, sitecustomize
