"""Manifests and indexes: parse, validate, and pick the platform. Pure: no I/O.

Everything here reads documents that came from a registry, so nothing is trusted: the
JSON must have the shape the OCI image spec gives it, every descriptor a valid digest and
a non-negative size, and a document must not be ambiguous (an index that also carries
``config`` or ``layers`` is refused, the confusion behind CVE-2021-41190).
"""

from __future__ import annotations

import json
import platform as _platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import mediatypes as mt
from .errors import ConfigError, InvalidReference, ManifestError, PlatformNotFound
from .reference import check_digest

__all__ = [
    "MAX_LAYERS",
    "MAX_MANIFEST_SIZE",
    "Descriptor",
    "Platform",
    "compatible_platforms",
    "index_descriptors",
    "is_attestation",
    "manifest_config",
    "manifest_layers",
    "parse_manifest",
    "select_platform",
    "validate_image_manifest",
]

MAX_MANIFEST_SIZE = 4 << 20
# overlayfs stacks at most 500 lower dirs; more layers than that could never run.
MAX_LAYERS = 500
_MAX_INDEX_ENTRIES = 10_000
_ATTESTATION_KEY = "vnd.docker.reference.type"


# --------------------------------------------------------------------------- platforms


def _normalise(os_name: str, arch: str, variant: str) -> tuple[str, str, str]:
    """containerd's normalisation: x86_64 → amd64, aarch64 → arm64, armhf → arm/v7, ..."""
    os_name, arch, variant = os_name.lower(), arch.lower(), variant.lower()
    if os_name == "macos":
        os_name = "darwin"
    if arch in ("i386", "i686", "x86", "386"):
        arch, variant = "386", ""
    elif arch in ("x86_64", "x86-64", "amd64"):
        arch = "amd64"
        variant = "" if variant == "v1" else variant
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        variant = "" if variant in ("8", "v8", "v8.0") else variant
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    elif arch in ("armv5l", "armv6l", "armv7l", "armv8l"):
        arch, variant = "arm", f"v{arch[4]}"
    elif arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = f"v{variant}"
    return os_name, arch, variant


@dataclass(frozen=True)
class Platform:
    """An OS/architecture/variant triple, always normalised (use the constructors)."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def of(cls, os_name: str, architecture: str, variant: str = "") -> Platform:
        """A normalised platform from its parts (``linux``, ``x86_64`` → linux/amd64)."""
        return cls(*_normalise(os_name, architecture, variant))

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64/v8``, ``linux/amd64`` or a bare ``arm64`` (meaning linux)."""
        parts = text.strip().split("/")
        if len(parts) == 1:
            parts.insert(0, "linux")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise ConfigError(
                f"invalid platform {text!r}: write OS/ARCH[/VARIANT], like linux/arm64/v8"
            )
        return cls.of(*parts)

    @classmethod
    def host(cls) -> Platform:
        """This machine: linux and the architecture of ``platform.machine()``."""
        return cls.of("linux", _platform.machine() or "amd64")

    @classmethod
    def from_json(cls, data: object) -> Platform:
        """The ``platform`` object of an index entry."""
        if not isinstance(data, dict):
            raise ManifestError("an index entry has a platform that is not an object")
        os_name, arch = data.get("os"), data.get("architecture")
        variant = data.get("variant", "")
        if not isinstance(os_name, str) or not isinstance(arch, str):
            raise ManifestError("an index entry's platform lacks os or architecture")
        if not isinstance(variant, str):
            raise ManifestError("an index entry's platform has a variant that is not a string")
        return cls.of(os_name, arch, variant)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Platform:
        """The platform an image config says it is for (``os``, ``architecture``, ``variant``)."""
        os_name, arch = config.get("os"), config.get("architecture")
        variant = config.get("variant") or ""
        if (
            not isinstance(os_name, str)
            or not isinstance(arch, str)
            or not isinstance(variant, str)
        ):
            raise ManifestError("the image config lacks a valid os or architecture")
        return cls.of(os_name, arch, variant)

    def runs_on(self, machine: Platform) -> bool:
        """True if an image for this platform runs on ``machine`` (arm/v6 on arm/v7, ...)."""
        return self in compatible_platforms(machine)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def compatible_platforms(wanted: Platform) -> list[Platform]:
    """Platforms that run on ``wanted``, best first (containerd's ``platforms.Only``)."""
    out = [wanted]
    arch, variant = wanted.architecture, wanted.variant
    version = int(variant[1:]) if variant[1:].isdigit() and variant[:1] == "v" else 0
    if arch == "amd64":
        out += [Platform(wanted.os, "amd64", f"v{v}") for v in range(version - 1, 1, -1)]
        if version > 1:
            out.append(Platform(wanted.os, "amd64"))
        out.append(Platform(wanted.os, "386"))
    elif arch == "arm":
        out += [Platform(wanted.os, "arm", f"v{v}") for v in range(version - 1, 4, -1)]
    elif arch == "arm64":
        out += [Platform(wanted.os, "arm", f"v{v}") for v in range(8, 4, -1)]
    return out


