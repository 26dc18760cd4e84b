"""Jobs taken up after a restart honour their schedule's misfire grace and coalescing.

Each test leaves in a real SQLite file what a killed process leaves: a schedule,
and jobs of it accepted and never finished, hours late by the next start. The
schedule is added by a ScheduleZero; the jobs are written as accepted through
the store's own history backend, at the fire times the test picks (a process
would have to run for hours to leave them). Fires that came due while the
process was down come from an interval trigger started hours ago: its schedule
is added paused, then resumed from where it left off by APScheduler on the
store, without its schedule loop, as a process killed at once would leave it.
Then a ScheduleZero starts on the file and the test counts runs and rows.
Nothing sleeps: each wait polls a condition under a deadline.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
from apscheduler import AsyncScheduler, SchedulerRole
from apscheduler.triggers.interval import IntervalTrigger

from actors.testing import wait_until
from sz import ScheduleZero
from sz.jobs import Job, new_job_id
from sz.store import ScheduleStore, SqliteFile
from sz.store.history import FileHistory

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from sz.jobs import Attempt

#: Seconds any one wait may take before the test fails (far above what it needs).
PATIENCE = 15.0

HOUR = timedelta(hours=1)

#: The summary of a schedule whose taken-up jobs were not all run again.
SUMMARY = "schedule s: {} jobs taken up after restart: {}"


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def ticking(db: Path) -> tuple[ScheduleZero, Counter[str]]:
    """A scheduler on ``db`` whose ``tick(key)`` handler counts its calls by key."""
    sz = ScheduleZero(store=url(db))
    calls: Counter[str] = Counter()

    @sz.handler
    async def tick(key: str) -> None:
        calls[key] += 1

    return sz, calls


async def leave_schedule(
    db: Path,
    *,
    coalesce: str,
    grace: float | None = None,
    downtime: bool = False,
    start: datetime | None = None,
) -> datetime:
    """Leave schedule ``s`` of ``tick("s")`` in ``db``, hourly; its first fire time.

    Without ``downtime``, its first fire is half an hour away. With it, the
    first fire was ``start`` (4.5 hours ago by default), and every fire since
    is due at the next start: the schedule is stored with that first fire as
    its next, as a process killed just after it was added leaves it.
    """
    now = datetime.now(UTC)
    first = start or (now - 4.5 * HOUR if downtime else now + HOUR / 2)
    sz, _ = ticking(db)
    async with sz:
        # Paused while this process runs, or its overdue fires would run here.
        await sz.schedule(
            "tick",
            IntervalTrigger(hours=1, start_time=first),
            id="s",
            args=["s"],
            coalesce=coalesce,
            misfire_grace_time=grace,
            paused=downtime,
        )
    if downtime:
        file = SqliteFile(db)
        await file.open()
        try:
            async with AsyncScheduler(
                data_store=ScheduleStore(file=file), role=SchedulerRole.scheduler
            ) as scheduler:
                await scheduler.unpause_schedule("s")  # from where it left off
        finally:
            await file.close()
    return first


async def leave_unfinished(
    db: Path, times: list[datetime], *, schedule_id: str | None = "s"
) -> list[str]:
    """Leave in ``db`` a job of ``tick`` accepted, never finished, at each time.

    As the store accepts a fire: the job and its fire taken, in one commit.
    Returns the jobs' ids, in the order of ``times``.
    """
    file = SqliteFile(db)
    await file.open()
    try:
        backend = FileHistory(file)
        ids: list[str] = []
        for when in times:
            job = Job(
                task="tick",
                scheduled_at=when,
                id=new_job_id(),
                args=(schedule_id or "now",),
                schedule_id=schedule_id,
            )
            backend.accept(job, lambda: None, when)
            ids.append(job.id)
        await backend.flush()
    finally:
        await file.close()
    return ids


async def finals(sz: ScheduleZero, count: int) -> list[Attempt]:
    """Wait until ``count`` jobs have a final row; return every row, oldest first."""

    async def ended() -> bool:
        return len(await sz.history(final=True, limit=10_000)) >= count

    await wait_until(ended, timeout=PATIENCE)
    return list(reversed(await sz.history(limit=10_000)))


async def next_fire_is(sz: ScheduleZero, when: datetime) -> None:
    """Wait until schedule ``s`` says its next fire is ``when``."""

    async def there() -> bool:
        return (await sz.get_schedule("s")).next_fire_time == when

    await wait_until(there, timeout=PATIENCE)


def rows_by_job(rows: list[Attempt]) -> dict[str, list[tuple[object, ...]]]:
    """Each job's rows as (attempt, outcome, final, reason), oldest first."""
    found: dict[str, list[tuple[object, ...]]] = {}
    for row in rows:
        found.setdefault(row.job_id, []).append(
            (row.attempt, row.outcome, row.final, row.reason)
        )
    return found


