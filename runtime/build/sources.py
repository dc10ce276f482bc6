"""What COPY names besides context files: ``--from`` paths, ``--chown`` and ``--chmod``. Pure
apart from reading the image's files through a :class:`~.rootview.RootView`.
"""

from __future__ import annotations

import posixpath

from ..errors import BuildError
from .context import TreeSource, glob_component, has_glob
from .rootview import RootView, StageSource

__all__ = ["image_sources", "owner_ids", "parse_chmod"]


def parse_chmod(text: str) -> int | None:
    """``--chmod`` as permission bits (None when not given); BuildError unless octal."""
    if not text:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"--chmod={text}: give octal permissions such as 755 or 0644")
    return mode


def owner_ids(view: RootView, chown: str) -> tuple[int, int]:
    """``--chown=user[:group]`` as (uid, gid), names looked up in the image.

    Docker's rule: a user without a group gets the gid equal to its uid.
    """
    user, _, group = chown.partition(":")
    uid = _id_of(view, user, "/etc/passwd", "user") if user else 0
    gid = _id_of(view, group, "/etc/group", "group") if group else uid
    return uid, gid


def _id_of(view: RootView, name: str, database: str, what: str) -> int:
    """The uid or gid of ``name`` in the image (a number is taken as it is)."""
    if name.isdigit():
        return int(name)
    text = view.read_text(database) or ""
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    raise BuildError(f"--chown: there is no {what} {name!r} in the image's {database}")


def image_sources(view: RootView, text: str) -> list[TreeSource]:
    """The ``--from`` sources ``text`` names in a stage's file system (globs allowed)."""
    path = posixpath.normpath("/" + text)
    if not has_glob(path):
        node = view.resolve(path, follow=True).node
        if node is None:
            raise BuildError(f"{text}: no such file or directory in the source stage or image")
        return [StageSource(view, node, posixpath.basename(path))]
    current = [view.root]
    for part in [p for p in path.split("/") if p]:
        nxt = []
        for parent in current:
            if not parent.is_dir:
                continue
            names = view.listdir(parent) if has_glob(part) else [part]
            regex = glob_component(part) if has_glob(part) else None
            for name in names:
                if regex is not None and not regex.match(name):
                    continue
                child = view.child(parent, name)
                if child is not None and child.is_symlink:
                    child = view.resolve(posixpath.join(parent.real, name)).node
                if child is not None:
                    nxt.append(child)
        current = nxt
    if not current:
        raise BuildError(f"{text}: nothing in the source stage or image matches")
    return [StageSource(view, node, posixpath.basename(node.real)) for node in current]
