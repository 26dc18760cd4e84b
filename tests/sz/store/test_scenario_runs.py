"""Scenario runs kept in the store: across restarts, cut off, listed, pruned, migrated.

Every store a user can pick: memory, a real SQLite file under ``tmp_path``, and
a PostgreSQL database of the test's own on the session's throwaway server
(``conftest.py``). Runs are real runs of a small scenario through
``sz.scenarios``, or rows written through the store's own interface where a
test needs many or needs one cut off; nothing waits by sleeping.
"""

from __future__ import annotations

import sqlite3
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest

from sz import ScheduleZero
from sz.store.location import database_for
from sz.store.scenario_runs import (
    ABANDONED,
    FileScenarioRuns,
    MemoryScenarioRuns,
    ScenarioRunStore,
    StoredRun,
)
from sz.store.sqlite import SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from sz.scenarios import RunState
    from sz.store import Database

DEADLINE = 30.0

SMALL = """\
test:
  name: small
  parameters: {jobs: 5}
  setup: {handlers: [noop]}
  steps:
    - name: load
      type: action
      action: {method: submit_jobs, args: {task: noop, count: "${jobs}"}}
    - {name: settle, type: wait_until, condition: jobs_pending == 0, timeout: 10s}
  checks: [no_lost_jobs]
  metrics: [jobs_per_sec, {memory_usage: MB}, lost_jobs]
  assertions: [lost_jobs == 0]
"""

MEMORY = "memory"
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
ON_POSTGRESQL = pytest.param(POSTGRESQL, marks=pytest.mark.postgresql)


@pytest.fixture
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A durable store's URL: a SQLite file, or a PostgreSQL database."""
    if request.param == POSTGRESQL:
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite:///{tmp_path / 'sz.db'}"


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Any store's URL: memory, a SQLite file, or a PostgreSQL database."""
    if request.param == MEMORY:
        return MEMORY
    if request.param == POSTGRESQL:
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite:///{tmp_path / 'sz.db'}"


DURABLE = pytest.mark.parametrize("durable", [SQLITE, ON_POSTGRESQL], indirect=True)
EVERY_STORE = pytest.mark.parametrize(
    "store", [MEMORY, SQLITE, ON_POSTGRESQL], indirect=True
)


async def finished_run(sz: ScheduleZero, **params: object) -> RunState:
    """A run of ``SMALL`` through ``sz.scenarios``, once it ended."""
    entry = await sz.scenarios.load(SMALL)
    run = await sz.scenarios.start(entry.id, params or None, seed=7)
    with anyio.fail_after(DEADLINE):
        await run.done.wait()
    return run


def stored(n: int, scenario: str = "a", **more: Any) -> StoredRun:
    """Run ``n`` of ``scenario``, started ``n`` seconds after a fixed moment."""
    started = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    return StoredRun(
        run_id=f"run-{n:03d}",
        scenario_id=f"{scenario}-id",
        name=scenario,
        seed=n,
        parameters={"n": n},
        started_at=started,
        units={"memory_usage": "MB"},
        **more,
    )


def ended(run: StoredRun, value: float) -> StoredRun:
    return StoredRun(
        run_id=run.run_id,
        scenario_id=run.scenario_id,
        name=run.name,
        seed=run.seed,
        parameters=run.parameters,
        started_at=run.started_at,
        finished_at=run.started_at + timedelta(seconds=1),
        outcome="passed",
        passed=True,
        units=run.units,
        metrics={"jobs_per_sec": value, "memory_usage": 1e8},
        result={"name": run.name, "value": value},
    )


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    file = database_for(url)
    assert file is not None
    await file.open()
    try:
        yield file
    finally:
        await file.close()


# ------------------------------------------------------- across a restart


@DURABLE
async def test_a_runs_result_survives_closing_and_reopening_the_scheduler(
    durable: str,
) -> None:
    first = ScheduleZero(store=durable)
    async with first:
        run = await finished_run(first)
        assert run.state == "passed", run.error
        assert run.result is not None
        exported = run.result.to_json()
        csv_text = run.result.to_csv()
        summary = run.summary_json()

    again = ScheduleZero(store=durable)
    async with again:
        found = await again.scenarios.run(run.run_id)
        listed = await again.scenarios.runs()
    assert found is not None
    assert found.state == "passed"
    assert found.result is not None
    assert found.result.to_json() == exported
    # Its samples too: the CSV export and the dashboard's charts of a past run.
    assert found.result.to_csv() == csv_text
    assert len(csv_text.splitlines()) > 1
    shown = found.to_json()
    assert shown["state"] == shown["outcome"] == "passed"
    assert shown["units"] == {"memory_usage": "MB"}
    assert shown["timeline"][-1]["event"] == "run_end"
    # Listed as it was, with one number per metric for trends.
    assert [r.run_id for r in listed] == [run.run_id]
    again_summary = listed[0].summary_json()
    assert again_summary == summary
    assert set(summary["metrics"]) == {"jobs_per_sec", "memory_usage", "lost_jobs"}
    assert summary["metrics"]["lost_jobs"] == 0.0
    assert (
        summary["metrics"]["memory_usage"]
        == (exported["metrics"]["memory_usage"]["p99"])
    )
    assert summary["outcome"] == "passed"
    assert summary["units"] == {"memory_usage": "MB"}


