"""The config-only instructions: what each does to the image config and its history text."""

from __future__ import annotations

from typing import Any

import pytest
from cellbox.runtime.build.containerfile import parse
from cellbox.runtime.build.metadata import apply_metadata, env_dict
from cellbox.runtime.errors import BuildError

BASE: dict[str, Any] = {
    "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/bin", "A=old"], "Cmd": ["sh"], "WorkingDir": "/srv"},
}


def apply(lines: str, config: dict[str, Any] | None = None, *, env: dict[str, str] | None = None,
          cmd_set_here: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Apply each instruction in turn (variables from the config's Env, then ``env``)."""
    config = config or BASE
    history = []
    for inst in parse(f"FROM x\n{lines}\n").stages[0].instructions:
        variables = {**(env or {}), **env_dict(config)}
        config, created_by = apply_metadata(config, inst, variables, cmd_set_here=cmd_set_here)
        history.append(created_by)
    return config, history


def test_env_replaces_in_place_and_substitutes_from_before_the_line() -> None:
    config, history = apply('ENV A=new B=$A C="x y"\nENV D=${B}!')
    assert config["config"]["Env"] == ["PATH=/bin", "A=new", "B=old", "C=x y", "D=old!"]
    assert history == ["ENV A=new B=old C=x y", "ENV D=old!"]
    assert BASE["config"]["Env"] == ["PATH=/bin", "A=old"]  # the input is not changed


def test_legacy_env_and_label() -> None:
    config, _ = apply('ENV GREETING hello "big" world\nLABEL version 1.0\nLABEL "a b"="c d" e=$A')
    assert config["config"]["Env"][-1] == "GREETING=hello big world"
    assert config["config"]["Labels"] == {"version": "1.0", "a b": "c d", "e": "old"}


def test_workdir_is_relative_to_the_previous_one() -> None:
    config, history = apply("WORKDIR app\nWORKDIR ../lib/./x\nWORKDIR /abs")
    assert history == ["WORKDIR /srv/app", "WORKDIR /srv/lib/x", "WORKDIR /abs"]
    assert config["config"]["WorkingDir"] == "/abs"


def test_user_expose_volume_stopsignal() -> None:
    config, history = apply(
        "USER ${NAME:-app}:staff\nEXPOSE 80 53/udp 8000-8002/TCP\nVOLUME /data [\"/x\"]\n"
        "VOLUME [\"/logs\", \"/cache\"]\nSTOPSIGNAL SIGQUIT"
    )
    section = config["config"]
    assert section["User"] == "app:staff"
    assert section["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {},
                                       "8001/tcp": {}, "8002/tcp": {}}
    # a word that only looks like JSON loses its quotes, as in Docker
    assert set(section["Volumes"]) == {"/data", "[/x]", "/logs", "/cache"}
    assert section["StopSignal"] == "SIGQUIT"
    assert history[0] == "USER app:staff"


def test_cmd_entrypoint_and_shell() -> None:
    config, history = apply('SHELL ["/bin/bash", "-c"]\nCMD echo $HOME')
    assert config["config"]["Shell"] == ["/bin/bash", "-c"]
    assert config["config"]["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]  # shell passed in
    assert history[1] == 'CMD ["/bin/sh", "-c", "echo $HOME"]'
    config, _ = apply('ENTRYPOINT ["/app"]')
    assert config["config"]["Entrypoint"] == ["/app"] and "Cmd" not in config["config"]
    config, _ = apply('CMD ["x"]\nENTRYPOINT ["/app"]', cmd_set_here=True)
    assert config["config"]["Cmd"] == ["x"]


def test_healthcheck_onbuild_maintainer() -> None:
    config, history = apply(
        "HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD curl -f http://x\n"
        "ONBUILD RUN echo later\nMAINTAINER someone"
    )
    assert config["config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://x"], "Interval": 5_000_000_000,
        "Timeout": 2_000_000_000, "Retries": 4,
    }
    assert config["config"]["OnBuild"] == ["RUN echo later"]
    assert config["author"] == "someone"
    assert history[1] == "ONBUILD RUN echo later"
    config, _ = apply('HEALTHCHECK CMD ["true"]\nHEALTHCHECK NONE')
    assert config["config"]["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize(("line", "message"), [
    ("EXPOSE http", "write a port"),
    ("EXPOSE 70000", "1 to 65535"),
    ("STOPSIGNAL SIGNOPE", "not a signal"),
    ("USER $NOBODY", "empty after substitution"),
    ('ENV A="${X:?needs X}"', "X: needs X"),
    ("ENV A='open", "unmatched single quote"),
])
def test_errors(line: str, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        apply(line)