# -------------------------------------------------------------------------- descriptors


@dataclass(frozen=True)
class Descriptor:
    """A validated content descriptor (media type, digest, size, and the optional parts)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object, *, what: str) -> Descriptor:
        """Validate one descriptor object; ``what`` names it in errors ("layer 3")."""
        if not isinstance(data, dict):
            raise ManifestError(f"{what} is not a JSON object")
        media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestError(f"{what} has no mediaType")
        if not isinstance(digest, str):
            raise ManifestError(f"{what} has no digest")
        try:
            check_digest(digest, what=f"digest of {what}")
        except InvalidReference as exc:
            raise ManifestError(str(exc)) from None
        # bool is an int in Python; a JSON true is not a size.
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{what} has no valid size (got {size!r})")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ManifestError(f"{what} has annotations that are not strings")
        plat = Platform.from_json(data["platform"]) if data.get("platform") is not None else None
        return cls(media_type, digest, size, plat, annotations)


def is_attestation(desc: Descriptor) -> bool:
    """True for BuildKit's attestation entries (SBOM, provenance): not runnable images."""
    if desc.annotations.get(_ATTESTATION_KEY) == "attestation-manifest":
        return True
    return desc.platform is not None and (
        desc.platform.os == "unknown" or desc.platform.architecture == "unknown"
    )


# ---------------------------------------------------------------------------- documents


def _content_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _schema1_error(what: str) -> ManifestError:
    return ManifestError(
        f"{what} is a Docker schema 1 manifest, a format removed from Docker and not "
        "supported by cellbox; re-push the image with a current tool (docker, podman, skopeo)"
    )


def parse_manifest(
    raw: bytes, content_type: str | None, *, what: str
) -> tuple[str, dict[str, Any]]:
    """Decode a manifest or index and decide its media type.

    ``content_type`` is the response's Content-Type. The body's own ``mediaType`` must agree
    with it when both name a manifest type. Returns ``(media_type, document)``; raises
    :class:`ManifestError` for schema 1, JSON that is not a manifest, contradictions and
    oversize documents.
    """
    if len(raw) > MAX_MANIFEST_SIZE:
        raise ManifestError(
            f"{what}: the manifest is {len(raw)} bytes, over the {MAX_MANIFEST_SIZE} byte cap"
        )
    header_type = _content_type(content_type)
    if header_type in mt.SCHEMA1_TYPES:
        raise _schema1_error(what)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{what}: the manifest is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{what}: the manifest is not a JSON object")
    if doc.get("schemaVersion") == 1:
        raise _schema1_error(what)
    if doc.get("schemaVersion") != 2:
        raise ManifestError(
            f"{what}: unsupported manifest schemaVersion {doc.get('schemaVersion')!r}"
        )
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestError(f"{what}: the manifest's mediaType is not a string")
    if body_type in mt.SCHEMA1_TYPES:
        raise _schema1_error(what)
    known = mt.INDEX_TYPES | mt.MANIFEST_TYPES
    if body_type and header_type in known and body_type != header_type:
        raise ManifestError(
            f"{what}: the registry sent Content-Type {header_type} but the manifest says "
            f"mediaType {body_type}; refusing a contradicting manifest"
        )
    media_type = body_type or (header_type if header_type in known else _infer_type(doc))
    if media_type not in known:
        raise ManifestError(
            f"{what}: unsupported manifest media type {media_type!r}; cellbox reads OCI and "
            "Docker v2 images"
        )
    has_index_keys = "manifests" in doc
    has_image_keys = "config" in doc or "layers" in doc
    if has_index_keys and has_image_keys:
        raise ManifestError(f"{what}: the document has both manifests and config/layers")
    if media_type in mt.INDEX_TYPES and not has_index_keys:
        raise ManifestError(f"{what}: an index ({media_type}) without a manifests list")
    if media_type in mt.MANIFEST_TYPES and has_index_keys:
        raise ManifestError(f"{what}: an image manifest ({media_type}) with a manifests list")
    return media_type, doc


