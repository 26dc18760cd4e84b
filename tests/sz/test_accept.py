"""What ``schedule`` and ``run_now`` accept: only what the store can keep, in range.

An argument pickle cannot store is refused at the call, naming it, on the memory
store as on the file, and leaves nothing behind; so are intervals that overflow
or round to zero, unknown time zones, a bad misfire grace time and a history
limit out of range. Every async test runs under asyncio and under trio.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from apscheduler.triggers.calendarinterval import CalendarIntervalTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sz.bridge import MAX_MISFIRE_GRACE, check_misfire_grace, make_trigger
from sz.errors import SzError
from sz.scheduler import HISTORY_LIMIT, ScheduleZero
from sz.storable import check_storable

if TYPE_CHECKING:
    from pathlib import Path

MEMORY = "memory"
SQLITE = "sqlite"


@pytest.fixture(autouse=True)
def time_zones_loaded() -> None:
    """Load the local and UTC time zones before any test's event loop runs.

    As ``tests/sz/test_scheduler_schedules.py`` does, and for its reason: an
    interval trigger reads the local zone on first use, on the event loop.
    """
    IntervalTrigger(seconds=1)


@pytest.fixture(params=[MEMORY, SQLITE])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``store=`` argument of ``ScheduleZero``: memory, then a SQLite file."""
    if request.param == MEMORY:
        return MEMORY
    return "sqlite:///" + str(tmp_path / "sz.db")


