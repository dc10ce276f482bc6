"""Every magic, used right and used wrong; errors of the runtime as a user meets them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.driver import KernelDriver, start_kernel
from tests.support.registry import RegistryServer, free_port

BAD = [
    ("%container busybox --memory lots", "--memory"),
    ("%container busybox --cpus many", "--cpus"),
    ("%container busybox --pids-limit x", "--pids-limit"),
    ("%container busybox --network wifi", "--network"),
    ("%container busybox -v nowhere", "-v"),
    ("%container busybox -e 1BAD=x", "-e"),
    ("%container busybox -w relative", "-w"),
    ("%container busybox --shell sh", "--shell"),
    ("%container busybox --pull sometimes", "--pull"),
    ("%container busybox -p 99999:80", "-p"),
    ("%container busybox --frobnicate", "--frobnicate"),
    ("%container", "IMAGE is missing"),
    ("%%container busybox --memory\necho x", "--memory needs a value"),
    ("%ps --everything", "--everything"),
    ("%images extra", "unexpected"),
    ("%pull", "IMAGE is missing"),
    ("%logs --tail many", "--tail"),
    ("%stats --all", "--all"),
    ("%layers now", "unexpected"),
    ("%commit", "REF is missing"),
    ("%stop a b", "unexpected"),
    ("%rm --all", "--all"),
    ("%run", "IMAGE is missing"),
    ("%help nosuchmagic", "no magic called"),
    ("%contaner busybox", "no magic %contaner"),
]


@pytest.fixture(scope="module")
def parse_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KernelDriver, Path]]:
    """One kernel for all the bad-option cases (each kernel start costs ≈ 0.7 s of CPU): a
    magic that does not parse must touch nothing, which each case checks; and its store."""
    base = tmp_path_factory.mktemp("magics")
    (base / "notebooks").mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CELLBOX_ROOT", str(base / "cellbox-root"))
        env.setenv("CELLBOX_RUN", str(base / "cellbox-run"))
        driver = start_kernel(base / "notebooks")
    try:
        yield driver, base / "cellbox-root"
    finally:
        driver.shutdown()


@pytest.mark.parametrize(("code", "names"), BAD, ids=[c.split("\n")[0] for c, _ in BAD])
def test_every_magic_with_a_bad_option_says_what_is_wrong(
    parse_kernel: tuple[KernelDriver, Path], code: str, names: str
) -> None:
    kernel, root = parse_kernel
    result = kernel.run(code)
    assert result.status == "error"
    assert result.error is not None
    ename, evalue = result.error
    assert ename == "MagicError"
    assert names in evalue
    assert "usage: %" in evalue  # and how to use it right
    assert len(result.of_type("error")) == 1
    assert kernel.ok("%help").stdout.startswith("Cells run in a persistent container")
    assert not any((root / "containers").glob("*")), "a bad magic made a container"


def test_help_lists_every_magic(kernel: KernelDriver) -> None:
    text = kernel.ok("%help").stdout
    for magic in ("%container", "%%container", "%ps", "%images", "%pull", "%logs", "%stats",
                  "%layers", "%commit", "%stop", "%rm", "%run", "%help"):
        assert magic in text
    assert "--memory" in kernel.ok("%help container").stdout


def test_reporting_magics(kernel: KernelDriver) -> None:
    kernel.ok("%container busybox --network none --memory 32m")
    kernel.ok("echo a line for the log")
    assert "busybox" in kernel.ok("%images").stdout
    layers = kernel.ok("%layers").stdout
    assert "busybox" in layers and "CREATED BY" in layers
    stats = kernel.ok("%stats").stdout
    assert "32MiB" in stats
    assert "a line for the log" in kernel.ok("%logs --tail 5").stdout
    misplaced = kernel.run("echo made-here > /root/made.txt\n%commit mine:v1")
    assert misplaced.error is not None and "goes at its top" not in misplaced.error[1]
    assert "at its top" in misplaced.error[1]
    kernel.ok("echo made-here > /root/made.txt")
    committed = kernel.ok("%commit mine:v1")
    assert "committed" in committed.stdout
    used = kernel.ok("%%container mine:v1 --network none\ncat /root/made.txt")
    assert used.stdout.endswith("made-here\n")


def test_magics_that_need_a_container_say_so(kernel: KernelDriver) -> None:
    result = kernel.run("%logs")
    assert result.error is not None and result.error[0] == "NoContainer"
    assert "%container IMAGE" in result.error[1]


def test_a_missing_image_with_pull_never(kernel: KernelDriver) -> None:
    result = kernel.run("%container nosuchimage:1 --pull never")
    assert result.error is not None
    ename, evalue = result.error
    assert ename == "ImageNotFound"
    assert "nosuchimage" in evalue and "pull" in evalue
    assert kernel.ok("%container busybox --network none\necho fine").stdout == "fine\n"


def test_a_bad_reference(kernel: KernelDriver) -> None:
    result = kernel.run("%container Upper/Case:tag")
    assert result.error is not None
    assert result.error[0] == "InvalidReference"
    assert "Upper/Case" in result.error[1]


@pytest.fixture
def mirrored(registry: RegistryServer, kernel_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session registry as docker.io's mirror, and a store that has nothing yet."""
    monkeypatch.setenv("CELLBOX_REGISTRY_MIRRORS", registry.url)
    root = Path(os.environ["CELLBOX_ROOT"])
    for name in ("blobs", "layers"):
        (root / name).unlink()
    (root / "images.json").unlink()
    return kernel_env


