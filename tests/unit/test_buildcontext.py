"""The build context on disk: sources, globs, the ignore file, symlinks kept inside, digests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cellbox.runtime.build.context import BuildContext, ContextSource
from cellbox.runtime.errors import BuildError


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "README.md").write_text("readme\n")
    (root / "notes.md").write_text("notes\n")
    (root / ".hidden.md").write_text("hidden\n")
    (root / "secret.key").write_text("s3cret\n")
    (root / "build").mkdir()
    (root / "build" / "out.o").write_text("obj\n")
    (root / ".containerignore").write_text("*.key\nbuild\n")
    return root


def paths(source: ContextSource) -> list[tuple[str, str]]:
    return [(e.path, e.kind) for e in source.entries()]


def test_a_file_a_directory_and_the_root(ctx: Path) -> None:
    with BuildContext(ctx) as context:
        (readme,) = context.sources("README.md")
        assert (readme.rel, readme.name, readme.is_dir) == ("README.md", "README.md", False)
        assert paths(readme) == [("", "file")]
        with readme.open(next(readme.entries())) as f:
            assert f.read() == b"readme\n"
        (src,) = context.sources("./src/")
        assert src.is_dir and src.name == "src"
        assert paths(src) == [("", "dir"), ("main.py", "file"), ("pkg", "dir"),
                              ("pkg/mod.py", "file")]
        (root,) = context.sources(".")
        names = [p for p, _ in paths(root)]
        assert "secret.key" not in names and "build" not in names and "build/out.o" not in names
        assert {"README.md", "src/pkg/mod.py", ".containerignore"} <= set(names)
        # absolute source paths are relative to the context root
        assert context.sources("/src/main.py")[0].rel == "src/main.py"


def test_globs(ctx: Path) -> None:
    with BuildContext(ctx) as context:
        assert [s.rel for s in context.sources("*.md")] == [".hidden.md", "README.md",
                                                              "notes.md"]
        assert [s.rel for s in context.sources("src/*/mod.py")] == ["src/pkg/mod.py"]
        assert [s.rel for s in context.sources("[nR]*.md")] == ["README.md", "notes.md"]
        assert [s.rel for s in context.sources("[^R]*.md")] == [".hidden.md", "notes.md"]
        with pytest.raises(BuildError, match="no file in the build context"):
            context.sources("*.key")  # excluded: matches nothing
        with pytest.raises(BuildError, match="no file in the build context"):
            context.sources("*.nothing")


def test_refusals(ctx: Path) -> None:
    with BuildContext(ctx) as context:
        with pytest.raises(BuildError, match=r"excluded from the build context by "
                                             r"\.containerignore"):
            context.sources("secret.key")
        with pytest.raises(BuildError, match="excluded"):
            context.sources("build/out.o")
        with pytest.raises(BuildError, match="no such file or directory"):
            context.sources("missing.txt")
        with pytest.raises(BuildError, match="outside the build context"):
            context.sources("../ctx/README.md")


def test_symlinks_resolve_inside_the_context(ctx: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host file\n")
    (ctx / "abs-link").symlink_to(outside)  # absolute: resolved in the context's root
    (ctx / "up-link").symlink_to("../outside.txt")  # ".." stops at the context root
    (ctx / "readme-link").symlink_to("README.md")
    (ctx / "key-link").symlink_to("secret.key")
    (ctx / "src" / "to-main").symlink_to("main.py")
    with BuildContext(ctx) as context:
        for name in ("abs-link", "up-link"):
            with pytest.raises(BuildError, match="no such file"):
                context.sources(name)
        (link,) = context.sources("readme-link")
        assert (link.rel, link.name) == ("README.md", "readme-link")
        with pytest.raises(BuildError, match=r"leads to secret\.key, which \.containerignore "
                                             r"excludes"):
            context.sources("key-link")
        (src,) = context.sources("src")
        entries = {e.path: e for e in src.entries()}
        assert entries["to-main"].kind == "symlink" and entries["to-main"].linkname == "main.py"
    # the same link, with the file it names inside the context
    mirrored = ctx / tmp_path.relative_to("/") / "outside.txt"
    mirrored.parent.mkdir(parents=True)
    mirrored.write_text("inside\n")
    with BuildContext(ctx) as context:
        (inside,) = context.sources("abs-link")
        with inside.open(next(inside.entries())) as f:
            assert f.read() == b"inside\n"


def test_reincluded_files_inside_an_ignored_dir(ctx: Path) -> None:
    (ctx / ".containerignore").write_text("build\n!build/keep.txt\n")
    (ctx / "build" / "keep.txt").write_text("keep\n")
    with BuildContext(ctx) as context:
        (root,) = context.sources(".")
        names = [p for p, _ in paths(root)]
        assert "build" in names and "build/keep.txt" in names and "build/out.o" not in names


def test_dockerignore_is_the_fallback(ctx: Path) -> None:
    (ctx / ".containerignore").unlink()
    (ctx / ".dockerignore").write_text("notes.md\n")
    with BuildContext(ctx) as context:
        assert context.ignore_file == ".dockerignore"
        assert context.sources("secret.key")[0].rel == "secret.key"
        with pytest.raises(BuildError, match="excluded"):
            context.sources("notes.md")


def test_digest_follows_content_and_mode_not_mtime(ctx: Path) -> None:
    def digest() -> str:
        with BuildContext(ctx) as context:
            return context.sources("src")[0].digest()

    first = digest()
    assert digest() == first
    os.utime(ctx / "src" / "main.py", (1, 1))
    assert digest() == first  # touched: same
    (ctx / "src" / "main.py").write_text("print('bye')\n")
    changed = digest()
    assert changed != first
    (ctx / "src" / "main.py").chmod(0o755)
    assert digest() != changed
    (ctx / "src" / "main.py").chmod(0o644)
    assert digest() == changed
    (ctx / "src" / "new.py").write_text("")
    assert digest() != changed


def test_ignored_files_do_not_change_the_digest(ctx: Path) -> None:
    with BuildContext(ctx) as context:
        before = context.sources(".")[0].digest()
    (ctx / "build" / "more.o").write_text("more\n")
    (ctx / "another.key").write_text("k\n")
    with BuildContext(ctx) as context:
        assert context.sources(".")[0].digest() == before


def test_a_missing_context_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="cannot open the build context"):
        BuildContext(tmp_path / "nope")
