"""Durable store benchmark: ``python -m benchmarks.store [--quick] [--backend B]``.

ScheduleZero with ``store="sqlite:///..."`` (schedules, accepted jobs and history in
one SQLite file), each figure beside a baseline measured in the same run and on the
same backend, so a ratio reads off one run:

- Creating, then deleting, many schedules that never fire, beside APScheduler 4's
  own SQLAlchemy store on aiosqlite, with SQLite's default journal and with WAL
  (asyncio only: that store refuses trio).
- Fire lateness of many interval schedules firing every second, aligned on the
  second or spread over it, beside APScheduler alone (memory store) doing the same.
- Fire throughput: one burst of schedules all due at the same instant, each firing
  once, from the due time to the last handler start, checked against the history
  (every fire must leave exactly one final row); beside APScheduler alone.
- Lateness and throughput are measured as ``sz serve`` runs them (the startup
  heap frozen out of garbage collection: ``sz.serve.settle_heap``), with the
  targets, and as a program embedding ScheduleZero without that call runs them.
- History writes: final rows (with their arguments and a small result to keep)
  told to the history actor until they are committed
  (each also ends its job's acceptance: a second statement), beside stdlib
  ``sqlite3`` inserting the same rows with ``executemany`` in one transaction; and
  the file's size per million rows.
"""

from __future__ import annotations

import gc
import itertools
import pickle
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import attrs
from apscheduler import AsyncScheduler
from apscheduler.datastores.memory import MemoryDataStore
from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from actors import ActorSystem, MailboxFull
from benchmarks.common import (
    CONCURRENCY,
    Fires,
    Lateness,
    aps_lateness,
    aps_noop,
    arguments,
    each_backend,
    final_rows,
    first_fire,
    say,
    triggers,
    verdict,
)
from sz import ScheduleZero
from sz.history import HistoryActor, WithResult
from sz.jobs import Attempt, HistoryQuery
from sz.serve import settle_heap
from sz.store import Database, SqliteFile
from sz.store.history import FileHistory

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from apscheduler.abc import Trigger

#: Throughputs are the best of this many runs: this machine is a shared VM whose
#: speed wanders by a third from one second to the next.
REPEAT = 3

TARGETS = {
    "create": 2_000.0,
    "delete": 2_000.0,
    "aligned_p99_ms": 200.0,
    "spread_p99_ms": 5.0,
    "burst": 5_000.0,
    "history": 20_000.0,
}

#: APScheduler's SQLAlchemy store on aiosqlite adds some 150 schedules a second
#: here: it gets a tenth of the schedules (10,000 would take over a minute each
#: way, per run).
SQLALCHEMY_SHARE = 10

#: Schedules that never fire while measured: their first fire is this far ahead.
FAR = datetime(2100, 1, 1, tzinfo=UTC)

_files = itertools.count(1)


def fresh(directory: Path, stem: str) -> Path:
    """A database path not used before in this run."""
    return directory / f"{stem}-{next(_files)}.db"


def store_url(place: Path | str) -> str:
    """A SQLite file's URL, or a PostgreSQL database's URL as it is."""
    return place if isinstance(place, str) else f"sqlite:///{place}"


def on_disk(path: Path) -> int:
    """Bytes of the database and its write-ahead log."""
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def far_triggers(n: int) -> list[IntervalTrigger]:
    return [IntervalTrigger(seconds=1, start_time=FAR) for _ in range(n)]


# ------------------------------------------------------------ create/delete


async def sz_create_delete(n: int, path: Path | str) -> tuple[float, float]:
    """Schedules added, then removed, one call each: (created/s, deleted/s)."""
    sz = ScheduleZero(name="bench", store=store_url(path))

    @sz.handler(concurrency=CONCURRENCY)
    async def noop() -> None:
        return None

    built = far_triggers(n)
    async with sz:
        gc.collect()
        start = time.perf_counter()
        for i, trigger in enumerate(built):
            await sz.schedule("noop", trigger, id=f"s{i}")
        created = n / (time.perf_counter() - start)
        gc.collect()
        start = time.perf_counter()
        for i in range(n):
            await sz.unschedule(f"s{i}")
        deleted = n / (time.perf_counter() - start)
    return created, deleted


