"""Governors through the real dispatcher and handlers, on a clock the test moves.

Rate limits, the cap on running jobs, fairness between tasks, backpressure,
adaptive throttling and a dispatcher killed while jobs wait for tokens; then the
same limits as ``ScheduleZero`` configures and reports them.
"""

from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import ActorSystem, Child, Supervision, Supervisor
from actors.testing import ManualClock, wait_until
from sz import Overloaded, ScheduleZero, SzError
from sz.config import (
    BackpressureConfig,
    Config,
    GovernorsConfig,
    HandlerLimits,
    MethodLimits,
    RateLimitConfig,
)
from sz.dispatcher import (
    TICK,
    DispatcherActor,
    DispatcherState,
    GovernorsQuery,
    Register,
    Submit,
)
from sz.governors import AdaptivePolicy, Backpressure, Governor, GovernorStatus, Limit
from sz.handlers import HandlerActor, HandlerSpec
from sz.health import HealthPolicy
from sz.history import HistoryActor
from sz.jobs import Attempt, HistoryQuery, Job, JobFuture
from sz.store.history import MemoryHistory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
    from pathlib import Path

    from actors import ActorRef

#: Never judges a handler (fewer outcomes than ``min_samples`` in every test), so
#: failing jobs move adaptive throttling without opening the circuit.
POLICY = HealthPolicy(
    window=5,
    min_samples=5,
    degraded_ratio=1.0,
    unhealthy_ratio=1.0,
    heartbeat_timeout=None,
)

#: Long enough that no job in these tests gives up waiting.
WAIT = 3_600.0


# ---------------------------------------------------------------- test bench


class Starts:
    """What handler functions saw: when each job started on the manual clock.

    Also how many ran at once, at most.
    """

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.clock = clock if clock is not None else ManualClock()
        self.times: list[float] = []
        self.labels: list[Any] = []
        self.running = 0
        self.most = 0
        self._changed = anyio.Event()

    def started(self, label: Any = None) -> None:
        self.times.append(self.clock.now())
        self.labels.append(label)
        self.running += 1
        self.most = max(self.most, self.running)
        self._changed.set()
        self._changed = anyio.Event()

    def ended(self) -> None:
        self.running -= 1

    async def wait_for(self, count: int) -> None:
        """Wait until ``count`` jobs have started in all."""
        with anyio.fail_after(5):
            while len(self.times) < count:
                await self._changed.wait()


class Bench:
    """A dispatcher with governors, its history and handler actors.

    Time is a ``ManualClock``: token buckets, the dispatcher's ticks and its
    governor timer move only when the test calls ``advance``.
    """

    def __init__(
        self,
        clock: ManualClock,
        system: ActorSystem,
        dispatcher: ActorRef,
        history: ActorRef,
    ) -> None:
        self.clock = clock
        self.system = system
        self.dispatcher = dispatcher
        self.history = history

    async def submit(self, task: str, *args: Any) -> tuple[Job, JobFuture]:
        job = Job(task=task, args=args, scheduled_at=datetime.now(UTC), wait=WAIT)
        future = JobFuture()
        await self.dispatcher.send(Submit(job=job, future=future))
        # Handled before the clock moves: the job's wait starts then.
        await self.governors()
        return job, future

    async def flood(self, task: str, count: int) -> list[tuple[Job, JobFuture]]:
        """Submit ``count`` jobs of ``task``, with arguments 0, 1, ..."""
        return [await self.submit(task, n) for n in range(count)]

    async def final_row(self, job: Job, future: JobFuture) -> Attempt:
        with anyio.fail_after(5):
            await future.wait()
        # The row is told to the history before the future resolves.
        rows = await self.rows(job_id=job.id, final=True)
        assert len(rows) == 1, rows
        return rows[0]

    async def final_rows(self, jobs: Sequence[tuple[Job, JobFuture]]) -> list[Attempt]:
        return [await self.final_row(job, future) for job, future in jobs]

    async def rows(self, **filters: Any) -> list[Attempt]:
        """History rows, oldest first."""
        rows: list[Attempt] = await self.history.ask(
            HistoryQuery(limit=100_000, **filters)
        )
        return rows[::-1]

    async def governors(self) -> dict[str, GovernorStatus]:
        found: list[GovernorStatus] = await self.dispatcher.ask(GovernorsQuery())
        return {status.name: status for status in found}

    async def waiting(self) -> int:
        return (await self.governors())["global"].waiting

    async def advance(self, seconds: float) -> None:
        """Move the clock; return once the dispatcher has handled the timers due."""
        self.clock.advance(seconds)
        # The timer task sleeps again once it has told every due message...
        await self.clock.wait_for_sleeper()
        # ...and this ask queues behind them.
        await self.governors()


