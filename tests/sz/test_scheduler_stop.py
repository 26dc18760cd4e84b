"""A clean stop ends the fires taken ahead of their time with a final row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sz.dispatcher import Submit
from sz.jobs import Job
from sz.scheduler import ScheduleZero

if TYPE_CHECKING:
    from pathlib import Path


def ticking(url: str, calls: list[Any]) -> ScheduleZero:
    sz = ScheduleZero(store=url)

    @sz.handler
    async def tick(*args: Any) -> None:
        calls.append(args)

    return sz


async def test_a_clean_stop_cancels_a_fire_held_ahead_of_its_time(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    calls: list[Any] = []
    job = Job(
        "tick",
        datetime.now(UTC) + timedelta(hours=1),
        schedule_id="later",
    )
    sz = ticking(url, calls)
    async with sz:
        assert sz._dispatcher is not None
        sz._dispatcher.tell(Submit(job=job, hold=True))
        await sz.handlers()  # the dispatcher has taken the submission by now
    again = ticking(url, calls)
    async with again:
        rows = await again.history(job_id=job.id)
        await again.handlers()
    assert [(row.outcome, row.reason, row.final) for row in rows] == [
        ("cancelled", "scheduler_stopped", True)
    ]
    assert calls == []
