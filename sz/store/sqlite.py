"""One SQLite file, owned by one thread, written in batched transactions.

Everything that touches the database runs on that thread, in the order it was
asked for. Writes are queued without waiting and committed together (WAL, one
transaction per batch): a burst of fires or history rows costs one commit, not one
each. Whoever must know that a write is durable passes ``then``; it runs in the
event loop after the commit. Reads go through the same queue, so a read sees every
write asked for before it. The event loop never blocks on the disk, under asyncio
or trio alike: the thread hands results back through AnyIO.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import pickle
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio

from actors.lowlevel import loop_caller

from ..errors import StoreError

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "SqliteFile",
    "StoreError",
    "from_micros",
    "to_micros",
    "unpickle",
]

logger = logging.getLogger("sz.store")

T = TypeVar("T")

#: The layout this code writes. A file of a newer layout is refused, never touched.
SCHEMA_VERSION = 3

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
}

#: Seconds a write nobody waits on may wait for company before it is committed.
LAZY_COMMIT = 0.02

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

#: Writes in one transaction at most, when none is waited on.
BATCH = 5_000

#: Writes nobody waits on that a failing disk left uncommitted, kept to retry
#: at most; past it the oldest are dropped (and the store is marked broken).
KEEP_LIMIT = 100_000

#: Seconds between retries of kept writes while nothing else is written.
RETRY_EVERY = 1.0

#: Seconds between checks that the store's path still names the file opened.
WATCH_EVERY = 1.0

#: SQLite's ``application_id`` of a ScheduleZero store ("SZst"): how a store is
#: told from another program's database.
APPLICATION_ID = 0x535A7374

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class DamagedValue(Exception):
    """A value in the file cannot be read back; the file's owner names the file."""


