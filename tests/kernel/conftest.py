"""Kernel tests: the installed kernelspec "cellbox", driven through jupyter_client as a
frontend would, with real containers. They need root, and must leave nothing behind.

Fixtures:

``kernel_env``  a fresh CELLBOX_ROOT sharing the session's stored busybox and debian
                (tests.support.containers), and a notebook directory (the kernel's cwd)
``kernel``      a started kernel (:class:`tests.kernel.driver.KernelDriver`), shut down
                at the end; ``kernel_factory`` starts more on the same notebook directory
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import TestCase

import pytest

from tests.kernel.driver import KernelDriver, start_kernel
from tests.support.containers import cellbox_env, container_images
from tests.support.leaks import leaked, snapshot

__all__ = ["cellbox_env", "container_images"]  # fixtures, re-exported for pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.privileged)
        if os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root"))


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a mount, cgroup, netns, link or process behind.

    A unittest class (the conformance suite) shares one kernel between its tests and is
    checked once, around the whole class (see test_kernel_conformance.py).
    """
    if isinstance(request.instance, TestCase):
        yield
        return
    before = snapshot()
    yield
    left = leaked(before, grace=5)
    if left:
        lines = [f"  {kind}: {sorted(items)}" for kind, items in left.items()]
        pytest.fail("test left things behind:\n" + "\n".join(lines), pytrace=False)


@pytest.fixture
def kernel_env(cellbox_env: Any, tmp_path: Path) -> Path:
    """A notebook directory for a kernel, with a fresh cellbox root in the environment."""
    notebook = tmp_path / "notebooks"
    notebook.mkdir()
    return notebook


@pytest.fixture
def kernel(kernel_env: Path) -> Iterator[KernelDriver]:
    """A started cellbox kernel whose notebook directory is ``kernel_env``."""
    driver = start_kernel(kernel_env)
    try:
        yield driver
    finally:
        driver.shutdown()


@pytest.fixture
def kernel_factory(kernel_env: Path) -> Iterator[Callable[[], KernelDriver]]:
    """Start more kernels on the same notebook directory (all shut down at the end)."""
    started: list[KernelDriver] = []

    def start() -> KernelDriver:
        driver = start_kernel(kernel_env)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.shutdown()
