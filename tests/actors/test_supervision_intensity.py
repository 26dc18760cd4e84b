"""Restart intensity, escalation up to and past the root, and restart backoff."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from actors import (
    Actor,
    ActorRef,
    ActorSystem,
    Backoff,
    Child,
    Crashed,
    Escalated,
    Restarted,
    Stopped,
    Supervision,
    Supervisor,
)
from actors.testing import EventLog, ManualClock, record_events


class Boom(Exception):
    """The failure test actors raise on purpose."""


class Journal:
    """What the test actors did, kept outside them so that restarts keep it."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.stopped: list[str] = []
        self.handled: list[tuple[str, int, Any]] = []
        self.errors: list[Boom] = []

    def made(self, label: str) -> int:
        """How many instances of ``label`` the factory has made."""
        return self.created.count(label)


class Kid(Actor):
    """Crashes on ``boom`` (keeping the error); records and echoes anything else."""

    def __init__(self, label: str, journal: Journal) -> None:
        journal.created.append(label)
        self.label = label
        self.journal = journal
        self.incarnation = journal.made(label)

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            error = Boom(f"{self.label} #{self.incarnation}")
            self.journal.errors.append(error)
            raise error
        self.journal.handled.append((self.label, self.incarnation, message))
        return (self.incarnation, message)

    async def on_stop(self) -> None:
        self.journal.stopped.append(self.label)


def supervised_kid(journal: Journal, supervision: Supervision) -> Supervisor:
    """A Supervisor with one Kid, ``kid``."""
    return Supervisor([Child(Kid, "kid", journal, name="kid")], supervision)


def unwrap(error: BaseException) -> BaseException:
    """The one exception inside (possibly nested) single-member exception groups."""
    while isinstance(error, BaseExceptionGroup):
        assert len(error.exceptions) == 1, error
        error = error.exceptions[0]
    return error


# ------------------------------------------------------------------- intensity


async def test_parent_gives_up_after_max_restarts_and_escalates_to_its_parent() -> None:
    journal = Journal()
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        supervision = Supervision(max_restarts=2, within=10.0)
        await system.spawn(supervised_kid, journal, supervision, name="sup")
        first_kid = system.lookup("/user/sup/kid")
        assert first_kid is not None
        for _ in range(3):
            first_kid.tell("boom")

        escalated = await log.wait_for(Escalated)
        assert escalated.path == "/user/sup"
        assert escalated.child == "/user/sup/kid"
        assert escalated.error is journal.errors[2]
        assert len(log.of(Restarted, "/user/sup/kid")) == 2
        # The supervisor that gave up crashed with the child's error ...
        crashed = await log.wait_for(Crashed, "/user/sup")
        assert crashed.error is journal.errors[2]
        # ... and its own parent restarted it, with fresh children.
        await log.wait_for(Restarted, "/user/sup")
        kid_stopped = await log.wait_for(Stopped, "/user/sup/kid")
        assert kid_stopped.reason == "failed"
        assert not first_kid.is_alive
        second_kid = system.lookup("/user/sup/kid")
        assert second_kid is not None
        assert second_kid is not first_kid
        assert journal.made("kid") == 4
        assert await second_kid.ask("hello") == (4, "hello")


async def test_restarts_older_than_the_window_do_not_count() -> None:
    journal = Journal()
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        supervision = Supervision(max_restarts=2, within=10.0)
        await system.spawn(supervised_kid, journal, supervision, name="sup")
        kid = system.lookup("/user/sup/kid")
        assert kid is not None
        kid.tell("boom")
        kid.tell("boom")
        await log.wait_for(Restarted, "/user/sup/kid", count=2)
        clock.advance(10.5)
        kid.tell("boom")
        kid.tell("boom")
        await log.wait_for(Restarted, "/user/sup/kid", count=4)

        assert log.of(Escalated) == []
        assert log.of(Crashed, "/user/sup") == []
        assert kid.is_alive
        # The window still counts: a third restart within it is one too many.
        kid.tell("boom")
        escalated = await log.wait_for(Escalated)
        assert escalated.path == "/user/sup"


async def test_max_restarts_zero_gives_up_on_the_first_crash() -> None:
    journal = Journal()
    async with ActorSystem(clock=ManualClock()) as system, record_events(system) as log:
        supervision = Supervision(max_restarts=0)
        await system.spawn(supervised_kid, journal, supervision, name="sup")
        kid = system.lookup("/user/sup/kid")
        assert kid is not None
        kid.tell("boom")

        escalated = await log.wait_for(Escalated)
        assert escalated.path == "/user/sup"
        assert escalated.child == "/user/sup/kid"
        assert escalated.error is journal.errors[0]
        await log.wait_for(Restarted, "/user/sup")
        assert log.of(Restarted, "/user/sup/kid") == []
        assert not kid.is_alive


