"""``system.events()``: lifecycle events, a bounded buffer for each subscriber."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import (
    Actor,
    ActorEvent,
    ActorSystem,
    Backoff,
    Crashed,
    DeadLetter,
    Restarted,
    Started,
    Stopped,
)
from actors.testing import ManualClock, record_events

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import TaskStatus


class Worker(Actor):
    async def receive(self, message: Any) -> Any:
        match message:
            case "boom":
                raise ValueError("boom")
            case "finish":
                await self.stop()
        return message


class Parent(Actor):
    async def on_start(self) -> None:
        await self.spawn(Worker, name="child")


async def next_event(events: AsyncIterator[ActorEvent]) -> ActorEvent:
    with anyio.fail_after(5):
        return await anext(events)


async def test_events_yield_started_crashed_restarted_and_stopped() -> None:
    async with ActorSystem() as system, system.events() as events:
        parent = await system.spawn(Parent, name="parent")
        assert await next_event(events) == Started(path="/user/parent/child")
        assert await next_event(events) == Started(path="/user/parent")

        child = system.lookup("/user/parent/child")
        assert child is not None
        child.tell("boom")
        crashed = await next_event(events)
        assert isinstance(crashed, Crashed)
        assert crashed.path == "/user/parent/child"
        assert isinstance(crashed.error, ValueError)
        assert crashed.message == "boom"
        assert await next_event(events) == Restarted(
            path="/user/parent/child", restarts=1, delay=0.0
        )

        await parent.stop()
        assert await next_event(events) == Stopped(
            path="/user/parent/child", reason="stopped"
        )
        assert await next_event(events) == Stopped(
            path="/user/parent", reason="stopped"
        )


async def test_dead_letter_event_names_the_target_message_and_reason() -> None:
    async with ActorSystem() as system, system.events() as events:
        worker = await system.spawn(Worker, name="worker")
        await next_event(events)  # Started
        await worker.stop()
        await next_event(events)  # Stopped
        worker.tell({"job": 1})
        assert await next_event(events) == DeadLetter(
            path="/user/worker", message={"job": 1}, reason="stopped"
        )


async def test_stopped_events_say_why_the_actor_ended() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        finisher = await system.spawn(Worker, name="finisher")
        temporary = await system.spawn(Worker, name="temp", restart="temporary")
        finisher.tell("finish")
        temporary.tell("boom")
        finished = await log.wait_for(Stopped, "/user/finisher")
        failed = await log.wait_for(Stopped, "/user/temp")
    assert finished.reason == "finished"
    assert finished.error is None
    assert failed.reason == "failed"
    assert isinstance(failed.error, ValueError)


async def test_stopped_events_report_shutdown_when_the_system_exits() -> None:
    seen: list[ActorEvent] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, ActorSystem() as system:

            async def collect(*, task_status: TaskStatus[None]) -> None:
                async with system.events() as events:
                    task_status.started()
                    seen.extend([event async for event in events])

            await tg.start(collect)
            await system.spawn(Parent, name="parent")
    stopped = [event for event in seen if isinstance(event, Stopped)]
    assert stopped == [
        Stopped(path="/user/parent/child", reason="shutdown"),
        Stopped(path="/user/parent", reason="shutdown"),
        Stopped(path="/user", reason="shutdown"),
    ]


async def test_restarted_event_carries_the_backoff_delay() -> None:
    clock = ManualClock()
    async with (
        ActorSystem(clock=clock) as system,
        record_events(system) as log,
    ):
        backoff = Backoff(min=3.0, max=3.0, jitter=0.0)
        worker = await system.spawn(Worker, name="worker", backoff=backoff)
        worker.tell("boom")
        await clock.wait_for_sleeper(3.0)
        assert log.of(Restarted) == []
        clock.advance(3.0)
        restarted = await log.wait_for(Restarted, "/user/worker")
        assert restarted == Restarted(path="/user/worker", restarts=1, delay=3.0)


async def test_slow_subscriber_drops_its_oldest_events_and_counts_them() -> None:
    async with ActorSystem() as system, system.events(buffer=3) as events:
        with anyio.fail_after(5):  # a full buffer never holds an actor up
            for n in range(5):
                await system.spawn(Worker, name=f"w{n}")
        assert events.dropped == 2
        assert system.statistics().dropped_events == 2
        kept = [await next_event(events) for _ in range(3)]
        assert kept == [Started(path=f"/user/w{n}") for n in (2, 3, 4)]


async def test_each_subscriber_has_its_own_buffer() -> None:
    async with (
        ActorSystem() as system,
        system.events(buffer=1) as small,
        system.events() as large,
    ):
        assert system.statistics().subscribers == 2
        for n in range(3):
            await system.spawn(Worker, name=f"w{n}")
        assert (small.dropped, large.dropped) == (2, 0)
        assert await next_event(small) == Started(path="/user/w2")
        assert [await next_event(large) for _ in range(3)] == [
            Started(path=f"/user/w{n}") for n in range(3)
        ]


async def test_iteration_ends_when_the_system_exits() -> None:
    ended = anyio.Event()
    seen: list[ActorEvent] = []
    async with anyio.create_task_group() as tg:
        async with ActorSystem() as system:

            async def consume(*, task_status: TaskStatus[None]) -> None:
                async with system.events() as events:
                    task_status.started()
                    seen.extend([event async for event in events])
                ended.set()

            await tg.start(consume)
            await system.spawn(Worker, name="worker")
        with anyio.fail_after(5):
            await ended.wait()
    assert seen[0] == Started(path="/user/worker")
    assert seen[-1] == Stopped(path="/user", reason="shutdown")
    assert system.statistics().subscribers == 0


async def test_subscriptions_close_with_their_block() -> None:
    async with ActorSystem() as system:
        async with system.events():
            assert system.statistics().subscribers == 1
        assert system.statistics().subscribers == 0
        # Events published with nobody listening cost nothing and go nowhere.
        await system.spawn(Worker, name="unseen")
        async with system.events() as events:
            await system.spawn(Worker, name="seen")
            assert await next_event(events) == Started(path="/user/seen")


async def test_events_rejects_a_buffer_smaller_than_one() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ValueError, match="buffer"):
            async with system.events(buffer=0):
                pass


async def test_a_subscription_opened_after_exit_ends_at_once() -> None:
    async with ActorSystem() as system:
        await system.spawn(Worker, name="worker")
    seen: list[ActorEvent] = []
    with anyio.move_on_after(0.5) as scope:
        async with system.events() as events:
            seen.extend([event async for event in events])
    assert not scope.cancelled_caught, "iteration did not end"
    assert seen == []
