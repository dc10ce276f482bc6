"""The image commands: ``pull``, ``images``, ``history``, ``inspect``, ``rmi``, ``tag``,
``prune`` (see :mod:`.cli` for the ``setup(command, parser) -> handler`` convention).

Output follows Docker's: a progress bar per layer while pulling on a terminal (a line per
layer state otherwise), aligned columns for lists, JSON for ``inspect``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from .errors import CellboxError, ContainerNotFound, ImageNotFound
from .images import Image, history, image_size
from .records import replace
from .reference import Reference
from .settings import Settings
from .store import Store

if TYPE_CHECKING:
    from .pull import PullEvent

__all__ = ["human_size", "image_inspect", "setup", "since"]

Handler = Callable[[argparse.Namespace], int]
# seconds precision is all "3 days ago" needs; fractions may have 9 digits (Go)
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|z|[+-]\d\d:\d\d)?")


def setup(command: str, parser: argparse.ArgumentParser) -> Handler:
    """Add ``command``'s arguments to ``parser``; return the function that runs it."""
    if command == "pull":
        parser.add_argument("--platform", help="OS/ARCH[/VARIANT], e.g. linux/arm64")
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        parser.add_argument("reference", metavar="REF", help="image, e.g. debian:bookworm")
        return _pull
    if command == "images":
        parser.add_argument("-q", "--quiet", action="store_true", help="only digests")
        parser.add_argument("--no-trunc", action="store_true", help="full digests")
        parser.add_argument("repository", nargs="?", help="only this repository")
        return _images
    if command == "history":
        parser.add_argument("--no-trunc", action="store_true", help="do not shorten output")
        parser.add_argument("-q", "--quiet", action="store_true", help="only layer digests")
        parser.add_argument("reference", metavar="REF")
        return _history
    if command == "inspect":
        parser.add_argument("--type", choices=("image", "container"), help="what NAME is")
        parser.add_argument("names", nargs="+", metavar="NAME", help="image or container")
        return _inspect
    if command == "rmi":
        parser.add_argument("-f", "--force", action="store_true",
                            help="also untag images that containers use")
        parser.add_argument("references", nargs="+", metavar="REF")
        return _rmi
    if command == "tag":
        parser.add_argument("source", metavar="SOURCE")
        parser.add_argument("target", metavar="TARGET")
        return _tag
    if command == "prune":
        return _prune
    raise ValueError(f"cli_images has no command {command!r}")


def _store(settings: Settings | None = None) -> Store:
    return Store.from_settings(settings or Settings.load())


# -- formatting -----------------------------------------------------------------------------


