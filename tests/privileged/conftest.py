"""Privileged tests run as root against the real kernel, and must leave nothing behind."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.leaks import leaked, snapshot


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.privileged)
        if os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="needs root"))


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test when it leaves a mount, cgroup, netns, link or process behind."""
    before = snapshot()
    yield
    left = leaked(before)
    if left:
        lines = [f"  {kind}: {sorted(items)}" for kind, items in left.items()]
        pytest.fail("test left things behind:\n" + "\n".join(lines), pytrace=False)