def test_pull_progress_then_the_container(mirrored: Path, registry: RegistryServer) -> None:
    from tests.kernel.driver import start_kernel

    kernel = start_kernel(mirrored)
    try:
        result = kernel.ok("%container busybox --network none\nbusybox | head -1")
        progress = result.of_type("display_data") + result.of_type("update_display_data")
        assert progress, "no pull progress was shown"
        assert any("pulling busybox" in str(m["content"]["data"]) for m in progress)
        assert "BusyBox" in result.stdout
        pulled = kernel.ok("%pull busybox")
        assert "pulled" in pulled.stdout
        missing = kernel.run(f"%container {registry.host}/library/nosuchimage")
        assert missing.error is not None and missing.error[0] == "ImageNotFound"
        assert "nosuchimage" in missing.error[1]
        run = kernel.ok("%run hello-world")
        assert "Hello from cellbox!" in run.stdout
    finally:
        kernel.shutdown()


def test_registry_down(kernel_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.kernel.driver import start_kernel

    monkeypatch.setenv("CELLBOX_REGISTRY_MIRRORS", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CELLBOX_INSECURE_REGISTRIES", f"127.0.0.1:{free_port()}")
    kernel = start_kernel(kernel_env)
    try:
        result = kernel.run(f"%container 127.0.0.1:{free_port()}/nothing:1", timeout=180)
        assert result.error is not None
        ename, evalue = result.error
        assert ename in ("RegistryUnavailable", "RegistryError")
        assert "127.0.0.1" in evalue
        assert kernel.ok("%container busybox --network none\necho ok").stdout == "ok\n"
    finally:
        kernel.shutdown()


def test_containerfile_builds_an_image_the_notebook_then_runs_and_pushes(
    kernel: KernelDriver, registry: RegistryServer
) -> None:
    (kernel.notebook / "greeting.txt").write_text("from the notebook\n")
    built = kernel.ok(
        "%%containerfile mine/built:v1\nFROM busybox\nCOPY greeting.txt /greeting.txt\n"
        "RUN echo built-here > /built.txt"
    )
    assert "STEP 3/3" in built.stdout and "built docker.io/mine/built:v1" in built.stdout
    used = kernel.ok("%%container mine/built:v1 --network none\ncat /built.txt /greeting.txt")
    assert used.stdout == "built-here\nfrom the notebook\n"
    failed = kernel.run("%%containerfile mine/bad:v1\nFROM busybox\nRUN exit 3")
    assert failed.error is not None and failed.error[0] == "StepFailed"
    assert "cell line 3" in failed.error[1]
    pushed = kernel.ok(f"%push mine/built:v1 {registry.host}/mine/built:v1")
    assert "pushed" in pushed.stdout


def test_pull_progress_as_widgets_when_the_frontend_has_them(mirrored: Path) -> None:
    import uuid

    from tests.kernel.driver import start_kernel

    kernel = start_kernel(mirrored)
    try:
        # What JupyterLab's widget manager does when it connects to a kernel.
        opened = kernel.kc.session.msg("comm_open", {
            "comm_id": uuid.uuid4().hex, "target_name": "jupyter.widget.control", "data": {},
        })
        kernel.kc.shell_channel.send(opened)
        kernel.ok("%help")  # the comm_open is handled before this cell
        result = kernel.ok("%container busybox --network none\necho pulled")
        views = [m for m in result.of_type("display_data")
                 if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]]
        assert views, "no progress widget was displayed"
        assert result.of_type("comm_open") or result.of_type("comm_msg")
        assert result.stdout.endswith("pulled\n")
    finally:
        kernel.shutdown()
