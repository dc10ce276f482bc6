""".containerignore / .dockerignore patterns, matched like moby/patternmatcher."""

from __future__ import annotations

import pytest
from cellbox.runtime.build.ignore import IgnoreRules, clean_path
from cellbox.runtime.errors import BuildError

# (pattern, path, ignored): the cases of moby/patternmatcher's own table that apply to
# slash-separated paths.
MATCHES = [
    ("**", "file", True), ("**", "file/", True), ("**/", "file", True), ("**", "/", True),
    ("**", "dir/file", True), ("**/", "dir/file", True), ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True), ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True), ("**file", "file", True),
    ("**file", "dir/file", True), ("**/file", "dir/file", True), ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True), ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True), ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True), ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True), ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True), ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True), ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True), (".*", ".foo", True), (".*", "foo", False),
    ("abc.def", "abcdef", False), ("abc.def", "abc.def", True), ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False), ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True), ("abc/**", "abc", False),
    ("abc/**", "abc/def", True), ("abc/**", "abc/def/ghi", True), ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False), ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False), ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    # a pattern naming a directory leaves out everything in it
    ("build", "build/out/x.o", True), ("build", "src/build", False),
    ("/build", "build/x", True), ("./build/", "build/x", True), ("*", "x/y/z", True),
    ("*.md", "sub/a.md", False), ("*/*.md", "sub/a.md", True),
]


@pytest.mark.parametrize(("pattern", "path", "ignored"), MATCHES)
def test_patterns(pattern: str, path: str, ignored: bool) -> None:
    assert IgnoreRules.parse(pattern).ignored(path) is ignored


def test_the_last_match_wins_and_exclusions_reinclude() -> None:
    rules = IgnoreRules.parse("docs\n!docs/README.md\n*.md\n!README.md\n")
    assert rules.ignored("docs/guide.txt")
    assert not rules.ignored("docs/README.md")
    assert rules.ignored("CHANGES.md")
    assert not rules.ignored("README.md")
    assert rules.has_exclusions
    rules = IgnoreRules.parse("docs\n!docs/keep\n")
    assert rules.ignored("docs/x") and not rules.ignored("docs/keep")
    assert not rules.ignored("docs/keep/inside")  # its parent is re-included


def test_file_syntax() -> None:
    text = "\ufeff# a comment\n  node_modules  \n\n#not/a/pattern\n !  /secret \r\n"
    rules = IgnoreRules.parse(text)
    assert [(p.text, p.exclusion) for p in rules.patterns] == [
        ("node_modules", False), ("secret", True),
    ]
    assert IgnoreRules.parse(" # not a comment").ignored("# not a comment")
    assert not IgnoreRules().ignored("anything")
    assert not IgnoreRules.parse("*").ignored(".")  # the context itself never


@pytest.mark.parametrize(("text", "message"), [
    ("ok\n!\n", ".containerignore line 2: '!' needs a pattern"),
    ("a[b\n", ".containerignore line 1: bad pattern 'a[b'"),
    ("x\ny\\\n", ".containerignore line 2: bad pattern"),
    ("[]a\n", "empty character class"),
])
def test_bad_patterns_name_the_line(text: str, message: str) -> None:
    with pytest.raises(BuildError, match=message.replace("[", "\\[")):
        IgnoreRules.parse(text)


@pytest.mark.parametrize(("path", "clean"), [
    ("", "."), ("a//b/./c/..", "a/b"), ("//a", "/a"), ("/../x", "/x"), ("./", "."),
])
def test_clean_path_is_gos(path: str, clean: str) -> None:
    assert clean_path(path) == clean
