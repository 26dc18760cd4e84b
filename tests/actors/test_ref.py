"""``ActorRef``: sending, ordering, dead letters, a handle that survives restarts."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import anyio
import pytest

from actors import (
    Actor,
    ActorError,
    ActorRef,
    ActorSystem,
    Backoff,
    DeadLetter,
    Restarted,
    Terminated,
)
from actors.testing import ManualClock, Probe, record_events, wait_until


class Relay(Actor):
    """Tells ``probe`` every message; ``"hold"`` then waits for ``gate``."""

    def __init__(self, probe: ActorRef, gate: anyio.Event | None = None) -> None:
        self.probe = probe
        self.gate = gate

    async def on_start(self) -> None:
        self.received = 0

    async def receive(self, message: Any) -> Any:
        self.probe.tell(message)
        self.received += 1
        match message:
            case "hold" if self.gate is not None:
                await self.gate.wait()
            case "boom":
                raise ValueError("boom")
            case "count":
                return self.received
            case ("watch", ActorRef() as target):
                self.watch(target)
        return None


class Parent(Actor):
    async def on_start(self) -> None:
        self.child = await self.spawn(Idle, name="child")


class Idle(Actor):
    async def receive(self, message: Any) -> Any:
        return message


def alive(ref: ActorRef) -> bool:
    # A call, not the property: mypy would narrow the property across awaits.
    return ref.is_alive


async def test_tell_is_not_a_coroutine_and_never_checkpoints() -> None:
    assert not inspect.iscoroutinefunction(ActorRef.tell)
    async with ActorSystem() as system:
        probe = await Probe.spawn(system, name="probe")
        # Inside a cancelled scope any checkpoint would raise: tell has none.
        with anyio.CancelScope() as scope:
            scope.cancel()
            for n in range(100):
                probe.ref.tell(n)
            await anyio.lowlevel.checkpoint()  # the first checkpoint: cancelled here
        assert scope.cancelled_caught
        for n in range(100):
            await probe.expect(n)


async def test_tell_to_a_busy_actor_queues_without_waiting() -> None:
    async with ActorSystem() as system:
        probe = await Probe.spawn(system, name="probe")
        gate = anyio.Event()
        relay = await system.spawn(Relay, probe.ref, gate, name="relay")
        relay.tell("hold")
        await probe.expect("hold")
        for n in range(50):
            relay.tell(n)
        gate.set()
        for n in range(50):
            await probe.expect(n)


async def test_messages_from_one_sender_arrive_in_order() -> None:
    async with ActorSystem() as system:
        probe = await Probe.spawn(system, name="probe")
        relay = await system.spawn(Relay, probe.ref, name="relay", capacity=2)

        async def sender(name: str) -> None:
            for n in range(30):
                if n % 2:
                    await relay.send((name, n))
                else:
                    await anyio.lowlevel.checkpoint()
                    try:
                        relay.tell((name, n))
                    except ActorError:
                        await relay.send((name, n))

        async with anyio.create_task_group() as tg:
            for name in ("x", "y", "z"):
                tg.start_soon(sender, name)
        await wait_until(lambda: len(probe.messages) == 90)
        for name in ("x", "y", "z"):
            mine = [n for who, n in probe.messages if who == name]
            assert mine == list(range(30))


async def test_terminated_overtakes_user_messages_already_queued() -> None:
    async with ActorSystem() as system:
        probe = await Probe.spawn(system, name="probe")
        target = await system.spawn(Idle, name="target")
        gate = anyio.Event()
        watcher = await system.spawn(Relay, probe.ref, gate, name="watcher")
        await watcher.ask(("watch", target))
        await probe.expect(("watch", target))
        watcher.tell("hold")
        await probe.expect("hold")
        watcher.tell("first")
        watcher.tell("second")
        await target.stop()
        gate.set()
        terminated = await probe.expect(Terminated)
        assert terminated.ref == target
        assert terminated.reason == "stopped"
        await probe.expect("first")
        await probe.expect("second")


async def test_stop_overtakes_queued_messages_which_become_dead_letters() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        probe = await Probe.spawn(system, name="probe")
        gate = anyio.Event()
        relay = await system.spawn(Relay, probe.ref, gate, name="relay")
        relay.tell("hold")
        await probe.expect("hold")
        relay.tell("q1")
        relay.tell("q2")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(relay.stop)
                await anyio.wait_all_tasks_blocked()
                gate.set()
        await log.wait_for(DeadLetter, "/user/relay", count=2)
        letters = log.of(DeadLetter, "/user/relay")
        assert [(e.message, e.reason) for e in letters] == [
            ("q1", "stopped"),
            ("q2", "stopped"),
        ]
        assert probe.messages == ["hold"]


async def test_messages_to_a_stopped_actor_go_to_dead_letters() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        probe = await Probe.spawn(system, name="probe")
        relay = await system.spawn(Relay, probe.ref, name="relay")
        await relay.stop()
        before = system.statistics().dead_letters
        relay.tell("told")
        with anyio.fail_after(5):
            await relay.send("sent")
        assert system.statistics().dead_letters == before + 2
        await log.wait_for(DeadLetter, "/user/relay", count=2)
        letters = log.of(DeadLetter, "/user/relay")
        assert [(e.message, e.reason) for e in letters] == [
            ("told", "stopped"),
            ("sent", "stopped"),
        ]
        assert probe.messages == []


async def test_unhandled_messages_go_to_dead_letters() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Actor, name="plain")
        ref.tell("nobody handles me")
        letter = await log.wait_for(DeadLetter, "/user/plain")
        assert (letter.message, letter.reason) == ("nobody handles me", "unhandled")
        assert system.statistics().dead_letters == 1


async def test_ref_stays_valid_across_a_restart() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        probe = await Probe.spawn(system, name="probe")
        relay = await system.spawn(Relay, probe.ref, name="relay")
        relay.tell("one")
        relay.tell("two")
        relay.tell("boom")
        await log.wait_for(Restarted, "/user/relay")
        # The same ref reaches the new instance, whose state is fresh.
        assert relay.is_alive
        assert await relay.ask("count") == 1
        assert system.lookup("/user/relay") == relay
        assert [await probe.expect() for _ in range(4)] == [
            "one",
            "two",
            "boom",
            "count",
        ]


async def test_ref_is_alive_while_restarting_and_not_after_stop() -> None:
    clock = ManualClock()
    async with (
        ActorSystem(clock=clock) as system,
        record_events(system) as log,
    ):
        probe = await Probe.spawn(system, name="probe")
        backoff = Backoff(min=10.0, max=10.0, jitter=0.0)
        relay = await system.spawn(Relay, probe.ref, name="relay", backoff=backoff)
        relay.tell("boom")
        await clock.wait_for_sleeper(10.0)
        snapshot = system.snapshot().find("/user/relay")
        assert snapshot is not None
        assert snapshot.state == "restarting"
        assert alive(relay)
        assert system.lookup("/user/relay") == relay
        clock.advance(10.0)
        await log.wait_for(Restarted, "/user/relay")
        assert alive(relay)
        await relay.stop()
        assert not alive(relay)
        assert system.lookup("/user/relay") is None


async def test_lookup_finds_living_actors_by_path() -> None:
    async with ActorSystem() as system:
        parent = await system.spawn(Parent, name="parent")
        child = system.lookup("/user/parent/child")
        assert child is not None
        assert child.path == "/user/parent/child"
        assert child.name == "child"
        assert await child.ask("hi") == "hi"
        assert system.lookup("/user/parent") == parent
        assert system.lookup("/user/parent/") == parent
        assert system.lookup("/user/missing") is None
        assert system.lookup("/user/parent/child/deeper") is None
        assert system.lookup("/elsewhere/parent") is None
        assert system.lookup("user/parent") is None
        await parent.stop()
        assert system.lookup("/user/parent") is None
        assert system.lookup("/user/parent/child") is None
        assert not child.is_alive


async def test_spawn_without_a_name_gets_a_unique_generated_one() -> None:
    async with ActorSystem() as system:
        first = await system.spawn(Idle)
        second = await system.spawn(Idle)
        assert first.path != second.path
        assert first.path.startswith("/user/$")
        assert system.lookup(first.path) == first
        assert system.lookup(second.path) == second


async def test_repr_shows_the_path_and_whether_the_actor_is_alive() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Idle, name="shown")
        assert "/user/shown" in repr(ref)
        assert "alive" in repr(ref)
        await ref.stop()
        assert "/user/shown" in repr(ref)
        assert "ended" in repr(ref)


async def test_stop_is_final_even_for_a_permanent_actor_and_idempotent() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        ref = await system.spawn(Idle, name="forever", restart="permanent")
        await ref.stop()
        await ref.stop()
        assert not ref.is_alive
        assert log.of(Restarted) == []


async def test_a_ref_cannot_be_pickled() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Idle, name="local")
        with pytest.raises(ActorError, match="pickled"):
            pickle.dumps(ref)


async def test_supervisor_children_are_found_by_name_and_anew_after_a_restart() -> None:
    from actors import Child, Supervisor

    async with ActorSystem("t") as system:
        sup = await system.spawn(
            Supervisor,
            [Child(Idle, name="a"), Child(Idle, name="b")],
            name="sup",
            restart="permanent",
        )
        first = sup.child("a")
        assert first is not None
        assert first.path == "/user/sup/a"
        assert list(sup.children()) == ["a", "b"]
        assert sup.children()["b"].path == "/user/sup/b"
        assert sup.child("nobody") is None
        assert await first.ask("ping") == "ping"
        # The supervisor restarts: its children are new actors, with new refs.
        await sup.kill("test")
        await wait_until(lambda: sup.child("a") not in (None, first))
        assert not first.is_alive
        again = sup.child("a")
        assert again is not None
        assert await again.ask("pong") == "pong"


async def test_a_stopped_child_is_not_offered() -> None:
    async with ActorSystem("t") as system:
        parent = await system.spawn(Parent, name="parent")
        child = parent.child("child")
        assert child is not None
        await child.stop()
        assert parent.child("child") is None
        assert parent.children() == {}
