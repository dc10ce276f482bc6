"""The Containerfile parser: what Docker reads out of a file, and every error with its line."""

from __future__ import annotations

import pytest
from cellbox.runtime.build.containerfile import (
    ContainerfileError,
    Instruction,
    parse,
    parse_duration,
)


def only(text: str) -> Instruction:
    """The single instruction after ``FROM busybox``."""
    (inst,) = parse(f"FROM busybox\n{text}\n").stages[0].instructions
    return inst


# --------------------------------------------------------------------------- structure

def test_stages_names_and_global_args() -> None:
    cf = parse(
        "ARG BASE=busybox\n"
        "ARG TAG\n"
        "FROM $BASE:${TAG:-latest} AS Build\n"
        "RUN make\n"
        "FROM build\n"
        "COPY --from=build /out /out\n"
        "FROM debian AS final\n"
    )
    assert [a.pairs for a in cf.global_args] == [(("BASE", "busybox"),), (("TAG", None),)]
    assert [(s.index, s.name, s.base, s.line) for s in cf.stages] == [
        (0, "build", "$BASE:${TAG:-latest}", 3), (1, None, "build", 5), (2, "final", "debian", 7),
    ]
    assert cf.stage("BUILD") is cf.stages[0] and cf.stage("2") is cf.stages[2]
    assert cf.stage("nope") is None
    assert cf.stages[1].instructions[0].flag("from") == "build"


def test_keywords_are_case_insensitive_and_lines_counted() -> None:
    cf = parse("from busybox\n\n# a comment\n   run echo hi\nCmd [\"sh\"]\n")
    assert [(i.keyword, i.line) for i in cf.stages[0].instructions] == [("RUN", 4), ("CMD", 5)]


def test_continuations_comments_and_empty_lines_inside() -> None:
    inst = only("RUN apt-get update && \\\n# comment inside\n\n"
                "    apt-get install -y x \\  \n  && true")
    assert inst.rest == "apt-get update &&     apt-get install -y x   && true"
    assert inst.line == 2


def test_continuation_at_end_of_file_ends_the_instruction() -> None:
    assert only("RUN echo hi \\").rest == "echo hi"


def test_escape_directive_backtick() -> None:
    cf = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\nCOPY a\\b c\\d\n")
    run, copy = cf.stages[0].instructions
    assert cf.escape == "`"
    assert run.rest == "echo a   b"
    assert copy.args == ("a\\b", "c\\d")


def test_directives_only_at_the_top() -> None:
    cf = parse("FROM busybox\n# escape=`\nRUN a \\\n b\n")
    assert cf.escape == "\\" and cf.stages[0].instructions[0].rest == "a  b"
    # an unknown directive is a comment and ends the directives
    cf = parse("# foo=bar\n# escape=`\nFROM busybox\n")
    assert cf.escape == "\\"
    # syntax= is accepted and ignored
    assert parse("# syntax=docker/dockerfile:1\nFROM busybox\n").escape == "\\"


def test_bom_and_crlf() -> None:
    cf = parse("\ufeffFROM busybox\r\nRUN echo hi\r\n")
    assert cf.stages[0].instructions[0].rest == "echo hi"


# --------------------------------------------------------------------------- arguments

@pytest.mark.parametrize(("text", "exec_form", "args"), [
    ('CMD ["sh", "-c", "echo hi"]', True, ("sh", "-c", "echo hi")),
    ("CMD []", True, ()),
    ("CMD echo hi", False, ("echo", "hi")),
    ('ENTRYPOINT ["/bin/app"]', True, ("/bin/app",)),
    ("RUN [ -f /etc/passwd ] && echo yes", False, ("[", "-f", "/etc/passwd", "]", "&&", "echo",
                                                   "yes")),
    ('SHELL ["/bin/bash", "-o", "pipefail", "-c"]', True, ("/bin/bash", "-o", "pipefail", "-c")),
    ('VOLUME ["/data", "/logs"]', True, ("/data", "/logs")),
    ("VOLUME /data /logs", False, ("/data", "/logs")),
    ('COPY ["a b", "/dest/"]', True, ("a b", "/dest/")),
])
def test_exec_and_shell_forms(text: str, exec_form: bool, args: tuple[str, ...]) -> None:
    inst = only(text)
    assert (inst.exec_form, inst.args) == (exec_form, args)


def test_shell_form_keeps_the_text_as_written() -> None:
    inst = only('RUN echo "a  b" $HOME')
    assert inst.rest == 'echo "a  b" $HOME'
    assert inst.args == ("echo", '"a  b"', "$HOME")


