"""Image references: the distribution grammar and Docker's normalisation."""

from __future__ import annotations

import pytest
from cellbox.runtime.errors import InvalidReference
from cellbox.runtime.reference import Reference, api_host, check_digest

D = "sha256:" + "ab" * 32

VALID = [
    # text, registry, repository, tag, digest, str, familiar
    ("ubuntu", "docker.io", "library/ubuntu", "latest", None,
     "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None,
     "docker.io/library/ubuntu:22.04", "ubuntu:22.04"),
    ("library/ubuntu", "docker.io", "library/ubuntu", "latest", None,
     "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", None,
     "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("index.docker.io/library/ubuntu:x", "docker.io", "library/ubuntu", "x", None,
     "docker.io/library/ubuntu:x", "ubuntu:x"),
    ("jupyter/minimal-notebook", "docker.io", "jupyter/minimal-notebook", "latest", None,
     "docker.io/jupyter/minimal-notebook:latest", "jupyter/minimal-notebook:latest"),
    ("localhost/x", "localhost", "x", "latest", None, "localhost/x:latest", "localhost/x:latest"),
    ("localhost:5000/x:1", "localhost:5000", "x", "1", None,
     "localhost:5000/x:1", "localhost:5000/x:1"),
    ("127.0.0.1:5000/a/b:tag", "127.0.0.1:5000", "a/b", "tag", None,
     "127.0.0.1:5000/a/b:tag", "127.0.0.1:5000/a/b:tag"),
    ("[::1]:5000/a", "[::1]:5000", "a", "latest", None, "[::1]:5000/a:latest",
     "[::1]:5000/a:latest"),
    ("ghcr.io/o/r@" + D, "ghcr.io", "o/r", None, D, f"ghcr.io/o/r@{D}", f"ghcr.io/o/r@{D}"),
    ("busybox:1.36@" + D, "docker.io", "library/busybox", "1.36", D,
     f"docker.io/library/busybox:1.36@{D}", f"busybox:1.36@{D}"),
    ("Example.COM/a", "Example.COM", "a", "latest", None, "Example.COM/a:latest",
     "Example.COM/a:latest"),
    ("a__b/c-d--e/f.g_h", "docker.io", "a__b/c-d--e/f.g_h", "latest", None,
     "docker.io/a__b/c-d--e/f.g_h:latest", "a__b/c-d--e/f.g_h:latest"),
    ("x:" + "T" * 128, "docker.io", "library/x", "T" * 128, None,
     "docker.io/library/x:" + "T" * 128, "x:" + "T" * 128),
    ("host:5000", "docker.io", "library/host", "5000", None,
     "docker.io/library/host:5000", "host:5000"),
]


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "full", "familiar"), VALID
)
def test_valid_references_normalise(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None,
    full: str, familiar: str,
) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry, repository, tag, digest
    )
    assert str(ref) == full
    assert ref.familiar == familiar
    # normalising is idempotent, from either form
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.familiar) == ref


INVALID = [
    # text, a piece the message must contain
    ("Ubuntu", "'Ubuntu' must be lowercase"),
    ("docker.io/Library/ubuntu", "must be lowercase"),
    ("ubuntu:", "invalid tag ''"),
    ("ubuntu:-x", "invalid tag '-x'"),
    ("ubuntu:.x", "invalid tag '.x'"),
    ("ubuntu:" + "a" * 129, "1 to 128"),
    ("ubuntu:a/b", "invalid registry host 'ubuntu:a'"),
    (":tag", "repository name is empty"),
    ("ubuntu@sha256:abc", "invalid digest in 'ubuntu@sha256:abc'"),
    ("ubuntu@md5:" + "a" * 32, "unsupported digest algorithm 'md5'"),
    ("ubuntu@sha256:" + "AB" * 32, "lowercase hex"),
    ("ubuntu@sha256:" + "a" * 63, "64 lowercase hex"),
    ("ubuntu@", "invalid digest"),
    ("a@" + D + "@" + D, "invalid digest"),
    ("a//b", "component ''"),
    ("a/", "component ''"),
    ("-a", "component '-a'"),
    ("a-", "component 'a-'"),
    ("a..b", "component 'a..b'"),
    ("a___b", "component 'a___b'"),
    ("host:abc/x", "invalid registry host 'host:abc'"),
    ("-host.com/x", "invalid registry host '-host.com'"),
    (" ubuntu", "spaces"),
    ("", "empty"),
    ("a" * 64, "image id"),
    ("a/" * 128 + "a", "longer than 255"),
    ("ubu ntu", "component 'ubu ntu'"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_references_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        Reference.parse(text)
    assert message in str(info.value)


def test_with_digest_pins_and_keeps_the_tag() -> None:
    ref = Reference.parse("busybox")
    pinned = ref.with_digest(D)
    assert pinned.digest == D and pinned.tag == "latest"
    assert pinned.manifest_ref == D
    assert ref.manifest_ref == "latest"
    with pytest.raises(InvalidReference):
        ref.with_digest("sha256:nothex")


def test_with_tag_drops_the_digest() -> None:
    ref = Reference.parse("busybox@" + D).with_tag("1.0")
    assert str(ref) == "docker.io/library/busybox:1.0"


def test_docker_hub_api_host() -> None:
    assert Reference.parse("ubuntu").api_host == "registry-1.docker.io"
    assert Reference.parse("index.docker.io/x/y").api_host == "registry-1.docker.io"
    assert Reference.parse("quay.io/x/y").api_host == "quay.io"
    assert api_host("127.0.0.1:5000") == "127.0.0.1:5000"


def test_check_digest_accepts_sha512() -> None:
    assert check_digest("sha512:" + "0" * 128) == "sha512:" + "0" * 128


# The grammar as regular expressions (github.com/distribution/reference); the parser's
# scanners must accept exactly what these accept.
GRAMMAR = {
    "_is_path_component": r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*",
    "_is_host": r"(?:(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
                r"(?:\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*"
                r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?",
    "_is_tag": r"(?a:[\w][\w.-]{0,127})",
    "_is_digest": r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}",
}
ALPHABETS = {
    "_is_path_component": "ab0._-_A/",
    "_is_host": "aZ0-.:[]9f",
    "_is_tag": "a_Z9.-:é",
    "_is_digest": "aZ9-_+.:fF",
}


@pytest.mark.parametrize("scanner", sorted(GRAMMAR))
def test_the_scanners_accept_what_the_grammar_accepts(scanner: str) -> None:
    import itertools
    import random
    import re

    from cellbox.runtime import reference

    check = getattr(reference, scanner)
    pattern = re.compile(GRAMMAR[scanner])
    alphabet = ALPHABETS[scanner]
    # every string up to 5 characters of the alphabet, then random longer ones
    samples = ["".join(p) for n in range(6) for p in itertools.product(alphabet, repeat=n)]
    rng = random.Random(4)
    samples += ["".join(rng.choices(alphabet, k=rng.randrange(6, 40))) for _ in range(20000)]
    if scanner == "_is_digest":
        samples += [f"{algo}:{hexpart}" for algo in ("sha256", "a.b", "a..b", "-a", "A9+b", "")
                    for hexpart in ("ab" * 16, "ab" * 15 + "a", "AB" * 32, "g" * 32, "")]
    if scanner == "_is_tag":
        samples += ["a" * 128, "a" * 129, "_" + "." * 127, "." + "a" * 10]
    for text in samples:
        assert check(text) == bool(pattern.fullmatch(text)), (scanner, text)

