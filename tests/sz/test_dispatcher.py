from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import pytest

from actors import ActorSystem, Child, Supervision, Supervisor
from actors.testing import ManualClock
from sz.dispatcher import (
    DispatcherActor,
    DispatcherState,
    HandlersQuery,
    HandlerStatus,
    Register,
    Submit,
    Unregister,
)
from sz.errors import JobFailed, NoHealthyHandler
from sz.handlers import HandlerActor, HandlerSpec
from sz.health import HealthPolicy
from sz.history import HistoryActor
from sz.jobs import Attempt, HistoryQuery, Job, JobFuture
from sz.scheduler import ScheduleZero
from sz.store.history import MemoryHistory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from actors import ActorRef

#: Judged after two outcomes, so that a test needs few jobs to open a circuit.
POLICY = HealthPolicy(
    window=4,
    degraded_ratio=0.5,
    unhealthy_ratio=0.5,
    min_samples=2,
    cooldown=10.0,
    trials=1,
    heartbeat_timeout=None,
)


# ---------------------------------------------------------------- test bench


class Switch:
    """Makes a handler's jobs fail while ``failing`` is set."""

    def __init__(self) -> None:
        self.failing = False


def switched(switch: Switch) -> Callable[[], Awaitable[str]]:
    async def work() -> str:
        await anyio.lowlevel.checkpoint()
        if switch.failing:
            raise RuntimeError("switched off")
        return "ok"

    return work


class Bench:
    """A dispatcher, its history and handler actors on a plain actor system.

    Time is a ``ManualClock``: health cooldowns and the dispatcher's ticks move
    only when the test calls ``advance``.
    """

    def __init__(
        self, clock: ManualClock, dispatcher: ActorRef, history: ActorRef
    ) -> None:
        self.clock = clock
        self.dispatcher = dispatcher
        self.history = history

    async def submit(
        self,
        task: str,
        *,
        affinity: str | None = None,
        wait: float = 30.0,
        args: tuple[Any, ...] = (),
    ) -> tuple[Job, JobFuture]:
        job = Job(
            task=task,
            scheduled_at=datetime.now(UTC),
            affinity=affinity,
            wait=wait,
            args=args,
        )
        future = JobFuture()
        await self.dispatcher.send(Submit(job=job, future=future))
        # Handled before the clock moves: the job's deadline is read from it.
        await self.statuses()
        return job, future

    async def final_row(self, job: Job, future: JobFuture) -> Attempt:
        with anyio.fail_after(5):
            await future.wait()
        # The row is told to the history before the future resolves: this ask
        # arrives after it.
        rows = await self.rows(job_id=job.id, final=True)
        assert len(rows) == 1, rows
        return rows[0]

    async def run(
        self, task: str, *, affinity: str | None = None, args: tuple[Any, ...] = ()
    ) -> Attempt:
        """Run one job to its end; return its final row."""
        return await self.final_row(
            *await self.submit(task, affinity=affinity, args=args)
        )

    async def rows(self, **filters: Any) -> list[Attempt]:
        """History rows, oldest first."""
        rows: list[Attempt] = await self.history.ask(
            HistoryQuery(limit=100_000, **filters)
        )
        return rows[::-1]

    async def statuses(self) -> dict[str, HandlerStatus]:
        found: list[HandlerStatus] = await self.dispatcher.ask(HandlersQuery())
        return {status.name: status for status in found}

    async def state(self, name: str) -> str:
        return (await self.statuses())[name].health.state

    async def advance(self, seconds: float) -> None:
        """Move the clock; return once the dispatcher has handled the ticks due."""
        self.clock.advance(seconds)
        # The timer task sleeps again once it has told every due tick...
        await self.clock.wait_for_sleeper()
        # ...and this ask queues behind those ticks.
        await self.statuses()


@asynccontextmanager
async def bench(
    *functions: Callable[..., Any],
    task: str = "work",
    policy: HealthPolicy = POLICY,
    concurrency: int = 1,
) -> AsyncIterator[Bench]:
    """Handlers ``work``, ``work#2``, ... (one per function) on a ``ManualClock``."""
    specs = [
        HandlerSpec(
            name=task if n == 1 else f"{task}#{n}",
            task=task,
            func=function,
            concurrency=concurrency,
        )
        for n, function in enumerate(functions, start=1)
    ]
    clock = ManualClock()
    async with ActorSystem("bench", clock=clock) as system:
        history = await system.spawn(
            HistoryActor, MemoryHistory(10_000), name="history", restart="permanent"
        )
        dispatcher = await system.spawn(
            DispatcherActor,
            DispatcherState(policy=policy),
            history,
            name="dispatcher",
            restart="permanent",
            capacity=100_000,
        )
        await system.spawn(
            Supervisor,
            [Child(HandlerActor, spec, name=spec.name) for spec in specs],
            Supervision(max_restarts=10, within=10.0),
            name="handlers",
        )
        for spec in specs:
            ref = system.lookup(f"/user/handlers/{spec.name}")
            assert ref is not None
            dispatcher.tell(
                Register(
                    name=spec.name,
                    task=spec.task,
                    ref=ref,
                    concurrency=spec.concurrency,
                    retries=spec.retries,
                )
            )
        yield Bench(clock, dispatcher, history)


