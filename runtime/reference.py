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

``cellbox run IMAGE`` parses a reference on every start, so the grammar is checked by
the small scanners below rather than regular expressions (``re`` with the enum and
functools it imports costs ≈ 9 ms); tests/unit/test_reference.py holds them to the
regular expressions of the grammar above.
"""

from __future__ import annotations

from .errors import InvalidReference
from .records import record, replace

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

_DIGITS = frozenset("0123456789")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_LETTERS = _LOWER | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM = _LETTERS | _DIGITS
_LOWER_ALNUM = _LOWER | _DIGITS
_HEX_DIGITS = _DIGITS | frozenset("abcdefABCDEF")
_HEX_LOWER = _DIGITS | frozenset("abcdef")
_TAG_FIRST = _ALNUM | {"_"}
_TAG_REST = _TAG_FIRST | {".", "-"}
_LABEL = _ALNUM | {"-"}
_BRACKETED = _HEX_DIGITS | {":", "."}
_PATH_SEPARATORS = frozenset({".", "_", "__"})


def _is_path_component(text: str) -> bool:
    """``[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*``: runs of [a-z0-9] joined by separators."""
    if not text or text[0] not in _LOWER_ALNUM or text[-1] not in _LOWER_ALNUM:
        return False
    separator = ""
    for char in text:
        if char in _LOWER_ALNUM:
            if separator and separator not in _PATH_SEPARATORS and set(separator) != {"-"}:
                return False
            separator = ""
        elif char in "._-":
            separator += char
        else:
            return False
    return True


def _is_host(text: str) -> bool:
    """``(?:DNS-NAME|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]+)?``, labels ``[A-Za-z0-9](-*[A-Za-z0-9])*``."""
    if text.startswith("["):
        inside, bracket, port = text[1:].partition("]")
        if not bracket or not inside or not _BRACKETED.issuperset(inside):
            return False
        if port:
            return port[0] == ":" and len(port) > 1 and _DIGITS.issuperset(port[1:])
        return True
    name, colon, port = text.partition(":")
    if colon and not (port and _DIGITS.issuperset(port)):
        return False
    return all(
        label and label[0] in _ALNUM and label[-1] in _ALNUM and _LABEL.issuperset(label)
        for label in name.split(".")
    )


def _is_tag(text: str) -> bool:
    """``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``."""
    return 0 < len(text) <= 128 and text[0] in _TAG_FIRST and _TAG_REST.issuperset(text)


def _is_digest(text: str) -> bool:
    """``ALGORITHM:HEX``: ``[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*`` and 32 or
    more hex digits."""
    algorithm, colon, hexpart = text.partition(":")
    if not colon or len(hexpart) < 32 or not _HEX_DIGITS.issuperset(hexpart):
        return False
    component = ""
    for char in algorithm + "+":  # a final separator closes the last component
        if char in "-_+.":
            if not component or component[0] not in _LETTERS:
                return False
            component = ""
        elif char in _ALNUM:
            component += char
        else:
            return False
    return True


# algorithm -> hex length; only what cellbox can verify (hashlib) is accepted.
_DIGEST_HEX = {"sha256": 64, "sha512": 128}
_TAG_HELP = (
    "a tag is 1 to 128 letters, digits, '_', '.' and '-', and does not start with '.' or '-'"
)


def check_digest(digest: str, *, what: str = "digest") -> str:
    """Return ``digest`` if it is ``sha256:<64 lowercase hex>`` (or sha512), else raise.

    Raises :class:`InvalidReference` naming ``what`` and the bad digest.
    """
    if not _is_digest(digest):
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
        if not _is_path_component(component):
            raise InvalidReference(
                f"invalid reference {text!r}: bad repository name component {component!r} "
                "(lowercase letters and digits, separated by '.', '_', '__' or '-')"
            )


@record(frozen=True)
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
            if not _is_tag(tag):
                raise InvalidReference(f"invalid tag {tag!r} in {text!r}: {_TAG_HELP}")
        if len(rest) > _MAX_NAME:
            raise InvalidReference(
                f"invalid reference {text[:80]!r}...: the name is longer than {_MAX_NAME} "
                "characters"
            )
        registry, repository = _split_domain(rest)
        if registry != DOCKER_HUB and not _is_host(registry):
            raise InvalidReference(f"invalid registry host {registry!r} in {text!r}")
        if len(repository) == 64 and _HEX_LOWER.issuperset(repository):
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
        if not _is_tag(tag):
            raise InvalidReference(f"invalid tag {tag!r}: {_TAG_HELP}")
        return replace(self, tag=tag, digest=None)
