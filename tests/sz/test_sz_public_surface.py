"""The names ``sz`` promises its users: ``import sz`` is the front door."""

from __future__ import annotations

import importlib
import inspect
from datetime import UTC, datetime

import attrs
import pytest

import sz
import sz.governors
import sz.remote
import sz.scenarios
import sz.store

#: What ``from sz import ...`` offers: the facade, the types its calls take and
#: return, and its errors.
PUBLIC = {
    # the facade and what it returns
    "ScheduleZero",
    "Schedule",
    "Job",
    "Attempt",
    "Outcome",
    "Reason",
    "HandlerStatus",
    "RunningJob",
    "JobHandle",
    "JobStatus",
    "JobState",
    "LiveCounts",
    "RecentDeadLetter",
    "HandlerHealth",
    "HealthPolicy",
    "GovernorStatus",
    "BrokerSettings",
    "BrokerStats",
    # remote workers
    "ZMQHandler",
    # configuration
    "Config",
    "load_config",
    "settle_heap",
    # errors
    "SzError",
    "ConfigError",
    "UnknownTask",
    "ScheduleNotFound",
    "JobFailed",
    "JobTimeout",
    "NoHealthyHandler",
    "Overloaded",
    "StoreError",
    "FencedOut",
    "RemoteError",
    "ConnectionLost",
    "ScenarioError",
    "ExpressionError",
    "UnknownScenario",
    "TooManyRuns",
}

#: What a ``ScheduleZero`` shows: its calls, and the settings it was made with.
FACADE = {
    "from_config",
    "handler",
    "system",
    "start",
    "stop",
    "drain",
    "submit",
    "job",
    "jobs",
    "schedule",
    "unschedule",
    "pause",
    "resume",
    "schedules",
    "get_schedule",
    "run_now",
    "governors",
    "handlers",
    "live_counts",
    "broker",
    "history",
    "last_runs",
    "metrics",
    "wait_store_lost",
    "upcoming",
    "dead_letters",
    "scenarios",
}
SETTINGS = {"config", "name", "store_path", "store_url", "broker_settings"}

#: The calls that wait (checkpoints), as STYLE rule 3 asks.
ASYNC = FACADE - {
    "from_config",
    "handler",
    "system",
    "job",
    "dead_letters",
    "metrics",
    "live_counts",
    "scenarios",
}

#: The job's hand-offs between actors: cheap internal messages, never public.
INTERNAL = {"Submit", "Execute", "Finished", "Register", "Unregister", "Bridge"}


def test_all_lists_exactly_the_public_names() -> None:
    assert len(sz.__all__) == len(set(sz.__all__))
    assert set(sz.__all__) == PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_is_importable_from_the_package(name: str) -> None:
    assert getattr(importlib.import_module("sz"), name) is not None


@pytest.mark.parametrize("package", [sz.governors, sz.remote, sz.scenarios, sz.store])
def test_every_subpackage_exports_what_its_all_lists(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(package, name) is not None


def test_the_hot_path_messages_stay_internal() -> None:
    assert INTERNAL.isdisjoint(dir(sz))


def test_the_facade_shows_its_calls_and_settings_only() -> None:
    calls = {name for name in dir(sz.ScheduleZero) if not name.startswith("_")}
    assert calls == FACADE
    scheduler = sz.ScheduleZero()
    public = {name for name in vars(scheduler) if not name.startswith("_")}
    assert public == SETTINGS


@pytest.mark.parametrize("name", sorted(FACADE))
def test_calls_that_wait_are_async_and_the_others_are_not(name: str) -> None:
    member = inspect.getattr_static(sz.ScheduleZero, name)
    function = getattr(member, "__func__", member)
    if isinstance(member, property):
        function = member.fget
    assert inspect.iscoroutinefunction(function) == (name in ASYNC)


def test_the_documented_defaults_hold() -> None:
    schedule = inspect.signature(sz.ScheduleZero.schedule).parameters
    assert schedule["trigger"].default == "cron"
    assert schedule["coalesce"].default == "latest"
    assert schedule["paused"].default is False
    run_now = inspect.signature(sz.ScheduleZero.run_now).parameters
    assert run_now["timeout"].default is None
    assert inspect.signature(sz.ScheduleZero.history).parameters["limit"].default == 100
    assert inspect.signature(sz.ScheduleZero).parameters["name"].default == "sz"


@pytest.mark.parametrize(
    "kind",
    [
        sz.Schedule,
        sz.Job,
        sz.Attempt,
        sz.HandlerStatus,
        sz.GovernorStatus,
        sz.RunningJob,
        sz.JobStatus,
        sz.RecentDeadLetter,
    ],
)
def test_public_types_are_frozen(kind: type) -> None:
    blank: object = object.__new__(kind)
    first = attrs.fields(kind)[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(blank, first, None)


def test_jobs_and_rows_are_built_by_keyword_and_cannot_change() -> None:
    now = datetime.now(UTC)
    job = sz.Job(task="send", scheduled_at=now, args=(1,), wait=5.0)
    row = sz.Attempt(
        job_id=job.id,
        schedule_id=None,
        task="send",
        handler="send",
        scheduled_at=now,
        started_at=now,
        finished_at=now,
        duration=0.0,
        outcome="success",
        error=None,
        attempt=1,
        final=True,
    )
    assert (job.task, job.args, job.wait, row.outcome) == ("send", (1,), 5.0, "success")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(job, "task", "other")  # noqa: B010
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(row, "outcome", "failure")  # noqa: B010