async def open_circuit(bench: Bench, name: str, switch: Switch) -> None:
    """Fail jobs until handler ``name`` is unhealthy (jobs go round-robin)."""
    switch.failing = True
    for _ in range(10):
        await bench.run("work")
        if await bench.state(name) == "unhealthy":
            break
    assert await bench.state(name) == "unhealthy"
    switch.failing = False


def ended(future: JobFuture) -> str | None:
    """The job's final outcome so far (a call, so that mypy does not narrow it)."""
    return future.outcome


async def newest_final_row(sz: ScheduleZero, task: str) -> Attempt:
    rows = await sz.history(task=task, final=True, limit=1)
    return rows[0]


# ------------------------------------------------------- spreading the load


async def test_sequential_jobs_go_round_robin_over_equal_handlers() -> None:
    sz = ScheduleZero()

    async def work(i: int) -> int:
        return i

    for _ in range(3):
        sz.handler(work, name="work")
    async with sz:
        for i in range(20):
            assert await sz.run_now("work", args=[i]) == i
        rows = await sz.history(task="work", limit=1000)
    counts = Counter(row.handler for row in rows)
    assert set(counts) == {"work", "work#2", "work#3"}
    assert max(counts.values()) - min(counts.values()) <= 1
    assert sum(counts.values()) == 20


async def test_concurrent_jobs_spread_evenly_over_equal_handlers() -> None:
    sz = ScheduleZero()
    jobs, handlers = 90, 3
    started = 0
    all_started, gate = anyio.Event(), anyio.Event()

    async def work() -> None:
        nonlocal started
        started += 1
        if started == jobs:
            all_started.set()
        await gate.wait()

    for _ in range(handlers):
        sz.handler(work, name="work", concurrency=jobs)
    async with sz:
        async with anyio.create_task_group() as tg:
            for _ in range(jobs):
                tg.start_soon(partial(sz.run_now, "work", timeout=10))
            with anyio.fail_after(5):
                await all_started.wait()
            gate.set()
        rows = await sz.history(task="work", limit=1000)
    counts = Counter(row.handler for row in rows)
    assert counts == {"work": 30, "work#2": 30, "work#3": 30}


async def test_next_job_goes_to_the_idle_handler_rather_than_the_busy_one() -> None:
    sz = ScheduleZero()
    started, release = anyio.Event(), anyio.Event()

    async def work(block: bool) -> None:
        if block:
            started.set()
            await release.wait()

    for _ in range(2):
        # Room for two jobs each: the busy handler stays a candidate.
        sz.handler(work, name="work", concurrency=2)
    async with sz, anyio.create_task_group() as tg:
        tg.start_soon(partial(sz.run_now, "work", args=[True]))
        with anyio.fail_after(5):
            await started.wait()
        busy = [s.name for s in await sz.handlers() if s.health.active]
        assert len(busy) == 1
        chosen = []
        for _ in range(5):
            await sz.run_now("work", args=[False])
            chosen.append((await newest_final_row(sz, "work")).handler)
        release.set()
    (idle,) = {"work", "work#2"} - set(busy)
    assert chosen == [idle] * 5


# ----------------------------------------------------------------- affinity


async def test_jobs_with_one_affinity_key_all_go_to_one_handler() -> None:
    sz = ScheduleZero()

    async def work() -> None:
        await anyio.lowlevel.checkpoint()

    for _ in range(3):
        sz.handler(work, name="work")
    keys = [f"key-{n}" for n in range(12)]
    placed: defaultdict[str, set[str | None]] = defaultdict(set)
    async with sz:
        for _ in range(3):
            for key in keys:
                await sz.run_now("work", affinity=key)
                placed[key].add((await newest_final_row(sz, "work")).handler)
    assert all(len(handlers) == 1 for handlers in placed.values()), placed
    # Rendezvous hashing spreads the keys over the handlers.
    assert len(set.union(*placed.values())) > 1


async def test_concurrent_jobs_with_one_key_stay_on_one_handler_while_it_is_busy() -> (
    None
):
    gate = anyio.Event()

    async def work() -> None:
        await gate.wait()

    async with bench(work, work, work) as b:
        # Every job is submitted while the first still holds its handler.
        submitted = [await b.submit("work", affinity="k") for _ in range(5)]
        gate.set()
        rows = [await b.final_row(job, future) for job, future in submitted]
    assert len({row.handler for row in rows}) == 1, rows


