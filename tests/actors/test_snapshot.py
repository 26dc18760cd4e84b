"""``system.snapshot()``: the living tree as frozen, JSON-ready data."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import attrs
import cattrs
import pytest

from actors import (
    Actor,
    ActorDeath,
    ActorSnapshot,
    ActorSystem,
    Backoff,
    Restarted,
    Stopped,
    Supervision,
    lowlevel,
)
from actors.testing import ManualClock, record_events, wait_until


class Worker(Actor):
    """Handles messages; ``"hold"`` waits for ``gate``, ``"boom"`` crashes."""

    def __init__(self, gate: anyio.Event | None = None) -> None:
        self.gate = gate

    async def receive(self, message: Any) -> Any:
        match message:
            case "hold" if self.gate is not None:
                await self.gate.wait()
            case "boom":
                raise ValueError("boom")
        return message


class Team(Actor):
    async def on_start(self) -> None:
        await self.spawn(Lead, name="lead")
        await self.spawn(Worker, name="second")


class Lead(Actor):
    async def on_start(self) -> None:
        await self.spawn(Worker, name="deep")


class StateRecorder(Actor):
    """Records its own state, as the snapshot shows it, in ``on_start``/``on_stop``."""

    def __init__(self, states: list[str]) -> None:
        self.states = states

    async def on_start(self) -> None:
        mine = self.system.snapshot().find(self.ref.path)
        assert mine is not None
        self.states.append(mine.state)

    async def on_stop(self) -> None:
        mine = self.system.snapshot().find(self.ref.path)
        assert mine is not None
        self.states.append(mine.state)


def find(system: ActorSystem, path: str) -> ActorSnapshot:
    snapshot = system.snapshot().find(path)
    assert snapshot is not None, f"{path} is not in the snapshot"
    return snapshot


async def test_snapshot_has_every_field_of_a_running_actor() -> None:
    async with ActorSystem() as system:
        before = time.time()
        worker = await system.spawn(Worker, name="worker", capacity=7)
        after = time.time()
        await worker.ask("one")
        await worker.ask("two")
        snapshot = find(system, "/user/worker")
        assert snapshot.path == "/user/worker"
        assert snapshot.actor_class == "Worker"
        assert snapshot.state == "running"
        assert snapshot.mailbox_depth == 0
        assert snapshot.mailbox_capacity == 7
        assert snapshot.processed == 2
        assert snapshot.failures == 0
        assert snapshot.restarts == 0
        assert snapshot.last_error is None
        assert snapshot.started_at is not None
        assert before <= snapshot.started_at <= after
        assert snapshot.children == ()


async def test_snapshot_counts_failures_and_restarts_and_keeps_last_error() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        worker = await system.spawn(Worker, name="worker")
        first_start = find(system, "/user/worker").started_at
        assert first_start is not None
        worker.tell("boom")
        await log.wait_for(Restarted, "/user/worker")
        assert await worker.ask("after") == "after"
        snapshot = find(system, "/user/worker")
        assert (snapshot.failures, snapshot.restarts) == (1, 1)
        assert snapshot.last_error == repr(ValueError("boom"))
        assert snapshot.state == "running"
        assert snapshot.started_at is not None
        assert snapshot.started_at >= first_start


async def test_snapshot_shows_messages_waiting_not_the_one_in_process() -> None:
    async with ActorSystem() as system:
        gate = anyio.Event()
        worker = await system.spawn(Worker, gate, name="worker", capacity=5)
        worker.tell("hold")
        await wait_until(lambda: find(system, "/user/worker").mailbox_depth == 0)
        worker.tell("a")
        worker.tell("b")
        snapshot = find(system, "/user/worker")
        assert (snapshot.mailbox_depth, snapshot.mailbox_capacity) == (2, 5)
        gate.set()
        await wait_until(lambda: find(system, "/user/worker").processed == 3)
        assert find(system, "/user/worker").mailbox_depth == 0


async def test_snapshot_is_the_whole_tree_in_start_order() -> None:
    async with ActorSystem() as system:
        await system.spawn(Team, name="team")
        await system.spawn(Worker, name="solo")
        root = system.snapshot()
        assert root.path == "/user"
        assert root.state == "running"
        assert [snap.path for snap in root.walk()] == [
            "/user",
            "/user/team",
            "/user/team/lead",
            "/user/team/lead/deep",
            "/user/team/second",
            "/user/solo",
        ]
        team = find(system, "/user/team")
        assert [child.path for child in team.children] == [
            "/user/team/lead",
            "/user/team/second",
        ]
        assert team.actor_class == "Team"
        assert root.find("/user/nobody") is None


async def test_snapshot_survives_json_through_cattrs() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        await system.spawn(Team, name="team")
        worker = await system.spawn(Worker, name="worker")
        worker.tell("boom")
        await log.wait_for(Restarted, "/user/worker")
        snapshot = system.snapshot()
        text = json.dumps(cattrs.unstructure(snapshot))
        data = json.loads(text)
        assert data["path"] == "/user"
        assert [child["path"] for child in data["children"]] == [
            "/user/team",
            "/user/worker",
        ]
        assert set(data) == {
            "path",
            "actor_class",
            "state",
            "mailbox_depth",
            "mailbox_capacity",
            "processed",
            "failures",
            "restarts",
            "last_error",
            "started_at",
            "supervision",
            "window_restarts",
            "children",
        }
        assert data["children"][1]["last_error"] == repr(ValueError("boom"))
        assert cattrs.structure(data, ActorSnapshot) == snapshot


async def test_snapshot_is_frozen() -> None:
    async with ActorSystem() as system:
        snapshot = system.snapshot()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(snapshot, "state", "stopped")  # noqa: B010


async def test_snapshot_shows_restarting_while_a_backoff_holds_the_actor() -> None:
    clock = ManualClock()
    async with (
        ActorSystem(clock=clock) as system,
        record_events(system) as log,
    ):
        backoff = Backoff(min=10.0, max=10.0, jitter=0.0)
        worker = await system.spawn(Worker, name="worker", backoff=backoff)
        worker.tell("boom")
        await clock.wait_for_sleeper(10.0)
        waiting = find(system, "/user/worker")
        assert waiting.state == "restarting"
        assert waiting.actor_class == "Worker"
        assert (waiting.failures, waiting.restarts) == (1, 0)
        # While it waits, its mailbox keeps taking messages.
        worker.tell("queued")
        assert find(system, "/user/worker").mailbox_depth == 1
        clock.advance(10.0)
        await log.wait_for(Restarted, "/user/worker")
        await wait_until(lambda: find(system, "/user/worker").mailbox_depth == 0)
        back = find(system, "/user/worker")
        assert (back.state, back.restarts) == ("running", 1)


async def test_snapshot_shows_starting_running_stopping_then_stopped() -> None:
    states: list[str] = []
    async with ActorSystem() as system:
        recorder = await system.spawn(StateRecorder, states, name="recorder")
        states.append(find(system, "/user/recorder").state)
        await recorder.stop()
        assert states == ["starting", "running", "stopping"]
        assert system.snapshot().find("/user/recorder") is None  # gone for good
        await system.spawn(StateRecorder, states, name="at-exit")
    assert states == ["starting", "running", "stopping", "starting", "stopping"]
    root = system.snapshot()
    assert root.state == "stopped"
    assert root.children == ()


class Strict(Actor):
    """Supervises one ``Worker`` with an intensity of 2 restarts in 10 s."""

    supervision = Supervision(strategy="rest_for_one", max_restarts=2, within=10.0)

    async def on_start(self) -> None:
        await self.spawn(Worker, name="kid")


async def test_snapshot_shows_supervision_and_the_restarts_in_its_window() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        await system.spawn(Strict, name="strict")
        kid = system.lookup("/user/strict/kid")
        assert kid is not None
        kid.tell("boom")
        await log.wait_for(Restarted, "/user/strict/kid")

        strict = system.snapshot().find("/user/strict")
        assert strict is not None
        assert strict.supervision == Strict.supervision
        assert strict.window_restarts == 1
        leaf = strict.find("/user/strict/kid")
        assert leaf is not None
        assert leaf.supervision == Supervision()
        assert leaf.window_restarts == 0

        clock.advance(10.5)
        later = system.snapshot().find("/user/strict")
        assert later is not None
        assert later.window_restarts == 0


async def test_recent_restarts_counts_the_restarts_within_the_window_asked() -> None:
    clock = ManualClock()
    async with ActorSystem(clock=clock) as system, record_events(system) as log:
        worker = await system.spawn(Worker, name="worker")
        assert lowlevel.recent_restarts(system, 300.0) == 0
        worker.tell("boom")
        await log.wait_for(Restarted, "/user/worker")
        clock.advance(200.0)
        worker.tell("boom")
        await log.wait_for(Restarted, "/user/worker", count=2)
        assert lowlevel.recent_restarts(system, 300.0) == 2
        assert lowlevel.recent_restarts(system, 100.0) == 1
        clock.advance(150.0)
        assert lowlevel.recent_restarts(system, 300.0) == 1


async def test_recent_deaths_keep_each_crash_and_what_became_of_the_actor() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        assert lowlevel.recent_deaths(system) == []
        kept = await system.spawn(Worker, name="kept")
        gone = await system.spawn(Worker, name="gone", restart="temporary")
        kept.tell("boom")
        await log.wait_for(Restarted, "/user/kept")
        await kept.kill("killed by a test")
        await log.wait_for(Restarted, "/user/kept", count=2)
        gone.tell("boom")
        await log.wait_for(Stopped, "/user/gone")

        deaths = lowlevel.recent_deaths(system)
        # Newest first: the temporary actor's crash, the kill, the first crash.
        assert [(d.path, d.cause, d.restarted, d.ended) for d in deaths] == [
            ("/user/gone", "ValueError('boom')", False, True),
            ("/user/kept", "ActorKilled('killed by a test')", True, False),
            ("/user/kept", "ValueError('boom')", True, False),
        ]
        assert all(isinstance(d, ActorDeath) for d in deaths)
        assert deaths[0].actor_class == "Worker"
        assert deaths[2].died_at <= deaths[1].died_at <= deaths[0].died_at
        assert deaths[0].died_at == pytest.approx(time.time(), abs=60)
        # The gone actor left the tree; its death is still told.
        assert system.snapshot().find("/user/gone") is None
        assert lowlevel.recent_deaths(system, limit=1) == deaths[:1]
