"""Hold-back: a task's schedules pause while no handler takes its jobs.

They resume by themselves when a handler serves again (or at the next start),
and each fire that fell meanwhile gets a final ``skipped`` row with the reason
``no_healthy_handler``: no fire is skipped without a trace. A schedule paused on
request records nothing. The handler's circuit opens for real (the default
health policy: 50 failures), so each test takes a few seconds.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio

import sz.bridge
from actors.testing import wait_until
from sz import ScheduleZero
from sz.store.sqlite import to_micros

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import pytest

    from sz.jobs import Attempt

#: The schedules' interval: the fires that fall while one is held back.
INTERVAL = timedelta(seconds=0.05)

#: Seconds any one wait may take before it fails the test.
DEADLINE = 20.0


def fire_times(first: datetime, last: datetime) -> list[datetime]:
    """An interval schedule's fire times from ``first`` to ``last``."""
    return [first + k * INTERVAL for k in range(round((last - first) / INTERVAL) + 1)]


async def every_fire_recorded(sz: ScheduleZero, schedule_id: str) -> list[Attempt]:
    """Wait until each fire up to the latest skipped has exactly one final row.

    Returns the schedule's final rows then. The fires are those of the trigger,
    from the first recorded: a fire without a row, or with two, never passes.
    """
    rows: list[Attempt] = []

    async def complete() -> bool:
        nonlocal rows
        rows = await sz.history(schedule_id=schedule_id, final=True, limit=100_000)
        skipped = [row.scheduled_at for row in rows if row.outcome == "skipped"]
        if not skipped:
            return False
        first, last = min(row.scheduled_at for row in rows), max(skipped)
        recorded = Counter(row.scheduled_at for row in rows if row.scheduled_at <= last)
        return recorded == Counter(fire_times(first, last))

    await wait_until(
        complete,
        timeout=DEADLINE,
        interval=0.05,
        message=f"every fire of {schedule_id} has one final row",
    )
    assert len({row.job_id for row in rows}) == len(rows), "one final row per job"
    return rows


def fell_behind(held: datetime) -> Callable[[], bool]:
    """Whether a few fires fell since ``held``, a held-back schedule's next fire.

    What the tests wait for before a hold-back ends (fires fall as time passes,
    so the wait is as long as they take), so that there are fires to record.
    """
    return lambda: datetime.now(UTC) - held > 3 * INTERVAL


def skipped_of(rows: list[Attempt]) -> list[Attempt]:
    """The ``skipped`` rows, oldest fire first, checked for what each says."""
    skipped = sorted(
        (row for row in rows if row.outcome == "skipped"),
        key=lambda row: row.scheduled_at,
    )
    for row in skipped:
        assert (row.reason, row.final, row.attempt, row.handler) == (
            "no_healthy_handler",
            True,
            1,
            None,
        )
        assert (row.started_at, row.duration, row.error) == (None, None, None)
        assert row.finished_at >= row.scheduled_at
    return skipped


