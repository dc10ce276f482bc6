"""The ``cellbox`` command: a thin dispatcher over per-area command modules.

Each command lives in a module that is imported only when that command runs, so that
``cellbox run`` and ``cellbox exec`` never pay for httpx or pyroute2. A command module
provides ``setup(command, parser) -> handler``: it adds its arguments to an argparse parser
and returns the function that runs the parsed arguments and returns the exit status. It
may also provide ``parse_fast(command, args) -> (handler, namespace) | None``, which
parses the common forms of a hot command without importing argparse (None: use setup).

Start-up is what ``cellbox run``/``exec`` are measured by, so this module imports only
``sys`` (and errors) before it knows the command:

* ``run``/``start`` fork the container's init first of all (:mod:`.initfork`), while the
  process is still small and single-threaded;
* the commands in :data:`LEAN` need nothing from site-packages; the others make it
  importable first (:mod:`.sitepath`) when the launcher started Python without site.

Exit statuses follow Docker: the command's own status for ``run`` and ``exec``; 125 when
cellbox itself failed; 1 for other commands' errors; 130 on Ctrl-C.
"""

from __future__ import annotations

import sys

from .errors import CellboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

    Handler = Callable[[argparse.Namespace], int]

__all__ = ["COMMANDS", "LEAN", "main"]

# name -> (module, one-line summary). "kernel" is looked up by name only, so that the
# runtime package does not import the kernel package.
COMMANDS: dict[str, tuple[str, str]] = {
    "pull": ("cellbox.runtime.cli_images", "Download an image from a registry"),
    "images": ("cellbox.runtime.cli_images", "List stored images"),
    "history": ("cellbox.runtime.cli_images", "Show the layers of an image"),
    "inspect": ("cellbox.runtime.cli_images", "Show an image or container as JSON"),
    "rmi": ("cellbox.runtime.cli_images", "Remove an image"),
    "tag": ("cellbox.runtime.cli_images", "Give an image another name"),
    "prune": ("cellbox.runtime.cli_images", "Remove what no image or container uses"),
    "run": ("cellbox.runtime.cli_containers", "Create and start a container"),
    "create": ("cellbox.runtime.cli_containers", "Create a container"),
    "start": ("cellbox.runtime.cli_containers", "Start a stopped container"),
    "exec": ("cellbox.runtime.cli_containers", "Run a command in a running container"),
    "stop": ("cellbox.runtime.cli_containers", "Stop a container"),
    "rm": ("cellbox.runtime.cli_containers", "Remove a container"),
    "ps": ("cellbox.runtime.cli_containers", "List containers"),
    "logs": ("cellbox.runtime.cli_containers", "Show a container's log"),
    "stats": ("cellbox.runtime.cli_containers", "Show containers' CPU, memory and pids"),
    "commit": ("cellbox.runtime.cli_containers", "Make an image of a container's changes"),
    "build": ("cellbox.runtime.cli_build", "Build an image from a Containerfile"),
    "push": ("cellbox.runtime.cli_build", "Upload an image to a registry"),
    "login": ("cellbox.runtime.cli_build", "Save credentials for a registry"),
    "logout": ("cellbox.runtime.cli_build", "Forget credentials for a registry"),
    "kernel": ("cellbox.kernel.install", "Install the Jupyter kernelspec (kernel install)"),
}

# Commands whose own code needs nothing from site-packages. What they need only sometimes
# (run's pull of a missing image, a bridge network's pyroute2) calls sitepath.ensure().
LEAN = frozenset({"run", "create", "start", "exec", "stop", "rm", "ps", "logs", "stats"})
# Commands that start a container: their init is forked before anything else happens.
STARTS = frozenset({"run", "start"})

FAILED = 125


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: cellbox COMMAND [OPTIONS]", "", "Commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run 'cellbox COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cellbox`` command (bin/cellbox, ``python -m cellbox.runtime``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from . import sitepath

        sitepath.ensure()
        from importlib.metadata import version

        print(f"cellbox {version('cellbox')}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"cellbox: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    from . import initfork

    if command in STARTS and "-h" not in rest and "--help" not in rest:
        initfork.prefork()
    try:
        return _dispatch(command, rest)
    finally:
        initfork.discard()  # a start that did not happen: end the forked init


def _dispatch(command: str, rest: list[str]) -> int:
    module_name, summary = COMMANDS[command]
    if command not in LEAN:
        from . import sitepath

        sitepath.ensure()
    try:
        module = __import__(module_name, fromlist=["setup"])
    except ImportError as exc:
        print(f"cellbox {command}: not available ({exc})", file=sys.stderr)
        return FAILED
    fast = getattr(module, "parse_fast", None)
    parsed: tuple[Handler, argparse.Namespace] | None = fast(command, rest) if fast else None
    if parsed is None:
        import argparse

        parser = argparse.ArgumentParser(prog=f"cellbox {command}", description=summary)
        handler: Handler = module.setup(command, parser)
        namespace = parser.parse_args(rest)
    else:
        handler, namespace = parsed
    try:
        return handler(namespace)
    except CellboxError as exc:
        print(f"cellbox {command}: {exc}", file=sys.stderr)
        return FAILED if command in ("run", "exec", "start", "create") else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
