"""Killing a core actor again and again never ends the scheduler, nor loses a job."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING

import anyio
import pytest

from actors.testing import wait_until
from sz import JobFailed, ScheduleZero
from sz.bridge import untangle_context
from sz.retry import LOST_JOB_RETRIES

if TYPE_CHECKING:
    from sz import JobHandle
    from sz.jobs import Attempt

#: Kills /user/dispatcher far past /user's intensity (3 restarts in 5 s).
KILLS = """
import sys
import anyio
from sz import JobFailed, ScheduleZero

async def main():
    sz = ScheduleZero(store="memory")

    @sz.handler
    async def noop():
        return "done"

    async with sz:
        for _ in range(8):
            ref = sz.system.lookup("/user/dispatcher")
            await ref.kill("killed again")
            await anyio.sleep(0.01)
        print("after the kills:", await sz.run_now("noop", timeout=10), flush=True)

anyio.run(main, backend=sys.argv[1])
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_dispatcher_killed_past_its_intensity_leaves_the_scheduler_running(
    backend: str,
) -> None:
    # Once these kills ended the scheduler (and, on asyncio, first hung its
    # exit on a cancellation that was its own context). A process, so that a
    # hang is a timeout here rather than a stuck test run.
    result = subprocess.run(
        [sys.executable, "-c", KILLS, backend],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "after the kills: done", (
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


# ------------------------------------------------- each core actor, killed

#: More kills than any core supervisor's intensity (/user/handlers': 10 in 10 s).
MANY = 12

#: Jobs running (held at the gate) while the kills come.
IN_FLIGHT = 4


class Gated:
    """A scheduler whose ``work`` jobs wait at a gate, counting completions."""

    def __init__(self) -> None:
        self.sz = ScheduleZero(store="memory")
        self.gate = anyio.Event()
        self.completed: Counter[int] = Counter()

        @self.sz.handler(concurrency=IN_FLIGHT)
        async def work(key: int) -> int:
            await self.gate.wait()
            self.completed[key] += 1
            return key


async def running(sz: ScheduleZero, count: int) -> bool:
    """Whether ``count`` jobs (or more) run now."""
    return len(await sz.jobs("running")) >= count


async def kill_again_and_again(sz: ScheduleZero, path: str, times: int) -> None:
    """Kill ``path`` ``times`` times, each time once it runs again."""
    for _ in range(times):
        ref = sz.system.lookup(path)
        assert ref is not None, path
        await ref.kill("chaos")
        await wait_until(
            lambda: state_of(sz, path) == "running",
            timeout=10,
            message=f"{path} runs again",
        )


def state_of(sz: ScheduleZero, path: str) -> str | None:
    snapshot = sz.system.snapshot().find(path)
    return None if snapshot is None else snapshot.state


def restarts_of(sz: ScheduleZero, path: str) -> int:
    snapshot = sz.system.snapshot().find(path)
    assert snapshot is not None, path
    return snapshot.restarts


async def rows_of(
    sz: ScheduleZero, handles: list[JobHandle]
) -> dict[str, list[Attempt]]:
    rows = {handle.id: await sz.history(job_id=handle.id) for handle in handles}
    return {
        job_id: sorted(found, key=lambda r: r.attempt) for job_id, found in rows.items()
    }


async def test_a_dispatcher_killed_again_and_again_lets_its_running_jobs_finish() -> (
    None
):
    gated = Gated()
    sz = gated.sz
    async with sz:
        handles = [
            await sz.submit("work", args={"key": key}) for key in range(IN_FLIGHT)
        ]
        await wait_until(lambda: running(sz, IN_FLIGHT), timeout=10)
        await kill_again_and_again(sz, "/user/dispatcher", MANY)
        gated.gate.set()
        for handle in handles:
            assert await handle.result(timeout=10) in range(IN_FLIGHT)
        after = await sz.run_now("work", args={"key": 99}, timeout=10)
        rows = await rows_of(sz, handles)

        assert after == 99
        assert restarts_of(sz, "/user/dispatcher") >= MANY
    # Its state outlived every instance: each job ran once, on its first attempt.
    assert gated.completed == Counter(dict.fromkeys([*range(IN_FLIGHT), 99], 1))
    for job_rows in rows.values():
        assert [(r.attempt, r.outcome, r.final) for r in job_rows] == [
            (1, "success", True)
        ]


async def test_a_history_killed_again_and_again_keeps_every_row() -> None:
    gated = Gated()
    sz = gated.sz
    async with sz:
        done = [
            await sz.submit("work", args={"key": key}) for key in range(100, 100 + 20)
        ]
        gated.gate.set()
        for handle in done:
            await handle.result(timeout=10)
        gated.gate = anyio.Event()
        handles = [
            await sz.submit("work", args={"key": key}) for key in range(IN_FLIGHT)
        ]
        await wait_until(lambda: running(sz, IN_FLIGHT), timeout=10)
        await kill_again_and_again(sz, "/user/history", MANY)
        gated.gate.set()
        for handle in handles:
            await handle.result(timeout=10)
        rows = await rows_of(sz, done + handles)

        assert restarts_of(sz, "/user/history") >= MANY
    # Rows written before the kills and rows of the jobs that ran through them.
    assert len(rows) == 20 + IN_FLIGHT
    for job_rows in rows.values():
        assert [(r.attempt, r.outcome, r.final) for r in job_rows] == [
            (1, "success", True)
        ]


@pytest.mark.parametrize("path", ["/user/handlers/work", "/user/handlers"])
async def test_a_handler_killed_again_and_again_retries_then_abandons_its_jobs(
    path: str,
) -> None:
    gated = Gated()
    sz = gated.sz
    async with sz:
        handles = [
            await sz.submit("work", args={"key": key}) for key in range(IN_FLIGHT)
        ]
        await wait_until(lambda: running(sz, IN_FLIGHT), timeout=10)
        # Each kill cuts the running attempts short: they are lost, and tried
        # again at once on the handler's next incarnation.
        await kill_again_and_again(sz, path, MANY)
        gated.gate.set()
        for handle in handles:
            with contextlib.suppress(JobFailed):  # abandoned: asserted below
                await handle.result(timeout=10)
        after = await sz.run_now("work", args={"key": 99}, timeout=10)
        rows = await rows_of(sz, handles)

        assert after == 99
        assert restarts_of(sz, path) >= MANY
    for key, job_rows in zip(range(IN_FLIGHT), rows.values(), strict=True):
        # Exactly one final row, the last; attempts numbered from 1.
        assert [r.final for r in job_rows] == [False] * (len(job_rows) - 1) + [True]
        assert [r.attempt for r in job_rows] == list(range(1, len(job_rows) + 1))
        for lost in job_rows[:-1]:
            assert (lost.outcome, lost.reason) == ("abandoned", "retry_after_crash")
        final = job_rows[-1]
        if final.outcome == "success":
            assert gated.completed[key] == 1
        else:
            # Lost with its handler once more than a lost job is retried.
            assert final.outcome == "abandoned"
            assert len(job_rows) == 1 + LOST_JOB_RETRIES
            assert gated.completed[key] == 0
    # Every running job was lost on the first kill, and most on every kill.
    assert all(len(job_rows) > 1 for job_rows in rows.values())
    assert gated.completed[99] == 1
