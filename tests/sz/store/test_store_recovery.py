"""The durable stores across crashes, bad files, a second process and restarts.

Every ``sz serve`` here is a real process on a real file under ``tmp_path``, or on
a real PostgreSQL database (a throwaway server, ``conftest.py``: the tests of
crashes and restarts run on both, with the ``db`` fixture), on the test's own
backend (``--backend``). Nothing waits by sleeping: a test reads the process's
output until a line appears, or reads the database (with the stdlib ``sqlite3``,
read-only, or with psycopg, in a worker thread) until a condition holds, under a
deadline.
"""

from __future__ import annotations

import codecs
import os
import random
import signal
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from subprocess import PIPE, STDOUT
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import psycopg
import pytest

from actors.testing import wait_until
from sz import ScheduleZero
from sz.bridge import ScheduleNotFound
from sz.store import StoreError, sqlite as store_sqlite
from sz.store.sqlite import APPLICATION_ID, SCHEMA_VERSION

from .logged import crash_tracebacks

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from anyio.abc import Process

    from sz.jobs import Attempt

SZ = [sys.executable, "-c", "from sz.cli import main; main()"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
DEMO_SCHEDULES = {"demo-echo", "demo-log", "demo-fail"}
#: What the restart records for a job it found accepted and unfinished: the
#: outcome of its interrupted attempt and whether that row is final, by reason.
#: A job of a schedule may also be coalesced into another job or fire of its
#: round (the demo schedules coalesce ``latest``).
TAKEN_UP = {
    "retry_after_restart": ("abandoned", False),
    "interrupted_by_restart": ("abandoned", True),
    "coalesce_latest": ("coalesced", True),
}
#: Seconds any one wait may take before the test fails (far above what it needs).
PATIENCE = 20.0


@pytest.fixture
def backend(anyio_backend: tuple[str, dict[str, object]]) -> str:
    """The event loop ``sz serve`` runs on: the test's own."""
    return anyio_backend[0]


#: Where a store is: a SQLite file, or a PostgreSQL database's URL.
Place = Path | str


def url(place: Place) -> str:
    return place if isinstance(place, str) else f"sqlite:///{place}"


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    """The test's store: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "postgresql":
        found: str = request.getfixturevalue("pg_url")
        return found
    return tmp_path / "sz.db"


# ------------------------------------------------------------ a running sz serve


class Serve:
    """A running ``sz serve`` whose merged output is read line by line as it comes.

    Reading never stops while the process lives, so it never blocks on a full pipe.
    """

    def __init__(self, process: Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.history_lines = 0  # lines the history actor logged (one per row)
        self.ended = False
        self._partial = ""
        self._grew = anyio.Event()

    @property
    def output(self) -> str:
        return "\n".join([*self.lines, self._partial])

    async def read(self) -> None:
        assert self.process.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in self.process.stdout:
            *complete, self._partial = (self._partial + decoder.decode(chunk)).split(
                "\n"
            )
            self.lines.extend(complete)
            self.history_lines += sum("sz.history: job " in line for line in complete)
            self._grew.set()
            self._grew = anyio.Event()
        self.ended = True
        self._grew.set()

    async def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Wait until ``condition()`` holds; fail naming ``what`` if it does not."""
        try:
            with anyio.fail_after(PATIENCE):
                while not condition():
                    if self.ended:
                        raise AssertionError(
                            f"sz serve ended before {what}:\n{self.output[-4000:]}"
                        )
                    await self._grew.wait()
        except TimeoutError:
            raise AssertionError(
                f"no {what} within {PATIENCE} s:\n{self.output[-4000:]}"
            ) from None

    async def wait_for_line(self, needle: str) -> None:
        await self.wait_for(lambda: any(needle in line for line in self.lines), needle)

    async def wait_for_rows(self, count: int) -> None:
        """Wait until the history logged ``count`` rows since this process began."""
        await self.wait_for(
            lambda: self.history_lines >= count, f"{count} history rows logged"
        )

    async def kill(self) -> None:
        self.process.kill()
        with anyio.fail_after(PATIENCE):
            assert await self.process.wait() == -signal.SIGKILL

    async def terminate(self) -> None:
        """SIGTERM; it must exit 0, cleanly, without a traceback.

        (How fast is ``test_cli``'s business: here, a loaded machine must not fail.)
        """
        self.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(PATIENCE):
            code = await self.process.wait()
        await self.wait_for(lambda: self.ended, "end of output")
        assert code == 0, self.output[-4000:]
        assert "stopped cleanly" in self.output
        # A job's failure is logged with its traceback; anything else is a crash.
        assert crash_tracebacks(self.output) == []


@asynccontextmanager
async def serving(cwd: Path, *args: str) -> AsyncIterator[Serve]:
    """Run ``sz serve *args`` in ``cwd``; kill it on the way out if still running."""
    async with (
        await anyio.open_process(
            [*SZ, "serve", *args], cwd=cwd, stdout=PIPE, stderr=STDOUT, env=ENV
        ) as process,
        anyio.create_task_group() as tg,
    ):
        serve = Serve(process)
        tg.start_soon(serve.read)
        try:
            yield serve
        finally:
            if process.returncode is None:
                process.kill()


async def serve_fails(cwd: Path, *args: str) -> str:
    """Run ``sz serve *args`` expecting exit code 2; return its stderr."""
    with anyio.fail_after(PATIENCE):
        result = await anyio.run_process(
            [*SZ, "serve", *args], cwd=cwd, env=ENV, check=False
        )
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    return stderr


# ----------------------------------------------------------- reading the file


@attrs.frozen(kw_only=True)
class Row:
    seq: int
    job_id: str
    schedule_id: str | None
    scheduled_at: Any  # as the store keeps it (microseconds, or a datetime)
    handler: str | None
    outcome: str
    attempt: int
    final: bool
    reason: str | None


@attrs.frozen(kw_only=True)
class Snapshot:
    """What the file holds, read in one transaction."""

    history: tuple[Row, ...]
    jobs: Mapping[str, tuple[str | None, object]]  # id -> (schedule, scheduled_at)
    schedules: Mapping[str, object | None]  # id -> next fire time

    def rows_of(self, job_id: str) -> list[Row]:
        return [row for row in self.history if row.job_id == job_id]

    def job_ids(self) -> set[str]:
        return {row.job_id for row in self.history} | set(self.jobs)


_HISTORY = (
    "SELECT seq, job_id, schedule_id, scheduled_at, handler, outcome, "
    "attempt, final, reason FROM history ORDER BY seq"
)
_JOBS = "SELECT id, schedule_id, scheduled_at FROM jobs"
_SCHEDULES = "SELECT id, next_fire_time FROM schedules"


def _snapshot_of(
    history: Iterable[tuple[Any, ...]],
    jobs: Iterable[tuple[Any, ...]],
    schedules: Iterable[tuple[Any, ...]],
) -> Snapshot:
    return Snapshot(
        history=tuple(
            Row(
                seq=seq,
                job_id=job_id,
                schedule_id=schedule_id,
                scheduled_at=scheduled_at,
                handler=handler,
                outcome=outcome,
                attempt=attempt,
                final=bool(final),
                reason=reason,
            )
            for (
                seq,
                job_id,
                schedule_id,
                scheduled_at,
                handler,
                outcome,
                attempt,
                final,
                reason,
            ) in history
        ),
        jobs={
            job_id: (schedule_id, scheduled_at)
            for job_id, schedule_id, scheduled_at in jobs
        },
        schedules=dict(schedules),
    )


def _read_postgres(address: str) -> Snapshot:
    # One snapshot of the database: what one transaction sees.
    with (
        psycopg.connect(address, autocommit=True) as connection,
        connection.transaction(),
    ):
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        connection.execute("SET LOCAL search_path = sz")
        return _snapshot_of(
            connection.execute(_HISTORY).fetchall(),
            connection.execute(_JOBS).fetchall(),
            connection.execute(_SCHEDULES).fetchall(),
        )


def _read(place: Place) -> Snapshot:
    if isinstance(place, str):
        return _read_postgres(place)
    return _read_sqlite(place)


def _read_sqlite(path: Path) -> Snapshot:
    # Read-only: this connection must never checkpoint or otherwise write the
    # file, whose owner may be running or may just have been killed.
    connection = sqlite3.connect(
        f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=10
    )
    try:
        connection.execute("BEGIN")
        found = _snapshot_of(
            connection.execute(_HISTORY).fetchall(),
            connection.execute(_JOBS).fetchall(),
            connection.execute(_SCHEDULES).fetchall(),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()
    return found


async def snapshot(path: Place) -> Snapshot:
    return await anyio.to_thread.run_sync(_read, path)


async def poll(
    path: Place, condition: Callable[[Snapshot], bool], what: str
) -> Snapshot:
    """Read the file until ``condition`` holds of it; return that snapshot."""
    reads: list[Snapshot] = []

    async def holds() -> bool:
        reads.append(await snapshot(path))
        return condition(reads[-1])

    try:
        await wait_until(holds, timeout=PATIENCE, interval=0.02)
    except TimeoutError:
        seen = reads[-1] if reads else None
        raise AssertionError(
            f"no {what} within {PATIENCE} s; last read {seen}"
        ) from None
    return reads[-1]


async def final_rows(sz: ScheduleZero, job_id: str) -> list[Attempt]:
    """Ask ``sz`` for the job's rows until one is final; return them, oldest first."""
    rows: list[Attempt] = []

    async def final() -> bool:
        nonlocal rows
        rows = await sz.history(job_id=job_id)
        return any(row.final for row in rows)

    await wait_until(final, timeout=PATIENCE)
    return list(reversed(rows))


def problems(snap: Snapshot) -> list[str]:
    """Every way ``snap`` breaks the store's promises (empty if it keeps them).

    A job's final row and its leaving ``jobs`` are one transaction, so no read
    may see a job with two final rows, with a final row yet still accepted, or
    with rows but neither final nor accepted; attempts count 1, 2, ... and the
    final one is the last. A fire of a schedule (its id and fire time) is one
    job, however often the process died around it.
    """
    found: list[str] = []
    rows: dict[str, list[Row]] = defaultdict(list)
    for row in snap.history:
        rows[row.job_id].append(row)
    for job_id, its in rows.items():
        finals = [row for row in its if row.final]
        attempts = sorted(row.attempt for row in its)
        if len(finals) > 1:
            found.append(f"job {job_id} has {len(finals)} final rows: {its}")
        if finals and job_id in snap.jobs:
            found.append(f"job {job_id} has a final row yet is still accepted: {its}")
        if not finals and job_id not in snap.jobs:
            found.append(f"job {job_id} has no final row and is not accepted: {its}")
        if attempts != list(range(1, len(its) + 1)):
            found.append(f"job {job_id} has attempts {attempts}: {its}")
        if finals and finals[0].attempt != attempts[-1]:
            found.append(f"job {job_id}'s final row is not its last attempt: {its}")
    fires: dict[tuple[str, object], set[str]] = defaultdict(set)
    for row in snap.history:
        if row.schedule_id is not None:
            fires[row.schedule_id, row.scheduled_at].add(row.job_id)
    for job_id, (schedule_id, scheduled_at) in snap.jobs.items():
        if schedule_id is not None:
            fires[schedule_id, scheduled_at].add(job_id)
    found.extend(
        f"fire {fire} of {schedule_id} became {len(ids)} jobs: "
        + "; ".join(str(rows[i]) for i in sorted(ids))
        for (schedule_id, fire), ids in fires.items()
        if len(ids) > 1
    )
    return found


def assert_consistent(snap: Snapshot, when: str) -> None:
    found = problems(snap)
    assert not found, f"{when}: " + "\n".join(found[:20])
    assert set(snap.schedules) == DEMO_SCHEDULES, f"{when}: {snap.schedules}"
    assert all(fire is not None for fire in snap.schedules.values()), (
        f"{when}: {snap.schedules}"
    )


def taken_up(left: Snapshot) -> Callable[[Snapshot], bool]:
    """Whether a later read shows every job ``left`` held taken up after a restart.

    Its interrupted attempt (one past the rows it had) is ``abandoned``: final
    with ``interrupted_by_restart``, else ``retry_after_restart``; or, for a job
    of a schedule, finally ``coalesced`` into another of its round.
    """

    def holds(now: Snapshot) -> bool:
        retried: dict[str | None, list[Row]] = defaultdict(list)
        for job_id in left.jobs:
            attempt = len(left.rows_of(job_id)) + 1
            row = next(
                (r for r in now.rows_of(job_id) if r.attempt == attempt),
                None,
            )
            if row is None:
                return False
            assert row.reason in TAKEN_UP, row
            assert (row.outcome, row.final) == TAKEN_UP[row.reason], row
            assert row.schedule_id is not None or row.outcome == "abandoned", row
            assert row.handler is None, row
            if row.reason == "retry_after_restart":
                retried[row.schedule_id].append(row)
        # Each demo schedule coalesces "latest": at most one job of its round
        # taken up runs again.
        for schedule_id, rows in retried.items():
            assert schedule_id is None or len(rows) == 1, rows
        return True

    return holds


# ------------------------------------------------------------------ 1. crash loop


#: Another seed tries other moments: ``SZ_CRASH_SEED=7 pytest -k random_moments``.
SEED = int(os.environ.get("SZ_CRASH_SEED", "20261126"))
CRASHES = 5


async def test_sz_serve_killed_at_random_moments_loses_and_doubles_no_job(
    tmp_path: Path, backend: str, db: Place
) -> None:
    rng = random.Random(SEED)
    args: tuple[str, ...] = (
        "--interval",
        "0.02",
        "--backend",
        backend,
        "--store",
        url(db),
    )
    if isinstance(db, str):
        # One node, restarted under its name: it takes up its own jobs at once
        # (under a new name they would wait for its old lease to run out).
        args = (*args, "--node", "crashy")
    seen: set[str] = set()
    left: Snapshot | None = None
    for crash in range(CRASHES + 2):
        async with serving(tmp_path, *args) as serve:
            await serve.wait_for_line("actor tree")
            if left is not None:
                # The jobs the last run left unfinished are taken up first.
                now = await poll(db, taken_up(left), f"take-up after run {crash}")
                assert_consistent(now, f"after restart {crash}")
                assert seen <= now.job_ids(), f"jobs vanished: {seen - now.job_ids()}"
            rows = rng.randint(1, 150)
            await serve.wait_for_rows(rows)
            if crash < CRASHES:
                await serve.kill()
                when = f"killed after {rows} rows (run {crash}, seed {SEED})"
            else:
                await serve.terminate()
                when = f"stopped after {rows} rows (run {crash})"
        left = await snapshot(db)
        assert_consistent(left, when)
        assert seen <= left.job_ids(), f"{when}: jobs vanished: {seen - left.job_ids()}"
        seen |= left.job_ids()
    assert left is not None
    # After two clean stops, every job ever seen is finished, exactly once, or
    # still accepted (it was in hand as the last run stopped).
    for job_id in seen:
        finals = [row for row in left.rows_of(job_id) if row.final]
        assert (len(finals) == 1) != (job_id in left.jobs), (
            job_id,
            left.rows_of(job_id),
        )
    assert len(seen) > 100, "too few jobs ran to test anything"


# ------------------------------------------------------------------ 2. bad files


@attrs.frozen(kw_only=True)
class BadStore:
    """A store path ScheduleZero must refuse, and the file that must stay as it is.

    The refusal reads ``<store>: ...``, holding each of ``says``.
    """

    store: Path  # what the store URL points at
    kept: Path  # whose bytes (or, for a directory, listing) must not change
    says: tuple[str, ...]


def random_bytes(tmp_path: Path) -> BadStore:
    path = tmp_path / "noise.db"
    path.write_bytes(random.Random(SEED).randbytes(8192))
    return BadStore(
        store=path,
        kept=path,
        says=(
            (
                "not a ScheduleZero store or damaged (file is not a database); move it "
                "aside and start afresh, or point the store (--store or store.url) at "
                "another file"
            ),
        ),
    )


def newer_layout(tmp_path: Path) -> BadStore:
    path = tmp_path / "newer.db"
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE future (x)")
        connection.execute("INSERT INTO future VALUES ('kept as it is')")
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("PRAGMA user_version = 99")
        connection.commit()
    finally:
        connection.close()
    return BadStore(
        store=path,
        kept=path,
        says=(
            (
                "written by a newer ScheduleZero (layout 99, this one reads up to "
                f"{SCHEMA_VERSION}); upgrade ScheduleZero or use another file"
            ),
        ),
    )


def another_programs_database(tmp_path: Path) -> BadStore:
    # A SQLite file of some other program (user_version 0), one of whose tables
    # happens to be called ``jobs``: a store URL pointed at the wrong file.
    path = tmp_path / "payroll.db"
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE jobs (title TEXT, salary INTEGER)")
        connection.execute("INSERT INTO jobs VALUES ('engineer', 1)")
        connection.commit()
    finally:
        connection.close()
    return BadStore(
        store=path,
        kept=path,
        says=(
            (
                "another program's database, not a ScheduleZero store; point the "
                "store (--store or store.url) at a file of its own"
            ),
        ),
    )


def under_a_file(tmp_path: Path) -> BadStore:
    # Tests run as root, whom no mode bit stops: a directory that is a regular
    # file stops anyone (mkdir and open fail), whatever the privileges.
    blocker = tmp_path / "afile"
    blocker.write_bytes(b"a regular file, not a directory\n")
    return BadStore(
        store=blocker / "x.db",
        kept=blocker,
        says=(
            "cannot create the store's directory",
            "(File exists); choose another path (--store or store.url)",
        ),
    )


def a_directory(tmp_path: Path) -> BadStore:
    path = tmp_path / "adir.db"
    path.mkdir()
    (path / "inside").write_bytes(b"untouched\n")
    return BadStore(
        store=path,
        kept=path,
        says=(
            (
                "cannot open the store for writing (Is a directory); choose a writable "
                "path (--store or store.url)"
            ),
        ),
    )


def contents(path: Path) -> object:
    """The bytes of a file; of a directory, its listing with every file's bytes."""
    if path.is_dir():
        return sorted((p.name, p.read_bytes()) for p in path.iterdir())
    return path.read_bytes()


def state(bad: BadStore) -> tuple[object, list[str]]:
    """What must not change: the kept file, and which files sit beside it."""
    return contents(bad.kept), sorted(p.name for p in bad.kept.parent.iterdir())


@pytest.mark.parametrize(
    "make",
    [
        random_bytes,
        newer_layout,
        another_programs_database,
        under_a_file,
        a_directory,
    ],
)
async def test_a_bad_store_file_is_refused_naming_it_and_left_untouched(
    tmp_path: Path, backend: str, make: Callable[[Path], BadStore]
) -> None:
    bad = await anyio.to_thread.run_sync(make, tmp_path)
    before = await anyio.to_thread.run_sync(state, bad)

    sz = ScheduleZero(store=url(bad.store))
    with pytest.raises(StoreError) as refused:
        await sz.start()
    await sz.stop()  # nothing started, nothing to stop
    message = str(refused.value)
    assert message.startswith(f"{bad.store}: "), message
    assert all(part in message for part in bad.says), message

    # The failed start let go of the file: the process sees its fault, not a lock.
    stderr = await serve_fails(
        tmp_path, "--store", url(bad.store), "--backend", backend
    )
    assert f"sz serve: {message}\n" in stderr

    # Not a byte written, not a file added beside it (no -wal, no -shm).
    assert await anyio.to_thread.run_sync(state, bad) == before


#: What a damaged value in the file looks like: a pickle with a bad opcode.
GARBAGE = b"\x80\x05\xde\xad\xbe\xef"


def damage(db: Path, statement: str) -> None:
    """Write ``GARBAGE`` into the store with ``statement``."""
    connection = sqlite3.connect(db)
    try:
        with connection:
            connection.execute(statement, (GARBAGE,))
    finally:
        connection.close()


def garbage_left(db: Path) -> int:
    """How many values in the store are still ``GARBAGE`` (none was dropped)."""
    connection = sqlite3.connect(db)
    try:
        return sum(
            connection.execute(query, (GARBAGE,)).fetchone()[0]
            for query in (
                "SELECT count(*) FROM schedules WHERE data = ?1 OR trigger = ?1",
                "SELECT count(*) FROM jobs WHERE data = ?1",
            )
        )
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("statement", "says"),
    [
        pytest.param(
            "UPDATE schedules SET data = ?",
            "schedule 'kept' cannot be read back",
            id="a-schedule",
        ),
        pytest.param(
            "UPDATE schedules SET trigger = ?",
            "the trigger of schedule 'kept' cannot be read back",
            id="a-trigger",
        ),
        pytest.param(
            "INSERT INTO jobs VALUES ('job-1', NULL, 'echo', 0, 0, ?, NULL)",
            "the arguments of accepted job 'job-1' cannot be read back",
            id="an-accepted-job",
        ),
    ],
)
async def test_a_damaged_value_in_the_store_is_one_store_error_naming_it(
    tmp_path: Path, backend: str, statement: str, says: str
) -> None:
    """A page SQLite can read whose pickled value is damaged is refused as a
    damaged page is: one line naming the file and the value, the value kept."""
    db = tmp_path / "kept.db"
    sz = ScheduleZero(store=url(db))

    @sz.handler
    async def echo(value: int) -> int:
        return value

    async with sz:
        await sz.schedule("echo", "interval", hours=1, args=[1], id="kept")
    await anyio.to_thread.run_sync(damage, db, statement)

    again = ScheduleZero(store=url(db))
    again.handler(echo)
    with pytest.raises(StoreError) as refused:
        await again.start()
    await again.stop()
    message = str(refused.value)
    assert message.startswith(f"{db}: damaged: {says} ("), message
    assert message.endswith(
        "; move the file aside and start afresh, or point the store (--store or "
        "store.url) at another file"
    )

    stderr = await serve_fails(tmp_path, "--store", url(db), "--backend", backend)
    assert f"sz serve: {message}\n" in stderr
    # Refused, not repaired: the damaged value is still there to be looked at.
    assert await anyio.to_thread.run_sync(garbage_left, db) == 1


async def mount(*args: str) -> bool:
    """Run ``mount *args``; whether it worked (it needs root)."""
    result = await anyio.run_process(["mount", *args], check=False)
    return result.returncode == 0


async def test_a_good_store_in_a_read_only_directory_is_a_directory_problem(
    tmp_path: Path, backend: str
) -> None:
    """SQLite cannot make the -wal and -shm files beside a store whose directory
    is read-only: that is said, not "damaged, move it aside"."""
    made, seen = tmp_path / "made", tmp_path / "seen"
    await anyio.Path(made).mkdir()
    await anyio.Path(seen).mkdir()
    sz = ScheduleZero(store=url(made / "good.db"))

    @sz.handler
    async def echo(value: int) -> int:
        return value

    async with sz:
        await sz.schedule("echo", "interval", hours=1, args=[1], id="kept")
    # ``seen`` shows ``made`` read-only, but the store file in it writable: as a
    # user's store in a directory of someone else's (root passes any chmod).
    mounted: list[Path] = []
    try:
        if not await mount("--bind", str(made), str(seen)):
            pytest.skip("cannot bind-mount here (needs root)")
        mounted.append(seen)
        if not await mount("-o", "remount,bind,ro", str(seen)):
            pytest.skip("cannot remount read-only here")
        store = seen / "good.db"
        if not await mount("--bind", str(made / "good.db"), str(store)):
            pytest.skip("cannot bind-mount a file here")
        mounted.append(store)

        with pytest.raises(StoreError) as refused:
            await ScheduleZero(store=url(store)).start()
        assert str(refused.value) == (
            f"{store}: its directory {seen} is not writable, and SQLite keeps the "
            "store's -wal and -shm files beside it; make the directory writable, "
            "or move the store (--store or store.url)"
        )
        stderr = await serve_fails(
            tmp_path, "--store", url(store), "--backend", backend
        )
        assert f"sz serve: {refused.value}\n" in stderr
    finally:
        for path in reversed(mounted):
            await anyio.run_process(["umount", str(path)])


def modes_of(directory: Path, prefix: str) -> dict[str, int]:
    """The permission bits of the files in ``directory`` whose names start so."""
    return {
        path.name: path.stat().st_mode & 0o777
        for path in directory.iterdir()
        if path.name.startswith(prefix)
    }


async def test_the_store_file_is_the_owners_alone(tmp_path: Path) -> None:
    """It holds pickled arguments: guarded like code, whatever the umask."""
    db = tmp_path / "private.db"
    old = os.umask(0)
    try:
        sz = ScheduleZero(store=url(db))

        @sz.handler
        async def echo(value: int) -> int:
            return value

        async with sz:
            await sz.schedule("echo", "interval", hours=1, args=[1], id="private")
            modes = await anyio.to_thread.run_sync(modes_of, tmp_path, "private.db")
    finally:
        os.umask(old)
    assert modes["private.db"] == 0o600
    assert set(modes.values()) == {0o600}, modes


# ------------------------------------------------------------ 3. two processes


ECHOED = "echo attempt 1 on echo: success"


async def test_a_second_sz_serve_on_a_store_in_use_exits_two_and_the_first_runs_on(
    tmp_path: Path, backend: str
) -> None:
    db = tmp_path / "schedulezero.db"
    in_use = (
        f"{db}: another ScheduleZero is using this store; stop it, or give this one "
        "a file of its own"
    )
    # The first finds its store by the default name in its working directory.
    async with serving(tmp_path, "--interval", "0.05", "--backend", backend) as first:
        await first.wait_for_line(ECHOED)

        stderr = await serve_fails(
            tmp_path, "--store", url(db), "--interval", "0.05", "--backend", backend
        )
        assert f"sz serve: {in_use}\n" in stderr
        # Another name for the same file is the same store.
        link = tmp_path / "link.db"
        await anyio.Path(link).symlink_to(db)
        with pytest.raises(StoreError) as refused:
            await ScheduleZero(store=url(link)).start()
        assert str(refused.value) == in_use.replace(str(db), str(link))

        # The first goes on running jobs and writing its file.
        echoed = sum(ECHOED in line for line in first.lines)
        await first.wait_for(
            lambda: sum(ECHOED in line for line in first.lines) >= echoed + 5,
            "five more echo jobs after the second process gave up",
        )
        assert first.process.returncode is None
        rows = len((await snapshot(db)).history)
        await poll(db, lambda now: len(now.history) > rows, "new history rows")
        await first.terminate()
    assert_consistent(await snapshot(db), "after the first stopped")


async def test_sz_serve_whose_store_file_is_deleted_exits_two_saying_so(
    tmp_path: Path, backend: str
) -> None:
    """Nothing more is written into a file nobody can open: ``sz serve`` stops."""
    db = tmp_path / "schedulezero.db"
    async with serving(tmp_path, "--interval", "0.05", "--backend", backend) as run:
        await run.wait_for_line(ECHOED)
        await anyio.Path(db).unlink()
        with anyio.fail_after(PATIENCE):
            code = await run.process.wait()
        await run.wait_for(lambda: run.ended, "end of output")
    lost = (
        f"{db.name}: the store file was deleted while in use; nothing more is written "
        "to it: restart ScheduleZero"
    )
    assert code == 2, run.output[-4000:]
    assert f"sz serve: {lost}" in run.lines, run.output[-4000:]
    assert crash_tracebacks(run.output) == []


async def test_a_started_scheduler_whose_store_file_is_replaced_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_sqlite, "WATCH_EVERY", 0.01)
    db = tmp_path / "replaced.db"
    sz = ScheduleZero(store=url(db))

    @sz.handler
    async def echo(value: int) -> int:
        return value

    await sz.start()
    try:
        assert await sz.run_now("echo", args=[1]) == 1
        await anyio.Path(tmp_path / "other.db").write_bytes(b"")
        await anyio.Path(tmp_path / "other.db").replace(db)
        with anyio.fail_after(PATIENCE):
            lost = await sz.wait_store_lost()
        assert str(lost) == (
            f"{db}: the store file was replaced by another file while in use; "
            "nothing more is written to it: restart ScheduleZero"
        )
        with pytest.raises(StoreError) as refused:
            await sz.run_now("echo", args=[2])
        assert refused.value is lost
    finally:
        await sz.stop()
    # Nothing was written into the file now at that path, not even at the stop.
    assert await anyio.Path(db).read_bytes() == b""