def spec(
    func: Callable[..., Any],
    name: str = "work",
    *,
    task: str = "work",
    concurrency: int = 100,
    retries: int = 0,
) -> HandlerSpec:
    return HandlerSpec(
        name=name, task=task, func=func, concurrency=concurrency, retries=retries
    )


@asynccontextmanager
async def bench(
    *specs: HandlerSpec,
    governor: Governor,
    clock: ManualClock | None = None,
    policy: HealthPolicy = POLICY,
) -> AsyncIterator[Bench]:
    """The handlers of ``specs`` behind a dispatcher governed by ``governor``.

    The dispatcher runs under a supervisor of its own that tolerates many
    restarts, so that a test may kill it again and again.
    """
    clock = clock if clock is not None else ManualClock()
    async with ActorSystem("bench", clock=clock) as system:
        history = await system.spawn(
            HistoryActor, MemoryHistory(100_000), name="history", restart="permanent"
        )
        await system.spawn(
            Supervisor,
            [
                Child(
                    DispatcherActor,
                    DispatcherState(policy=policy, governor=governor),
                    history,
                    name="dispatcher",
                    restart="permanent",
                    capacity=100_000,
                )
            ],
            Supervision(max_restarts=1_000, within=1.0),
            name="core",
        )
        dispatcher = system.lookup("/user/core/dispatcher")
        assert dispatcher is not None
        await system.spawn(
            Supervisor,
            [Child(HandlerActor, s, name=s.name) for s in specs],
            Supervision(max_restarts=10, within=10.0),
            name="handlers",
        )
        for s in specs:
            ref = system.lookup(f"/user/handlers/{s.name}")
            assert ref is not None
            dispatcher.tell(
                Register(
                    name=s.name,
                    task=s.task,
                    ref=ref,
                    concurrency=s.concurrency,
                    retries=s.retries,
                )
            )
        yield Bench(clock, system, dispatcher, history)


def quick(starts: Starts, label: Any = None) -> Callable[..., Awaitable[None]]:
    """A handler function that records its start and ends at once."""

    async def work(*args: Any) -> None:
        starts.started(label if label is not None else args)
        await anyio.lowlevel.checkpoint()
        starts.ended()

    return work


def outcome(future: JobFuture) -> str | None:
    """The job's final outcome so far (a call, so that mypy does not narrow it)."""
    return future.outcome


def within_bucket(times: Sequence[float], rate: float, burst: float) -> bool:
    """Whether start ``times`` never outran a token bucket of ``rate`` and ``burst``.

    Between any two starts, at most ``burst`` plus what the rate earned in
    between may start.
    """
    ordered = sorted(times)
    return all(
        j - i + 1 <= burst + rate * (ordered[j] - ordered[i]) + 1e-9
        for i in range(len(ordered))
        for j in range(i, len(ordered))
    )


# ---------------------------------------------------------------- rate limits

RATE, BURST = 2.0, 3
STEP = 1 / RATE

GOVERNED_BY: dict[str, Callable[[Limit], Governor]] = {
    "global": lambda limit: Governor.of(global_rate=limit),
    "method:work": lambda limit: Governor.of(task_rates={"work": limit}),
    "handler:work": lambda limit: Governor.of(handler_rates={"work": limit}),
}


@pytest.mark.parametrize("where", list(GOVERNED_BY))
async def test_a_flood_starts_a_burst_at_once_then_one_job_per_token(
    where: str,
) -> None:
    jobs = 9
    starts = Starts()
    async with bench(
        spec(quick(starts)),
        governor=GOVERNED_BY[where](Limit(rate=RATE, burst=BURST)),
        clock=starts.clock,
    ) as b:
        submitted = await b.flood("work", jobs)
        assert await b.waiting() == jobs - BURST
        await starts.wait_for(BURST)
        assert starts.times == [0.0] * BURST
        for n in range(1, jobs - BURST + 1):
            # Half a token: the dispatcher looks (a tick) and starts nothing.
            await b.advance(STEP / 2)
            assert await b.waiting() == jobs - BURST - n + 1
            await b.advance(STEP / 2)
            assert await b.waiting() == jobs - BURST - n
            await starts.wait_for(BURST + n)
            assert len(starts.times) == BURST + n
        rows = await b.final_rows(submitted)
        statuses = await b.governors()
    assert starts.times == [0.0] * BURST + [
        n * STEP for n in range(1, jobs - BURST + 1)
    ]
    assert starts.times[-1] == (jobs - BURST) / RATE
    assert [row.outcome for row in rows] == ["success"] * jobs
    # Each row says how long its job waited for a token, on the same clock.
    assert [(row.reason, row.waited) for row in rows] == [(None, None)] * BURST + [
        ("rate_limited", n * STEP) for n in range(1, jobs - BURST + 1)
    ]
    assert statuses[where].limited == jobs - BURST


