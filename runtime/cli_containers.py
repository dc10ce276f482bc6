"""``cellbox run|create|start|exec|stop|rm|ps|logs|stats|commit``: the container commands.

Flags follow Docker's. Differences worth knowing:

* ``run``/``create`` pull a missing image (``--pull missing``, the default); the registry
  code is imported only then, so ``cellbox run`` of a stored image never loads httpx.
* ``--keep``: no workload; the container's PID 1 just waits until it is stopped (what the
  Jupyter kernel makes; ``cellbox exec`` runs things in it).
* ``-p`` without an address publishes on 127.0.0.1 only (see :mod:`.portmap`).
* Rootless on cgroup v1, ``--memory``/``--cpus``/``--pids-limit`` are refused with an
  explanation rather than silently ignored.
* ``run -d --rm``: a small watcher process removes the container when it exits (see
  :mod:`.container`).
"""

from __future__ import annotations

import os
import sys

from .errors import CellboxError, ConfigError, ContainerNotFound, ImageNotFound, SandboxError

# `cellbox exec` and `cellbox run` load this module, and each import shows in their time
# (a whole `cellbox exec` takes ≈ 30 ms): argparse, the container classes, settings and all
# that only some commands need (units, containerspec, portmap, stats, datetime, shlex) are
# imported inside the functions that use them. The common forms of run/create/exec are
# parsed by :func:`parse_fast` from the same option tables argparse is built from.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from datetime import datetime
    from typing import Any

    from .container import Container
    from .containerstate import ContainerConfig
    from .images import Image
    from .settings import Settings

    Handler = Callable[[argparse.Namespace], int]
    _NamespaceBase = argparse.Namespace
else:
    _NamespaceBase = object

__all__ = ["Args", "config_from_args", "image_for", "parse_fast", "render_ps", "setup"]


