"""Restart in place, restart types, kill(), and supervision without ``receive``."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import (
    Actor,
    ActorCrashed,
    ActorKilled,
    ActorRef,
    ActorSystem,
    Crashed,
    Restarted,
    RestartType,
    Stopped,
    Strategy,
    Supervision,
    Terminated,
)
from actors.testing import Probe, record_events


class Boom(Exception):
    """The failure test actors raise on purpose."""


class Journal:
    """What the test actors did, kept outside them so that restarts keep it."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.stopped: list[str] = []
        self.handled: list[tuple[str, int, Any]] = []

    def made(self, label: str) -> int:
        """How many instances of ``label`` the factory has made."""
        return self.created.count(label)


class Worker(Actor):
    """Counts ``inc``, crashes on ``boom``, stops itself on ``finish``."""

    def __init__(self, label: str, journal: Journal) -> None:
        journal.created.append(label)
        self.label = label
        self.journal = journal
        self.incarnation = journal.made(label)

    async def on_start(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        match message:
            case "boom":
                raise Boom(f"{self.label} #{self.incarnation}")
            case "inc":
                self.count += 1
            case "get":
                return self.count
            case "finish":
                await self.stop()
            case _:
                self.journal.handled.append((self.label, self.incarnation, message))
                return (self.incarnation, message)
        return None

    async def on_stop(self) -> None:
        self.journal.stopped.append(self.label)


class Family(Actor):
    """Starts a ``kid`` Worker in every incarnation; crashes on ``boom``."""

    def __init__(self, journal: Journal) -> None:
        journal.created.append("family")
        self.journal = journal

    async def on_start(self) -> None:
        self.kid = await self.spawn(Worker, "kid", self.journal, name="kid")

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise Boom("family")
        return self.kid


class Hanger(Actor):
    """On ``hang`` it awaits, inside ``receive``, an event that is never set."""

    def __init__(self, entered: anyio.Event, journal: Journal) -> None:
        journal.created.append("hanger")
        self.entered = entered

    async def receive(self, message: Any) -> Any:
        if message == "hang":
            self.entered.set()
            await anyio.Event().wait()
        return "pong"


class Watcher(Actor):
    """Watches ``target`` and forwards every ``Terminated`` to ``out``."""

    def __init__(self, target: ActorRef, out: ActorRef) -> None:
        self.target = target
        self.out = out

    async def on_start(self) -> None:
        self.watch(self.target)

    async def receive(self, message: Any) -> Any:
        self.out.tell(message)


# ------------------------------------------------------------ restart in place


async def test_restart_keeps_ref_and_mailbox_and_new_instance_takes_the_rest() -> None:
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Worker, "w", journal, name="w")
        for message in ("a", "boom", "b", "c"):
            ref.tell(message)

        assert await ref.ask("d") == (2, "d")

        assert journal.handled == [
            ("w", 1, "a"),
            ("w", 2, "b"),
            ("w", 2, "c"),
            ("w", 2, "d"),
        ]
        assert journal.made("w") == 2
        assert ref.is_alive
        assert system.lookup("/user/w") is ref
        await log.wait_for(Restarted, "/user/w")
        assert len(log.of(Restarted, "/user/w")) == 1


async def test_restarted_actor_starts_from_fresh_state() -> None:
    journal = Journal()
    async with ActorSystem() as system:
        ref = await system.spawn(Worker, "w", journal, name="w")
        for message in ("inc", "inc", "boom", "inc"):
            ref.tell(message)

        assert await ref.ask("get") == 1
        assert journal.made("w") == 2


async def test_only_the_crashing_message_is_dropped_and_the_crash_reports_it() -> None:
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Worker, "w", journal, name="w")
        ref.tell("boom")
        with pytest.raises(ActorCrashed) as crashed:
            await ref.ask("boom")
        assert await ref.ask("after") == (3, "after")

        await log.wait_for(Crashed, "/user/w", count=2)
        first, second = log.of(Crashed, "/user/w")
        assert first.message == "boom"
        assert isinstance(first.error, Boom)
        assert str(first.error) == "w #1"
        assert second.message == "boom"
        assert second.error is crashed.value.__cause__
        assert journal.handled == [("w", 3, "after")]


async def test_crash_stops_the_crashed_actors_children() -> None:
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        family = await system.spawn(Family, journal, name="family")
        first_kid = await family.ask("kid")
        family.tell("boom")
        await log.wait_for(Restarted, "/user/family")

        assert journal.stopped == ["kid"]
        assert not first_kid.is_alive
        second_kid = system.lookup("/user/family/kid")
        assert second_kid is not None
        assert second_kid is not first_kid
        assert second_kid.is_alive
        assert journal.made("kid") == 2
        assert journal.made("family") == 2


# ---------------------------------------------------------------- restart types


async def test_permanent_actor_restarts_after_a_crash_and_after_stopping_itself() -> (
    None
):
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Worker, "w", journal, name="w", restart="permanent")
        ref.tell("boom")
        await log.wait_for(Restarted, "/user/w")
        ref.tell("finish")
        await log.wait_for(Restarted, "/user/w", count=2)

        assert ref.is_alive
        assert journal.made("w") == 3
        assert await ref.ask("hello") == (3, "hello")
        assert log.of(Stopped, "/user/w") == []


async def test_transient_actor_restarts_after_a_crash_not_after_stopping_itself() -> (
    None
):
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Worker, "w", journal, name="w", restart="transient")
        ref.tell("boom")
        await log.wait_for(Restarted, "/user/w")
        ref.tell("finish")
        stopped = await log.wait_for(Stopped, "/user/w")

        assert stopped.reason == "finished"
        assert not ref.is_alive
        assert journal.made("w") == 2
        assert len(log.of(Restarted, "/user/w")) == 1