TIGHT, LOOSE = Limit(rate=2.0, burst=2), Limit(rate=8.0, burst=8)


@pytest.mark.parametrize("tightest", list(GOVERNED_BY))
async def test_the_tightest_of_global_method_and_handler_limits_sets_the_pace(
    tightest: str,
) -> None:
    limits = {name: TIGHT if name == tightest else LOOSE for name in GOVERNED_BY}
    governor = Governor.of(
        global_rate=limits["global"],
        task_rates={"work": limits["method:work"]},
        handler_rates={"work": limits["handler:work"]},
    )
    starts = Starts()
    async with bench(spec(quick(starts)), governor=governor, clock=starts.clock) as b:
        submitted = await b.flood("work", 6)
        await starts.wait_for(2)
        for n in range(1, 5):
            await b.advance(0.5)
            await starts.wait_for(2 + n)
        await b.final_rows(submitted)
        statuses = await b.governors()
    assert starts.times == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    # The jobs that waited are counted against the limit that held them.
    assert {name: statuses[name].limited for name in GOVERNED_BY} == {
        name: 4 if name == tightest else 0 for name in GOVERNED_BY
    }


async def test_a_method_limit_holds_all_its_handlers_together() -> None:
    starts = Starts()
    async with bench(
        spec(quick(starts, "work")),
        spec(quick(starts, "work#2"), "work#2"),
        governor=Governor.of(task_rates={"work": Limit(rate=2.0, burst=2)}),
        clock=starts.clock,
    ) as b:
        submitted = await b.flood("work", 6)
        await starts.wait_for(2)
        for n in range(1, 5):
            await b.advance(0.5)
            await starts.wait_for(2 + n)
            assert len(starts.times) == 2 + n
        await b.final_rows(submitted)
    assert starts.times == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert set(starts.labels) == {"work", "work#2"}


async def test_each_handler_has_a_rate_of_its_own() -> None:
    starts = Starts()
    one_each = Limit(rate=2.0, burst=1)
    async with bench(
        spec(quick(starts, "work")),
        spec(quick(starts, "work#2"), "work#2"),
        governor=Governor.of(handler_rates={"work": one_each, "work#2": one_each}),
        clock=starts.clock,
    ) as b:
        submitted = await b.flood("work", 6)
        await starts.wait_for(2)
        for n in range(1, 3):
            await b.advance(0.5)
            await starts.wait_for(2 + 2 * n)
        await b.final_rows(submitted)
    assert starts.times == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    assert Counter(starts.labels) == {"work": 3, "work#2": 3}


async def test_a_global_limit_holds_every_task_together() -> None:
    starts = Starts()
    async with bench(
        spec(quick(starts, "a"), "a", task="a"),
        spec(quick(starts, "b"), "b", task="b"),
        governor=Governor.of(global_rate=Limit(rate=2.0, burst=2)),
        clock=starts.clock,
    ) as b:
        submitted = [*await b.flood("a", 3), *await b.flood("b", 3)]
        await starts.wait_for(2)
        assert await b.waiting() == 4
        for n in range(1, 5):
            await b.advance(0.5)
            await starts.wait_for(2 + n)
            assert await b.waiting() == 4 - n
        await b.final_rows(submitted)
    assert starts.times == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]


async def test_a_job_that_waited_for_a_token_says_so_and_for_how_long() -> None:
    starts = Starts()
    async with bench(
        spec(quick(starts)),
        governor=Governor.of(handler_rates={"work": Limit(rate=2.0, burst=1)}),
        clock=starts.clock,
    ) as b:
        submitted = await b.flood("work", 3)
        await starts.wait_for(1)
        await b.advance(0.25)
        await b.advance(0.25)
        await starts.wait_for(2)
        await b.advance(0.5)
        rows = await b.final_rows(submitted)
    assert [(row.outcome, row.reason, row.waited) for row in rows] == [
        ("success", None, None),
        ("success", "rate_limited", 0.5),
        ("success", "rate_limited", 1.0),
    ]
    assert starts.times == [0.0, 0.5, 1.0]