def human_size(size: int) -> str:
    """Docker's sizes: decimal units, three significant digits (``77.8MB``)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            text = f"{value:.3g}" if unit != "B" else str(int(value))
            return f"{text}{unit}"
        value /= 1000
    return f"{size}B"


def since(timestamp: str | None, now: datetime | None = None) -> str:
    """``3 days ago`` from an RFC 3339 time; "N/A" when there is none or it is unreadable."""
    match = _RFC3339.match(timestamp or "")
    if match is None:
        return "N/A"
    zone = match.group(2) if match.group(2) not in (None, "Z", "z") else "+00:00"
    try:
        when = datetime.fromisoformat(match.group(1) + zone)
    except ValueError:
        return "N/A"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, length in (("year", 31536000), ("month", 2592000), ("week", 604800),
                         ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "Less than a minute ago" if seconds >= 1 else "Less than a second ago"


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        out.write("   ".join(cells).rstrip() + "\n")


def _short(digest: str | None, trunc: bool = True) -> str:
    if not digest:
        return "<missing>"
    return digest[7:19] if trunc and digest.startswith("sha256:") else digest


# -- pull -----------------------------------------------------------------------------------


_LABELS = {
    "waiting": "Waiting",
    "downloading": "Downloading",
    "extracting": "Extracting",
    "exists": "Already exists",
    "done": "Pull complete",
}


class _Progress:
    """Docker-like progress: one redrawn line per layer on a terminal, else a line per
    state change."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.order: list[str] = []
        self.state: dict[str, PullEvent] = {}
        self.drawn = 0
        self.last_draw = 0.0

    def __call__(self, event: PullEvent) -> None:
        if event.status == "resolving":
            return
        previous = self.state.get(event.layer)
        if event.layer not in self.state:
            self.order.append(event.layer)
        self.state[event.layer] = event
        if self.tty:
            now = time.monotonic()
            changed = previous is None or previous.status != event.status
            if changed or now - self.last_draw > 0.1:
                self.draw()
                self.last_draw = now
        elif (previous is None or previous.status != event.status) and event.status not in (
            "waiting",
            "extracting",
        ):
            self.out.write(f"{_short(event.layer)}: {_LABELS[event.status]}\n")
            self.out.flush()

    def _line(self, event: PullEvent) -> str:
        label = _LABELS[event.status]
        if event.status in ("downloading", "extracting") and event.total:
            width = 40
            filled = min(width, width * event.current // event.total)
            bar = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (width - filled)
            amount = f"{human_size(event.current)}/{human_size(event.total)}"
            return f"{_short(event.layer)}: {label:<12} [{bar}] {amount}"
        return f"{_short(event.layer)}: {label}"

    def draw(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A")
        for layer in self.order:
            self.out.write("\x1b[2K" + self._line(self.state[layer]) + "\n")
        self.drawn = len(self.order)
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self.order:
            self.draw()


def _pull(args: argparse.Namespace) -> int:
    from .pull import pull

    settings = Settings.load()
    store = _store(settings)
    reference = Reference.parse(args.reference)
    before = store.find_image(reference)
    out = sys.stdout
    if not args.quiet:
        what = reference.tag or reference.digest
        where = reference.repository if reference.registry == "docker.io" else reference.name
        out.write(f"{what}: Pulling from {where}\n")
    progress = None if args.quiet else _Progress(out)
    image = pull(reference, settings=settings, platform=args.platform, progress=progress,
                 store=store)
    if progress is not None:
        progress.finish()
        out.write(f"Digest: {image.index_digest or image.digest}\n")
        fresh = before is None or before.digest != image.digest
        status = "Downloaded newer image" if fresh else "Image is up to date"
        out.write(f"Status: {status} for {reference.familiar}\n")
    out.write(f"{image.reference or reference}\n")
    return 0


# -- images, history -----------------------------------------------------------------------


def _images(args: argparse.Namespace) -> int:
    store = _store()
    wanted = None
    if args.repository:
        parsed = Reference.parse(args.repository)
        wanted = parsed.name
    rows = [["REPOSITORY", "TAG", "DIGEST", "CREATED", "SIZE"]]
    seen: set[str] = set()
    for image in store.images():
        repository, tag = "<none>", "<none>"
        if image.reference:
            ref = Reference.parse(image.reference)
            if wanted and ref.name != wanted:
                continue
            repository = replace(ref, tag=None, digest=None).familiar
            tag = ref.tag or "<none>"
        elif wanted:
            continue
        if args.quiet:
            if image.digest not in seen:
                sys.stdout.write(_short(image.digest, not args.no_trunc) + "\n")
            seen.add(image.digest)
            continue
        rows.append([
            repository,
            tag,
            _short(image.digest, not args.no_trunc),
            since(image.created),
            human_size(image_size(image)),
        ])
    if not args.quiet:
        _table(rows, sys.stdout)
    return 0


def _history(args: argparse.Namespace) -> int:
    image = _store().get_image(args.reference)
    rows = [["DIGEST", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for entry in history(image):
        if args.quiet:
            sys.stdout.write(_short(entry.digest, not args.no_trunc) + "\n")
            continue
        created_by = " ".join(entry.created_by.split()) if not args.no_trunc else (
            entry.created_by)
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append([
            _short(entry.digest, not args.no_trunc),
            since(entry.created),
            created_by,
            human_size(entry.size),
            entry.comment,
        ])
    if not args.quiet:
        _table(rows, sys.stdout)
    return 0


# -- inspect -------------------------------------------------------------------------------


def image_inspect(image: Image) -> dict[str, Any]:
    """An image as ``docker image inspect`` shapes it (plus the lower dirs)."""
    config = image.config
    repo_digests = []
    for name in image.references:
        ref = Reference.parse(name)
        repo_digests.append(f"{ref.name}@{image.index_digest or image.digest}")
    return {
        "Id": image.config_digest,
        "Digest": image.digest,
        "IndexDigest": image.index_digest,
        "RepoTags": [Reference.parse(n).familiar for n in image.references],
        "RepoDigests": sorted(set(repo_digests)),
        "Created": config.get("created"),
        "Author": config.get("author", ""),
        "Architecture": config.get("architecture"),
        "Variant": config.get("variant"),
        "Os": config.get("os"),
        "Config": config.get("config", {}),
        "Size": image_size(image),
        "RootFS": {
            "Type": "layers",
            "Layers": [layer.diff_id for layer in image.layers],
        },
        "Layers": [
            {
                "Digest": layer.digest,
                "DiffID": layer.diff_id,
                "ChainID": layer.chain_id,
                "Size": layer.size,
                "MediaType": layer.media_type,
                "Path": str(layer.path),
            }
            for layer in image.layers
        ],
        "Metadata": {"Added": image.added},
    }


def _container(name: str, settings: Settings) -> dict[str, Any] | None:
    try:
        from .container import Container
    except ImportError:
        return None
    try:
        found: dict[str, Any] = Container.load(name, settings=settings).inspect()
    except ContainerNotFound:
        return None
    return found


def _inspect(args: argparse.Namespace) -> int:
    settings = Settings.load()
    store = _store(settings)
    results: list[dict[str, Any]] = []
    status = 0
    for name in args.names:
        found = None
        if args.type != "image":
            found = _container(name, settings)
        if found is None and args.type != "container":
            try:
                found = image_inspect(store.get_image(name))
            except ImageNotFound:
                found = None
        if found is None:
            kind = args.type or "image or container"
            print(f"cellbox inspect: no such {kind}: {name}", file=sys.stderr)
            status = 1
            continue
        results.append(found)
    json.dump(results, sys.stdout, indent=4)
    sys.stdout.write("\n")
    return status


# -- rmi, tag, prune --------------------------------------------------------------------


def _rmi(args: argparse.Namespace) -> int:
    store = _store()
    status = 0
    for ref in args.references:
        try:
            report = store.remove(ref, force=args.force)
        except CellboxError as exc:
            print(f"cellbox rmi: {exc}", file=sys.stderr)
            status = 1
            continue
        for name in report.untagged:
            print(f"Untagged: {Reference.parse(name).familiar}")
        for digest in report.deleted:
            print(f"Deleted: {digest}")
        for chain_id in report.layers:
            print(f"Deleted layer: {chain_id}")
    return status


def _tag(args: argparse.Namespace) -> int:
    _store().tag(args.source, args.target)
    return 0


def _prune(args: argparse.Namespace) -> int:
    settings = Settings.load()
    try:  # containers first: what a crashed container held is then free to go
        from .containerclean import prune_leftovers
    except ImportError:
        pass
    else:
        for line in prune_leftovers(settings):
            print(line)
    report = _store(settings).prune()
    for digest in report.images:
        print(f"Deleted image: {digest}")
    for chain_id in report.layers:
        print(f"Deleted layer: {chain_id}")
    for digest in report.blobs:
        print(f"Deleted blob: {digest}")
    if report.temp:
        print(f"Deleted {len(report.temp)} leftover temporary files")
    print(f"Total reclaimed space: {human_size(report.freed)}")
    return 0
