"""``drain``: a stop that lets running jobs end, and frees whoever waits on the rest."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors.testing import wait_until
from sz import RunningJob, ScheduleZero, SzError

if TYPE_CHECKING:
    from pathlib import Path


class Gate:
    """What a handler waits on: the test lets it through, and sees it start."""

    def __init__(self) -> None:
        self.started = 0
        self.open = anyio.Event()

    async def pass_through(self) -> str:
        self.started += 1
        await self.open.wait()
        return "done"


def gated(url: str, gate: Gate, *, concurrency: int = 4) -> ScheduleZero:
    sz = ScheduleZero(store=url)
    sz.handler(gate.pass_through, name="slow", concurrency=concurrency)
    return sz


async def test_drain_lets_a_running_job_end_and_its_caller_gets_the_result() -> None:
    gate = Gate()
    sz = gated("memory", gate)
    results: list[Any] = []
    async with sz, anyio.create_task_group() as tg:

        async def call() -> None:
            results.append(await sz.run_now("slow"))

        tg.start_soon(call)
        await wait_until(lambda: gate.started == 1)
        drained: list[list[RunningJob]] = []

        async def drain() -> None:
            drained.append(await sz.drain(30))

        tg.start_soon(drain)
        # Draining now: no new job is taken.
        await wait_until(lambda: sz._draining)
        with pytest.raises(SzError, match="stopping"):
            await sz.run_now("slow")
        gate.open.set()
    assert results == ["done"]
    assert drained == [[]]


async def test_drain_stops_the_fires() -> None:
    gate = Gate()
    gate.open.set()
    sz = gated("memory", gate)
    async with sz:
        await sz.schedule("slow", "interval", seconds=0.05, id="often")
        await wait_until(lambda: gate.started >= 2)
        await sz.drain(5)
        scheduler = sz._bridge._scheduler
        assert scheduler is not None
        await wait_until(lambda: scheduler.state.name == "stopped")
        before = gate.started
        # Still readable and changeable while stopped: only fires have ended.
        assert [s.id for s in await sz.schedules()] == ["often"]
    assert gate.started == before


async def test_drain_gives_up_at_its_deadline_and_names_the_jobs_still_running(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    gate = Gate()
    sz = gated(url, gate)
    # The callers outlive the scheduler: its stop frees them.
    async with anyio.create_task_group() as tg, sz:
        failures: list[BaseException] = []

        async def call() -> None:
            try:
                await sz.run_now("slow")
            except SzError as error:
                failures.append(error)

        tg.start_soon(call)
        await wait_until(lambda: gate.started == 1)
        running = await sz.drain(0.1)
        assert [(r.job.task, r.attempt, r.handler) for r in running] == [
            ("slow", 1, "slow")
        ]
        job_id = running[0].job.id
    # The caller was freed by the stop, not left waiting for ever.
    assert len(failures) == 1
    assert "stopped before job" in str(failures[0])
    assert "next start takes it up" in str(failures[0])
    # The abandoned job was accepted: the next start runs it again.
    again_gate = Gate()
    again_gate.open.set()
    again = gated(url, again_gate)
    async with again:
        await wait_until(lambda: again_gate.started == 1)

        async def ended() -> bool:
            rows = await again.history(job_id=job_id)
            return any(row.final for row in rows)

        await wait_until(ended, timeout=10)
        rows = await again.history(job_id=job_id)
    assert sorted((row.outcome, row.reason, row.final) for row in rows) == [
        ("abandoned", "retry_after_restart", False),
        ("success", None, True),
    ]


async def test_jobs_that_had_not_started_wait_for_the_next_start(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    gate = Gate()
    sz = gated(url, gate, concurrency=1)
    # The callers outlive the scheduler: its stop frees them.
    async with anyio.create_task_group() as tg, sz:
        outcomes: list[str] = []

        async def call() -> None:
            try:
                outcomes.append(await sz.run_now("slow"))
            except SzError as error:
                outcomes.append(str(error))

        tg.start_soon(call)
        await wait_until(lambda: gate.started == 1)
        tg.start_soon(call)  # waits behind the first: concurrency 1
        await wait_until(lambda: len(sz._state.waiting_task) == 1)  # type: ignore[union-attr]

        async def open_soon() -> None:
            await wait_until(lambda: sz._draining)
            gate.open.set()

        tg.start_soon(open_soon)
        assert await sz.drain(30) == []
        # The first ended within the drain; the second never started.
        assert gate.started == 1
    assert outcomes[0] == "done"
    assert "stopped before job" in outcomes[1]
    again_gate = Gate()
    again_gate.open.set()
    async with gated(url, again_gate) as again:
        await wait_until(lambda: again_gate.started == 1)
        await again.handlers()
    assert gate.started == 1


async def test_a_retry_due_while_draining_is_not_sent() -> None:
    gate = Gate()
    sz = ScheduleZero()

    @sz.handler(retries=3)
    async def flaky() -> None:
        await gate.pass_through()
        raise RuntimeError("boom")

    # The callers outlive the scheduler: its stop frees them.
    async with anyio.create_task_group() as tg, sz:
        failures: list[BaseException] = []

        async def call() -> None:
            try:
                await sz.run_now("flaky")
            except SzError as error:
                failures.append(error)

        async def fail_once_draining() -> None:
            await wait_until(lambda: sz._draining)
            gate.open.set()

        tg.start_soon(call)
        await wait_until(lambda: gate.started == 1)
        tg.start_soon(fail_once_draining)
        # The attempt fails while draining: its retry is due, and is not sent.
        assert await sz.drain(30) == []
        rows = await sz.history()
    assert gate.started == 1
    assert [(row.outcome, row.final) for row in rows] == [("failure", False)]
    assert len(failures) == 1
    assert "on the memory store it is lost" in str(failures[0])


@pytest.mark.parametrize("seconds", [-1, math.inf, math.nan, 3601, "5", True])
async def test_a_bad_drain_timeout_is_refused(seconds: Any) -> None:
    async with gated("memory", Gate()) as sz:
        with pytest.raises(SzError, match="drain timeout"):
            await sz.drain(seconds)


async def test_drain_needs_a_running_scheduler() -> None:
    with pytest.raises(SzError, match="not running"):
        await gated("memory", Gate()).drain(1)
