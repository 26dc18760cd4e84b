from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors import Actor, ActorCrashed, ActorError, ActorSystem, Crashed, Restarted
from actors.testing import record_events, wait_until


class Boom(Exception):
    """Raised on purpose by a task."""


class Background(Actor):
    """Starts a task per "start" message; the task waits for its release event."""

    def __init__(self, log: list[str], release: anyio.Event) -> None:
        self.log = log
        self.release = release

    async def receive(self, message: Any) -> Any:
        if message == "start":
            self.start_task(self.work, name="work")
        elif message == "start-failing":
            self.start_task(self.fail)
        elif message == "ping":
            return "pong"
        return None

    async def work(self) -> None:
        self.log.append("task started")
        try:
            await self.release.wait()
            self.log.append("task finished")
        except anyio.get_cancelled_exc_class():
            self.log.append("task cancelled")
            raise

    async def fail(self) -> None:
        raise Boom("task failed")

    async def on_stop(self) -> None:
        self.log.append("on_stop")


async def test_a_task_runs_beside_the_mailbox_without_holding_it_up() -> None:
    log: list[str] = []
    release = anyio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(Background, log, release)
        ref.tell("start")
        await wait_until(lambda: "task started" in log)
        assert await ref.ask("ping") == "pong"  # the task's wait blocks nothing
        release.set()
        await wait_until(lambda: "task finished" in log)


async def test_stopping_the_actor_cancels_its_tasks_before_on_stop() -> None:
    log: list[str] = []
    async with ActorSystem() as system:
        ref = await system.spawn(Background, log, anyio.Event())
        ref.tell("start")
        await wait_until(lambda: "task started" in log)
        await ref.stop()
    assert log == ["task started", "task cancelled", "on_stop"]


async def test_a_restart_cancels_the_old_incarnations_tasks() -> None:
    log: list[str] = []
    async with ActorSystem() as system, record_events(system) as events:
        ref = await system.spawn(Background, log, anyio.Event())
        ref.tell("start")
        await wait_until(lambda: "task started" in log)
        await ref.kill()
        await events.wait_for(Restarted, ref.path)
    assert log[:3] == ["task started", "task cancelled", "on_stop"]


async def test_an_exception_escaping_a_task_crashes_its_actor() -> None:
    async with ActorSystem() as system, record_events(system) as events:
        ref = await system.spawn(Background, [], anyio.Event())
        ref.tell("start-failing")
        crashed = await events.wait_for(Crashed, ref.path)
        assert isinstance(crashed.error, Boom)
        await events.wait_for(Restarted, ref.path)
        assert await ref.ask("ping") == "pong"


async def test_a_task_may_ask_its_own_actor() -> None:
    replies: list[Any] = []

    class AsksItself(Actor):
        async def on_start(self) -> None:
            self.start_task(self.ask_me)

        async def ask_me(self) -> None:
            replies.append(await self.ref.ask("hello"))

        async def receive(self, message: Any) -> Any:
            return f"{message} back"

    async with ActorSystem() as system:
        await system.spawn(AsksItself)
        await wait_until(lambda: bool(replies))
    assert replies == ["hello back"]


async def test_start_task_in_init_is_a_clear_error() -> None:
    class TooEarly(Actor):
        def __init__(self) -> None:
            self.start_task(anyio.sleep, 0)

    async with ActorSystem() as system:
        with pytest.raises(ActorCrashed, match="failed to start") as info:
            await system.spawn(TooEarly)
        assert isinstance(info.value.__cause__, ActorError)
        assert "use on_start" in str(info.value.__cause__)
