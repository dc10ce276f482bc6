"""The commands that make and share images: ``build``, ``push``, ``login``, ``logout``.

See :mod:`.cli` for the ``setup(command, parser) -> handler`` convention. Output follows
podman's and Docker's: ``cellbox build`` streams ``STEP n/N: ...``, each command's output
and ``--> Using cache <key>``, and ends with the image digest (only that with ``-q``);
``cellbox push`` prints a line per blob (``Pushed``, ``Layer already exists``,
``Mounted from ...``) and ``TAG: digest: sha256:... size: N``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BuildError, ConfigError
from .settings import Settings

if TYPE_CHECKING:
    from .push import PushEvent

__all__ = ["setup"]

Handler = Callable[[argparse.Namespace], int]
_DEFAULT_FILES = ("Containerfile", "Dockerfile")
_HUB = "docker.io"


def setup(command: str, parser: argparse.ArgumentParser) -> Handler:
    """Add ``command``'s arguments to ``parser``; return the function that runs it."""
    if command == "build":
        parser.add_argument("-t", "--tag", action="append", default=[], metavar="REF",
                            help="name the image (may be given more than once)")
        parser.add_argument("-f", "--file", metavar="FILE",
                            help="the Containerfile (default: CONTEXT/Containerfile, else "
                                 "CONTEXT/Dockerfile; - reads standard input)")
        parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE",
                            help="a value for an ARG (NAME alone takes it from the environment)")
        parser.add_argument("--no-cache", action="store_true", help="run every step again")
        parser.add_argument("--target", metavar="STAGE", help="build up to this stage")
        parser.add_argument("--network", default="none", choices=("none", "bridge", "host"),
                            help="the network of RUN steps (default: none)")
        parser.add_argument("--pull", action="store_true",
                            help="fetch base images again even when they are stored")
        parser.add_argument("-q", "--quiet", action="store_true",
                            help="print only the image digest")
        parser.add_argument("context", metavar="CONTEXT",
                            help="the directory COPY and ADD read from")
        return _build
    if command == "push":
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        parser.add_argument("source", metavar="IMAGE", help="a stored image")
        parser.add_argument("destination", metavar="DESTINATION", nargs="?",
                            help="where to push it (default: the image's own name)")
        return _push
    if command == "login":
        parser.add_argument("-u", "--username", help="the user name")
        parser.add_argument("-p", "--password",
                            help="the password (visible to other users: prefer --password-stdin)")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from standard input")
        parser.add_argument("registry", metavar="REGISTRY", nargs="?", default=_HUB,
                            help="host[:port] of the registry (default: docker.io)")
        return _login
    if command == "logout":
        parser.add_argument("registry", metavar="REGISTRY", nargs="?", default=_HUB)
        return _logout
    raise ValueError(f"cli_build has no command {command!r}")


# -- build ------------------------------------------------------------------------------------


def _containerfile(args: argparse.Namespace, context: Path) -> tuple[str, str]:
    """(text, name) of the Containerfile to build."""
    if args.file == "-":
        return sys.stdin.read(), "Containerfile"
    if args.file:
        path = Path(args.file)
    else:
        found = [context / name for name in _DEFAULT_FILES if (context / name).is_file()]
        if not found:
            raise BuildError(
                f"no Containerfile or Dockerfile in {context}; give one with -f FILE"
            )
        path = found[0]
    try:
        return path.read_text(), path.name
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"cannot read the Containerfile {path}: {exc}") from exc


def _build_args(items: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise ConfigError(f"--build-arg {item!r}: give NAME=VALUE")
        if eq:
            values[key] = value
        elif key in os.environ:
            values[key] = os.environ[key]  # like docker: NAME alone takes the environment's
    return values


def _write(stream: str, text: str) -> None:
    out = sys.stderr if stream == "stderr" else sys.stdout
    out.write(text)
    out.flush()


def _build(args: argparse.Namespace) -> int:
    from .build import BuildOptions, StepFailed, build

    context = Path(args.context)
    if not context.is_dir():
        raise BuildError(f"the build context {context} is not a directory")
    text, filename = _containerfile(args, context)
    options = BuildOptions(
        tags=tuple(args.tag), build_args=_build_args(args.build_arg), target=args.target,
        no_cache=args.no_cache, network=args.network, pull=args.pull, filename=filename,
    )
    try:
        result = build(text, context, options, settings=Settings.load(),
                       on_output=None if args.quiet else _write)
    except StepFailed as exc:
        if args.quiet and exc.output:
            sys.stderr.write("\n".join(exc.output) + "\n")
        raise
    if args.quiet:
        print(result.image.digest)
    return 0


# -- push ---------------------------------------------------------------------------------------


class _PushLog:
    """One line per blob state, like ``docker push`` without a terminal."""

    def __init__(self) -> None:
        self.tags: list[str] = []

    def __call__(self, event: PushEvent) -> None:
        if event.kind == "manifest":
            return
        short = event.digest.removeprefix("sha256:")[:12]
        if event.status == "exists":
            print(f"{short}: Layer already exists", flush=True)
        elif event.status == "mounted":
            print(f"{short}: Mounted from {event.source}", flush=True)
        elif event.status == "pushing":
            print(f"{short}: Pushing", flush=True)
        elif event.status == "pushed":
            print(f"{short}: Pushed", flush=True)


def _push(args: argparse.Namespace) -> int:
    from .push import push
    from .reference import Reference

    settings = Settings.load()
    if not args.quiet:
        from .store import Store

        image = Store.from_settings(settings).get_image(args.source)
        where = Reference.parse(args.destination or image.reference or args.source)
        print(f"The push refers to repository [{where.name}]", flush=True)
    result = push(args.source, args.destination, settings=settings,
                  progress=None if args.quiet else _PushLog())
    ref = Reference.parse(result.reference)
    if args.quiet:
        print(result.digest)
    else:
        print(f"{ref.tag or ref.digest}: digest: {result.digest} size: {result.size}")
    return 0


# -- login / logout --------------------------------------------------------------------------------


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        if args.password:
            raise ConfigError("--password and --password-stdin cannot be used together")
        return sys.stdin.read().rstrip("\r\n")
    if args.password:
        print("WARNING! Using --password on the command line is insecure; use "
              "--password-stdin.", file=sys.stderr)
        return str(args.password)
    if not sys.stdin.isatty():
        raise ConfigError("no password: give --password-stdin (or run in a terminal)")
    import getpass

    return getpass.getpass("Password: ")


def _login(args: argparse.Namespace) -> int:
    from .auth import Credentials, save_credentials
    from .registry import RegistryClient

    username = args.username
    if not username:
        if not sys.stdin.isatty() or args.password_stdin:
            raise ConfigError("no user name: give -u USER")
        username = input("Username: ").strip()
    password = _read_password(args)
    if not username or not password:
        raise ConfigError("a user name and a password are needed to log in")
    settings = Settings.load()
    with RegistryClient(settings) as client:
        # Refused credentials are an AuthError here, and nothing is written.
        client.ping(args.registry, Credentials(username, password))
    save_credentials(settings.docker_config, args.registry, username, password)
    print(f"Credentials saved in {os.path.join(settings.docker_config, 'config.json')}")
    print("Login Succeeded")
    return 0


def _logout(args: argparse.Namespace) -> int:
    from .auth import forget_credentials

    settings = Settings.load()
    if forget_credentials(settings.docker_config, args.registry):
        print(f"Removing login credentials for {args.registry}")
    else:
        print(f"Not logged in to {args.registry}")
    return 0
