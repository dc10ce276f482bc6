"""Manifest parsing and refusals, and platform selection from an index (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cellbox.runtime import mediatypes as mt
from cellbox.runtime.errors import ConfigError, ManifestError, PlatformNotFound
from cellbox.runtime.manifest import (
    MAX_MANIFEST_SIZE,
    Descriptor,
    Platform,
    compatible_platforms,
    manifest_layers,
    parse_manifest,
    select_platform,
    validate_image_manifest,
)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def image_manifest(media_type: str | None = mt.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": digest(1), "size": 10},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": digest(2), "size": 20}],
    }
    if media_type:
        doc["mediaType"] = media_type
    doc.update(extra)
    return doc


def entry(n: int, platform: str | None, media_type: str = mt.OCI_MANIFEST,
          **annotations: str) -> dict[str, Any]:
    item: dict[str, Any] = {"mediaType": media_type, "digest": digest(n), "size": 100 + n}
    if platform is not None:
        parts = platform.split("/")
        item["platform"] = {"os": parts[0], "architecture": parts[1]}
        if len(parts) > 2:
            item["platform"]["variant"] = parts[2]
    if annotations:
        item["annotations"] = {k.replace("_", "."): v for k, v in annotations.items()}
    return item


def index(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": list(entries)}


def raw(doc: object) -> bytes:
    return json.dumps(doc).encode()


# ------------------------------------------------------------------ parse_manifest


@pytest.mark.parametrize(
    ("doc", "content_type", "expected"),
    [
        (image_manifest(), mt.OCI_MANIFEST, mt.OCI_MANIFEST),
        (image_manifest(mt.DOCKER_MANIFEST), mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
        (image_manifest(None), mt.OCI_MANIFEST, mt.OCI_MANIFEST),  # OCI: mediaType optional
        (image_manifest(None), "application/json", mt.OCI_MANIFEST),  # shape decides
        (image_manifest(), "application/octet-stream", mt.OCI_MANIFEST),
        (image_manifest(), f"{mt.OCI_MANIFEST}; charset=utf-8", mt.OCI_MANIFEST),
        (index(), mt.OCI_INDEX, mt.OCI_INDEX),
        ({**index(), "mediaType": mt.DOCKER_MANIFEST_LIST}, mt.DOCKER_MANIFEST_LIST,
         mt.DOCKER_MANIFEST_LIST),
        ({"schemaVersion": 2, "manifests": []}, None, mt.OCI_INDEX),
    ],
)
def test_parse_manifest_decides_the_media_type(
    doc: dict[str, Any], content_type: str | None, expected: str
) -> None:
    media_type, parsed = parse_manifest(raw(doc), content_type, what="x")
    assert media_type == expected
    assert parsed == doc


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (raw({"schemaVersion": 1, "name": "a", "fsLayers": []}), "application/json",
         "Docker schema 1 manifest"),
        (raw(image_manifest()), mt.DOCKER_SCHEMA1_SIGNED, "schema 1"),
        (raw({"schemaVersion": 2, "mediaType": mt.DOCKER_SCHEMA1}), None, "schema 1"),
        (raw(image_manifest(mt.DOCKER_MANIFEST)), mt.OCI_MANIFEST,
         "Content-Type application/vnd.oci.image.manifest.v1+json but the manifest says "
         "mediaType application/vnd.docker.distribution.manifest.v2+json"),
        (raw(index()), mt.OCI_MANIFEST, "contradicting"),
        (raw(image_manifest(None)), mt.OCI_INDEX, "an index (application/vnd.oci.image.index"),
        (raw({**image_manifest(), "manifests": []}), mt.OCI_MANIFEST, "both manifests and"),
        (raw({**index(), "mediaType": mt.OCI_MANIFEST}), mt.OCI_MANIFEST, "with a manifests"),
        (b"not json", mt.OCI_MANIFEST, "not valid JSON"),
        (b"\xff\xfe", mt.OCI_MANIFEST, "not valid JSON"),
        (b"[1, 2]", mt.OCI_MANIFEST, "not a JSON object"),
        (raw({"schemaVersion": 3}), mt.OCI_MANIFEST, "schemaVersion 3"),
        (raw({"schemaVersion": 2, "mediaType": "text/html"}), None,
         "unsupported manifest media type 'text/html'"),
        (raw({"schemaVersion": 2}), "application/json", "unsupported manifest media type ''"),
        (b" " * (MAX_MANIFEST_SIZE + 1), mt.OCI_MANIFEST, "over the 4194304 byte cap"),
    ],
)
def test_parse_manifest_refuses(body: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(body, content_type, what="docker.io/library/x:1")
    assert message in str(info.value)
    assert "docker.io/library/x:1" in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                     "digest": digest(1), "size": 1}}, "is not a container image"),
        ({"config": None}, "config is not a JSON object"),
        ({"layers": "x"}, "layers is not a list"),
        ({"layers": [{"mediaType": "application/x-foo", "digest": digest(2), "size": 1}]},
         "layer 0 has media type application/x-foo"),
        ({"layers": [{"mediaType": mt.OCI_LAYER, "digest": "sha256:12", "size": 1}]},
         "layer 0"),
        ({"layers": [{"mediaType": mt.OCI_LAYER, "digest": digest(2), "size": -1}]},
         "no valid size (got -1)"),
        ({"layers": [{"mediaType": mt.OCI_LAYER, "digest": digest(2), "size": True}]},
         "no valid size"),
        ({"layers": [{"mediaType": mt.OCI_LAYER, "digest": digest(2), "size": "5"}]},
         "no valid size"),
        ({"layers": [{"mediaType": mt.OCI_LAYER, "digest": digest(2), "size": 1}] * 501},
         "501 layers"),
    ],
)
def test_validate_image_manifest_refuses(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as info:
        validate_image_manifest(image_manifest(**change), what="img")
    assert message in str(info.value)


def test_layers_are_descriptors_bottom_first() -> None:
    doc = image_manifest(layers=[
        {"mediaType": mt.OCI_LAYER_ZSTD, "digest": digest(5), "size": 5},
        {"mediaType": mt.DOCKER_LAYER_GZIP, "digest": digest(6), "size": 6},
    ])
    validate_image_manifest(doc, what="img")
    assert [(d.digest, d.size) for d in manifest_layers(doc)] == [(digest(5), 5), (digest(6), 6)]
    assert mt.layer_compression(mt.OCI_LAYER_ZSTD) == "zstd"
    assert mt.layer_compression(mt.DOCKER_LAYER_GZIP) == "gzip"
    assert mt.layer_compression(mt.OCI_LAYER) == "none"
    assert mt.layer_compression(mt.OCI_CONFIG) is None


# ---------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/armv7l", "linux/arm/v7"),
        ("linux/i686", "linux/386"),
        ("Linux/AMD64", "linux/amd64"),
        ("arm64", "linux/arm64"),
        ("linux/ppc64le", "linux/ppc64le"),
        ("windows/amd64", "windows/amd64"),
    ],
)
def test_platform_normalisation(text: str, expected: str) -> None:
    assert str(Platform.parse(text)) == expected


@pytest.mark.parametrize("text", ["", "linux/", "a/b/c/d", "/amd64"])
def test_bad_platform_option(text: str) -> None:
    with pytest.raises(ConfigError, match="OS/ARCH"):
        Platform.parse(text)


def test_host_platform_is_linux_and_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert str(Platform.host()) == "linux/arm64"
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert str(Platform.host()) == "linux/amd64"


def test_platform_of_a_config() -> None:
    config = {"os": "linux", "architecture": "arm", "variant": "v6"}
    assert str(Platform.from_config(config)) == "linux/arm/v6"
    assert Platform.from_config(config).runs_on(Platform.parse("linux/arm/v7"))
    assert not Platform.from_config(config).runs_on(Platform.parse("linux/amd64"))
    assert Platform.from_config({"os": "linux", "architecture": "x86_64"}).runs_on(
        Platform.parse("linux/amd64"))
    with pytest.raises(ManifestError, match="lacks a valid os"):
        Platform.from_config({"os": "linux"})


def test_compatible_platforms_best_first() -> None:
    names = [str(p) for p in compatible_platforms(Platform.parse("linux/arm/v7"))]
    assert names == ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    names = [str(p) for p in compatible_platforms(Platform.parse("linux/amd64/v3"))]
    assert names == ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]
    names = [str(p) for p in compatible_platforms(Platform.parse("linux/arm64"))]
    assert names[:2] == ["linux/arm64", "linux/arm/v8"]


ATTEST = {"vnd_docker_reference_type": "attestation-manifest"}

SELECT = [
    # entries, wanted, digest number chosen
    ([entry(1, "linux/amd64"), entry(2, "linux/arm64/v8")], "linux/amd64", 1),
    ([entry(1, "linux/amd64"), entry(2, "linux/arm64/v8")], "linux/arm64", 2),
    ([entry(1, "linux/amd64"), entry(2, "linux/arm64")], "linux/aarch64", 2),
    ([entry(1, "linux/x86_64"), entry(2, "linux/arm64")], "linux/amd64", 1),
    # attestations first in the list, and unknown/unknown, are skipped
    ([entry(9, "unknown/unknown", **ATTEST), entry(1, "linux/amd64")], "linux/amd64", 1),
    ([entry(9, "linux/amd64", **ATTEST), entry(1, "linux/amd64")], "linux/amd64", 1),
    # arm variants: exact first, then an older one that still runs
    ([entry(1, "linux/arm/v6"), entry(2, "linux/arm/v7")], "linux/arm/v7", 2),
    ([entry(1, "linux/arm/v5"), entry(2, "linux/arm/v6")], "linux/arm/v7", 2),
    ([entry(1, "linux/arm/v7")], "linux/armhf", 1),
    ([entry(1, "linux/arm/v7")], "linux/arm64", 1),
    # amd64: a v3 build is not picked for a plain amd64 machine
    ([entry(1, "linux/amd64/v3"), entry(2, "linux/amd64")], "linux/amd64", 2),
    ([entry(1, "linux/amd64"), entry(2, "linux/amd64/v3")], "linux/amd64/v3", 2),
    # Docker list entries too
    ([entry(1, "linux/amd64", mt.DOCKER_MANIFEST)], "linux/amd64", 1),
    # no fitting manifest, a nested index: descend into it
    ([entry(1, "linux/s390x"), entry(2, None, mt.OCI_INDEX)], "linux/amd64", 2),
    # a fitting manifest beats a nested index
    ([entry(2, None, mt.OCI_INDEX), entry(1, "linux/amd64")], "linux/amd64", 1),
    # entries of types that are not images are ignored
    ([entry(3, "linux/amd64", "application/vnd.example+json"), entry(1, "linux/amd64")],
     "linux/amd64", 1),
]


@pytest.mark.parametrize(("entries", "wanted", "chosen"), SELECT)
def test_select_platform(entries: list[dict[str, Any]], wanted: str, chosen: int) -> None:
    desc = select_platform(index(*entries), Platform.parse(wanted), what="img")
    assert isinstance(desc, Descriptor)
    assert desc.digest == digest(chosen)
    assert desc.size == 100 + chosen


def test_select_platform_defaults_to_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    doc = index(entry(1, "linux/amd64"), entry(2, "linux/arm64/v8"))
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert select_platform(doc).digest == digest(2)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert select_platform(doc).digest == digest(1)


def test_platform_not_found_lists_the_offer() -> None:
    doc = index(
        entry(1, "linux/arm64/v8"), entry(2, "linux/s390x"),
        entry(9, "unknown/unknown", **ATTEST),
    )
    with pytest.raises(PlatformNotFound) as info:
        select_platform(doc, Platform.parse("linux/amd64"), what="docker.io/library/x:1")
    message = str(info.value)
    assert "docker.io/library/x:1 has no image for linux/amd64" in message
    assert "it offers linux/arm64, linux/s390x;" in message
    assert "unknown" not in message
    assert "--platform" in message


def test_platform_not_found_in_an_empty_index() -> None:
    with pytest.raises(PlatformNotFound, match="offers no platforms"):
        select_platform(index(), Platform.parse("linux/amd64"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"mediaType": mt.OCI_MANIFEST, "digest": "md5:x", "size": 1}, "entry 0"),
        ({"mediaType": mt.OCI_MANIFEST, "digest": digest(1)}, "no valid size"),
        ({"digest": digest(1), "size": 1}, "no mediaType"),
        ({**entry(1, "linux/amd64"), "platform": {"os": "linux"}}, "lacks os or architecture"),
        ({**entry(1, "linux/amd64"), "platform": "linux/amd64"}, "not an object"),
        ({**entry(1, "linux/amd64"), "annotations": {"a": 1}}, "annotations"),
        ("string", "is not a JSON object"),
    ],
)
def test_bad_index_entries_are_refused(bad: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        select_platform({"manifests": [bad]}, Platform.parse("linux/amd64"))
