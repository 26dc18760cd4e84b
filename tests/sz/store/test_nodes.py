"""Several nodes on one PostgreSQL store: each fire taken once, a dead node's work
taken over, a node fenced out writing nothing.

Two nodes in one process are enough here: each has its own connections, its
own row in ``nodes`` and its own epoch, as two processes would (the subprocess
test of three ``sz serve`` nodes killed and stopped is ``test_cluster.py``).
A lease "runs out" by an ``UPDATE`` of the row it lives in, never by waiting for
it; every wait is for a condition, polled under a deadline.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import psycopg
import pytest
from apscheduler import ConflictPolicy, Job as ApsJob, Schedule, ScheduleResult
from apscheduler.eventbrokers.local import LocalEventBroker
from apscheduler.triggers.interval import IntervalTrigger

from actors.testing import wait_until
from sz import Config, FencedOut, ScheduleZero
from sz.config import StoreConfig
from sz.jobs import Job
from sz.store import PostgresDatabase, shared as shared_module
from sz.store.nodes import NodeSettings
from sz.store.scenario_runs import ABANDONED
from sz.store.shared import NodeHistory, SharedScheduleStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.postgresql

LOGGER = logging.getLogger(__name__)

#: Seconds any one wait may take before the test fails (far above what it needs).
PATIENCE = 20.0


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


async def rows_of(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return await anyio.to_thread.run_sync(partial(query, url, sql, *params))


# ------------------------------------------------------- stores, node by node


class Node:
    """A node's store driven by hand: claims, a pass of fires, its release."""

    def __init__(self, store: SharedScheduleStore, history: NodeHistory) -> None:
        self.store = store
        self.history = history
        #: The ids of the jobs that reached "the dispatcher" (after the commit).
        self.dispatched: list[str] = []

    def sink(self, fired: ApsJob, verdict: str) -> None:
        """What the bridge's sink does with a due fire, minus the dispatcher."""
        assert fired.scheduled_fire_time is not None
        job = Job(
            fired.task_id,
            fired.scheduled_fire_time,
            fired.id.hex,
            (),
            {},
            fired.schedule_id,
            None,
            1.0,
        )
        self.history.accept(
            job, partial(self.dispatched.append, job.id), fired.scheduled_fire_time
        )

    async def claim(self) -> list[Schedule]:
        return await self.store.acquire_schedules("aps", timedelta(seconds=30), 100)

    async def fire(self, schedules: list[Schedule]) -> None:
        """APScheduler's pass over claimed schedules: one fire each, then release."""
        results = []
        for schedule in schedules:
            fire: Any = schedule.next_fire_time  # due: a time (APScheduler types)
            await self.store.add_job(
                ApsJob(
                    task_id=schedule.task_id,
                    schedule_id=schedule.id,
                    scheduled_fire_time=fire,
                    executor="async",
                )
            )
            results.append(
                ScheduleResult(
                    schedule_id=schedule.id,
                    task_id=schedule.task_id,
                    trigger=schedule.trigger,
                    last_fire_time=fire,
                    next_fire_time=schedule.trigger.next(),
                )
            )
        await self.store.release_schedules("aps", results)
        await self.store.db.flush()


@asynccontextmanager
async def node(url: str, name: str) -> AsyncIterator[Node]:
    file = PostgresDatabase(url, node=NodeSettings(name=name, lease=10.0))
    async with AsyncExitStack() as stack:
        await file.open()
        stack.push_async_callback(file.close)
        history = NodeHistory(file, name, 0)
        holder: list[Node] = []
        store = SharedScheduleStore(
            file=file,
            history=history,
            sink=lambda fired, verdict: holder[0].sink(fired, verdict),
            lookahead=0.25,
        )
        holder.append(Node(store, history))
        broker = LocalEventBroker()
        await broker.start(stack, LOGGER)
        await store.start(stack, broker, LOGGER)
        yield holder[0]


