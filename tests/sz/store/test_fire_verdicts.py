"""What becomes of each fire: it runs, or it is recorded as coalesced or missed.

ScheduleZero hands APScheduler every fire that came due (``CoalescePolicy.all``)
and applies the schedule's own ``coalesce`` in its store, where what it skips is
recorded. Overdue fires come from interval triggers whose ``start_time`` is in the
past; an ``end_time`` just behind now makes a schedule's fires a known, finite set,
all due in the first round. Every test runs on both stores (``store`` fixture) and
under asyncio and trio (``tests/conftest.py``); nothing sleeps: each wait is for a
condition polled under a deadline.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from apscheduler.triggers.interval import IntervalTrigger

from actors.testing import wait_until
from sz.errors import SzError
from sz.scheduler import ScheduleZero

if TYPE_CHECKING:
    from pathlib import Path

    from sz.jobs import Attempt

#: Seconds any one wait in these tests may take before it fails the test.
DEADLINE = 15.0

SECOND = timedelta(seconds=1)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``store=`` argument of ``ScheduleZero``: memory, or a SQLite file."""
    if request.param == "memory":
        return "memory"
    return "sqlite:///" + str(tmp_path / "sz.db")


def overdue(
    fires: int,
    *,
    interval: timedelta = SECOND,
    newest: timedelta | None = None,
    ahead: int = 0,
) -> tuple[IntervalTrigger, list[datetime]]:
    """A trigger with ``fires`` fire times past, then ``ahead`` more to come.

    The newest past one was ``newest`` ago, half an ``interval`` by default.
    Returns the trigger and all its fire times, oldest first.
    """
    age = interval / 2 if newest is None else newest
    start = datetime.now(UTC) - age - (fires - 1) * interval
    times = [start + k * interval for k in range(fires + ahead)]
    end = times[-1] + interval / 10
    return IntervalTrigger(
        seconds=interval.total_seconds(), start_time=start, end_time=end
    ), times


#: Fire times apart, and the age of the newest, for tests of a second's grace:
#: the newest is 0.9 s within it, the one before 0.3 s past it.
APART, NEWEST = timedelta(seconds=1.2), timedelta(seconds=0.1)


def ticking(store: str) -> tuple[ScheduleZero, Counter[Any]]:
    """A scheduler with one handler, ``tick(key)``, that counts its calls by key."""
    sz = ScheduleZero(store=store)
    calls: Counter[Any] = Counter()

    @sz.handler
    async def tick(key: Any) -> None:
        calls[key] += 1

    return sz, calls


async def finals_of(sz: ScheduleZero, schedule_id: str, count: int) -> list[Attempt]:
    """Wait until ``schedule_id`` has ``count`` final rows; return all its rows."""

    async def ended() -> bool:
        rows = await sz.history(schedule_id=schedule_id, final=True, limit=10_000)
        return len(rows) >= count

    await wait_until(ended, timeout=DEADLINE)
    return await sz.history(schedule_id=schedule_id, limit=10_000)


def check_skipped(row: Attempt, outcome: str, reason: str) -> None:
    """A fire that never ran: one final row, no handler, no start, no duration."""
    assert (row.outcome, row.reason, row.final, row.attempt) == (
        outcome,
        reason,
        True,
        1,
    )
    assert (row.handler, row.started_at, row.duration, row.error) == (
        None,
        None,
        None,
        None,
    )
    assert row.task == "tick"


# ------------------------------------------------------------------- coalesce


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        pytest.param("latest", [4], id="latest"),
        pytest.param("earliest", [0], id="earliest"),
        pytest.param("all", [0, 1, 2, 3, 4], id="all"),
    ],
)
async def test_five_overdue_fires_run_as_the_coalesce_policy_says(
    store: str, policy: str, kept: list[int]
) -> None:
    sz, calls = ticking(store)
    async with sz:
        trigger, times = overdue(5)
        await sz.schedule("tick", trigger, args=[policy], coalesce=policy, id="late")
        rows = await finals_of(sz, "late", 5)
    assert len(rows) == 5
    assert len({r.job_id for r in rows}) == 5
    assert sorted(r.scheduled_at for r in rows) == times
    ran = [r for r in rows if r.outcome == "success"]
    assert sorted(r.scheduled_at for r in ran) == [times[k] for k in kept]
    for row in ran:
        assert (row.final, row.handler, row.attempt) == (True, "tick", 1)
        assert row.started_at is not None
    assert calls == {policy: len(kept)}
    folded = [r for r in rows if r.outcome != "success"]
    assert len(folded) == 5 - len(kept)
    for row in folded:
        check_skipped(row, "coalesced", f"coalesce_{policy}")


