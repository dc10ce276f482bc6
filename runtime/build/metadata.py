"""The instructions that only change the image config (ENV, CMD, WORKDIR...), as pure functions.

:func:`apply_metadata` takes an image config (the OCI JSON, with its ``config`` section)
and one instruction, substitutes variables where Docker does, and returns the new config
and the instruction as the image history records it (``created_by``). Docker's rules:

* ``ENV a=1 b=$a`` substitutes with the variables as they were *before* the line;
* a relative WORKDIR is relative to the previous one;
* ENTRYPOINT resets a CMD inherited from the base image (not one set in this stage);
* CMD and ENTRYPOINT in shell form run through the SHELL (``/bin/sh -c`` by default);
* EXPOSE takes ``80``, ``80/udp`` and ranges ``8000-8002``.
"""

from __future__ import annotations

import json
import posixpath
import re
import signal
from collections.abc import Mapping
from typing import Any

from ..errors import BuildError
from .containerfile import Instruction, parse_duration
from .shellwords import ExpansionError, expand

__all__ = [
    "DEFAULT_SHELL",
    "METADATA_KEYWORDS",
    "apply_metadata",
    "env_dict",
    "expand_word",
    "set_env",
]

DEFAULT_SHELL = ("/bin/sh", "-c")
METADATA_KEYWORDS = frozenset({
    "ENV", "LABEL", "WORKDIR", "USER", "EXPOSE", "VOLUME", "STOPSIGNAL", "CMD", "ENTRYPOINT",
    "SHELL", "MAINTAINER", "HEALTHCHECK", "ONBUILD",
})
_PORT = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp|sctp))?", re.IGNORECASE)
_HEALTH_FIELDS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                  "start-interval": "StartInterval"}


def expand_word(word: str, env: Mapping[str, str], escape: str) -> str:
    """:func:`expand` with its errors as BuildError."""
    try:
        return expand(word, env, escape=escape)
    except ExpansionError as exc:
        raise BuildError(str(exc)) from None


def env_dict(config: Mapping[str, Any]) -> dict[str, str]:
    """The ``Env`` of an image config as a dict (later entries win)."""
    section = config.get("config") or {}
    out: dict[str, str] = {}
    for item in section.get("Env") or []:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            out[key] = value
    return out


def set_env(section: dict[str, Any], key: str, value: str) -> None:
    """Replace ``key`` in the ``Env`` list in place, or append it."""
    env = [e for e in section.get("Env") or [] if isinstance(e, str)]
    for index, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[index] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    section["Env"] = env


def _command(inst: Instruction, shell: tuple[str, ...]) -> list[str]:
    return list(inst.args) if inst.exec_form else [*shell, inst.rest]


def _check_signal(text: str) -> str:
    name = text.upper()
    if name.isdigit() and 0 < int(name) < 65:
        return text
    bare = name.removeprefix("SIG")
    if re.fullmatch(r"RTMIN(\+\d+)?|RTMAX(-\d+)?", bare):
        return text
    if hasattr(signal, f"SIG{bare}"):
        return text
    raise BuildError(f"STOPSIGNAL {text}: not a signal (write SIGTERM, TERM or 15)")


def _ports(words: list[str]) -> list[str]:
    out = []
    for word in words:
        match = _PORT.fullmatch(word)
        if match is None:
            raise BuildError(f"EXPOSE {word}: write a port, PORT/PROTOCOL or a range 8000-8002")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        proto = (match.group(3) or "tcp").lower()
        if not 0 < first <= last <= 65535:
            raise BuildError(f"EXPOSE {word}: ports are 1 to 65535")
        out += [f"{port}/{proto}" for port in range(first, last + 1)]
    return out


def _healthcheck(inst: Instruction, shell: tuple[str, ...]) -> dict[str, Any]:
    if inst.args == ("NONE",):
        return {"Test": ["NONE"]}
    test = ["CMD", *inst.args] if inst.exec_form else ["CMD-SHELL", inst.rest]
    check: dict[str, Any] = {"Test": test}
    for name, value in inst.flags:
        if name == "retries":
            check["Retries"] = int(str(value))
        else:
            check[_HEALTH_FIELDS[name]] = parse_duration(str(value))
    return check