def unpickle(data: bytes, what: str) -> Any:
    """A value this store pickled (arguments, schedules, tasks), read back.

    Raises:
        DamagedValue: It cannot be read: a damaged file, or a class of its
            arguments that the program no longer has. ``what`` names it.
    """
    try:
        return pickle.loads(data)
    except Exception as exc:
        raise DamagedValue(f"{what} cannot be read back ({exc!r})") from None


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: exact, so a row read back pages exactly."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """The inverse of ``to_micros``."""
    return _EPOCH + timedelta(microseconds=value)


_SCHEMA = """
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
    data BLOB NOT NULL
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
"""


#: One unit of work for the thread: ``work(connection)``, whose result (or
#: exception) goes to ``done`` in the event loop; ``done`` is None for writes that
#: nobody waits on.
#: Statements written together: ``((sql, params), ...)``.
Statements = tuple[tuple[str, tuple[Any, ...]], ...]

_Done = Callable[[Any, BaseException | None], None]
_Work = tuple[Callable[[sqlite3.Connection], Any] | Statements, _Done | None, int]


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


def _apply(
    connection: sqlite3.Connection,
    works: list[Callable[[sqlite3.Connection], Any] | Statements],
) -> None:
    """Apply writes in order; a run of writes of the same statements at once.

    Within such a run, each statement of the run goes through ``executemany``;
    the statements of one write touch different tables (a job and its fire), so
    grouping them by statement keeps every table's changes in order.
    """
    at = 0
    while at < len(works):
        work = works[at]
        if callable(work):
            work(connection)
            at += 1
            continue
        shape = [sql for sql, _ in work]
        end = at + 1
        while end < len(works):
            other = works[end]
            if callable(other) or [sql for sql, _ in other] != shape:
                break
            end += 1
        run = works[at:end]
        for index, sql in enumerate(shape):
            connection.executemany(sql, [w[index][1] for w in run])  # type: ignore[index]
        at = end


def _sick_disk(error: BaseException) -> bool:
    """Whether a write failed for the disk (full, an I/O error), worth a retry.

    SQLite reports those (and a lock it waited on in vain) as operational
    errors; a constraint or a bad statement would fail the same way again.
    """
    return isinstance(error, sqlite3.OperationalError)


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


_STOP = object()

#: What a queued item is: a read, a write, or a write whose waiter can wait.
_READ, _WRITE, _LAZY = 0, 1, 2


class SqliteFile:
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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.read_only = read_only
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._call_soon: Callable[[Callable[[], None]], object] | None = None
        self._lock_fd: int | None = None
        self._broken: BaseException | None = None
        #: Writes nobody waits on that failed for a sick disk, oldest first,
        #: retried before any other write (owned by the store's thread).
        self._kept: list[Callable[[sqlite3.Connection], Any] | Statements] = []
        #: Why the kept writes last failed; None once there are none.
        self._failing: BaseException | None = None
        #: Set once the path no longer names the file opened (deleted, replaced).
        self._lost: StoreError | None = None
        #: Runs in the event loop, once, when the file is found deleted or
        #: replaced under the process (None by default: it is only logged).
        self.on_lost: Callable[[StoreError], None] | None = None
        #: Set when a write someone waits on (or a read, or the end) is queued.
        self._urgent = threading.Event()

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Open (or create) the file, check its layout, start the thread.

        Raises:
            StoreError: The file is not a database, is of a newer layout, cannot be
                written, or another process has it open as a store.
        """
        self._call_soon = loop_caller()
        started = anyio.Event()
        failure: list[BaseException] = []

        def opened(_: Any, error: BaseException | None) -> None:
            if error is not None:
                failure.append(error)
            started.set()

        self._thread = threading.Thread(
            target=self._run,
            args=(opened,),
            name=f"sz-store {self.path.name}",
            daemon=True,
        )
        self._thread.start()
        await started.wait()
        if failure:
            await self.close()
            raise failure[0]

    async def close(self) -> None:
        """Commit what is queued, close the connection, end the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_STOP)
        self._urgent.set()
        # Joining waits for the last commit: a thread of our own, so the loop
        # stays free meanwhile.
        await anyio.to_thread.run_sync(thread.join)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --------------------------------------------------------------- the API

    def write(
        self,
        work: Callable[[sqlite3.Connection], Any] | Statements,
        then: Callable[[], None] | None = None,
        *,
        urgent: bool = True,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Queue a write; ``then()`` runs in the event loop once it is committed.

        A write with ``then`` is committed at once (with everything queued before
        it) unless it is not ``urgent``: then it may wait for company like a
        write nobody waits on (``LAZY_COMMIT``).

        ``work`` is a function of the connection, or a tuple of ``(sql, params)``
        statements applied together. Consecutive writes of the same statements
        run as one ``executemany`` each: a burst of fires or rows costs the thread
        (and the interpreter lock it shares with the event loop) far less.

        A write that someone waits on and that fails runs ``failed(error)``
        (a ``StoreError``) in the event loop instead of ``then``, and is dropped.
        One that nobody waits on and that fails for the disk (full, an I/O
        error) is kept, in order, and retried before every later write until it
        is committed (``flush`` raises meanwhile); up to ``KEEP_LIMIT`` of them.
        Any other failure is logged, and the store is marked broken so that the
        next awaited call raises.

        Never blocks, and raises only on a file opened ``read_only``.

        Raises:
            StoreError: The file is opened for reading only.
        """
        if self.read_only:
            raise StoreError(f"{self.path}: opened for reading only")
        if then is None and failed is None:
            self._queue.put((work, None, _WRITE))
            return

        def done(_: Any, error: BaseException | None) -> None:
            if error is None:
                if then is not None:
                    then()
            elif failed is not None:
                failed(error)

        self._queue.put((work, done, _WRITE if urgent else _LAZY))
        if urgent:
            self._urgent.set()

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` after every queued write; return its result."""
        return await self._call(work, writes=False)

    async def flush(self) -> None:
        """Wait until every write queued so far is committed.

        Raises:
            StoreError: A write failed, or writes wait to be retried (a full
                disk): not everything queued is durable yet.
        """
        await self._call(lambda connection: None, writes=True)
        failing = self._failing
        if failing is not None:
            raise StoreError(
                f"{self.path}: {len(self._kept)} writes wait for the disk: {failing}"
            ) from failing

    async def _call(
        self, work: Callable[[sqlite3.Connection], T], *, writes: bool
    ) -> T:
        if self._thread is None:
            raise StoreError(f"{self.path}: the store is closed")
        if self._lost is not None:
            raise self._lost
        if self._broken is not None:
            raise StoreError(
                f"{self.path}: a write failed: {self._broken}"
            ) from self._broken
        finished = anyio.Event()
        box: list[Any] = []

        def done(result: Any, error: BaseException | None) -> None:
            box.append((result, error))
            finished.set()

        self._queue.put((work, done, _WRITE if writes else _READ))
        self._urgent.set()
        await finished.wait()
        result, error = box[0]
        if error is not None:
            raise error
        return result  # type: ignore[no-any-return]

    # ------------------------------------------------------------ the thread

    def _run(self, opened: Callable[[Any, BaseException | None], None]) -> None:
        try:
            connection = self._setup()
        except BaseException as exc:
            self._deliver([(opened, None, exc)])
            return
        self._deliver([(opened, None, None)])
        quit_checkpoints = threading.Event()
        checkpointer = threading.Thread(
            target=self._checkpoints,
            args=(quit_checkpoints,),
            name=f"sz-store-checkpoint {self.path.name}",
            daemon=True,
        )
        if not self.read_only:  # a checkpoint writes into the database file
            checkpointer.start()
        watcher = threading.Thread(
            target=self._watch,
            args=(quit_checkpoints,),
            name=f"sz-store-watch {self.path.name}",
            daemon=True,
        )
        watcher.start()
        stop = False
        try:
            while not stop:
                batch = self._gather()
                if any(item is _STOP for item in batch):
                    stop = True
                    batch = [item for item in batch if item is not _STOP]
                self._deliver(self._execute(connection, batch))
            if self._kept:
                logger.error(
                    "%s: closed with %d writes the disk would not take; jobs "
                    "without their final row are taken up again next start",
                    self.path,
                    len(self._kept),
                )
        finally:
            quit_checkpoints.set()
            if checkpointer.is_alive():
                checkpointer.join()
            watcher.join()
        connection.close()

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
            self._lost = lost
            on_lost = self.on_lost
            if on_lost is not None and self._call_soon is not None:
                # An ended event loop (RuntimeError) leaves nobody to tell.
                with contextlib.suppress(RuntimeError):
                    self._call_soon(functools.partial(on_lost, lost))
            return

    def _gather(self) -> list[Any]:
        """The next batch: what is queued, held back a little if nobody waits.

        A write someone waits on (``then``, a flush, a read) is committed at once
        with everything queued before it. Writes nobody waits on (a schedule's
        new fire time, a history row) wait up to ``LAZY_COMMIT`` seconds for such
        a write or for ``BATCH`` companions, so that a steady trickle of fires
        costs one commit per fire rather than three.
        """
        try:
            # Kept writes are retried even when nothing else comes.
            first = self._queue.get(timeout=RETRY_EVERY if self._kept else None)
        except queue.Empty:
            return []
        if first is _STOP or (first[1] is not None and first[2] != _LAZY):
            return [first, *self._drain()]
        # Sleep through the window unless a waited-on write arrives: writes
        # nobody waits on do not wake this thread one by one (each wake-up would
        # take the interpreter lock from the event loop).
        self._urgent.wait(LAZY_COMMIT)
        self._urgent.clear()
        return [first, *self._drain()]

    def _drain(self) -> list[Any]:
        """Everything queued now."""
        items: list[Any] = []
        while len(items) < BATCH:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _execute(
        self, connection: sqlite3.Connection, batch: list[_Work]
    ) -> list[tuple[Any, Any, BaseException | None]]:
        """Run a batch: its writes in one transaction, then its reads."""
        replies: list[tuple[Any, Any, BaseException | None]] = []
        lost = self._lost
        if lost is not None:
            # Not into a file nobody can open again: every call fails instead.
            return [(done, None, lost) for _, done, _ in batch if done is not None]
        writes = [item for item in batch if item[2]]
        reads = [item for item in batch if not item[2]]
        if self._kept and not self._retry(connection):
            # Still failing: writes nobody waits on queue up behind the kept
            # ones, so that a schedule's later state never lands before its
            # earlier one; waited-on writes are tried, and fail to their callers.
            self._keep([work for work, done, _ in writes if done is None])
            writes = [item for item in writes if item[1] is not None]
        if writes:
            try:
                with connection:  # one transaction, committed or rolled back
                    _apply(connection, [work for work, _, _ in writes])
            except BaseException:
                # Apply them one by one so that one bad write spoils only itself.
                for work, done, _ in writes:
                    try:
                        with connection:
                            _apply(connection, [work])
                    except BaseException as each:
                        if done is not None:
                            # Its caller hears of it; the store stays usable.
                            replies.append((done, None, self._wrap(each)))
                        elif _sick_disk(each):
                            if not self._kept:
                                logger.error(
                                    "%s: a write failed, kept to retry: %s",
                                    self.path,
                                    each,
                                )
                            self._failing = each
                            self._keep([work])
                        else:
                            logger.error("%s: a write failed: %r", self.path, each)
                            self._broken = each
                    else:
                        replies.append((done, None, None))
            else:
                replies.extend((done, None, None) for _, done, _ in writes)
        for work, done, _ in reads:
            assert callable(work)  # reads are functions of the connection
            try:
                replies.append((done, work(connection), None))
            except BaseException as exc:
                replies.append((done, None, self._wrap(exc)))
        return replies

    def _keep(
        self, works: list[Callable[[sqlite3.Connection], Any] | Statements]
    ) -> None:
        """Keep writes to retry, dropping the oldest past ``KEEP_LIMIT``."""
        kept = self._kept
        kept.extend(works)
        if len(kept) > KEEP_LIMIT:
            dropped = len(kept) - KEEP_LIMIT
            del kept[:dropped]
            logger.error(
                "%s: %d writes dropped, the disk failed too long: %s",
                self.path,
                dropped,
                self._failing,
            )
            self._broken = StoreError(
                f"{self.path}: {dropped} writes were lost while the disk failed"
            )

    def _retry(self, connection: sqlite3.Connection) -> bool:
        """Commit the kept writes in one transaction; whether that worked."""
        try:
            with connection:
                _apply(connection, self._kept)
        except BaseException as exc:
            if not _sick_disk(exc):
                # Not the disk: retrying would never end. Give up on them.
                logger.error(
                    "%s: %d kept writes failed: %r", self.path, len(self._kept), exc
                )
                self._kept.clear()
                self._failing = None
                self._broken = exc
                return True
            self._failing = exc
            return False
        logger.warning(
            "%s: the disk writes again; %d kept writes committed",
            self.path,
            len(self._kept),
        )
        self._kept.clear()
        self._failing = None
        return True

    def _wrap(self, error: BaseException) -> BaseException:
        if isinstance(error, sqlite3.Error):
            return StoreError(f"{self.path}: {error}")
        if isinstance(error, DamagedValue):
            return StoreError(
                f"{self.path}: damaged: {error}; move the file aside and start "
                f"afresh, or point the store (--store or store.url) at another file"
            )
        return error

    def _deliver(self, replies: list[tuple[Any, Any, BaseException | None]]) -> None:
        """Hand results to the event loop, all of a batch in one call."""
        waiting = [reply for reply in replies if reply[0] is not None]
        if not waiting:
            return

        def run_all() -> None:
            for done, result, error in waiting:
                try:
                    done(result, error)
                except Exception:
                    logger.exception("%s: a store callback failed", self.path)

        assert self._call_soon is not None
        try:
            # Queued, not waited for: the thread goes on to the next batch.
            self._call_soon(run_all)
        except RuntimeError:
            # The event loop is gone (the program is ending): nobody waits any more.
            logger.debug("%s: results dropped, the event loop has ended", self.path)

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
