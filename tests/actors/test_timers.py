"""``send_after`` and ``every`` on the system clock, driven by a ``ManualClock``.

A timer that must *not* fire is checked against a second timer armed after it for
the same moment: timers due together fire in the order they were armed, straight
into the mailbox, so when the second one's message arrives the first one has had
its chance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import Actor, ActorSystem, DeadLetter, Restarted, Timer
from actors.testing import ManualClock, Probe, record_events, wait_until

if TYPE_CHECKING:
    from actors import ActorRef


class Ticker(Actor):
    """Arms timers when asked; tells ``probe`` every other message it gets.

    ``timers`` outlives restarts, so the test can inspect old incarnations' timers.
    """

    def __init__(
        self, probe: ActorRef, timers: list[Timer], gate: anyio.Event | None = None
    ) -> None:
        self.probe = probe
        self.timers = timers
        self.gate = gate

    async def receive(self, message: Any) -> Any:
        match message:
            case ("after", float(delay), payload):
                return self.arm(lambda: self.send_after(delay, payload))
            case ("every", float(interval), payload):
                return self.arm(lambda: self.every(interval, payload))
            case ("cancel", int(index)):
                self.timers[index].cancel()
            case "boom":
                raise ValueError("boom")
            case "hold" if self.gate is not None:
                self.probe.tell(message)
                await self.gate.wait()
            case _:
                self.probe.tell(message)
        return None

    def arm(self, start: Any) -> int | ValueError:
        try:
            self.timers.append(start())
        except ValueError as exc:
            return exc
        return len(self.timers) - 1


class StopArmer(Ticker):
    """Arms a timer in ``on_stop``, as cleanup code might (say, a retry)."""

    async def on_stop(self) -> None:
        self.timers.append(self.send_after(5.0, "armed in on_stop"))


async def spawn_ticker(
    system: ActorSystem,
    name: str = "ticker",
    gate: anyio.Event | None = None,
    **options: Any,
) -> tuple[ActorRef, Probe, list[Timer]]:
    probe = await Probe.spawn(system, name=f"{name}-probe")
    timers: list[Timer] = []
    ref = await system.spawn(Ticker, probe.ref, timers, gate, name=name, **options)
    return ref, probe, timers


async def test_send_after_delivers_once_the_clock_reaches_the_delay() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system:
        ticker, probe, _ = await spawn_ticker(system)
        await ticker.ask(("after", 5.0, "ding"))
        await ticker.ask(("after", 4.0, "early"))
        await clock.wait_for_sleeper(4.0)
        clock.advance(4.0)
        await probe.expect("early")  # "ding" is not due yet
        await clock.wait_for_sleeper(5.0)
        clock.advance(1.0)
        await probe.expect("ding")


async def test_send_after_fires_only_once() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system:
        ticker, probe, timers = await spawn_ticker(system)
        await ticker.ask(("after", 1.0, "once"))
        await clock.wait_for_sleeper(1.0)
        clock.advance(1.0)
        await probe.expect("once")
        await ticker.ask(("after", 5.0, "sync"))
        await clock.wait_for_sleeper(6.0)
        clock.advance(5.0)
        await probe.expect("sync")
        assert timers[0].cancelled  # spent


async def test_send_after_with_zero_delay_delivers_without_advancing() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system:
        ticker, probe, _ = await spawn_ticker(system)
        await ticker.ask(("after", 0.0, "now"))
        await probe.expect("now")


async def test_every_delivers_once_per_interval() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system:
        ticker, probe, _ = await spawn_ticker(system)
        await ticker.ask(("every", 2.0, "tick"))
        for n in range(1, 4):
            await clock.wait_for_sleeper(2.0 * n)
            clock.advance(2.0)
            await probe.expect("tick")
        assert probe.messages == ["tick"] * 3


async def test_timer_cancel_stops_a_pending_send_after() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system:
        ticker, probe, timers = await spawn_ticker(system)
        cancelled = await ticker.ask(("after", 5.0, "cancelled"))
        await ticker.ask(("after", 5.0, "sync"))
        await ticker.ask(("cancel", cancelled))
        assert timers[cancelled].cancelled
        timers[cancelled].cancel()  # idempotent
        await clock.wait_for_sleeper(5.0)
        clock.advance(5.0)
        await probe.expect("sync")
        assert probe.messages == ["sync"]


async def test_timer_cancel_stops_every() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system:
        ticker, probe, _ = await spawn_ticker(system)
        every = await ticker.ask(("every", 1.0, "tick"))
        await clock.wait_for_sleeper(1.0)
        clock.advance(1.0)
        await probe.expect("tick")
        await ticker.ask(("cancel", every))
        await ticker.ask(("after", 1.0, "sync"))
        await clock.wait_for_sleeper(2.0)
        clock.advance(1.0)
        await probe.expect("sync")
        assert probe.messages == ["tick", "sync"]


async def test_timers_are_cancelled_when_the_actor_stops() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        ticker, _, timers = await spawn_ticker(system)
        other, other_probe, _ = await spawn_ticker(system, name="other")
        await ticker.ask(("after", 5.0, "late"))
        await ticker.ask(("every", 5.0, "periodic"))
        await other.ask(("after", 5.0, "sync"))
        await ticker.stop()
        assert all(timer.cancelled for timer in timers)
        await clock.wait_for_sleeper(5.0)
        clock.advance(5.0)
        await other_probe.expect("sync")
        # A timer that survived would have told the stopped actor: a dead letter.
        assert system.statistics().dead_letters == 0
        assert log.of(DeadLetter) == []


@pytest.mark.parametrize("how", ["crash", "kill"])
async def test_timers_are_cancelled_when_the_actor_restarts(how: str) -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        ticker, probe, timers = await spawn_ticker(system)
        await ticker.ask(("after", 5.0, "stale"))
        await ticker.ask(("every", 5.0, "stale tick"))
        if how == "crash":
            ticker.tell("boom")
        else:
            await ticker.kill()
        await log.wait_for(Restarted, "/user/ticker")
        assert timers[0].cancelled
        assert timers[1].cancelled
        await ticker.ask(("after", 5.0, "fresh"))
        await clock.wait_for_sleeper(5.0)
        clock.advance(5.0)
        await probe.expect("fresh")
        ticker.tell("marker")
        await probe.expect("marker")


async def test_a_timer_armed_in_on_stop_does_not_reach_the_next_incarnation() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        probe = await Probe.spawn(system, name="probe")
        timers: list[Timer] = []
        ref = await system.spawn(StopArmer, probe.ref, timers, name="armer")
        ref.tell("boom")
        await log.wait_for(Restarted, "/user/armer")
        await ref.ask(("after", 5.0, "fresh"))
        await clock.wait_for_sleeper(5.0)
        clock.advance(5.0)
        await probe.expect("fresh")


async def test_timer_message_refused_by_a_full_mailbox_goes_to_dead_letters() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        gate = anyio.Event()
        ticker, probe, _ = await spawn_ticker(
            system, gate=gate, capacity=1, overflow="fail"
        )
        await ticker.ask(("after", 5.0, "timed"))
        ticker.tell("hold")
        await probe.expect("hold")
        ticker.tell("fills the mailbox")
        await clock.wait_for_sleeper(5.0)
        clock.advance(5.0)
        letter = await log.wait_for(DeadLetter, "/user/ticker")
        assert (letter.message, letter.reason) == ("timed", "mailbox_full")
        gate.set()


@pytest.mark.parametrize(
    ("kind", "seconds"),
    [("after", -1.0), ("after", float("nan")), ("every", 0.0), ("every", -1.0)],
)
async def test_timers_reject_bad_delays(kind: str, seconds: float) -> None:
    async with ActorSystem(clock=ManualClock()) as system:
        ticker, _, timers = await spawn_ticker(system)
        error = await ticker.ask((kind, seconds, "never"))
        assert isinstance(error, ValueError)
        assert timers == []


# ------------------------------------------------------------- ManualClock


async def test_manual_clock_wakes_only_the_sleepers_that_are_due() -> None:
    clock = ManualClock(start=100.0)
    woke: list[float] = []

    async def sleeper(deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append(deadline)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for deadline in (103.0, 101.0, 102.0):
                tg.start_soon(sleeper, deadline)
                await clock.wait_for_sleeper(deadline)
            assert clock.next_deadline() == 101.0
            clock.advance(2.0)
            await wait_until(lambda: sorted(woke) == [101.0, 102.0])
            assert clock.now() == 102.0
            assert clock.next_deadline() == 103.0
            clock.advance(1.0)
    assert woke[-1] == 103.0
    assert clock.next_deadline() is None


async def test_manual_clock_sleep_until_the_past_returns_at_once() -> None:
    clock = ManualClock(start=5.0)
    with anyio.fail_after(5):
        await clock.sleep_until(5.0)
        await clock.sleep_until(1.0)
    assert clock.next_deadline() is None


def test_manual_clock_only_moves_forward() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1.0)
    assert clock.now() == 0.0


async def test_wait_for_sleeper_ignores_a_sleep_that_was_cancelled() -> None:
    clock = ManualClock()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.sleep_until, 10.0)
        await clock.wait_for_sleeper(10.0)
        tg.cancel_scope.cancel()
    # Nobody sleeps now: a test waiting for the next sleeper must not be told
    # that one is there.
    assert clock.next_deadline() is None
    with pytest.raises(TimeoutError):
        await clock.wait_for_sleeper(timeout=0.2)