async def test_latest_is_the_default_and_records_what_it_folds(store: str) -> None:
    sz, calls = ticking(store)
    async with sz:
        trigger, times = overdue(5)
        await sz.schedule("tick", trigger, args=["x"], id="late")
        rows = await finals_of(sz, "late", 5)
    [ran] = [r for r in rows if r.outcome == "success"]
    assert ran.scheduled_at == times[-1]
    assert Counter(r.reason for r in rows if r.outcome == "coalesced") == {
        "coalesce_latest": 4
    }
    assert calls == {"x": 1}


async def test_an_open_ended_schedule_folds_its_backlog_once_then_runs_each_fire(
    store: str,
) -> None:
    sz, calls = ticking(store)
    async with sz:
        # No end: five fires overdue, then one every second from 0.5 s from now.
        start = datetime.now(UTC) - 4.5 * SECOND
        trigger = IntervalTrigger(seconds=1, start_time=start)
        await sz.schedule("tick", trigger, args=["x"], id="open")
        rows = await finals_of(sz, "open", 6)
        ran = dict(calls)  # before the next fire, a second away
    times = [start + k * SECOND for k in range(6)]
    by_time = {r.scheduled_at: r for r in rows}
    assert sorted(by_time) == times
    for when in times[:4]:
        check_skipped(by_time[when], "coalesced", "coalesce_latest")
    # The backlog's newest, then the first fire due after the start: each alone.
    assert [by_time[when].outcome for when in times[4:]] == ["success", "success"]
    assert ran == {"x": 2}


# ------------------------------------------------------------ misfire grace


async def test_fires_past_their_misfire_grace_are_missed_and_fresh_ones_run(
    store: str,
) -> None:
    sz, calls = ticking(store)
    async with sz:
        # Fires 4.9, 3.7, 2.5 and 1.3 seconds overdue, one 0.1 s overdue (within
        # its second of grace), and one due 1.1 s from now.
        trigger, times = overdue(5, interval=APART, newest=NEWEST, ahead=1)
        await sz.schedule(
            "tick",
            trigger,
            args=["fire"],
            coalesce="all",
            misfire_grace_time=1.0,
            id="graced",
        )
        rows = await finals_of(sz, "graced", 6)
    assert len(rows) == 6
    by_time = {r.scheduled_at: r for r in rows}
    assert sorted(by_time) == times
    for when in times[:4]:
        check_skipped(by_time[when], "missed", "misfire_grace_time")
    for when in times[4:]:
        assert (by_time[when].outcome, by_time[when].final) == ("success", True)
        assert by_time[when].handler == "tick"
    assert calls == {"fire": 2}


async def test_the_one_fire_earliest_keeps_is_missed_if_past_its_grace(
    store: str,
) -> None:
    sz, calls = ticking(store)
    async with sz:
        trigger, times = overdue(5)
        await sz.schedule(
            "tick",
            trigger,
            args=["fire"],
            coalesce="earliest",
            misfire_grace_time=1.0,
            id="stale",
        )
        rows = await finals_of(sz, "stale", 5)
    by_time = {r.scheduled_at: r for r in rows}
    assert sorted(by_time) == times
    check_skipped(by_time[times[0]], "missed", "misfire_grace_time")
    for when in times[1:]:
        check_skipped(by_time[when], "coalesced", "coalesce_earliest")
    assert calls == {}