def _ledger(db: Path) -> tuple[int, dict[str, int]]:
    connection = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        accepted = connection.execute("SELECT count(*) FROM jobs").fetchone()[0]
        finals = dict(
            connection.execute(
                "SELECT job_id, sum(final) FROM history GROUP BY job_id"
            ).fetchall()
        )
    finally:
        connection.close()
    return accepted, finals


async def assert_one_final_row_each(db: Path) -> None:
    """Nothing is left accepted, and every job has exactly one final row."""
    accepted, finals = await anyio.to_thread.run_sync(_ledger, db)
    assert accepted == 0
    assert finals, "no job recorded"
    assert set(finals.values()) == {1}, finals


RETRIED = [
    (1, "abandoned", False, "retry_after_restart"),
    (2, "success", True, None),
]


# --------------------------------------------------------------- misfire grace


async def test_a_job_taken_up_past_its_misfire_grace_is_missed_and_never_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "sz.db"
    await leave_schedule(db, coalesce="all", grace=60)
    now = datetime.now(UTC)
    late, fresh = await leave_unfinished(
        db, [now - 2 * HOUR, now - timedelta(seconds=1)]
    )

    sz, calls = ticking(db)
    with caplog.at_level(logging.WARNING, logger="sz.scheduler"):
        async with sz:
            rows = await finals(sz, 2)
    by_job = rows_by_job(rows)
    assert by_job[late] == [(1, "missed", True, "misfire_grace_time")]
    [missed] = [row for row in rows if row.job_id == late]
    assert (missed.handler, missed.started_at) == (None, None)
    # Within its grace: taken up and run again, as before.
    assert by_job[fresh] == RETRIED
    assert calls == {"s": 1}
    assert SUMMARY.format(2, "1 missed, 1 retried") in caplog.text
    await assert_one_final_row_each(db)


async def test_jobs_taken_up_within_their_misfire_grace_run_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "sz.db"
    await leave_schedule(db, coalesce="all", grace=3 * 3600)
    now = datetime.now(UTC)
    ids = await leave_unfinished(db, [now - 2 * HOUR, now - HOUR])

    sz, calls = ticking(db)
    with caplog.at_level(logging.WARNING, logger="sz.scheduler"):
        async with sz:
            rows = await finals(sz, 2)
    assert all(rows_by_job(rows)[job] == RETRIED for job in ids)
    # When the interrupted attempts began was never stored: their rows say it is
    # unknown, not that they ran 0 ms at the restart.
    interrupted = [row for row in rows if row.outcome == "abandoned"]
    assert len(interrupted) == 2
    assert {(row.started_at, row.duration) for row in interrupted} == {(None, None)}
    assert calls == {"s": 2}
    # Nothing skipped: no summary.
    assert "taken up after restart" not in caplog.text
    await assert_one_final_row_each(db)


# ------------------------------------------------------------------- coalesce


async def test_latest_runs_only_the_latest_job_taken_up_and_coalesces_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "sz.db"
    await leave_schedule(db, coalesce="latest")
    now = datetime.now(UTC)
    # Left in the file out of their order: the verdict goes by fire time.
    middle, oldest, newest = await leave_unfinished(
        db, [now - 2 * HOUR, now - 3 * HOUR, now - HOUR]
    )

    sz, calls = ticking(db)
    with caplog.at_level(logging.WARNING, logger="sz.scheduler"):
        async with sz:
            rows = await finals(sz, 3)
    by_job = rows_by_job(rows)
    assert by_job[newest] == RETRIED
    for job in (oldest, middle):
        assert by_job[job] == [(1, "coalesced", True, "coalesce_latest")]
    assert calls == {"s": 1}
    assert SUMMARY.format(3, "2 coalesced, 1 retried") in caplog.text
    await assert_one_final_row_each(db)


