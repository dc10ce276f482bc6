"""A container's upper dir as an OCI layer: a deterministic tar, gzip'd.

overlayfs records a container's changes in its upper dir in its own dialect; a layer tar
speaks the OCI one. :func:`write_layer` translates while it writes:

* a whiteout (a char device 0:0) becomes an empty file ``.wh.NAME``;
* an opaque dir (``trusted.overlay.opaque=y``, or ``user.overlay.opaque=y`` when mounted
  with ``userxattr``) becomes the dir plus an empty ``DIR/.wh..wh..opq`` inside it;
* files that are hardlinked within the upper dir become one file and hardlinks to it.

The same upper dir always gives the same bytes, so committing twice with no change gives
the same layer digest: entries depth-first in byte order of their names; every mtime
clamped to ``epoch`` (``SOURCE_DATE_EPOCH`` when set, else 0); numeric uid/gid with no
user or group names; no atime/ctime; PAX headers only where ustar cannot hold a value
(long names, big ids, xattrs); gzip with mtime 0 and no file name.

The upper dir belongs to the container, which may still be changing it. So nothing in it
is followed: every entry is opened relative to its parent dir fd with ``O_NOFOLLOW`` and
described from ``fstat`` of what was opened, never from an earlier ``lstat``. Only
``user.*`` xattrs and ``security.capability`` are copied; overlayfs' own ``trusted.*``
attributes are not. Directories that overlayfs moved (``redirect_dir``) or metadata-only
copies (``metacopy``) cannot be expressed as a layer from the upper dir alone and are
refused. A name starting with ``.wh.`` in the upper dir would read as a whiteout in the
layer and is refused too.

:func:`apply_changes` implements ``commit -c`` (``CMD``, ``ENTRYPOINT``, ``ENV``,
``WORKDIR``, ``USER``, ``LABEL``, ``EXPOSE``) and :func:`commit_config` builds the new
image config.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import gzip
import hashlib
import io
import json
import os
import shlex
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from .errors import ConfigError, ContainerError

if TYPE_CHECKING:
    from .container import Container
    from .images import Image

__all__ = [
    "LayerDigests",
    "apply_changes",
    "commit_config",
    "commit_container",
    "default_epoch",
    "parse_change",
    "write_layer",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_REFUSED_XATTRS = {
    "trusted.overlay.redirect": "a directory renamed with overlayfs redirect_dir",
    "user.overlay.redirect": "a directory renamed with overlayfs redirect_dir",
    "trusted.overlay.metacopy": "a metadata-only copy (overlayfs metacopy)",
    "user.overlay.metacopy": "a metadata-only copy (overlayfs metacopy)",
}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def default_epoch() -> int:
    """The mtime every entry is clamped to: ``SOURCE_DATE_EPOCH`` if set, else 0."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        raise ConfigError(
            f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds"
        ) from None