class Args(_NamespaceBase):
    """Parsed arguments, like argparse's Namespace (which :func:`parse_fast` avoids)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __eq__(self, other: object) -> bool:
        return vars(self) == vars(other) if hasattr(other, "__dict__") else NotImplemented

    def __repr__(self) -> str:
        return f"Args({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


# ---------------------------------------------------------------------------- option tables

FLAG, VALUE, APPEND = "store_true", "store", "append"

# (option strings, dest, action, help, extra argparse keywords). The first long option
# gives argparse's default dest; it is spelled out so that parse_fast needs no inference.
if TYPE_CHECKING:
    Option = tuple[tuple[str, ...], str, str, str, dict[str, Any]]

_DETACH: Option = (("-d", "--detach"), "detach", FLAG,
                   "run in the background and print the container id", {})
_CREATE_OPTIONS: tuple[Option, ...] = (
    (("--rm",), "rm", FLAG, "remove the container when it exits", {}),
    (("-i", "--interactive"), "interactive", FLAG, "keep stdin open and pass it to the command",
     {}),
    (("-t", "--tty"), "tty", FLAG, "give the command a terminal", {}),
    (("--name",), "name", VALUE, "the container's name (default: a random one)", {}),
    (("-e", "--env"), "env", APPEND,
     "set an environment variable (KEY alone: take the host's)", {"metavar": "KEY[=VALUE]"}),
    (("-v", "--volume"), "volume", APPEND, "bind-mount a host path",
     {"metavar": "HOST:CONTAINER[:ro]"}),
    (("-p", "--publish"), "publish", APPEND,
     "publish a container port (on 127.0.0.1 unless IP is given)",
     {"metavar": "[IP:][HOST:]PORT[/udp]"}),
    (("-w", "--workdir"), "workdir", VALUE, "working directory inside the container", {}),
    (("-u", "--user"), "user", VALUE, "user[:group] name or uid[:gid] to run as", {}),
    (("-m", "--memory"), "memory", VALUE, "memory limit (e.g. 512m, 1g)", {}),
    (("--memory-swap",), "memory_swap", VALUE, "memory + swap limit, or -1 for unlimited swap",
     {}),
    (("--cpus",), "cpus", VALUE, "CPU quota in CPUs (e.g. 0.5)", {}),
    (("--pids-limit",), "pids_limit", VALUE, "most processes at once (-1: unlimited)", {}),
    (("--network", "--net"), "network", VALUE,
     "network mode (default: bridge as root, none rootless)",
     {"choices": ("none", "bridge", "host")}),
    (("--hostname",), "hostname", VALUE,
     "hostname (default: the first 12 characters of the id)", {}),
    (("--entrypoint",), "entrypoint", VALUE, "override the image's entrypoint", {}),
    (("-l", "--label"), "label", APPEND, "set a label on the container",
     {"metavar": "KEY=VALUE"}),
    (("--pull",), "pull", VALUE, "pull the image: always, when missing (default), never",
     {"choices": ("always", "missing", "never"), "default": "missing"}),
    (("--keep",), "keep", FLAG,
     "no command: PID 1 waits until stopped (a kernel's container)", {}),
)
_EXEC_OPTIONS: tuple[Option, ...] = (
    (("-i", "--interactive"), "interactive", FLAG, "keep stdin open", {}),
    (("-t", "--tty"), "tty", FLAG, "allocate a terminal", {}),
    (("-e", "--env"), "env", APPEND, "set an environment variable",
     {"metavar": "KEY[=VALUE]"}),
    (("-w", "--workdir"), "workdir", VALUE, "working directory inside the container", {}),
    (("-u", "--user"), "user", VALUE, "user[:group] or uid[:gid] to run as", {}),
    (("--control-fd",), "control_fd", VALUE,
     "report terminal reads and take signals on fd N (kernel)",
     {"type": int, "metavar": "N"}),
)


def _options(command: str) -> tuple[tuple[Option, ...], str, str]:
    """(options, the positional before the command, its metavar) of run/create/exec."""
    if command == "exec":
        return _EXEC_OPTIONS, "container", "CONTAINER"
    if command == "run":
        return (_DETACH, *_CREATE_OPTIONS), "image", "IMAGE"
    return _CREATE_OPTIONS, "image", "IMAGE"


def _add_options(parser: argparse.ArgumentParser, command: str) -> None:
    import argparse

    options, positional, metavar = _options(command)
    for names, dest, action, help_text, extra in options:
        keywords = dict(extra)
        if action == APPEND:
            keywords.setdefault("default", [])
        parser.add_argument(*names, dest=dest, action=action, help=help_text, **keywords)
    parser.add_argument(positional, metavar=metavar)
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND ...")


def parse_fast(command: str, argv: list[str]) -> tuple[Handler, argparse.Namespace] | None:
    """Parse the common forms of ``run``/``create``/``exec`` without argparse (≈ 4 ms).

    Returns the handler and the same namespace argparse would give, or None for anything
    else — help, an unknown or abbreviated option, a bad choice, ``--``, an option value
    starting with ``-`` — which :func:`setup`'s argparse parser then handles (and
    reports) as always.
    """
    if command not in ("run", "create", "exec"):
        return None
    options, positional, _ = _options(command)
    by_name = {name: option for option in options for name in option[0]}
    values: dict[str, Any] = {}
    for _names, dest, action, _help, extra in options:
        values[dest] = [] if action == APPEND else False if action == FLAG else \
            extra.get("default")
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or arg == "-" or not arg.startswith("-"):
            break
        if arg.startswith("--"):
            name, eq, given = arg.partition("=")
            option = by_name.get(name)
            if option is None or (option[2] == FLAG and eq):
                return None
            pending: list[tuple[Option, str | None]] = [(option, given if eq else None)]
        else:  # -it, -eKEY=V, -i -e KEY=V
            pending = []
            for j in range(1, len(arg)):
                option = by_name.get(f"-{arg[j]}")
                if option is None:
                    return None
                if option[2] != FLAG:
                    if arg[j + 1:].startswith("="):
                        return None  # argparse reads -e=X as X
                    pending.append((option, arg[j + 1:] or None))
                    break
                pending.append((option, None))
        for option, inline in pending:
            _names, dest, action, _help, extra = option
            if action == FLAG:
                values[dest] = True
                continue
            if inline is None:
                i += 1
                if i >= len(argv) or argv[i].startswith("-"):
                    return None  # argparse decides what "-x" after an option means
                inline = argv[i]
            if "choices" in extra and inline not in extra["choices"]:
                return None
            if "type" in extra:
                try:
                    value = extra["type"](inline)
                except ValueError:
                    return None
            else:
                value = inline
            if action == APPEND:
                values[dest].append(value)
            else:
                values[dest] = value
        i += 1
    if i >= len(argv) or argv[i] == "--" or "--" in argv[i + 1:]:
        return None
    values[positional] = argv[i]
    values["command"] = argv[i + 1:]
    handler = {"run": _cmd_run, "create": _cmd_create, "exec": _cmd_exec}[command]
    return handler, Args(**values)


# ---------------------------------------------------------------------------- run / create

def _labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise ConfigError(f"--label {item!r}: use KEY=VALUE")
        labels[key] = value
    return labels


def config_from_args(args: argparse.Namespace) -> ContainerConfig:
    """The ContainerConfig that ``run``/``create`` flags ask for (pure; raises ConfigError)."""
    from .containerstate import ContainerConfig

    # Each parser is imported only when its option is given (portmap alone costs
    # ipaddress and dataclasses): a plain `cellbox run IMG CMD` needs none of them.
    memory = swap = cpus = pids = None
    if args.memory or args.memory_swap or args.cpus or args.pids_limit:
        from .units import parse_cpus, parse_pids_limit, parse_size

        memory = parse_size(args.memory, option="--memory") if args.memory else None
        swap = (parse_size(args.memory_swap, option="--memory-swap", allow_unlimited=True)
                if args.memory_swap else None)
        cpus = parse_cpus(args.cpus) if args.cpus else None
        pids = parse_pids_limit(args.pids_limit) if args.pids_limit else None
    ports = []
    if args.publish:
        from .portmap import parse_port

        ports = [parse_port(p) for p in args.publish]
    volumes = []
    if args.volume:
        from .containerspec import parse_volume

        volumes = [parse_volume(v) for v in args.volume]
    return ContainerConfig(
        image=args.image,
        name=args.name or "",
        entrypoint=None if args.entrypoint is None else
        ([args.entrypoint] if args.entrypoint else [""]),
        command=list(args.command) or None,
        env=list(args.env),
        workdir=args.workdir,
        user=args.user,
        hostname=args.hostname or "",
        memory=memory,
        memory_swap=swap,
        cpus=cpus,
        pids_limit=pids,
        network=args.network,
        ports=ports,
        volumes=volumes,
        tty=args.tty,
        interactive=args.interactive,
        labels=_labels(args.label),
        keep=args.keep,
        auto_remove=args.rm,
    )


def _progress_printer() -> Callable[[Any], None]:
    seen: dict[str, str] = {}

    def show(event: Any) -> None:
        status = str(getattr(event, "status", ""))
        layer = str(getattr(event, "layer", "")).removeprefix("sha256:")[:12]
        if status in ("downloading", "extracting") and seen.get(layer) == status:
            return  # one line per state change is enough on the command line
        seen[layer] = status
        if layer:
            print(f"{layer}: {status}", file=sys.stderr, flush=True)

    return show


def image_for(reference: str, policy: str, settings: Settings) -> Image:
    """The stored image, pulled first when ``policy`` says so (httpx only imported then)."""
    from .store import Store

    if policy != "always":
        try:
            return Store.from_settings(settings).get_image(reference)
        except ImageNotFound:
            if policy == "never":
                raise
        print(f"Unable to find image {reference!r} locally, pulling", file=sys.stderr)
    from . import sitepath

    sitepath.ensure()  # httpx lives in site-packages, which the launcher skipped
    from .pull import pull

    return pull(reference, settings=settings, policy="always" if policy == "always"
                else "missing", progress=_progress_printer())


def _create(args: argparse.Namespace, settings: Settings) -> Container:
    from .container import Container

    config = config_from_args(args)
    image = image_for(args.image, args.pull, settings)
    return Container.create(config, settings=settings, image=image)


def _forward_signals(container: Container) -> None:
    """Signals to this process go to the container's PID 1, as ``docker run`` does."""
    if TYPE_CHECKING:
        import signal
    else:
        import _signal as signal  # the C module: signal.py imports enum

    def forward(signum: int, _frame: Any) -> None:
        try:  # noqa: SIM105 - no contextlib on the start path
            container.kill(signum)
        except CellboxError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)


