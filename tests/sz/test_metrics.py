"""``ScheduleZero.metrics()``: what the scheduler did, counted from its rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from actors.testing import wait_until
from sz import JobFailed, ScheduleZero
from sz.jobs import Attempt
from sz.metrics import BUCKETS, JobMetrics

if TYPE_CHECKING:
    from pathlib import Path


def row(**changes: object) -> Attempt:
    now = datetime.now(UTC)
    fields: dict[str, object] = {
        "job_id": "j",
        "schedule_id": None,
        "task": "t",
        "handler": "t",
        "scheduled_at": now,
        "started_at": now,
        "finished_at": now,
        "duration": 0.003,
        "outcome": "success",
        "error": None,
        "attempt": 1,
        "final": True,
    }
    fields.update(changes)
    return Attempt(**fields)  # type: ignore[arg-type]


def test_rows_are_counted_by_task_and_outcome_and_durations_bucketed() -> None:
    metrics = JobMetrics()
    metrics.record(row())
    metrics.record(row(outcome="failure", final=False))
    metrics.record(row(outcome="failure", attempt=2))
    metrics.record(row(task="u", outcome="skipped", started_at=None, duration=None))
    snapshot = metrics.snapshot()
    assert snapshot.jobs == {
        ("t", "success"): 1,
        ("t", "failure"): 1,
        ("u", "skipped"): 1,
    }
    assert snapshot.attempts[("t", "failure")] == 2
    durations = snapshot.durations["t"]
    assert durations.total == 3
    assert durations.sum == pytest.approx(0.009)
    # 3 ms falls in the bucket bounded by 5 ms.
    assert durations.counts[BUCKETS.index(0.005)] == 3
    assert "u" not in snapshot.durations  # it never ran


def test_a_fires_lateness_and_a_governors_wait_are_observed() -> None:
    metrics = JobMetrics()
    due = datetime.now(UTC)
    metrics.record(
        row(
            schedule_id="s",
            scheduled_at=due,
            started_at=due + timedelta(milliseconds=40),
            waited=0.2,
            reason="rate_limited",
        )
    )
    metrics.record(row(schedule_id="s", attempt=2))  # a retry: not a fire's start
    snapshot = metrics.snapshot()
    assert snapshot.lateness.total == 1
    assert snapshot.lateness.sum == pytest.approx(0.04)
    assert snapshot.waited["rate_limited"].total == 1


@pytest.mark.parametrize("durable", [False, True])
async def test_a_schedulers_metrics_count_its_jobs(
    tmp_path: Path, durable: bool
) -> None:
    sz = ScheduleZero(store=f"sqlite:///{tmp_path}/m.db" if durable else "memory")

    @sz.handler(retries=1)
    async def flaky(fail: bool) -> None:
        if fail:
            raise RuntimeError("no")

    async with sz:
        await sz.run_now("flaky", args=[False])
        with pytest.raises(JobFailed):
            await sz.run_now("flaky", args=[True])
        await wait_until(lambda: sum(sz.metrics().jobs.values()) == 2)
        metrics = sz.metrics()
    assert metrics.jobs == {("flaky", "success"): 1, ("flaky", "failure"): 1}
    assert metrics.attempts[("flaky", "failure")] == 2
    assert metrics.durations["flaky"].total == 3
    assert metrics.loop_lag is None or metrics.loop_lag >= 0.0
