"""Reading a store file from another process never changes it: ``sz history
--store`` and ``sz schedules --store``, while ``sz serve`` runs on the file, after
it was killed, and after it stopped; a missing file, another layout, --url too.

Every ``sz serve`` and every reading command is a real process on a real file.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from sz import JobFailed, ScheduleZero
from sz.store.sqlite import SCHEMA_VERSION
from sz.storeview import history_cursor, read_history, read_schedules, row_after
from web.api import _cursor
from web.json import attempt_data, schedule_data

from .test_store_recovery import ENV, PATIENCE, SZ, poll, serving, url

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

CONFIG = """\
handlers:
  builtin:
    - module: sz.builtin
      methods: [sleep, echo]
store:
  url: "sqlite:///jobs.db"
web:
  enabled: false
"""


async def sz_command(cwd: Path, *argv: str) -> tuple[int, str, str]:
    """Run ``sz ARGV`` in ``cwd``: its exit code, stdout and stderr."""
    with anyio.fail_after(PATIENCE):
        result = await anyio.run_process([*SZ, *argv], cwd=cwd, env=ENV, check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` and its bytes."""
    return {
        path.name: await path.read_bytes()
        async for path in anyio.Path(folder).iterdir()
        if await path.is_file()
    }


def counts(path: Path) -> tuple[int, int, int]:
    """Accepted jobs of the slow schedule, history rows, ``abandoned`` rows."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        (jobs,) = connection.execute(
            "SELECT count(*) FROM jobs WHERE schedule_id = 'slow'"
        ).fetchone()
        (rows,) = connection.execute("SELECT count(*) FROM history").fetchone()
        (abandoned,) = connection.execute(
            "SELECT count(*) FROM history WHERE outcome = 'abandoned'"
        ).fetchone()
    finally:
        connection.close()
    return jobs, rows, abandoned


async def test_sz_history_reads_a_store_while_sz_serve_runs_and_after_a_kill_changes_nothing(  # noqa: E501
    tmp_path: Path, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    db, config = tmp_path / "jobs.db", tmp_path / "config.yaml"
    await anyio.Path(config).write_text(CONFIG)
    # One job that stays in flight (accepted, unfinished) and jobs that end.
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    sz = ScheduleZero(store=url(db))

    @sz.handler(name="sleep")
    async def sleep(seconds: float) -> None:
        """Never called here: the server below runs it."""

    @sz.handler(name="echo")
    async def echo(*args: Any) -> None:
        """Never called here."""

    async with sz:
        await sz.schedule(
            "sleep", "date", run_time=due, args={"seconds": 600}, id="slow"
        )
        await sz.schedule(
            "echo",
            "interval",
            seconds=0.1,
            start_time=due,
            args=["tick"],
            id="ticks",
        )
    assert datetime.now(UTC) < due, "too slow to add the schedule before it fired"

    async with serving(
        tmp_path, "-c", str(config), "--backend", anyio_backend[0]
    ) as serve:
        await serve.wait_for_line("actor tree")
        await poll(
            db,
            lambda now: bool(now.jobs) and len(now.history) >= 3,
            "the slow job in flight and rows of ended jobs",
        )
        code, out, err = await sz_command(
            tmp_path, "history", "--store", "sqlite:///jobs.db", "--task", "echo"
        )
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0].split()[:3] == ["FINISHED", "JOB", "TASK"]
        assert len(lines) >= 4
        assert all(line.split()[2] == "echo" for line in lines[1:])
        code, out, err = await sz_command(
            tmp_path, "schedules", "--store", "sqlite:///jobs.db", "--json"
        )
        assert (code, err) == (0, "")
        shown = {s["id"]: s for s in json.loads(out)}
        assert set(shown) == {"slow", "ticks"}
        assert shown["ticks"]["args"] == ["tick"]
        # The reads took nothing up: the slow job is still the server's, and
        # nothing was abandoned.
        jobs, _, abandoned = await anyio.to_thread.run_sync(counts, db)
        assert (jobs, abandoned) == (1, 0)
        await serve.kill()

    # Killed: a job accepted and unfinished, a WAL not checkpointed. A scheduler
    # opening the file would take the job up and write an abandoned row; a
    # read changes no byte of the database or its WAL, and adds no file.
    before = await files(tmp_path)
    assert "jobs.db-wal" in before
    for argv in (["history", "--json"], ["schedules"], ["history", "--limit", "1"]):
        code, out, err = await sz_command(
            tmp_path, *argv, "--store", "sqlite:///jobs.db"
        )
        assert (code, err) == (0, ""), err
    after = await files(tmp_path)
    assert set(after) == set(before)
    for name in ("jobs.db", "jobs.db-wal"):
        assert after[name] == before[name], name
    jobs, rows, abandoned = await anyio.to_thread.run_sync(counts, db)
    assert (jobs, abandoned) == (1, 0)
    assert rows > 0


async def test_reading_a_store_that_was_closed_cleanly_adds_no_files(
    tmp_path: Path,
) -> None:
    db = tmp_path / "jobs.db"
    sz = ScheduleZero(store=url(db))

    @sz.handler
    async def echo(value: Any) -> Any:
        return value

    async with sz:
        await sz.schedule(
            "echo",
            "interval",
            minutes=5,
            start_time=datetime.now(UTC) + timedelta(hours=1),
            args=[1],
            id="five",
        )
        for n in range(3):
            await sz.run_now("echo", args=[n])
    before = await files(tmp_path)
    assert set(before) == {"jobs.db"}  # SQLite removed its -wal and -shm
    page = await read_history(url(db), limit=2)
    assert [row["outcome"] for row in page["rows"]] == ["success", "success"]
    assert page["next"] is not None
    rest = await read_history(url(db), limit=2, before=row_after(page["next"]))
    assert len(rest["rows"]) == 1
    assert rest["next"] is None
    assert [s["id"] for s in await read_schedules(url(db))] == ["five"]
    assert await files(tmp_path) == before


async def test_a_store_read_shows_what_the_gateway_shows(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    sz = ScheduleZero(store=url(db))

    @sz.handler
    async def echo(*args: Any, **kwargs: Any) -> Any:
        return args

    @sz.handler
    async def boom() -> None:
        raise RuntimeError("on purpose")

    async with sz:
        await sz.schedule(
            "echo",
            "interval",
            minutes=5,
            start_time=datetime.now(UTC),
            args=[{1, 2}, "x" * 10],
            kwargs={"when": datetime(2030, 1, 2, tzinfo=UTC)},
            id="odd",
            paused=True,
        )
        await sz.run_now("echo", args=[[1, 2], None])
        with pytest.raises(JobFailed):
            await sz.run_now("boom")
        rows = await sz.history(limit=100)
        schedules = await sz.schedules()
    page = await read_history(url(db), limit=100)
    assert page == {"rows": [attempt_data(row) for row in rows], "next": None}
    assert await read_schedules(url(db)) == [schedule_data(s) for s in schedules]
    assert history_cursor(rows[0]) == _cursor(rows[0])


async def test_a_missing_store_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    for command in ("history", "schedules"):
        code, out, err = await sz_command(
            tmp_path, command, "--store", "sqlite:///absent/jobs.db"
        )
        assert (code, out) == (1, "")
        assert err.strip() == (
            f"sz {command}: absent/jobs.db: no store there (reading never creates "
            "one); check the path"
        )
    assert not await anyio.Path(tmp_path / "absent").exists()


async def test_a_store_of_another_layout_is_refused_and_left_as_it_is(
    tmp_path: Path,
) -> None:
    db = tmp_path / "jobs.db"
    async with ScheduleZero(store=url(db)):
        pass

    def age(path: Path) -> None:
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA user_version=2")
        connection.commit()
        connection.close()

    await anyio.to_thread.run_sync(age, db)
    before = await files(tmp_path)
    code, _, err = await sz_command(tmp_path, "history", "--store", "sqlite:///jobs.db")
    assert code == 1
    assert err.strip() == (
        "sz history: jobs.db: a store of layout 2, this ScheduleZero reads layout "
        f"{SCHEMA_VERSION}; 'sz serve' of this version migrates it (reading never does)"
    )
    assert await files(tmp_path) == before


async def test_another_programs_database_is_not_read_as_a_store(
    tmp_path: Path,
) -> None:
    def make(path: Path) -> None:
        connection = sqlite3.connect(path)
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
        connection.close()

    await anyio.to_thread.run_sync(make, tmp_path / "other.db")
    code, _, err = await sz_command(
        tmp_path, "schedules", "--store", "sqlite:///other.db"
    )
    assert code == 1
    assert err.strip() == "sz schedules: other.db: not a ScheduleZero store"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        pytest.param(
            ["history", "--store", "sqlite:///jobs.db", "--url", "http://127.0.0.1:1"],
            "sz history: --store reads a store file, --url asks a running server: "
            "give one of them",
            id="store-and-url",
        ),
        pytest.param(
            ["schedules", "--url", "http://127.0.0.1:1", "--store", "sqlite:///a.db"],
            "sz schedules: --store reads a store file, --url asks a running server: "
            "give one of them",
            id="schedules-store-and-url",
        ),
        pytest.param(
            ["schedules", "--store", "sqlite:///jobs.db", "pause", "x"],
            "sz schedules: --store only reads: 'sz schedules pause' needs --url",
            id="schedules-change",
        ),
        pytest.param(
            ["history", "--store", "memory"],
            "argument --store: store url 'memory': a memory store lives in its "
            "process and cannot be read from another",
            id="memory",
        ),
        pytest.param(
            ["history", "--store", "sqlite:///jobs.db", "--cursor", "nope"],
            "sz history: --cursor: not a history cursor: 'nope'",
            id="bad-cursor",
        ),
        pytest.param(
            ["history", "--store", "sqlite:///jobs.db", "--limit", "0"],
            "argument --limit: expected a number from 1 to 1000, got '0'",
            id="limit",
        ),
    ],
)
async def test_store_arguments_that_cannot_work_exit_two_naming_them(
    tmp_path: Path, argv: list[str], says: str
) -> None:
    code, _, err = await sz_command(tmp_path, *argv)
    assert code == 2
    assert says in err
    assert "Traceback" not in err
    assert not await anyio.Path(tmp_path / "jobs.db").exists()


@pytest.mark.postgresql
async def test_sz_history_and_schedules_read_a_postgresql_store_while_nodes_run(
    tmp_path: Path, pg_url: str
) -> None:
    """Read-only on PostgreSQL: the reads make no node row and take nothing up.

    A node holds a job in flight; ``sz history --store`` and ``sz schedules
    --store`` (real processes) show the store while it runs, and afterwards the
    nodes, the writers and the accepted jobs are as they were.
    """
    started = anyio.Event()
    release = anyio.Event()
    sz = ScheduleZero(store=pg_url, node="only")

    @sz.handler(name="slow")
    async def slow() -> None:
        started.set()
        await release.wait()

    @sz.handler(name="echo")
    async def echo(text: str) -> str:
        return text

    def state() -> list[Any]:
        return [
            query(pg_url, "SELECT name, epoch FROM sz.nodes ORDER BY name"),
            query(pg_url, "SELECT count(*) FROM sz.writers"),
            query(pg_url, "SELECT id, node FROM sz.jobs ORDER BY id"),
            query(pg_url, "SELECT count(*) FROM sz.history"),
        ]

    async with sz:
        await sz.schedule(
            "echo",
            "interval",
            hours=1,
            start_time=datetime.now(UTC) + timedelta(hours=1),
            args=["hi"],
            id="hourly",
        )
        await sz.run_now("echo", args=["now"])
        await sz.submit("slow", job_id="in-flight")
        with anyio.fail_after(PATIENCE):
            await started.wait()
        await sz.history(limit=1)  # its rows are written
        before = await anyio.to_thread.run_sync(state)
        code, out, err = await sz_command(
            tmp_path, "history", "--store", pg_url, "--task", "echo", "--json"
        )
        assert (code, err) == (0, "")
        rows = json.loads(out)["rows"]
        assert [row["task"] for row in rows] == ["echo"]
        code, out, err = await sz_command(
            tmp_path, "schedules", "--store", pg_url, "--json"
        )
        assert (code, err) == (0, "")
        assert [s["id"] for s in json.loads(out)] == ["hourly"]
        shown = await read_schedules(pg_url)
        assert [s["id"] for s in shown] == ["hourly"]
        after = await anyio.to_thread.run_sync(state)
        assert after == before
        assert before[2] == [("in-flight", "only")]
        release.set()


@pytest.mark.postgresql
async def test_a_postgresql_database_without_a_store_is_refused_for_reading(
    tmp_path: Path, pg_url: str
) -> None:
    code, _, err = await sz_command(tmp_path, "history", "--store", pg_url)
    assert code != 0
    assert "no ScheduleZero store in schema 'sz'" in err
    assert "Traceback" not in err
    made = await anyio.to_thread.run_sync(
        query, pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'sz'"
    )
    assert made == [(0,)]


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(sql).fetchall()