async def test_restart_intensity_counts_the_restarts_of_all_children_together() -> None:
    journal = Journal()
    async with ActorSystem(clock=ManualClock()) as system, record_events(system) as log:
        await system.spawn(
            Supervisor,
            [Child(Kid, "a", journal, name="a"), Child(Kid, "b", journal, name="b")],
            Supervision(max_restarts=2, within=10.0),
            name="sup",
        )
        for path in ("/user/sup/a", "/user/sup/b"):
            kid = system.lookup(path)
            assert kid is not None
            kid.tell("boom")
            await log.wait_for(Restarted, path)
        assert log.of(Escalated) == []
        kid = system.lookup("/user/sup/a")
        assert kid is not None
        kid.tell("boom")

        escalated = await log.wait_for(Escalated)
        assert escalated.path == "/user/sup"
        assert escalated.child == "/user/sup/a"


def middle(journal: Journal) -> Supervisor:
    """A Supervisor that gives up at once, over one Kid."""
    return supervised_kid(journal, Supervision(max_restarts=0))


async def test_escalation_climbs_one_level_per_supervisor_that_gives_up() -> None:
    journal = Journal()
    async with ActorSystem(clock=ManualClock()) as system, record_events(system) as log:
        await system.spawn(
            Supervisor,
            [Child(middle, journal, name="mid")],
            Supervision(max_restarts=0),
            name="top",
        )
        kid = system.lookup("/user/top/mid/kid")
        assert kid is not None
        kid.tell("boom")

        await log.wait_for(Restarted, "/user/top")
        escalations = [(e.path, e.child) for e in log.of(Escalated)]
        assert escalations == [
            ("/user/top/mid", "/user/top/mid/kid"),
            ("/user/top", "/user/top/mid"),
        ]
        assert all(e.error is journal.errors[0] for e in log.of(Escalated))
        assert (await log.wait_for(Crashed, "/user/top")).error is journal.errors[0]
        fresh = system.lookup("/user/top/mid/kid")
        assert fresh is not None
        assert fresh is not kid
        assert journal.made("kid") == 2


# ------------------------------------------------------- escalation past /user