async def test_keys_of_an_unhealthy_handler_move_and_the_others_stay_put() -> None:
    switches = [Switch() for _ in range(3)]
    names = ["work", "work#2", "work#3"]
    keys = [f"key-{n}" for n in range(16)]
    async with bench(*(switched(s) for s in switches)) as b:

        async def placement() -> dict[str, str | None]:
            return {key: (await b.run("work", affinity=key)).handler for key in keys}

        before = await placement()
        held = Counter(before.values())
        sick = held.most_common(1)[0][0]
        assert sick is not None
        switch = switches[names.index(sick)]
        mine = [key for key in keys if before[key] == sick]
        switch.failing = True
        for key in mine * 2:
            await b.run("work", affinity=key)
            if await b.state(sick) == "unhealthy":
                break
        assert await b.state(sick) == "unhealthy"
        switch.failing = False

        during = await placement()
        assert {key: during[key] for key in keys if key not in mine} == {
            key: before[key] for key in keys if key not in mine
        }
        assert all(during[key] not in (sick, None) for key in mine)

        # Past the cooldown, a trial job for one of its keys brings it back, and
        # with it every key it held.
        await b.advance(POLICY.cooldown)
        trial = await b.run("work", affinity=mine[0])
        assert (trial.handler, trial.outcome) == (sick, "success")
        assert await b.state(sick) == "healthy"
        assert await placement() == before


async def test_jobs_go_to_the_remaining_handler_when_one_has_stopped_for_good() -> None:
    sz = ScheduleZero()

    async def work() -> str:
        return "ok"

    sz.handler(work, name="work")
    sz.handler(work, name="work")
    async with sz:
        gone = sz.system.lookup("/user/handlers/work#2")
        assert gone is not None
        await gone.stop()
        for _ in range(4):
            assert await sz.run_now("work", timeout=0.2) == "ok"
        rows = await sz.history(task="work")
    assert {row.handler for row in rows} == {"work"}


# ------------------------------------------------------------------- health


async def test_unhealthy_handler_is_skipped_then_recovers_through_a_trial_job() -> None:
    sick, well = Switch(), Switch()
    async with bench(switched(sick), switched(well)) as b:
        await open_circuit(b, "work", sick)

        skipped = [(await b.run("work")).handler for _ in range(6)]
        assert skipped == ["work#2"] * 6
        # Not quite rested yet.
        await b.advance(POLICY.cooldown - 1)
        assert (await b.run("work")).handler == "work#2"
        assert (await b.statuses())["work"].health.trial is False

        await b.advance(1)
        assert (await b.statuses())["work"].health.trial is True
        trial = await b.run("work")
        assert (trial.handler, trial.outcome) == ("work", "success")
        assert await b.state("work") == "healthy"
        after = Counter([(await b.run("work")).handler for _ in range(6)])
        assert after == {"work": 3, "work#2": 3}


async def test_failed_trial_job_keeps_the_handler_out_for_another_cooldown() -> None:
    sick, well = Switch(), Switch()
    async with bench(switched(sick), switched(well)) as b:
        await open_circuit(b, "work", sick)
        await b.advance(POLICY.cooldown)
        sick.failing = True
        handlers = [(await b.run("work")).handler for _ in range(2)]
        assert "work" in handlers
        assert await b.state("work") == "unhealthy"
        sick.failing = False
        assert [(await b.run("work")).handler for _ in range(4)] == ["work#2"] * 4
        await b.advance(POLICY.cooldown)
        assert "work" in [(await b.run("work")).handler for _ in range(2)]
        assert await b.state("work") == "healthy"


async def test_stuck_trial_job_is_judged_failed_at_its_deadline() -> None:
    # Concurrency 2: while the stuck trial runs, the other slot is free but
    # closed, and must not stay closed past the trial's deadline.
    switch, release = Switch(), anyio.Event()
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        if switch.failing:
            raise RuntimeError("switched off")
        if calls == 3:  # the first trial job
            await release.wait()
        return "ok"

    policy = attrs.evolve(POLICY, trial_timeout=3.0)
    async with bench(work, policy=policy, concurrency=2) as b:
        await open_circuit(b, "work", switch)
        assert calls == 2
        await b.advance(policy.cooldown)
        stuck, stuck_future = await b.submit("work")
        waiting, waiting_future = await b.submit("work")
        await b.advance(policy.trial_timeout - 0.5)
        health = (await b.statuses())["work"].health
        assert (health.state, health.trial, health.active) == ("unhealthy", True, 1)
        assert not ended(waiting_future)
        await b.advance(0.5)
        # The deadline passed: judged failed, the circuit is open again (not
        # half-open for as long as the job stays stuck).
        health = (await b.statuses())["work"].health
        assert (health.state, health.trial) == ("unhealthy", False)
        await b.advance(policy.cooldown)
        # A fresh trial, on the free slot, closes the circuit.
        row = await b.final_row(waiting, waiting_future)
        assert (row.handler, row.outcome) == ("work", "success")
        assert await b.state("work") == "healthy"
        assert not ended(stuck_future)
        release.set()
        assert (await b.final_row(stuck, stuck_future)).outcome == "success"