async def test_the_final_row_of_a_retried_job_says_it_waited_for_a_token() -> None:
    calls = 0

    async def fails_once() -> None:
        nonlocal calls
        calls += 1
        await anyio.lowlevel.checkpoint()
        if calls == 1:
            raise RuntimeError("first attempt fails")

    async with bench(
        spec(fails_once, retries=1),
        governor=Governor.of(handler_rates={"work": Limit(rate=1.0, burst=1)}),
    ) as b:
        job, future = await b.submit("work")

        # The retry waits for the next token, a second after the first attempt.
        async def attempted() -> bool:
            return bool(await b.rows(job_id=job.id))

        await wait_until(attempted, timeout=5)
        await b.advance(1.0)
        final = await b.final_row(job, future)
        rows = await b.rows(job_id=job.id)
    assert [(r.attempt, r.outcome, r.final, r.reason) for r in rows] == [
        (1, "failure", False, "retry_after_failure"),
        (2, "success", True, "rate_limited"),
    ]
    assert rows[0].waited is None
    assert final.waited == 1.0


# ---------------------------------------------------------------- concurrency


async def test_no_more_than_max_running_jobs_run_at_once_under_a_flood() -> None:
    jobs, cap = 40, 3
    starts, gate = Starts(), anyio.Event()

    async def work(n: int) -> None:
        starts.started(n)
        await gate.wait()
        for _ in range(3):  # room for others to start meanwhile, if let
            await anyio.lowlevel.checkpoint()
        starts.ended()

    async with bench(
        spec(work, concurrency=jobs),
        governor=Governor.of(max_running=cap),
        clock=starts.clock,
    ) as b:
        submitted = await b.flood("work", jobs)
        await starts.wait_for(cap)
        statuses = await b.governors()
        assert (statuses["global"].running, statuses["global"].waiting) == (
            cap,
            jobs - cap,
        )
        await b.advance(2.0)
        gate.set()
        rows = await b.final_rows(submitted)
        statuses = await b.governors()
    assert starts.most == cap
    assert len(starts.times) == jobs
    assert [row.outcome for row in rows] == ["success"] * jobs
    assert [(row.reason, row.waited) for row in rows[:cap]] == [(None, None)] * cap
    assert [(row.reason, row.waited) for row in rows[cap:]] == [
        ("concurrency_limited", 2.0)
    ] * (jobs - cap)
    assert statuses["global"].limited == jobs - cap
    assert (statuses["global"].running, statuses["global"].waiting) == (0, 0)


async def test_max_running_counts_jobs_of_every_task_and_handler() -> None:
    starts, gate = Starts(), anyio.Event()

    async def work(n: int) -> None:
        starts.started(n)
        await gate.wait()
        starts.ended()

    async with bench(
        spec(work, "a", task="a"),
        spec(work, "b", task="b"),
        spec(work, "b#2", task="b"),
        governor=Governor.of(max_running=2),
        clock=starts.clock,
    ) as b:
        submitted = [*await b.flood("a", 5), *await b.flood("b", 5)]
        await starts.wait_for(2)
        assert await b.waiting() == 8
        gate.set()
        rows = await b.final_rows(submitted)
    assert starts.most == 2
    assert {row.outcome for row in rows} == {"success"}


# ------------------------------------------------------------------- fairness


@pytest.mark.parametrize(
    ("arrival", "ticks"),
    [
        pytest.param(0, 0, id="released-between-ticks"),
        pytest.param(1, 1, id="a-tick-per-release"),
    ],
)
async def test_a_flood_does_not_keep_another_tasks_job_behind_it_under_max_running(
    arrival: int, ticks: int
) -> None:
    """``arrival``: ticks before the lone job comes; ``ticks``: ticks each
    flood job runs."""
    flood = 10
    gates = [anyio.Event() for _ in range(flood)]
    starts = Starts()

    async def flooding(n: int) -> None:
        starts.started(("flood", n))
        await gates[n].wait()

    async def single(n: int) -> None:
        starts.started(("single", n))

    async with bench(
        spec(flooding, "flood", task="flood"),
        spec(single, "single", task="single"),
        governor=Governor.of(max_running=1),
        clock=starts.clock,
    ) as b:
        flooded = await b.flood("flood", flood)
        for _ in range(arrival):
            await b.advance(TICK)
        lone = await b.submit("single", 0)
        await starts.wait_for(1)
        releases = 0
        while ("single", 0) not in starts.labels and releases < flood:
            for _ in range(ticks):
                await b.advance(TICK)
            gates[releases].set()
            releases += 1
            await starts.wait_for(len(starts.times) + 1)
        flood_started = len(starts.times) - 1
        for gate in gates:
            gate.set()
        await b.final_rows([*flooded, lone])
    assert releases <= 2
    assert flood_started <= 2


