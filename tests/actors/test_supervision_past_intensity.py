"""A parent that never gives up: beyond its intensity it backs off, logs, goes on."""

from __future__ import annotations

import logging
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
    Supervision,
    Supervisor,
)
from actors.testing import EventLog, ManualClock, record_events

#: Beyond the intensity: 1 s, doubling to 8 s, no jitter, reset after 30 s up.
PAST = Backoff(min=1.0, max=8.0, factor=2.0, jitter=0.0, reset_after=30.0)

#: Two restarts within 10 s at once; beyond that, back off by PAST.
PATIENT = Supervision(max_restarts=2, within=10.0, past_intensity=PAST)


class Boom(Exception):
    """The failure test actors raise on purpose."""


class Crasher(Actor):
    """Crashes on every message it is given: a crash loop."""

    async def receive(self, message: Any) -> Any:
        if message == "ping":
            return "pong"
        raise Boom(f"crashed on {message!r}")


async def restarted(
    ref: ActorRef, clock: ManualClock, log: EventLog, count: int
) -> None:
    """Wait for ``ref``'s ``count``-th restart, moving the clock over its backoff."""
    with anyio.fail_after(5):
        while len(log.of(Restarted, ref.path)) < count:
            deadline = clock.next_deadline()
            if deadline is not None:
                clock.advance(deadline - clock.now())
            await anyio.lowlevel.checkpoint()


async def restart_delays(
    ref: ActorRef, clock: ManualClock, log: EventLog, count: int, *, kill: bool = False
) -> list[float]:
    """Crash (or kill) ``ref`` ``count`` times; return each restart's delay."""
    for _ in range(count):
        before = len(log.of(Restarted, ref.path))
        if kill:
            await ref.kill("chaos")
        else:
            ref.tell("boom")
        await restarted(ref, clock, log, before + 1)
    return [event.delay for event in log.of(Restarted, ref.path)[-count:]]


async def test_beyond_the_intensity_restarts_back_off_and_never_escalate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    caplog.set_level(logging.WARNING, logger="actors")
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        await system.spawn(
            Supervisor, [Child(Crasher, name="loop")], PATIENT, name="sup"
        )
        ref = system.lookup("/user/sup/loop")
        assert ref is not None
        delays = await restart_delays(ref, clock, log, 8)

        # Two at once (the intensity), then 1, 2, 4, 8 s and 8 s for ever after.
        assert delays == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
        assert log.of(Escalated) == []
        assert log.of(Crashed, "/user/sup") == []
        assert await ref.ask("ping") == "pong"
        snapshot = system.snapshot().find("/user/sup/loop")
        assert snapshot is not None
        assert snapshot.restarts == 8
        assert snapshot.failures == 8
        # One warning for the whole burst, naming the supervisor, child and error.
        warnings = [r.getMessage() for r in caplog.records if "intensity" in r.msg]
        assert len(warnings) == 1
        assert "/user/sup:" in warnings[0]
        assert "/user/sup/loop" in warnings[0]
        assert "Boom: crashed on 'boom'" in warnings[0]


async def test_a_crash_loop_beyond_the_intensity_restarts_as_its_backoff_allows() -> (
    None
):
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        await system.spawn(
            Supervisor, [Child(Crasher, name="loop")], PATIENT, name="sup"
        )
        ref = system.lookup("/user/sup/loop")
        assert ref is not None
        for number in range(1000):  # every one of them crashes it
            ref.tell(number)
        # The clock stands still: the intensity's two restarts, then it waits.
        await log.wait_for(Restarted, ref.path, count=2)
        await clock.wait_for_sleeper()
        assert len(log.of(Restarted, ref.path)) == 2
        # A minute on the clock, moved from one backoff's end to the next: 1, 2,
        # 4, 8, then 8 s apart (55 s for those 9), and the tenth only at 63 s.
        while True:
            deadline = await clock.wait_for_sleeper()
            if deadline > 60.0:
                break
            clock.advance(deadline - clock.now())
            await log.wait_for(
                Restarted, ref.path, count=len(log.of(Restarted, ref.path)) + 1
            )
        assert len(log.of(Restarted, ref.path)) == 2 + 9
        assert ref.is_alive
        assert log.of(Escalated) == []
        snapshot = system.snapshot().find("/user/sup/loop")
        assert snapshot is not None
        assert snapshot.state == "restarting"
        assert snapshot.mailbox_depth > 900  # it still holds the work it owes


async def test_a_child_that_stays_up_starts_its_backoff_from_min_again() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        await system.spawn(
            Supervisor, [Child(Crasher, name="loop")], PATIENT, name="sup"
        )
        ref = system.lookup("/user/sup/loop")
        assert ref is not None
        assert await restart_delays(ref, clock, log, 5) == [0.0, 0.0, 1.0, 2.0, 4.0]
        clock.advance(31.0)  # up past reset_after, and the window is empty

        assert await restart_delays(ref, clock, log, 4) == [0.0, 0.0, 1.0, 2.0]