async def sqlalchemy_create_delete(
    n: int, wal: bool, path: Path
) -> tuple[float, float]:
    """The same with APScheduler's SQLAlchemy store on aiosqlite (asyncio only)."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    if wal:

        @event.listens_for(engine.sync_engine, "connect")
        def use_wal(connection: Any, record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    built = far_triggers(n)
    try:
        async with AsyncScheduler(data_store=SQLAlchemyDataStore(engine)) as scheduler:
            await scheduler.configure_task("noop", func=aps_noop)
            await scheduler.start_in_background()
            gc.collect()
            start = time.perf_counter()
            for i, trigger in enumerate(built):
                await scheduler.add_schedule("noop", trigger, id=f"s{i}")
            created = n / (time.perf_counter() - start)
            gc.collect()
            start = time.perf_counter()
            for i in range(n):
                await scheduler.remove_schedule(f"s{i}")
            deleted = n / (time.perf_counter() - start)
            await scheduler.stop()
    finally:
        await engine.dispose()
    return created, deleted


async def best_of(
    directory: Path,
    stem: str,
    measure: Callable[[Path], Awaitable[tuple[float, float]]],
) -> tuple[float, float]:
    """The best of ``REPEAT`` runs of each figure, each on a new file."""
    runs = [await measure(fresh(directory, stem)) for _ in range(REPEAT)]
    return max(run[0] for run in runs), max(run[1] for run in runs)


# ----------------------------------------------------------------- lateness


async def sz_lateness(
    n: int, seconds: int, spread: bool, path: Path, *, settled: bool = True
) -> Lateness:
    """As ``dispatch.sz_lateness``, on the durable store.

    ``settled``: as ``sz serve``, the startup heap frozen once started.
    """
    sz = ScheduleZero(name="bench", store=store_url(path))
    fires = Fires(n * seconds)

    @sz.handler(concurrency=CONCURRENCY)
    async def noop() -> None:
        fires.fired()

    async with sz:
        if settled:
            settle_heap()
        # Each add waits for its commit here: allow thrice the time dispatch does.
        start = first_fire(3 * n)
        for i, trigger in enumerate(triggers(n, seconds, spread, start)):
            await sz.schedule("noop", trigger, id=f"s{i}")
        cpu, wall = await fires.measure(start, seconds)
        rows = await final_rows(sz, fires.count, limit=2 * fires.count + 1)
    late = [
        (row.started_at - row.scheduled_at).total_seconds()
        for row in rows
        if row.started_at is not None
    ]
    return Lateness(late, fires.expected, cpu, wall)


# -------------------------------------------------------------------- burst


@attrs.frozen
class Burst:
    """One burst: fires handled, the last start after the due time, CPU spent."""

    n: int
    fired: int
    took: float  # due time to the last handler start, seconds
    cpu: float
    final: int | None = None  # final history rows (ScheduleZero only)
    overran: float = 0.0  # seconds the adding went past the due time

    @property
    def rate(self) -> float:
        return self.fired / self.took if self.took > 0 else 0.0

    def line(self) -> str:
        overran = (
            f"   (adding overran the due time by {self.overran:.1f} s: figure invalid)"
            if self.overran > 0
            else ""
        )
        missing = (
            f"   {self.n - self.fired:,} of {self.n:,} never ran"
            if self.fired < self.n
            else ""
        )
        return (
            f"{self.rate:>7,.0f} fires/s  (last start {self.took * 1000:,.0f} ms"
            f" after due)   CPU {self.cpu / max(self.fired, 1) * 1e6:4,.0f} us/fire"
            f"{missing}{overran}"
        )


def burst_due(n: int, rate: float) -> datetime:
    """A due time leaving room to add ``n`` schedules at ``rate`` per second.

    Room for thrice the time: other work on this VM can slow the adds that much.
    """
    return datetime.now(UTC) + timedelta(seconds=2.0 + 3.0 * n / rate)


async def valid_bursts(run: Callable[[], Awaitable[Burst]]) -> list[Burst]:
    """Runs until ``REPEAT`` of them added every schedule before the due time.

    At most twice that many runs; a run whose adding overran measured the adding
    as much as the burst.
    """
    runs: list[Burst] = []
    while len(runs) < 2 * REPEAT:
        runs.append(await run())
        if sum(burst.overran == 0 for burst in runs) == REPEAT:
            break
    return runs


def best_burst(runs: list[Burst]) -> Burst:
    valid = [burst for burst in runs if burst.overran == 0] or runs
    return max(valid, key=lambda burst: burst.rate)


async def sz_burst(
    n: int, path: Path | str, add_rate: float, *, settled: bool = True
) -> Burst:
    """``n`` one-off schedules due at one instant, on the durable store.

    ``settled``: as ``sz serve``, the startup heap frozen once started.
    """
    sz = ScheduleZero(name="bench", store=store_url(path))
    fires = Fires(n)
    last = 0.0

    @sz.handler(concurrency=CONCURRENCY)
    async def noop() -> None:
        nonlocal last
        last = time.time()
        fires.fired()

    async with sz:
        if settled:
            settle_heap()
        due = burst_due(n, add_rate)
        built: list[Trigger] = [DateTrigger(due) for _ in range(n)]
        for i, trigger in enumerate(built):
            await sz.schedule("noop", trigger, id=f"b{i}")
        overran = (datetime.now(UTC) - due).total_seconds()
        cpu, _ = await fires.measure(due, 0)
        rows = await final_rows(sz, n, limit=2 * n + 1)
    return Burst(
        n, fires.count, last - due.timestamp(), cpu, len(rows), max(0.0, overran)
    )


async def aps_burst(n: int) -> Burst:
    """The same burst in APScheduler alone (memory store), counted in the job."""
    fires = Fires(n)
    last = 0.0

    async def job() -> None:
        nonlocal last
        last = time.time()
        fires.fired()

    async with AsyncScheduler(data_store=MemoryDataStore()) as scheduler:
        await scheduler.configure_task(
            "noop", func=job, job_executor="async", max_running_jobs=None
        )
        await scheduler.start_in_background()
        due = burst_due(n, 2_000.0)
        built: list[Trigger] = [DateTrigger(due) for _ in range(n)]
        for i, trigger in enumerate(built):
            await scheduler.add_schedule("noop", trigger, id=f"b{i}")
        overran = (datetime.now(UTC) - due).total_seconds()
        cpu, _ = await fires.measure(due, 0)
        await scheduler.stop()
    return Burst(n, fires.count, last - due.timestamp(), cpu, None, max(0.0, overran))


# ------------------------------------------------------------------ history


def attempts(n: int) -> list[Attempt]:
    """``n`` rows as a schedule's one-attempt jobs leave them: each final, with
    the arguments it was called with (its result goes with it, ``RESULT``)."""
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        scheduled = now + timedelta(milliseconds=i)
        started = scheduled + timedelta(milliseconds=2)
        rows.append(
            Attempt(
                job_id=f"{i:024x}",
                schedule_id=f"s{i % 1000}",
                task="noop",
                handler="noop",
                scheduled_at=scheduled,
                started_at=started,
                finished_at=started + timedelta(microseconds=50),
                duration=0.00005,
                outcome="success",
                error=None,
                attempt=1,
                final=True,
                arguments="('tick',), {'n': 1}",
            )
        )
    return rows


#: What each benchmarked job returned: kept with its final row.
RESULT = {"status": "ok", "count": 3}


async def tell_rows(rows: list[Attempt], database: Database) -> float:
    """Seconds from telling the history actor ``rows`` to their commit."""
    backend = FileHistory(database)
    async with ActorSystem("bench") as system:
        ref = await system.spawn(HistoryActor, backend, None, capacity=100_000)
        gc.collect()
        start = time.perf_counter()
        tell = ref.tell
        for row in rows:
            message = WithResult(row, RESULT)
            try:
                tell(message)
            except MailboxFull:
                await ref.send(message)
        # The actor takes its mailbox in order: once this is answered, every
        # row has reached the backend, and the flush waits for their commit.
        await ref.ask(HistoryQuery(limit=0), timeout=60)
        await backend.flush()
        return time.perf_counter() - start


async def history_rate(rows: list[Attempt], path: Path) -> tuple[float, int]:
    """Rows told to the history actor until committed: (rows/s, bytes on disk).

    The size is taken after a checkpoint has moved the log into the database.
    """
    file = SqliteFile(path)
    await file.open()
    try:
        elapsed = await tell_rows(rows, file)
        await file.read(checkpoint)
        size = on_disk(path)
    finally:
        await file.close()
    return len(rows) / elapsed, size


def checkpoint(connection: sqlite3.Connection) -> None:
    """Move the log into the database and empty it.

    Retried while busy: the store's own checkpointer may be copying at the same
    moment, and a busy TRUNCATE leaves the log at full size.
    """
    for _ in range(100):
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        time.sleep(0.01)
    raise RuntimeError("the log could not be emptied: sizes would include it")


_INSERT = (
    "INSERT INTO history (job_id, schedule_id, task, handler, scheduled_at, "
    "started_at, finished_at, duration, outcome, error, attempt, final, reason, "
    "arguments, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def raw_insert(rows: list[Attempt], path: Path) -> tuple[float, int]:
    """Insert ``rows`` in one transaction, as the store's file is set up.

    Returns the seconds the insert took (the checkpoint after it is not counted)
    and the bytes on disk.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        start = time.perf_counter()
        values = [
            (
                row.job_id,
                row.schedule_id,
                row.task,
                row.handler,
                row.scheduled_at.timestamp(),
                row.started_at.timestamp() if row.started_at is not None else None,
                row.finished_at.timestamp(),
                row.duration,
                row.outcome,
                row.error,
                row.attempt,
                int(row.final),
                row.reason,
                row.arguments,
                pickle.dumps(RESULT, pickle.HIGHEST_PROTOCOL),
            )
            for row in rows
        ]
        connection.execute("BEGIN")
        connection.executemany(_INSERT, values)
        connection.execute("COMMIT")
        elapsed = time.perf_counter() - start
        checkpoint(connection)
        return elapsed, on_disk(path)
    finally:
        connection.close()