# --------------------------------------------- 4. accepted, unfinished, taken up


SLOW_CONFIG = """\
handlers:
  builtin:
    - module: sz.builtin
      methods: [sleep]
store:
  url: "{url}"
"""


async def test_a_job_in_hand_when_sz_serve_is_killed_is_retried_at_the_next_start(
    tmp_path: Path, backend: str, db: Place
) -> None:
    config = tmp_path / "config.yaml"
    # A file: the config's store, relative to the working directory.
    store = "sqlite:///jobs.db" if isinstance(db, Path) else db
    db = tmp_path / "jobs.db" if isinstance(db, Path) else db
    await anyio.Path(config).write_text(SLOW_CONFIG.format(url=store))

    # Leave in the file one schedule of a long job, due once, soon: in the
    # process below, not in this one (which stops well before).
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    sz = ScheduleZero(store=url(db))

    @sz.handler(name="sleep")
    async def not_here(seconds: float) -> None:
        """Never called: the schedule comes due after this scheduler stopped."""

    async with sz:
        await sz.schedule(
            "sleep", "date", run_time=due, args={"seconds": 600}, id="slow"
        )
    assert datetime.now(UTC) < due, "too slow to add the schedule before it fired"

    async with serving(tmp_path, "-c", str(config), "--backend", backend) as serve:
        await serve.wait_for_line("actor tree")
        running = await poll(db, lambda now: bool(now.jobs), "the slow job accepted")
        await serve.kill()
    dead = await snapshot(db)
    assert dead.jobs == running.jobs
    ((job_id, (schedule_id, _)),) = dead.jobs.items()
    assert schedule_id == "slow"
    assert dead.history == ()

    # Start again, here: the job is taken up, its interrupted attempt abandoned.
    calls: list[float] = []
    again = ScheduleZero(store=url(db))

    @again.handler(name="sleep")
    async def quick(seconds: float) -> float:
        calls.append(seconds)
        return seconds

    async with again:
        await final_rows(again, job_id)

        # The date schedule is spent: whatever the killed process stored
        # of it, the restart must not fire it again.
        async def spent() -> bool:
            try:
                slow = await again.get_schedule("slow")
            except ScheduleNotFound:
                return True
            return slow.next_fire_time is None

        await wait_until(spent, timeout=PATIENCE)
        rows = list(reversed(await again.history(schedule_id="slow")))
    assert [(r.job_id, r.attempt, r.outcome, r.final, r.reason) for r in rows] == [
        (job_id, 1, "abandoned", False, "retry_after_restart"),
        (job_id, 2, "success", True, None),
    ]
    assert rows[0].handler is None
    assert rows[0].started_at is None
    assert rows[1].handler == "sleep"
    assert calls == [600]
    end = await snapshot(db)
    assert end.jobs == {}
    assert problems(end) == []