@pytest.mark.parametrize(
    "rate",
    [
        pytest.param(1 / TICK, id="a-token-every-tick"),
        pytest.param(1 / (2 * TICK), id="a-token-every-other-tick"),
    ],
)
async def test_a_flood_does_not_keep_another_tasks_job_behind_it_under_a_global_rate(
    rate: float,
) -> None:
    flood = 10
    starts = Starts()
    async with bench(
        spec(quick(starts, "flood"), "flood", task="flood"),
        spec(quick(starts, "single"), "single", task="single"),
        governor=Governor.of(global_rate=Limit(rate=rate, burst=1)),
        clock=starts.clock,
    ) as b:
        flooded = await b.flood("flood", flood)
        lone = await b.submit("single", 0)
        # A tick at a time, as the dispatcher's clock goes, until all have run.
        while len(starts.times) <= flood:
            await b.advance(TICK)
            await starts.wait_for(1 + int(b.clock.now() * rate))
        await b.final_rows([*flooded, lone])
    # The next token may go to the flood, the one after that to the lone job.
    assert starts.labels.index("single") <= 2
    assert starts.times[starts.labels.index("single")] <= 2 / rate


# --------------------------------------------------------------- backpressure


async def test_jobs_past_high_water_end_rejected_until_the_queue_drains() -> None:
    high, low = 6, 2
    gates = [anyio.Event() for _ in range(30)]
    starts = Starts()

    async def work(n: int) -> None:
        starts.started(n)
        await gates[n].wait()

    async with bench(
        spec(work, concurrency=1),
        governor=Governor.of(backpressure=Backpressure(high_water=high, low_water=low)),
        clock=starts.clock,
    ) as b:
        first = await b.flood("work", 12)
        refused = [(job, f) for job, f in first if outcome(f) == "rejected"]
        kept = [(job, f) for job, f in first if outcome(f) is None]
        assert await b.waiting() <= high
        assert refused
        assert len(kept) + len(refused) == 12
        assert first.index(refused[0]) + len(refused) == 12  # none after let in
        rows = await b.final_rows(refused)
        assert {(r.outcome, r.reason, r.handler) for r in rows} == {
            ("rejected", "overloaded", None)
        }
        assert (await b.governors())["global"].rejected == len(refused)

        # Below high water, but not yet down to low water: still refused.
        gates[0].set()
        await starts.wait_for(2)
        assert await b.waiting() > low
        _, future = await b.submit("work", 20)
        assert outcome(future) == "rejected"

        # Once the queue has drained below low water, work is taken again.
        n = 1
        while await b.waiting() >= low:
            gates[n].set()
            n += 1
            await starts.wait_for(n + 1)
        later = await b.submit("work", 21)
        assert outcome(later[1]) is None
        for gate in gates:
            gate.set()
        rows = await b.final_rows([*kept, later])
        statuses = await b.governors()
    assert {row.outcome for row in rows} == {"success"}
    assert statuses["global"].rejected == len(refused) + 1


async def test_a_job_refused_at_high_water_resolves_its_future_with_overloaded() -> (
    None
):
    high, low = 2, 0
    gates = [anyio.Event() for _ in range(6)]

    async def work(n: int) -> None:
        await gates[n].wait()

    async with bench(
        spec(work, concurrency=1),
        governor=Governor.of(backpressure=Backpressure(high_water=high, low_water=low)),
    ) as b:
        jobs = await b.flood("work", 6)
        refused = [(job, f) for job, f in jobs if outcome(f) == "rejected"]
        for gate in gates:
            gate.set()
        await b.final_rows(jobs)
    assert len(refused) == 6 - 1 - high
    for job, future in refused:
        assert isinstance(future.error, Overloaded)
        assert future.error.job_id == job.id
        assert future.error.retry_after >= 1.0
        assert job.id in str(future.error)


async def test_jobs_that_start_at_once_are_never_refused() -> None:
    starts = Starts()
    async with bench(
        spec(quick(starts), concurrency=50),
        governor=Governor.of(backpressure=Backpressure(high_water=1, low_water=0)),
        clock=starts.clock,
    ) as b:
        rows = await b.final_rows(await b.flood("work", 20))
    assert {row.outcome for row in rows} == {"success"}


# ------------------------------------------------------------------- adaptive


class Switch:
    """Makes a handler's jobs fail while ``failing`` is set."""

    def __init__(self) -> None:
        self.failing = False

    async def work(self, *args: Any) -> None:
        await anyio.lowlevel.checkpoint()
        if self.failing:
            raise RuntimeError("switched off")