async def raw_history_rate(rows: list[Attempt], path: Path) -> tuple[float, int]:
    """The raw primitive: (rows/s, bytes on disk) for the same rows and schema."""
    file = SqliteFile(path)  # lays out the same schema, then lets go of the file
    await file.open()
    await file.close()
    gc.collect()
    elapsed, size = await anyio.to_thread.run_sync(raw_insert, rows, path)
    return len(rows) / elapsed, size


# --------------------------------------------------------------------- main


#: Width of the label column.
LABEL = 44


#: The two ways ScheduleZero runs: as ``sz serve`` (startup heap settled), and
#: embedded in a program that does not settle it.
SERVED = "ScheduleZero, durable store, as sz serve"
EMBEDDED = "  embedded, startup heap not frozen"


def row(label: str, figures: str) -> None:
    say(f"    {label:<{LABEL}} {figures}")


async def create_delete_figures(n: int, backend: str, directory: Path) -> float:
    """Print the create/delete figures; return ScheduleZero's create rate."""
    say(f"  create then delete {n:,} schedules (interval, never due), one call each:")
    created, deleted = await best_of(directory, "sz", partial(sz_create_delete, n))
    ok = created >= TARGETS["create"] and deleted >= TARGETS["delete"]
    row(
        "ScheduleZero, durable store",
        f"create {created:>7,.0f}/s  delete {deleted:>7,.0f}/s"
        f"   target >= {TARGETS['create']:,.0f}/s each  {verdict(ok)}",
    )
    n_sql = n // SQLALCHEMY_SHARE
    for wal in (False, True):
        label = f"APScheduler, SQLAlchemy+aiosqlite, {'WAL' if wal else 'default'}"
        if backend != "asyncio":
            row(label, "n/a (refuses trio)")
            continue
        aps_created, aps_deleted = await best_of(
            directory, "aps", partial(sqlalchemy_create_delete, n_sql, wal)
        )
        row(
            label,
            f"create {aps_created:>7,.0f}/s  delete {aps_deleted:>7,.0f}/s"
            f"   ratio {created / aps_created:4.1f}, {deleted / aps_deleted:4.1f}"
            f"   ({n_sql:,} schedules: {n:,} take minutes)",
        )
    return created