@attrs.frozen(kw_only=True)
class Blocking:
    """A scheduler whose ``block`` handler waits for ``gate`` (set: it does not)."""

    sz: ScheduleZero
    gate: anyio.Event = attrs.field(factory=anyio.Event)
    called: anyio.Event = attrs.field(factory=anyio.Event)
    calls: list[int] = attrs.field(factory=list)


def blocking(store: Place) -> Blocking:
    it = Blocking(sz=ScheduleZero(store=url(store)))

    @it.sz.handler(name="block")
    async def block(n: int) -> int:
        it.calls.append(n)
        it.called.set()
        await it.gate.wait()
        return n

    return it


async def stop_while_running(db: Place, *, submit: bool = True) -> str:
    """Stop the scheduler cleanly while ``block`` runs a job; return the job's id.

    With ``submit``, the job is a ``run_now`` of this run; without, the job the
    last run left unfinished, which this start takes up.
    """
    it = blocking(db)
    async with it.sz:
        async with anyio.create_task_group() as tg:
            if submit:
                # The caller gives up waiting for it; the job itself goes on.
                tg.start_soon(partial(it.sz.run_now, "block", args=[7]))
            with anyio.fail_after(PATIENCE):
                await it.called.wait()
            tg.cancel_scope.cancel()
        # Read while it runs, the job in hand.
        running = await snapshot(db)
    ((job_id, _),) = running.jobs.items()
    return job_id


