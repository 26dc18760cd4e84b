"""The run's record: ``jobs_pending`` counts the run's jobs until each ends."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from actors.testing import wait_until
from sz import JobFailed, ScheduleZero
from sz.scenarios.record import RunRecord

pytestmark = pytest.mark.anyio


async def test_pending_submitted_counts_each_job_until_it_ends() -> None:
    sz = ScheduleZero()
    gate = anyio.Event()

    @sz.handler(concurrency=2)
    async def gated() -> None:
        await gate.wait()

    @sz.handler
    async def broken() -> None:
        raise RuntimeError("fails")

    record = RunRecord(datetime.now(UTC))
    async with sz:
        handles = [await sz.submit("gated") for _ in range(3)]
        # One job id twice: two handles of one job, each counted, each ended.
        handles += [await sz.submit("gated", job_id="twice") for _ in range(2)]
        for handle in handles:
            record.submitted_job(handle)
        assert record.pending_submitted() == 5
        failing = await sz.submit("broken")
        record.submitted_job(failing)
        with pytest.raises(JobFailed):
            await failing.result(timeout=10)
        assert record.pending_submitted() == 5  # a failure is an end too
        gate.set()
        for handle in handles:
            await handle.result(timeout=10)
        await wait_until(lambda: record.pending_submitted() == 0)
        # Ended before it was recorded: not pending.
        ended = await sz.submit("gated")
        await ended.result(timeout=10)
        record.submitted_job(ended)
        assert record.pending_submitted() == 0
        # A handle whose end this process never sees stays pending, as its
        # ``done`` stays false.
        record.submitted_job(sz.job("of-another-process"))
        assert record.pending_submitted() == 1
    assert len(record.submitted_ids()) == 7  # by job id: "twice" once