async def lateness_figures(n: int, seconds: int, directory: Path) -> None:
    for spread in (False, True):
        how = "spread over the second" if spread else "aligned on the second"
        target = TARGETS["spread_p99_ms" if spread else "aligned_p99_ms"]
        say(f"  fire lateness, {n:,} schedules every 1 s for {seconds} s, {how}:")
        ours = await sz_lateness(n, seconds, spread, fresh(directory, "late"))
        embedded = await sz_lateness(
            n, seconds, spread, fresh(directory, "late"), settled=False
        )
        alone = await aps_lateness(n, seconds, spread, None)
        row(
            f"{SERVED}",
            f"{ours.line()}   target p99 <= {target:.0f} ms"
            f"  {verdict(ours.p99 * 1000 <= target)}",
        )
        row(EMBEDDED, embedded.line())
        row("APScheduler alone, max_running_jobs=None", alone.line())


async def burst_figures(n: int, add_rate: float, directory: Path) -> None:
    say(f"  fire throughput, one burst of {n:,} schedules due at one instant:")
    bursts = await valid_bursts(
        lambda: sz_burst(n, fresh(directory, "burst"), add_rate)
    )
    best = best_burst(bursts)
    row(
        SERVED,
        f"{best.line()}   target >= {TARGETS['burst']:,.0f}"
        f"  {verdict(best.rate >= TARGETS['burst'])}",
    )
    accounted = min(burst.final or 0 for burst in bursts)
    row(
        "",
        f"history: {accounted:,} final rows for {n:,} fires (the fewest of"
        f" {len(bursts)} runs)  {verdict(accounted == n)}",
    )
    embedded = best_burst(
        await valid_bursts(
            lambda: sz_burst(n, fresh(directory, "burst"), add_rate, settled=False)
        )
    )
    row(EMBEDDED, embedded.line())
    alone = best_burst(await valid_bursts(lambda: aps_burst(n)))
    row("APScheduler alone, memory store", alone.line())