async def rerun(db: Place, job_id: str) -> tuple[list[Attempt], list[int]]:
    """Start again on ``db`` with ``block`` not blocking; wait for the job's end."""
    it = blocking(db)
    it.gate.set()
    async with it.sz:
        rows = await final_rows(it.sz, job_id)
    return rows, it.calls


async def test_a_job_running_at_a_clean_stop_stays_accepted_and_runs_after_restart(
    db: Place,
) -> None:
    job_id = await stop_while_running(db)
    stopped = await snapshot(db)
    assert job_id in stopped.jobs, "a clean stop must not drop a job in hand"
    assert not [row for row in stopped.rows_of(job_id) if row.final]

    rows, calls = await rerun(db, job_id)
    assert calls == [7]
    assert rows[-1].outcome == "success"
    assert [row.attempt for row in rows] == list(range(1, len(rows) + 1))
    assert [row.final for row in rows] == [False] * (len(rows) - 1) + [True]
    assert "retry_after_restart" in [row.reason for row in rows]
    end = await snapshot(db)
    assert end.jobs == {}
    assert problems(end) == []


async def test_a_job_survives_two_clean_stops_and_no_crash_is_recorded(
    db: Place,
) -> None:
    job_id = await stop_while_running(db)
    # A clean stop leaves the job for the next start, as a kill would.
    assert (await snapshot(db)).rows_of(job_id) == []
    assert await stop_while_running(db, submit=False) == job_id

    rows, calls = await rerun(db, job_id)
    assert calls == [7], "the job never ran after the second clean stop"
    assert [row.attempt for row in rows] == list(range(1, len(rows) + 1))
    assert "retry_after_crash" not in [row.reason for row in rows]
    assert (rows[-1].outcome, rows[-1].final) == ("success", True)