async def test_each_burst_beyond_the_intensity_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    caplog.set_level(logging.WARNING, logger="actors")
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        await system.spawn(
            Supervisor, [Child(Crasher, name="loop")], PATIENT, name="sup"
        )
        ref = system.lookup("/user/sup/loop")
        assert ref is not None
        await restart_delays(ref, clock, log, 5)
        clock.advance(31.0)
        await restart_delays(ref, clock, log, 5)

    bursts = [r for r in caplog.records if "beyond its intensity" in r.msg]
    assert len(bursts) == 2


async def test_a_group_restart_beyond_the_intensity_backs_off_too() -> None:
    clock = ManualClock()
    supervision = Supervision(
        strategy="one_for_all", max_restarts=1, within=10.0, past_intensity=PAST
    )
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        await system.spawn(
            Supervisor,
            [Child(Crasher, name="a"), Child(Crasher, name="b")],
            supervision,
            name="sup",
        )
        a = system.lookup("/user/sup/a")
        assert a is not None
        delays = await restart_delays(a, clock, log, 4)

        assert delays == [0.0, 1.0, 2.0, 4.0]
        await log.wait_for(Restarted, "/user/sup/b", count=4)
        assert log.of(Escalated) == []


async def test_the_guardian_follows_the_systems_supervision() -> None:
    clock = ManualClock()
    guardian = Supervision(max_restarts=1, within=5.0, past_intensity=PAST)
    async with (
        ActorSystem(clock=clock, supervision=guardian) as system,
        record_events(system) as log,
    ):
        ref = await system.spawn(Crasher, name="top")
        # The default guardian would end the system at the fourth kill.
        delays = await restart_delays(ref, clock, log, 6, kill=True)

        assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
        assert await ref.ask("ping") == "pong"
        assert log.of(Escalated) == []


def test_the_system_refuses_a_supervision_that_is_not_one() -> None:
    with pytest.raises(ValueError, match="supervision must be a Supervision"):
        ActorSystem(supervision="never give up")  # type: ignore[arg-type]


def test_past_intensity_must_be_a_backoff() -> None:
    with pytest.raises(TypeError):
        Supervision(past_intensity=5.0)  # type: ignore[arg-type]


#: PATIENT, but a kill from outside is neither counted nor paced.
KILLS_UNCOUNTED = Supervision(
    max_restarts=2, within=10.0, past_intensity=PAST, count_kills=False
)


class SelfKiller(Crasher):
    """Kills itself when told ``"die"``: its own failure, however it ends."""

    async def receive(self, message: Any) -> Any:
        if message == "die":
            await self.ref.kill("by its own hand")
        return await super().receive(message)


async def test_with_count_kills_off_a_kill_from_outside_restarts_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    caplog.set_level(logging.WARNING, logger="actors")
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        await system.spawn(
            Supervisor, [Child(Crasher, name="loop")], KILLS_UNCOUNTED, name="sup"
        )
        ref = system.lookup("/user/sup/loop")
        assert ref is not None
        # Far beyond the intensity, every kill restarts it at once ...
        assert await restart_delays(ref, clock, log, 8, kill=True) == [0.0] * 8
        sup = system.snapshot().find("/user/sup")
        assert sup is not None
        assert sup.window_restarts == 0
        # ... and leaves the intensity whole for the crashes it guards against.
        assert await restart_delays(ref, clock, log, 4) == [0.0, 0.0, 1.0, 2.0]
        assert log.of(Escalated) == []
        assert await ref.ask("ping") == "pong"
    bursts = [r for r in caplog.records if "beyond its intensity" in r.msg]
    assert len(bursts) == 1  # the crashes' burst, not the kills


async def test_with_count_kills_off_an_actor_that_kills_itself_is_paced() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        await system.spawn(
            Supervisor, [Child(SelfKiller, name="loop")], KILLS_UNCOUNTED, name="sup"
        )
        ref = system.lookup("/user/sup/loop")
        assert ref is not None
        delays = []
        for count in range(1, 6):
            ref.tell("die")
            await restarted(ref, clock, log, count)
            delays.append(log.of(Restarted, ref.path)[-1].delay)

        assert delays == [0.0, 0.0, 1.0, 2.0, 4.0]


async def test_with_count_kills_off_kills_never_escalate() -> None:
    clock = ManualClock()
    strict = Supervision(max_restarts=1, within=10.0, count_kills=False)
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        await system.spawn(
            Supervisor, [Child(Crasher, name="leaf")], strict, name="sup"
        )
        ref = system.lookup("/user/sup/leaf")
        assert ref is not None
        assert await restart_delays(ref, clock, log, 5, kill=True) == [0.0] * 5
        assert log.of(Escalated) == []
        assert await ref.ask("ping") == "pong"


def test_count_kills_must_be_a_bool() -> None:
    with pytest.raises(TypeError):
        Supervision(count_kills="no")  # type: ignore[arg-type]