async def test_latest_with_fires_due_from_the_downtime_runs_one_job_overall(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sz.db"
    first = await leave_schedule(db, coalesce="latest", downtime=True)
    # The first two fires were taken before the process died; three more came
    # due while it was down (the file still says the first fire is next).
    fires = [first + k * HOUR for k in range(5)]
    taken = await leave_unfinished(db, fires[:2])

    sz, calls = ticking(db)
    async with sz:
        rows = await finals(sz, 5)
    by_job = rows_by_job(rows)
    for job in taken:
        assert by_job[job] == [(1, "coalesced", True, "coalesce_latest")]
    downtime = {row.scheduled_at: row for row in rows if row.job_id not in taken}
    assert sorted(downtime) == fires[2:]
    assert [downtime[when].outcome for when in fires[2:]] == [
        "coalesced",
        "coalesced",
        "success",
    ]
    assert calls == {"s": 1}
    assert len(rows_by_job(rows)) == 5
    await assert_one_final_row_each(db)


async def test_earliest_runs_the_earliest_job_taken_up_and_folds_the_downtime_fires(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "sz.db"
    first = await leave_schedule(db, coalesce="earliest", downtime=True)
    fires = [first + k * HOUR for k in range(5)]
    earliest, later = await leave_unfinished(db, fires[:2])

    sz, calls = ticking(db)
    with caplog.at_level(logging.WARNING, logger="sz.scheduler"):
        async with sz:
            rows = await finals(sz, 5)
            # The schedule carries on: its next fire is the first after the restart.
            await next_fire_is(sz, first + 5 * HOUR)
    by_job = rows_by_job(rows)
    assert by_job[earliest] == RETRIED
    assert by_job[later] == [(1, "coalesced", True, "coalesce_earliest")]
    downtime = [row for row in rows if row.job_id not in (earliest, later)]
    assert sorted(row.scheduled_at for row in downtime) == fires[2:]
    for row in downtime:
        assert (row.attempt, row.outcome, row.final, row.reason) == (
            1,
            "coalesced",
            True,
            "coalesce_earliest",
        )
    assert calls == {"s": 1}
    assert SUMMARY.format(2, "1 coalesced, 1 retried") in caplog.text
    await assert_one_final_row_each(db)


async def test_earliest_without_downtime_fires_runs_only_the_earliest_job(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sz.db"
    await leave_schedule(db, coalesce="earliest")
    now = datetime.now(UTC)
    earliest, later = await leave_unfinished(db, [now - 2 * HOUR, now - HOUR])

    sz, calls = ticking(db)
    async with sz:
        rows = await finals(sz, 2)
    by_job = rows_by_job(rows)
    assert by_job[earliest] == RETRIED
    assert by_job[later] == [(1, "coalesced", True, "coalesce_earliest")]
    assert calls == {"s": 1}
    await assert_one_final_row_each(db)


async def test_all_runs_every_job_taken_up_and_every_downtime_fire(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sz.db"
    first = await leave_schedule(db, coalesce="all", downtime=True)
    fires = [first + k * HOUR for k in range(5)]
    taken = await leave_unfinished(db, fires[:2])

    sz, calls = ticking(db)
    async with sz:
        rows = await finals(sz, 5)
    by_job = rows_by_job(rows)
    assert all(by_job[job] == RETRIED for job in taken)
    assert [row.outcome for row in rows if row.job_id not in taken] == ["success"] * 3
    assert calls == {"s": 5}
    await assert_one_final_row_each(db)


async def test_latest_keeps_its_job_when_every_due_fire_was_taken_before_the_crash(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sz.db"
    # The file says the fire 1.5 hours ago is next, but both fires due since
    # were taken (their jobs are left unfinished): no later fire will run, so
    # the latest job taken up must.
    now = datetime.now(UTC)
    first = await leave_schedule(
        db, coalesce="latest", downtime=True, start=now - 1.5 * HOUR
    )
    older, newer = await leave_unfinished(db, [first, first + HOUR])

    sz, calls = ticking(db)
    async with sz:
        rows = await finals(sz, 2)
        await next_fire_is(sz, first + 2 * HOUR)
    by_job = rows_by_job(rows)
    assert by_job[newer] == RETRIED
    assert by_job[older] == [(1, "coalesced", True, "coalesce_latest")]
    assert calls == {"s": 1}
    await assert_one_final_row_each(db)


# ------------------------------------------------------- jobs of no schedule


async def test_run_now_jobs_and_jobs_of_a_removed_schedule_are_taken_up_as_before(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sz.db"
    await leave_schedule(db, coalesce="latest", grace=60)
    now = datetime.now(UTC)
    # Hours late and many: no schedule's grace or policy applies to them.
    run_now = await leave_unfinished(
        db, [now - 3 * HOUR, now - 2 * HOUR], schedule_id=None
    )
    orphans = await leave_unfinished(
        db, [now - 3 * HOUR, now - 2 * HOUR], schedule_id="gone"
    )

    sz, calls = ticking(db)
    async with sz:
        rows = await finals(sz, 4)
    by_job = rows_by_job(rows)
    assert all(by_job[job] == RETRIED for job in [*run_now, *orphans])
    assert calls == {"now": 2, "gone": 2}
    await assert_one_final_row_each(db)
