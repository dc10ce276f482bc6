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

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .container import Container
from .containerstate import ContainerConfig, parse_time
from .errors import CellboxError, ConfigError, ContainerNotFound, ImageNotFound, SandboxError
from .settings import Settings

if TYPE_CHECKING:
    from datetime import datetime

    from .images import Image

# Modules only some commands need (units, containerspec, portmap, stats, datetime) are
# imported inside them: `cellbox exec` loads this module and pays for every import here.

__all__ = ["setup"]

Handler = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------------------- run / create

def _add_create_options(parser: argparse.ArgumentParser, *, run: bool) -> None:
    if run:
        parser.add_argument("-d", "--detach", action="store_true",
                            help="run in the background and print the container id")
    parser.add_argument("--rm", action="store_true",
                        help="remove the container when it exits")
    parser.add_argument("-i", "--interactive", action="store_true",
                        help="keep stdin open and pass it to the command")
    parser.add_argument("-t", "--tty", action="store_true", help="give the command a terminal")
    parser.add_argument("--name", help="the container's name (default: a random one)")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                        help="set an environment variable (KEY alone: take the host's)")
    parser.add_argument("-v", "--volume", action="append", default=[],
                        metavar="HOST:CONTAINER[:ro]", help="bind-mount a host path")
    parser.add_argument("-p", "--publish", action="append", default=[],
                        metavar="[IP:][HOST:]PORT[/udp]",
                        help="publish a container port (on 127.0.0.1 unless IP is given)")
    parser.add_argument("-w", "--workdir", help="working directory inside the container")
    parser.add_argument("-u", "--user", help="user[:group] name or uid[:gid] to run as")
    parser.add_argument("-m", "--memory", help="memory limit (e.g. 512m, 1g)")
    parser.add_argument("--memory-swap", help="memory + swap limit, or -1 for unlimited swap")
    parser.add_argument("--cpus", help="CPU quota in CPUs (e.g. 0.5)")
    parser.add_argument("--pids-limit", help="most processes at once (-1: unlimited)")
    parser.add_argument("--network", "--net", choices=("none", "bridge", "host"),
                        help="network mode (default: bridge as root, none rootless)")
    parser.add_argument("--hostname",
                        help="hostname (default: the first 12 characters of the id)")
    parser.add_argument("--entrypoint", help="override the image's entrypoint")
    parser.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE",
                        help="set a label on the container")
    parser.add_argument("--pull", choices=("always", "missing", "never"), default="missing",
                        help="pull the image: always, when missing (default), never")
    parser.add_argument("--keep", action="store_true",
                        help="no command: PID 1 waits until stopped (a kernel's container)")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND ...")


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
    from .containerspec import parse_volume
    from .portmap import parse_port
    from .units import parse_cpus, parse_pids_limit, parse_size

    memory = parse_size(args.memory, option="--memory") if args.memory else None
    swap = (parse_size(args.memory_swap, option="--memory-swap", allow_unlimited=True)
            if args.memory_swap else None)
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
        cpus=parse_cpus(args.cpus) if args.cpus else None,
        pids_limit=parse_pids_limit(args.pids_limit) if args.pids_limit else None,
        network=args.network,
        ports=[parse_port(p) for p in args.publish],
        volumes=[parse_volume(v) for v in args.volume],
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
    from .pull import pull

    return pull(reference, settings=settings, policy="always" if policy == "always"
                else "missing", progress=_progress_printer())


def _create(args: argparse.Namespace, settings: Settings) -> Container:
    config = config_from_args(args)
    image = image_for(args.image, args.pull, settings)
    return Container.create(config, settings=settings, image=image)


def _forward_signals(container: Container) -> None:
    """Signals to this process go to the container's PID 1, as ``docker run`` does."""

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(CellboxError):
            container.kill(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)


def _start_failed(container: Container, exc: CellboxError) -> int:
    """Docker's statuses for a start that failed: 127 no such command, else 125."""
    print(f"cellbox: {exc}", file=sys.stderr)
    return container.state.exit_code or 125


def _run_attached(container: Container, *, stdin: bool) -> int:
    try:
        try:
            container.start(attach=True, stdin=stdin)
        except CellboxError as exc:
            return _start_failed(container, exc)
        _forward_signals(container)
        code = container.wait()
    finally:
        if container.config.auto_remove:
            with contextlib.suppress(ContainerNotFound):
                container.remove(force=True)
    return 125 if code is None else code


def _cmd_run(args: argparse.Namespace) -> int:
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
    container = _create(args, Settings.load())
    print(container.id)
    return 0


# ---------------------------------------------------------------------------- start / stop

def _cmd_start(args: argparse.Namespace) -> int:
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
    if not args.command:
        raise ConfigError("exec needs a command to run after the container name")
    container = Container.load(args.container)
    if not args.interactive:
        # Like docker exec without -i: the command reads end-of-file, not our terminal.
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        os.dup2(devnull, 0)
        os.close(devnull)
    try:
        return container.exec(
            list(args.command), tty=args.tty, env=args.env, workdir=args.workdir,
            user=args.user, control_fd=args.control_fd,
        )
    except SandboxError as exc:
        # docker exec's statuses: 126 cannot execute, 127 not found
        print(f"cellbox exec: {exc}", file=sys.stderr)
        return exc.exit_code


# ---------------------------------------------------------------------------- ps

def _quote_command(argv: list[str], width: int | None) -> str:
    text = shlex.join(argv) if argv else "(keep)"
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return f'"{text}"'


def _status_text(container: Container, now: datetime) -> str:
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
    containers = Container.list(all=args.all)
    if args.quiet:
        for c in containers:
            print(c.id if args.no_trunc else c.short_id)
    else:
        print(render_ps(containers, no_trunc=args.no_trunc))
    return 0


# ---------------------------------------------------------------------------- logs

def _cmd_logs(args: argparse.Namespace) -> int:
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
    if command in ("run", "create"):
        _add_create_options(parser, run=command == "run")
        return _cmd_run if command == "run" else _cmd_create
    if command == "start":
        parser.add_argument("-a", "--attach", action="store_true",
                            help="show the output and wait for the exit status")
        parser.add_argument("-i", "--interactive", action="store_true",
                            help="pass stdin to the container (with -a)")
        parser.add_argument("containers", nargs="+", metavar="CONTAINER")
        return _cmd_start
    if command == "exec":
        parser.add_argument("-i", "--interactive", action="store_true",
                            help="keep stdin open")
        parser.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
        parser.add_argument("-e", "--env", action="append", default=[],
                            metavar="KEY[=VALUE]", help="set an environment variable")
        parser.add_argument("-w", "--workdir", help="working directory inside the container")
        parser.add_argument("-u", "--user", help="user[:group] or uid[:gid] to run as")
        parser.add_argument("--control-fd", type=int, metavar="N",
                            help="report terminal reads and take signals on fd N (kernel)")
        parser.add_argument("container", metavar="CONTAINER")
        parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND ...")
        return _cmd_exec
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