async def history_figures(n: int, directory: Path) -> None:
    rows = attempts(n)
    say(f"  history writes, {n:,} final rows, first tell to last commit:")
    ours = [await history_rate(rows, fresh(directory, "hist")) for _ in range(REPEAT)]
    raw = [await raw_history_rate(rows, fresh(directory, "raw")) for _ in range(REPEAT)]
    rate, size = max(ours)
    raw_rate, raw_size = max(raw)
    ok = rate >= TARGETS["history"]
    row(
        "ScheduleZero, history actor, FileHistory",
        f"{rate:>8,.0f} rows/s   ratio {rate / raw_rate:4.2f}"
        f"   target >= {TARGETS['history']:,.0f}  {verdict(ok)}",
    )
    row("raw sqlite3, executemany, one transaction", f"{raw_rate:>8,.0f} rows/s")
    say(
        f"  size on disk per 1,000,000 history rows (file and WAL after a checkpoint,"
        f" from {n:,}):"
    )
    row("ScheduleZero", f"{size / n:>8,.0f} MB")
    row("raw sqlite3, same schema", f"{raw_size / n:>8,.0f} MB")


async def run_backend(quick: bool, backend: str, directory: Path) -> None:
    scale = 10 if quick else 1
    add_rate = await create_delete_figures(10_000 // scale, backend, directory)
    n, seconds = (100, 3) if quick else (1_000, 10)
    await lateness_figures(n, seconds, directory)
    await burst_figures(10_000 // scale, add_rate, directory)
    await history_figures(200_000 // scale, directory)


def main() -> None:
    parser = arguments(
        __doc__, "a tenth of everything (lateness: 100 schedules for 3 s)"
    )
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the durable store measured (postgresql: on a throwaway server the "
        "benchmark starts; benchmarks.store_postgres)",
    )
    options = parser.parse_args()
    if options.store == "postgresql":
        from benchmarks.store_postgres import main as postgres_main

        postgres_main(options)
        return
    with tempfile.TemporaryDirectory(prefix="sz-bench-") as directory:
        each_backend(
            options,
            lambda backend: run_backend(options.quick, backend, Path(directory)),
        )


if __name__ == "__main__":
    main()