async def test_latest_runs_its_fire_within_grace_and_folds_the_older_ones(
    store: str,
) -> None:
    sz, calls = ticking(store)
    async with sz:
        trigger, times = overdue(5, interval=APART, newest=NEWEST)
        await sz.schedule(
            "tick",
            trigger,
            args=["fire"],
            coalesce="latest",
            misfire_grace_time=1.0,
            id="fresh",
        )
        rows = await finals_of(sz, "fresh", 5)
    by_time = {r.scheduled_at: r for r in rows}
    assert by_time[times[-1]].outcome == "success"
    for when in times[:-1]:
        check_skipped(by_time[when], "coalesced", "coalesce_latest")
    assert calls == {"fire": 1}


# ------------------------------------------------------ one line per round


def skip_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every line logged of fires coalesced or missed (a per-fire line too)."""
    return [
        record.getMessage()
        for record in caplog.records
        if " coalesced" in record.getMessage() or " missed" in record.getMessage()
    ]


async def test_a_thousand_coalesced_fires_get_a_row_each_and_one_log_line(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    sz, calls = ticking(store)
    with caplog.at_level(logging.INFO, logger="sz"):
        async with sz:
            # A minutely schedule down for 1,000 minutes, in seconds.
            trigger, times = overdue(1_000)
            await sz.schedule("tick", trigger, args=["x"], id="late")
            rows = await finals_of(sz, "late", 1_000)
    assert sorted(r.scheduled_at for r in rows) == times
    assert Counter((r.outcome, r.reason) for r in rows) == {
        ("coalesced", "coalesce_latest"): 999,
        ("success", None): 1,
    }
    assert calls == {"x": 1}
    assert skip_lines(caplog) == [
        (
            f"schedule late: 999 fires coalesced into the fire at "
            f"{times[-1].isoformat()} (coalesce=latest)"
        )
    ]


async def test_fires_missed_past_their_grace_get_a_row_each_and_one_log_line(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    sz, calls = ticking(store)
    with caplog.at_level(logging.INFO, logger="sz"):
        async with sz:
            # 500 fires 1.2 s apart; the newest 0.1 s overdue, within a second's
            # grace, the 499 before it past it.
            trigger, times = overdue(500, interval=APART, newest=NEWEST)
            await sz.schedule(
                "tick",
                trigger,
                args=["x"],
                coalesce="all",
                misfire_grace_time=1.0,
                id="graced",
            )
            rows = await finals_of(sz, "graced", 500)
    assert Counter(r.outcome for r in rows) == {"missed": 499, "success": 1}
    assert calls == {"x": 1}
    assert skip_lines(caplog) == [
        (
            f"schedule graced: 499 fires missed, past their misfire_grace_time "
            f"(from {times[0].isoformat()} to {times[-2].isoformat()})"
        )
    ]


# ------------------------------------------------- one final row per fire


async def test_every_one_of_hundreds_of_fires_ends_with_exactly_one_final_row(
    store: str,
) -> None:
    sz = ScheduleZero(store=store)
    rng = random.Random(20240611)
    calls: Counter[str] = Counter()

    async def work(key: str) -> None:
        calls[key] += 1
        await anyio.lowlevel.checkpoint()
        # Few enough failures that neither handler's circuit opens.
        if rng.random() < 0.1:
            raise RuntimeError(f"{key} failed")

    sz.handler(work, name="tick", concurrency=8, retries=1)
    sz.handler(work, name="tick", concurrency=8, retries=1)
    live = timedelta(seconds=0.05)
    async with sz:
        # Made once the scheduler runs, so that its start does not eat into the
        # grace of fires meant to be within it.
        plan: dict[str, tuple[IntervalTrigger, list[datetime], str, float | None]] = {}
        for schedule_id, (fires, policy, grace) in {
            "all": (100, "all", None),
            "latest": (100, "latest", None),
            "earliest-graced": (100, "earliest", 5.0),
        }.items():
            plan[schedule_id] = (*overdue(fires), policy, grace)
        # 100 fires 2 s apart, 0.5 s to 198.5 s overdue, with 30 s of grace: the
        # newest 15 are within it (by 1.5 s at least), the other 85 past it.
        plan["all-graced"] = (
            *overdue(100, interval=2 * SECOND, newest=SECOND / 2),
            "all",
            30.0,
        )
        for schedule_id, policy in (("live-all", "all"), ("live-latest", "latest")):
            plan[schedule_id] = (*overdue(0, interval=live, ahead=21), policy, None)
        total = sum(len(times) for _, times, _, _ in plan.values())
        assert total == 442
        for schedule_id, (trigger, _, policy, grace) in plan.items():
            await sz.schedule(
                "tick",
                trigger,
                args=[schedule_id],
                coalesce=policy,
                misfire_grace_time=grace,
                id=schedule_id,
            )

        async def all_ended() -> bool:
            return len(await sz.history(final=True, limit=100_000)) >= total

        await wait_until(all_ended, timeout=DEADLINE)
        rows = await sz.history(limit=100_000)

    by_job: defaultdict[str, list[Attempt]] = defaultdict(list)
    for row in rows:
        by_job[row.job_id].append(row)
    assert len(by_job) == total
    for job_rows in by_job.values():
        job_rows.sort(key=lambda row: row.attempt)
        assert [r.attempt for r in job_rows] == list(range(1, len(job_rows) + 1))
        assert [r.final for r in job_rows] == [False] * (len(job_rows) - 1) + [True]
        assert len(job_rows) <= 2  # the first attempt and its one retry
        for retried in job_rows[:-1]:
            assert (retried.outcome, retried.reason) == (
                "failure",
                "retry_after_failure",
            )
        assert len({(r.schedule_id, r.scheduled_at) for r in job_rows}) == 1
    # Each attempt the handlers made has its row, and no row claims one more.
    assert calls == Counter(r.schedule_id for r in rows if r.handler is not None)

    finals = [r for r in rows if r.final]
    for schedule_id, (_, times, _, _) in plan.items():
        mine = [r for r in finals if r.schedule_id == schedule_id]
        assert sorted(r.scheduled_at for r in mine) == times, schedule_id
    outcomes = {
        schedule_id: Counter(
            "ran" if r.outcome in ("success", "failure") else r.outcome
            for r in finals
            if r.schedule_id == schedule_id
        )
        for schedule_id in plan
    }
    assert outcomes["all"] == {"ran": 100}
    assert outcomes["latest"] == {"ran": 1, "coalesced": 99}
    assert outcomes["earliest-graced"] == {"missed": 1, "coalesced": 99}
    assert outcomes["all-graced"] == {"missed": 85, "ran": 15}
    _, graced_times, _, _ = plan["all-graced"]
    graced = {
        r.scheduled_at: r.outcome for r in finals if r.schedule_id == "all-graced"
    }
    assert {graced[when] for when in graced_times[:85]} == {"missed"}
    assert outcomes["live-all"] == {"ran": 21}
    ran_live = outcomes["live-latest"]["ran"]
    assert ran_live >= 1
    assert outcomes["live-latest"] == Counter(ran=ran_live, coalesced=21 - ran_live)
    if store != "memory":
        # The store holds no job accepted without its final row, and no fire
        # comes again: a restart adds nothing.
        again = ScheduleZero(store=store)
        again.handler(work, name="tick")
        async with again:
            assert await again.history(limit=100_000) == rows


# ------------------------------------------------------------- the option


async def test_an_unknown_coalesce_policy_raises_sz_error_naming_the_choices(
    store: str,
) -> None:
    sz, _ = ticking(store)
    with pytest.raises(SzError, match="latest, earliest, all, got 'bogus'"):
        await sz.schedule("tick", "interval", hours=1, coalesce="bogus")  # before start
    async with sz:
        with pytest.raises(SzError, match="latest, earliest, all, got 'bogus'"):
            await sz.schedule("tick", "interval", hours=1, coalesce="bogus", id="b")
        assert await sz.schedules() == []


async def test_each_schedule_shows_its_coalesce_policy(store: str) -> None:
    sz, _ = ticking(store)
    expected = {
        "default": "latest",
        "latest": "latest",
        "earliest": "earliest",
        "all": "all",
    }
    async with sz:
        await sz.schedule(
            "tick", "interval", hours=1, args=["x"], id="default", paused=True
        )
        for policy in ("latest", "earliest", "all"):
            await sz.schedule(
                "tick",
                "interval",
                hours=1,
                args=["x"],
                id=policy,
                paused=True,
                coalesce=policy,
            )
        for schedule_id, policy in expected.items():
            assert (await sz.get_schedule(schedule_id)).coalesce == policy
        assert {s.id: s.coalesce for s in await sz.schedules()} == expected
    if store != "memory":
        again, _ = ticking(store)
        async with again:
            assert {s.id: s.coalesce for s in await again.schedules()} == expected


async def test_a_fire_taken_ahead_of_time_never_starts_before_it_is_due(
    store: str,
) -> None:
    """Fires are taken and committed up to ``LOOKAHEAD`` early; they run on time."""
    sz = ScheduleZero(store=store)
    started: list[datetime] = []
    done = anyio.Event()

    @sz.handler
    async def tick(n: int) -> None:
        started.append(datetime.now(UTC))
        if len(started) == 3:
            done.set()

    async with sz:
        first = datetime.now(UTC) + timedelta(seconds=0.4)
        await sz.schedule(
            "tick",
            IntervalTrigger(seconds=0.3, start_time=first),
            args=[1],
            id="ahead",
        )
        with anyio.fail_after(DEADLINE):
            await done.wait()

        async def recorded() -> bool:
            rows = await sz.history(schedule_id="ahead", final=True)
            return len(rows) >= 3

        await wait_until(recorded, timeout=DEADLINE)
        rows = await sz.history(schedule_id="ahead", final=True, limit=10)
    due = [first + i * timedelta(seconds=0.3) for i in range(3)]
    assert all(start >= fire for start, fire in zip(started, due, strict=True))
    assert all(row.started_at is not None for row in rows)
    assert all(row.started_at >= row.scheduled_at for row in rows if row.started_at)


async def test_a_held_fire_survives_a_restart_of_the_dispatcher(store: str) -> None:
    """The dispatcher holds an early fire in its state: killing it loses nothing."""
    sz = ScheduleZero(store=store)
    ran = anyio.Event()
    when: list[datetime] = []

    @sz.handler
    async def once() -> None:
        when.append(datetime.now(UTC))
        ran.set()

    async with sz:
        due = datetime.now(UTC) + timedelta(seconds=1.0)
        await sz.schedule("once", "date", run_time=due, id="held")
        dispatcher = sz.system.lookup("/user/dispatcher")
        assert dispatcher is not None

        async def taken() -> bool:
            # The store takes the fire a quarter second before it is due.
            return datetime.now(UTC) >= due - timedelta(seconds=0.2)

        await wait_until(taken, timeout=DEADLINE)
        await dispatcher.kill()
        with anyio.fail_after(DEADLINE):
            await ran.wait()

        async def recorded() -> bool:
            return bool(await sz.history(schedule_id="held", final=True))

        await wait_until(recorded, timeout=DEADLINE)
        rows = await sz.history(schedule_id="held")
    assert [row.outcome for row in rows] == ["success"]
    assert when[0] >= due


@pytest.mark.parametrize(
    ("withdraw", "reason"),
    [("pause", "schedule_paused"), ("unschedule", "schedule_removed")],
)
async def test_a_fire_taken_ahead_is_cancelled_when_its_schedule_is_withdrawn(
    store: str, withdraw: str, reason: str
) -> None:
    """Paused or removed after its fire was taken but before it was due: the
    fire does not run, and the history says why."""
    sz = ScheduleZero(store=store)
    ran: list[datetime] = []

    @sz.handler
    async def once() -> None:
        ran.append(datetime.now(UTC))

    async with sz:
        due = datetime.now(UTC) + timedelta(seconds=0.6)
        await sz.schedule("once", "date", run_time=due, id="w")

        async def taken() -> bool:
            # The store takes a fire a quarter second before it is due.
            return datetime.now(UTC) >= due - timedelta(seconds=0.15)

        await wait_until(taken, timeout=DEADLINE)
        await getattr(sz, withdraw)("w")

        async def recorded() -> bool:
            return bool(await sz.history(schedule_id="w", final=True))

        await wait_until(recorded, timeout=DEADLINE)
        rows = await sz.history(schedule_id="w")
    assert [(row.outcome, row.reason, row.final) for row in rows] == [
        ("cancelled", reason, True)
    ]
    assert ran == []
