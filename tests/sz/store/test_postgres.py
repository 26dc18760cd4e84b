"""The PostgreSQL store's own behaviour: its layout, a lost connection, a bad URL.

What it shares with the SQLite store (the DataStore contract, history, crashes
and restarts) runs in those tests; here is what only a server brings. Each test
has a database of its own on the session's throwaway server (``conftest.py``),
or, where the server itself is stopped, a throwaway server of its own. Nothing
sleeps: waits are for events, or conditions polled under a deadline.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import psycopg
import pytest

from actors.testing import wait_until
from sz import ScheduleZero
from sz.errors import StoreError
from sz.store import postgres
from sz.store.pgserver import NoServer, PgServer, throwaway_server
from sz.store.postgres import SCHEMA_VERSION, PostgresDatabase

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.postgresql

#: Seconds any one wait may take before the test fails (far above what it needs).
PATIENCE = 20.0

T = TypeVar("T")


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one statement, from a connection of the test's own (blocking)."""
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


async def rows_of(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return await anyio.to_thread.run_sync(partial(query, url, sql, *params))


def columns(url: str, table: str) -> set[str]:
    return {
        name
        for (name,) in query(
            url,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'sz' AND table_name = %s",
            table,
        )
    }


# ------------------------------------------------------------------ the layout


async def test_the_layout_is_made_on_first_open_and_reopened_as_it_is(
    pg_url: str,
) -> None:
    sz = ScheduleZero(store=pg_url)
    sz.handler(lambda: 1, name="one")
    async with sz:
        await sz.schedule("one", "interval", hours=1, id="hourly")
    made = await rows_of(pg_url, "SELECT name, value FROM sz.meta ORDER BY name")
    assert made == [("application", "schedulezero"), ("layout", str(SCHEMA_VERSION))]
    tables = {
        name
        for (name,) in await rows_of(
            pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'sz'"
        )
    }
    assert tables == {
        "meta",
        "tasks",
        "schedules",
        "jobs",
        "fired",
        "history",
        "nodes",
        "writers",
        "scenario_runs",
        "scenario_metrics",
    }
    # What several nodes need: a scheduler on PostgreSQL is one of them.
    jobs = await anyio.to_thread.run_sync(columns, pg_url, "jobs")
    assert {"fire_time", "node"} <= jobs
    schedules = await anyio.to_thread.run_sync(columns, pg_url, "schedules")
    assert {"lease_node", "lease_until"} <= schedules
    unique = await rows_of(
        pg_url,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'jobs_one_per_fire'",
    )
    assert unique == [("UNIQUE (schedule_id, fire_time)",)]
    # Its row stays (an epoch only grows), its lease ended by the clean stop.
    left = await rows_of(pg_url, "SELECT epoch, lease_until <= now() FROM sz.nodes")
    assert left == [(1, True)]
    # A closed store leaves no row of its own in writers.
    assert await rows_of(pg_url, "SELECT * FROM sz.writers") == []

    again = ScheduleZero(store=pg_url)
    again.handler(lambda: 1, name="one")
    async with again:
        assert [s.id for s in await again.schedules()] == ["hourly"]
    assert await rows_of(pg_url, "SELECT value FROM sz.meta WHERE name = 'layout'") == [
        (str(SCHEMA_VERSION),)
    ]


async def test_stores_opening_a_new_database_at_once_make_one_layout_and_one_opens(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four at once: one layout is made, one store opens, three are refused.

    One ScheduleZero per store, as one per SQLite file (two would fire every
    schedule twice); the others wait ``LOCK_WAIT`` for it, then say so.
    """
    monkeypatch.setattr(postgres, "LOCK_WAIT", 0.2)
    stores = [PostgresDatabase(pg_url) for _ in range(4)]
    refusals: list[str] = []

    async def open_one(store: PostgresDatabase) -> None:
        try:
            await store.open()
        except StoreError as exc:
            refusals.append(str(exc))

    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(open_one, store)
    for store in stores:
        await store.close()
    layouts = await rows_of(pg_url, "SELECT value FROM sz.meta WHERE name = 'layout'")
    assert layouts == [(str(SCHEMA_VERSION),)]
    refused = (
        f"{pg_url}: another ScheduleZero is using this store (schema 'sz'); "
        f"stop it, or give this one a schema of its own (?schema=NAME in the URL)"
    )
    assert refusals == [refused] * 3
    # Closed, the one that opened lets go: the next start opens.
    again = PostgresDatabase(pg_url)
    await again.open()
    await again.close()


async def test_a_schema_of_a_newer_layout_is_refused_and_left_untouched(
    pg_url: str,
) -> None:
    store = PostgresDatabase(pg_url)
    await store.open()
    await store.close()
    newer = str(SCHEMA_VERSION + 1)
    await rows_of(pg_url, "UPDATE sz.meta SET value = %s WHERE name = 'layout'", newer)
    sz = ScheduleZero(store=pg_url)
    with pytest.raises(StoreError) as refused:
        await sz.start()
    await sz.stop()
    assert str(refused.value).startswith(f"{pg_url}: written by a newer")
    assert await rows_of(pg_url, "SELECT value FROM sz.meta WHERE name = 'layout'") == [
        (newer,)
    ]


async def test_a_schema_holding_another_programs_tables_is_refused(
    pg_url: str,
) -> None:
    await rows_of(pg_url, "CREATE SCHEMA theirs")
    await rows_of(pg_url, "CREATE TABLE theirs.jobs (x int)")
    sz = ScheduleZero(store=pg_url + "?schema=theirs")
    with pytest.raises(StoreError) as refused:
        await sz.start()
    await sz.stop()
    assert "schema 'theirs' holds another program's tables" in str(refused.value)
    # Another schema of the same database is a store of its own.
    mine = ScheduleZero(store=pg_url + "?schema=mine")
    mine.handler(lambda: 2, name="two")
    async with mine:
        assert await mine.run_now("two") == 2
    assert await rows_of(pg_url, "SELECT count(*) FROM mine.history") == [(1,)]


# ------------------------------------------------------------------- bad URLs


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_an_unreachable_server_is_a_store_error_naming_the_url_without_password(
    scheme: str,
) -> None:
    # A port nobody listens on: asked for, then let go.
    with _free_port() as port:
        url = f"{scheme}://sz:hunter2@127.0.0.1:{port}/nowhere"
    sz = ScheduleZero(store=url)
    with pytest.raises(StoreError) as refused:
        await sz.start()
    await sz.stop()
    message = str(refused.value)
    assert message.startswith(f"{scheme}://sz:***@127.0.0.1:{port}/nowhere: "), message
    assert "cannot connect to PostgreSQL" in message
    assert "hunter2" not in message


async def test_sz_serve_on_an_unreachable_server_exits_two_naming_the_url(
    tmp_path: Any,
) -> None:
    with _free_port() as port:
        url = f"postgresql://sz:hunter2@127.0.0.1:{port}/nowhere"
    result = await anyio.run_process(
        [
            __import__("sys").executable,
            "-c",
            "from sz.cli import main; main()",
            "serve",
            "--store",
            url,
        ],
        cwd=tmp_path,
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert f"postgresql://sz:***@127.0.0.1:{port}/nowhere: cannot connect" in stderr
    assert "hunter2" not in stderr
    assert "Traceback" not in stderr


class _free_port:
    """A port of 127.0.0.1 that nothing listens on once the block is left."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        port: int = self._socket.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


# ------------------------------------------------------ a connection lost


async def test_connections_terminated_mid_run_lose_and_double_no_row(
    pg_url: str,
) -> None:
    """``pg_terminate_backend`` on the store's connection while jobs stream in.

    The store connects again and retries the batch (or finds it committed, by
    its counter in ``writers``): every job ends with one final row, none is
    left accepted, none is recorded twice, and every caller gets its answer.
    """
    jobs, callers, cuts = 600, 6, 5
    sz = ScheduleZero(store=pg_url)
    done = 0
    reached = [anyio.Event() for _ in range(cuts)]

    @sz.handler(name="work", concurrency=8)
    async def work(i: int) -> int:
        nonlocal done
        done += 1
        for n, event in enumerate(reached):
            if done == (n + 1) * jobs // (cuts + 1):
                event.set()
        await anyio.lowlevel.checkpoint()
        return i

    terminated: list[int] = []
    ended: list[int] = []

    async def cut() -> bool:
        # Not a backend ended before: a cut that lags behind its event can come
        # right after the one before, while the store connects again; it waits
        # for the new connection and ends that.
        ((count, pids),) = await rows_of(
            pg_url,
            "SELECT count(pg_terminate_backend(pid)), array_agg(pid) "
            "FROM pg_stat_activity WHERE application_name LIKE 'schedulezero/%%' "
            "AND datname = current_database() AND pid <> ALL(%s)",
            ended,
        )
        if count:
            terminated.append(count)
            ended.extend(pids)
        return bool(count)

    async def cutter() -> None:
        for event in reached:
            await event.wait()
            await wait_until(cut, timeout=PATIENCE, interval=0.05)

    results: list[int] = []

    async def caller(first: int) -> None:
        for i in range(first, jobs, callers):
            result = await sz.run_now("work", args=[i], timeout=PATIENCE)
            results.append(result)

    async with sz:
        with anyio.fail_after(PATIENCE * 2):
            async with anyio.create_task_group() as tg:
                tg.start_soon(cutter)
                for first in range(callers):
                    tg.start_soon(caller, first)

        async def all_final() -> bool:
            rows = await sz.history(final=True, limit=10 * jobs)
            return len(rows) >= jobs

        await wait_until(all_final, timeout=PATIENCE)
    assert sorted(results) == list(range(jobs))
    assert terminated == [1] * cuts, "each cut must hit the store's connection"
    finals = Counter(
        job_id
        for (job_id,) in await rows_of(
            pg_url, "SELECT job_id FROM sz.history WHERE final"
        )
    )
    assert len(finals) == jobs
    assert set(finals.values()) == {1}
    assert await rows_of(pg_url, "SELECT count(*) FROM sz.history") == [(jobs,)]
    assert await rows_of(pg_url, "SELECT count(*) FROM sz.jobs") == [(0,)]


def ends_its_session(times: int, then: Callable[[Any], T]) -> Callable[[Any], T]:
    """Work that ends its own backend the first ``times`` it runs, then does ``then``.

    A connection lost under the store as ``pg_terminate_backend`` does it, at a
    moment of the test's choosing: inside the batch, and again on each new
    connection the store makes for it.
    """
    left = [times]

    def work(connection: Any) -> T:
        if left[0]:
            left[0] -= 1
            connection.raw.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            # The backend ends at its next look at its signals: this statement
            # fails if the one before did not.
            connection.raw.execute("SELECT 1")
        return then(connection)

    return work


def _insert_one(connection: Any) -> None:
    connection.execute("INSERT INTO probe VALUES (?)", (1,))


async def test_a_write_waited_on_survives_its_connection_lost_twice_in_a_row(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch's connection is lost, then the new one made for it too.

    The server answers all along: the store connects again each time, its
    waiter hears of the commit (never of the loss), and the row lands once.
    """
    caplog.set_level(logging.WARNING, logger="sz.store")
    store = PostgresDatabase(pg_url)
    await store.open()
    try:
        await store.read(lambda c: c.raw.execute("CREATE TABLE probe (n integer)"))
        committed = anyio.Event()
        errors: list[BaseException] = []
        store.write(
            ends_its_session(2, _insert_one), committed.set, failed=errors.append
        )
        with anyio.fail_after(PATIENCE):
            await store.flush()
        assert errors == []
        assert committed.is_set()
    finally:
        await store.close()
    assert await rows_of(pg_url, "SELECT n FROM sz.probe") == [(1,)]
    assert "connected again" in caplog.text


async def test_a_read_survives_its_connection_lost_twice_in_a_row(pg_url: str) -> None:
    store = PostgresDatabase(pg_url)
    await store.open()
    try:
        with anyio.fail_after(PATIENCE):
            found = await store.read(
                ends_its_session(2, lambda c: c.raw.execute("SELECT 42").fetchone())
            )
    finally:
        await store.close()
    assert found == (42,)


async def test_a_write_that_ends_every_session_fails_to_its_waiter_in_the_end(
    pg_url: str,
) -> None:
    """Not retried for ever: after ``RECONNECTS`` new connections its waiter
    hears why, and the store goes on writing."""
    store = PostgresDatabase(pg_url)
    await store.open()
    try:
        await store.read(lambda c: c.raw.execute("CREATE TABLE probe (n integer)"))
        failed = anyio.Event()
        errors: list[BaseException] = []

        def fail(error: BaseException) -> None:
            errors.append(error)
            failed.set()

        store.write(ends_its_session(1_000, _insert_one), failed=fail)
        with anyio.fail_after(PATIENCE):
            await failed.wait()
        assert len(errors) == 1
        assert isinstance(errors[0], StoreError)
        assert str(errors[0]).startswith(f"{store.where}: "), errors[0]
        committed = anyio.Event()
        store.write(_insert_one, committed.set)
        with anyio.fail_after(PATIENCE):
            await store.flush()
        assert committed.is_set()
    finally:
        await store.close()
    assert await rows_of(pg_url, "SELECT n FROM sz.probe") == [(1,)]


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A throwaway server of the test's own: the test stops and starts it."""
    try:
        with throwaway_server() as server:
            yield server
    except NoServer as exc:
        pytest.skip(str(exc))


async def test_while_the_server_is_down_calls_fail_naming_it_and_rows_land_after(
    own_server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The server stops while a job runs, and comes back.

    Meanwhile ``run_now`` fails at once with a ``StoreError`` naming the
    database, the schedule loop goes on (its failed reads logged), and the
    running job's final row is kept and retried: once the server is back it
    lands, once, and the job is no longer accepted.
    """
    caplog.set_level(logging.WARNING, logger="sz.store")
    url = await anyio.to_thread.run_sync(own_server.create_database)
    sz = ScheduleZero(store=url)
    gate, called = anyio.Event(), anyio.Event()

    @sz.handler(name="block")
    async def block(n: int) -> int:
        called.set()
        await gate.wait()
        return n

    sz.handler(lambda n: n, name="echo")
    async with sz, anyio.create_task_group() as tg:
        handle = await sz.submit("block", args=[7])
        with anyio.fail_after(PATIENCE):
            await called.wait()
        await anyio.to_thread.run_sync(own_server.stop)
        gate.set()
        with anyio.fail_after(PATIENCE):
            assert await handle.result() == 7

        with pytest.raises(StoreError) as refused:
            await sz.run_now("echo", args=[1], timeout=PATIENCE)
        assert str(refused.value).startswith(f"{url}: "), refused.value
        assert "the connection to PostgreSQL is lost" in caplog.text
        # The schedule loop's reads fail too (it reads every POLL): it says
        # so and goes on looking, rather than ending the scheduler.
        await wait_until(
            lambda: "the schedule loop cannot read the store" in caplog.text,
            timeout=PATIENCE,
        )

        await anyio.to_thread.run_sync(own_server.resume)

        async def landed() -> bool:
            try:
                rows = await sz.history(job_id=handle.id)
            except StoreError:
                return False
            return any(row.final for row in rows)

        await wait_until(landed, timeout=PATIENCE)
        assert await sz.run_now("echo", args=[2], timeout=PATIENCE) == 2
        await wait_until(
            lambda: "the schedule loop reads the store again" in caplog.text,
            timeout=PATIENCE,
        )
        tg.cancel_scope.cancel()
    finals = await rows_of(
        url, "SELECT outcome FROM sz.history WHERE job_id = %s AND final", handle.id
    )
    assert finals == [("success",)]
    assert await rows_of(url, "SELECT count(*) FROM sz.jobs") == [(0,)]
    assert "connected again" in caplog.text


async def test_a_database_of_the_layout_before_gets_the_index_of_last_runs(
    pg_url: str,
) -> None:
    store = PostgresDatabase(pg_url)
    await store.open()
    await store.close()
    await rows_of(pg_url, "DROP INDEX sz.history_by_schedule")
    # The layout before the index (the index is its last step).
    before = str(SCHEMA_VERSION - 1)
    await rows_of(pg_url, "UPDATE sz.meta SET value = %s WHERE name = 'layout'", before)
    store = PostgresDatabase(pg_url)
    await store.open()
    await store.close()
    assert await rows_of(pg_url, "SELECT value FROM sz.meta WHERE name = 'layout'") == [
        (str(SCHEMA_VERSION),)
    ]
    [(definition,)] = await rows_of(
        pg_url,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'sz' "
        "AND indexname = 'history_by_schedule'",
    )
    assert "(schedule_id, finished_at) WHERE (final AND (schedule_id IS NOT NULL))" in (
        definition
    )