def _start_failed(container: Container, exc: CellboxError) -> int:
    """Docker's statuses for a start that failed: 127 no such command, else 125."""
    print(f"cellbox: {exc}", file=sys.stderr)
    return container.state.exit_code or 125


def _run_attached(container: Container, *, stdin: bool) -> int:
    from .ctx import suppress

    try:
        try:
            container.start(attach=True, stdin=stdin)
        except CellboxError as exc:
            return _start_failed(container, exc)
        _forward_signals(container)
        code = container.wait()
    finally:
        if container.config.auto_remove:
            with suppress(ContainerNotFound):
                container.remove(force=True)
    return 125 if code is None else code


def _cmd_run(args: argparse.Namespace) -> int:
    from .settings import Settings

    settings = Settings.load()
    container = _create(args, settings)
    if not args.detach:
        return _run_attached(container, stdin=args.interactive)
    try:
        container.start()
    except BaseException:
        if args.rm:
            container.remove(force=True)
        raise
    if args.rm:
        from .containerclean import spawn_remove_on_exit

        spawn_remove_on_exit(container)
    print(container.id)
    return 0


def _cmd_create(args: argparse.Namespace) -> int:
    from .settings import Settings

    container = _create(args, Settings.load())
    print(container.id)
    return 0


# ---------------------------------------------------------------------------- start / stop

