"""is_complete: the kernel's judgement, checked against bash's own parser (``bash -n``)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cellbox.kernel.syntax import INDENT, is_complete

COMPLETE = [
    "echo hi",
    "",
    "# just a comment",
    "if true; then echo; fi",
    "if a\nthen b\nelif c\nthen d\nelse e\nfi",
    "for i in 1 2; do echo $i; done",
    "for ((i=0; i<3; i++)); do echo; done",
    "while false; do :; done",
    "until true; do :; done",
    "select x in a; do break; done",
    "case x in a) echo;; esac",
    "case x in\n (a|b) echo a ;;\n *) echo b\nesac",
    "case x in (a) echo;; esac",
    "{ echo; }",
    "(echo)",
    "f() { echo; }",
    "function f { echo; }",
    "function g() (echo)",
    "cat <<EOF\nhi\nEOF",
    "cat <<-'EOF'\n\thi\n\tEOF",
    "cat <<A <<B\na\nA\nb\nB",
    "x=$(cat <<EOF\nhi\nEOF\n)",
    "echo \"$(echo \")\")\"",
    "echo ${x:-'a}'}",
    "echo $'a\\'b'",
    "[[ -n x ]]",
    "(( i++ ))",
    "echo $((1 + (2 * 3)))",
    "diff <(ls) <(ls)",
    "echo # it's a comment",
    "echo a#b",
    "ls *.txt",
    "echo @(a|b)",
    "a=1 b=2",
    "echo } { fi done",
    "! true",
    "time ls",
    "echo $(case x in a) echo;; esac)",
    "echo a &\necho b",
    "%container debian\nls",
    "%container debian \\\n  --memory 64m",
    "%1",
]
INCOMPLETE = [
    "echo 'a",
    "echo \"a",
    "echo \"a\\\"b",
    "echo $(ls",
    "echo ${x",
    "echo `ls",
    "echo $((1+",
    "echo $'a",
    "if true; then",
    "if true\nthen echo\nelse",
    "for i in 1 2; do",
    "while true",
    "case x in",
    "case x in a) echo;;",
    "{ echo",
    "( echo",
    "f() {",
    "function f {",
    "cat <<EOF",
    "cat <<EOF\nhi",
    "cat <<A <<B\na\nA\nb",
    "echo a |",
    "echo a &&",
    "echo a ||",
    "echo a \\",
    "[[ -n x",
    "(( i++",
    "echo <(ls",
    "%container debian \\",
]
INVALID = ["fi", "done", "esac", ")", "then", "else", "}", "echo ;;", "echo a; done"]


@pytest.mark.parametrize("code", COMPLETE)
def test_complete(code: str) -> None:
    assert is_complete(code) == ("complete", "")


@pytest.mark.parametrize("code", INCOMPLETE)
def test_incomplete(code: str) -> None:
    assert is_complete(code)[0] == "incomplete"


@pytest.mark.parametrize("code", INVALID)
def test_invalid(code: str) -> None:
    assert is_complete(code) == ("invalid", "")


def test_indent_follows_open_blocks() -> None:
    assert is_complete("if true; then")[1] == INDENT
    assert is_complete("for i in 1; do\n  if true; then")[1] == INDENT * 2
    assert is_complete("echo 'open")[1] == ""


def _bash_says(code: str) -> str:
    body = "\n".join("" if line.startswith("%") else line for line in code.split("\n"))
    result = subprocess.run(
        ["bash", "-O", "extglob", "-n"], input=body + "\n", capture_output=True, text=True,
        timeout=10,
    )
    if "unexpected end of file" in result.stderr or "unexpected EOF" in result.stderr:
        return "incomplete"
    if "here-document" in result.stderr:
        return "incomplete"
    return "invalid" if result.returncode else "complete"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is the reference")
@pytest.mark.parametrize("code", COMPLETE + INCOMPLETE + INVALID)
def test_agrees_with_bash(code: str) -> None:
    """bash -n is the judge, except for a trailing backslash, which bash -n forgives at the
    end of a file while an interactive bash asks for the next line (as we do)."""
    ours = is_complete(code)[0]
    if code.rstrip().endswith("\\"):
        assert ours == "incomplete"
        return
    assert ours == _bash_says(code)