async def test_a_failing_handlers_rate_falls_then_recovers_once_it_succeeds() -> None:
    configured = 10.0
    switch = Switch()
    async with bench(
        spec(switch.work),
        governor=Governor.of(
            handler_rates={"work": Limit(rate=configured, burst=1_000)},
            adaptive=AdaptivePolicy(interval=1.0),
        ),
    ) as b:

        async def run_one() -> float | None:
            """One job after an interval; the effective rate once it ended."""
            await b.advance(1.0)
            await b.final_row(*await b.submit("work"))
            return (await b.governors())["handler:work"].effective_rate

        switch.failing = True
        falling = [await run_one() for _ in range(3)]
        switch.failing = False
        rising = [await run_one() for _ in range(20)]
        status = (await b.governors())["handler:work"]
    # Halved at each interval while jobs fail.
    assert falling == [5.0, 2.5, 1.25]
    # Still halved while failures outweigh a fifth of the health window (five
    # outcomes), then a tenth of the configured rate back per interval, up to it.
    assert rising == [
        0.625,
        0.3125,
        0.15625,
        *(0.15625 + n for n in range(1, 10)),
        *[configured] * 8,
    ]
    assert (status.rate, status.effective_rate) == (configured, configured)


async def test_adaptive_throttling_leaves_a_handler_without_a_rate_alone() -> None:
    switch = Switch()
    switch.failing = True
    async with bench(
        spec(switch.work),
        governor=Governor.of(adaptive=AdaptivePolicy()),
    ) as b:
        for _ in range(3):
            await b.advance(1.0)
            row = await b.final_row(*await b.submit("work"))
            assert row.outcome == "failure"
        status = (await b.governors())["handler:work"]
    assert (status.rate, status.effective_rate) == (None, None)


# ----------------------------------------------------------------------- kill


async def test_killing_the_dispatcher_while_jobs_wait_for_tokens_loses_none() -> None:
    jobs, rate, burst = 16, 4.0, 2
    starts = Starts()
    async with bench(
        spec(quick(starts)),
        governor=Governor.of(global_rate=Limit(rate=rate, burst=burst)),
        clock=starts.clock,
    ) as b:
        submitted = await b.flood("work", jobs)
        kills = 0
        while len(starts.times) < jobs:
            await b.dispatcher.kill()
            kills += 1
            # Half a token: the restarted dispatcher looks before the next one.
            await b.advance(1 / rate / 2)
            expected = min(jobs, burst + int(b.clock.now() * rate))
            await starts.wait_for(expected)
            assert await b.waiting() == jobs - expected
            assert kills <= 2 * jobs
        rows = await b.final_rows(submitted)
        all_rows = await b.rows()
        snapshot = b.system.snapshot().find("/user/core/dispatcher")
    assert snapshot is not None
    assert snapshot.restarts == kills > 10
    assert [row.outcome for row in rows] == ["success"] * jobs
    assert len(all_rows) == jobs
    assert max(Counter(starts.times).values()) <= burst
    assert within_bucket(starts.times, rate, burst)
    assert starts.times[-1] == (jobs - burst) / rate


async def test_killing_the_dispatcher_mid_release_keeps_jobs_and_the_limit() -> None:
    jobs, rate, burst = 12, 2.0, 1
    starts = Starts()
    async with bench(
        spec(quick(starts)),
        governor=Governor.of(handler_rates={"work": Limit(rate=rate, burst=burst)}),
        clock=starts.clock,
    ) as b:
        submitted = await b.flood("work", jobs)
        await starts.wait_for(1)
        for n in range(1, jobs):
            # The clock moves and the dispatcher dies before it has looked.
            b.clock.advance(1 / rate)
            await b.dispatcher.kill()
            await b.clock.wait_for_sleeper()
            await b.governors()
            await starts.wait_for(n + 1)
        rows = await b.final_rows(submitted)
    assert {row.outcome for row in rows} == {"success"}
    assert within_bucket(starts.times, rate, burst)
    assert starts.times == [n / rate for n in range(jobs)]
    assert [row.waited for row in rows] == [None] + [n / rate for n in range(1, jobs)]


# --------------------------------------------------------------- ScheduleZero

DEADLINE = 10.0


async def statuses(sz: ScheduleZero) -> dict[str, GovernorStatus]:
    return {status.name: status for status in await sz.governors()}


async def test_governors_reports_every_limit_with_its_rate_burst_and_tokens() -> None:
    config = Config(
        governors=GovernorsConfig(
            rate_limit=RateLimitConfig(enabled=True, rate=50.0, burst=80),
            per_method_limits={"work": MethodLimits(rate=5.0, burst=3)},
            per_handler_limits={"other": HandlerLimits(rate=7.0)},
        )
    )
    sz = ScheduleZero(config=config)

    @sz.handler(rate=0.01, burst=4)
    async def work() -> str:
        return "done"

    @sz.handler
    async def other() -> None:
        await anyio.lowlevel.checkpoint()

    async with sz:
        before = await statuses(sz)
        assert await sz.run_now("work") == "done"
        after = await statuses(sz)
    assert list(before) == ["global", "method:work", "handler:other", "handler:work"]
    assert [(s.rate, s.effective_rate, s.burst, s.tokens) for s in before.values()] == [
        (50.0, 50.0, 80, 80),
        (5.0, 5.0, 3, 3),
        (7.0, 7.0, 7.0, 7.0),
        (0.01, 0.01, 4, 4),
    ]
    assert before["handler:work"].max_running == 1
    assert (before["global"].running, before["global"].waiting) == (0, 0)
    # One job took a token from each bucket it passed, and none from the others.
    assert after["handler:work"].tokens is not None
    assert 3.0 <= after["handler:work"].tokens < 3.5
    assert after["handler:other"].tokens == 7.0


