"""Contract tests for APScheduler 4.0.0a6's ``DataStore`` interface.

Every test body runs against each store ScheduleZero may hand to APScheduler:
APScheduler's own ``MemoryDataStore`` (the reference), ``sz.store.ScheduleStore``
in memory, on a SQLite file, and on a PostgreSQL database (a throwaway server,
``conftest.py``). The semantics checked
are those ``apscheduler/abc.py`` states and ``datastores/memory.py`` implements.
Where APScheduler's store misbehaves and ours must do better, one test says both,
in its docstring and its assertions.

Each store is started the way the scheduler starts it: a ``LocalEventBroker`` and
then the store, inside one ``AsyncExitStack``. Events are read from the broker:
it delivers each one in a task of its own, so they are read once every task is
blocked (``anyio.wait_all_tasks_blocked``), in no particular order. Nothing
sleeps: a lease that has run out is one taken with a negative duration, and a due
schedule is one whose fire time is in the past.

A test that ScheduleZero's store fails while APScheduler's passes is a bug in
ours: it is listed in ``KNOWN_BUGS`` and so marked ``xfail(strict=True)`` for that
store alone.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import anyio
import attrs
import pytest
from apscheduler import (
    ConflictingIdError,
    ConflictPolicy,
    Event,
    Job,
    JobAcquired,
    JobAdded,
    JobOutcome,
    JobReleased,
    JobResult,
    Schedule,
    ScheduleAdded,
    ScheduleRemoved,
    ScheduleResult,
    ScheduleUpdated,
    Task,
    TaskAdded,
    TaskLookupError,
    TaskRemoved,
    TaskUpdated,
)
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.eventbrokers.local import LocalEventBroker
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sz.store import ScheduleStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable
    from pathlib import Path

    from apscheduler.abc import DataStore, EventBroker

LOGGER = logging.getLogger(__name__)

APS_MEMORY = "aps-memory"
SZ_MEMORY = "sz-memory"
SZ_SQLITE = "sz-sqlite"
SZ_POSTGRESQL = "sz-postgresql"

#: ``(test name, store)`` -> why ScheduleZero's store fails it. Each entry marks
#: that one parametrization ``xfail(strict=True)``: fixing the bug fails the run
#: until the entry goes.
KNOWN_BUGS: dict[tuple[str, str], str] = {}

TASK = "task"
EXECUTOR = "async"
HOUR = timedelta(hours=1)
#: A lease that has run out the moment it is taken.
EXPIRED = timedelta(seconds=-1)

# ``Any``: APScheduler 4.0.0a6 types each field of its attrs classes by what the
# field's converter accepts, which leaves out ``None`` (``as_aware_datetime``)
# and literals the generic ``tuple``/``dict`` converters cannot type. Values
# passed through ``Any`` are checked by the converters at run time instead.


# ------------------------------------------------------------------ helpers


def now() -> datetime:
    return datetime.now(UTC)


def make_task(
    task_id: str = TASK,
    *,
    func: str = "tests.example:work",
    max_running_jobs: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Task:
    return Task(
        id=task_id,
        func=func,
        job_executor=EXECUTOR,
        max_running_jobs=max_running_jobs,
        misfire_grace_time=timedelta(seconds=30),
        metadata=metadata or {},
    )


def make_schedule(
    schedule_id: str,
    *,
    first_fire: datetime | None,
    task_id: str = TASK,
    paused: bool = False,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Schedule:
    """A schedule every 10 seconds from ``first_fire``, as the scheduler adds it.

    The scheduler draws the first fire time from the trigger before it adds the
    schedule, so the trigger's state already includes it. ``first_fire=None`` is a
    schedule whose trigger is spent.
    """
    if first_fire is None:
        trigger: IntervalTrigger | DateTrigger = DateTrigger(run_time=now() - HOUR)
        trigger.next()
    else:
        trigger = IntervalTrigger(seconds=10, start_time=first_fire)
    next_fire_time: Any = trigger.next()  # see ``Any`` above
    return Schedule(
        id=schedule_id,
        task_id=task_id,
        trigger=trigger,
        args=args,
        kwargs=kwargs or {},
        paused=paused,
        job_executor=EXECUTOR,
        metadata=metadata or {},
        next_fire_time=next_fire_time,
    )


def make_job(
    *,
    task_id: str = TASK,
    schedule_id: str | None = None,
    start_deadline: datetime | None = None,
    result_expiration_time: timedelta = HOUR,
) -> Job:
    fire_time: Any = now() - timedelta(seconds=1) if schedule_id else None
    deadline: Any = start_deadline  # see ``Any`` above
    return Job(
        task_id=task_id,
        schedule_id=schedule_id,
        scheduled_fire_time=fire_time,
        executor=EXECUTOR,
        start_deadline=deadline,
        result_expiration_time=result_expiration_time,
    )


def success(job: Job, return_value: Any = None) -> JobResult:
    finished_at = now()
    return JobResult(
        job_id=job.id,
        outcome=JobOutcome.success,
        started_at=finished_at - timedelta(seconds=1),
        finished_at=finished_at,
        expires_at=finished_at + job.result_expiration_time,
        return_value=return_value,
    )


def fire(schedule: Schedule) -> ScheduleResult:
    """Process an acquired schedule as the scheduler does: advance its trigger.

    Draws fire times from the trigger up to the first one in the future (or the
    end of the trigger); the last one that came due is the last fire time.
    """
    assert schedule.next_fire_time is not None
    last_fire_time = schedule.next_fire_time
    moment = now()
    while (next_fire_time := schedule.trigger.next()) is not None:
        if next_fire_time > moment:
            break
        last_fire_time = next_fire_time
    return ScheduleResult(
        schedule_id=schedule.id,
        task_id=schedule.task_id,
        trigger=schedule.trigger,
        last_fire_time=last_fire_time,
        next_fire_time=next_fire_time,
    )


def state(obj: Schedule | Job | Task | JobResult) -> dict[str, Any]:
    """Every field, triggers by their state: these classes compare by ID alone."""
    fields = attrs.asdict(obj, recurse=False)
    if isinstance(obj, Schedule):
        fields["trigger"] = (type(obj.trigger), obj.trigger.__getstate__())
    return fields


def ids(objs: Iterable[Schedule | Task]) -> list[str]:
    return [obj.id for obj in objs]


def normalized(events: Iterable[Event]) -> list[str]:
    """Events without their time stamps, in an order of their own."""
    return sorted(
        repr(
            (
                type(event).__name__,
                attrs.asdict(event, recurse=False) | {"timestamp": 0},
            )
        )
        for event in events
    )


def expected(*events: Event) -> list[str]:
    return normalized(events)


def released(job: Job, result: JobResult, scheduler_id: str) -> JobReleased:
    return JobReleased.from_result(
        result, scheduler_id, job.task_id, job.schedule_id, job.scheduled_fire_time
    )


def released_by_store(job: Job, scheduler_id: str, outcome: JobOutcome) -> JobReleased:
    """The event of a job the store itself released (it never started)."""
    scheduled_start: Any = job.scheduled_fire_time  # see ``Any`` above
    started_at: Any = None
    return JobReleased(
        job_id=job.id,
        scheduler_id=scheduler_id,
        task_id=job.task_id,
        schedule_id=job.schedule_id,
        scheduled_start=scheduled_start,
        started_at=started_at,
        outcome=outcome,
    )


class EventLog:
    """The events a broker delivers, read once all published so far arrived."""

    def __init__(self, broker: EventBroker) -> None:
        self._events: list[Event] = []
        broker.subscribe(self._events.append)

    async def published(self) -> list[str]:
        """The events delivered since the last call, as ``normalized`` gives them."""
        await anyio.wait_all_tasks_blocked()
        events, self._events[:] = list(self._events), []
        return normalized(events)


@asynccontextmanager
async def started(store: DataStore) -> AsyncIterator[EventLog]:
    """Start ``store`` as the scheduler does; stop it on the way out."""
    async with AsyncExitStack() as stack:
        broker = LocalEventBroker()
        await broker.start(stack, LOGGER)
        await store.start(stack, broker, LOGGER)
        yield EventLog(broker)


def schedule_store(where: Path | str | None = None) -> DataStore:
    """A store in memory, on a SQLite file (a path) or on PostgreSQL (a URL)."""
    if where is None:
        return ScheduleStore()
    if isinstance(where, str):
        return ScheduleStore(url=where)
    return ScheduleStore(path=where)


def place_of(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a durable store of ``kind`` keeps things: a file, or a database."""
    if kind == SZ_POSTGRESQL:
        url: str = request.getfixturevalue("pg_url")
        return url
    return tmp_path / "store.db"