def _cmd_start(args: argparse.Namespace) -> int:
    from .container import Container
    from .settings import Settings

    settings = Settings.load()
    if args.attach:
        if len(args.containers) != 1:
            raise ConfigError("start -a takes exactly one container")
        container = Container.load(args.containers[0], settings=settings)
        return _run_attached(container, stdin=args.interactive)
    failed = 0
    for key in args.containers:
        try:
            Container.load(key, settings=settings).start()
            print(key)
        except CellboxError as exc:
            print(f"cellbox start: {key}: {exc}", file=sys.stderr)
            failed = 1
    return failed


def _each(keys: list[str], action: Callable[[Container], object], command: str) -> int:
    from .container import Container
    from .settings import Settings

    settings = Settings.load()
    failed = 0
    for key in keys:
        try:
            action(Container.load(key, settings=settings))
            print(key)
        except CellboxError as exc:
            print(f"cellbox {command}: {key}: {exc}", file=sys.stderr)
            failed = 1
    return failed


def _cmd_stop(args: argparse.Namespace) -> int:
    return _each(args.containers, lambda c: c.stop(timeout=args.time), "stop")


def _cmd_rm(args: argparse.Namespace) -> int:
    if args.on_exit:
        from .containerclean import remove_on_exit

        remove_on_exit(args.on_exit)
        return 0
    if not args.containers:
        raise ConfigError("rm needs at least one container name or id")
    return _each(args.containers, lambda c: c.remove(force=args.force), "rm")


# ---------------------------------------------------------------------------- exec