async def test_temporary_actor_is_not_restarted_after_a_crash_and_watchers_hear() -> (
    None
):
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Worker, "w", journal, name="w", restart="temporary")
        probe = await Probe.spawn(system, name="probe")
        await system.spawn(Watcher, ref, probe.ref, name="watcher")
        ref.tell("boom")

        terminated = await probe.expect(Terminated)
        assert terminated.ref is ref
        assert terminated.reason == "failed"
        assert isinstance(terminated.error, Boom)
        assert not ref.is_alive
        assert journal.made("w") == 1
        assert log.of(Restarted, "/user/w") == []


async def test_temporary_actor_is_not_restarted_after_stopping_itself() -> None:
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Worker, "w", journal, name="w", restart="temporary")
        ref.tell("finish")
        stopped = await log.wait_for(Stopped, "/user/w")

        assert stopped.reason == "finished"
        assert not ref.is_alive
        assert journal.made("w") == 1


@pytest.mark.parametrize("restart", ["permanent", "transient", "temporary"])
async def test_stop_from_outside_is_final_whatever_the_restart_type(
    restart: RestartType,
) -> None:
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Worker, "w", journal, name="w", restart=restart)
        await ref.stop()

        assert not ref.is_alive
        assert system.lookup("/user/w") is None
        assert journal.stopped == ["w"]
        assert journal.made("w") == 1
        stopped = await log.wait_for(Stopped, "/user/w")
        assert stopped.reason == "stopped"
        assert log.of(Restarted, "/user/w") == []


# ------------------------------------------------------------------------ kill


async def test_kill_interrupts_an_actor_awaiting_inside_receive_as_a_crash() -> None:
    journal = Journal()
    entered = anyio.Event()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Hanger, entered, journal, name="h")
        ref.tell("hang")
        await entered.wait()
        await ref.kill()

        crashed = await log.wait_for(Crashed, "/user/h")
        assert isinstance(crashed.error, ActorKilled)
        assert crashed.message == "hang"
        await log.wait_for(Restarted, "/user/h")
        assert await ref.ask("ping") == "pong"
        snapshot = system.snapshot().find("/user/h")
        assert snapshot is not None
        assert snapshot.failures == 1
        assert snapshot.restarts == 1
        assert journal.made("hanger") == 2


async def test_killed_permanent_actor_is_restarted() -> None:
    journal = Journal()
    entered = anyio.Event()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(
            Hanger, entered, journal, name="h", restart="permanent"
        )
        ref.tell("hang")
        await entered.wait()
        await ref.kill()

        await log.wait_for(Restarted, "/user/h")
        assert ref.is_alive
        assert await ref.ask("ping") == "pong"
        assert journal.made("hanger") == 2


async def test_killed_temporary_actor_ends_for_good() -> None:
    journal = Journal()
    entered = anyio.Event()
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(
            Hanger, entered, journal, name="h", restart="temporary"
        )
        ref.tell("hang")
        await entered.wait()
        await ref.kill()

        stopped = await log.wait_for(Stopped, "/user/h")
        assert stopped.reason == "failed"
        assert isinstance(stopped.error, ActorKilled)
        assert not ref.is_alive
        assert log.of(Restarted, "/user/h") == []
        assert journal.made("hanger") == 1


# ------------------------------------------- supervision outside of ``receive``


class Asker(Actor):
    """On ``go``: crash its child with message 1, then ask it message 2."""

    def __init__(self, journal: Journal, strategy: Strategy) -> None:
        self.journal = journal
        # An instance value shadows the class default, as Supervisor does.
        self.supervision = Supervision(strategy=strategy)  # type: ignore[misc]

    async def on_start(self) -> None:
        self.kid = await self.spawn(Worker, "kid", self.journal, name="kid")

    async def receive(self, message: Any) -> Any:
        if message == "go":
            self.kid.tell("boom")  # message 1: crashes the child
            return await self.kid.ask("two")  # message 2: the restarted child answers
        return None


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
async def test_parent_blocked_asking_its_crashed_child_still_restarts_it(
    strategy: Strategy,
) -> None:
    journal = Journal()
    async with ActorSystem() as system, record_events(system) as log:
        parent = await system.spawn(Asker, journal, strategy, name="parent")

        assert await parent.ask("go", timeout=10.0) == (2, "two")
        assert journal.made("kid") == 2
        await log.wait_for(Restarted, "/user/parent/kid")
        assert len(log.of(Restarted, "/user/parent/kid")) == 1
        assert log.of(Crashed, "/user/parent") == []


class Spawner(Actor):
    """Spawns a ``Quiet`` child named by each message it is given.

    It restarts a killed child however often: twenty kills in a moment are the
    test, not a crash loop to give up on.
    """

    supervision = Supervision(max_restarts=1_000, within=60.0)

    async def receive(self, message: Any) -> None:
        await self.spawn(Quiet, name=message)


class Quiet(Actor):
    """Answers ``ping``."""

    async def receive(self, message: Any) -> Any:
        return "pong"


async def test_kill_of_an_actor_spawned_and_not_yet_started_returns_at_once() -> None:
    # Its parent registers it before its task runs; a kill then (from a chaos
    # loop that found it in the tree) once waited for the end of the
    # incarnation to come, for ever.
    async with ActorSystem() as system:
        parent = await system.spawn(Spawner, name="parent")
        for number in range(20):
            parent.tell(f"kid{number}")
            path = f"/user/parent/kid{number}"
            with anyio.fail_after(5):
                while (kid := system.lookup(path)) is None:
                    await anyio.lowlevel.checkpoint()
                await kid.kill("chaos")
            with anyio.fail_after(5):
                assert await kid.ask("ping") == "pong"