class Bystander(Actor):
    """Records its ``on_stop``."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_stop(self) -> None:
        self.journal.stopped.append("bystander")


async def run_until_an_escalation_past_the_root(journal: Journal) -> None:
    """Crash a top-level actor once more than ``/user`` tolerates; then idle."""
    async with ActorSystem(clock=ManualClock()) as system:
        await system.spawn(Bystander, journal, name="bystander")
        bomb = await system.spawn(Kid, "bomb", journal, name="bomb")
        for _ in range(4):  # the default allows 3 restarts within 5 s
            bomb.tell("boom")
        await anyio.sleep_forever()


async def test_escalation_past_the_root_ends_the_system_with_the_original_error() -> (
    None
):
    journal = Journal()
    with pytest.raises((Boom, BaseExceptionGroup)) as raised:
        await run_until_an_escalation_past_the_root(journal)

    assert len(journal.errors) == 4
    assert unwrap(raised.value) is journal.errors[3]
    assert journal.made("bomb") == 4
    assert "bystander" in journal.stopped


async def run_until_a_grandchild_escalates_past_the_root(journal: Journal) -> None:
    """Crash ``/user/sup/kid`` until ``/user`` gives up on ``/user/sup``; idle."""
    async with ActorSystem(clock=ManualClock()) as system, record_events(system) as log:
        await system.spawn(middle, journal, name="sup")
        for count in range(1, 5):
            kid = system.lookup("/user/sup/kid")
            assert kid is not None
            kid.tell("boom")
            if count < 4:
                await log.wait_for(Restarted, "/user/sup", count=count)
        await anyio.sleep_forever()


async def test_escalation_past_the_root_raises_the_crashed_grandchilds_error() -> None:
    journal = Journal()
    with pytest.raises((Boom, BaseExceptionGroup)) as raised:
        await run_until_a_grandchild_escalates_past_the_root(journal)

    assert len(journal.errors) == 4
    assert unwrap(raised.value) is journal.errors[3]


async def test_restarts_spread_beyond_the_default_window_do_not_end_the_system() -> (
    None
):
    journal = Journal()
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        bomb = await system.spawn(Kid, "bomb", journal, name="bomb")
        for count in range(1, 7):
            bomb.tell("boom")
            await log.wait_for(Restarted, "/user/bomb", count=count)
            clock.advance(2.0)  # at most 3 restarts in any 5 s

        assert await bomb.ask("still here") == (7, "still here")
        assert log.of(Escalated) == []


# --------------------------------------------------------------------- backoff

BACKOFF = Backoff(min=1.0, max=8.0, factor=2.0, jitter=0.0, reset_after=100.0)


async def crash_and_measure(
    ref: ActorRef, clock: ManualClock, log: EventLog, count: int
) -> tuple[float, float]:
    """Crash ``ref``; return the backoff delay asked for and the one reported."""
    ref.tell("boom")
    delay = await clock.wait_for_sleeper() - clock.now()
    clock.advance(delay)
    restarted = await log.wait_for(Restarted, ref.path, count=count)
    return delay, restarted.delay


async def test_backoff_starts_at_min_then_doubles_up_to_max() -> None:
    journal = Journal()
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        ref = await system.spawn(Kid, "kid", journal, name="kid", backoff=BACKOFF)
        delays = [
            await crash_and_measure(ref, clock, log, count) for count in range(1, 6)
        ]

        assert delays == [(1.0, 1.0), (2.0, 2.0), (4.0, 4.0), (8.0, 8.0), (8.0, 8.0)]
        assert await ref.ask("up") == (6, "up")


async def test_backoff_resets_to_min_after_the_child_stayed_up_reset_after() -> None:
    journal = Journal()
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        ref = await system.spawn(Kid, "kid", journal, name="kid", backoff=BACKOFF)
        assert await crash_and_measure(ref, clock, log, 1) == (1.0, 1.0)
        assert await crash_and_measure(ref, clock, log, 2) == (2.0, 2.0)
        clock.advance(100.0)

        assert await crash_and_measure(ref, clock, log, 3) == (1.0, 1.0)
        assert await crash_and_measure(ref, clock, log, 4) == (2.0, 2.0)


async def test_backoff_does_not_reset_before_reset_after() -> None:
    journal = Journal()
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        ref = await system.spawn(Kid, "kid", journal, name="kid", backoff=BACKOFF)
        assert await crash_and_measure(ref, clock, log, 1) == (1.0, 1.0)
        clock.advance(99.0)

        assert await crash_and_measure(ref, clock, log, 2) == (2.0, 2.0)


async def test_actor_waiting_out_its_backoff_is_alive_restarting_and_takes_mail() -> (
    None
):
    journal = Journal()
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        ref = await system.spawn(Kid, "kid", journal, name="kid", backoff=BACKOFF)
        ref.tell("boom")
        await clock.wait_for_sleeper()
        ref.tell("x")
        ref.tell("y")

        assert ref.is_alive
        assert system.lookup("/user/kid") is ref
        snapshot = system.snapshot().find("/user/kid")
        assert snapshot is not None
        assert snapshot.state == "restarting"
        assert snapshot.mailbox_depth == 2
        assert journal.made("kid") == 1

        clock.advance(1.0)
        assert await ref.ask("z") == (2, "z")
        assert journal.handled == [("kid", 2, "x"), ("kid", 2, "y"), ("kid", 2, "z")]
        restarted = await log.wait_for(Restarted, "/user/kid")
        assert restarted.delay == 1.0


async def test_stop_during_backoff_ends_the_actor_at_once() -> None:
    journal = Journal()
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        ref = await system.spawn(Kid, "kid", journal, name="kid", backoff=BACKOFF)
        ref.tell("boom")
        await clock.wait_for_sleeper()
        with anyio.fail_after(5):
            await ref.stop()

        assert not ref.is_alive
        stopped = await log.wait_for(Stopped, "/user/kid")
        assert stopped.reason == "stopped"
        assert log.of(Restarted, "/user/kid") == []
        assert journal.made("kid") == 1


def test_backoff_delay_stays_at_max_however_many_restarts_came_before() -> None:
    backoff = Backoff(jitter=0.0)
    rng = random.Random(0)

    assert [backoff.delay(attempt, rng) for attempt in (20, 1023, 1024, 10_000)] == [
        backoff.max
    ] * 4


async def test_child_that_keeps_crashing_keeps_restarting_at_the_max_delay() -> None:
    journal = Journal()
    clock = ManualClock()
    # A steep factor reaches the float limit within a few restarts, as factor 2.0
    # does after about a thousand.
    steep = Backoff(min=1.0, max=8.0, factor=1e100, jitter=0.0, reset_after=100.0)
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        ref = await system.spawn(Kid, "kid", journal, name="kid", backoff=steep)
        delays = [
            await crash_and_measure(ref, clock, log, count) for count in range(1, 7)
        ]

        assert delays == [(1.0, 1.0)] + [(8.0, 8.0)] * 5
        assert await ref.ask("up") == (7, "up")
