"""``rtnl._loop_running`` reads a half-imported asyncio as "no loop" instead of failing.

``network.preload()`` imports pyroute2, and with it asyncio, in a background thread; a
bridge attach asking "does this thread run a loop?" at that moment used to fail with
"partially initialized module 'asyncio'".
"""

from __future__ import annotations

import asyncio
import types

import pytest
from cellbox.runtime import rtnl


@pytest.mark.parametrize("partial", [
    {},                                                       # asyncio not imported at all
    {"asyncio": types.ModuleType("asyncio")},                 # asyncio/__init__ half way
    {"asyncio": types.ModuleType("asyncio"),
     "asyncio.events": types.ModuleType("asyncio.events")},   # events half way
])
def test_a_half_imported_asyncio_means_no_loop(partial: dict[str, types.ModuleType],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("asyncio", "asyncio.events"):
        if name in partial:
            monkeypatch.setitem(__import__("sys").modules, name, partial[name])
        else:
            monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    assert rtnl._loop_running() is False


def test_a_running_loop_is_seen_and_work_moves_off_it() -> None:
    assert rtnl._loop_running() is False

    async def inside() -> tuple[bool, bool]:
        seen = rtnl._loop_running()
        elsewhere = rtnl.call_off_loop(rtnl._loop_running)
        return seen, elsewhere

    assert asyncio.run(inside()) == (True, False)