def due_schedule(schedule_id: str) -> Schedule:
    """Every minute, its first fire a second ago: due now."""
    trigger = IntervalTrigger(
        minutes=1, start_time=datetime.now(UTC) - timedelta(seconds=1)
    )
    first: Any = trigger.next()  # APScheduler types it as always a time
    return Schedule(
        id=schedule_id,
        task_id="task",
        trigger=trigger,
        job_executor="async",
        next_fire_time=first,
    )


async def add_due(store: SharedScheduleStore, count: int) -> list[str]:
    ids = [f"s{n:03}" for n in range(count)]
    for schedule_id in ids:
        await store.add_schedule(due_schedule(schedule_id), ConflictPolicy.replace)
    return ids


# -------------------------------------------------------------------- claiming


async def test_a_claim_skips_the_schedules_another_transaction_holds_locked(
    pg_url: str,
) -> None:
    """SKIP LOCKED: a node never waits on rows another node is claiming."""
    async with node(pg_url, "a") as a:
        ids = await add_due(a.store, 6)
        with psycopg.connect(pg_url) as other:  # not autocommit: holds its locks
            await anyio.to_thread.run_sync(
                lambda: other.execute(
                    "SELECT id FROM sz.schedules WHERE id = ANY(%s) FOR UPDATE",
                    (ids[:2],),
                )
            )
            with anyio.fail_after(PATIENCE):
                claimed = await a.claim()
            assert sorted(s.id for s in claimed) == ids[2:]
        held = await rows_of(
            pg_url, "SELECT id, lease_node FROM sz.schedules ORDER BY id"
        )
        assert held == [(i, None) for i in ids[:2]] + [(i, "a") for i in ids[2:]]


async def test_two_nodes_claiming_at_once_take_each_due_schedule_once(
    pg_url: str,
) -> None:
    async with node(pg_url, "a") as a, node(pg_url, "b") as b:
        ids = await add_due(a.store, 60)
        claims: dict[str, list[str]] = {}

        async def claim(name: str, each: Node) -> None:
            found: list[str] = []
            while batch := await each.claim():
                found += [s.id for s in batch]
                await each.fire(batch)
            claims[name] = found

        async with anyio.create_task_group() as tg:
            tg.start_soon(claim, "a", a)
            tg.start_soon(claim, "b", b)
        assert sorted(claims["a"] + claims["b"]) == ids
        assert sorted(a.dispatched + b.dispatched) == sorted(
            job_id for (job_id,) in await rows_of(pg_url, "SELECT id FROM sz.jobs")
        )
        per_fire = await rows_of(
            pg_url,
            "SELECT schedule_id, count(*) FROM sz.jobs GROUP BY schedule_id",
        )
        assert sorted(per_fire) == [(i, 1) for i in ids]
        nodes = Counter(n for (n,) in await rows_of(pg_url, "SELECT node FROM sz.jobs"))
        assert nodes == Counter({"a": len(claims["a"]), "b": len(claims["b"])})
        # Released: every schedule moved on a minute, held by nobody.
        left = await rows_of(
            pg_url,
            "SELECT count(*) FROM sz.schedules WHERE lease_node IS NULL "
            "AND next_fire_time > now() + interval '50 seconds'",
        )
        assert left == [(60,)]