def skip_lines(caplog: pytest.LogCaptureFixture, schedule_id: str) -> list[str]:
    """The lines that sum up the fires a hold-back of ``schedule_id`` skipped."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith(f"schedule {schedule_id}: ")
        and "skipped while no healthy handler" in record.getMessage()
    ]


async def test_a_tasks_schedules_pause_while_no_handler_takes_jobs_then_resume(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sz = ScheduleZero()
    failing = True
    recovered = anyio.Event()

    @sz.handler(name="flaky")
    async def flaky() -> None:
        if failing:
            raise RuntimeError("down")
        recovered.set()

    with caplog.at_level(logging.INFO, logger="sz.scheduler"):
        async with sz:
            await sz.schedule("flaky", "interval", seconds=0.05, id="often")
            await sz.schedule("flaky", "interval", seconds=0.05, id="asked")
            await sz.schedule("flaky", "interval", seconds=0.05, id="mine", paused=True)

            async def held_back() -> bool:
                return (await sz.get_schedule("often")).paused_reason is not None

            await wait_until(held_back, timeout=10, interval=0.02)
            often = await sz.get_schedule("often")
            assert often.paused
            assert often.paused_reason == "no_healthy_handler"
            assert (await sz.get_schedule("asked")).paused_reason == (
                "no_healthy_handler"
            )
            assert (await sz.get_schedule("mine")).paused_reason == "requested"
            failing = False

            # Some fires fall while held back (the first not taken is a few
            # intervals past), then "asked" is paused on request: the fires
            # skipped so far get their rows; none after.
            held = (await sz.get_schedule("asked")).next_fire_time
            assert held is not None
            await wait_until(fell_behind(held), timeout=10, interval=0.02)
            await sz.pause("asked")
            asked_at = datetime.now(UTC)
            asked = await sz.get_schedule("asked")
            assert (asked.paused, asked.paused_reason) == (True, "requested")

            # Past the circuit's cool-down the handler takes a trial job: the
            # schedule resumes by itself, and its next fire is that trial.
            with anyio.fail_after(20):
                await recovered.wait()
            often = await sz.get_schedule("often")
            assert not often.paused
            assert often.paused_reason is None
            mine = await sz.get_schedule("mine")
            assert mine.paused, "a schedule paused on request must stay paused"
            assert mine.paused_reason == "requested"
            asked = await sz.get_schedule("asked")
            assert (asked.paused, asked.paused_reason) == (True, "requested")
            # The row follows the handler's return: look until it is there.
            rows: list[Attempt] = []

            async def succeeded() -> bool:
                nonlocal rows
                rows = await sz.history(schedule_id="often", final=True, limit=1000)
                return rows[0].outcome == "success"

            await wait_until(succeeded, timeout=10, interval=0.02)
            often_rows = await every_fire_recorded(sz, "often")
            asked_rows = await every_fire_recorded(sz, "asked")
            mine_rows = await sz.history(schedule_id="mine", limit=1000)
    outcomes = {(row.outcome, row.reason) for row in rows}
    # Fires taken ahead when it was held back were cancelled, saying why; none
    # waited for a handler and ended so.
    assert ("cancelled", "no_healthy_handler") in outcomes
    assert "no_healthy_handler" not in {row.outcome for row in rows}

    # Every fire between the hold-back and the resume has its skipped row (the
    # fires are complete, see every_fire_recorded), and one line says how many.
    skipped = skipped_of(often_rows)
    assert len(skipped) >= 3
    assert [row.scheduled_at for row in skipped] == fire_times(
        skipped[0].scheduled_at, skipped[-1].scheduled_at
    )
    [line] = skip_lines(caplog, "often")
    assert line.startswith(
        f"schedule often: {len(skipped)} fires skipped while no healthy handler "
        f"served task flaky (from "
    )
    # Paused on request while held back: rows for the fires until then only.
    asked_skipped = skipped_of(asked_rows)
    assert len(asked_skipped) >= 3
    assert all(row.scheduled_at < asked_at for row in asked_skipped)
    assert len(skip_lines(caplog, "asked")) == 1
    # Paused on request from the start: nothing skipped, nothing recorded.
    assert mine_rows == []
    assert skip_lines(caplog, "mine") == []


async def hold_back_and_stop(store: str) -> datetime:
    """Run until schedule ``often`` of ``flaky`` is held back, then stop.

    Also leaves schedule ``mine``, paused on request. Returns the first fire of
    ``often`` that was not taken.
    """
    first = ScheduleZero(store=store)

    @first.handler(name="flaky")
    async def failing() -> None:
        raise RuntimeError("down")

    async with first:
        await first.schedule("flaky", "interval", seconds=0.05, id="often")
        await first.schedule("flaky", "interval", seconds=0.05, id="mine", paused=True)

        async def held_back() -> bool:
            return (await first.get_schedule("often")).paused_reason is not None

        await wait_until(held_back, timeout=10, interval=0.02)
        often = await first.get_schedule("often")
        assert often.paused_reason == "no_healthy_handler"
        held = often.next_fire_time
        assert held is not None
        await wait_until(fell_behind(held), timeout=10, interval=0.02)
        return held


async def test_a_schedule_held_back_when_the_process_stopped_resumes_at_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = f"sqlite:///{tmp_path / 'sz.db'}"
    held = await hold_back_and_stop(store)
    second = ScheduleZero(store=store)
    ran = anyio.Event()

    @second.handler(name="flaky")
    async def working() -> None:
        ran.set()

    with caplog.at_level(logging.WARNING, logger="sz.scheduler"):
        async with second:
            started = datetime.now(UTC)
            often = await second.get_schedule("often")
            assert not often.paused
            assert often.paused_reason is None
            mine = await second.get_schedule("mine")
            assert (mine.paused, mine.paused_reason) == (True, "requested")
            with anyio.fail_after(10):
                await ran.wait()
            rows = await every_fire_recorded(second, "often")
            assert await second.history(schedule_id="mine") == []
    # The fires from the hold-back in the first run to the start of the second,
    # the downtime included, each have a skipped row; in the file, so exactly
    # one final row per fire across both runs.
    skipped = skipped_of(rows)
    assert skipped[0].scheduled_at == held
    assert [row.scheduled_at for row in skipped] == fire_times(
        held, skipped[-1].scheduled_at
    )
    assert skipped[-1].scheduled_at < started
    assert len(skip_lines(caplog, "often")) == 1


def _mark_taken(db: Path, schedule_id: str, fire: datetime) -> None:
    connection = sqlite3.connect(db)
    try:
        with connection:
            connection.execute(
                "UPDATE fired SET fire_time = ? WHERE schedule_id = ?",
                (to_micros(fire), schedule_id),
            )
    finally:
        connection.close()


async def test_fires_a_release_cut_short_recorded_are_not_recorded_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sz.db"
    store = f"sqlite:///{db}"
    held = await hold_back_and_stop(store)
    # As a release cut short by a crash leaves the file: its first three rows
    # written, each with its fire marked taken in the same commit (the rows
    # themselves do not matter here), the schedule still held back.
    await anyio.to_thread.run_sync(_mark_taken, db, "often", held + 2 * INTERVAL)
    second = ScheduleZero(store=store)

    @second.handler(name="flaky")
    async def working() -> None:
        pass

    async with second:
        rows = await second.history(schedule_id="often", limit=100_000)
    skipped = skipped_of(rows)
    assert skipped, "the rest of the fires are recorded"
    assert skipped[0].scheduled_at == held + 3 * INTERVAL
    assert [row.scheduled_at for row in skipped] == fire_times(
        skipped[0].scheduled_at, skipped[-1].scheduled_at
    )


async def test_a_release_records_at_most_its_bound_and_says_how_many_more_fell(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'sz.db'}"
    held = await hold_back_and_stop(store)
    monkeypatch.setattr(sz.bridge, "MAX_SKIPPED_ROWS", 3)
    second = ScheduleZero(store=store)

    @second.handler(name="flaky")
    async def working() -> None:
        pass

    with caplog.at_level(logging.WARNING, logger="sz.scheduler"):
        before = datetime.now(UTC)
        async with second:
            started = datetime.now(UTC)
            rows = await second.history(schedule_id="often", limit=100_000)
    # The earliest three; the line counts every fire skipped, and those left out.
    skipped = skipped_of(rows)
    assert [row.scheduled_at for row in skipped] == fire_times(
        held, held + 2 * INTERVAL
    )
    [line] = skip_lines(caplog, "often")
    total = int(line.split(": ")[1].split(" ")[0].replace(",", ""))
    # The fires from the hold-back to the release, which came between these two.
    assert math.ceil((before - held) / INTERVAL) <= total
    assert total <= math.ceil((started - held) / INTERVAL)
    assert line.endswith(
        f"; {total - 3:,} of them not recorded (at most 3 rows per release)"
    )