@dataclass(frozen=True)
class LayerDigests:
    """What a written layer is: its blob digest and size, and its diff_id."""

    digest: str  # sha256 of the gzip'd blob
    size: int  # bytes of the gzip'd blob
    diff_id: str  # sha256 of the uncompressed tar
    entries: int


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes what passes through on its way to ``target``."""

    def __init__(self, target: IO[bytes] | None) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.hash.update(view)
        self.size += len(view)
        if self.target is not None:
            self.target.write(view)
        return len(view)


def _keep_xattr(name: str) -> bool:
    if name.startswith(("user.overlay.", "trusted.")):
        return False
    return name.startswith("user.") or name == "security.capability"


def _xattrs(fd: int, where: str) -> tuple[dict[str, str], bool]:
    """(xattrs to carry into the layer, is the dir opaque) of an open file or dir."""
    try:
        names = os.listxattr(fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}, False
        raise
    kept: dict[str, str] = {}
    opaque = False
    for name in sorted(names):
        if name in _REFUSED_XATTRS:
            raise ContainerError(
                f"cannot commit {where}: it is {_REFUSED_XATTRS[name]}, which a layer cannot "
                "express; copy the directory instead of renaming it, or mount without that "
                "overlayfs feature"
            )
        try:
            value = os.getxattr(fd, name)
        except OSError:
            continue
        if name in _OPAQUE_XATTRS:
            opaque = opaque or value == b"y"
        elif _keep_xattr(name):
            # tarfile keeps PAX values as str: surrogateescape round-trips any bytes.
            kept["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return kept, opaque


class _LayerWriter:
    def __init__(self, tar: tarfile.TarFile, epoch: int, exclude: set[str]) -> None:
        self.tar = tar
        self.epoch = epoch
        self.exclude = exclude
        self.links: dict[tuple[int, int], str] = {}
        self.entries = 0

    def _info(self, name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = min(int(st.st_mtime), self.epoch)
        return info

    def _add(self, info: tarfile.TarInfo, data: IO[bytes] | None = None) -> None:
        self.tar.addfile(info, data)
        self.entries += 1

    def _marker(self, name: str, parent_st: os.stat_result) -> None:
        info = tarfile.TarInfo(name)
        info.mode = 0o600
        info.uname = info.gname = ""
        info.mtime = min(int(parent_st.st_mtime), self.epoch)
        self._add(info)

    def walk(self, dir_fd: int, prefix: str) -> None:
        for name in sorted(os.listdir(dir_fd), key=os.fsencode):
            path = f"{prefix}{name}"
            if "/" + path in self.exclude:
                continue
            if name.startswith(WHITEOUT_PREFIX):
                raise ContainerError(
                    f"cannot commit /{path}: a name starting with {WHITEOUT_PREFIX!r} would "
                    "read as a deletion in the layer; rename it first"
                )
            self._entry(dir_fd, name, path)

    def _entry(self, dir_fd: int, name: str, path: str) -> None:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            parent, _, base = path.rpartition("/")
            self._marker(f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else
                         f"{WHITEOUT_PREFIX}{base}", st)
        elif stat.S_ISDIR(mode):
            self._directory(dir_fd, name, path)
        elif stat.S_ISREG(mode):
            self._regular(dir_fd, name, path)
        elif stat.S_ISLNK(mode):
            info = self._info(path, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(name, dir_fd=dir_fd)
            self._add(info)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            kind = (tarfile.CHRTYPE if stat.S_ISCHR(mode) else
                    tarfile.BLKTYPE if stat.S_ISBLK(mode) else tarfile.FIFOTYPE)
            info = self._info(path, st, kind)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self._add(info)
        # sockets have no place in a layer, like in docker's archives

    def _directory(self, dir_fd: int, name: str, path: str) -> None:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise _changed(path, exc) from exc
        try:
            st = os.fstat(fd)
            xattrs, opaque = _xattrs(fd, "/" + path)
            info = self._info(path, st, tarfile.DIRTYPE)
            info.pax_headers = xattrs
            self._add(info)
            if opaque:
                self._marker(f"{path}/{OPAQUE_MARKER}", st)
            self.walk(fd, f"{path}/")
        finally:
            os.close(fd)

    def _regular(self, dir_fd: int, name: str, path: str) -> None:
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise _changed(path, exc) from exc
        with open(fd, "rb", closefd=True) as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _changed(path, None)
            if st.st_nlink > 1:
                first = self.links.get((st.st_dev, st.st_ino))
                if first is not None:
                    info = self._info(path, st, tarfile.LNKTYPE)
                    info.linkname = first
                    self._add(info)
                    return
                self.links[(st.st_dev, st.st_ino)] = path
            xattrs, _ = _xattrs(fd, "/" + path)
            info = self._info(path, st, tarfile.REGTYPE)
            info.size = st.st_size
            info.pax_headers = xattrs
            try:
                self._add(info, f)
            except OSError as exc:  # tarfile: "unexpected end of data" when it shrank
                raise _changed(path, exc) from exc


def _changed(path: str, exc: OSError | None) -> ContainerError:
    why = f" ({exc.strerror or exc})" if exc is not None else ""
    return ContainerError(
        f"cannot commit /{path}: it changed while it was being read{why}; stop the container "
        "and commit again"
    )


def write_layer(
    upper_dir: str | os.PathLike[str],
    out: IO[bytes] | None,
    *,
    epoch: int | None = None,
    exclude: set[str] | None = None,
    compresslevel: int = 6,
) -> LayerDigests:
    """Write the upper dir as a gzip'd layer tar to ``out`` (None: only compute digests).

    ``exclude`` holds container paths ("/.cellbox") left out of the layer with everything
    under them.
    """
    epoch = default_epoch() if epoch is None else epoch
    compressed = _HashingWriter(out)
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0,
                       compresslevel=compresslevel) as gz:
        uncompressed = _HashingWriter(gz)  # type: ignore[arg-type]
        stream = io.BufferedWriter(uncompressed, buffer_size=1 << 20)
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT,
                          encoding="utf-8") as tar:
            writer = _LayerWriter(tar, epoch, exclude or set())
            try:
                root = os.open(upper_dir, _DIR_FLAGS)
            except OSError as exc:
                raise ContainerError(f"cannot read the upper dir {upper_dir}: {exc}") from exc
            try:
                writer.walk(root, "")
            finally:
                os.close(root)
        stream.flush()
    return LayerDigests(
        digest="sha256:" + compressed.hash.hexdigest(),
        size=compressed.size,
        diff_id="sha256:" + uncompressed.hash.hexdigest(),
        entries=writer.entries,
    )


# ---------------------------------------------------------------------------- config

_CHANGE_KEYS = ("CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "LABEL", "EXPOSE")


def _exec_form(text: str, key: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"--change {key}: {text!r} is not a JSON array of strings")
        return value
    return ["/bin/sh", "-c", text]


def _pairs(text: str, key: str) -> list[tuple[str, str]]:
    words = shlex.split(text)
    if len(words) == 2 and "=" not in words[0]:
        return [(words[0], words[1])]  # the old "ENV KEY VALUE" form
    pairs = []
    for word in words:
        k, sep, v = word.partition("=")
        if not sep or not k:
            raise ConfigError(f"--change {key}: {word!r} should be KEY=VALUE")
        pairs.append((k, v))
    return pairs


def parse_change(text: str) -> tuple[str, str]:
    """Split one ``--change`` instruction into (KEY, rest), checking the key."""
    key, _, rest = text.strip().partition(" ")
    key = key.upper()
    if key not in _CHANGE_KEYS:
        raise ConfigError(
            f"--change: {text!r} is not supported; use one of {', '.join(_CHANGE_KEYS)} "
            "(for example: CMD [\"python3\"])"
        )
    if not rest.strip():
        raise ConfigError(f"--change {key}: needs a value")
    return key, rest.strip()


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """The ``config`` section of an image config with ``commit -c`` instructions applied."""
    out = copy.deepcopy(config)
    for change in changes:
        key, value = parse_change(change)
        if key == "CMD":
            out["Cmd"] = _exec_form(value, key)
        elif key == "ENTRYPOINT":
            out["Entrypoint"] = _exec_form(value, key)
        elif key == "WORKDIR":
            if not value.startswith("/"):
                raise ConfigError(f"--change WORKDIR: {value!r} must be an absolute path")
            out["WorkingDir"] = value
        elif key == "USER":
            out["User"] = value
        elif key == "ENV":
            env = [e for e in out.get("Env") or [] if isinstance(e, str)]
            for k, v in _pairs(value, key):
                env = [e for e in env if e.partition("=")[0] != k] + [f"{k}={v}"]
            out["Env"] = env
        elif key == "LABEL":
            labels = dict(out.get("Labels") or {})
            labels.update(_pairs(value, key))
            out["Labels"] = labels
        else:  # EXPOSE
            ports = dict(out.get("ExposedPorts") or {})
            for port in value.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            out["ExposedPorts"] = ports
    return out


def commit_config(
    parent: dict[str, Any],
    diff_id: str,
    *,
    created: str,
    created_by: str,
    comment: str = "",
    author: str = "",
    changes: list[str] | None = None,
) -> dict[str, Any]:
    """The new image config: the parent's, one more diff_id, one more history entry."""
    config = copy.deepcopy(parent)
    config["created"] = created
    if author:
        config["author"] = author
    config["config"] = apply_changes(config.get("config") or {}, changes or [])
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["type"] = "layers"
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), diff_id]
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if comment:
        entry["comment"] = comment
    if author:
        entry["author"] = author
    config["history"] = [*config.get("history", []), entry]
    return config


