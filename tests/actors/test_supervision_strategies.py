"""Supervision strategies, and the ``Supervisor`` actor with its declared children."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from actors import (
    Actor,
    ActorCrashed,
    ActorError,
    ActorRef,
    ActorSystem,
    Child,
    Escalated,
    Restarted,
    Stopped,
    Strategy,
    Supervision,
    Supervisor,
)
from actors.testing import ManualClock, record_events


class Boom(Exception):
    """The failure test actors raise on purpose."""


class Journal:
    """What the test actors did, kept outside them so that restarts keep it."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.started: list[str] = []
        self.stopped: list[str] = []

    def made(self, label: str) -> int:
        """How many instances of ``label`` the factory has made."""
        return self.created.count(label)


class Worker(Actor):
    """Crashes on ``boom``; answers anything else with its label and incarnation."""

    def __init__(self, label: str, journal: Journal) -> None:
        journal.created.append(label)
        self.label = label
        self.journal = journal
        self.incarnation = journal.made(label)

    async def on_start(self) -> None:
        self.journal.started.append(self.label)

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise Boom(self.label)
        return (self.label, self.incarnation, message)

    async def on_stop(self) -> None:
        self.journal.stopped.append(self.label)


class FailingStart(Actor):
    """Its ``on_start`` raises."""

    def __init__(self, journal: Journal) -> None:
        journal.created.append("failing")

    async def on_start(self) -> None:
        raise Boom("no start")


LABELS = ("a", "b", "c")


def supervisor(journal: Journal, strategy: Strategy) -> Supervisor:
    """A Supervisor over Workers ``a``, ``b``, ``c`` with ``strategy``."""
    return Supervisor(
        [Child(Worker, label, journal, name=label) for label in LABELS],
        supervision=Supervision(strategy=strategy),
    )


def child(system: ActorSystem, path: str) -> ActorRef:
    """The living actor at ``path``."""
    ref = system.lookup(path)
    assert ref is not None, path
    return ref


async def crash_and_settle(
    system: ActorSystem, path: str, restarted: list[str]
) -> dict[str, int]:
    """Crash the child at ``path``; wait until ``restarted`` restarted.

    Returns how many Restarted events each of ``a``, ``b``, ``c`` got.
    """
    async with record_events(system) as log:
        child(system, path).tell("boom")
        parent = path.rsplit("/", 1)[0]
        for label in restarted:
            await log.wait_for(Restarted, f"{parent}/{label}")
        # A probe ask to every child orders us after any restart still under way.
        for label in LABELS:
            await child(system, f"{parent}/{label}").ask("ping")
        return {label: len(log.of(Restarted, f"{parent}/{label}")) for label in LABELS}


# ------------------------------------------------------------------ strategies


async def test_one_for_one_restarts_only_the_failed_child() -> None:
    journal = Journal()
    async with ActorSystem() as system:
        await system.spawn(supervisor, journal, "one_for_one", name="sup")
        restarts = await crash_and_settle(system, "/user/sup/b", ["b"])

        assert restarts == {"a": 0, "b": 1, "c": 0}
        assert [journal.made(label) for label in LABELS] == [1, 2, 1]
        assert journal.stopped == ["b"]


async def test_one_for_all_restarts_every_sibling_in_start_order() -> None:
    journal = Journal()
    async with ActorSystem() as system:
        await system.spawn(supervisor, journal, "one_for_all", name="sup")
        restarts = await crash_and_settle(system, "/user/sup/c", ["a", "b", "c"])

        assert restarts == {"a": 1, "b": 1, "c": 1}
        assert [journal.made(label) for label in LABELS] == [2, 2, 2]
        assert journal.started == ["a", "b", "c", "a", "b", "c"]
        # The crashed child went first; its siblings were stopped last started first.
        assert journal.stopped == ["c", "b", "a"]
        for label in LABELS:
            reply = await child(system, f"/user/sup/{label}").ask("who")
            assert reply == (label, 2, "who")


async def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it() -> (
    None
):
    journal = Journal()
    async with ActorSystem() as system:
        await system.spawn(supervisor, journal, "rest_for_one", name="sup")
        restarts = await crash_and_settle(system, "/user/sup/b", ["b", "c"])

        assert restarts == {"a": 0, "b": 1, "c": 1}
        assert [journal.made(label) for label in LABELS] == [1, 2, 2]
        assert journal.started == ["a", "b", "c", "b", "c"]
        assert journal.stopped == ["b", "c"]


class OneForAllParent(Actor):
    """A plain actor whose class-level supervision is one_for_all."""

    supervision: ClassVar[Supervision] = Supervision(strategy="one_for_all")

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_start(self) -> None:
        for label in LABELS:
            await self.spawn(Worker, label, self.journal, name=label)


