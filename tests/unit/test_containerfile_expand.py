"""Variable substitution and quoting in Containerfile arguments, as Docker does them."""

from __future__ import annotations

import pytest
from cellbox.runtime.build.shellwords import ExpansionError, expand, split_words

ENV = {"A": "apple", "EMPTY": "", "PATHS": "/usr/local/bin:/usr/bin", "FILE": "archive.tar.gz"}


@pytest.mark.parametrize(("word", "result"), [
    ("plain", "plain"),
    ("$A", "apple"),
    ("${A}s", "apples"),
    ("$A-pie", "apple-pie"),
    ("$Apie", ""),  # the name runs on
    ("$UNSET", ""),
    ("${UNSET:-default}", "default"),
    ("${EMPTY:-default}", "default"),
    ("${EMPTY-default}", ""),
    ("${UNSET-default}", "default"),
    ("${A:-default}", "apple"),
    ("${A:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${UNSET:-$A}", "apple"),
    ("${UNSET:-${A:+nested}}", "nested"),
    ("${UNSET:-'quoted $A'}", "quoted $A"),
    ("${FILE%.gz}", "archive.tar"),
    ("${FILE%%.*}", "archive"),
    ("${FILE#*.}", "tar.gz"),
    ("${FILE##*.}", "gz"),
    ("${PATHS%%:*}", "/usr/local/bin"),
    ("'$A'", "$A"),
    ('"$A and ${A}"', "apple and apple"),
    ('"a \\"quoted\\" \\$A \\\\ \\n"', 'a "quoted" $A \\ \\n'),
    ("\\$A", "$A"),
    ("a\\ b", "a b"),
    ("trailing\\", "trailing\\"),
    ("$", "$"),
    ("$ x", "$ x"),
    ("cost: 5$", "cost: 5$"),
    ("$1", ""),
    ("it\"'\"s", "it's"),
])
def test_expand(word: str, result: str) -> None:
    assert expand(word, ENV) == result


def test_backtick_escape() -> None:
    assert expand("`$A", ENV, escape="`") == "$A"
    assert expand("c:\\path\\$A", ENV, escape="`") == "c:\\path\\apple"


@pytest.mark.parametrize(("word", "message"), [
    ("'open", "unmatched single quote"),
    ('"open', "unmatched double quote"),
    ("${A", "missing '}'"),
    ("${}", "a name must follow"),
    ("${A:?must be set}", None),
    ("${UNSET:?must be set}", "UNSET: must be set"),
    ("${EMPTY?}", None),
    ("${UNSET?}", "UNSET: is not set"),
    ("${A/x/y}", "unsupported substitution"),
])
def test_expansion_errors(word: str, message: str | None) -> None:
    if message is None:
        expand(word, ENV)
        return
    with pytest.raises(ExpansionError, match=message):
        expand(word, ENV)


@pytest.mark.parametrize(("text", "words"), [
    ("a b  c", ["a", "b", "c"]),
    ('a="x y" b', ['a="x y"', "b"]),
    ("a='x y' b", ["a='x y'", "b"]),
    ("a\\ b c", ["a\\ b", "c"]),
    ("  lead trail  ", ["lead", "trail"]),
    ("", []),
])
def test_split_words(text: str, words: list[str]) -> None:
    assert split_words(text) == words
