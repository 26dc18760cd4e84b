"""One SQLite file, owned by one thread, written in batched transactions.

The thread, its queue and its batches are ``Database``'s (``database.py``); here
is what is SQLite's: the file (created, locked against a second process, checked
for its layout), WAL checkpoints beside the writer, and a watch for the file being
deleted or replaced under the process.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from ..errors import StoreError
from .database import (
    _READ,
    DamagedValue,
    Database,
    from_micros,
    to_micros,
    unpickle,
)

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "DamagedValue",
    "SqliteFile",
    "StoreError",
    "from_micros",
    "to_micros",
    "unpickle",
]

logger = logging.getLogger("sz.store")

#: The layout this code writes. A file of a newer layout is refused, never touched.
SCHEMA_VERSION = 6

#: Scenario runs and their results (``scenario_runs.py``): layout 5's tables.
_SCENARIO_TABLES = """
CREATE TABLE IF NOT EXISTS scenario_runs (
    run_id TEXT PRIMARY KEY,
    -- the node that ran it on a shared PostgreSQL store; NULL in a file
    node TEXT,
    scenario_id TEXT NOT NULL,
    name TEXT NOT NULL,
    seed INTEGER NOT NULL,
    parameters TEXT NOT NULL,
    schedule_id TEXT,
    started_at INTEGER NOT NULL,
    -- NULL while the run runs
    finished_at INTEGER,
    outcome TEXT,
    error TEXT,
    passed INTEGER,
    units TEXT NOT NULL,
    -- the result's JSON export
    result TEXT
);
CREATE INDEX IF NOT EXISTS scenario_runs_by_start ON scenario_runs (started_at);
CREATE INDEX IF NOT EXISTS scenario_runs_by_scenario
    ON scenario_runs (scenario_id, started_at);
CREATE TABLE IF NOT EXISTS scenario_metrics (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, name)
);
"""

#: What turns a file of layout N into layout N + 1 (applied in one transaction
#: with the version bump, so a crash leaves the file at one layout or the other).
_MIGRATIONS = {
    # 2: how long a governor held each attempt back
    1: "ALTER TABLE history ADD COLUMN waited REAL;",
    # 3: what each job was called with, its result, a note, its traceback
    2: (
        "ALTER TABLE history ADD COLUMN arguments TEXT;"
        "ALTER TABLE history ADD COLUMN result BLOB;"
        "ALTER TABLE history ADD COLUMN note TEXT;"
        "ALTER TABLE history ADD COLUMN traceback TEXT;"
    ),
    # 4: the fire a job of a schedule was taken for (before jitter)
    3: "ALTER TABLE jobs ADD COLUMN fire_time INTEGER;",
    # 5: scenario runs and their results
    4: _SCENARIO_TABLES,
    # 6: each schedule's final rows by finish time (its last run, at once)
    5: "CREATE INDEX IF NOT EXISTS history_by_schedule ON history "
    "(schedule_id, finished_at) WHERE final AND schedule_id IS NOT NULL;",
}

#: Seconds between checkpoints of the WAL into the database file.
CHECKPOINT_EVERY = 1.0

#: WAL frames (pages) past which the writer restarts the WAL itself.
WAL_LIMIT = 10_000

#: WAL frames past which a WAL that cannot start over (a reader holds an old
#: snapshot) is warned about: once, until it has stayed small for
#: ``WAL_REARM`` seconds.
WAL_WARN = 100_000

#: Seconds the WAL must stay under ``WAL_LIMIT`` before a new growth is warned
#: about again: a WAL that starts over now and then under a pinning reader is
#: the same trouble, not a new one.
WAL_REARM = 600.0

#: Milliseconds the writer waits for a lock before a write fails (SQLite's
#: ``busy_timeout``; Python's default, made explicit to put it back).
BUSY_MS = 5_000

#: Seconds between checks that the store's path still names the file opened.
WATCH_EVERY = 1.0

#: SQLite's ``application_id`` of a ScheduleZero store ("SZst"): how a store is
#: told from another program's database.
APPLICATION_ID = 0x535A7374

_SCHEMA = (
    """
-- Times are integer microseconds since the Unix epoch (UTC): exact to compare.
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    next_fire_time INTEGER,
    last_fire_time INTEGER,
    paused INTEGER NOT NULL,
    -- the schedule as added; its trigger's state after each fire is in trigger
    data BLOB NOT NULL,
    trigger BLOB
);
CREATE INDEX IF NOT EXISTS schedules_by_next_fire ON schedules (next_fire_time);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    schedule_id TEXT,
    task TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL,
    data BLOB NOT NULL,
    fire_time INTEGER
);
CREATE TABLE IF NOT EXISTS fired (
    schedule_id TEXT PRIMARY KEY,
    fire_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    schedule_id TEXT,
    task TEXT NOT NULL,
    handler TEXT,
    scheduled_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER NOT NULL,
    duration REAL,
    outcome TEXT NOT NULL,
    error TEXT,
    attempt INTEGER NOT NULL,
    final INTEGER NOT NULL,
    reason TEXT,
    waited REAL,
    arguments TEXT,
    result BLOB,
    note TEXT,
    traceback TEXT
);
CREATE INDEX IF NOT EXISTS history_by_finish ON history (finished_at);
CREATE INDEX IF NOT EXISTS history_by_job ON history (job_id);
CREATE INDEX IF NOT EXISTS history_by_schedule ON history (schedule_id, finished_at)
    WHERE final AND schedule_id IS NOT NULL;
