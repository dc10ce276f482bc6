"""The builder: a parsed Containerfile, step by step, into an image in the store.

:func:`build` runs the stages the target needs (the last stage by default; the stages it
is built FROM or copies ``--from``, recursively), in file order. Each step either changes
only the config (ENV, CMD, WORKDIR, ...: :mod:`.metadata`), or makes a layer: RUN in a
throwaway container (:mod:`.run`), COPY and ADD laid out in a staging dir
(:mod:`.copy`); both become deterministic layer tars stored with ``Store.add_layer``. Every
step is looked up in the build cache first (:mod:`.cache`): a rebuild with nothing changed
runs nothing and stores nothing new, and gives the same image digest.

The history of the image reads like ``docker history``: one entry per instruction,
``created_by`` such as ``RUN /bin/sh -c apk add x`` or ``ENV A=1``, ``empty_layer`` for the
steps that made no layer.

Nothing of a failed build is visible: the image is stored (and named) only after the last
step; a failing RUN raises :class:`StepFailed` naming the step, the line and the exit
status, after its container was removed; staging files are removed on the way out. The
layers of the steps that did succeed stay in the store as build cache, like Docker's, until
``cellbox prune`` (which waits while a build runs: the build holds the store's gc lock
shared).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BuildError, CellboxError, ContainerError
from ..images import Image, Layer
from ..reference import Reference
from ..settings import Settings
from ..store import Store
from .cache import BuildCache, CacheEntry, step_key
from .containerfile import Containerfile, Instruction, Stage, parse
from .context import BuildContext, TreeSource
from .metadata import DEFAULT_SHELL, METADATA_KEYWORDS, apply_metadata, env_dict, expand_word
from .rootview import RootView
from .runargv import run_argv
from .sources import image_sources, owner_ids, parse_chmod

if TYPE_CHECKING:
    from .copy import CopyRequest

__all__ = ["BuildOptions", "BuildResult", "Output", "StepFailed", "build"]

Output = Callable[[str, str], None]  # (stream: "stdout" | "stderr", text)

_PROXY_ARGS = frozenset(
    name for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)
_SHORT = 12


@dataclass(frozen=True)
class BuildOptions:
    """What ``cellbox build`` takes besides the Containerfile and the context."""

    tags: Sequence[str] = ()  # names for the image; none: only by digest
    build_args: Mapping[str, str] = field(default_factory=dict)  # --build-arg K=V
    target: str | None = None  # the stage to build (default: the last)
    no_cache: bool = False  # run every step (the results still go into the cache)
    network: str = "none"  # RUN's network: none, bridge or host
    pull: bool = False  # fetch base images again even when they are stored
    filename: str = "Containerfile"  # shown in messages


@dataclass(frozen=True)
class BuildResult:
    """The image built, the number of steps, and how many came from the cache."""

    image: Image
    steps: int
    cached: int


class StepFailed(BuildError):
    """A RUN step whose command failed; the build stored nothing."""

    def __init__(self, message: str, *, step: int, total: int, line: int, instruction: str,
                 exit_code: int, output: list[str]) -> None:
        super().__init__(message)
        self.step = step
        self.total = total
        self.line = line
        self.instruction = instruction
        self.exit_code = exit_code
        self.output = output


@dataclass
class _State:
    """A stage while it is being built."""

    layers: list[Layer]
    config: dict[str, Any]
    key: str
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False

    @property
    def shell(self) -> tuple[str, ...]:
        shell = (self.config.get("config") or {}).get("Shell")
        if isinstance(shell, list) and shell and all(isinstance(s, str) for s in shell):
            return tuple(shell)
        return DEFAULT_SHELL

    def view(self) -> RootView:
        return RootView([layer.path for layer in reversed(self.layers)])


def _now() -> str:
    """RFC 3339 UTC with microseconds, like the rest of the runtime's timestamps."""
    now = time.time()
    micros = int(now * 1_000_000) % 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{micros:06d}Z"