async def test_governors_reports_no_rate_where_none_is_configured() -> None:
    sz = ScheduleZero()

    @sz.handler(concurrency=4)
    async def work() -> None:
        await anyio.lowlevel.checkpoint()

    async with sz:
        found = await statuses(sz)
    assert list(found) == ["global", "handler:work"]
    assert found["global"] == GovernorStatus(
        name="global",
        rate=None,
        effective_rate=None,
        burst=None,
        tokens=None,
        max_running=None,
        running=0,
        waiting=0,
        limited=0,
        rejected=0,
    )
    assert found["handler:work"].max_running == 4


async def test_governors_needs_a_running_scheduler() -> None:
    with pytest.raises(SzError, match="not running"):
        await ScheduleZero().governors()


async def test_a_rate_given_to_the_handler_wins_over_the_configured_one() -> None:
    config = Config(
        governors=GovernorsConfig(per_handler_limits={"work": HandlerLimits(rate=1.0)})
    )
    sz = ScheduleZero(config=config)

    @sz.handler(rate=3.0)
    async def work() -> None:
        await anyio.lowlevel.checkpoint()

    async with sz:
        found = await statuses(sz)
    assert (found["handler:work"].rate, found["handler:work"].burst) == (3.0, 3.0)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        pytest.param({"rate": 0}, "rate must be a number > 0", id="rate-0"),
        pytest.param({"rate": -1}, "rate must be a number > 0", id="rate-negative"),
        pytest.param({"rate": 5, "burst": 0}, "burst must be at least 1", id="burst-0"),
        pytest.param({"burst": 2}, "rate must be a number > 0", id="burst-no-rate"),
    ],
)
def test_a_bad_rate_or_burst_is_refused_naming_the_handler(
    options: dict[str, Any], problem: str
) -> None:
    sz = ScheduleZero()

    async def work() -> None:
        await anyio.lowlevel.checkpoint()

    with pytest.raises(SzError, match=f"^handler 'work': {problem}$"):
        sz.handler(work, **options)
    with pytest.raises(SzError, match="handler 'work'"):
        sz.handler(name="work", **options)(work)


async def test_a_job_held_back_by_a_handlers_rate_says_so_in_its_history() -> None:
    sz = ScheduleZero()

    # Two jobs at once: the second waits about half a second for its token.
    @sz.handler(rate=2.0, burst=1)
    async def work(n: int) -> int:
        return n

    async with sz:
        async with anyio.create_task_group() as tg:
            for n in range(2):
                tg.start_soon(partial(sz.run_now, "work", args=[n], timeout=DEADLINE))
        rows = await sz.history(task="work", final=True)
    assert sorted((row.reason or "", row.waited is None) for row in rows) == [
        ("", True),
        ("rate_limited", False),
    ]
    (held,) = [row for row in rows if row.waited is not None]
    assert held.waited is not None
    assert held.waited > 0


class Gated:
    """A handler whose job ``n`` runs until ``release(n)``."""

    def __init__(self, jobs: int) -> None:
        self.gates = [anyio.Event() for _ in range(jobs)]
        self.started: list[int] = []

    async def work(self, n: int) -> int:
        self.started.append(n)
        await self.gates[n].wait()
        return n

    def release_all(self) -> None:
        for gate in self.gates:
            gate.set()


def backpressured(high: int, low: int) -> ScheduleZero:
    return ScheduleZero(
        config=Config(
            governors=GovernorsConfig(
                backpressure=BackpressureConfig(high_water=high, low_water=low)
            )
        )
    )


