"""The history: filters and pages, durability, pruning, and a killed history actor.

Rows come from real jobs (``sz.run_now`` on handlers that succeed or fail, and fires
of schedules) wherever the behaviour is the scheduler's; the ``HistoryActor`` and its
backends (``MemoryHistory``, ``FileHistory``) are driven directly where the test is
about them. Behaviour the stores share runs on each of them, memory, SQLite and
PostgreSQL (the ``store`` and ``kind`` fixtures; PostgreSQL on a throwaway server,
``conftest.py``); every async test also runs under asyncio and under trio
(``tests/conftest.py``). Nothing sleeps: each wait is for an event or for a
condition polled under a deadline.
"""

from __future__ import annotations

import gc
import sqlite3
from collections import Counter
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import pytest
from apscheduler.triggers.interval import IntervalTrigger

from actors import ActorStopped, ActorSystem
from actors.testing import ManualClock, wait_until
from sz.errors import JobFailed, SzError
from sz.history import PRUNE_EVERY, HistoryActor
from sz.jobs import Attempt, HistoryQuery, history_order
from sz.scheduler import HISTORY_LIMIT, ScheduleZero
from sz.store import SqliteFile
from sz.store.history import _LAST_RUNS, FileHistory, MemoryHistory
from sz.store.location import database_for
from sz.store.sqlite import SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from actors import ActorRef, ActorSnapshot
    from sz.store.history import HistoryBackend

#: Seconds any one wait in these tests may take before it fails the test.
#: A bound on waits, not a sleep. Generous: under a loaded machine the order in
#: which ``flaky``'s outcomes land can open its circuit once or twice (a cool-down
#: of 5 s each) before the workload ends.
DEADLINE = 30.0

MEMORY = "memory"
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
ON_POSTGRESQL = pytest.param(POSTGRESQL, marks=pytest.mark.postgresql)


@pytest.fixture(params=[MEMORY, SQLITE, ON_POSTGRESQL])
def kind(request: pytest.FixtureRequest) -> str:
    """Which store: the memory one, the SQLite file, or PostgreSQL."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The ``store=`` argument of ``ScheduleZero`` for ``kind``."""
    if kind == POSTGRESQL:
        url: str = request.getfixturevalue("pg_url")
        return url
    return MEMORY if kind == MEMORY else "sqlite:///" + str(tmp_path / "sz.db")