@DURABLE
async def test_a_run_cut_off_by_the_end_of_its_process_comes_back_aborted(
    durable: str,
) -> None:
    # What a process killed in the middle of a run leaves: the run's first
    # write ("running"), and never its end.
    async with opened(durable) as file:
        runs = FileScenarioRuns(file)
        await runs.started(stored(1))
        await runs.flush()

    before = datetime.now(UTC)
    sz = ScheduleZero(store=durable)
    async with sz:
        found = await sz.scenarios.run("run-001")
        (listed,) = await sz.scenarios.runs()
    assert found is not None
    assert (found.state, found.error) == ("aborted", ABANDONED)
    assert found.finished_at is not None
    assert found.finished_at >= before
    shown = found.to_json()
    assert shown["outcome"] == "aborted"
    assert shown["passed"] is False
    assert shown["error"] == "the process ended during the run"
    assert shown["timeline"] == []
    assert listed.summary_json()["outcome"] == "aborted"
    assert listed.summary_json()["passed"] is False

    # Once marked, it stays so: the next start has nothing to mark.
    async with opened(durable) as file:
        assert await FileScenarioRuns(file).abandon(datetime.now(UTC)) == 0


@EVERY_STORE
async def test_runs_of_this_process_and_the_stores_are_listed_newest_first(
    store: str,
) -> None:
    sz = ScheduleZero(store=store)
    async with sz:
        one = await finished_run(sz, jobs=2)
        two = await finished_run(sz, jobs=3)
        # Read back from the store, not memory.
        kept = await sz._scenario_runs.runs()
        listed = await sz.scenarios.runs(scenario="small", limit=1)
        none = await sz.scenarios.runs(scenario="other")
    assert [run.run_id for run in kept] == [two.run_id, one.run_id]
    assert all(run.result is None for run in kept)  # lists leave results out
    assert [run.run_id for run in listed] == [two.run_id]
    assert none == []


# ------------------------------------------------------ filters and retention


@EVERY_STORE
async def test_runs_are_filtered_by_scenario_id_or_name_and_limited(
    store: str,
) -> None:
    async def check(runs: ScenarioRunStore) -> None:
        for n in range(6):
            run = stored(n, "a" if n % 2 else "b")
            await runs.started(run)
            runs.ended(ended(run, float(n)))
        await runs.started(stored(6, "a"))  # still running
        await runs.flush()
        of_a = await runs.runs("a", limit=10)
        assert [run.run_id for run in of_a] == [
            "run-006",
            "run-005",
            "run-003",
            "run-001",
        ]
        assert of_a[0].outcome is None
        assert of_a[1].metrics == {"jobs_per_sec": 5.0, "memory_usage": 1e8}
        assert of_a[1].units == {"memory_usage": "MB"}
        assert of_a[1].parameters == {"n": 5}
        assert of_a[1].result is None
        by_id = await runs.runs("b-id", limit=2)
        assert [run.run_id for run in by_id] == ["run-004", "run-002"]
        assert len(await runs.runs(limit=100)) == 7
        assert await runs.runs("c") == []
        whole = await runs.get("run-005")
        assert whole is not None
        assert whole.result == {"name": "a", "value": 5.0}
        assert whole.passed is True
        assert await runs.get("nope") is None

    if store == MEMORY:
        await check(MemoryScenarioRuns())
        return
    async with opened(store) as file:
        await check(FileScenarioRuns(file))


