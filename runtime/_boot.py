"""Start a cellbox.runtime module under ``python -I -S`` (no site, no import hooks).

``python -I -S .../runtime/_boot.py MODULE ARGS...`` imports ``cellbox.runtime.MODULE``
from the directory this file is in and calls its ``main(ARGS)``. Skipping site saves
~15-20 ms per start (site, sitecustomize and an editable install's import hook with
pathlib); the packages ``cellbox`` and ``cellbox.runtime`` are registered by hand so
that the runtime's relative imports work, whatever way cellbox was installed. Users: the
container's init (``_init``), the kernel's ``cellbox exec`` (``cli exec ...``) and the
``cellbox`` launcher (bin/cellbox, ``cli ...``). What needs site-packages later calls
:func:`cellbox.runtime.sitepath.ensure`.
"""

import sys


def _main() -> None:
    here = __file__.rpartition("/")[0]
    parent = here.rpartition("/")[0]
    module_type = type(sys)
    top = module_type("cellbox")
    # Installed from a wheel, cellbox/ holds kernel/ next to runtime/; in an editable
    # install the kernel is found by the install's own import hook (after site).
    top.__path__ = [parent] if parent.rpartition("/")[2] == "cellbox" else []
    runtime = module_type("cellbox.runtime")
    runtime.__path__ = [here]
    runtime.__file__ = f"{here}/__init__.py"
    runtime.__package__ = "cellbox.runtime"
    sys.modules.setdefault("cellbox", top)
    sys.modules.setdefault("cellbox.runtime", runtime)
    name = sys.argv[1]
    if not name.isidentifier():
        raise SystemExit(f"_boot: bad module name {name!r}")
    module = __import__(f"cellbox.runtime.{name}", fromlist=["main"])
    _exit(module.main(sys.argv[2:]))


def _exit(code: int | str | None) -> None:
    """``sys.exit(code)``, without the interpreter's finalization when nothing needs it.

    Tearing down ~60 modules takes a few ms of every ``cellbox run`` and ``exec``. With
    no thread started (threading never imported) and no atexit handler registered,
    finalization would only flush stdout and stderr and free memory the kernel frees
    anyway: flush them here and leave. Anything else — a status that is not 0-255, a
    flush that fails (a closed pipe) — takes the usual way, with its usual messages.
    """
    import atexit

    status = 0 if code is None else code
    if (type(status) is int and 0 <= status <= 255 and "threading" not in sys.modules
            and not atexit._ncallbacks()):
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()
        except BaseException:
            pass  # sys.exit below reports it, as it always has
        else:
            import os

            os._exit(status)
    sys.exit(code)


_main()