# ---------------------------------------------------------------------------- commit

def _excluded_paths(container: Container) -> set[str]:
    """Container paths that are the runtime's, not the user's: never part of a commit."""
    from .container import EXCHANGE_IN

    return {EXCHANGE_IN.rsplit("/", 1)[0]}


def _mountpoint_placeholders(container: Container) -> set[str]:
    """Empty files and dirs the sandbox made in the upper dir only to mount over them."""
    upper = container.upper_dir
    targets = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
    targets += [v.destination for v in container.config.volumes]
    found = set()
    for target in targets:
        try:
            st = os.stat(upper / target.lstrip("/"), follow_symlinks=False)
        except OSError:
            continue
        if (stat.S_ISREG(st.st_mode) and st.st_size == 0) or (
            stat.S_ISDIR(st.st_mode) and not os.listdir(upper / target.lstrip("/"))
        ):
            found.add(target)
    return found


def commit_container(
    container: Container,
    reference: str,
    *,
    message: str = "",
    author: str = "",
    changes: list[str],
) -> Image:
    """Write ``container``'s upper dir as a layer and store a new image ``reference``."""
    from .containerstate import now_rfc3339
    from .reference import Reference
    from .store import Store

    ref = str(Reference.parse(reference))
    store = Store.from_settings(container.settings)
    parent = store.get_image(container.config.image_digest or container.config.image)
    for change in changes:
        parse_change(change)  # refuse a bad -c before the expensive part
    exclude = _excluded_paths(container) | _mountpoint_placeholders(container)
    tmp_dir = os.path.join(container.settings.root, "tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="commit-", suffix=".tar.gz", dir=tmp_dir)
    try:
        with open(fd, "w+b") as blob:
            digests = write_layer(container.upper_dir, blob, exclude=exclude)
            blob.seek(0)
            parent_chain = parent.layers[-1].chain_id if parent.layers else None
            layer = store.add_layer(blob, parent_chain, "gzip")
        if layer.diff_id != digests.diff_id:
            raise ContainerError(
                f"commit of {container.name}: the store computed diff_id {layer.diff_id}, "
                f"the layer writer {digests.diff_id}"
            )
        created_by = f"cellbox commit {container.name}"
        if changes:
            created_by += "".join(f" -c {shlex.quote(c)}" for c in changes)
        config = commit_config(
            container.image_config() or parent.config, digests.diff_id, created=now_rfc3339(),
            created_by=created_by, comment=message, author=author, changes=changes,
        )
        return store.add_image(ref, config, [*parent.layers, layer])
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
