"""Image references: parse, validate and normalise ``[registry/]repository[:tag][@digest]``.

The grammar is the one of github.com/distribution/reference::

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [ domain "/" ] path-component [ "/" path-component ]*
    domain      := host [ ":" port ]          host: DNS name, IPv4, or [IPv6]
    path-component := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
    tag         := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex

and Docker's normalisation: the first component is a registry only if it contains a ``.``
or a ``:`` or is ``localhost``; otherwise the registry is ``docker.io``, where a one-part
name lives under ``library/``. ``index.docker.io`` is another name of ``docker.io``.
Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import InvalidReference

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "Reference",
    "api_host",
    "check_digest",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_MAX_NAME = 255

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
# algorithm -> hex length; only what cellbox can verify (hashlib) is accepted.
_DIGEST_HEX = {"sha256": 64, "sha512": 128}
_TAG_HELP = (
    "a tag is 1 to 128 letters, digits, '_', '.' and '-', and does not start with '.' or '-'"
)


def check_digest(digest: str, *, what: str = "digest") -> str:
    """Return ``digest`` if it is ``sha256:<64 lowercase hex>`` (or sha512), else raise.

    Raises :class:`InvalidReference` naming ``what`` and the bad digest.
    """
    if not _DIGEST.fullmatch(digest):
        raise InvalidReference(
            f"invalid {what} {digest!r}: a digest is ALGORITHM:HEX, like sha256:<64 hex digits>"
        )
    algorithm, _, hexpart = digest.partition(":")
    length = _DIGEST_HEX.get(algorithm)
    if length is None:
        raise InvalidReference(
            f"unsupported digest algorithm {algorithm!r} in {digest!r}: use sha256"
        )
    if len(hexpart) != length or hexpart != hexpart.lower():
        raise InvalidReference(
            f"invalid {what} {digest!r}: {algorithm} needs {length} lowercase hex digits"
        )
    return digest


def api_host(registry: str) -> str:
    """The host:port the registry API answers on (Docker Hub's is registry-1.docker.io)."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain = DOCKER_HUB if first.lower() in _HUB_ALIASES else first
        return domain, rest
    return DOCKER_HUB, name


def _check_repository(text: str, repository: str) -> None:
    if not repository:
        raise InvalidReference(f"invalid reference {text!r}: the repository name is empty")
    if repository != repository.lower():
        raise InvalidReference(
            f"invalid reference {text!r}: repository name {repository!r} must be lowercase"
        )
    for component in repository.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise InvalidReference(
                f"invalid reference {text!r}: bad repository name component {component!r} "
                "(lowercase letters and digits, separated by '.', '_', '__' or '-')"
            )


@dataclass(frozen=True)
class Reference:
    """A normalised image reference, e.g. ``docker.io/library/ubuntu:latest``."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalise ``text``; raise :class:`InvalidReference` naming the bad part."""
        if not text or text != text.strip():
            raise InvalidReference(f"invalid reference {text!r}: empty or surrounded by spaces")
        rest, at, digest = text.partition("@")
        if at:
            check_digest(digest, what=f"digest in {text!r}")
        # A ':' after the last '/' starts the tag; one before it is a registry port.
        tag: str | None = None
        colon = rest.rfind(":")
        if colon > rest.rfind("/"):
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG.fullmatch(tag):
                raise InvalidReference(f"invalid tag {tag!r} in {text!r}: {_TAG_HELP}")
        if len(rest) > _MAX_NAME:
            raise InvalidReference(
                f"invalid reference {text[:80]!r}...: the name is longer than {_MAX_NAME} "
                "characters"
            )
        registry, repository = _split_domain(rest)
        if registry != DOCKER_HUB and not _HOST.fullmatch(registry):
            raise InvalidReference(f"invalid registry host {registry!r} in {text!r}")
        if re.fullmatch(r"[a-f0-9]{64}", repository):
            raise InvalidReference(
                f"invalid reference {text!r}: a 64-digit hex string is an image id, not a "
                "repository name"
            )
        _check_repository(text, repository)
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        if tag is None and not at:
            tag = "latest"
        return cls(registry, repository, tag, digest if at else None)

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host the registry API answers on (``registry-1.docker.io`` for docker.io)."""
        return api_host(self.registry)

    @property
    def manifest_ref(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()

    @property
    def familiar(self) -> str:
        """The short form people type: ``ubuntu:latest``, ``127.0.0.1:5000/a:b``."""
        name = self.name
        if self.registry == DOCKER_HUB:
            name = self.repository.removeprefix("library/")
        return name + self._suffix()

    def with_digest(self, digest: str) -> Reference:
        """The same reference pinned to ``digest`` (the tag, if any, is kept)."""
        return replace(self, digest=check_digest(digest))

    def with_tag(self, tag: str) -> Reference:
        """The same repository with ``tag`` and no digest."""
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid tag {tag!r}: {_TAG_HELP}")
        return replace(self, tag=tag, digest=None)
