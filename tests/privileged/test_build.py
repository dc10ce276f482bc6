"""Building images for real: RUN in containers, COPY from a context, the cache, failures.

Every test gets a store of its own holding the busybox test image (the real store format,
as ``cellbox pull`` leaves it), builds into it, and runs what it built.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cellbox.runtime.build import BuildOptions, StepFailed, build
from cellbox.runtime.container import Container
from cellbox.runtime.errors import BuildError, CellboxError
from cellbox.runtime.images import history
from cellbox.runtime.settings import Settings
from cellbox.runtime.store import Store

from tests.support.containers import cellbox, store_image


@pytest.fixture
def build_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh store root with busybox in it; every container left is removed."""
    root = tmp_path / "cellbox-root"
    monkeypatch.setenv("CELLBOX_ROOT", str(root))
    monkeypatch.setenv("CELLBOX_RUN", str(tmp_path / "cellbox-run"))
    store_image(root, "busybox")
    settings = Settings.load()
    yield settings
    for container in Container.list(all=True, settings=settings):
        with contextlib.suppress(CellboxError):
            container.remove(force=True)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "context"
    (ctx / "app" / "lib").mkdir(parents=True)
    (ctx / "app" / "main.sh").write_text("#!/bin/sh\necho main\n")
    (ctx / "app" / "main.sh").chmod(0o755)
    (ctx / "app" / "lib" / "util.sh").write_text("util\n")
    (ctx / "config.txt").write_text("setting=1\n")
    (ctx / "secret.key").write_text("do not ship\n")
    (ctx / ".containerignore").write_text("*.key\n")
    return ctx


class Log:
    """Collects the build log as the builder streams it."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str]] = []

    def __call__(self, stream: str, text: str) -> None:
        self.parts.append((stream, text))

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.parts)

    def stream(self, name: str) -> str:
        return "".join(text for stream, text in self.parts if stream == name)


def run(ref: str, *command: str) -> str:
    result = cellbox("run", "--rm", "--network", "none", ref, *command, check=True)
    return result.stdout


def store_contents(settings: Settings) -> tuple[set[str], set[str], set[str]]:
    store = Store(settings.root)
    blobs = set(os.listdir(store.blobs)) if store.blobs.exists() else set()
    layers = set(os.listdir(store.layers)) if store.layers.exists() else set()
    return blobs, layers, {i.digest for i in store.images()}


MULTI_STEP = """\
FROM busybox
ARG GREETING=hello
ENV APP_HOME=/srv/app \\
    MODE=test
WORKDIR $APP_HOME
COPY app/ ./
COPY --chown=user:user --chmod=600 config.txt /home/user/
RUN echo "$GREETING from $MODE" > greeting.txt \\
 && mkdir -p /var/data && echo made > /var/data/made \\
 && rm /bin/vi \\
 && echo building; echo warning >&2