async def test_an_actors_class_supervision_governs_the_children_it_spawns() -> None:
    journal = Journal()
    async with ActorSystem() as system:
        await system.spawn(OneForAllParent, journal, name="parent")
        restarts = await crash_and_settle(system, "/user/parent/a", ["a", "b", "c"])

        assert restarts == {"a": 1, "b": 1, "c": 1}
        assert [journal.made(label) for label in LABELS] == [2, 2, 2]
        assert journal.started == ["a", "b", "c", "a", "b", "c"]


async def test_group_restart_counts_once_toward_the_restart_intensity() -> None:
    journal = Journal()
    async with ActorSystem(clock=ManualClock()) as system, record_events(system) as log:
        await system.spawn(
            Supervisor,
            [Child(Worker, label, journal, name=label) for label in LABELS],
            Supervision(strategy="one_for_all", max_restarts=1),
            name="sup",
        )
        restarts = await crash_and_settle(system, "/user/sup/a", ["a", "b", "c"])
        assert restarts == {"a": 1, "b": 1, "c": 1}
        assert log.of(Escalated) == []

        child(system, "/user/sup/b").tell("boom")
        escalated = await log.wait_for(Escalated)
        assert escalated.path == "/user/sup"
        assert escalated.child == "/user/sup/b"
        assert isinstance(escalated.error, Boom)
        await log.wait_for(Restarted, "/user/sup")
        assert [journal.made(label) for label in LABELS] == [3, 3, 3]


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_group_restart_stops_a_temporary_sibling_instead_of_restarting_it(
    strategy: Strategy,
) -> None:
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        await system.spawn(
            Supervisor,
            [
                Child(Worker, "a", journal, name="a"),
                Child(Worker, "b", journal, name="b"),
                Child(Worker, "c", journal, name="c", restart="temporary"),
            ],
            Supervision(strategy=strategy),
            name="sup",
        )
        temporary = child(system, "/user/sup/c")
        child(system, "/user/sup/b").tell("boom")
        await log.wait_for(Restarted, "/user/sup/b")
        assert await child(system, "/user/sup/b").ask("ping") == ("b", 2, "ping")

        assert journal.made("c") == 1
        assert not temporary.is_alive
        assert system.lookup("/user/sup/c") is None


# ------------------------------------------------------------------ Supervisor


async def test_supervisor_starts_children_left_to_right_before_spawn_returns() -> None:
    journal = Journal()
    async with ActorSystem() as system:
        await system.spawn(supervisor, journal, "one_for_one", name="sup")

        assert journal.started == ["a", "b", "c"]
        for label in LABELS:
            assert child(system, f"/user/sup/{label}").is_alive
        snapshot = system.snapshot().find("/user/sup")
        assert snapshot is not None
        assert [kid.path for kid in snapshot.children] == [
            "/user/sup/a",
            "/user/sup/b",
            "/user/sup/c",
        ]


async def test_supervisor_stop_stops_children_in_reverse_order() -> None:
    journal = Journal()
    async with ActorSystem() as system:
        sup = await system.spawn(supervisor, journal, "one_for_one", name="sup")
        kids = [child(system, f"/user/sup/{label}") for label in LABELS]
        await sup.stop()

        assert journal.stopped == ["c", "b", "a"]
        assert not any(kid.is_alive for kid in kids)


async def test_system_shutdown_stops_supervisor_children_in_reverse_order() -> None:
    journal = Journal()
    async with ActorSystem() as system:
        await system.spawn(supervisor, journal, "one_for_one", name="sup")
    assert journal.stopped == ["c", "b", "a"]


def test_supervisor_rejects_duplicate_child_names() -> None:
    journal = Journal()
    with pytest.raises(ActorError, match="a"):
        Supervisor([Child(Worker, "a", journal, name="a")] * 2)


async def test_spawning_a_supervisor_with_duplicate_child_names_fails() -> None:
    journal = Journal()
    async with ActorSystem() as system:
        twins = [Child(Worker, "a", journal, name="a")] * 2
        with pytest.raises(ActorError):
            await system.spawn(Supervisor, twins, name="sup")
        assert system.lookup("/user/sup") is None
        assert journal.created == []


async def test_supervisor_spawn_raises_actor_crashed_when_a_child_fails_to_start() -> (
    None
):
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        children = [
            Child(Worker, "a", journal, name="a"),
            Child(FailingStart, journal, name="bad"),
            Child(Worker, "c", journal, name="c"),
        ]
        with pytest.raises(ActorCrashed) as crashed:
            await system.spawn(Supervisor, children, name="sup")

        causes: list[BaseException] = []
        error: BaseException | None = crashed.value
        while error is not None:
            causes.append(error)
            error = error.__cause__
        assert any(isinstance(cause, Boom) for cause in causes)
        assert system.lookup("/user/sup") is None
        # The child started before the failure was stopped, the one after never made.
        assert journal.stopped == ["a"]
        assert journal.made("c") == 0
        await log.wait_for(Stopped, "/user/sup")