@pytest.fixture(
    params=[SZ_SQLITE, pytest.param(SZ_POSTGRESQL, marks=pytest.mark.postgresql)]
)
def durable_place(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a durable store keeps things: a SQLite file, or a PostgreSQL database."""
    return place_of(request.param, request, tmp_path)


# ----------------------------------------------------------------- fixtures


@pytest.fixture(
    params=[
        APS_MEMORY,
        SZ_MEMORY,
        SZ_SQLITE,
        pytest.param(SZ_POSTGRESQL, marks=pytest.mark.postgresql),
    ]
)
def kind(request: pytest.FixtureRequest) -> str:
    """Which store the test runs against; marks the known bugs of ours."""
    kind: str = request.param
    reason = KNOWN_BUGS.get((request.function.__name__, kind))
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    return kind


@pytest.fixture
def make_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], DataStore]:
    """A fresh store of ``kind``; the durable ones all open the same place."""
    if kind == APS_MEMORY:
        return MemoryDataStore
    if kind == SZ_MEMORY:
        return schedule_store
    place = place_of(kind, request, tmp_path)
    return lambda: schedule_store(place)


@pytest.fixture
async def running(
    make_store: Callable[[], DataStore],
) -> AsyncIterator[tuple[DataStore, EventLog]]:
    store = make_store()
    async with started(store) as events:
        yield store, events


@pytest.fixture
def store(running: tuple[DataStore, EventLog]) -> DataStore:
    return running[0]


@pytest.fixture
def events(running: tuple[DataStore, EventLog]) -> EventLog:
    return running[1]


# -------------------------------------------------------------------- tasks


async def test_get_task_returns_the_task_added(
    store: DataStore, events: EventLog
) -> None:
    task = make_task(max_running_jobs=3, metadata={"owner": "ops", "tags": ["a"]})
    await store.add_task(task)
    assert state(await store.get_task(TASK)) == state(
        make_task(max_running_jobs=3, metadata={"owner": "ops", "tags": ["a"]})
    )
    assert await events.published() == expected(TaskAdded(task_id=TASK))


async def test_get_task_raises_task_lookup_error_for_an_unknown_task(
    store: DataStore,
) -> None:
    await store.add_task(make_task("known"))
    with pytest.raises(TaskLookupError):
        await store.get_task("unknown")


async def test_remove_task_raises_task_lookup_error_for_an_unknown_task(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task("known"))
    await events.published()
    with pytest.raises(TaskLookupError):
        await store.remove_task("unknown")
    assert ids(await store.get_tasks()) == ["known"]
    assert await events.published() == []


async def test_remove_task_forgets_the_task_and_publishes_task_removed(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task("a"))
    await store.add_task(make_task("b"))
    await events.published()
    await store.remove_task("a")
    with pytest.raises(TaskLookupError):
        await store.get_task("a")
    assert ids(await store.get_tasks()) == ["b"]
    assert await events.published() == expected(TaskRemoved(task_id="a"))


async def test_get_tasks_returns_every_task_sorted_by_id(store: DataStore) -> None:
    assert await store.get_tasks() == []
    for task_id in ("b", "c", "a"):
        await store.add_task(make_task(task_id))
    assert ids(await store.get_tasks()) == ["a", "b", "c"]


async def test_add_task_with_a_known_id_replaces_it_and_publishes_task_updated(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task(func="old:work", metadata={"v": 1}))
    await events.published()
    await store.add_task(make_task(func="new:work", metadata={"v": 2}))
    [task] = await store.get_tasks()
    assert (task.func, task.metadata) == ("new:work", {"v": 2})
    assert await events.published() == expected(TaskUpdated(task_id=TASK))


async def test_replacing_a_task_keeps_its_count_of_running_jobs(
    store: DataStore,
) -> None:
    await store.add_task(make_task(max_running_jobs=1))
    await store.add_job(make_job())
    assert len(await store.acquire_jobs("A", HOUR)) == 1
    await store.add_task(make_task(max_running_jobs=1, metadata={"v": 2}))
    assert (await store.get_task(TASK)).running_jobs == 1
    await store.add_job(make_job())
    # The one slot is still taken by the job acquired before the replacement.
    assert await store.acquire_jobs("A", HOUR) == []


# ---------------------------------------------------------------- schedules


async def test_add_schedule_keeps_every_field_and_publishes_schedule_added(
    store: DataStore, events: EventLog
) -> None:
    first_fire = now() + HOUR
    args: Any = (1, "two", [3.0])  # see ``Any`` above
    kwargs: Any = {"four": {"five": None}}
    metadata: Any = {"owner": "ops", "nested": {"list": [1, True, "x"]}}
    schedule = Schedule(
        id="s",
        task_id=TASK,
        trigger=IntervalTrigger(minutes=5, start_time=first_fire),
        args=args,
        kwargs=kwargs,
        paused=True,
        misfire_grace_time=timedelta(seconds=30),
        max_jitter=timedelta(seconds=5),
        job_executor=EXECUTOR,
        job_result_expiration_time=timedelta(minutes=2),
        metadata=metadata,
        next_fire_time=first_fire,
        last_fire_time=first_fire - timedelta(minutes=5),
    )
    schedule.trigger.next()
    before = state(schedule)
    await store.add_schedule(schedule, ConflictPolicy.exception)
    assert [state(s) for s in await store.get_schedules()] == [before]
    assert await events.published() == expected(
        ScheduleAdded(schedule_id="s", task_id=TASK, next_fire_time=first_fire)
    )


async def test_add_schedule_with_do_nothing_keeps_the_existing_schedule(
    store: DataStore, events: EventLog
) -> None:
    first_fire = now() + HOUR
    await store.add_schedule(
        make_schedule("s", first_fire=first_fire, args=(1,)), ConflictPolicy.exception
    )
    await events.published()
    await store.add_schedule(
        make_schedule("s", first_fire=now() - HOUR, args=(2,)),
        ConflictPolicy.do_nothing,
    )
    [schedule] = await store.get_schedules()
    assert (schedule.args, schedule.next_fire_time) == ((1,), first_fire)
    assert await store.acquire_schedules("A", HOUR, 10) == []
    assert await events.published() == []


async def test_add_schedule_with_replace_replaces_it_and_publishes_schedule_updated(
    store: DataStore, events: EventLog
) -> None:
    await store.add_schedule(
        make_schedule("s", first_fire=now() - HOUR, args=(1,)), ConflictPolicy.exception
    )
    await events.published()
    replacement = make_schedule("s", first_fire=now() + HOUR, args=(2,))
    before = state(replacement)
    await store.add_schedule(replacement, ConflictPolicy.replace)
    assert [state(s) for s in await store.get_schedules()] == [before]
    # The replacement is not due: the old fire time is gone with the old schedule.
    assert await store.acquire_schedules("A", HOUR, 10) == []
    assert await events.published() == expected(
        ScheduleUpdated(
            schedule_id="s", task_id=TASK, next_fire_time=replacement.next_fire_time
        )
    )


async def test_add_schedule_with_exception_raises_conflicting_id_error(
    store: DataStore, events: EventLog
) -> None:
    await store.add_schedule(
        make_schedule("s", first_fire=now() + HOUR, args=(1,)), ConflictPolicy.exception
    )
    await events.published()
    with pytest.raises(ConflictingIdError):
        await store.add_schedule(
            make_schedule("s", first_fire=now() - HOUR, args=(2,)),
            ConflictPolicy.exception,
        )
    [schedule] = await store.get_schedules()
    assert schedule.args == (1,)
    assert await events.published() == []


async def test_get_schedules_returns_all_of_them_or_those_asked_for(
    store: DataStore,
) -> None:
    assert await store.get_schedules() == []
    for schedule_id in ("a", "b", "c"):
        await store.add_schedule(
            make_schedule(schedule_id, first_fire=now() + HOUR),
            ConflictPolicy.exception,
        )
    assert sorted(ids(await store.get_schedules())) == ["a", "b", "c"]
    assert sorted(ids(await store.get_schedules({"a", "c", "unknown"}))) == ["a", "c"]
    assert await store.get_schedules(set()) == []


async def test_remove_schedules_removes_those_named_and_ignores_unknown_ids(
    store: DataStore, events: EventLog
) -> None:
    for schedule_id in ("a", "b", "c"):
        await store.add_schedule(
            make_schedule(schedule_id, first_fire=now() - HOUR),
            ConflictPolicy.exception,
        )
    await events.published()
    await store.remove_schedules(["a", "unknown", "c"])
    assert ids(await store.get_schedules()) == ["b"]
    assert ids(await store.acquire_schedules("A", HOUR, 10)) == ["b"]
    assert await events.published() == expected(
        ScheduleRemoved(schedule_id="a", task_id=TASK, finished=False),
        ScheduleRemoved(schedule_id="c", task_id=TASK, finished=False),
    )


async def test_acquire_schedules_takes_only_due_schedules_that_are_not_paused(
    store: DataStore,
) -> None:
    schedules = [
        make_schedule("due", first_fire=now() - HOUR),
        make_schedule("future", first_fire=now() + HOUR),
        make_schedule("paused", first_fire=now() - HOUR, paused=True),
        make_schedule("spent", first_fire=None),
    ]
    for schedule in schedules:
        await store.add_schedule(schedule, ConflictPolicy.exception)
    assert ids(await store.acquire_schedules("A", HOUR, 10)) == ["due"]


async def test_acquire_schedules_takes_the_earliest_first_up_to_the_limit(
    store: DataStore,
) -> None:
    for minutes, schedule_id in ((1, "third"), (3, "first"), (2, "second")):
        await store.add_schedule(
            make_schedule(schedule_id, first_fire=now() - timedelta(minutes=minutes)),
            ConflictPolicy.exception,
        )
    assert ids(await store.acquire_schedules("A", HOUR, 2)) == ["first", "second"]
    assert ids(await store.acquire_schedules("B", HOUR, 2)) == ["third"]


async def test_acquire_schedules_leases_them_to_the_scheduler(
    store: DataStore,
) -> None:
    await store.add_schedule(
        make_schedule("s", first_fire=now() - HOUR), ConflictPolicy.exception
    )
    before = now()
    await store.acquire_schedules("A", HOUR, 10)
    after = now()
    [schedule] = await store.get_schedules()
    assert schedule.acquired_by == "A"
    assert schedule.acquired_until is not None
    assert before + HOUR <= schedule.acquired_until <= after + HOUR


async def test_a_leased_schedule_is_not_acquired_by_another_scheduler(
    store: DataStore,
) -> None:
    await store.add_schedule(
        make_schedule("s", first_fire=now() - HOUR), ConflictPolicy.exception
    )
    assert ids(await store.acquire_schedules("A", HOUR, 10)) == ["s"]
    assert await store.acquire_schedules("B", HOUR, 10) == []
    # The holder of a lease may acquire the schedule again.
    assert ids(await store.acquire_schedules("A", HOUR, 10)) == ["s"]


async def test_a_schedule_whose_lease_ran_out_is_acquired_by_another_scheduler(
    store: DataStore,
) -> None:
    await store.add_schedule(
        make_schedule("s", first_fire=now() - HOUR), ConflictPolicy.exception
    )
    assert ids(await store.acquire_schedules("A", EXPIRED, 10)) == ["s"]
    assert ids(await store.acquire_schedules("B", HOUR, 10)) == ["s"]
    [schedule] = await store.get_schedules()
    assert schedule.acquired_by == "B"


async def test_extend_acquired_schedule_leases_extends_only_the_schedulers_own(
    store: DataStore,
) -> None:
    for schedule_id in ("mine", "theirs"):
        await store.add_schedule(
            make_schedule(schedule_id, first_fire=now() - HOUR),
            ConflictPolicy.exception,
        )
    assert len(await store.acquire_schedules("A", EXPIRED, 10)) == 2
    before = now()
    await store.extend_acquired_schedule_leases("A", {"mine"}, HOUR)
    await store.extend_acquired_schedule_leases("B", {"theirs"}, HOUR)
    [mine] = await store.get_schedules({"mine"})
    assert mine.acquired_until is not None
    assert mine.acquired_until >= before + HOUR
    assert ids(await store.acquire_schedules("B", HOUR, 10)) == ["theirs"]


async def test_release_schedules_records_the_fire_and_ends_the_lease(
    store: DataStore, events: EventLog
) -> None:
    await store.add_schedule(
        make_schedule("s", first_fire=now() - timedelta(seconds=25), args=(1,)),
        ConflictPolicy.exception,
    )
    await events.published()
    [acquired] = await store.acquire_schedules("A", HOUR, 10)
    result = fire(acquired)
    assert result.next_fire_time is not None
    await store.release_schedules("A", [result])
    [schedule] = await store.get_schedules()
    assert schedule.last_fire_time == result.last_fire_time
    assert schedule.next_fire_time == result.next_fire_time
    assert schedule.trigger.__getstate__() == result.trigger.__getstate__()
    assert (schedule.acquired_by, schedule.acquired_until) == (None, None)
    assert schedule.args == (1,)
    # Its next fire time is in the future: nothing is due.
    assert await store.acquire_schedules("B", HOUR, 10) == []
    assert await store.get_next_schedule_run_time() == result.next_fire_time
    assert await events.published() == expected(
        ScheduleUpdated(
            schedule_id="s", task_id=TASK, next_fire_time=result.next_fire_time
        )
    )


async def test_a_schedule_released_without_a_next_fire_time_is_not_acquired_again(
    store: DataStore,
) -> None:
    run_time = now() - timedelta(minutes=1)
    trigger = DateTrigger(run_time=run_time)
    next_fire_time: Any = trigger.next()  # see ``Any`` above
    await store.add_schedule(
        Schedule(
            id="once",
            task_id=TASK,
            trigger=trigger,
            job_executor=EXECUTOR,
            next_fire_time=next_fire_time,
        ),
        ConflictPolicy.exception,
    )
    [acquired] = await store.acquire_schedules("A", HOUR, 10)
    result = fire(acquired)
    assert result.next_fire_time is None
    await store.release_schedules("A", [result])
    [schedule] = await store.get_schedules()
    assert (schedule.next_fire_time, schedule.last_fire_time) == (None, run_time)
    assert await store.acquire_schedules("A", HOUR, 10) == []
    assert await store.acquire_schedules("B", HOUR, 10) == []
    assert await store.get_next_schedule_run_time() is None


async def test_release_schedules_forgets_a_schedule_removed_while_acquired(
    kind: str, store: DataStore, events: EventLog
) -> None:
    """A schedule removed between acquire and release is forgotten, not revived.

    Known APScheduler bug: ``MemoryDataStore.release_schedules`` looks the schedule
    up by ID and raises ``KeyError``, which ends APScheduler's schedule loop (the
    whole scheduler). ScheduleZero's store must release the schedules still there
    and forget the one removed, publishing nothing for it.
    """
    for schedule_id in ("removed", "kept"):
        await store.add_schedule(
            make_schedule(schedule_id, first_fire=now() - timedelta(seconds=25)),
            ConflictPolicy.exception,
        )
    acquired = await store.acquire_schedules("A", HOUR, 10)
    assert sorted(ids(acquired)) == ["kept", "removed"]
    results = [fire(schedule) for schedule in acquired]
    await store.remove_schedules(["removed"])
    await events.published()
    if kind == APS_MEMORY:
        with pytest.raises(KeyError):
            await store.release_schedules("A", results)
        return
    await store.release_schedules("A", results)
    [kept] = [result for result in results if result.schedule_id == "kept"]
    [schedule] = await store.get_schedules()
    assert schedule.id == "kept"
    assert schedule.next_fire_time == kept.next_fire_time
    assert (schedule.acquired_by, schedule.acquired_until) == (None, None)
    assert await events.published() == expected(
        ScheduleUpdated(
            schedule_id="kept", task_id=TASK, next_fire_time=kept.next_fire_time
        )
    )


async def test_release_schedules_keeps_a_replacement_made_while_acquired(
    kind: str, store: DataStore, events: EventLog
) -> None:
    """A schedule replaced between acquire and release keeps the replacement's times.

    Known APScheduler behaviour: ``MemoryDataStore.release_schedules`` looks the
    schedule up by ID and writes the old schedule's fire times onto the
    replacement, so the replacement's own next fire time is lost (and no longer
    agrees with its trigger). ScheduleZero's store must leave the replacement as
    it was added, publishing nothing for it.
    """
    await store.add_schedule(
        make_schedule("s", first_fire=now() - timedelta(seconds=25), args=(1,)),
        ConflictPolicy.exception,
    )
    [acquired] = await store.acquire_schedules("A", HOUR, 10)
    result = fire(acquired)
    replacement = make_schedule("s", first_fire=now() + 2 * HOUR, args=(2,))
    added = state(replacement)
    await store.add_schedule(replacement, ConflictPolicy.replace)
    await events.published()
    await store.release_schedules("A", [result])
    [schedule] = await store.get_schedules()
    if kind == APS_MEMORY:
        assert schedule.args == (2,)
        assert schedule.next_fire_time == result.next_fire_time
        assert schedule.next_fire_time != added["next_fire_time"]
        return
    assert state(schedule) == added
    assert await store.get_next_schedule_run_time() == added["next_fire_time"]
    assert await events.published() == []


async def test_get_next_schedule_run_time_is_the_earliest_next_fire_time(
    store: DataStore,
) -> None:
    assert await store.get_next_schedule_run_time() is None
    await store.add_schedule(
        make_schedule("spent", first_fire=None), ConflictPolicy.exception
    )
    assert await store.get_next_schedule_run_time() is None
    earliest = now() + timedelta(minutes=1)
    for schedule in (
        make_schedule("later", first_fire=earliest + HOUR),
        make_schedule("earliest", first_fire=earliest),
    ):
        await store.add_schedule(schedule, ConflictPolicy.exception)
    assert await store.get_next_schedule_run_time() == earliest


# --------------------------------------------------------------------- jobs


async def test_add_job_keeps_every_field_and_publishes_job_added(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task())
    await events.published()
    args: Any = (1, "two")  # see ``Any`` above
    kwargs: Any = {"three": [3]}
    job = Job(
        task_id=TASK,
        args=args,
        kwargs=kwargs,
        schedule_id="s",
        scheduled_fire_time=now() - timedelta(seconds=2),
        executor=EXECUTOR,
        jitter=timedelta(seconds=1),
        start_deadline=now() + HOUR,
        result_expiration_time=timedelta(minutes=5),
        metadata={"owner": "ops"},
    )
    before = state(job)
    await store.add_job(job)
    assert [state(j) for j in await store.get_jobs()] == [before]
    assert await events.published() == expected(
        JobAdded(job_id=job.id, task_id=TASK, schedule_id="s")
    )


async def test_get_jobs_returns_all_of_them_or_those_asked_for(
    store: DataStore,
) -> None:
    await store.add_task(make_task())
    jobs = [make_job() for _ in range(3)]
    for job in jobs:
        await store.add_job(job)
    assert {job.id for job in await store.get_jobs()} == {job.id for job in jobs}
    asked = [jobs[0].id, jobs[2].id, uuid4()]
    assert {job.id for job in await store.get_jobs(asked)} == {jobs[0].id, jobs[2].id}
    assert await store.get_jobs([]) == []


async def test_acquire_jobs_leases_them_and_publishes_job_acquired(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task())
    job = make_job(schedule_id="s")
    await store.add_job(job)
    await events.published()
    before = now()
    assert [j.id for j in await store.acquire_jobs("A", HOUR)] == [job.id]
    after = now()
    # An acquired job is still in the store, and leased.
    [stored] = await store.get_jobs()
    assert stored.acquired_by == "A"
    assert stored.acquired_until is not None
    assert before + HOUR <= stored.acquired_until <= after + HOUR
    assert await events.published() == expected(
        JobAcquired.from_job(job, scheduler_id="A")
    )


async def test_a_leased_job_is_not_acquired_again(store: DataStore) -> None:
    await store.add_task(make_task())
    await store.add_job(make_job())
    assert len(await store.acquire_jobs("A", HOUR)) == 1
    assert await store.acquire_jobs("B", HOUR) == []
    assert await store.acquire_jobs("A", HOUR) == []


async def test_acquire_jobs_takes_no_more_than_the_limit(store: DataStore) -> None:
    await store.add_task(make_task())
    for _ in range(3):
        await store.add_job(make_job())
    assert len(await store.acquire_jobs("A", HOUR, limit=2)) == 2
    assert len(await store.acquire_jobs("A", HOUR, limit=2)) == 1
    assert await store.acquire_jobs("A", HOUR, limit=2) == []


async def test_acquire_jobs_respects_the_tasks_max_running_jobs(
    store: DataStore,
) -> None:
    await store.add_task(make_task(max_running_jobs=2))
    await store.add_task(make_task("other", max_running_jobs=None))
    for _ in range(3):
        await store.add_job(make_job())
    await store.add_job(make_job(task_id="other"))
    acquired = await store.acquire_jobs("A", HOUR)
    assert sorted(job.task_id for job in acquired) == ["other", TASK, TASK]
    assert (await store.get_task(TASK)).running_jobs == 2
    assert await store.acquire_jobs("B", HOUR) == []
    # Releasing one job frees one slot.
    [done, *_] = [job for job in acquired if job.task_id == TASK]
    await store.release_job("A", done, success(done))
    assert (await store.get_task(TASK)).running_jobs == 1
    assert [job.task_id for job in await store.acquire_jobs("B", HOUR)] == [TASK]


async def test_a_job_whose_lease_ran_out_is_acquired_by_another_scheduler(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task(max_running_jobs=1))
    job = make_job()
    await store.add_job(job)
    assert len(await store.acquire_jobs("A", EXPIRED)) == 1
    await events.published()
    # The run that lost its lease no longer holds the task's one slot.
    assert [j.id for j in await store.acquire_jobs("B", HOUR)] == [job.id]
    assert (await store.get_task(TASK)).running_jobs == 1
    [stored] = await store.get_jobs()
    assert stored.acquired_by == "B"
    assert await events.published() == expected(
        JobAcquired.from_job(job, scheduler_id="B")
    )


async def test_acquire_jobs_releases_a_job_past_its_start_deadline_as_missed(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task(max_running_jobs=1))
    late = make_job(schedule_id="s", start_deadline=now() - timedelta(seconds=1))
    on_time = make_job(schedule_id="s", start_deadline=now() + HOUR)
    await store.add_job(late)
    await store.add_job(on_time)
    await events.published()
    # The late job takes no slot: the on-time one gets the task's only one.
    assert [job.id for job in await store.acquire_jobs("A", HOUR)] == [on_time.id]
    assert [job.id for job in await store.get_jobs()] == [on_time.id]
    result = await store.get_job_result(late.id)
    assert result is not None
    assert result.outcome is JobOutcome.missed_start_deadline
    assert result.started_at is None
    assert await events.published() == expected(
        JobAcquired.from_job(on_time, scheduler_id="A"),
        released_by_store(late, "A", JobOutcome.missed_start_deadline),
    )


async def test_release_job_removes_it_and_publishes_job_released(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task())
    job = make_job(schedule_id="s")
    await store.add_job(job)
    [acquired] = await store.acquire_jobs("A", HOUR)
    await events.published()
    result = success(job, return_value={"answer": 42})
    await store.release_job("A", acquired, result)
    assert await store.get_jobs() == []
    assert (await store.get_task(TASK)).running_jobs == 0
    assert await events.published() == expected(released(job, result, "A"))


async def test_get_job_result_returns_the_result_once(store: DataStore) -> None:
    await store.add_task(make_task())
    job = make_job()
    await store.add_job(job)
    [acquired] = await store.acquire_jobs("A", HOUR)
    result = success(job, return_value={"answer": [4, 2]})
    await store.release_job("A", acquired, result)
    stored = await store.get_job_result(job.id)
    assert stored is not None
    assert state(stored) == state(result)
    assert await store.get_job_result(job.id) is None


async def test_get_job_result_returns_the_exception_of_a_failed_job(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task())
    job = make_job()
    await store.add_job(job)
    [acquired] = await store.acquire_jobs("A", HOUR)
    await events.published()
    finished_at = now()
    result = JobResult(
        job_id=job.id,
        outcome=JobOutcome.error,
        started_at=finished_at,
        finished_at=finished_at,
        expires_at=finished_at + HOUR,
        exception=ValueError("boom"),
    )
    await store.release_job("A", acquired, result)
    stored = await store.get_job_result(job.id)
    assert stored is not None
    assert stored.outcome is JobOutcome.error
    assert type(stored.exception) is ValueError
    assert stored.exception.args == ("boom",)
    assert await events.published() == expected(released(job, result, "A"))


async def test_get_job_result_returns_none_for_an_unknown_job(
    store: DataStore,
) -> None:
    assert await store.get_job_result(uuid4()) is None


async def test_a_result_that_expires_when_it_is_made_is_not_kept(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task())
    job = make_job(result_expiration_time=timedelta(0))
    await store.add_job(job)
    [acquired] = await store.acquire_jobs("A", HOUR)
    await events.published()
    result = success(job)
    assert result.expires_at == result.finished_at
    await store.release_job("A", acquired, result)
    assert await store.get_job_result(job.id) is None
    assert await store.get_jobs() == []
    assert await events.published() == expected(released(job, result, "A"))


async def test_extend_acquired_job_leases_extends_only_the_schedulers_own(
    store: DataStore,
) -> None:
    await store.add_task(make_task())
    mine, theirs = make_job(), make_job()
    await store.add_job(mine)
    await store.add_job(theirs)
    assert len(await store.acquire_jobs("A", EXPIRED)) == 2
    before = now()
    await store.extend_acquired_job_leases("A", {mine.id}, HOUR)
    await store.extend_acquired_job_leases("B", {theirs.id}, HOUR)
    [stored] = await store.get_jobs([mine.id])
    assert stored.acquired_until is not None
    assert stored.acquired_until >= before + HOUR
    assert [job.id for job in await store.acquire_jobs("B", HOUR)] == [theirs.id]


async def test_reap_abandoned_jobs_releases_the_schedulers_jobs_as_abandoned(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task(max_running_jobs=2))
    mine, theirs, waiting = make_job(schedule_id="s"), make_job(), make_job()
    await store.add_job(mine)
    assert len(await store.acquire_jobs("A", HOUR)) == 1
    await store.add_job(theirs)
    assert len(await store.acquire_jobs("B", HOUR)) == 1
    await store.add_job(waiting)
    await events.published()
    await store.reap_abandoned_jobs("A")
    assert {job.id for job in await store.get_jobs()} == {theirs.id, waiting.id}
    result = await store.get_job_result(mine.id)
    assert result is not None
    assert result.outcome is JobOutcome.abandoned
    assert await events.published() == expected(
        released_by_store(mine, "A", JobOutcome.abandoned)
    )
    # The abandoned job's slot is free again.
    assert (await store.get_task(TASK)).running_jobs == 1
    assert [job.id for job in await store.acquire_jobs("A", HOUR)] == [waiting.id]


async def test_cleanup_purges_expired_job_results(store: DataStore) -> None:
    await store.add_task(make_task())
    expired, fresh = make_job(), make_job()
    for job in (expired, fresh):
        await store.add_job(job)
    acquired = {job.id: job for job in await store.acquire_jobs("A", HOUR)}
    finished_at = now() - timedelta(minutes=2)
    await store.release_job(
        "A",
        acquired[expired.id],
        JobResult(
            job_id=expired.id,
            outcome=JobOutcome.success,
            finished_at=finished_at,
            expires_at=finished_at + timedelta(minutes=1),
        ),
    )
    await store.release_job("A", acquired[fresh.id], success(fresh))
    await store.cleanup()
    assert await store.get_job_result(expired.id) is None
    assert await store.get_job_result(fresh.id) is not None


async def test_cleanup_releases_jobs_whose_lease_ran_out_as_abandoned(
    store: DataStore, events: EventLog
) -> None:
    """The abc says ``cancelled``; both APScheduler stores say ``abandoned``."""
    await store.add_task(make_task(max_running_jobs=2))
    lost, held = make_job(), make_job()
    # Held first: an acquire after the lost one would take the lost one over.
    await store.add_job(held)
    assert len(await store.acquire_jobs("A", HOUR)) == 1
    await store.add_job(lost)
    assert len(await store.acquire_jobs("A", EXPIRED)) == 1
    await events.published()
    await store.cleanup()
    assert [job.id for job in await store.get_jobs()] == [held.id]
    assert (await store.get_task(TASK)).running_jobs == 1
    assert await events.published() == expected(
        released_by_store(lost, "A", JobOutcome.abandoned)
    )


async def test_cleanup_removes_finished_schedules_that_have_no_jobs(
    store: DataStore, events: EventLog
) -> None:
    await store.add_task(make_task())
    for schedule in (
        make_schedule("finished", first_fire=None),
        make_schedule("finished-running", first_fire=None),
        make_schedule("active", first_fire=now() + HOUR),
    ):
        await store.add_schedule(schedule, ConflictPolicy.exception)
    await store.add_job(make_job(schedule_id="finished-running"))
    assert len(await store.acquire_jobs("A", HOUR)) == 1
    await events.published()
    await store.cleanup()
    assert sorted(ids(await store.get_schedules())) == ["active", "finished-running"]
    assert await events.published() == expected(
        ScheduleRemoved(schedule_id="finished", task_id=TASK, finished=True)
    )


# ------------------------------------------ durability (SQLite, PostgreSQL)


async def test_schedules_and_tasks_survive_reopening_the_store(
    durable_place: Path | str,
) -> None:
    path = durable_place
    store = schedule_store(path)
    async with started(store):
        await store.add_task(make_task(max_running_jobs=2, metadata={"v": 1}))
        await store.add_task(make_task("other", func="other:work"))
        schedules = [
            make_schedule(
                "paused",
                first_fire=now() + HOUR,
                paused=True,
                args=(1, "two"),
                kwargs={"three": [3]},
                metadata={"owner": "ops", "nested": {"n": [1, "x"]}},
            ),
            make_schedule("fired", first_fire=now() - timedelta(seconds=25)),
            make_schedule("spent", first_fire=None, task_id="other"),
        ]
        for schedule in schedules:
            await store.add_schedule(schedule, ConflictPolicy.exception)
        [acquired] = await store.acquire_schedules("A", HOUR, 10)
        await store.release_schedules("A", [fire(acquired)])
        schedules_before = sorted(
            (state(s) for s in await store.get_schedules()), key=lambda s: s["id"]
        )
        tasks_before = [state(t) for t in await store.get_tasks()]
        next_run_before = await store.get_next_schedule_run_time()
    assert schedules_before[0]["last_fire_time"] is not None

    reopened = schedule_store(path)
    async with started(reopened):
        schedules_after = sorted(
            (state(s) for s in await reopened.get_schedules()), key=lambda s: s["id"]
        )
        assert schedules_after == schedules_before
        assert [state(t) for t in await reopened.get_tasks()] == tasks_before
        assert await reopened.get_next_schedule_run_time() == next_run_before
        # The trigger carries on from where it was, not from its start.
        [fired] = await reopened.get_schedules({"fired"})
        assert fired.next_fire_time is not None
        assert fired.trigger.next() == fired.next_fire_time + timedelta(seconds=10)


async def test_removals_and_replacements_survive_reopening_the_store(
    durable_place: Path | str,
) -> None:
    path = durable_place
    store = schedule_store(path)
    async with started(store):
        for task_id in ("removed", "kept"):
            await store.add_task(make_task(task_id))
        for schedule_id in ("removed", "replaced"):
            await store.add_schedule(
                make_schedule(schedule_id, first_fire=now() + HOUR, args=(1,)),
                ConflictPolicy.exception,
            )
        replacement = make_schedule("replaced", first_fire=now() + 2 * HOUR, args=(2,))
        added = state(replacement)
        await store.add_schedule(replacement, ConflictPolicy.replace)
        await store.remove_schedules(["removed"])
        await store.remove_task("removed")

    reopened = schedule_store(path)
    async with started(reopened):
        assert ids(await reopened.get_tasks()) == ["kept"]
        assert [state(s) for s in await reopened.get_schedules()] == [added]


async def test_a_schedule_paused_while_held_keeps_the_fire_times_the_pass_gave_it(
    make_store: Callable[[], DataStore],
) -> None:
    """APScheduler pauses (and resumes) by storing a copy sharing the trigger.

    Done while the schedule loop holds the schedule, the copy must still take the
    fire times of that pass: left at the fire just taken, a resume would fire it
    again.
    """
    store = make_store()
    async with started(store):
        await store.add_schedule(
            make_schedule("s", first_fire=now() - timedelta(seconds=1)),
            ConflictPolicy.exception,
        )
        [held] = await store.acquire_schedules("loop", timedelta(seconds=30), 10)
        fired = held.next_fire_time
        assert fired is not None
        following = held.trigger.next()  # the loop computes the next fire time
        [current] = await store.get_schedules({"s"})
        await store.add_schedule(
            attrs.evolve(current, paused=True), ConflictPolicy.replace
        )
        await store.release_schedules(
            "loop",
            [
                ScheduleResult(
                    schedule_id="s",
                    task_id=TASK,
                    trigger=held.trigger,
                    last_fire_time=fired,
                    next_fire_time=following,
                )
            ],
        )
        [paused] = await store.get_schedules({"s"})
    assert paused.paused
    assert paused.next_fire_time == following
    assert paused.last_fire_time == fired
