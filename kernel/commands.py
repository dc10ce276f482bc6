"""The magics that report or manage rather than run code: ``%ps``, ``%images``, ``%logs``,
``%stats``, ``%layers``, ``%commit``, ``%rmi``, ``%tag``.

Each is a blocking function of the runtime's public API returning the text to show; the
kernel runs them in a thread. Tables look like their ``cellbox``/``docker`` counterparts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cellbox.runtime.container import Container
from cellbox.runtime.errors import CellboxError
from cellbox.runtime.images import history, image_size, list_images, remove_image, tag_image
from cellbox.runtime.settings import Settings
from cellbox.runtime.stats import render_table, stats_row
from cellbox.runtime.units import format_ago, format_bytes

__all__ = ["Removed", "commit", "images", "layers", "logs", "ps", "rmi", "stats", "table", "tag"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns, two spaces apart, like ``docker ps``."""
    all_rows = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in all_rows
    )


def _ago(stamp: str | None) -> str:
    if not stamp:
        return ""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"{format_ago((datetime.now(UTC) - when).total_seconds())} ago"


def ps(settings: Settings, everything: bool, current: str | None, ours: set[str]) -> str:
    """``%ps``: containers, this notebook's marked (``*`` for the current one)."""
    rows = []
    for c in Container.list(all=everything, settings=settings):
        mark = "*" if c.name == current else ("+" if c.name in ours else " ")
        status = c.status
        if status == "exited":
            status = f"exited ({c.exit_code}){' OOM' if c.oom_killed else ''}"
        rows.append([mark, c.short_id, c.name, c.config.image, status, _ago(c.config.created)])
    if not rows:
        return "no containers" + ("" if everything else " running (%ps -a lists all)")
    text = table(["", "CONTAINER ID", "NAME", "IMAGE", "STATUS", "CREATED"], rows)
    return text + "\n\n* this notebook's current container, + its other containers"


def images(settings: Settings) -> str:
    """``%images``: the stored images."""
    rows = []
    for image in list_images(settings=settings):
        name, _, tag = (image.reference or "<none>:<none>").rpartition(":")
        if "/" in tag or not name:  # a digest reference or a port, not a tag
            name, tag = image.reference or "<none>", "<none>"
        rows.append([
            name, tag, image.digest.removeprefix("sha256:")[:12], _ago(image.created),
            format_bytes(image_size(image)),
        ])
    if not rows:
        return "no images stored yet (%pull IMAGE, or %container IMAGE pulls one)"
    return table(["REPOSITORY", "TAG", "DIGEST", "CREATED", "SIZE"], rows)


def layers(settings: Settings, container: Container) -> str:
    """``%layers``: the history of the container's image, newest first."""
    from cellbox.runtime.store import Store

    store = Store.from_settings(settings)
    image = store.find_image(container.config.image_digest) or store.get_image(
        container.config.image
    )
    rows = []
    for entry in history(image):
        created_by = " ".join(entry.created_by.split())
        if len(created_by) > 60:
            created_by = created_by[:57] + "..."
        digest = entry.digest.removeprefix("sha256:")[:12] if entry.digest else "<missing>"
        rows.append([digest, _ago(entry.created), created_by, format_bytes(entry.size)])
    head = f"{image.reference or container.config.image} ({image.digest[:19]})\n"
    return head + table(["LAYER", "CREATED", "CREATED BY", "SIZE"], rows)


def logs(container: Container, tail: int | None) -> str:
    """``%logs``: the container's log (kernel cells and the workload), oldest first."""
    text = "".join(record.text for record in container.logs(tail=tail))
    return text or f"the log of {container.name} is empty"


def stats(container: Container) -> str:
    """``%stats``: one docker-stats line (CPU % over a quarter of a second)."""
    first = container.stats()
    time.sleep(0.25)
    second = container.stats()
    return render_table([stats_row(first, second)])


def commit(container: Container, reference: str, message: str | None) -> str:
    """``%commit``: the container's files as a new image."""
    image = container.commit(reference, message=message or "")
    return (
        f"committed {container.name} as {image.reference or reference} "
        f"({image.digest[:19]}); use it with %container {reference}"
    )


@dataclass
class Removed:
    """What ``%rmi`` did (``text``, as ``cellbox rmi`` prints it) and what it could not do
    (``failures``: the error's name and message, per reference)."""

    text: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)


# The runtime's messages name the CLI; in a notebook the magics do the same.
_NOTEBOOK_WORDS = (("cellbox rmi -f", "%rmi -f"), ("(cellbox rm)", "(%rm NAME)"))


def rmi(settings: Settings, references: Sequence[str], force: bool) -> Removed:
    """``%rmi``: remove each image in turn; one that cannot go does not stop the others."""
    from cellbox.runtime.reference import Reference

    done = Removed()
    lines: list[str] = []
    for ref in references:
        try:
            report = remove_image(ref, force=force, settings=settings)
        except CellboxError as exc:
            message = str(exc)
            for cli, magic in _NOTEBOOK_WORDS:
                message = message.replace(cli, magic)
            done.failures.append((type(exc).__name__, message))
            continue
        lines += [f"Untagged: {Reference.parse(name).familiar}" for name in report.untagged]
        lines += [f"Deleted: {digest}" for digest in report.deleted]
        lines += [f"Deleted layer: {chain_id}" for chain_id in report.layers]
    done.text = "\n".join(lines)
    return done


def tag(settings: Settings, source: str, target: str) -> str:
    """``%tag``: another name for a stored image."""
    image = tag_image(source, target, settings=settings)
    short = image.digest.removeprefix("sha256:")[:12]
    return f"tagged {source} ({short}) as {target}"