# ----------------------------------------------------- the caller's errors


async def test_calls_whose_arguments_do_not_bind_never_open_the_circuit() -> None:
    async def add(a: int, b: int) -> int:
        await anyio.lowlevel.checkpoint()
        return a + b

    async with bench(add) as b:
        for args in [(1,), (1, 2, 3), ()] * 4:
            row = await b.run("work", args=args)
            assert (row.outcome, row.handler) == ("failure", "work")
            assert row.error is not None
            assert "TypeError" in row.error
        health = (await b.statuses())["work"].health
        assert (health.state, health.failures, health.failure_ratio) == (
            "healthy",
            0,
            0.0,
        )
        assert (await b.run("work", args=(1, 2))).outcome == "success"


async def test_type_error_raised_by_the_function_itself_counts_against_it() -> None:
    async def add(a: int, b: int) -> int:
        await anyio.lowlevel.checkpoint()
        return a + b  # a str and an int: the function's own TypeError

    async with bench(add) as b:
        for _ in range(POLICY.min_samples):
            assert (await b.run("work", args=("1", 2))).outcome == "failure"
        assert await b.state("work") == "unhealthy"


# --------------------------------------------------------- no healthy handler


async def test_job_without_a_healthy_handler_fails_once_its_wait_is_over() -> None:
    switch = Switch()
    async with bench(switched(switch)) as b:
        await open_circuit(b, "work", switch)
        job, future = await b.submit("work", wait=3.0)
        await b.advance(2.0)
        assert not ended(future)
        assert await b.rows(job_id=job.id) == []
        await b.advance(1.0)
        row = await b.final_row(job, future)
    assert ended(future) == "no_healthy_handler"
    assert (row.outcome, row.handler, row.attempt, row.reason) == (
        "no_healthy_handler",
        None,
        1,
        "no_healthy_handler",
    )


async def test_handler_that_recovers_within_the_wait_takes_the_waiting_job() -> None:
    switch = Switch()
    async with bench(switched(switch)) as b:
        await open_circuit(b, "work", switch)
        job, future = await b.submit("work", wait=POLICY.cooldown + 5)
        await b.advance(POLICY.cooldown - 1)
        assert not ended(future)
        await b.advance(1)
        row = await b.final_row(job, future)
        assert (row.handler, row.outcome, row.attempt) == ("work", "success", 1)
        assert await b.rows(job_id=job.id) == [row]
        assert await b.state("work") == "healthy"


async def test_run_now_raises_no_healthy_handler_when_its_wait_is_over() -> None:
    sz = ScheduleZero()

    async def work() -> None:
        raise RuntimeError("down")

    sz.handler(work, name="work")
    async with sz:
        while (await sz.handlers())[0].health.state != "unhealthy":
            with pytest.raises(JobFailed):
                await sz.run_now("work")
        with pytest.raises(NoHealthyHandler) as caught:
            await sz.run_now("work", timeout=0.2)
        assert caught.value.outcome == "no_healthy_handler"
        rows = await sz.history(task="work", outcome="no_healthy_handler")
    assert len(rows) == 1
    assert rows[0].final


# ------------------------------------------------------------ lost attempts


async def test_an_attempt_lost_with_its_handler_records_when_it_started() -> None:
    started = anyio.Event()

    async def work() -> None:
        started.set()
        await anyio.Event().wait()

    async with bench(work) as b:
        job, _ = await b.submit("work")
        with anyio.fail_after(5):
            await started.wait()
        await b.advance(2.5)
        # Its worker is lost (as the broker says of a remote worker): the
        # dispatcher gives up on the attempt without a word from the handler.
        await b.dispatcher.send(Unregister(name="work", reason="worker_lost"))
        await b.statuses()  # handled after the loss, whose row went out first
        rows = await b.rows(job_id=job.id)
    assert [(r.attempt, r.outcome, r.final, r.reason) for r in rows] == [
        (1, "abandoned", False, "retry_after_worker_lost")
    ]
    [lost] = rows
    # It ran 2.5 s (the dispatcher's clock) before its handler was lost: the row
    # says so, rather than a 0 ms attempt at the moment the loss was known.
    assert lost.duration == 2.5
    assert lost.started_at == lost.finished_at - timedelta(seconds=2.5)
    assert lost.handler == "work"
