"""The sampler: ``jobs_per_sec`` over the trailing second, and fresh samples.

``jobs_per_sec`` counts jobs ended over the trailing second, divided by the time
it spans. A fresh sample is one whose figures were all read after the wait for
it began (what ``wait_until`` judges a step's effect on).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import anyio
import pytest

from actors.testing import wait_until
from sz import Overloaded, ScheduleZero
from sz.config import BackpressureConfig, Config, GovernorsConfig
from sz.scenarios.record import RunRecord
from sz.scenarios.sampler import RATE_WINDOW, Sampler, trailing_rate


def test_a_second_of_samples_on_time_gives_the_jobs_of_that_second() -> None:
    finished = [(0.0, 0.0), (0.5, 100.0), (1.0, 200.0), (1.2, 260.0)]
    assert trailing_rate(finished) == pytest.approx((260.0 - 0.0) / 1.2)
    assert trailing_rate(finished[:3]) == pytest.approx(200.0)


def test_a_burst_in_the_runs_first_moments_counts_over_a_whole_second() -> None:
    # A limiter of 200 jobs a second with a burst of 50 lets 90 jobs end in
    # the run's first 0.2 s: 90 jobs ended in the second before that sample
    # (none of the run's ended before it began), not 450 a second.
    finished = [(0.0, 0.0), (0.2, 90.0), (0.4, 130.0)]
    assert trailing_rate(finished[:2]) == pytest.approx(90.0 / RATE_WINDOW)
    assert trailing_rate(finished) == pytest.approx(130.0 / RATE_WINDOW)


def test_the_window_starts_at_the_runs_first_sample_not_at_zero() -> None:
    # The base is the count at the run's first sample (the scheduler's
    # counters before the run are not the run's).
    finished = [(0.1, 0.0), (0.3, 40.0)]
    assert trailing_rate(finished) == pytest.approx(40.0 / RATE_WINDOW)


def test_late_samples_divide_by_the_time_the_window_truly_spans() -> None:
    # The loop stalled: no sample from 1.0 s to 2.6 s. The 320 jobs that
    # ended meanwhile are spread over the 1.6 s they took, not counted as one
    # second's.
    finished = [(0.0, 0.0), (0.8, 160.0), (1.0, 200.0), (2.6, 520.0)]
    assert trailing_rate(finished) == pytest.approx(320.0 / 1.6)


def test_the_window_reaches_back_to_the_latest_sample_a_second_old() -> None:
    finished = [(0.0, 0.0), (0.9, 50.0), (1.1, 60.0), (1.3, 70.0), (2.2, 250.0)]
    # 1.1 s back is the latest sample at least a second before 2.2 s.
    assert trailing_rate(finished) == pytest.approx((250.0 - 60.0) / 1.1)


@pytest.mark.anyio
async def test_a_fresh_sample_holds_no_figure_read_before_the_wait_began() -> None:
    # Caught mid-sample: it has read jobs_pending and is reading /proc in a
    # thread. That sample, complete, is the next one, but its jobs_pending
    # predates the wait (a step that just submitted jobs is not in it); the
    # fresh one is the sample after.
    record = RunRecord(datetime.now(UTC))
    async with ScheduleZero() as sz, anyio.create_task_group() as group:
        sampler = Sampler(sz, record)
        group.start_soon(sampler.run)
        for _ in range(3):
            await sampler.wait_sample()
            await wait_until(
                lambda: (
                    len(record.samples["jobs_pending"])
                    > len(record.samples["memory_usage"])
                ),
                interval=0,
                timeout=10,
            )
            asked = record.offset()
            await sampler.wait_fresh_sample()
            assert record.samples["jobs_pending"][-1][0] > asked
            assert len(record.samples["memory_usage"]) == len(
                record.samples["jobs_pending"]
            )
        group.cancel_scope.cancel()


@pytest.mark.anyio
async def test_jobs_refused_after_acceptance_are_not_counted_as_jobs_ended() -> None:
    # Backpressure at 2 waiting jobs: of a burst to a handler held shut, the
    # excess ends ``rejected`` (refused, as at submit), which is not throughput.
    backpressure = BackpressureConfig(enabled=True, high_water=2, low_water=1)
    sz = ScheduleZero(
        config=Config(governors=GovernorsConfig(backpressure=backpressure))
    )
    gate = anyio.Event()

    @sz.handler
    async def held() -> None:
        await gate.wait()

    record = RunRecord(datetime.now(UTC))
    async with sz:
        sampler = Sampler(sz, record)
        await sampler.sample()
        handles = []
        for _ in range(10):
            with contextlib.suppress(Overloaded):
                handles.append(await sz.submit("held"))
        await wait_until(lambda: sum(h.done for h in handles) > 0, timeout=10)
        gate.set()
        for handle in handles:
            with contextlib.suppress(Overloaded):
                await handle.result(timeout=10)
        await sampler.sample()
    ended = sz.metrics().jobs
    rejected = ended.get(("held", "rejected"), 0)
    assert rejected > 0
    assert record.samples["finished"][-1][1] == ended[("held", "success")]