USER user
LABEL org.example.kind=test
CMD ["sh", "-c", "cat greeting.txt"]
"""


def test_multi_step_build_runs_like_docker(build_env: Settings, context: Path) -> None:
    log = Log()
    result = build(MULTI_STEP, context, BuildOptions(tags=["example/app:1"]), on_output=log)
    assert (result.steps, result.cached) == (10, 0)
    text = log.text
    assert text.startswith("STEP 1/10: FROM busybox\n")
    assert "STEP 7/10: RUN echo \"$GREETING from $MODE\" > greeting.txt" in text
    assert "building\n" in log.stream("stdout") and "warning\n" in log.stream("stderr")
    assert text.rstrip().endswith(result.image.digest)
    assert "Successfully tagged docker.io/example/app:1" in text

    # what runs is what was built
    assert run("example/app:1") == "hello from test\n"
    out = run("example/app:1", "sh", "-c",
              "id -u; pwd; echo $APP_HOME $MODE $GREETING.; ls /srv/app /srv/app/lib; "
              "stat -c '%a %U:%G' /srv/app/main.sh /home/user/config.txt; "
              "cat /var/data/made; test -e /bin/vi || echo no-vi")
    lines = out.splitlines()
    assert lines[:3] == ["1000", "/srv/app", "/srv/app test ."]  # ARG is not in the image
    assert "main.sh" in lines and "util.sh" in lines and "greeting.txt" in lines
    assert "755 root:root" in lines and "600 user:user" in lines
    assert "made" in lines and "no-vi" in lines
    # what the runtime made only to mount over is not part of the RUN's layer
    run_layer = result.image.layers[-1].path
    assert not (run_layer / ".cellbox").exists() and not (run_layer / "etc").exists()
    # the image config and its history read like docker's
    config = result.image.config
    assert config["config"]["User"] == "user"
    assert config["config"]["WorkingDir"] == "/srv/app"
    assert "APP_HOME=/srv/app" in config["config"]["Env"]
    assert config["config"]["Labels"] == {"org.example.kind": "test"}
    rows = [(h.created_by, h.empty_layer) for h in reversed(history(result.image))][-9:]
    assert rows == [
        ("ARG GREETING=hello", True),
        ("ENV APP_HOME=/srv/app MODE=test", True),
        ("WORKDIR /srv/app", True),
        ("COPY app/ ./", False),
        ("COPY --chown=user:user --chmod=600 config.txt /home/user/", False),
        ("RUN /bin/sh -c echo \"$GREETING from $MODE\" > greeting.txt  && mkdir -p /var/data "
         "&& echo made > /var/data/made  && rm /bin/vi  && echo building; echo warning >&2",
         False),
        ("USER user", True),
        ("LABEL org.example.kind=test", True),
        ('CMD ["sh", "-c", "cat greeting.txt"]', True),
    ]
    assert len(result.image.layers) == 4  # busybox + COPY + COPY + RUN
    assert Container.list(all=True) == []  # no build container left


def test_rebuild_is_all_cache_and_changes_rebuild_from_there(
    build_env: Settings, context: Path
) -> None:
    first = build(MULTI_STEP, context, BuildOptions(tags=["example/app:1"]))
    before = store_contents(build_env)
    log = Log()
    again = build(MULTI_STEP, context, BuildOptions(tags=["example/app:1"]), on_output=log)
    assert again.image.digest == first.image.digest
    assert again.cached == again.steps - 1  # everything but FROM
    assert log.text.count("--> Using cache") == 9
    assert store_contents(build_env) == before  # nothing new at all

    os.utime(context / "config.txt", (1, 1))  # a touch is no change
    assert build(MULTI_STEP, context, BuildOptions(tags=["example/app:1"])).cached == 9

    (context / "config.txt").write_text("setting=2\n")
    log = Log()
    changed = build(MULTI_STEP, context, BuildOptions(tags=["example/app:1"]), on_output=log)
    steps = log.text.split("STEP ")[1:]
    using = [s.split(":")[0] for s in steps if "Using cache" in s]
    assert using == ["2/10", "3/10", "4/10", "5/10"]  # ARG ENV WORKDIR, first COPY
    assert changed.cached == 4
    assert run("example/app:1", "cat", "/home/user/config.txt") == "setting=2\n"
    # --no-cache runs everything again
    assert build(MULTI_STEP, context, BuildOptions(no_cache=True)).cached == 0


def test_build_args_change_the_cache_of_the_runs_that_see_them(
    build_env: Settings, context: Path
) -> None:
    text = "FROM busybox\nARG WHO=nobody\nRUN echo $WHO > /who\n"
    build(text, context, BuildOptions(tags=["who"]))
    assert run("who", "cat", "/who") == "nobody\n"
    log = Log()
    result = build(text, context, BuildOptions(tags=["who"], build_args={"WHO": "me",
                                                                          "UNUSED": "x"}),
                   on_output=log)
    assert result.cached == 0
    assert run("who", "cat", "/who") == "me\n"
    assert "[Warning] build args not used by any ARG: UNUSED" in log.text
    # scoping: a global ARG reaches FROM, and a stage only through its own ARG line;
    # ENV wins over ARG; TARGETARCH comes for free once declared
    scoped = ("ARG BASE=busybox\nARG V=global\nFROM $BASE\nRUN echo \"[$V]\" > /before\n"
              "ARG V\nARG X=from-arg\nENV X=from-env\nARG TARGETARCH\n"
              "RUN echo \"$V $X $TARGETARCH\" > /after\n")
    build(scoped, context, BuildOptions(tags=["scoped"]))
    arch = run("scoped", "uname", "-m").strip().replace("x86_64", "amd64").replace(
        "aarch64", "arm64")
    assert run("scoped", "cat", "/before", "/after") == f"[]\nglobal from-env {arch}\n"
    build(scoped, context, BuildOptions(tags=["scoped"], build_args={"V": "given"}))
    assert run("scoped", "cat", "/after").startswith("given ")


def test_a_failing_run_names_the_step_and_leaves_nothing(
    build_env: Settings, context: Path
) -> None:
    text = ("FROM busybox\nCOPY config.txt /\n\nRUN echo first-line; echo broken >&2; exit 3\n"
            "RUN echo never\n")
    before = store_contents(build_env)[2]
    log = Log()
    with pytest.raises(StepFailed) as caught:
        build(text, context, BuildOptions(tags=["broken:1"]), on_output=log)
    error = caught.value
    assert str(error).startswith("step 3/4 (Containerfile line 4: RUN echo first-line;")
    assert "exited with status 3" in str(error)
    assert (error.step, error.line, error.exit_code) == (3, 4, 3)
    assert error.output == ["first-line", "broken"]
    assert "first-line\n" in log.stream("stdout") and "broken\n" in log.stream("stderr")
    assert "never" not in log.text
    # no image, no build container, no staging left
    store = Store(build_env.root)
    assert store_contents(build_env)[2] == before and store.find_image("broken:1") is None
    assert Container.list(all=True) == []
    assert not [n for n in os.listdir(store.tmp) if n.startswith("build-")]
    # without a log callback the output is in the message
    with pytest.raises(StepFailed, match="its last output:\nfirst-line\nbroken"):
        build(text, context, BuildOptions(tags=["broken:1"]))


def test_a_missing_command_and_other_step_errors(build_env: Settings, context: Path) -> None:
    with pytest.raises(StepFailed) as caught:
        build("FROM busybox\nRUN [\"/no/such/program\"]\n", context)
    assert caught.value.exit_code == 127
    assert "/no/such/program" in "\n".join(caught.value.output)
    with pytest.raises(BuildError, match=r"step 2/2 \(Containerfile line 2: COPY nothere /x\): "
                                         r"nothere: no such file"):
        build("FROM busybox\nCOPY nothere /x\n", context)
    with pytest.raises(BuildError, match="excluded from the build context"):
        build("FROM busybox\nCOPY secret.key /x\n", context)
    with pytest.raises(BuildError, match="no user 'ghost'"):
        build("FROM busybox\nCOPY --chown=ghost config.txt /x\n", context)
    with pytest.raises(BuildError, match=r"step 1/1 \(Containerfile line 1: FROM "
                                         r"127.0.0.1:1/nosuch:1\): cannot reach"):
        build("FROM 127.0.0.1:1/nosuch:1\n", context)
    with pytest.raises(BuildError, match="builds images for this machine"):
        build("FROM --platform=linux/s390x busybox\n", context)
    assert build("FROM --platform=$BUILDPLATFORM busybox\n", context).steps == 1
    assert Container.list(all=True) == []


def test_multi_stage_target_and_copy_from(build_env: Settings, context: Path) -> None:
    text = (
        "FROM busybox AS builder\n"
        "RUN mkdir /out && echo compiled > /out/app && ln -s app /out/link\n"
        "FROM busybox AS unused\n"
        "RUN exit 1\n"
        "FROM busybox\n"
        "COPY --from=builder /out/ /opt/\n"
        "COPY --from=0 /out/app /bin/app-copy\n"
        "COPY --from=busybox /etc/group /copied-group\n"
    )
    log = Log()
    result = build(text, context, BuildOptions(tags=["multi"]), on_output=log)
    assert "exit 1" not in log.text  # the unused stage is not built
    assert result.steps == 6
    assert run("multi", "sh", "-c", "cat /opt/app /bin/app-copy; readlink /opt/link; "
                                    "head -1 /copied-group") == (
        "compiled\ncompiled\napp\nroot:x:0:\n")
    target = build(text, context, BuildOptions(tags=["just-builder"], target="builder"))
    assert target.cached == 1 and target.steps == 2
    with pytest.raises(BuildError, match="no such stage"):
        build(text, context, BuildOptions(target="nope"))


def test_add_unpacks_archives_safely(build_env: Settings, context: Path,
                                     tmp_path: Path) -> None:
    def archive(name: str, entries: dict[str, bytes], mode: str = "w:gz") -> None:
        with tarfile.open(context / name, mode) as tar:
            for entry, data in entries.items():
                info = tarfile.TarInfo(entry)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    archive("site.tar.gz", {"index.html": b"<h1>hi</h1>", "css/x.css": b"body{}"})
    archive("plain.tar", {"plain.txt": b"plain"}, "w")
    archive("data.tar.xz", {"x.txt": b"xz"}, "w:xz")
    (context / "notatar.gz").write_bytes(b"\x1f\x8bnot really gzip")
    text = ("FROM busybox\nADD site.tar.gz /var/www/\nADD plain.tar data.tar.xz /opt/\n"
            "ADD notatar.gz /raw/\nADD config.txt /etc/app.conf\n")
    build(text, context, BuildOptions(tags=["added"]))
    assert run("added", "sh", "-c", "cat /var/www/index.html /var/www/css/x.css; echo; "
                                    "cat /opt/plain.txt /opt/x.txt; echo; ls /raw; "
                                    "cat /etc/app.conf") == (
        "<h1>hi</h1>body{}\nplainxz\nnotatar.gz\nsetting=1\n")
    # a hostile archive is refused, and writes nothing anywhere
    archive("evil.tar", {"../../../../../../tmp/cellbox-escaped": b"x"}, "w")
    with pytest.raises(BuildError, match="the archive was refused"):
        build("FROM busybox\nADD evil.tar /x/\n", context)
    assert not Path("/tmp/cellbox-escaped").exists()


def test_heredocs_and_shell(build_env: Settings, context: Path) -> None:
    text = (
        "FROM busybox\n"
        "ARG NAME=world\n"
        "RUN <<EOF\n"
        "echo \"hello $NAME\" > /hello\n"
        "echo two >> /hello\n"
        "EOF\n"
        "RUN <<'SCRIPT'\n"
        "#!/bin/sh\n"
        "echo \"from a script: $0\" > /script\n"
        "SCRIPT\n"
        "COPY <<EOF /etc/motd\n"
        "welcome to $NAME\n"
        "EOF\n"
        "RUN cat > /piped <<EOF\n"
        "piped $NAME\n"
        "EOF\n"
        "SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n"
        "RUN echo shell > /shell\n"
    )
    result = build(text, context, BuildOptions(tags=["heredoc"]))
    assert run("heredoc", "cat", "/hello", "/script", "/etc/motd", "/piped", "/shell") == (
        "hello world\ntwo\nfrom a script: /.cellbox/in/heredoc\nwelcome to world\n"
        "piped world\nshell\n")
    created = [h.created_by for h in history(result.image)]
    assert "RUN /bin/sh -e -c echo shell > /shell" in created


def test_copy_follows_symlinks_inside_the_image(build_env: Settings, context: Path) -> None:
    text = ("FROM busybox\n"
            "RUN mkdir -p /real/dir && ln -s /real/dir /linked && chmod 1777 /real/dir\n"
            "COPY config.txt /linked/\n"
            "COPY app/lib /linked/lib/\n"
            "COPY app/ /tmp/\n"
            "ADD plain.tar /tmp/\n")
    with tarfile.open(context / "plain.tar", "w") as tar:
        info = tarfile.TarInfo("plain.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"plain"))
    build(text, context, BuildOptions(tags=["links"]))
    assert run("links", "sh", "-c", "readlink /linked; ls /real/dir; stat -c %a /real/dir; "
                                    "ls /tmp; stat -c %a /tmp") == (
        "/real/dir\nconfig.txt\nlib\n1777\nlib\nmain.sh\nplain.txt\n1777\n")


def test_cli_build(build_env: Settings, context: Path) -> None:
    (context / "Containerfile").write_text("FROM busybox\nCOPY config.txt /\nRUN echo built\n")
    first = cellbox("build", "-t", "cli/image", str(context), check=True)
    assert first.stdout.startswith("STEP 1/3: FROM busybox\nSTEP 2/3: COPY config.txt /\n")
    assert "built\n" in first.stdout
    digest = first.stdout.splitlines()[-1]
    assert digest.startswith("sha256:")
    again = cellbox("build", "-q", "-t", "cli/image", str(context), check=True)
    assert again.stdout == digest + "\n"
    other = context / "other.Containerfile"
    other.write_text("FROM busybox\nARG CODE\nRUN exit $CODE\n")
    failed = cellbox("build", "-f", str(other), "--build-arg", "CODE=4", str(context))
    assert failed.returncode == 1
    assert "cellbox build: step 3/3 (other.Containerfile line 3: RUN exit $CODE) failed: " \
           "the command exited with status 4" in failed.stderr
    assert cellbox("history", "cli/image", check=True).stdout.count("RUN /bin/sh -c echo") == 1
    missing = cellbox("build", str(context / "nope"))
    assert missing.returncode == 1 and "not a directory" in missing.stderr


def test_the_notebook_magic_builds_the_cell(build_env: Settings, context: Path) -> None:
    from cellbox.kernel.containerfile import build_cell

    log = Log()
    cell = "FROM busybox\nCOPY config.txt /etc/app.conf\nRUN cat /etc/app.conf\n"
    summary = build_cell("notebook/image:1", cell, context, on_output=log)
    assert summary.startswith("built docker.io/notebook/image:1 (") and "3 steps" in summary
    assert "setting=1\n" in log.stream("stdout")
    assert run("notebook/image:1", "cat", "/etc/app.conf") == "setting=1\n"
    again = build_cell("notebook/image:1", cell, context, on_output=log)
    assert again.endswith("3 steps, 2 from cache")
    # line numbers are the cell's: the magic line is line 1
    with pytest.raises(BuildError, match="cell line 3: unknown instruction 'RUNN'"):
        build_cell("x", "FROM busybox\nRUNN x\n", context, on_output=log)
    with pytest.raises(StepFailed, match=r"step 2/2 \(cell line 3: RUN exit 9\) failed"):
        build_cell("x", "FROM busybox\nRUN exit 9\n", context, on_output=log)


def test_an_interrupted_build_stops_its_step_and_stores_nothing(
    build_env: Settings, context: Path
) -> None:
    cancel = threading.Event()
    log = Log()

    def on_output(stream: str, text: str) -> None:
        log(stream, text)
        if text == "started\n":
            cancel.set()  # what the kernel's interrupt does, from its own thread

    began = time.monotonic()
    with pytest.raises(BuildError, match="interrupted"):
        build("FROM busybox\nRUN echo started; sleep 60\n", context,
              BuildOptions(tags=["slow"]), on_output=on_output, cancel=cancel)
    assert time.monotonic() - began < 30
    assert Container.list(all=True) == []
    assert Store(build_env.root).find_image("slow") is None


def test_onbuild_triggers_run_in_the_child_image(build_env: Settings, context: Path) -> None:
    build("FROM busybox\nONBUILD COPY config.txt /from-trigger\n"
          "ONBUILD RUN echo triggered > /t\n", context, BuildOptions(tags=["parent"]))
    log = Log()
    child = build("FROM parent\nRUN cat /t\n", context, BuildOptions(tags=["child"]),
                  on_output=log)
    assert "--> ONBUILD COPY config.txt /from-trigger\n" in log.text
    assert "triggered\n" in log.stream("stdout")
    assert run("child", "cat", "/from-trigger") == "setting=1\n"
    assert "OnBuild" not in child.image.config["config"]  # triggers fire once


def test_an_unreadable_onbuild_trigger_in_a_base_image_is_refused(
    build_env: Settings, context: Path
) -> None:
    store = Store(build_env.root)
    base = store.find_image("busybox")
    assert base is not None
    config = {k: v for k, v in base.config.items() if k != "rootfs"}
    config["config"] = {**config["config"], "OnBuild": ["RUN true\nFROM evil", "FROM x"]}
    store.add_image("weird/base", config, list(base.layers))
    with pytest.raises(BuildError, match="ONBUILD trigger cellbox cannot read: 'RUN true"):
        build("FROM weird/base\n", context)
