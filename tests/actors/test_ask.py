"""``ActorRef.ask``: a reply, or an error that says why, and never a hang."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import (
    Actor,
    ActorCrashed,
    ActorError,
    ActorKilled,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    Backoff,
    Crashed,
)
from actors.testing import ManualClock, record_events, wait_until

if TYPE_CHECKING:
    from actors import ActorRef

# An ask that fails with ActorStopped must fail because the actor went away, not
# because its deadline passed: the asks below get a deadline far beyond the test's.
LONG = 30.0
# Stuck actors would hold up the system's exit for the default five seconds.
QUICK = 0.1


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


class Counter(Actor):
    async def on_start(self) -> None:
        self.n = 0

    async def receive(self, message: Any) -> Any:
        match message:
            case "inc":
                self.n += 1
            case "get":
                return self.n
            case "boom":
                raise ValueError("boom")
        return None


class Stuck(Actor):
    """Sets ``entered`` on every message, then waits on an event nobody sets."""

    def __init__(self, entered: anyio.Event) -> None:
        self.entered = entered
        self.never = anyio.Event()

    async def receive(self, message: Any) -> Any:
        self.entered.set()
        await self.never.wait()


class Gate(Actor):
    """Records every message; ``"hold"`` then waits until ``gate`` is set."""

    def __init__(self, gate: anyio.Event, seen: list[Any]) -> None:
        self.gate = gate
        self.seen = seen

    async def receive(self, message: Any) -> Any:
        self.seen.append(message)
        if message == "hold":
            await self.gate.wait()
        return message


class SelfAsker(Actor):
    async def receive(self, message: Any) -> Any:
        try:
            await self.ref.ask("hello", timeout=LONG)
        except ActorError as exc:
            return exc
        return None


class Forgetful(Actor):
    async def compute(self) -> int:
        return 42

    async def receive(self, message: Any) -> Any:
        return self.compute()  # the await is missing


def depth(system: ActorSystem, ref: ActorRef) -> int:
    snapshot = system.snapshot().find(ref.path)
    assert snapshot is not None
    return snapshot.mailbox_depth


async def test_ask_returns_what_receive_returns() -> None:
    async with ActorSystem() as system:
        counter = await system.spawn(Counter, name="counter")
        counter.tell("inc")
        counter.tell("inc")
        assert await counter.ask("get", timeout=1.0) == 2
        assert await counter.ask("inc") is None


async def test_ask_answers_each_message_with_its_own_reply() -> None:
    async with ActorSystem() as system:
        echo = await system.spawn(Echo, name="echo")
        replies: dict[int, Any] = {}

        async def ask(n: int) -> None:
            replies[n] = await echo.ask(n)

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(ask, n)
        assert replies == {n: n for n in range(20)}


async def test_ask_raises_ask_timeout_when_no_reply_comes_in_time() -> None:
    async with ActorSystem(shutdown_timeout=QUICK) as system:
        entered = anyio.Event()
        stuck = await system.spawn(Stuck, entered, name="stuck")
        with pytest.raises(AskTimeout, match="/user/stuck") as caught:
            await stuck.ask("anything", timeout=0.05)
        assert isinstance(caught.value, TimeoutError)
        assert isinstance(caught.value, ActorError)
        assert entered.is_set()


async def test_ask_timeout_can_be_caught_as_the_builtin_timeout_error() -> None:
    async with ActorSystem(shutdown_timeout=QUICK) as system:
        stuck = await system.spawn(Stuck, anyio.Event(), name="stuck")
        with pytest.raises(TimeoutError):
            await stuck.ask("anything", timeout=0.05)


async def test_ask_timeout_covers_the_wait_for_mailbox_room() -> None:
    async with ActorSystem() as system:
        gate = anyio.Event()
        seen: list[Any] = []
        actor = await system.spawn(Gate, gate, seen, name="gate", capacity=1)
        actor.tell("hold")
        await wait_until(lambda: seen == ["hold"])
        actor.tell("fills the mailbox")
        with pytest.raises(AskTimeout):
            await actor.ask("no room", timeout=0.05)
        gate.set()
        # The ask gave up before it found room: its message was never sent.
        assert await actor.ask("after") == "after"
        assert seen == ["hold", "fills the mailbox", "after"]


async def test_ask_raises_actor_crashed_when_handler_fails() -> None:
    async with ActorSystem() as system:
        counter = await system.spawn(Counter, name="counter")
        with anyio.fail_after(5), pytest.raises(ActorCrashed) as caught:
            await counter.ask("boom", timeout=LONG)
        cause = caught.value.__cause__
        assert isinstance(cause, ValueError)
        assert str(cause) == "boom"
        assert "/user/counter" in str(caught.value)
        # The crash restarted the actor in place: the same ref answers again.
        assert await counter.ask("get") == 0


async def test_ask_queued_behind_a_crashing_message_is_answered_after_restart() -> None:
    async with ActorSystem() as system:
        counter = await system.spawn(Counter, name="counter")
        counter.tell("inc")
        counter.tell("boom")
        counter.tell("inc")
        # Only the message that crashed the actor is lost; the ask is not failed.
        assert await counter.ask("get") == 1


async def test_ask_raises_actor_stopped_at_once_when_the_actor_is_killed() -> None:
    async with ActorSystem() as system:
        entered = anyio.Event()
        stuck = await system.spawn(Stuck, entered, name="stuck")
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await stuck.ask("wait", timeout=LONG)
            except ActorError as exc:
                errors.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await entered.wait()
                await stuck.kill()
        assert len(errors) == 1
        assert type(errors[0]) is ActorStopped
        assert stuck.is_alive  # a kill is a crash: the actor was restarted


async def test_queued_ask_raises_actor_stopped_at_once_when_the_actor_stops() -> None:
    async with ActorSystem() as system:
        gate = anyio.Event()
        seen: list[Any] = []
        actor = await system.spawn(Gate, gate, seen, name="gate")
        actor.tell("hold")
        await wait_until(lambda: seen == ["hold"])
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await actor.ask("queued", timeout=LONG)
            except ActorError as exc:
                errors.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await wait_until(lambda: depth(system, actor) == 1)
                tg.start_soon(actor.stop)
                # The stop must be requested before the held message finishes.
                await anyio.wait_all_tasks_blocked()
                gate.set()
        assert len(errors) == 1
        assert type(errors[0]) is ActorStopped
        assert seen == ["hold"]
        assert not actor.is_alive


async def test_ask_raises_actor_stopped_when_stop_cuts_a_handler_short() -> None:
    async with ActorSystem(shutdown_timeout=0.2) as system:
        entered = anyio.Event()
        stuck = await system.spawn(Stuck, entered, name="stuck")
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await stuck.ask("wait", timeout=LONG)
            except ActorError as exc:
                errors.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await entered.wait()
                await stuck.stop()  # cut short after shutdown_timeout
        assert len(errors) == 1
        assert type(errors[0]) is ActorStopped


async def test_queued_ask_raises_actor_stopped_when_killed_for_good() -> None:
    async with ActorSystem() as system:
        gate = anyio.Event()
        seen: list[Any] = []
        actor = await system.spawn(Gate, gate, seen, name="gate", restart="temporary")
        actor.tell("hold")
        await wait_until(lambda: seen == ["hold"])
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await actor.ask("queued", timeout=LONG)
            except ActorError as exc:
                errors.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await wait_until(lambda: depth(system, actor) == 1)
                await actor.kill()
        assert len(errors) == 1
        assert type(errors[0]) is ActorStopped
        assert not actor.is_alive


async def test_queued_ask_raises_actor_stopped_when_stopped_during_backoff() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system:
        backoff = Backoff(min=10.0, max=10.0, jitter=0.0)
        counter = await system.spawn(Counter, name="counter", backoff=backoff)
        counter.tell("boom")
        await clock.wait_for_sleeper(10.0)
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await counter.ask("get", timeout=LONG)
            except ActorError as exc:
                errors.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await wait_until(lambda: depth(system, counter) == 1)
                await counter.stop()  # no need to wait out the backoff
        assert len(errors) == 1
        assert type(errors[0]) is ActorStopped


async def test_ask_to_an_already_stopped_actor_raises_actor_stopped() -> None:
    async with ActorSystem() as system:
        echo = await system.spawn(Echo, name="echo")
        await echo.stop()
        with anyio.fail_after(5), pytest.raises(ActorStopped, match="/user/echo"):
            await echo.ask("anyone there?", timeout=LONG)
        assert system.statistics().dead_letters == 1


async def test_an_actor_asking_itself_gets_actor_error_at_once() -> None:
    async with ActorSystem() as system:
        asker = await system.spawn(SelfAsker, name="narcissus")
        with anyio.fail_after(5):
            error = await asker.ask("go")
        assert type(error) is ActorError
        assert "asked itself" in str(error)


async def test_receive_returning_a_coroutine_fails_the_ask_with_a_clear_error() -> None:
    async with ActorSystem() as system:
        forgetful = await system.spawn(Forgetful, name="forgetful")
        with pytest.raises(ActorCrashed) as caught:
            await forgetful.ask("compute")
        cause = caught.value.__cause__
        assert type(cause) is ActorError
        assert "coroutine" in str(cause)
        assert "await" in str(cause)


async def test_receive_returning_a_coroutine_on_a_tell_is_a_crash() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        forgetful = await system.spawn(Forgetful, name="forgetful")
        forgetful.tell("compute")
        crashed = await log.wait_for(Crashed, "/user/forgetful")
        assert type(crashed.error) is ActorError
        assert "await" in str(crashed.error)
        assert crashed.message == "compute"


async def test_kill_reports_the_crash_as_actor_killed_with_its_reason() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        entered = anyio.Event()
        stuck = await system.spawn(Stuck, entered, name="stuck")
        stuck.tell("wait")
        await entered.wait()
        await stuck.kill("testing")
        crashed = await log.wait_for(Crashed, "/user/stuck")
        assert isinstance(crashed.error, ActorKilled)
        assert "testing" in str(crashed.error)


@pytest.mark.parametrize("bad_timeout", [0.0, -1.0, math.nan])
async def test_ask_rejects_a_timeout_that_is_not_positive(bad_timeout: float) -> None:
    async with ActorSystem() as system:
        echo = await system.spawn(Echo, name="echo")
        with pytest.raises(ValueError, match="timeout"):
            await echo.ask("x", timeout=bad_timeout)
        assert system.statistics().dead_letters == 0
        assert await echo.ask("still fine") == "still fine"