@pytest.mark.parametrize(("text", "pairs"), [
    ("ENV A=1", (("A", "1"),)),
    ('ENV A=1 B="x y" C=', (("A", "1"), ("B", '"x y"'), ("C", ""))),
    ("ENV NAME some long value", (("NAME", "some long value"),)),
    ("LABEL a=b c.d=e", (("a", "b"), ("c.d", "e"))),
    ('LABEL "quoted key"=v', (('"quoted key"', "v"),)),
    ("LABEL maintainer me", (("maintainer", "me"),)),
    ("ARG A", (("A", None),)),
    ("ARG A=1 B", (("A", "1"), ("B", None))),
])
def test_name_value_pairs(text: str, pairs: tuple[tuple[str, str | None], ...]) -> None:
    assert only(text).pairs == pairs


def test_whole_line_instructions() -> None:
    assert only("WORKDIR /path with spaces").args == ("/path with spaces",)
    assert only("USER app:staff").args == ("app:staff",)
    assert only("MAINTAINER Jane Doe <j@x>").args == ("Jane Doe <j@x>",)


def test_flags() -> None:
    inst = only("COPY --from=build --chown=1000:1000 --chmod=0755 --link a b /dest/")
    assert inst.flags == (("from", "build"), ("chown", "1000:1000"), ("chmod", "0755"),
                          ("link", None))
    assert inst.flag("link") == "" and inst.flag("chown") == "1000:1000"
    assert inst.flag("nope") is None
    assert inst.args == ("a", "b", "/dest/")
    assert only("COPY --link=false a /b").flag("link") == "false"
    assert only("RUN --network=host -- --not-a-flag").rest == "--not-a-flag"
    assert parse("FROM --platform=linux/amd64 busybox AS x\n").stages[0].platform == "linux/amd64"


def test_healthcheck_and_onbuild() -> None:
    inst = only('HEALTHCHECK --interval=5s --retries=3 CMD ["curl", "-f", "http://x"]')
    assert inst.exec_form and inst.args == ("curl", "-f", "http://x")
    assert inst.flag("interval") == "5s"
    assert only("HEALTHCHECK CMD curl -f http://x || exit 1").rest == "curl -f http://x || exit 1"
    assert only("HEALTHCHECK NONE").args == ("NONE",)
    trigger = only("ONBUILD COPY . /app").trigger
    assert trigger is not None and (trigger.keyword, trigger.args) == ("COPY", (".", "/app"))


# --------------------------------------------------------------------------- heredocs

def test_run_heredoc() -> None:
    cf = parse("FROM busybox\nRUN <<EOF\necho one\n  echo two\nEOF\nCMD x\n")
    run, cmd = cf.stages[0].instructions
    (doc,) = run.heredocs
    assert (doc.name, doc.body, doc.expand, doc.strip_tabs) == (
        "EOF", "echo one\n  echo two\n", True, False)
    assert run.heredoc("<<EOF") is doc
    assert (cmd.keyword, cmd.line) == ("CMD", 6)


def test_heredoc_variants() -> None:
    cf = parse("FROM busybox\n"
               "RUN <<-'END' cat > /x && cat <<\"B\"\n\tquoted $HOME\n\tEND\nb body\nB\n")
    first, second = cf.stages[0].instructions[0].heredocs
    assert (first.name, first.body, first.expand, first.strip_tabs) == (
        "END", "quoted $HOME\n", False, True)
    assert (second.name, second.body, second.expand) == ("B", "b body\n", False)