def apply_metadata(
    image_config: Mapping[str, Any],
    inst: Instruction,
    env: Mapping[str, str],
    *,
    shell: tuple[str, ...] = DEFAULT_SHELL,
    escape: str = "\\",
    cmd_set_here: bool = False,
) -> tuple[dict[str, Any], str]:
    """The config after the metadata instruction ``inst``, and its history text.

    ``env`` is what variables are substituted from (ENV over ARG); ``cmd_set_here`` says
    whether this stage has set CMD itself (ENTRYPOINT resets an inherited CMD).
    """
    config: dict[str, Any] = json.loads(json.dumps(image_config))  # a deep copy
    section: dict[str, Any] = config.setdefault("config", {})
    if not isinstance(section, dict):
        section = config["config"] = {}
    keyword = inst.keyword

    def word(text: str) -> str:
        return expand_word(text, env, escape)

    if keyword in ("ENV", "LABEL"):
        pairs = [(word(k), word(v or "")) for k, v in inst.pairs]
        if keyword == "ENV":
            for key, value in pairs:
                set_env(section, key, value)
        else:
            labels = dict(section.get("Labels") or {})
            labels.update(pairs)
            section["Labels"] = labels
        return config, f"{keyword} " + " ".join(f"{k}={v}" for k, v in pairs)
    if keyword == "WORKDIR":
        path = word(inst.args[0])
        current = section.get("WorkingDir") or "/"
        workdir = posixpath.normpath(posixpath.join(str(current), path))
        section["WorkingDir"] = workdir
        return config, f"WORKDIR {workdir}"
    if keyword == "USER":
        user = word(inst.args[0])
        if not user:
            raise BuildError("USER: the user is empty after substitution")
        section["User"] = user
        return config, f"USER {user}"
    if keyword == "EXPOSE":
        ports = _ports([word(a) for a in inst.args])
        exposed = dict(section.get("ExposedPorts") or {})
        exposed.update({p: {} for p in ports})
        section["ExposedPorts"] = exposed
        return config, "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in ports) + "]"
    if keyword == "VOLUME":
        paths = [word(a) for a in inst.args]
        if any(not p for p in paths):
            raise BuildError("VOLUME: a path is empty after substitution")
        volumes = dict(section.get("Volumes") or {})
        volumes.update({p: {} for p in paths})
        section["Volumes"] = volumes
        return config, "VOLUME " + json.dumps(paths)
    if keyword == "STOPSIGNAL":
        section["StopSignal"] = _check_signal(word(inst.args[0]))
        return config, f"STOPSIGNAL {section['StopSignal']}"
    if keyword in ("CMD", "ENTRYPOINT"):
        command = _command(inst, shell)
        if keyword == "CMD":
            section["Cmd"] = command
        else:
            section["Entrypoint"] = command
            if not cmd_set_here:
                section.pop("Cmd", None)
        return config, f"{keyword} {json.dumps(command)}"
    if keyword == "SHELL":
        section["Shell"] = list(inst.args)
        return config, f"SHELL {json.dumps(list(inst.args))}"
    if keyword == "MAINTAINER":
        config["author"] = inst.args[0]
        return config, f"MAINTAINER {inst.args[0]}"
    if keyword == "HEALTHCHECK":
        section["Healthcheck"] = _healthcheck(inst, shell)
        return config, f"HEALTHCHECK {inst.rest if inst.args != ('NONE',) else 'NONE'}"
    if keyword == "ONBUILD":
        assert inst.trigger is not None
        section["OnBuild"] = [*(section.get("OnBuild") or []), inst.trigger.original]
        return config, f"ONBUILD {inst.trigger.original}"
    raise BuildError(f"{keyword} is not a metadata instruction")
