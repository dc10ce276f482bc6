"""Completion and inspection: what the cursor is on (pure), and the scripts, run in bash and sh."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cellbox.kernel.completion import (
    CompletionRequest,
    completion_request,
    completion_script,
    inspect_script,
    inspect_word,
    magic_matches,
    parse_matches,
)


@pytest.mark.parametrize(
    ("code", "kind", "word", "start"),
    [
        ("ec", "command", "ec", 0),
        ("ls | gr", "command", "gr", 5),
        ("x=1; ec", "command", "ec", 5),
        ("if tr", "command", "tr", 3),
        ("echo $(whi", "command", "whi", 7),
        ("sudo ap", "command", "ap", 5),
        ("cat not", "file", "not", 4),
        ("cat ./sub/fi", "file", "./sub/fi", 4),
        ("./scr", "file", "./scr", 0),
        ("echo $HO", "variable", "HO", 6),
        ("echo ${HO", "variable", "HO", 7),
        ("VAR=/us", "file", "/us", 4),
        ("ls --dir=/us", "file", "/us", 9),
        ("%cont", "magic", "%cont", 0),
        ("%%cont", "magic", "%%cont", 0),
        ("echo a\ncat no", "file", "no", 11),
    ],
)
def test_what_is_being_completed(code: str, kind: str, word: str, start: int) -> None:
    request = completion_request(code, len(code))
    assert (request.kind, request.word, request.start, request.end) == (
        kind, word, start, len(code)
    )


def test_magics_are_completed_without_a_shell() -> None:
    assert magic_matches(completion_request("%st", 3)) == ["%stats", "%stop"]
    assert magic_matches(completion_request("%%c", 3)) == ["%%container"]


def test_matches_are_filtered_escaped_and_sorted() -> None:
    request = CompletionRequest("file", "my", 0, 2)
    assert parse_matches(request, "my file.txt\nmydir/\nother\n\n") == [
        "my\\ file.txt", "mydir/"
    ]
    variables = CompletionRequest("variable", "HO", 0, 2)
    assert parse_matches(variables, "HOME='/root'\nHOSTNAME=x\nPATH=/bin\n") == [
        "HOME", "HOSTNAME"
    ]


def _run(shell: list[str], script: str, cwd: Path) -> str:
    result = subprocess.run([*shell, "-c", script], capture_output=True, text=True, cwd=cwd,
                            timeout=10, env={"PATH": "/usr/bin:/bin", "HOME": "/root"})
    return result.stdout


@pytest.mark.parametrize("shell", [["bash", "--norc"], ["dash"], ["busybox", "sh"]])
def test_the_scripts_find_candidates(shell: list[str], tmp_path: Path) -> None:
    if shutil.which(shell[0]) is None:
        pytest.skip(f"{shell[0]} is not installed")
    bash = shell[0] == "bash"
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "notebooks").mkdir()
    files = completion_request("cat note", 8)
    found = parse_matches(files, _run(shell, completion_script(files, bash), tmp_path))
    assert found == ["notebooks/", "notes.txt"]
    commands = completion_request("ech", 3)
    assert "echo" in parse_matches(commands, _run(shell, completion_script(commands, bash),
                                                  tmp_path))
    variables = completion_request("echo $HOM", 9)
    assert parse_matches(variables, _run(shell, completion_script(variables, bash),
                                         tmp_path)) == ["HOME"]


def test_inspect_word_and_script(tmp_path: Path) -> None:
    assert inspect_word("ls -l /tmp", 1) == "ls"
    assert inspect_word("ls -l /tmp", 2) == "ls"
    assert inspect_word("echo 'x'", 7) is None or inspect_word("echo 'x'", 7) == "x"
    assert inspect_word("", 0) is None
    text = _run(["bash", "--norc"], inspect_script("cd", True), tmp_path)
    assert "cd is a shell builtin" in text and "Change the shell working directory" in text
    assert "not found" in _run(["bash", "--norc"], inspect_script("nosuchcmd", True), tmp_path)