async def test_run_now_and_schedule_are_refused_past_high_water_until_low_water() -> (
    None
):
    high, low = 5, 2
    gated = Gated(40)
    sz = backpressured(high, low)
    sz.handler(gated.work, name="work")
    refusals: list[Overloaded] = []

    async def run(n: int) -> None:
        try:
            await sz.run_now("work", args=[n], timeout=DEADLINE)
        except Overloaded as exc:  # never a JobFailed: refused is refused
            refusals.append(exc)

    async with sz:
        async with anyio.create_task_group() as tg:

            async def waiting() -> int:
                return (await statuses(sz))["global"].waiting

            # Fill the queue behind the one running job until work is refused.
            n = 0
            while not refusals:
                tg.start_soon(run, n)
                before = len(refusals)

                async def taken(count: int = n, before: int = before) -> bool:
                    return len(refusals) > before or await waiting() == count

                await wait_until(taken, timeout=DEADLINE)
                n += 1
            assert await waiting() <= high
            with pytest.raises(Overloaded) as caught:
                await sz.run_now("work", args=[n])
            assert caught.value.retry_after > 0
            with pytest.raises(Overloaded) as caught:
                await sz.schedule("work", "interval", seconds=60, args=[n])
            assert caught.value.retry_after > 0
            assert await sz.schedules() == []

            # Draining, but still above low water: still refused.
            running = 0
            while await waiting() > low:
                with pytest.raises(Overloaded):
                    await sz.run_now("work", args=[n])
                gated.gates[running].set()
                running += 1

                async def moved(count: int = running) -> bool:
                    return len(gated.started) == count + 1

                await wait_until(moved, timeout=DEADLINE)
            assert await waiting() == low
            later = datetime.now(UTC) + timedelta(hours=1)
            schedule_id = await sz.schedule("work", "date", run_time=later, args=[n])
            tg.start_soon(run, n + 1)

            async def accepted() -> bool:
                return await waiting() == low + 1

            await wait_until(accepted, timeout=DEADLINE)
            gated.release_all()
            await sz.unschedule(schedule_id)
        rows = await sz.history(task="work", final=True, limit=1_000)
    assert len(refusals) == 1
    # Every job let in ran; a job refused by the dispatcher has its row.
    assert Counter(row.outcome for row in rows) == Counter(
        success=n, rejected=sum(exc.job_id is not None for exc in refusals)
    )


async def test_the_first_run_now_refused_at_high_water_raises_overloaded() -> None:
    high, low = 4, 1
    gated = Gated(20)
    sz = backpressured(high, low)
    sz.handler(gated.work, name="work")
    refusals: list[Overloaded] = []

    async def run(n: int) -> None:
        try:
            await sz.run_now("work", args=[n], timeout=DEADLINE)
        except Overloaded as exc:  # never a JobFailed: refused is refused
            refusals.append(exc)

    async with sz, anyio.create_task_group() as tg:
        for n in range(high + 2):
            tg.start_soon(run, n)

            async def taken(count: int = n) -> bool:
                status = (await statuses(sz))["global"]
                return len(refusals) > 0 or status.waiting == count

            await wait_until(taken, timeout=DEADLINE)
            if refusals:
                break
        gated.release_all()
    assert refusals
    assert isinstance(refusals[0], Overloaded)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_burst_of_run_now_at_once_past_high_water_raises_only_overloaded(
    store: str, tmp_path: Path
) -> None:
    # Every caller checks the load before the first of them reaches the
    # dispatcher, which then refuses the jobs past high water: those callers
    # get Overloaded too (with the job's id), never a JobFailed "rejected".
    high, low, burst = 3, 1, 20
    gated = Gated(burst)
    sz = ScheduleZero(
        config=Config(
            governors=GovernorsConfig(
                backpressure=BackpressureConfig(high_water=high, low_water=low)
            )
        ),
        store="memory" if store == "memory" else f"sqlite:///{tmp_path / 'sz.db'}",
    )
    sz.handler(gated.work, name="work")
    refusals: list[Overloaded] = []
    results: list[int] = []

    async def run(n: int) -> None:
        try:
            results.append(await sz.run_now("work", args=[n], timeout=DEADLINE))
        except Overloaded as exc:
            refusals.append(exc)

    async with sz:
        async with anyio.create_task_group() as tg:
            for n in range(burst):  # no checkpoint between them: all at once
                tg.start_soon(run, n)

            # One job runs, ``high`` wait, the rest are refused.
            async def refused() -> bool:
                return len(refusals) == burst - 1 - high

            await wait_until(refused, timeout=DEADLINE)
            gated.release_all()
        rows = await sz.history(task="work", final=True, limit=1_000)
    assert len(results) == 1 + high
    assert all(exc.retry_after > 0 for exc in refusals)
    # The dispatcher refused them all, after acceptance: each has its row.
    refused_ids = {exc.job_id for exc in refusals}
    assert None not in refused_ids
    assert refused_ids == {
        row.job_id
        for row in rows
        if (row.outcome, row.reason) == ("rejected", "overloaded")
    }
    assert Counter(row.outcome for row in rows) == Counter(
        success=1 + high, rejected=burst - 1 - high
    )