def _clone(config: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON document (several times faster than copy.deepcopy)."""
    value: dict[str, Any] = json.loads(json.dumps(config))
    return value


def _short(key: str) -> str:
    return key.removeprefix("sha256:")[:_SHORT]


def _platform_args() -> dict[str, str]:
    from ..manifest import Platform

    host = Platform.host()
    plat = f"{host.os}/{host.architecture}" + (f"/{host.variant}" if host.variant else "")
    values = {"PLATFORM": plat, "OS": host.os, "ARCH": host.architecture,
              "VARIANT": host.variant}
    return {f"{side}{k}": v for side in ("TARGET", "BUILD") for k, v in values.items()}


class _Builder:
    def __init__(self, parsed: Containerfile, context_dir: Path | None, options: BuildOptions,
                 settings: Settings, on_output: Output | None,
                 cancel: threading.Event | None = None) -> None:
        self.cancel = cancel
        self.file = parsed
        self.context_dir = context_dir
        self.context: BuildContext | None = None
        self.options = options
        self.settings = settings
        self.on_output = on_output
        self.store = Store.from_settings(settings)
        self.cache = BuildCache(self.store)
        self.stages: dict[int, _State] = {}
        self.step = 0
        self.total = 0
        self.current = 0  # index of the stage being built
        self.cached = 0
        self.used_args: set[str] = set()
        self.global_args = self._global_args()

    @functools.cached_property
    def auto_args(self) -> dict[str, str]:
        """TARGETARCH and friends (BuildKit's automatic platform ARGs)."""
        return _platform_args()

    # -- output ---------------------------------------------------------------------------

    def log(self, text: str) -> None:
        if self.on_output is not None:
            self.on_output("stdout", text)

    # -- planning ---------------------------------------------------------------------------

    def _global_args(self) -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for inst in self.file.global_args:
            for key, default in inst.pairs:
                self.used_args.add(key)
                env: dict[str, str] = {}
                if default is not None and "$" in default:
                    env = {**self.auto_args,
                           **{k: v for k, v in values.items() if v is not None}}
                if key in self.options.build_args:
                    values[key] = self.options.build_args[key]
                elif default is not None:
                    values[key] = self._word(default, env, inst)
                else:
                    values[key] = None
        return values

    def _global_env(self) -> dict[str, str]:
        return {**self.auto_args,
                **{k: v for k, v in self.global_args.items() if v is not None}}

    def _expand(self, text: str, env: Mapping[str, str]) -> str:
        """Substitute in a step's argument (the step's error names the line)."""
        return expand_word(text, env, self.file.escape)

    def _word(self, text: str, env: Mapping[str, str], inst: Instruction) -> str:
        """Substitute outside the steps (planning): the error names the line itself."""
        try:
            return expand_word(text, env, self.file.escape)
        except BuildError as exc:
            raise BuildError(f"{self.file.filename} line {inst.line}: {exc}") from None

    def _from_name(self, stage: Stage) -> str:
        """The FROM image (or stage) with the global ARGs substituted."""
        env = self._global_env() if "$" in stage.base else {}
        return self._word(stage.base, env, stage.from_instruction)

    def _stage_by_ref(self, ref: str, before: int) -> Stage | None:
        stage = self.file.stage(ref)
        if stage is not None and stage.index < before:
            return stage
        return None

    def plan(self) -> list[Stage]:
        """The stages to build for the target, in file order."""
        if self.options.target:
            target = self.file.stage(self.options.target)
            if target is None:
                names = ", ".join(s.name or str(s.index) for s in self.file.stages)
                raise BuildError(
                    f"--target {self.options.target}: {self.file.filename} has no such stage "
                    f"(its stages: {names})"
                )
        else:
            target = self.file.stages[-1]
        needed: set[int] = set()

        def visit(stage: Stage) -> None:
            if stage.index in needed:
                return
            needed.add(stage.index)
            base = self._from_name(stage)
            if (parent := self._stage_by_ref(base, stage.index)) is not None:
                visit(parent)
            for inst in stage.instructions:
                source = inst.flag("from")
                if inst.keyword == "COPY" and source is not None:
                    env = self._global_env() if "$" in source else {}
                    found = self._stage_by_ref(self._word(source, env, inst), stage.index)
                    if found is not None:
                        visit(found)

        visit(target)
        return [s for s in self.file.stages if s.index in needed]

    # -- running ------------------------------------------------------------------------------

    def run(self) -> BuildResult:
        stages = self.plan()
        self.total = sum(1 + len(s.instructions) for s in stages)
        try:
            with self.store.using():
                for stage in stages:
                    self.stages[stage.index] = self._stage(stage)
                final = self.stages[stages[-1].index]
                self._warn_unused_args()
                image = self._commit(final)
        finally:
            if self.context is not None:
                self.context.close()
        return BuildResult(image, self.total, self.cached)

    def _warn_unused_args(self) -> None:
        unused = sorted(set(self.options.build_args) - self.used_args - _PROXY_ARGS)
        if unused:
            self.log(f"[Warning] build args not used by any ARG: {', '.join(unused)}\n")

    def _stage(self, stage: Stage) -> _State:
        self.current = stage.index
        self.step += 1
        inst = stage.from_instruction
        self.log(f"STEP {self.step}/{self.total}: {inst.original}\n")
        try:
            state = self._base(stage)
        except CellboxError as exc:
            raise self._wrap(exc, inst) from exc
        triggers = (state.config.get("config") or {}).pop("OnBuild", None) or []
        for text in triggers if isinstance(triggers, list) else []:
            self._onbuild(state, str(text), inst)
        for inst in stage.instructions:
            self.step += 1
            self.log(f"STEP {self.step}/{self.total}: {inst.original}\n")
            self._dispatch(state, inst)
        return state

    def _onbuild(self, state: _State, text: str, base: Instruction) -> None:
        """Run a trigger the base image left (its config is as untrusted as the rest)."""
        trigger = None
        if "\n" not in text and "\r" not in text:
            with contextlib.suppress(BuildError, ValueError):  # ValueError: not exactly one
                parsed = parse(f"FROM scratch\nONBUILD {text}\n")
                (stage,) = parsed.stages
                (onbuild,) = stage.instructions
                trigger = onbuild.trigger
        if trigger is None:
            raise self._wrap(BuildError(
                f"the base image has an ONBUILD trigger cellbox cannot read: {text[:200]!r}"
            ), base)
        trigger = replace(trigger, line=base.line)
        self.log(f"--> ONBUILD {trigger.original}\n")
        self._dispatch(state, trigger)

    def _wrap(self, exc: CellboxError, inst: Instruction) -> BuildError:
        return BuildError(
            f"step {self.step}/{self.total} ({self.file.filename} line {inst.line}: "
            f"{inst.original}): {exc}"
        )

    def _dispatch(self, state: _State, inst: Instruction) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise BuildError(f"the build was interrupted before step {self.step}/{self.total}")
        try:
            if inst.keyword == "ARG":
                self._arg(state, inst)
            elif inst.keyword == "RUN":
                self._run(state, inst)
            elif inst.keyword in ("COPY", "ADD"):
                self._copy(state, inst)
            elif inst.keyword in METADATA_KEYWORDS:
                self._metadata(state, inst)
            else:
                raise BuildError(f"{inst.keyword} is not allowed here")
        except StepFailed:
            raise
        except CellboxError as exc:
            raise self._wrap(exc, inst) from exc

    # -- FROM -------------------------------------------------------------------------------

    def _base(self, stage: Stage) -> _State:
        if stage.platform:
            self._check_platform(stage)
        name = self._from_name(stage)
        if not name:
            raise BuildError("FROM: the image name is empty after substitution")
        if (parent := self._stage_by_ref(name, stage.index)) is not None:
            built = self.stages[parent.index]
            return _State(list(built.layers), _clone(built.config), built.key)
        if name.lower() == "scratch":
            from ..manifest import Platform

            host = Platform.host()
            config: dict[str, Any] = {"architecture": host.architecture, "os": host.os,
                                      "config": {}, "rootfs": {"type": "layers",
                                                               "diff_ids": []}, "history": []}
            return _State([], config, step_key("", ["FROM", "scratch"]))
        image = self._image(name)
        return _State(list(image.layers), _clone(image.config),
                      step_key("", ["FROM", image.digest]))

    def _check_platform(self, stage: Stage) -> None:
        """``FROM --platform``: only this machine's (RUN cannot emulate another CPU)."""
        from ..manifest import Platform

        env = self._global_env()
        wanted = Platform.parse(self._word(str(stage.platform), env, stage.from_instruction))
        if not wanted.runs_on(Platform.host()):
            raise BuildError(
                f"--platform={stage.platform}: cellbox builds images for this machine "
                f"({self.auto_args['TARGETPLATFORM']}) only"
            )

    def _image(self, name: str) -> Image:
        """A base image: the stored one, else (or with --pull) from its registry."""
        if not self.options.pull:
            found = self.store.find_image(name)
            if found is not None and all(layer.path.is_dir() for layer in found.layers):
                return found
        from ..pull import pull  # httpx only when a registry is needed

        self.log(f"Pulling {name}\n")
        image = pull(name, settings=self.settings, store=self.store,
                     policy="always" if self.options.pull else "missing")
        self.log(f"--> {_short(image.digest)}\n")
        return image

    # -- steps ------------------------------------------------------------------------------

    def _env(self, state: _State) -> dict[str, str]:
        """What variables are substituted from: the stage's ARGs, then ENV over them."""
        return {**state.args, **env_dict(state.config)}

    def _record(self, state: _State, key: str, created_by: str,
                make: Callable[[], Layer | None], *, makes_layer: bool) -> None:
        """Take the step from the cache, or make it; add its history entry (and layer)."""
        entry = None if self.options.no_cache else self.cache.get(key)
        if entry is not None and (entry.layer is not None) == makes_layer:
            self.cached += 1
            self.log(f"--> Using cache {_short(key)}\n")
        else:
            layer = make()
            entry = CacheEntry(_now(), layer)
            self.cache.put(key, entry)
            self.log(f"--> {_short(key)}\n")
        state.key = key
        history: dict[str, Any] = {"created": entry.created, "created_by": created_by}
        if entry.layer is None:
            history["empty_layer"] = True
        else:
            state.layers.append(entry.layer)
        state.config["history"] = [*(state.config.get("history") or []), history]
        state.config["created"] = entry.created

    def _arg(self, state: _State, inst: Instruction) -> None:
        parts = []
        for key, default in inst.pairs:
            self.used_args.add(key)
            if key in self.options.build_args:
                value: str | None = self.options.build_args[key]
            elif default is not None:
                value = self._expand(default, self._env(state))
            elif self.global_args.get(key) is not None:
                value = self.global_args[key]
            else:
                value = self.auto_args.get(key)
            if value is None:
                state.args.pop(key, None)
                parts.append(key)
            else:
                state.args[key] = value
                parts.append(f"{key}={value}")
        created_by = "ARG " + " ".join(parts)
        self._record(state, step_key(state.key, created_by), created_by, lambda: None,
                     makes_layer=False)

    def _metadata(self, state: _State, inst: Instruction) -> None:
        config, created_by = apply_metadata(
            state.config, inst, self._env(state), shell=state.shell, escape=self.file.escape,
            cmd_set_here=state.cmd_set,
        )
        state.config = config
        state.cmd_set = state.cmd_set or inst.keyword == "CMD"
        self._record(state, step_key(state.key, created_by), created_by, lambda: None,
                     makes_layer=False)

    # -- RUN ---------------------------------------------------------------------------------

    def _run(self, state: _State, inst: Instruction) -> None:
        argv, scripts = run_argv(inst, state.shell)
        config_env = env_dict(state.config)
        arg_env = {k: v for k, v in state.args.items() if k not in config_env}
        arg_env.update({k: v for k, v in self.options.build_args.items()
                        if k in _PROXY_ARGS and k not in config_env})
        network = inst.flag("network") or "default"
        if network == "default":
            network = self.options.network
        created_by = "RUN " + " ".join(argv) if not scripts else f"RUN {inst.rest}"
        proxies = {k for k in arg_env if k in _PROXY_ARGS and k not in state.args}
        key_env = sorted((k, v) for k, v in arg_env.items() if k not in proxies)
        script_digest = {n: hashlib.sha256(d).hexdigest() for n, d in scripts.items()}
        key = step_key(state.key, ["RUN", argv, key_env, script_digest])
        step, line = self.step, inst.line

        def make() -> Layer:
            return self._execute(state, inst, argv, arg_env, network, scripts, step, line)

        self._record(state, key, created_by, make, makes_layer=True)

    def _execute(self, state: _State, inst: Instruction, argv: list[str],
                 env: dict[str, str], network: str, scripts: dict[str, bytes], step: int,
                 line: int) -> Layer:
        from .run import StepContainer  # the container runtime only when a step runs

        if not state.layers:
            raise BuildError("RUN has no file system to run in: this stage has no layers yet "
                             "(FROM scratch); COPY a program in first")
        name = f"cellbox-build-{os.urandom(6).hex()}"
        with StepContainer(self.settings, state.layers, state.config, argv,
                           env=[f"{k}={v}" for k, v in env.items()], network=network,
                           name=name) as container:
            for script, data in scripts.items():
                path = container.exchange_in / script
                path.write_bytes(data)
                path.chmod(0o755)
            result = container.run(self.on_output, self.cancel)
            if result.exit_code != 0:
                message = (
                    f"step {step}/{self.total} ({self.file.filename} line {line}: "
                    f"{inst.original}) failed: the command exited with status "
                    f"{result.exit_code}"
                )
                if self.on_output is None and result.tail:
                    message += "; its last output:\n" + "\n".join(result.tail[-10:])
                raise StepFailed(message, step=step, total=self.total, line=line,
                                 instruction=inst.original, exit_code=result.exit_code,
                                 output=result.tail)
            with self._staging() as staging:
                blob = staging / "layer.tar.gz"
                with open(blob, "w+b") as f:
                    try:
                        digests = container.write_layer(f)
                    except ContainerError as exc:
                        raise BuildError(str(exc).replace("cannot commit", "cannot store")
                                         ) from exc
                    f.seek(0)
                    return self._add_layer(state, f, digests.diff_id)

    @contextlib.contextmanager
    def _staging(self) -> Iterator[Path]:
        self.store.tmp.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="build-", dir=self.store.tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _add_layer(self, state: _State, blob: Any, diff_id: str) -> Layer:
        parent = state.layers[-1].chain_id if state.layers else None
        layer = self.store.add_layer(blob, parent, "gzip")
        if layer.diff_id != diff_id:
            raise BuildError(f"the store read the layer as {layer.diff_id}, not {diff_id}")
        return layer

    # -- COPY / ADD -------------------------------------------------------------------------------

    def _context(self) -> BuildContext:
        if self.context is None:
            if self.context_dir is None:
                raise BuildError("there is no build context to copy from")
            self.context = BuildContext(self.context_dir)
        return self.context

    def _from_view(self, ref: str, before: int) -> tuple[RootView, str]:
        """The file system of ``--from``: an earlier stage, or an image; and its cache key."""
        stage = self._stage_by_ref(ref, before)
        if stage is not None:
            built = self.stages[stage.index]
            return built.view(), built.key
        image = self._image(ref)
        return RootView(image.lower_dirs()), image.digest

    def _copy(self, state: _State, inst: Instruction) -> None:
        env = self._env(state)
        words = [w if inst.heredoc(w) else self._expand(w, env) for w in inst.args]
        *sources_text, dest = words
        if not dest:
            raise BuildError(f"{inst.keyword}: the destination is empty after substitution")
        workdir = str((state.config.get("config") or {}).get("WorkingDir") or "/")
        if not dest.startswith("/"):
            dest = posixpath.join(workdir, dest)
        chown = self._flag(inst, "chown", env)
        chmod_text = self._flag(inst, "chmod", env)
        chmod = parse_chmod(chmod_text)
        source_ref = self._flag(inst, "from", env)
        sources: list[TreeSource] = []
        key_sources: list[Any] = []
        if source_ref:
            view, from_key = self._from_view(source_ref, self.current)
            for text in sources_text:
                sources += image_sources(view, text)
            key_sources = [from_key, sources_text]
        else:
            for text in sources_text:
                doc = inst.heredoc(text)
                if doc is not None:
                    from .copy import InlineSource

                    body = self._expand(doc.body, env) if doc.expand else doc.body
                    inline = InlineSource(doc.name, body.encode())
                    sources.append(inline)
                    key_sources.append(["heredoc", doc.name,
                                        hashlib.sha256(inline.data).hexdigest()])
                    continue
                found = self._context().sources(text)
                sources += found
                key_sources += [[s.rel, s.name, s.digest()] for s in found]
        created_by = " ".join([inst.keyword, *(f"--{n}={v}" for n, v in (
            ("from", source_ref), ("chown", chown), ("chmod", chmod_text)) if v),
            *sources_text, words[-1]])
        key = step_key(state.key, [inst.keyword, chown, chmod, key_sources, dest])

        def make() -> Layer:
            from .copy import CopyRequest

            owner = self._owner(state, chown) if chown else None
            request = CopyRequest(sources, dest, owner, chmod, keep_owner=bool(source_ref),
                                  unpack=inst.keyword == "ADD", what=inst.keyword)
            return self._copy_layer(state, request)

        self._record(state, key, created_by, make, makes_layer=True)

    def _flag(self, inst: Instruction, name: str, env: Mapping[str, str]) -> str:
        value = inst.flag(name)
        return self._expand(value, env) if value else ""

    def _owner(self, state: _State, chown: str) -> tuple[int, int]:
        return owner_ids(state.view(), chown)

    def _copy_layer(self, state: _State, request: CopyRequest) -> Layer:
        from ..commit import write_layer
        from .copy import stage_copy

        with self._staging() as staging:
            tree = staging / "tree"
            tree.mkdir()
            stage_copy(tree, state.view(), request, self.store.options)
            blob = staging / "layer.tar.gz"
            with open(blob, "w+b") as f:
                try:
                    digests = write_layer(tree, f)
                except ContainerError as exc:
                    raise BuildError(str(exc).replace("cannot commit", "cannot copy")) from exc
                f.seek(0)
                return self._add_layer(state, f, digests.diff_id)

    # -- the image -------------------------------------------------------------------------------

    def _unchanged(self, config: dict[str, Any], layers: Sequence[Layer],
                   tags: Sequence[str]) -> Image | None:
        """The stored image, if every tag already names exactly this config and layers.

        A rebuild with nothing changed then writes nothing at all (not even images.json).
        """
        if not tags:
            return None
        wanted = _config_digest(config)
        digests = [layer.digest for layer in layers]
        found = None
        for tag in tags:
            found = self.store.find_image(tag)
            if (found is None or found.config_digest != wanted
                    or [layer.digest for layer in found.layers] != digests):
                return None
        return found

    def _commit(self, state: _State) -> Image:
        config = _clone(state.config)
        config["rootfs"] = {"type": "layers",
                            "diff_ids": [layer.diff_id for layer in state.layers]}
        tags = list(self.options.tags)
        self.log(f"COMMIT {' '.join(tags)}\n" if tags else "COMMIT\n")
        image = self._unchanged(config, state.layers, tags)
        if image is None:
            image = self.store.add_image(tags[0] if tags else None, config, state.layers)
            for tag in tags[1:]:
                image = self.store.tag(image.digest, tag)
        self.log(f"--> {_short(image.digest)}\n")
        for tag in tags:
            self.log(f"Successfully tagged {Reference.parse(tag)}\n")
        self.log(f"{image.digest}\n")
        return image


def _config_digest(config: Mapping[str, Any]) -> str:
    # Store.add_image's serialisation; a mismatch only costs the shortcut in _unchanged.
    raw = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def build(
    containerfile: str | Containerfile,
    context: Path | str | None,
    options: BuildOptions | None = None,
    *,
    settings: Settings | None = None,
    on_output: Output | None = None,
    cancel: threading.Event | None = None,
) -> BuildResult:
    """Build ``containerfile`` (its text, or parsed) with ``context`` as the build context.

    ``on_output(stream, text)`` receives the build log as it happens: ``STEP n/N: ...``
    lines, each command's output, ``--> Using cache <key>``, and at the end the image
    digest. ``cancel``, set from another thread, stops the build at the running step (its
    command is killed) or before the next one. Raises
    :class:`~.containerfile.ContainerfileError` for a file that does not
    parse, :class:`StepFailed` for a RUN that failed, BuildError (naming the step and the
    line) for anything else; in every case nothing is stored under the tags.
    """
    options = options or BuildOptions()
    parsed = containerfile if isinstance(containerfile, Containerfile) else parse(
        containerfile, filename=options.filename)
    for key in options.build_args:
        if not key or "=" in key:
            raise BuildError(f"--build-arg {key!r}: give NAME=VALUE")
    if options.network not in ("none", "bridge", "host"):
        raise BuildError(f"--network {options.network}: use none, bridge or host")
    builder = _Builder(parsed, Path(context) if context is not None else None, options,
                       settings or Settings.load(), on_output, cancel)
    return builder.run()