async def test_a_release_after_the_lease_was_claimed_by_another_node_is_rolled_back(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A stalls past its lease; B claims and fires; A's release records nothing.

    The release's fenced update finds fewer rows held by A than it released:
    the whole pass (fire times, accepted jobs, fires taken) is rolled back,
    logged, and none of its fires reaches A's dispatcher.
    """
    async with node(pg_url, "a") as a, node(pg_url, "b") as b:
        ids = await add_due(a.store, 5)
        stalled = await a.claim()
        assert sorted(s.id for s in stalled) == ids
        before = await rows_of(
            pg_url, "SELECT id, next_fire_time FROM sz.schedules ORDER BY id"
        )
        # A's lease runs out (on the database's clock) while it stalls.
        await rows_of(
            pg_url, "UPDATE sz.schedules SET lease_until = now() - interval '1s'"
        )
        taken = await b.claim()
        assert sorted(s.id for s in taken) == ids
        with caplog.at_level(logging.ERROR, "sz.store"):
            await a.fire(stalled)
        assert a.dispatched == []
        assert await rows_of(pg_url, "SELECT count(*) FROM sz.jobs") == [(0,)]
        assert await rows_of(pg_url, "SELECT count(*) FROM sz.fired") == [(0,)]
        after = await rows_of(
            pg_url, "SELECT id, next_fire_time FROM sz.schedules ORDER BY id"
        )
        assert after == before
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert "claimed by another node before this one released them" in (
            caplog.records[-1].getMessage()
        )
        # B's pass counts: each fire accepted once, by B.
        await b.fire(taken)
        assert sorted(b.dispatched) == sorted(
            job_id for (job_id,) in await rows_of(pg_url, "SELECT id FROM sz.jobs")
        )
        per_fire = await rows_of(
            pg_url,
            "SELECT schedule_id, node, count(*) FROM sz.jobs "
            "GROUP BY schedule_id, node ORDER BY schedule_id",
        )
        assert per_fire == [(i, "b", 1) for i in ids]


async def test_a_schedule_removed_while_held_does_not_roll_back_the_others(
    pg_url: str,
) -> None:
    async with node(pg_url, "a") as a:
        ids = await add_due(a.store, 3)
        held = await a.claim()
        await a.store.remove_schedules([ids[0]])
        await a.fire(held)
        assert len(a.dispatched) == 3  # the fire taken before the removal runs
        left = await rows_of(
            pg_url, "SELECT id, lease_node FROM sz.schedules ORDER BY id"
        )
        assert left == [(ids[1], None), (ids[2], None)]


# ----------------------------------------------------- whole schedulers, nodes


def node_config(url: str, name: str, *, lease: float, heartbeat: float) -> Config:
    return Config(
        store=StoreConfig(url=url, node=name, lease=lease, heartbeat=heartbeat)
    )


async def test_each_fire_of_schedules_shared_by_two_schedulers_runs_once(
    pg_url: str,
) -> None:
    ran: Counter[tuple[str, str]] = Counter()
    where: Counter[str] = Counter()

    def make(name: str) -> ScheduleZero:
        sz = ScheduleZero(store=pg_url, node=name)

        @sz.handler(name="tick")
        def tick(n: int) -> None:
            ran[(str(n), name)] += 1
            where[name] += 1

        return sz

    a, b = make("a"), make("b")
    schedules, fires = 30, 3
    async with a, b:
        for n in range(schedules):
            await a.schedule("tick", "interval", seconds=1, args=[n], id=f"s{n}")

        async def enough() -> bool:
            found = await rows_of(
                pg_url, "SELECT count(*) FROM sz.history WHERE outcome = 'success'"
            )
            return bool(found[0][0] >= schedules * fires)

        await wait_until(enough, timeout=PATIENCE)
    doubled = await rows_of(
        pg_url,
        "SELECT schedule_id, scheduled_at FROM sz.history WHERE final "
        "GROUP BY 1, 2 HAVING count(*) > 1",
    )
    assert doubled == []
    accepted_twice = await rows_of(
        pg_url,
        "SELECT job_id FROM sz.history GROUP BY job_id HAVING count(*) > 1",
    )
    assert accepted_twice == []
    assert sum(where.values()) >= schedules * fires


async def test_a_dead_nodes_accepted_jobs_are_taken_over_and_it_is_fenced_out(
    pg_url: str,
) -> None:
    """A holds a job; its lease runs out; B takes the job over and runs it again.

    B records A's attempt ``abandoned`` (``retry_after_restart``) and runs the
    next; A, coming back, finds itself fenced out: its own final row for the
    job is never written, and ``wait_store_lost`` says why.
    """
    started = anyio.Event()
    release_a = anyio.Event()
    runs: list[str] = []

    a = ScheduleZero(config=node_config(pg_url, "a", lease=60.0, heartbeat=50.0))
    b = ScheduleZero(config=node_config(pg_url, "b", lease=2.0, heartbeat=0.1))

    @a.handler(name="work", retries=1)
    async def work_a(n: int) -> int:
        runs.append("a")
        started.set()
        await release_a.wait()
        return n

    @b.handler(name="work", retries=1)
    async def work_b(n: int) -> int:
        runs.append("b")
        return n

    async with a:
        handle = await a.submit("work", args=[7], job_id="the-job")
        with anyio.fail_after(PATIENCE):
            await started.wait()
        async with b:
            # A falls silent: its lease ends on the database's clock.
            await rows_of(
                pg_url,
                "UPDATE sz.nodes SET lease_until = now() - interval '1s' "
                "WHERE name = 'a'",
            )

            async def retried_on_b() -> bool:
                rows = await b.history(job_id="the-job")
                return any(r.final and r.outcome == "success" for r in rows)

            await wait_until(retried_on_b, timeout=PATIENCE)
            with anyio.fail_after(PATIENCE):
                release_a.set()
                lost = await a.wait_store_lost()
            assert isinstance(lost, FencedOut)
            assert "node a (epoch 1) is fenced out" in str(lost)
        del handle
    rows = await rows_of(
        pg_url,
        "SELECT attempt, outcome, final, reason FROM sz.history "
        "WHERE job_id = 'the-job' ORDER BY attempt",
    )
    assert rows == [
        (1, "abandoned", False, "retry_after_restart"),
        (2, "success", True, None),
    ]
    assert runs == ["a", "b"]
    nodes = await rows_of(pg_url, "SELECT name, epoch FROM sz.nodes ORDER BY name")
    assert nodes == [("a", 2), ("b", 1)]
    assert await rows_of(pg_url, "SELECT count(*) FROM sz.jobs") == [(0,)]


async def test_a_removal_by_a_node_fenced_out_removes_nothing(pg_url: str) -> None:
    """A removal is one statement with its fence: taken over, the node changes
    nothing (and hears that it is fenced out); live, it removes."""
    async with node(pg_url, "a") as a:
        ids = await add_due(a.store, 3)
        await a.store.remove_schedules([ids[0]])
        # Its row taken over, as another node's takeover raises the epoch.
        await rows_of(pg_url, "UPDATE sz.nodes SET epoch = epoch + 1 WHERE name = 'a'")
        with pytest.raises(FencedOut):
            await a.store.remove_schedules(ids[1:])
    left = await rows_of(pg_url, "SELECT id FROM sz.schedules ORDER BY id")
    assert left == [(i,) for i in ids[1:]]


async def test_only_a_schedule_due_soon_is_notified(pg_url: str) -> None:
    """A schedule far off (or paused) is added without a notification: the
    nodes look before it falls due anyway. Markers the test notifies itself
    bracket each add: notifications arrive in commit order."""
    async with node(pg_url, "a") as a:
        channel = a.store.db.channel
        watcher = await anyio.to_thread.run_sync(
            partial(psycopg.connect, pg_url, autocommit=True)
        )
        try:

            def mark(payload: str) -> None:
                watcher.execute("SELECT pg_notify(%s, %s)", (channel, payload))

            def heard_until(payload: str) -> list[str]:
                heard = []
                for notify in watcher.notifies(timeout=PATIENCE):
                    heard.append(notify.payload)
                    if notify.payload == payload:
                        return heard
                raise AssertionError(f"{payload} never came: {heard}")

            await anyio.to_thread.run_sync(watcher.execute, f'LISTEN "{channel}"')
            await anyio.to_thread.run_sync(mark, "1")
            far = datetime.now(UTC) + timedelta(hours=1)
            for schedule in (
                Schedule(
                    id="far",
                    task_id="task",
                    trigger=IntervalTrigger(hours=1, start_time=far),
                    job_executor="async",
                    next_fire_time=far,
                ),
                attrs.evolve(due_schedule("paused"), paused=True),
            ):
                await a.store.add_schedule(schedule, ConflictPolicy.replace)
            await anyio.to_thread.run_sync(mark, "2")
            await add_due(a.store, 1)
            await anyio.to_thread.run_sync(mark, "3")
            heard = await anyio.to_thread.run_sync(heard_until, "3")
        finally:
            await anyio.to_thread.run_sync(watcher.close)
    assert heard == ["1", "2", "", "3"]


async def add_running_run(url: str, run_id: str, node: str) -> None:
    """A scenario run's first row, as its node writes it when the run starts."""
    await rows_of(
        url,
        "INSERT INTO sz.scenario_runs (run_id, node, scenario_id, name, seed, "
        "parameters, started_at, units) VALUES (%s, %s, 's-id', 's', 1, '{}', "
        "now(), '{}')",
        run_id,
        node,
    )


async def test_a_nodes_scenario_runs_end_aborted_with_it_and_not_before(
    pg_url: str,
) -> None:
    """A starting node aborts its own cut-off runs, never a live node's.

    Node A's run stays ``running`` while A lives, however many nodes start;
    when A's lease runs out, the node that takes A over ends A's run
    ``aborted``, naming A.
    """
    a = ScheduleZero(config=node_config(pg_url, "a", lease=60.0, heartbeat=50.0))
    b = ScheduleZero(config=node_config(pg_url, "b", lease=2.0, heartbeat=0.1))
    async with a:
        # A's live run, and one B left running when its last process died.
        await add_running_run(pg_url, "of-a", "a")
        await add_running_run(pg_url, "of-b", "b")
        async with b:
            found = await rows_of(
                pg_url,
                "SELECT run_id, outcome, error FROM sz.scenario_runs ORDER BY run_id",
            )
            assert found == [("of-a", None, None), ("of-b", "aborted", ABANDONED)]
            await rows_of(
                pg_url,
                "UPDATE sz.nodes SET lease_until = now() - interval '1s' "
                "WHERE name = 'a'",
            )

            async def a_taken_over() -> bool:
                rows = await rows_of(
                    pg_url,
                    "SELECT outcome FROM sz.scenario_runs WHERE run_id = 'of-a'",
                )
                return rows == [("aborted",)]

            await wait_until(a_taken_over, timeout=PATIENCE)
            with anyio.fail_after(PATIENCE):
                lost = await a.wait_store_lost()
            assert isinstance(lost, FencedOut)
    (error, passed) = (
        await rows_of(
            pg_url,
            "SELECT error, passed FROM sz.scenario_runs WHERE run_id = 'of-a'",
        )
    )[0]
    assert error == "its node a ended during the run (taken over)"
    assert passed is False


async def test_a_node_is_woken_by_a_schedule_another_node_adds(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LISTEN/NOTIFY: with polling made hourly, only the notification wakes A."""
    monkeypatch.setattr(shared_module, "POLL", 3600.0)
    fired = anyio.Event()
    a = ScheduleZero(store=pg_url, node="a")

    @a.handler(name="tick")
    async def tick() -> None:
        fired.set()

    b = ScheduleZero(store=pg_url, node="b")
    b.handler(lambda: None, name="tick")
    async with a, b:
        # B takes no fire: the fire must be A's, woken by B's notification.
        await b.drain(0)
        await b.schedule("tick", "interval", seconds=3600, id="hourly")
        with anyio.fail_after(PATIENCE):
            await fired.wait()