# ------------------------------------------------------- 5. schedules persist


async def test_schedules_survive_a_restart_with_their_next_fire_times(
    db: Place,
) -> None:
    far = datetime(2100, 1, 1, 12, tzinfo=UTC)

    def make(runs: int) -> tuple[ScheduleZero, anyio.Event]:
        """A scheduler whose ``work`` sets the event it returns at run ``runs``."""
        sz = ScheduleZero(store=url(db))
        ran = anyio.Event()
        count = 0

        @sz.handler(name="work")
        async def work(*args: Any, **kwargs: Any) -> None:
            nonlocal count
            count += 1
            if count >= runs:
                ran.set()

        return sz, ran

    first, ran_first = make(3)
    async with first:
        await first.schedule(
            "work", "interval", hours=1, args=[1, "a"], kwargs={"k": "v"}, id="hourly"
        )
        await first.schedule("work", "cron", hour=3, minute=30, args={"x": 1}, id="n")
        await first.schedule(
            "work", "*/5 * * * *", id="crontab", affinity="a", coalesce="all"
        )
        await first.schedule("work", "interval", days=1, id="paused", paused=True)
        await first.schedule("work", "date", run_time=far, id="once")
        await first.schedule("work", "calendarinterval", months=1, hour=4, id="monthly")
        # Comes due again and again, the restart included.
        await first.schedule("work", "interval", seconds=0.05, id="fast")
        with anyio.fail_after(PATIENCE):
            await ran_first.wait()
        before = {s.id: s for s in await first.schedules()}
    first_run = {row.job_id for row in (await snapshot(db)).history}

    second, _ = make(1)
    async with second:
        after = {s.id: s for s in await second.schedules()}
        # The fast schedule goes on: a fire of this run ends.
        await poll(
            db,
            lambda now: any(
                row.final and row.job_id not in first_run for row in now.history
            ),
            "a fire of the second run",
        )
    end = await snapshot(db)

    assert (
        after.keys()
        == before.keys()
        == {"hourly", "n", "crontab", "paused", "once", "monthly", "fast"}
    )
    for id, was in before.items():
        now = after[id]
        assert attrs.evolve(now, next_fire_time=None) == attrs.evolve(
            was, next_fire_time=None
        ), id
        if id == "fast":
            assert was.next_fire_time is not None
            assert now.next_fire_time is not None
            assert now.next_fire_time >= was.next_fire_time
        else:
            assert now.next_fire_time == was.next_fire_time, id
    assert after["hourly"].args == (1, "a")
    assert after["hourly"].kwargs == {"k": "v"}
    assert after["n"].kwargs == {"x": 1}
    assert after["crontab"].affinity == "a"
    assert after["crontab"].coalesce == "all"
    assert after["paused"].paused
    assert after["once"].next_fire_time == far
    # An interval's first fire is at once: the hourly one fired, in the first run
    # only; the fast one went on from where it was.
    assert {row.schedule_id for row in end.history} == {"fast", "hourly"}
    assert len({row.job_id for row in end.history if row.schedule_id == "hourly"}) == 1
    assert problems(end) == []  # among others: no fire time became two jobs