@pytest.fixture
def where(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    """What ``backend_of`` opens for ``kind``: a SQLite file, or a database's URL."""
    if kind == POSTGRESQL:
        url: str = request.getfixturevalue("pg_url")
        return url
    return tmp_path / "sz.db"  # the file ``store`` names


async def everything(sz: ScheduleZero, **filters: Any) -> list[Attempt]:
    """Every row matching ``filters``, in one query (these tests keep fewer)."""
    assert ROWS <= HISTORY_LIMIT
    return await sz.history(limit=HISTORY_LIMIT, **filters)


async def paged(sz: ScheduleZero, size: int, **filters: Any) -> list[list[Attempt]]:
    """Every page of ``size`` rows, each asked with ``before=`` the previous page's end.

    As ``sz.history`` says to page: ``before=<the page's last row>``.
    """
    pages: list[list[Attempt]] = []
    before: datetime | Attempt | None = None
    with anyio.fail_after(DEADLINE):
        while True:
            page = await sz.history(before=before, limit=size, **filters)
            if not page:
                return pages
            assert len(page) <= size
            pages.append(page)
            before = page[-1]


def row(finished_at: datetime, *, job_id: str, outcome: Any = "success") -> Attempt:
    """A history row as a handler's success leaves it, finished at ``finished_at``."""
    return Attempt(
        job_id=job_id,
        schedule_id=None,
        task="t",
        handler="h",
        scheduled_at=finished_at - timedelta(seconds=1),
        started_at=finished_at - timedelta(milliseconds=500),
        finished_at=finished_at,
        duration=0.5,
        outcome=outcome,
        error=None,
        attempt=1,
        final=True,
        reason=None,
    )


@asynccontextmanager
async def backend_of(kind: str, where: Path | str) -> AsyncIterator[HistoryBackend]:
    """A history backend of ``kind``: in memory, or in a database.

    ``where``: a SQLite file's path, or a store URL.
    """
    if kind == MEMORY:
        yield MemoryHistory(100_000)
        return
    file = SqliteFile(where) if not isinstance(where, str) else database_for(where)
    assert file is not None
    await file.open()
    try:
        yield FileHistory(file)
    finally:
        await file.close()


# ------------------------------------------------ the rows of a real workload

#: Jobs run through ``run_now``: a third on ``flaky`` (one retry), the rest on
#: ``ok`` (two handlers of one task, ``ok`` and ``ok#2``).
JOBS = 300
#: Fires of the schedule ``sched``: all overdue at once, each run (``all``).
FIRES = 10
#: ``flaky(i)`` fails its first attempt when ``i % RETRIED == 0``, and its second
#: too when ``i % FAILED == 0``: few enough failures that the handler stays
#: healthy (the dispatcher holds back a handler failing half its jobs).
RETRIED, FAILED = 15, 30


def make_workload(store: str) -> ScheduleZero:
    """A scheduler with the handlers ``ok`` (twice) and ``flaky`` (retries once)."""
    sz = ScheduleZero(store=store)
    calls: Counter[int] = Counter()

    async def ok(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        return i

    async def flaky(i: int) -> int:
        calls[i] += 1
        await anyio.lowlevel.checkpoint()
        if i % RETRIED == 0 and (calls[i] == 1 or i % FAILED == 0):
            raise ValueError(f"flaky {i} attempt {calls[i]}")
        return i

    sz.handler(ok, name="ok", concurrency=4)
    sz.handler(ok, name="ok", concurrency=4)
    sz.handler(flaky, name="flaky", concurrency=4, retries=1)
    return sz


def task_of(i: int) -> str:
    return "flaky" if i % 3 == 0 else "ok"


async def run_workload(sz: ScheduleZero, callers: int = 20) -> None:
    """Run ``JOBS`` jobs from ``callers`` tasks at once, and ``FIRES`` fires."""
    now = datetime.now(UTC)
    await sz.schedule(
        "ok",
        IntervalTrigger(
            seconds=1,
            start_time=now - timedelta(seconds=FIRES - 0.5),
            end_time=now - timedelta(seconds=0.1),
        ),
        args=[-1],
        coalesce="all",
        id="sched",
    )

    async def caller(first: int) -> None:
        for i in range(first, JOBS, callers):
            try:
                assert await sz.run_now(task_of(i), args=[i], timeout=DEADLINE) == i
            except JobFailed:
                assert i % FAILED == 0

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            for first in range(callers):
                tg.start_soon(caller, first)

    async def fired() -> bool:
        return len(await sz.history(schedule_id="sched", final=True)) == FIRES

    await wait_until(fired, timeout=DEADLINE)


#: Jobs of each kind, and the rows the workload leaves: one per job and per fire,
#: and one more per retry.
FLAKY, RETRIES, FAILURES = JOBS // 3, JOBS // RETRIED, JOBS // FAILED
ROWS = JOBS + RETRIES + FIRES


async def test_every_filter_selects_exactly_its_rows_in_the_same_order(
    store: str,
) -> None:
    sz = make_workload(store)
    async with sz:
        await run_workload(sz)
        # The order itself is the paging tests' subject: here, every filter keeps
        # the order of the unfiltered rows, whatever it is.
        truth = await everything(sz)
        assert len(truth) == ROWS
        assert len(set(truth)) == ROWS

        selections: list[tuple[dict[str, Any], Callable[[Attempt], bool]]] = [
            ({"task": "ok"}, lambda r: r.task == "ok"),
            ({"task": "flaky"}, lambda r: r.task == "flaky"),
            ({"handler": "ok"}, lambda r: r.handler == "ok"),
            ({"handler": "ok#2"}, lambda r: r.handler == "ok#2"),
            ({"outcome": "failure"}, lambda r: r.outcome == "failure"),
            ({"outcome": "success"}, lambda r: r.outcome == "success"),
            ({"schedule_id": "sched"}, lambda r: r.schedule_id == "sched"),
            ({"final": True}, lambda r: r.final),
            ({"final": False}, lambda r: not r.final),
            (
                {"task": "flaky", "outcome": "failure", "final": True},
                lambda r: (r.task, r.outcome, r.final) == ("flaky", "failure", True),
            ),
        ]
        for filters, wanted in selections:
            expected = [r for r in truth if wanted(r)]
            assert expected, filters
            assert await everything(sz, **filters) == expected, filters

        # What each selection must hold, counted from the plan of the jobs.
        assert len(await everything(sz, task="ok")) == JOBS - FLAKY + FIRES
        assert len(await everything(sz, final=True)) == JOBS + FIRES
        assert len(await everything(sz, final=False)) == RETRIES
        assert len(await everything(sz, outcome="failure")) == RETRIES + FAILURES
        assert len(await everything(sz, outcome="failure", final=True)) == FAILURES
        assert {r.reason for r in await everything(sz, final=False)} == {
            "retry_after_failure"
        }
        handlers = Counter(r.handler for r in await everything(sz, task="ok"))
        assert set(handlers) == {"ok", "ok#2"}

        # One job's rows, by its id: both attempts of a job that failed twice.
        failed = (await sz.history(task="flaky", final=True, outcome="failure"))[0]
        attempts = await everything(sz, job_id=failed.job_id)
        assert [(r.attempt, r.final) for r in attempts] == [(2, True), (1, False)]
        assert all(r.error is not None and "ValueError" in r.error for r in attempts)

        # A window in time: since is inclusive, before exclusive; they split the rows.
        cut = truth[ROWS // 2].finished_at
        since = await everything(sz, since=cut)
        before = await everything(sz, before=cut)
        assert since == [r for r in truth if r.finished_at >= cut]
        assert before == [r for r in truth if r.finished_at < cut]
        assert len(since) + len(before) == ROWS
        assert set(since) | set(before) == set(truth)
        low, high = truth[ROWS - 10].finished_at, truth[10].finished_at
        window = await everything(sz, since=low, before=high)
        assert window == [r for r in truth if low <= r.finished_at < high]

        assert await sz.history() == truth[:100]  # 100 rows by default
        assert await sz.history(limit=7) == truth[:7]
        with pytest.raises(SzError, match="limit"):
            await sz.history(limit=0)  # a limit below one is refused
        assert await sz.history(job_id="nosuch") == []


@pytest.mark.parametrize("size", [1, 23, 100])
async def test_paging_with_before_returns_every_row_once_newest_first(
    store: str, size: int
) -> None:
    sz = make_workload(store)
    async with sz:
        await run_workload(sz)
        truth = await everything(sz)
        assert [history_order(r) for r in truth] == sorted(
            (history_order(r) for r in truth), reverse=True
        )
        pages = await paged(sz, size)
        rows = [r for page in pages for r in page]
        assert len(rows) == len(set(rows)) == ROWS
        assert rows == truth
        assert all(len(page) == size for page in pages[:-1])

        # Pages of a filtered selection hold exactly that selection.
        flaky = [r for page in await paged(sz, 9, task="flaky") for r in page]
        assert flaky == await everything(sz, task="flaky")
        assert len(flaky) == FLAKY + RETRIES


async def paged_from(history: ActorRef, size: int) -> list[Attempt]:
    """Every row, asked of the history actor a page of ``size`` at a time."""
    rows: list[Attempt] = []
    before: datetime | Attempt | None = None
    with anyio.fail_after(DEADLINE):
        while True:
            page = await history.ask(HistoryQuery(before=before, limit=size))
            if not page:
                return rows
            rows.extend(page)
            before = page[-1]


@pytest.mark.parametrize(
    "kind",
    [
        MEMORY,
        SQLITE,
        ON_POSTGRESQL,
    ],
)
async def test_rows_arriving_out_of_finishing_order_are_queried_newest_first(
    kind: str, where: Path | str
) -> None:
    """Rows reach the history in another order than they finished, in real runs.

    A handler's ``finished_at`` is its start's wall clock plus a ``perf_counter``
    duration: whatever passed between the two readings at the start makes it
    early, so that a row told later can have finished earlier. And rows the
    scheduler records itself (coalesced, missed, rejected, abandoned at start) go
    straight to the history while a handler's row waits in the dispatcher's
    mailbox. Here: such an order, told to the actor as it would arrive.
    """
    t = datetime.now(UTC)
    first = row(t, job_id="first")
    direct = row(t + timedelta(microseconds=500), job_id="direct", outcome="coalesced")
    routed = row(t + timedelta(microseconds=300), job_id="routed")
    last = row(t + timedelta(microseconds=900), job_id="last")
    newest_first = [last, direct, routed, first]
    async with backend_of(kind, where) as backend, ActorSystem() as system:
        history = await system.spawn(HistoryActor, backend, name="history")
        for attempt in (first, direct, routed, last):
            history.tell(attempt)
        assert await history.ask(HistoryQuery()) == newest_first
        assert await paged_from(history, 1) == newest_first
        assert await paged_from(history, 2) == newest_first


async def test_paging_with_before_skips_no_row_that_ties_at_a_page_end(
    kind: str, where: Path | str
) -> None:
    """Two rows that finished in the same microsecond, split by a page's end.

    Real jobs do it: in about one run in fifteen of this file's workload, two
    rows of one handler land on the same microsecond (``finished_at`` is
    ``started_at`` plus a ``perf_counter`` duration), and ``HandlerActor.on_stop``
    gives every order it reports lost one and the same time.
    """
    t = datetime.now(UTC)
    tied = [row(t, job_id="x"), row(t, job_id="y")]
    newer = row(t + timedelta(milliseconds=1), job_id="newer")
    async with backend_of(kind, where) as backend, ActorSystem() as system:
        history = await system.spawn(HistoryActor, backend, name="history")
        for attempt in (*tied, newer):
            history.tell(attempt)
        rows = await history.ask(HistoryQuery())
        assert rows == [newer, *reversed(tied)]
        assert await paged_from(history, 2) == rows


@pytest.mark.parametrize("kind", [SQLITE, ON_POSTGRESQL])
async def test_history_on_a_durable_store_survives_a_restart_field_for_field(
    store: str,
) -> None:
    sz = make_workload(store)
    long_ago = datetime.now(UTC) - timedelta(seconds=30)
    async with sz:
        await run_workload(sz)
        # Rows with every field empty that can be: a coalesced and a missed fire.
        now = datetime.now(UTC)
        await sz.schedule(
            "ok",
            IntervalTrigger(
                seconds=1,
                start_time=now - timedelta(seconds=2.5),
                end_time=now - timedelta(seconds=0.1),
            ),
            args=[-2],
            id="folded",
        )
        await sz.schedule(
            "ok",
            "date",
            run_time=long_ago,
            args=[-3],
            misfire_grace_time=1.0,
            id="late",
        )

        async def skipped() -> bool:
            folded = await sz.history(schedule_id="folded", final=True)
            late = await sz.history(schedule_id="late", final=True)
            return len(folded) == 3 and len(late) == 1

        await wait_until(skipped, timeout=DEADLINE)
        before = await everything(sz)
    assert len(before) == ROWS + 4
    outcomes = Counter(r.outcome for r in before)
    assert (outcomes["coalesced"], outcomes["missed"]) == (2, 1)

    again = make_workload(store)
    async with again:
        after = await everything(again)
    assert len(after) == len(before)
    for kept, read in zip(before, after, strict=True):
        assert fields_of(read) == fields_of(kept)
        assert read.finished_at.tzinfo is not None
    assert after == before


def fields_of(attempt: Attempt) -> tuple[Any, ...]:
    """Every field of a row, so that a difference names the field in the diff."""
    return (
        attempt.job_id,
        attempt.schedule_id,
        attempt.task,
        attempt.handler,
        attempt.scheduled_at,
        attempt.started_at,
        attempt.finished_at,
        attempt.duration,
        attempt.outcome,
        attempt.error,
        attempt.attempt,
        attempt.final,
        attempt.reason,
    )


# -------------------------------------------------------------------- pruning


async def test_rows_older_than_the_retention_are_pruned_when_the_actor_starts(
    kind: str, where: Path | str
) -> None:
    now = datetime.now(UTC)
    old = [row(now - timedelta(days=40, seconds=i), job_id=f"old{i}") for i in range(5)]
    young = [row(now - timedelta(hours=i + 1), job_id=f"new{i}") for i in range(5)]
    async with backend_of(kind, where) as backend:
        for attempt in [*reversed(old), *reversed(young)]:  # in finishing order
            backend.add(attempt)
        await backend.flush()
        assert len(await backend.query(HistoryQuery(limit=100))) == 10
        async with ActorSystem("h") as system:
            history = await system.spawn(HistoryActor, backend, 30.0, name="history")
            rows = await history.ask(HistoryQuery(limit=100))
        assert rows == young
        assert await backend.query(HistoryQuery(limit=100)) == young


async def test_rows_are_pruned_every_hour_while_the_actor_runs(
    kind: str, where: Path | str
) -> None:
    now = datetime.now(UTC)
    clock = ManualClock()
    async with (
        backend_of(kind, where) as backend,
        ActorSystem("h", clock=clock) as system,
    ):
        history = await system.spawn(HistoryActor, backend, 1.0, name="history")
        # Told after the start's pruning: only the hourly one can drop them.
        stale = [
            row(now - timedelta(days=2, seconds=i), job_id=f"s{i}") for i in (1, 0)
        ]
        fresh = row(now, job_id="fresh")
        for attempt in [*stale, fresh]:
            history.tell(attempt)
        assert await history.ask(HistoryQuery()) == [fresh, *reversed(stale)]

        await clock.wait_for_sleeper()
        clock.advance(PRUNE_EVERY - 1)
        assert len(await history.ask(HistoryQuery())) == 3  # not yet

        clock.advance(1)

        async def pruned() -> bool:
            return bool(await history.ask(HistoryQuery()) == [fresh])

        await wait_until(pruned, timeout=DEADLINE)


@pytest.mark.parametrize("kind", [SQLITE, ON_POSTGRESQL])
async def test_a_durable_store_prunes_rows_past_retention_at_start(
    kind: str, where: Path | str, store: str
) -> None:
    now = datetime.now(UTC)
    old = [row(now - timedelta(days=31, seconds=i), job_id=f"old{i}") for i in range(3)]
    young = [row(now - timedelta(days=29, seconds=i), job_id=f"y{i}") for i in range(3)]
    async with backend_of(kind, where) as backend:
        for attempt in [*reversed(old), *reversed(young)]:
            backend.add(attempt)
    sz = ScheduleZero(store=store)  # retention_days: 30
    assert sz.config.reporting.metrics.retention_days == 30
    sz.handler(lambda: None, name="noop")
    async with sz:
        assert await sz.history() == young
    async with backend_of(kind, where) as backend:
        assert await backend.query(HistoryQuery()) == young


# ------------------------------------------------- a killed history actor


def history_ref(sz: ScheduleZero) -> ActorRef:
    ref = sz.system.lookup("/user/history")
    assert ref is not None
    return ref


async def test_killing_the_history_actor_while_rows_stream_in_loses_no_row(
    kind: str, store: str
) -> None:
    jobs, callers, kills = 400, 8, (100, 250)
    sz = ScheduleZero(store=store)
    started = 0
    reached = [anyio.Event() for _ in kills]

    # Jobs end eight at a time (a gate opens as the eighth starts), so that their
    # rows reach the history actor in bursts and wait in its mailbox. Eight
    # callers, one job each at a time, keep the eight in step to the last.
    gate = anyio.Event()

    @sz.handler(name="work", concurrency=8)
    async def work(i: int) -> int:
        nonlocal started, gate
        started += 1
        for n, event in zip(kills, reached, strict=True):
            if started == n:
                event.set()
        if started % 8:
            await gate.wait()
        else:
            gate.set()
            gate = anyio.Event()
            await anyio.lowlevel.checkpoint()
        return i

    results: list[int] = []
    stopped_asks = 0

    async def caller(first: int) -> None:
        for i in range(first, jobs, callers):
            result = await sz.run_now("work", args=[i], timeout=DEADLINE)
            results.append(result)

    async def reader(done: anyio.Event) -> None:
        # Asks keep arriving too, so that a kill may land mid-query.
        nonlocal stopped_asks
        while not done.is_set():
            try:
                await sz.history(limit=5)
            except ActorStopped:
                stopped_asks += 1

    def history_now() -> ActorSnapshot:
        snapshot = sz.system.snapshot().find("/user/history")
        assert snapshot is not None
        return snapshot

    queued: list[int] = []

    async def killer() -> None:
        for n, event in enumerate(reached, start=1):
            await event.wait()
            # Kill it with rows waiting in its mailbox: they must outlive it. (The
            # reader has one ask at a time there: two messages are one row at least.)
            # Every pass of the loop: the depth may not stay at two for long.
            await wait_until(
                lambda: history_now().mailbox_depth >= 2, timeout=DEADLINE, interval=0
            )
            queued.append(history_now().mailbox_depth)
            await history_ref(sz).kill()

            # A kill while it waits to restart would do nothing: wait for it.
            def restarted(n: int = n) -> bool:
                return (history_now().state, history_now().restarts) == ("running", n)

            await wait_until(restarted, timeout=DEADLINE)

    async with sz:
        with anyio.fail_after(DEADLINE):
            done = anyio.Event()
            async with anyio.create_task_group() as outer:
                outer.start_soon(reader, done)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(killer)
                    for first in range(callers):
                        tg.start_soon(caller, first)
                done.set()
        assert sorted(results) == list(range(jobs))
        assert len(queued) == len(kills)
        assert min(queued) >= 2
        snapshot = history_now()
        assert (snapshot.failures, snapshot.restarts) == (len(kills), len(kills))

        async def all_final() -> bool:
            return len(await everything(sz, final=True)) >= jobs

        await wait_until(all_final, timeout=DEADLINE)
        rows = await everything(sz)
    finals = Counter(r.job_id for r in rows if r.final)
    assert len(finals) == jobs
    assert set(finals.values()) == {1}
    assert len(rows) == jobs
    assert all(r.outcome == "success" for r in rows)
    assert stopped_asks <= len(kills)

    if kind != MEMORY:
        again = ScheduleZero(store=store)
        again.handler(work, name="work")
        async with again:
            # Nothing was left accepted without its final row: nothing taken up.
            assert await everything(again) == rows


# --------------------------------------- the actor and the file, directly


def _read_file(path: Path) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT job_id, schedule_id, task, handler, scheduled_at, started_at, "
            "finished_at, duration, outcome, error, attempt, final, reason "
            "FROM history ORDER BY seq"
        ).fetchall()
    finally:
        connection.close()


def _from_file(values: tuple[Any, ...]) -> Attempt:
    def moment(value: int | None) -> datetime | None:
        # The file keeps times as integer microseconds since the Unix epoch.
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return None if value is None else epoch + timedelta(microseconds=value)

    (job_id, schedule_id, task, handler, scheduled, started, finished) = values[:7]
    (duration, outcome, error, attempt, final, reason) = values[7:]
    scheduled_at, finished_at = moment(scheduled), moment(finished)
    assert scheduled_at is not None
    assert finished_at is not None
    return Attempt(
        job_id=job_id,
        schedule_id=schedule_id,
        task=task,
        handler=handler,
        scheduled_at=scheduled_at,
        started_at=moment(started),
        finished_at=finished_at,
        duration=duration,
        outcome=outcome,
        error=error,
        attempt=attempt,
        final=bool(final),
        reason=reason,
    )


async def test_rows_told_to_the_history_actor_are_in_the_file_after_a_flush(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    now = datetime.now(UTC)
    told = [
        Attempt(
            job_id=f"j{i // 2}",
            schedule_id="s" if i % 3 else None,
            task="t",
            handler="h" if i % 5 else None,
            scheduled_at=now - timedelta(seconds=10, microseconds=i),
            started_at=now - timedelta(seconds=5, microseconds=i) if i % 5 else None,
            finished_at=now + timedelta(microseconds=i),
            duration=i / 1000 if i % 5 else None,
            outcome="failure" if i % 2 == 0 else "success",
            error="ValueError('x')" if i % 2 == 0 else None,
            attempt=1 + i % 2,
            final=i % 2 == 1,
            reason="retry_after_failure" if i % 2 == 0 else None,
        )
        for i in range(1000)
    ]
    async with AsyncExitStack() as stack:
        file = SqliteFile(path)
        await file.open()
        stack.push_async_callback(file.close)
        backend = FileHistory(file)
        system = await stack.enter_async_context(ActorSystem("h"))
        history = await system.spawn(
            HistoryActor, backend, name="history", capacity=10_000
        )
        for attempt in told:
            history.tell(attempt)
        # A query of no rows never reads the file: it only shows that the actor
        # has handed every row before it to the backend.
        assert await history.ask(HistoryQuery(limit=0)) == []
        await backend.flush()
        # The file is still open: read it as another process would.
        stored = await anyio.to_thread.run_sync(_read_file, path)
    assert [_from_file(values) for values in stored] == told


def test_rows_kept_in_memory_add_nothing_to_the_garbage_collectors_walk() -> None:
    # A full collection walks every tracked object: rows it had to walk stalled
    # the event loop for tens of milliseconds at run_now's pace.
    history = MemoryHistory(100_000)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    gc.collect()
    tracked = len(gc.get_objects())
    for n in range(20_000):
        history.add(row(start + timedelta(microseconds=n), job_id=f"job-{n}"))
    gc.collect()
    assert len(gc.get_objects()) - tracked < 1_000
    # And the rows read back as they were added.
    newest = anyio.run(history.query, HistoryQuery(limit=2))
    assert newest == [
        row(start + timedelta(microseconds=n), job_id=f"job-{n}")
        for n in (19_999, 19_998)
    ]


async def test_last_runs_gives_each_schedules_latest_final_row_in_one_read(
    kind: str, where: Path | str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)

    def at(seconds: int, job_id: str, schedule_id: str | None, **kw: Any) -> Attempt:
        return attrs.evolve(
            row(now + timedelta(seconds=seconds), job_id=job_id),
            schedule_id=schedule_id,
            **kw,
        )

    rows = [
        at(1, "a1", "a"),
        at(2, "b1", "b", outcome="failure"),
        at(3, "a2", "a", outcome="failure"),
        # A retry's first attempt, not final: never a last run.
        at(4, "b2", "b", final=False, outcome="failure"),
        # A later row of a job of no schedule, and of a schedule not asked for.
        at(5, "x", None),
        at(6, "o1", "other"),
        # Arriving late, finished before a2: not a's last run.
        at(0, "a0", "a"),
    ]
    async with backend_of(kind, where) as backend:
        for kept in rows:
            backend.add(kept)
        await backend.flush()
        found = await backend.last_runs(("a", "b", "never"))
        assert await backend.last_runs(()) == {}
        # Past the retention: a pruned row is no schedule's last run.
        backend.prune(now + timedelta(seconds=5.5))
        await backend.flush()
        pruned = await backend.last_runs(("a", "b", "other"))
    assert found == {"a": rows[2], "b": rows[1]}
    assert pruned == {"other": rows[5]}


def _schedule_index(path: Path, sql: str) -> tuple[int, list[str], str]:
    """The file's layout, its history indexes, and the plan of ``sql``."""
    connection = sqlite3.connect(path)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        indexes = sorted(
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'history'"
            )
        )
        plan = " / ".join(
            row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", ("a",))
        )
        return version, indexes, plan
    finally:
        connection.close()


def _back_to_the_layout_before(path: Path) -> None:
    """The file as the layout before the index left it (its last step)."""
    connection = sqlite3.connect(path)
    try:
        connection.executescript(
            "DROP INDEX history_by_schedule; "
            f"PRAGMA user_version = {SCHEMA_VERSION - 1};"
        )
    finally:
        connection.close()


async def test_last_runs_on_sqlite_look_up_an_index_that_a_migration_adds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sz.db"
    file = SqliteFile(path)
    await file.open()
    await file.close()
    await anyio.to_thread.run_sync(_back_to_the_layout_before, path)
    # A store of the layout before: the next open adds the index.
    file = SqliteFile(path)
    await file.open()
    await file.close()
    sql = _LAST_RUNS.format(columns="job_id", ids="SELECT CAST(? AS TEXT) AS id")
    version, indexes, plan = await anyio.to_thread.run_sync(_schedule_index, path, sql)
    assert version == SCHEMA_VERSION
    assert "history_by_schedule" in indexes
    # Each schedule is one look in it, never a walk of the whole history.
    assert "SEARCH h USING INDEX history_by_schedule (schedule_id=?)" in plan