def _cmd_exec(args: argparse.Namespace) -> int:
    from .containerexec import exec_running

    if not args.command:
        raise ConfigError("exec needs a command to run after the container name")
    options = {"tty": args.tty, "env": args.env, "workdir": args.workdir, "user": args.user,
               "control_fd": args.control_fd}
    if not args.interactive:
        # Like docker exec without -i: the command reads end-of-file, not our terminal.
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        os.dup2(devnull, 0)
        os.close(devnull)
    try:
        status = exec_running(args.container, list(args.command), **options)
        if status is None:
            # Not running (or it just ended): the long way finishes it and says so.
            from .container import Container

            status = Container.load(args.container).exec(list(args.command), **options)
    except SandboxError as exc:
        # docker exec's statuses: 126 cannot execute, 127 not found
        print(f"cellbox exec: {exc}", file=sys.stderr)
        return exc.exit_code
    return status


# ---------------------------------------------------------------------------- ps

def _quote_command(argv: list[str], width: int | None) -> str:
    import shlex

    text = shlex.join(argv) if argv else "(keep)"
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return f'"{text}"'


def _status_text(container: Container, now: datetime) -> str:
    from .containerstate import parse_time
    from .units import format_ago

    state = container.state
    status = container.status
    if status == "running":
        return f"Up {format_ago((now - parse_time(state.started_at)).total_seconds())}"
    if status == "exited":
        ago = format_ago((now - parse_time(state.finished_at)).total_seconds())
        oom = " (OOM killed)" if state.oom_killed else ""
        return f"Exited ({state.exit_code}){oom} {ago} ago"
    return "Created"


def _ports_text(container: Container) -> str:
    ports = container.state.network.get("ports") if container.running else None
    if ports:
        return ", ".join(
            f"{p['host_ip']}:{p['host_port']}->{p['container_port']}/{p['protocol']}"
            for p in ports
        )
    return ", ".join(str(p) for p in container.config.ports) if container.running else ""


def _familiar(reference: str) -> str:
    """``busybox`` for docker.io/library/busybox:latest, as docker ps shows it."""
    from .errors import InvalidReference
    from .reference import Reference

    try:
        return Reference.parse(reference).familiar.removesuffix(":latest")
    except InvalidReference:
        return reference


