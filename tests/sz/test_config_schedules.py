"""Config ``schedules:``: checked when loaded, added at every start.

Added again unchanged, a stored schedule is kept (its fire times, a pause made
since); changed, it is replaced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from actors.testing import wait_until
from sz import ConfigError, ScheduleZero, SzError
from sz.config import parse_config

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def test_schedules_are_read_with_cron_or_interval() -> None:
    config = parse_config(
        {
            "schedules": [
                {"id": "a", "task": "echo", "interval": {"minutes": 5}},
                {"id": "b", "task": "echo", "cron": "*/5 * * * *", "args": {"x": 1}},
            ]
        }
    )
    first, second = config.schedules
    assert (first.id, first.interval, first.cron) == ("a", {"minutes": 5}, None)
    assert (second.cron, second.args) == ("*/5 * * * *", {"x": 1})


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"id": "a", "task": "echo"}, "schedules[0].cron: expected exactly one"),
        (
            {"id": "a", "task": "echo", "cron": "* * * * *", "interval": {"hours": 1}},
            "schedules[0].cron: expected exactly one",
        ),
        (
            {"id": "a", "task": "echo", "interval": {"secs": 5}},
            "schedules[0].interval.secs: expected one of weeks",
        ),
        (
            {"id": "a", "task": "echo", "interval": {"seconds": 0}},
            "schedules[0].interval.seconds: expected a number > 0",
        ),
        ({"task": "echo", "cron": "* * * * *"}, "schedules[0].id: required key"),
        (
            {"id": "a", "task": "echo", "cron": "every minute"},
            "schedules[0].cron: expected a crontab line of five fields",
        ),
        (
            {"id": "a", "task": "echo", "cron": "* * * * *", "every": 5},
            "schedules[0].every: unknown key",
        ),
    ],
)
def test_a_bad_schedule_is_named_by_its_path(
    entry: dict[str, object], says: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({"schedules": [entry]})
    assert says in str(refused.value)


def test_schedule_ids_are_unique() -> None:
    entry = {"id": "a", "task": "echo", "cron": "* * * * *"}
    with pytest.raises(ConfigError, match=r"schedules\[1\]\.id: expected a unique id"):
        parse_config({"schedules": [entry, entry]})


async def test_config_schedules_are_added_at_start_and_replaced_at_the_next() -> None:
    config = parse_config(
        {"schedules": [{"id": "tick", "task": "echo", "interval": {"hours": 1}}]}
    )
    sz = ScheduleZero(config=config, store="memory")

    @sz.handler
    async def echo() -> None:
        return None

    async with sz:
        [schedule] = await sz.schedules()
        assert (schedule.id, schedule.task) == ("tick", "echo")
        assert schedule.trigger.startswith("IntervalTrigger(hours=1")
    async with sz:  # again: replaced, not doubled
        assert [s.id for s in await sz.schedules()] == ["tick"]


def echoing(path: Path, entry: dict[str, object]) -> ScheduleZero:
    config = parse_config({"schedules": [entry]})
    sz = ScheduleZero(config=config, store=f"sqlite:///{path}")

    @sz.handler
    async def echo(**kwargs: object) -> None:
        return None

    return sz


async def test_an_unchanged_config_schedule_keeps_its_fire_times_across_a_restart(
    tmp_path: Path,
) -> None:
    entry: dict[str, object] = {"id": "tick", "task": "echo", "interval": {"hours": 1}}
    async with echoing(tmp_path / "s.db", entry) as sz:

        async def fired() -> bool:  # its first fire (at once) is taken
            upcoming = (await sz.get_schedule("tick")).next_fire_time
            return upcoming is not None and upcoming > datetime.now(UTC)

        await wait_until(fired)
        first = (await sz.get_schedule("tick")).next_fire_time
    # Added again at the next start: kept, so it does not fire again at once.
    async with echoing(tmp_path / "s.db", entry) as sz:
        assert (await sz.get_schedule("tick")).next_fire_time == first


async def test_a_changed_config_schedule_replaces_the_stored_one(
    tmp_path: Path,
) -> None:
    entry: dict[str, object] = {"id": "tick", "task": "echo", "interval": {"hours": 1}}
    async with echoing(tmp_path / "s.db", entry) as sz:
        await sz.pause("tick")  # a pause made at run time
    async with echoing(tmp_path / "s.db", entry) as sz:
        assert (await sz.get_schedule("tick")).paused  # unchanged: kept, paused
    changed = {**entry, "args": {"loud": True}}
    async with echoing(tmp_path / "s.db", changed) as sz:
        schedule = await sz.get_schedule("tick")
    assert schedule.kwargs == {"loud": True}
    assert not schedule.paused


async def test_a_schedule_of_an_unknown_task_stops_the_start_naming_it() -> None:
    config = parse_config(
        {"schedules": [{"id": "x", "task": "nobody", "cron": "* * * * *"}]}
    )
    with pytest.raises(SzError, match=r"schedules\[0\] \(x\): no handler for task"):
        async with ScheduleZero(config=config, store="memory"):
            pass


async def test_with_a_broker_a_task_only_workers_serve_may_be_scheduled() -> None:
    config = parse_config(
        {
            "scheduler": {"mode": "distributed"},
            "handlers": {"zmq": {"registration_server": "tcp://127.0.0.1:*"}},
            "schedules": [{"id": "x", "task": "remote_only", "cron": "0 3 * * *"}],
        }
    )
    async with ScheduleZero(config=config, store="memory") as sz:
        [schedule] = await sz.schedules()
        assert schedule.task == "remote_only"