"""
    + _SCENARIO_TABLES
)


def _restart_wal(connection: sqlite3.Connection) -> None:
    """Start the WAL over, unless a reader holds it: then try again later.

    On the writer's thread, between two batches: it must not wait for a
    reader (``RESTART`` would, up to the busy timeout), or every commit queued
    behind it would wait too.
    """
    connection.execute("PRAGMA busy_timeout=0")
    try:
        connection.execute("PRAGMA wal_checkpoint(RESTART)")
    finally:
        connection.execute(f"PRAGMA busy_timeout={BUSY_MS}")


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing store for reading only, changing nothing on disk.

    A store in use (or left by a crash) has its ``-wal`` file beside it: read
    through it, as one more WAL reader (``mode=ro``). Without one, everything is
    in the database file and no scheduler runs on it; ``immutable`` then reads
    the file alone, as SQLite would otherwise leave empty ``-wal`` and ``-shm``
    files behind that a read-only connection cannot remove.

    Raises:
        StoreError: There is no such file, it is not a ScheduleZero store, or
            it is of another layout than this code's (never migrated here).
    """
    if not path.is_file():
        raise StoreError(
            f"{path}: no store there (reading never creates one); check the path"
        )
    wal = path.with_name(path.name + "-wal")
    mode = "ro" if wal.exists() else "ro&immutable=1"
    uri = f"{path.absolute().as_uri()}?mode={mode}"
    try:
        connection = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the store to read: {exc}") from None
    try:
        connection.execute("PRAGMA query_only=1")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        app = connection.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise StoreError(
            f"{path}: not a ScheduleZero store or damaged ({exc})"
        ) from None
    if app != APPLICATION_ID:
        connection.close()
        raise StoreError(f"{path}: not a ScheduleZero store")
    if version != SCHEMA_VERSION:
        connection.close()
        newer = version > SCHEMA_VERSION
        raise StoreError(
            f"{path}: a store of layout {version}, this ScheduleZero reads layout "
            f"{SCHEMA_VERSION}; "
            + (
                "upgrade ScheduleZero to read it"
                if newer
                else "'sz serve' of this version migrates it (reading never does)"
            )
        )
    return connection


