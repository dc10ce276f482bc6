"""What a RUN step executes: the exec form as it is, the shell form through SHELL, and
heredocs (BuildKit's ``RUN <<EOF``). Pure."""

from __future__ import annotations

from .containerfile import Instruction

__all__ = ["SCRIPT_DIR", "run_argv"]

SCRIPT_DIR = "/.cellbox/in"  # the container's read-only exchange dir, never in a layer


def run_argv(inst: Instruction, shell: tuple[str, ...]) -> tuple[list[str], dict[str, bytes]]:
    """(argv, scripts): the command, and files it needs in :data:`SCRIPT_DIR` by name.

    ``RUN <<EOF`` alone runs the here-document as the shell script, or, when it starts with
    ``#!``, as a program of its own (a file in the exchange dir, like BuildKit's). With a
    command before it (``RUN python3 <<EOF``), the shell itself reads the here-documents,
    so ``<<-`` and quoted delimiters mean what they mean in the shell.
    """
    if inst.exec_form:
        return list(inst.args), {}
    if inst.heredocs and len(inst.args) == 1 and inst.heredoc(inst.args[0]):
        body = inst.heredocs[0].body
        if body.startswith("#!"):
            return [f"{SCRIPT_DIR}/heredoc"], {"heredoc": body.encode()}
        return [*shell, body], {}
    text = inst.rest
    for doc in inst.heredocs:
        text += "\n" + doc.body + doc.name
    return [*shell, text], {}
