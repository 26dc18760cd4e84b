"""A handler serving several tasks with one capacity (a remote worker), and how it
leaves: draining (finishing its jobs, taking no new one) or lost (its jobs retried).

The dispatcher is real; the handler is a probe standing in for a worker's proxy
(the broker's own tests run real workers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import ActorSystem
from actors.testing import Probe
from sz.dispatcher import (
    DispatcherActor,
    DispatcherState,
    HandlersQuery,
    HandlerStatus,
    Register,
    Submit,
    Unregister,
)
from sz.handlers import Execute, Finished
from sz.health import HealthPolicy
from sz.history import HistoryActor
from sz.jobs import Attempt, HistoryQuery, Job, JobFuture
from sz.store.history import MemoryHistory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from actors import ActorRef

pytestmark = pytest.mark.anyio


class Bench:
    def __init__(self, system: ActorSystem, dispatcher: ActorRef, history: ActorRef):
        self.system = system
        self.dispatcher = dispatcher
        self.history = history

    async def worker(self, name: str, tasks: tuple[str, ...], capacity: int) -> Probe:
        probe = await Probe.spawn(self.system, name=name)
        self.dispatcher.tell(
            Register(
                name=name,
                tasks=tasks,
                ref=probe.ref,
                concurrency=capacity,
                retries=0,
                kind="remote",
            )
        )
        await self.statuses()
        return probe

    async def submit(self, task: str) -> tuple[Job, JobFuture]:
        job = Job(task=task, scheduled_at=datetime.now(UTC))
        future = JobFuture()
        await self.dispatcher.send(Submit(job=job, future=future))
        await self.statuses()
        return job, future

    async def statuses(self) -> dict[str, HandlerStatus]:
        found: list[HandlerStatus] = await self.dispatcher.ask(HandlersQuery())
        return {status.name: status for status in found}

    async def rows(self, job: Job) -> list[Attempt]:
        rows: list[Attempt] = await self.history.ask(HistoryQuery(job_id=job.id))
        return rows[::-1]


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    async with ActorSystem("shared") as system:
        history = await system.spawn(
            HistoryActor, MemoryHistory(1000), name="history", restart="permanent"
        )
        dispatcher = await system.spawn(
            DispatcherActor,
            DispatcherState(policy=HealthPolicy(heartbeat_timeout=None)),
            history,
            name="dispatcher",
            restart="permanent",
        )
        yield Bench(system, dispatcher, history)


def finish(order: Execute, handler: str, outcome: str = "success") -> Finished:
    now = datetime.now(UTC)
    return Finished(
        job=order.job,
        attempt=order.attempt,
        handler=handler,
        outcome=outcome,
        value="done",
        started_at=now,
        finished_at=now,
        duration=0.0,
    )


async def test_one_capacity_is_shared_by_every_task_of_a_handler(bench: Bench) -> None:
    worker = await bench.worker("w", ("email", "sms"), capacity=2)
    status = (await bench.statuses())["w"]
    assert (status.tasks, status.kind, status.concurrency) == (
        ("email", "sms"),
        "remote",
        2,
    )
    await bench.submit("email")
    await bench.submit("sms")
    _, third = await bench.submit("sms")
    first = await worker.expect(Execute)
    await worker.expect(Execute)
    assert (await bench.statuses())["w"].health.active == 2
    assert len(worker.messages) == 2  # the third waits: the capacity is shared
    # The email job's end frees the room an sms job takes.
    bench.dispatcher.tell(finish(first, "w"))
    order = await worker.expect(Execute)
    assert order.job.task == "sms"
    bench.dispatcher.tell(finish(order, "w"))
    with anyio.fail_after(5):
        await third.wait()
    assert third.outcome == "success"


async def test_a_draining_handler_finishes_its_jobs_and_takes_no_new_one(
    bench: Bench,
) -> None:
    leaving = await bench.worker("leaving", ("email",), capacity=4)
    running, running_future = await bench.submit("email")
    order = await leaving.expect(Execute)
    bench.dispatcher.tell(Unregister(name="leaving", drain=True))
    assert (await bench.statuses())["leaving"].draining
    queued, queued_future = await bench.submit("email")
    assert len(leaving.messages) == 1  # the new job waits
    # Its running job still ends as it reports, on it.
    bench.dispatcher.tell(finish(order, "leaving"))
    with anyio.fail_after(5):
        await running_future.wait()
    assert running_future.outcome == "success"
    # A new worker takes the waiting job.
    staying = await bench.worker("staying", ("email",), capacity=4)
    order = await staying.expect(Execute)
    assert order.job.id == queued.id
    bench.dispatcher.tell(finish(order, "staying"))
    with anyio.fail_after(5):
        await queued_future.wait()
    assert [row.handler for row in await bench.rows(running)] == ["leaving"]


async def test_a_lost_handlers_jobs_run_again_saying_why(bench: Bench) -> None:
    lost = await bench.worker("lost", ("email",), capacity=4)
    other = await bench.worker("other", ("email",), capacity=4)
    job, future = await bench.submit("email")
    [owner] = [n for n, s in (await bench.statuses()).items() if s.health.active]
    probes = {"lost": lost, "other": other}
    first = await probes[owner].wait_for(Execute)
    [survivor_name] = set(probes) - {owner}
    survivor = probes[survivor_name]
    bench.dispatcher.tell(Unregister(name=owner, reason="worker_lost"))
    again = await survivor.wait_for(Execute)
    assert (again.job.id, again.attempt) == (job.id, first.attempt + 1)
    assert owner not in await bench.statuses()
    # A late report of the lost attempt changes nothing.
    bench.dispatcher.tell(finish(first, owner, outcome="failure"))
    bench.dispatcher.tell(finish(again, survivor_name))
    with anyio.fail_after(5):
        await future.wait()
    rows = await bench.rows(job)
    summary: list[Any] = [
        (row.attempt, row.outcome, row.reason, row.final) for row in rows
    ]
    assert summary == [
        (1, "abandoned", "retry_after_worker_lost", False),
        (2, "success", None, True),
    ]
