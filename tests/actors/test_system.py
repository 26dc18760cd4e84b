"""``ActorSystem``: its lifetime, its shutdown, and clear errors for bad use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import (
    Actor,
    ActorCrashed,
    ActorError,
    ActorEvent,
    ActorSystem,
    Backoff,
    DeadLetter,
)
from actors.testing import ManualClock, record_events

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from actors import ActorRef


class Recorder(Actor):
    """Appends its path to ``stopped`` in ``on_stop``; starts the named children."""

    def __init__(self, stopped: list[str], *children: str) -> None:
        self.stopped = stopped
        self.child_names = children

    async def on_start(self) -> None:
        for name in self.child_names:
            await self.spawn(Recorder, self.stopped, name=name)

    async def receive(self, message: Any) -> Any:
        return message

    async def on_stop(self) -> None:
        await anyio.lowlevel.checkpoint()
        self.stopped.append(self.ref.path)


class Store(Actor):
    async def on_start(self) -> None:
        self.flushed: list[str] = []

    async def receive(self, message: Any) -> Any:
        self.flushed.append(message)
        return list(self.flushed)


class Client(Actor):
    """Flushes to the store from ``on_stop``: the store must still be up."""

    def __init__(self, store: ActorRef, replies: list[Any]) -> None:
        self.store = store
        self.replies = replies

    async def on_stop(self) -> None:
        self.replies.append(await self.store.ask("flush"))


class HangingStop(Actor):
    def __init__(self, entered: anyio.Event) -> None:
        self.entered = entered

    async def on_stop(self) -> None:
        self.entered.set()
        await anyio.sleep_forever()


class Family(Recorder):
    """Starts a calm child, then one whose ``on_stop`` hangs."""

    def __init__(self, stopped: list[str], entered: anyio.Event) -> None:
        super().__init__(stopped)
        self.entered = entered

    async def on_start(self) -> None:
        await self.spawn(Recorder, self.stopped, name="calm")
        await self.spawn(HangingStop, self.entered, name="hangs")


class Busy(Actor):
    """Never finishes a message: a stop must cut it short."""

    def __init__(self, entered: anyio.Event | None = None) -> None:
        self.entered = entered

    async def receive(self, message: Any) -> Any:
        if self.entered is not None:
            self.entered.set()
        await anyio.sleep_forever()


class Crasher(Actor):
    async def receive(self, message: Any) -> Any:
        raise ValueError(message)


class Idle(Actor):
    async def receive(self, message: Any) -> Any:
        return message


class SyncReceive(Actor):
    def receive(self, message: Any) -> Any:
        return message


class RefInInit(Actor):
    def __init__(self) -> None:
        self.me = self.ref


class NotAnActor:
    pass


def task_ids() -> set[int]:
    return {task.id for task in anyio.get_running_tasks()}


async def test_shutdown_stops_children_first_in_reverse_start_order() -> None:
    stopped: list[str] = []
    async with ActorSystem() as system:
        await system.spawn(Recorder, stopped, "a1", "a2", name="a")
        await system.spawn(Recorder, stopped, name="b")
        await system.spawn(Recorder, stopped, "c1", name="c")
        assert stopped == []
    assert stopped == [
        "/user/c/c1",
        "/user/c",
        "/user/b",
        "/user/a/a2",
        "/user/a/a1",
        "/user/a",
    ]


async def test_shutdown_awaits_on_stop_while_earlier_actors_still_run() -> None:
    replies: list[Any] = []
    async with ActorSystem() as system:
        store = await system.spawn(Store, name="store")
        await system.spawn(Client, store, replies, name="client")
    assert replies == [["flush"]]


async def test_hanging_on_stop_is_cancelled_after_shutdown_timeout() -> None:
    entered = anyio.Event()
    before = task_ids()
    with anyio.fail_after(5):
        async with ActorSystem(shutdown_timeout=0.2) as system:
            ref = await system.spawn(HangingStop, entered, name="hangs")
    assert entered.is_set()
    assert not ref.is_alive
    assert task_ids() == before


async def test_a_message_that_never_finishes_is_cut_short_at_exit() -> None:
    before = task_ids()
    with anyio.fail_after(5):
        async with ActorSystem(shutdown_timeout=0.2) as system:
            busy = await system.spawn(Busy, name="busy")
            busy.tell("forever")
    assert not busy.is_alive
    assert task_ids() == before


async def test_a_hanging_on_stop_does_not_skip_the_other_actors_on_stop() -> None:
    stopped: list[str] = []
    entered = anyio.Event()
    with anyio.fail_after(5):
        async with ActorSystem(shutdown_timeout=0.2) as system:
            await system.spawn(Recorder, stopped, name="first")
            await system.spawn(HangingStop, entered, name="hangs")
    assert entered.is_set()
    assert stopped == ["/user/first"]


async def test_stopping_a_parent_whose_child_hangs_still_stops_every_child() -> None:
    stopped: list[str] = []
    entered = anyio.Event()
    async with ActorSystem(shutdown_timeout=0.2) as system:
        parent = await system.spawn(Family, stopped, entered, name="parent")
        calm = system.lookup("/user/parent/calm")
        assert calm is not None
        with anyio.fail_after(5):
            await parent.stop()
        assert entered.is_set()
        assert not parent.is_alive
        # Its calm child must not live on as an orphan outside the tree.
        assert not calm.is_alive
        assert stopped == ["/user/parent/calm", "/user/parent"]


async def test_messages_still_queued_at_exit_go_to_dead_letters() -> None:
    seen: list[ActorEvent] = []
    clock = ManualClock()
    with anyio.fail_after(5):
        async with (
            anyio.create_task_group() as tg,
            ActorSystem(clock=clock) as system,
        ):

            async def collect(*, task_status: TaskStatus[None]) -> None:
                async with system.events() as events:
                    task_status.started()
                    seen.extend([event async for event in events])

            await tg.start(collect)
            backoff = Backoff(min=60.0, max=60.0, jitter=0.0)
            crasher = await system.spawn(Crasher, name="crasher", backoff=backoff)
            crasher.tell("boom")
            await clock.wait_for_sleeper(60.0)
            crasher.tell("queued 1")  # waits for a restart that never comes
            crasher.tell("queued 2")
    letters = [event for event in seen if isinstance(event, DeadLetter)]
    assert [(e.path, e.message, e.reason) for e in letters] == [
        ("/user/crasher", "queued 1", "stopped"),
        ("/user/crasher", "queued 2", "stopped"),
    ]
    assert system.statistics().dead_letters == 2


async def test_stop_cuts_a_hanging_message_short_and_reports_it() -> None:
    async with (
        ActorSystem(shutdown_timeout=0.2) as system,
        record_events(system) as log,
    ):
        entered = anyio.Event()
        busy = await system.spawn(Busy, entered, name="busy")
        busy.tell("in flight")
        await entered.wait()
        busy.tell("queued")
        with anyio.fail_after(5):
            await busy.stop()
        await log.wait_for(DeadLetter, "/user/busy", count=2)
        letters = log.of(DeadLetter, "/user/busy")
        assert [(e.message, e.reason) for e in letters] == [
            ("in flight", "interrupted"),
            ("queued", "stopped"),
        ]


async def test_a_message_in_flight_at_exit_never_vanishes() -> None:
    seen: list[ActorEvent] = []
    with anyio.fail_after(5):
        async with (
            anyio.create_task_group() as tg,
            ActorSystem(shutdown_timeout=0.2) as system,
        ):

            async def collect(*, task_status: TaskStatus[None]) -> None:
                async with system.events() as events:
                    task_status.started()
                    seen.extend([event async for event in events])

            await tg.start(collect)
            entered = anyio.Event()
            busy = await system.spawn(Busy, entered, name="busy")
            await system.spawn(HangingStop, anyio.Event(), name="hangs")
            busy.tell("in flight")
            await entered.wait()
    letters = [event for event in seen if isinstance(event, DeadLetter)]
    assert [(e.message, e.reason) for e in letters] == [("in flight", "interrupted")]


async def test_no_task_is_left_running_after_exit() -> None:
    clock = ManualClock()
    before = task_ids()
    async with ActorSystem(clock=clock) as system:
        await system.spawn(Recorder, [], "child", name="tree")
        store = await system.spawn(Store, name="store", capacity=1)
        await store.ask("warm")
        assert task_ids() > before
    assert task_ids() == before


async def test_a_system_cancelled_while_it_starts_ends_at_once_leaving_no_task() -> (
    None
):
    before = task_ids()
    entered = False
    with anyio.fail_after(5):  # it used to wait forever on its own timers
        with anyio.CancelScope() as scope:
            scope.cancel()
            async with ActorSystem():
                entered = True
    assert not entered
    assert task_ids() == before


async def test_body_exception_propagates_unchanged() -> None:
    stopped: list[str] = []
    error = KeyError("the host's own error")

    async def host() -> None:
        async with ActorSystem() as system:
            await system.spawn(Recorder, stopped, name="worker")
            raise error

    with pytest.raises(KeyError) as caught:
        await host()
    assert caught.value is error
    assert stopped == ["/user/worker"]


async def test_a_cancelled_body_still_stops_every_actor() -> None:
    stopped: list[str] = []
    with anyio.CancelScope() as scope:
        async with ActorSystem() as system:
            await system.spawn(Recorder, stopped, "child", name="worker")
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert stopped == ["/user/worker/child", "/user/worker"]


async def test_two_siblings_cannot_share_a_name() -> None:
    async with ActorSystem() as system:
        first = await system.spawn(Idle, name="twin")
        with pytest.raises(ActorError, match="twin"):
            await system.spawn(Idle, name="twin")
        assert system.lookup("/user/twin") == first
        await first.stop()
        # Once the first has ended for good, its name is free again.
        second = await system.spawn(Idle, name="twin")
        assert await second.ask("hi") == "hi"


@pytest.mark.parametrize("name", ["", "a/b", "$reserved"])
async def test_spawn_rejects_a_bad_name(name: str) -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorError, match="name"):
            await system.spawn(Idle, name=name)


async def test_spawn_outside_the_async_with_raises_actor_error() -> None:
    system = ActorSystem("outside")
    with pytest.raises(ActorError, match="async with"):
        await system.spawn(Idle)
    async with system:
        pass
    with pytest.raises(ActorError, match="async with"):
        await system.spawn(Idle)


async def test_refs_used_after_the_system_exited_raise_actor_error() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Idle, name="gone")
    with pytest.raises(ActorError, match="exited"):
        ref.tell("late")
    with pytest.raises(ActorError, match="exited"):
        await ref.send("late")
    with pytest.raises(ActorError, match="exited"):
        await ref.ask("late")
    with pytest.raises(ActorError):
        await ref.kill()


async def test_a_factory_that_does_not_return_an_actor_is_refused() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorError) as caught:
            await system.spawn(NotAnActor, name="imposter")  # type: ignore[arg-type]
        assert "not an Actor" in f"{caught.value} {caught.value.__cause__}"
        assert system.lookup("/user/imposter") is None


async def test_a_factory_that_is_not_callable_is_refused() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorError, match="not callable"):
            await system.spawn(Idle(), name="instance")  # type: ignore[arg-type]


async def test_a_receive_that_is_not_async_is_refused() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorError) as caught:
            await system.spawn(SyncReceive, name="sync")
        assert "async def" in f"{caught.value} {caught.value.__cause__}"
        assert system.lookup("/user/sync") is None


async def test_self_ref_in_init_is_refused_with_a_hint() -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorError) as caught:
            await system.spawn(RefInInit, name="eager")
        assert isinstance(caught.value, ActorCrashed)
        cause = caught.value.__cause__
        assert isinstance(cause, ActorError)
        assert "on_start" in str(cause)


def option_cases() -> list[Any]:
    return [
        pytest.param({"capacity": 0}, "capacity", id="capacity-0"),
        pytest.param({"capacity": "10"}, "capacity", id="capacity-str"),
        pytest.param({"overflow": "explode"}, "overflow", id="overflow"),
        pytest.param({"restart": "sometimes"}, "restart", id="restart"),
        pytest.param({"backoff": 5.0}, "backoff", id="backoff"),
    ]


@pytest.mark.parametrize(("options", "named"), option_cases())
async def test_bad_spawn_options_raise_actor_error_naming_the_option(
    options: dict[str, Any], named: str
) -> None:
    async with ActorSystem() as system:
        with pytest.raises(ActorError, match=named):
            await system.spawn(Idle, name="x", **options)
        assert system.lookup("/user/x") is None


async def test_bad_child_spawn_options_raise_actor_error_naming_the_option() -> None:
    class Parent(Actor):
        async def receive(self, message: Any) -> Any:
            overflow: Any = "explode"
            try:
                await self.spawn(Idle, overflow=overflow)
            except ActorError as exc:
                return exc
            return None

    async with ActorSystem() as system:
        parent = await system.spawn(Parent, name="parent")
        error = await parent.ask("spawn")
        assert isinstance(error, ActorError)
        assert "overflow" in str(error)
        assert "/user/parent" in str(error)


async def test_a_system_cannot_be_entered_twice() -> None:
    system = ActorSystem("once")
    async with system:
        with pytest.raises(ActorError, match="once"):
            async with system:
                pass
        # The failed re-entry did not disturb the running system.
        ref = await system.spawn(Idle, name="fine")
        assert await ref.ask("ok") == "ok"
    with pytest.raises(ActorError, match="once"):
        async with system:
            pass


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_shutdown_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="shutdown_timeout"):
        ActorSystem(shutdown_timeout=timeout)


async def test_spawn_returns_after_on_start_so_lookup_finds_the_actor() -> None:
    started: list[str] = []

    class Slow(Actor):
        async def on_start(self) -> None:
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            started.append(self.ref.path)

    async with ActorSystem() as system:
        ref = await system.spawn(Slow, name="slow")
        assert started == ["/user/slow"]
        assert system.lookup("/user/slow") == ref


async def test_statistics_count_living_actors() -> None:
    async with ActorSystem() as system:
        assert system.statistics().actors == 1  # the /user guardian
        tree = await system.spawn(Recorder, [], "child", name="tree")
        assert system.statistics().actors == 3
        await tree.stop()
        assert system.statistics().actors == 1