class SqliteFile(Database):
    """The database file: open it, queue writes, await reads, close it.

    Args:
        path: The file. Created (with its directory) if missing.
        synchronous: SQLite's ``synchronous`` pragma: ``NORMAL`` survives a killed
            process (the usual crash); ``FULL`` also a power cut, at a cost per commit.
        read_only: Open it for reading only, False by default. The file must
            exist and be of this code's layout exactly; it is never created,
            locked, migrated, checkpointed nor written (``write`` raises), so
            that it can be read while a scheduler runs on it (a WAL reader).
    """

    _damaged_advice = (
        "move the file aside and start afresh, or point the store (--store or "
        "store.url) at another file"
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        super().__init__(str(self.path))
        self.synchronous = synchronous
        self.read_only = read_only
        self._lock_fd: int | None = None

    def _short_name(self) -> str:
        return self.path.name

    def _closed(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _connect(self) -> sqlite3.Connection:
        return self._setup()

    def _helpers(self, quit: threading.Event) -> list[threading.Thread]:
        name = self.path.name
        watcher = threading.Thread(
            target=self._watch,
            args=(quit,),
            name=f"sz-store-watch {name}",
            daemon=True,
        )
        if self.read_only:  # a checkpoint writes into the database file
            return [watcher]
        checkpointer = threading.Thread(
            target=self._checkpoints,
            args=(quit,),
            name=f"sz-store-checkpoint {name}",
            daemon=True,
        )
        return [checkpointer, watcher]

    def _sick(self, error: BaseException) -> bool:
        """A full disk or an I/O error, worth a retry.

        SQLite reports those (and a lock it waited on in vain) as operational
        errors; a constraint or a bad statement would fail the same way again.
        """
        return isinstance(error, sqlite3.OperationalError)

    def _wrap_error(self, error: BaseException) -> BaseException | None:
        if isinstance(error, sqlite3.Error):
            return StoreError(f"{self.path}: {error}")
        return None

    def _checkpoints(self, quit: threading.Event) -> None:
        """Copy the WAL into the database every second, beside the writer.

        SQLite would checkpoint on the writer's commit that fills 1,000 pages, and
        that commit would wait for the copy and its fsync. Here a connection of
        its own does it (``PASSIVE``: it never blocks the writer); the writer's
        commits only append to the WAL.
        """
        try:
            connection = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error:
            logger.exception("%s: no checkpoints beside the writer", self.path)
            return
        warned = False
        small_since: float | None = None
        try:
            while not quit.wait(CHECKPOINT_EVERY):
                try:
                    _, frames, _ = connection.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                except sqlite3.Error as exc:
                    logger.warning("%s: checkpoint failed: %s", self.path, exc)
                    continue
                if frames >= WAL_WARN and not warned:
                    warned = True
                    logger.warning(
                        "%s: the WAL has %d pages and cannot start over: a "
                        "reader keeps an old snapshot open",
                        self.path,
                        frames,
                    )
                if frames >= WAL_LIMIT:
                    small_since = None
                elif warned:
                    now = time.monotonic()
                    if small_since is None:
                        small_since = now
                    elif now - small_since >= WAL_REARM:
                        warned = False
                if frames >= WAL_LIMIT:
                    # Writes never paused long enough for the WAL to start over:
                    # the writer itself restarts it, between two transactions.
                    self._queue.put((_restart_wal, None, _READ))
        finally:
            connection.close()

    def _watch(self, quit: threading.Event) -> None:
        """Notice, within ``WATCH_EVERY`` seconds, the file deleted or replaced.

        Writes would go on into the locked file that nobody can open any more,
        and be lost: from then on every write and read fails instead.
        """
        fd = self._lock_fd
        if fd is None:
            return
        held = os.fstat(fd)
        while not quit.wait(WATCH_EVERY):
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                what = "deleted"
            except OSError:
                continue  # cannot tell (a sick disk): not proof of a lost file
            else:
                if (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
                    continue
                what = "replaced by another file"
            lost = StoreError(
                f"{self.path}: the store file was {what} while in use; nothing "
                f"more is written to it: restart ScheduleZero"
            )
            logger.error("%s", lost)
            self._lose(lost)
            return

    def _setup(self) -> sqlite3.Connection:
        """Open, lock and check the file (on the thread)."""
        if self.read_only:
            return _open_read_only(self.path)
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{path}: cannot create the store's directory {path.parent} "
                f"({exc.strerror}); choose another path (--store or store.url)"
            ) from None
        try:
            # Owner only: the file holds pickled arguments, to be guarded like
            # code (SQLite gives its -wal and -shm files the same mode).
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(
                f"{path}: cannot open the store for writing ({exc.strerror}); "
                f"choose a writable path (--store or store.url)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(
                f"{path}: another ScheduleZero is using this store; stop it, or "
                f"give this one a file of its own"
            ) from None
        self._lock_fd = fd
        try:
            connection = sqlite3.connect(
                path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_MS / 1000,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from None
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            app = connection.execute("PRAGMA application_id").fetchone()[0]
            tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if app != APPLICATION_ID and (version or tables[0]):
                raise StoreError(
                    f"{path}: another program's database, not a ScheduleZero store; "
                    f"point the store (--store or store.url) at a file of its own"
                )
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: written by a newer ScheduleZero (layout {version}, this "
                    f"one reads up to {SCHEMA_VERSION}); upgrade ScheduleZero or use "
                    f"another file"
                )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self.synchronous}")
            connection.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoints
            if version < SCHEMA_VERSION:
                # A new file gets the whole layout; an older one its migrations.
                steps = (
                    _SCHEMA
                    if version == 0
                    else "".join(_MIGRATIONS[v] for v in range(version, SCHEMA_VERSION))
                )
                with connection:
                    connection.executescript(
                        "BEGIN;"
                        + steps
                        + f"PRAGMA application_id={APPLICATION_ID};"
                        + f"PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
                    )
        except sqlite3.DatabaseError as exc:
            connection.close()
            if not os.access(path.parent, os.W_OK):
                # SQLite makes the store's -wal and -shm files beside it: a good
                # file in a read-only directory fails here, and is not damaged.
                directory = path.absolute().parent
                raise StoreError(
                    f"{path}: its directory {directory} is not writable, and SQLite "
                    f"keeps the store's -wal and -shm files beside it; make the "
                    f"directory writable, or move the store (--store or "
                    f"store.url)"
                ) from None
            raise StoreError(
                f"{path}: not a ScheduleZero store or damaged ({exc}); move it aside "
                f"and start afresh, or point the store (--store or store.url) at "
                f"another file"
            ) from None
        except BaseException:
            connection.close()
            raise
        connection.isolation_level = "DEFERRED"
        return connection

    def __repr__(self) -> str:
        return f"SqliteFile({str(self.path)!r})"