@pytest.mark.parametrize("policy", ["earliest", "latest", "all"])
async def test_skipped_fires_are_not_recorded_again_when_the_schedule_update_is_lost(
    tmp_path: Path, policy: str
) -> None:
    """The window between a round's rows and its schedule's new fire time.

    A round's kept and skipped fires commit before the schedule's next fire
    time does; a process killed between the two leaves the schedule where it
    was. Put back here by hand, as the kill would have left it: the restart
    must take none of those fires again.
    """
    db = tmp_path / "sz.db"
    ran: list[str] = []
    start = datetime.now(UTC) - timedelta(seconds=9.5)

    def make() -> ScheduleZero:
        sz = ScheduleZero(store=url(db))

        @sz.handler(name="work")
        async def work(key: str) -> None:
            ran.append(key)

        return sz

    first = make()
    async with first:
        await first.schedule(
            "work",
            "interval",
            seconds=1,
            start_time=start,
            args=["round"],
            coalesce=policy,
            misfire_grace_time=3.0,
            id="behind",
        )
        before = await poll(
            db,
            lambda now: len([r for r in now.history if r.final]) >= 10,
            "ten final rows of the overdue round",
        )

    def put_back() -> None:
        stored = sqlite3.connect(db)
        with stored:
            stored.execute(
                "UPDATE schedules SET next_fire_time=?, last_fire_time=NULL, "
                "trigger=NULL",
                (int(start.timestamp() * 1_000_000),),
            )
        stored.close()

    await anyio.to_thread.run_sync(put_back)
    second = make()
    async with second:
        await second.schedule("work", "interval", seconds=0.05, args=["tick"], id="t")
        await poll(
            db,
            lambda now: any(r.schedule_id == "t" and r.final for r in now.history),
            "a fire of the second run",
        )
    end = await snapshot(db)
    first_rows = {(r.scheduled_at, r.outcome) for r in before.history}
    again = [
        r
        for r in end.history
        if r.schedule_id == "behind"
        and (r.scheduled_at, r.outcome) not in first_rows
        and r.scheduled_at <= max(t for t, _ in first_rows)
    ]
    assert again == [], "fires of the first run's round were taken again"
    assert problems(end) == []