def test_copy_heredoc_and_non_heredocs() -> None:
    cf = parse("FROM busybox\nCOPY <<EOF /etc/motd\nhello\nEOF\nRUN echo $((1<<3)) <<< x\n")
    copy, run = cf.stages[0].instructions
    assert copy.heredocs[0].body == "hello\n" and copy.args == ("<<EOF", "/etc/motd")
    assert run.heredocs == ()


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize(("text", "line", "message"), [
    ("", 1, "no FROM line"),
    ("# only a comment\n", 2, "no FROM line"),
    ("RUN echo hi\nFROM busybox\n", 1, "RUN must come after FROM"),
    ("FROM busybox\nFOO bar\n", 2, "unknown instruction 'FOO'"),
    ("FROM busybox\nRUNN echo\n", 2, "did you mean RUN?"),
    ("FROM\n", 1, "FROM takes an image"),
    ("FROM a b\n", 1, "FROM takes an image"),
    ("FROM a AS 9x\n", 1, "invalid stage name"),
    ("FROM a AS x\nFROM b AS X\n", 2, "already used on line 1"),
    ("FROM busybox\nRUN\n", 2, "RUN needs a command"),
    ("FROM busybox\nRUN []\n", 2, "no command"),
    ("FROM busybox\nCMD\n", 2, "CMD needs a command"),
    ("FROM busybox\nCMD ['sh', '-c']\n", 2, "double quotes"),
    ('FROM busybox\nCMD ["sh",]\n', 2, "remove the comma"),
    ('FROM busybox\nENTRYPOINT ["a", 1]\n', 2, "JSON array of strings"),
    ("FROM busybox\nCOPY onlyone\n", 2, "at least one source and a destination"),
    ("FROM busybox\nADD https://example.com/x /x\n", 2, "does not download URLs"),
    ("FROM busybox\nADD git@github.com:a/b.git /x\n", 2, "remote sources"),
    ("FROM busybox\nCOPY --chmod=rwx a /b\n", 2, "octal permissions"),
    ("FROM busybox\nCOPY --nope=1 a /b\n", 2, "unknown flag --nope for COPY"),
    ("FROM busybox\nCOPY --from a /b\n", 2, "--from needs a value"),
    ("FROM busybox\nCOPY --from=x --from=y a /b\n", 2, "given twice"),
    ("FROM busybox\nCOPY --link=maybe a /b\n", 2, "true or false"),
    ("FROM busybox\nCOPY --parents a /b\n", 2, "--parents is not supported"),
    ("FROM busybox\nRUN --mount=type=cache,target=/x make\n", 2, "--mount"),
    ("FROM busybox\nRUN --network=bridge make\n", 2, "none, host or default"),
    ("FROM busybox\nCMD --help\n", 2, "CMD takes no flags"),
    ("FROM busybox\nENV\n", 2, "ENV needs NAME=VALUE"),
    ("FROM busybox\nENV A\n", 2, "has no value"),
    ("FROM busybox\nENV A=1 B\n", 2, "'B' is not NAME=VALUE"),
    ("FROM busybox\nENV =1\n", 2, "the name is empty"),
    ("FROM busybox\nARG 1A\n", 2, "not a valid variable name"),
    ("FROM busybox\nWORKDIR\n", 2, "WORKDIR needs a directory"),
    ("FROM busybox\nUSER\n", 2, "USER needs a user"),
    ("FROM busybox\nEXPOSE\n", 2, "EXPOSE needs at least one port"),
    ("FROM busybox\nSHELL /bin/bash -c\n", 2, "SHELL needs the JSON form"),
    ("FROM busybox\nSHELL []\n", 2, "names no shell"),
    ("FROM busybox\nVOLUME\n", 2, "VOLUME needs at least one path"),
    ("FROM busybox\nHEALTHCHECK curl x\n", 2, "HEALTHCHECK needs NONE"),
    ("FROM busybox\nHEALTHCHECK --interval=fast CMD true\n", 2, "a duration such as 30s"),
    ("FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n", 2, "a whole number"),
    ("FROM busybox\nHEALTHCHECK --retries=1 NONE\n", 2, "takes no flags"),
    ("FROM busybox\nONBUILD\n", 2, "ONBUILD needs an instruction"),
    ("FROM busybox\nONBUILD FROM x\n", 2, "ONBUILD FROM is not allowed"),
    ("FROM busybox\nONBUILD ONBUILD RUN x\n", 2, "ONBUILD ONBUILD is not allowed"),
    ("FROM busybox\nSTOPSIGNAL\n", 2, "STOPSIGNAL needs a signal"),
    ("FROM a\nCOPY --from=1 /x /y\n", 2, "only stages before this one"),
    ("FROM busybox\n\nRUN <<EOF\necho\n", 3, "heredoc <<EOF is never closed"),
    ("# escape=x\nFROM busybox\n", 1, "invalid escape character"),
    ("# escape=`\n# escape=`\nFROM busybox\n", 2, "given twice"),
    ("FROM busybox\nCOPY <<EOF <<DEST\na\nEOF\nb\nDEST\n", 2, "destination cannot be a heredoc"),
])
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ContainerfileError) as caught:
        parse(text, filename="Dockerfile")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"Dockerfile line {line}: ")
    assert message in str(caught.value)


def test_a_later_stage_index_is_refused_but_an_earlier_one_is_fine() -> None:
    cf = parse("FROM a\nFROM b\nCOPY --from=0 /x /y\n")
    assert cf.stages[1].instructions[0].flag("from") == "0"


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("30s", 30_000_000_000), ("1m30s", 90_000_000_000), ("500ms", 500_000_000),
    ("1.5h", 5_400_000_000_000), ("2us", 2_000),
])
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "s", "1x", "-1s", "1s2"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
