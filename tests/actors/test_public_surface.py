"""The names ``actors`` promises its users, and how its errors relate."""

from __future__ import annotations

import importlib
import inspect

import anyio
import attrs
import pytest

import actors
import actors.lowlevel
import actors.testing
from actors import (
    ActorCrashed,
    ActorError,
    ActorEvent,
    ActorKilled,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    Backoff,
    Crashed,
    DeadLetter,
    Escalated,
    MailboxFull,
    Restarted,
    Started,
    Stopped,
    Supervision,
    Terminated,
)
from actors.testing import ManualClock

#: DESIGN.md section 2, "Public names".
DESIGNED = {
    "ActorSystem",
    "Actor",
    "ActorRef",
    "Supervision",
    "Backoff",
    "Supervisor",
    "Child",
    "Terminated",
    "ActorSnapshot",
    "ActorEvent",
    "Started",
    "Stopped",
    "Crashed",
    "Restarted",
    "Escalated",
    "DeadLetter",
    "ActorError",
    "AskTimeout",
    "ActorCrashed",
    "ActorStopped",
    "MailboxFull",
}

#: Exported beyond the design's list: types users meet in signatures and counters.
EXTRAS = {
    "ActorDeath",
    "ActorKilled",
    "ExpectedCrash",
    "ActorState",
    "Clock",
    "MailboxStatistics",
    "Overflow",
    "RealClock",
    "RestartType",
    "Strategy",
    "SystemStatistics",
    "Timer",
}

#: Submodules re-exported by name, as ``trio.lowlevel`` is.
MODULES = {"lowlevel"}

#: What an ``ActorSystem`` shows its users: DESIGN.md's list, and its counters.
SYSTEM_PUBLIC = {"name", "spawn", "lookup", "snapshot", "events", "statistics"}


def test_all_lists_exactly_the_designed_names_and_the_known_extras() -> None:
    assert len(actors.__all__) == len(set(actors.__all__))
    assert set(actors.__all__) == DESIGNED | EXTRAS | MODULES


@pytest.mark.parametrize("name", sorted(DESIGNED | EXTRAS | MODULES))
def test_every_public_name_is_importable_from_the_package(name: str) -> None:
    module = importlib.import_module("actors")
    assert getattr(module, name) is not None


def test_testing_aids_are_exported() -> None:
    assert set(actors.testing.__all__) == {
        "Probe",
        "ManualClock",
        "EventLog",
        "record_events",
        "wait_until",
    }
    for name in actors.testing.__all__:
        assert getattr(actors.testing, name) is not None


def test_every_error_is_an_actor_error() -> None:
    for error in (AskTimeout, ActorCrashed, ActorStopped, MailboxFull, ActorKilled):
        assert issubclass(error, ActorError)
    assert issubclass(ActorError, Exception)


def test_ask_timeout_is_also_the_builtin_timeout_error() -> None:
    assert issubclass(AskTimeout, TimeoutError)
    with pytest.raises(TimeoutError):
        raise AskTimeout("no reply")


def test_errors_are_distinct_kinds() -> None:
    kinds = [AskTimeout, ActorCrashed, ActorStopped, MailboxFull, ActorKilled]
    for kind in kinds:
        others = [other for other in kinds if other is not kind]
        assert not any(issubclass(kind, other) for other in others)


def test_lifecycle_events_share_the_actor_event_base() -> None:
    for event in (Started, Stopped, Crashed, Restarted, Escalated, DeadLetter):
        assert issubclass(event, ActorEvent)
        assert attrs.has(event)
    # Terminated is a message to a watcher, not a system event.
    assert not issubclass(Terminated, ActorEvent)


def test_events_and_messages_are_frozen() -> None:
    started = Started(path="/user/x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(started, "path", "/user/y")  # noqa: B010
    terminated = Terminated(ref=None, reason="stopped")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(terminated, "reason", "failed")  # noqa: B010


def test_supervision_and_backoff_defaults_are_the_documented_ones() -> None:
    assert Supervision() == Supervision(
        strategy="one_for_one", max_restarts=3, within=5.0
    )
    assert Backoff() == Backoff(
        min=0.1, max=30.0, factor=2.0, jitter=0.2, reset_after=10.0
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(Supervision(), "max_restarts", 1)  # noqa: B010


def test_spawn_and_ask_defaults_are_the_documented_ones() -> None:
    spawn = inspect.signature(ActorSystem.spawn).parameters
    assert spawn["name"].default is None
    assert spawn["capacity"].default == 1000
    assert spawn["overflow"].default == "block"
    assert spawn["restart"].default == "transient"
    assert spawn["backoff"].default is None
    actor_spawn = inspect.signature(actors.Actor.spawn).parameters
    assert {name: parameter.default for name, parameter in actor_spawn.items()} == {
        name: parameter.default for name, parameter in spawn.items()
    }
    ask = inspect.signature(ActorRef.ask).parameters
    assert ask["timeout"].default == 5.0
    assert inspect.signature(ActorSystem).parameters["name"].default == "sz"


def test_blocking_calls_are_async_and_their_sync_twins_are_not() -> None:
    for method in (ActorRef.send, ActorRef.ask, ActorRef.stop, ActorRef.kill):
        assert inspect.iscoroutinefunction(method)
    assert not inspect.iscoroutinefunction(ActorRef.tell)
    assert inspect.iscoroutinefunction(ActorSystem.spawn)
    assert not inspect.iscoroutinefunction(ActorSystem.lookup)
    assert not inspect.iscoroutinefunction(ActorSystem.snapshot)


def test_lowlevel_is_the_submodule_and_lists_its_accessors() -> None:
    assert actors.lowlevel is importlib.import_module("actors.lowlevel")
    assert set(actors.lowlevel.__all__) == {
        "clock",
        "event_factory",
        "loop_caller",
        "recent_deaths",
        "recent_restarts",
        "shutting_down",
        "task_group",
    }
    for name in actors.lowlevel.__all__:
        assert callable(getattr(actors.lowlevel, name))


def _public(system: ActorSystem) -> set[str]:
    return {name for name in dir(system) if not name.startswith("_")}


async def test_a_system_shows_only_its_designed_names() -> None:
    system = ActorSystem("surface")
    assert _public(system) == SYSTEM_PUBLIC
    async with system:
        assert _public(system) == SYSTEM_PUBLIC
    assert _public(system) == SYSTEM_PUBLIC


async def test_lowlevel_reaches_a_running_systems_machinery() -> None:
    clock = ManualClock()
    system = ActorSystem("lowlevel", clock=clock)
    with pytest.raises(ActorError):
        actors.lowlevel.event_factory(system)
    async with system:
        assert actors.lowlevel.clock(system) is clock
        assert not actors.lowlevel.shutting_down(system)
        new_event = actors.lowlevel.event_factory(system)
        event = new_event()
        assert isinstance(event, anyio.Event)
        actors.lowlevel.task_group(system).start_soon(_set, event)
        with anyio.fail_after(5):
            await event.wait()
    assert actors.lowlevel.shutting_down(system)
    with pytest.raises(ActorError):
        actors.lowlevel.task_group(system)


async def _set(event: anyio.Event) -> None:
    event.set()