def render_ps(containers: list[Container], *, no_trunc: bool = False) -> str:
    """``docker ps`` columns for ``containers``."""
    from datetime import UTC, datetime

    from .containerstate import parse_time
    from .units import format_ago

    now = datetime.now(UTC)
    header = ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
    rows = [header]
    for c in containers:
        argv = c.config.argv
        created = format_ago((now - parse_time(c.config.created)).total_seconds())
        rows.append((
            c.id if no_trunc else c.short_id,
            _familiar(c.config.image),
            _quote_command(argv, None if no_trunc else 20),
            f"{created} ago",
            _status_text(c, now),
            _ports_text(c),
            c.name,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    )


def _cmd_ps(args: argparse.Namespace) -> int:
    from .container import Container

    containers = Container.list(all=args.all)
    if args.quiet:
        for c in containers:
            print(c.id if args.no_trunc else c.short_id)
    else:
        print(render_ps(containers, no_trunc=args.no_trunc))
    return 0


# ---------------------------------------------------------------------------- logs

def _cmd_logs(args: argparse.Namespace) -> int:
    from .container import Container
    from .units import parse_since

    container = Container.load(args.container)
    tail = None if args.tail in (None, "all") else int(args.tail)
    if tail is not None and tail < 0:
        raise ConfigError("--tail must be a number of lines or 'all'")
    since = parse_since(args.since) if args.since else None
    out, err = sys.stdout, sys.stderr
    try:
        for record in container.logs(tail=tail, since=since, follow=args.follow):
            stream = err if record.stream == "stderr" else out
            prefix = f"{record.t} " if args.timestamps else ""
            stream.write(prefix + record.text)
            stream.flush()
    except BrokenPipeError:
        # `cellbox logs x | head`: the reader is gone, which is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


# ---------------------------------------------------------------------------- stats

def _cmd_stats(args: argparse.Namespace) -> int:
    import time

    from .container import Container
    from .settings import Settings
    from .stats import render_table, stats_row

    settings = Settings.load()
    if args.containers:
        containers = [Container.load(k, settings=settings) for k in args.containers]
    else:
        containers = Container.list(settings=settings)
    previous = {c.id: c.stats() for c in containers}
    interval = 0.5 if args.no_stream else 1.0
    clear = sys.stdout.isatty() and not args.no_stream
    while True:
        time.sleep(interval)
        rows = []
        for c in containers:
            c.refresh()
            sample = c.stats()
            rows.append(stats_row(previous.get(c.id), sample))
            previous[c.id] = sample
        if clear:
            sys.stdout.write("\x1b[2J\x1b[H")
        print(render_table(rows), flush=True)
        if args.no_stream:
            return 0
        if not args.containers:
            containers = Container.list(settings=settings)


# ---------------------------------------------------------------------------- commit

def _cmd_commit(args: argparse.Namespace) -> int:
    from .container import Container

    container = Container.load(args.container)
    # Repository names are lower case; container names need not be.
    reference = args.reference or f"{container.name.lower()}:latest"
    image = container.commit(reference, message=args.message or "", author=args.author or "",
                             changes=list(args.change))
    print(image.digest)
    return 0


# ---------------------------------------------------------------------------- setup

def setup(command: str, parser: argparse.ArgumentParser) -> Handler:
    """Add ``command``'s arguments to ``parser``; return its handler (see runtime/cli.py)."""
    import argparse

    if command in ("run", "create", "exec"):
        _add_options(parser, command)
        return {"run": _cmd_run, "create": _cmd_create, "exec": _cmd_exec}[command]
    if command == "start":
        parser.add_argument("-a", "--attach", action="store_true",
                            help="show the output and wait for the exit status")
        parser.add_argument("-i", "--interactive", action="store_true",
                            help="pass stdin to the container (with -a)")
        parser.add_argument("containers", nargs="+", metavar="CONTAINER")
        return _cmd_start
    if command == "stop":
        parser.add_argument("-t", "--time", type=float, default=10,
                            help="seconds to wait before killing (default 10)")
        parser.add_argument("containers", nargs="+", metavar="CONTAINER")
        return _cmd_stop
    if command == "rm":
        parser.add_argument("-f", "--force", action="store_true",
                            help="kill and remove a running container")
        parser.add_argument("--on-exit", metavar="ID", help=argparse.SUPPRESS)
        parser.add_argument("containers", nargs="*", metavar="CONTAINER")
        return _cmd_rm
    if command == "ps":
        parser.add_argument("-a", "--all", action="store_true",
                            help="show every container (default: running ones)")
        parser.add_argument("-q", "--quiet", action="store_true", help="only ids")
        parser.add_argument("--no-trunc", action="store_true", help="full ids and commands")
        return _cmd_ps
    if command == "logs":
        parser.add_argument("-f", "--follow", action="store_true",
                            help="keep printing new lines until the container ends")
        parser.add_argument("-n", "--tail", help="only the last N lines (or 'all')")
        parser.add_argument("--since", help="only lines since 10m, 1h, or an RFC 3339 time")
        parser.add_argument("-t", "--timestamps", action="store_true",
                            help="prefix each line with its time")
        parser.add_argument("container", metavar="CONTAINER")
        return _cmd_logs
    if command == "stats":
        parser.add_argument("--no-stream", action="store_true",
                            help="print one table and exit")
        parser.add_argument("containers", nargs="*", metavar="CONTAINER")
        return _cmd_stats
    if command == "commit":
        parser.add_argument("-m", "--message", help="a comment for the history entry")
        parser.add_argument("-a", "--author", help="the author of the image")
        parser.add_argument("-c", "--change", action="append", default=[],
                            metavar="INSTRUCTION",
                            help="CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL or EXPOSE")
        parser.add_argument("container", metavar="CONTAINER")
        parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
        return _cmd_commit
    raise ConfigError(f"cli_containers has no command {command!r}")