class Calls:
    """A handler that counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    async def work(self, *args: Any, **kwargs: Any) -> str:
        self.count += 1
        return "done"


def scheduler(store: str) -> tuple[ScheduleZero, Calls]:
    sz = ScheduleZero(store=store)
    calls = Calls()
    sz.handler(calls.work, name="work")
    return sz, calls


def later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


# ------------------------------------------------------- arguments that pickle


def test_arguments_that_pickle_pass_and_no_arguments_cost_nothing() -> None:
    check_storable((), {})
    check_storable((1, "two", [3.0], {"four": None}), {"five": b"5"})


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        pytest.param((1, lambda: 2), {}, r"args\[1\]", id="lambda-positional"),
        pytest.param((), {"lock": threading.Lock()}, r"kwargs\['lock'\]", id="lock"),
        pytest.param(
            (1,), {"ok": 2, "gen": (n for n in range(3))}, r"kwargs\['gen'\]", id="gen"
        ),
    ],
)
def test_the_first_argument_that_cannot_be_pickled_is_named(
    args: tuple[Any, ...], kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(SzError, match=named):
        check_storable(args, kwargs)


async def test_a_schedule_with_an_unpicklable_argument_is_refused_and_never_exists(
    store: str,
) -> None:
    sz, _ = scheduler(store)
    async with sz:
        with pytest.raises(SzError, match=r"args\[1\] cannot be stored"):
            await sz.schedule(
                "work", "date", run_time=later(), args=[1, lambda: 2], id="bad"
            )
        with pytest.raises(SzError, match=r"kwargs\['lock'\] cannot be stored"):
            await sz.schedule(
                "work",
                "interval",
                seconds=60,
                kwargs={"lock": threading.Lock()},
                id="bad",
            )
        assert await sz.schedules() == []
        # A good one still goes in afterwards, under the same id.
        await sz.schedule("work", "date", run_time=later(), args=[1, 2], id="bad")
        assert [s.args for s in await sz.schedules()] == [(1, 2)]


async def test_a_schedule_added_before_start_is_checked_at_the_call(
    store: str,
) -> None:
    sz, _ = scheduler(store)
    with pytest.raises(SzError, match=r"kwargs\['lock'\]"):
        await sz.schedule(
            "work", "date", run_time=later(), args={"lock": threading.Lock()}
        )
    async with sz:
        assert await sz.schedules() == []


async def test_run_now_with_an_unpicklable_argument_is_refused_before_any_job(
    store: str,
) -> None:
    sz, calls = scheduler(store)
    async with sz:
        with pytest.raises(SzError, match=r"args\[0\] cannot be stored"):
            await sz.run_now("work", args=[lambda: 1])
        with pytest.raises(SzError, match=r"kwargs\['lock'\]"):
            await sz.run_now("work", kwargs={"lock": threading.Lock()})
        assert await sz.run_now("work", args=[1], kwargs={"two": 2}) == "done"
        rows = await sz.history(task="work")
    assert calls.count == 1
    assert [row.outcome for row in rows] == ["success"]


async def test_an_unpicklable_trigger_object_is_refused_by_the_file_store(
    tmp_path: Path,
) -> None:
    class MemoryOnly(IntervalTrigger):
        def __getstate__(self) -> Any:
            raise TypeError("kept in memory only")

    sz, _ = scheduler("sqlite:///" + str(tmp_path / "sz.db"))
    async with sz:
        with pytest.raises(SzError, match="the trigger cannot be stored"):
            await sz.schedule("work", MemoryOnly(seconds=60), id="bad")
        assert await sz.schedules() == []


# ---------------------------------------------------------------- trigger ranges


@pytest.mark.parametrize(
    ("trigger", "fields"),
    [
        pytest.param("interval", {"days": 10**10}, id="days-overflow-timedelta"),
        pytest.param("interval", {"seconds": 10**20}, id="seconds-overflow"),
        pytest.param("interval", {"seconds": math.inf}, id="infinite"),
        pytest.param("interval", {"days": 3_000_000}, id="second-fire-past-9999"),
        pytest.param("calendarinterval", {"years": 9_000}, id="calendar-years"),
        pytest.param("calendarinterval", {"days": 10**10}, id="calendar-days"),
    ],
)
def test_an_interval_too_long_to_fire_twice_is_refused(
    trigger: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(SzError, match="too long"):
        make_trigger(trigger, fields)


def test_an_interval_trigger_object_too_long_to_fire_twice_is_refused() -> None:
    with pytest.raises(SzError, match="too long"):
        make_trigger(IntervalTrigger(days=999_999_999), {})
    with pytest.raises(SzError, match="too long"):
        make_trigger(CalendarIntervalTrigger(years=9_000), {})


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"seconds": 0}, id="zero"),
        pytest.param({"microseconds": 0.4}, id="rounds-to-zero"),
        pytest.param({"seconds": -5}, id="negative"),
        pytest.param({"minutes": 1, "seconds": -60}, id="sums-to-zero"),
        pytest.param({"seconds": math.nan}, id="nan"),
    ],
)
def test_an_interval_of_zero_or_less_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(SzError, match="interval trigger"):
        make_trigger("interval", fields)


@pytest.mark.parametrize(
    ("trigger", "fields"),
    [
        pytest.param("cron", {"hour": 9, "timezone": "Mars/Olympus"}, id="cron"),
        pytest.param("*/5 * * * *", {"timezone": "Mars/Olympus"}, id="crontab"),
        pytest.param(
            "calendarinterval", {"days": 1, "timezone": "Mars/Olympus"}, id="calendar"
        ),
        pytest.param("cron", {"hour": 9, "timezone": "../etc/passwd"}, id="a-path"),
        pytest.param("cron", {"hour": 9, "timezone": ""}, id="empty"),
    ],
)
async def test_an_unknown_time_zone_is_refused_naming_it(
    trigger: str, fields: dict[str, Any]
) -> None:
    sz, _ = scheduler(MEMORY)
    zone = fields["timezone"]
    async with sz:
        with pytest.raises(SzError, match=f"unknown time zone {zone!r}"):
            await sz.schedule("work", trigger, **fields)
        assert await sz.schedules() == []


async def test_bad_intervals_are_refused_at_the_call_and_leave_no_schedule(
    store: str,
) -> None:
    sz, _ = scheduler(store)
    async with sz:
        with pytest.raises(SzError, match="too long"):
            await sz.schedule("work", "interval", days=10**10)
        with pytest.raises(SzError, match="positive"):
            await sz.schedule("work", "interval", microseconds=0.1)
        assert await sz.schedules() == []


# ---------------------------------------------------------- misfire grace time


@pytest.mark.parametrize(
    "grace",
    [
        pytest.param(-1, id="negative"),
        pytest.param(-0.001, id="slightly-negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="infinite"),
        pytest.param(MAX_MISFIRE_GRACE + 1, id="over-a-year"),
        pytest.param(1e20, id="overflows-timedelta"),
        pytest.param("10", id="a-string"),
        pytest.param(True, id="a-flag"),
    ],
)
async def test_a_bad_misfire_grace_time_is_refused_and_leaves_no_schedule(
    store: str, grace: Any
) -> None:
    sz, _ = scheduler(store)
    async with sz:
        with pytest.raises(SzError, match="misfire_grace_time"):
            await sz.schedule("work", "interval", seconds=60, misfire_grace_time=grace)
        assert await sz.schedules() == []


def test_misfire_grace_time_takes_seconds_from_zero_to_a_year_or_none() -> None:
    assert check_misfire_grace(None) is None
    assert check_misfire_grace(0) == 0.0
    assert check_misfire_grace(2.5) == 2.5
    assert check_misfire_grace(timedelta(minutes=1)) == 60.0
    assert check_misfire_grace(MAX_MISFIRE_GRACE) == MAX_MISFIRE_GRACE


# --------------------------------------------------------------- history limit


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(0, id="zero"),
        pytest.param(-1, id="negative"),
        pytest.param(HISTORY_LIMIT + 1, id="over-the-bound"),
        pytest.param(10**12, id="huge"),
        pytest.param(2.5, id="a-float"),
        pytest.param(True, id="a-flag"),
    ],
)
async def test_a_history_limit_out_of_range_is_refused(store: str, limit: Any) -> None:
    sz, _ = scheduler(store)
    async with sz:
        with pytest.raises(SzError, match="history limit"):
            await sz.history(limit=limit)


async def test_a_history_limit_from_one_to_the_bound_is_taken(store: str) -> None:
    sz, _ = scheduler(store)
    async with sz:
        for n in range(3):
            await sz.run_now("work", args=[n])
        assert len(await sz.history(limit=1)) == 1
        assert len(await sz.history(limit=HISTORY_LIMIT)) == 3
