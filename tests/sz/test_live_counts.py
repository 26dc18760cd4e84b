"""``sz.live_counts()``: live jobs and handlers, read without asking the dispatcher."""

from __future__ import annotations

import anyio
import pytest

from actors import Backoff
from actors.testing import wait_until
from sz import HealthPolicy, JobFailed, LiveCounts, ScheduleZero, SzError


def counted(jobs_states: list[str], attempts: list[int | None]) -> dict[str, int]:
    return {
        "held": jobs_states.count("held"),
        "waiting": jobs_states.count("waiting"),
        "running": jobs_states.count("running"),
        "retrying": sum((attempt or 1) > 1 for attempt in attempts),
    }


async def test_live_counts_are_what_jobs_and_handlers_say() -> None:
    sz = ScheduleZero()
    gate = anyio.Event()
    calls = {"retried": 0}

    @sz.handler(concurrency=1)
    async def gated() -> None:
        await gate.wait()

    # Its retry waits out a backoff far longer than the test: held meanwhile.
    @sz.handler(retries=1, retry_backoff=Backoff(min=600, max=600, jitter=0.0))
    async def retried() -> None:
        calls["retried"] += 1
        raise RuntimeError("the first attempt fails")

    @sz.handler
    async def broken() -> None:
        raise RuntimeError("always")

    async with sz:
        assert sz.live_counts() == LiveCounts(
            held=0, waiting=0, running=0, retrying=0, handlers=3, handlers_up=3
        )
        # Enough failures to open the circuit of the default health policy.
        for _ in range(HealthPolicy().min_samples):
            with pytest.raises(JobFailed):
                await sz.run_now("broken")
        gated_jobs = [await sz.submit("gated") for _ in range(3)]
        await sz.submit("retried")

        async def settled() -> bool:
            jobs = await sz.jobs()
            return sorted(job.state for job in jobs) == [
                "held",
                "running",
                "waiting",
                "waiting",
            ]

        await wait_until(settled)
        live = sz.live_counts()
        jobs = await sz.jobs()
        handlers = await sz.handlers()
        gate.set()
        for handle in gated_jobs:
            await handle.result(timeout=10)
        assert sz.live_counts().running == 0
    assert live == LiveCounts(
        held=1, waiting=2, running=1, retrying=1, handlers=3, handlers_up=2
    )
    assert counted([j.state for j in jobs], [j.attempt for j in jobs]) == {
        "held": live.held,
        "waiting": live.waiting,
        "running": live.running,
        "retrying": live.retrying,
    }
    assert len(handlers) == live.handlers
    assert [h.name for h in handlers if h.health.state == "unhealthy"] == ["broken"]
    assert calls["retried"] == 1


async def test_live_counts_refuse_a_scheduler_not_running() -> None:
    sz = ScheduleZero()
    with pytest.raises(SzError, match="not running"):
        sz.live_counts()
    async with sz:
        sz.live_counts()
    with pytest.raises(SzError, match="not running"):
        sz.live_counts()