def _infer_type(doc: dict[str, Any]) -> str:
    # OCI made mediaType optional early on; only then is the shape all we have.
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc:
        return mt.OCI_MANIFEST
    return ""


def index_descriptors(doc: Mapping[str, Any], *, what: str = "the index") -> list[Descriptor]:
    """The validated entries of an index's ``manifests`` list."""
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise ManifestError(f"{what}: manifests is not a list")
    if len(entries) > _MAX_INDEX_ENTRIES:
        raise ManifestError(f"{what}: more than {_MAX_INDEX_ENTRIES} entries")
    return [
        Descriptor.from_json(entry, what=f"{what}, entry {i}") for i, entry in enumerate(entries)
    ]


def manifest_config(doc: Mapping[str, Any], *, what: str = "the manifest") -> Descriptor:
    """The config descriptor of an image manifest (validated)."""
    return Descriptor.from_json(doc.get("config"), what=f"{what}, config")


def manifest_layers(doc: Mapping[str, Any], *, what: str = "the manifest") -> list[Descriptor]:
    """The layer descriptors of an image manifest, bottom first (validated)."""
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestError(f"{what}: layers is not a list")
    return [
        Descriptor.from_json(layer, what=f"{what}, layer {i}") for i, layer in enumerate(layers)
    ]


def validate_image_manifest(doc: dict[str, Any], *, what: str) -> dict[str, Any]:
    """Check that ``doc`` is a runnable container image manifest; return it unchanged.

    Refuses a config that is not an image config (OCI artifacts such as Helm charts),
    layer media types cellbox cannot unpack, and more than :data:`MAX_LAYERS` layers.
    """
    config = manifest_config(doc, what=what)
    if config.media_type not in mt.CONFIG_TYPES:
        raise ManifestError(
            f"{what} is not a container image: its config has media type {config.media_type}"
        )
    layers = manifest_layers(doc, what=what)
    if len(layers) > MAX_LAYERS:
        raise ManifestError(f"{what} has {len(layers)} layers; cellbox stacks at most {MAX_LAYERS}")
    for i, layer in enumerate(layers):
        if layer.media_type not in mt.LAYER_TYPES:
            raise ManifestError(
                f"{what}: layer {i} has media type {layer.media_type}, which cellbox cannot "
                "unpack (it reads tar, tar+gzip and tar+zstd layers)"
            )
    return doc


# ----------------------------------------------------------------------- the selection


def _offered(descriptors: Sequence[Descriptor]) -> str:
    names = sorted({str(d.platform) for d in descriptors if d.platform and not is_attestation(d)})
    return ", ".join(names) if names else "no platforms"


def select_platform(
    doc: Mapping[str, Any], wanted: Platform | None = None, *, what: str = "the image"
) -> Descriptor:
    """Pick the entry of an index to run on ``wanted`` (default: this machine).

    Returns an image-manifest descriptor, or, when none fits but the index nests other
    indexes, the first nested index to look into (the caller fetches it and selects again).
    Attestation entries are never picked. Raises :class:`PlatformNotFound` listing what the
    index offers.
    """
    wanted = wanted or Platform.host()
    descriptors = [d for d in index_descriptors(doc, what=what) if not is_attestation(d)]
    acceptable = compatible_platforms(wanted)
    for target in acceptable:
        for desc in descriptors:
            if desc.media_type in mt.MANIFEST_TYPES and desc.platform == target:
                return desc
    for desc in descriptors:
        if desc.media_type in mt.INDEX_TYPES and (
            desc.platform is None or desc.platform in acceptable
        ):
            return desc
    raise PlatformNotFound(
        f"{what} has no image for {wanted}: it offers {_offered(descriptors)}; "
        "choose one of those with a platform option (e.g. --platform linux/amd64)"
    )
