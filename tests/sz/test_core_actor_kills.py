"""Killing a core actor again and again ends the scheduler; it never hangs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sz.bridge import untangle_context

#: Kills /user/dispatcher until /user gives up (3 restarts in 5 s), a beat apart.
KILLS = """
import sys
import anyio
from sz import ScheduleZero

async def main():
    sz = ScheduleZero(store="memory")

    @sz.handler
    async def noop():
        return None

    try:
        async with sz:
            for _ in range(6):
                ref = sz.system.lookup("/user/dispatcher")
                if ref is None:
                    break
                await ref.kill("killed again")
                await anyio.sleep(0.01)
    except BaseException as error:
        print("ended:", type(error).__name__, flush=True)

anyio.run(main, backend=sys.argv[1])
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_dispatcher_killed_past_its_intensity_ends_the_scheduler(
    backend: str,
) -> None:
    # Once, on asyncio, its exit looped for ever on a cancellation that was its
    # own context (APScheduler's exit raised it). A process, so a hang is a
    # timeout here rather than a stuck test run.
    result = subprocess.run(
        [sys.executable, "-c", KILLS, backend],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout.strip().splitlines()[-1] == "ended: ActorKilled", (
        result.stdout + result.stderr
    )


def test_a_context_chain_that_loops_is_cut_where_it_comes_back() -> None:
    first, second = ValueError("first"), KeyError("second")
    first.__context__ = second
    second.__context__ = first
    untangle_context(first)
    assert context(first) is second
    assert context(second) is None
    alone = RuntimeError("alone")
    alone.__context__ = alone
    untangle_context(alone)
    assert context(alone) is None


def context(error: BaseException) -> BaseException | None:
    return error.__context__