@EVERY_STORE
async def test_the_store_keeps_the_newest_runs_and_prunes_the_rest_as_runs_end(
    store: str,
) -> None:
    async def check(runs: ScenarioRunStore, file: Database | None) -> None:
        for n in range(8):
            run = stored(n)
            await runs.started(run)
            runs.ended(ended(run, float(n)))
        await runs.flush()
        kept = await runs.runs(limit=100)
        assert [run.run_id for run in kept] == ["run-007", "run-006", "run-005"]
        assert await runs.get("run-004") is None
        if file is not None:
            # Their metrics went with them.
            metrics = await file.read(
                lambda c: c.execute(
                    "SELECT DISTINCT run_id FROM scenario_metrics ORDER BY run_id"
                ).fetchall()
            )
            assert [row[0] for row in metrics] == ["run-005", "run-006", "run-007"]

    if store == MEMORY:
        await check(MemoryScenarioRuns(kept=3), None)
        return
    async with opened(store) as file:
        await check(FileScenarioRuns(file, kept=3), file)


async def test_the_service_refuses_a_limit_out_of_range() -> None:
    sz = ScheduleZero()
    async with sz:
        for limit in (0, 1001, True):
            with pytest.raises(ValueError, match="limit must be from 1 to 1,000"):
                await sz.scenarios.runs(limit=limit)


# -------------------------------------------------------------- the layouts


def make_layout_4(path: Path) -> None:
    """The file as layout 4 left it: layout 5 without the scenario tables."""
    connection = sqlite3.connect(path)
    try:
        connection.executescript(
            "DROP TABLE scenario_runs; DROP TABLE scenario_metrics; "
            "PRAGMA user_version=4;"
        )
    finally:
        connection.close()


def layout_of(path: Path) -> tuple[int, set[str]]:
    connection = sqlite3.connect(path)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        return version, tables
    finally:
        connection.close()


async def test_a_layout_4_file_gains_the_scenario_tables_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    sz = ScheduleZero(store=f"sqlite:///{path}")
    sz.handler(lambda: 1, name="one")
    async with sz:
        await sz.schedule("one", "interval", hours=1, id="hourly")
        await sz.run_now("one")
    await anyio.to_thread.run_sync(make_layout_4, path)
    assert (await anyio.to_thread.run_sync(layout_of, path))[0] == 4

    again = ScheduleZero(store=f"sqlite:///{path}")
    again.handler(lambda: 1, name="one")
    async with again:
        assert [s.id for s in await again.schedules()] == ["hourly"]
        rows = await again.history()
        assert [row.task for row in rows if row.schedule_id is None] == ["one"]
        run = await finished_run(again)
    version, tables = await anyio.to_thread.run_sync(layout_of, path)
    assert version == SCHEMA_VERSION == 6
    assert {"scenario_runs", "scenario_metrics", "history", "schedules"} <= tables

    async with ScheduleZero(store=f"sqlite:///{path}") as third:
        found = await third.scenarios.run(run.run_id)
    assert found is not None
    assert found.state == "passed"


def make_pg_layout_1(url: str) -> None:
    """The schema as layout 1 left it: layout 2 without fence and scenario tables."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP TABLE sz.scenario_runs, sz.scenario_metrics")
        connection.execute("DROP FUNCTION sz.fence(text, bigint)")
        connection.execute("DROP INDEX sz.jobs_by_node")
        connection.execute("UPDATE sz.meta SET value = '1' WHERE name = 'layout'")


def pg_layout_of(url: str) -> tuple[str, set[str]]:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT value FROM sz.meta WHERE name = 'layout'"
        ).fetchone()
        assert row is not None
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'sz'"
            )
        }
        return row[0], tables


@pytest.mark.postgresql
async def test_a_layout_1_postgresql_schema_gains_the_fence_and_scenario_tables(
    pg_url: str,
) -> None:
    from sz.store.postgres import SCHEMA_VERSION as PG_LAYOUT

    sz = ScheduleZero(store=pg_url)
    sz.handler(lambda: 1, name="one")
    async with sz:
        await sz.schedule("one", "interval", hours=1, id="hourly")
        await sz.run_now("one")
    await anyio.to_thread.run_sync(make_pg_layout_1, pg_url)

    again = ScheduleZero(store=pg_url)
    again.handler(lambda: 1, name="one")
    async with again:
        assert [s.id for s in await again.schedules()] == ["hourly"]
        rows = await again.history()
        assert [row.task for row in rows if row.schedule_id is None] == ["one"]
        run = await finished_run(again)
    layout, tables = await anyio.to_thread.run_sync(pg_layout_of, pg_url)
    assert layout == str(PG_LAYOUT) == "3"
    assert {"scenario_runs", "scenario_metrics", "history"} <= tables
    async with ScheduleZero(store=pg_url) as third:
        found = await third.scenarios.run(run.run_id)
    assert found is not None
    assert found.state == "passed"
