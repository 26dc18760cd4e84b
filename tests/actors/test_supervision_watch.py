"""Watch: ``Terminated`` when a watched actor ends for good, and only then."""

from __future__ import annotations

from typing import Any

from actors import (
    Actor,
    ActorRef,
    ActorSystem,
    Child,
    Restarted,
    Stopped,
    Supervision,
    Supervisor,
    Terminated,
)
from actors.testing import ManualClock, Probe, record_events


class Boom(Exception):
    """The failure test actors raise on purpose."""


class Target(Actor):
    """Crashes on ``boom``; answers anything else."""

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise Boom("target")
        return message


class Watcher(Actor):
    """Watches ``target`` from ``on_start``; forwards what it receives to ``out``.

    ``unwatch`` makes it unwatch the target; anything else is forwarded too, so a
    test can tell what arrived before it.
    """

    def __init__(self, target: ActorRef, out: ActorRef) -> None:
        self.target = target
        self.out = out

    async def on_start(self) -> None:
        self.watch(self.target)

    async def receive(self, message: Any) -> Any:
        if message == "unwatch":
            self.unwatch(self.target)
            return "unwatched"
        self.out.tell(message)
        return None


async def watched(system: ActorSystem, target: ActorRef) -> tuple[ActorRef, Probe]:
    """Start a Watcher of ``target`` reporting to a new Probe."""
    probe = await Probe.spawn(system, name="probe")
    watcher = await system.spawn(Watcher, target, probe.ref, name="watcher")
    return watcher, probe


async def test_watcher_hears_terminated_stopped_when_the_target_is_stopped() -> None:
    async with ActorSystem() as system:
        target = await system.spawn(Target, name="target")
        _, probe = await watched(system, target)
        await target.stop()

        terminated = await probe.expect(Terminated)
        assert terminated.ref is target
        assert terminated.reason == "stopped"
        assert terminated.error is None


async def test_watcher_hears_terminated_failed_when_a_temporary_target_crashes() -> (
    None
):
    async with ActorSystem() as system:
        target = await system.spawn(Target, name="target", restart="temporary")
        _, probe = await watched(system, target)
        target.tell("boom")

        terminated = await probe.expect(Terminated)
        assert terminated.ref is target
        assert terminated.reason == "failed"
        assert isinstance(terminated.error, Boom)


async def test_watcher_hears_terminated_failed_when_the_parent_gives_up() -> None:
    async with ActorSystem(clock=ManualClock()) as system:
        await system.spawn(
            Supervisor,
            [Child(Target, name="target")],
            Supervision(max_restarts=0),
            name="sup",
        )
        target = system.lookup("/user/sup/target")
        assert target is not None
        _, probe = await watched(system, target)
        target.tell("boom")

        terminated = await probe.expect(Terminated)
        assert terminated.ref is target
        assert terminated.reason == "failed"
        assert isinstance(terminated.error, Boom)


async def test_watching_an_actor_that_already_ended_delivers_terminated_at_once() -> (
    None
):
    async with ActorSystem() as system:
        target = await system.spawn(Target, name="target")
        await target.stop()
        _, probe = await watched(system, target)

        terminated = await probe.expect(Terminated)
        assert terminated.ref is target


async def test_watching_an_actor_that_already_failed_reports_how_it_ended() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        target = await system.spawn(Target, name="target", restart="temporary")
        target.tell("boom")
        stopped = await log.wait_for(Stopped, "/user/target")
        _, probe = await watched(system, target)

        terminated = await probe.expect(Terminated)
        assert terminated.ref is target
        assert (terminated.reason, terminated.error) == ("failed", stopped.error)


async def test_unwatch_stops_delivery() -> None:
    async with ActorSystem() as system:
        target = await system.spawn(Target, name="target")
        watcher, probe = await watched(system, target)
        assert await watcher.ask("unwatch") == "unwatched"
        await target.stop()
        watcher.tell("after the stop")

        # A Terminated would overtake this message (system lane), so none was sent.
        await probe.expect("after the stop")
        assert probe.messages == ["after the stop"]


async def test_restart_is_not_termination_for_a_watcher() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        target = await system.spawn(Target, name="target")
        watcher, probe = await watched(system, target)
        target.tell("boom")
        await log.wait_for(Restarted, "/user/target")
        watcher.tell("after the restart")

        await probe.expect("after the restart")
        # The watch outlived the restart: the final stop is still reported.
        await target.stop()
        terminated = await probe.expect(Terminated)
        assert terminated.ref is target
        assert terminated.reason == "stopped"
