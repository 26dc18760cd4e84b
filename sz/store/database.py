"""A database owned by one thread, written in batched transactions.

Everything that touches the database runs on that thread, in the order it was
asked for. Writes are queued without waiting and committed together (one
transaction per batch): a burst of fires or history rows costs one commit, not one
each. Whoever must know that a write is durable passes ``then``; it runs in the
event loop after the commit. Reads go through the same queue, so a read sees every
write asked for before it. The event loop never blocks on the database, under
asyncio or trio alike: the thread hands results back through AnyIO.

``Database`` is that thread; ``SqliteFile`` (``sqlite.py``) and ``PostgresDatabase``
(``postgres.py``) say how to connect, what a transaction is, and which failures
are worth a retry. The statements the stores write are the same for both: ``?``
placeholders, ``ON CONFLICT`` upserts and booleans; only times differ (``stamp``
and ``moment`` convert them).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import pickle
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import anyio

from actors.lowlevel import loop_caller

from ..errors import StoreError

__all__ = [
    "Connection",
    "DamagedValue",
    "Database",
    "Statements",
    "from_micros",
    "to_micros",
    "unpickle",
]

logger = logging.getLogger("sz.store")

T = TypeVar("T")

#: Seconds a write nobody waits on may wait for company before it is committed.
LAZY_COMMIT = 0.02

#: Writes in one transaction at most, when none is waited on.
BATCH = 5_000

#: Writes nobody waits on that a failing database left uncommitted, kept to
#: retry at most; past it the oldest are dropped (and the store is marked broken).
KEEP_LIMIT = 100_000

#: Seconds between retries of kept writes while nothing else is written.
RETRY_EVERY = 1.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class DamagedValue(Exception):
    """A value in the store cannot be read back; the store's owner names it."""


def unpickle(data: bytes, what: str) -> Any:
    """A value this store pickled (arguments, schedules, tasks), read back.

    Raises:
        DamagedValue: It cannot be read: a damaged store, or a class of its
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


class Cursor(Protocol):
    """What a statement's result offers: its rows."""

    def fetchone(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the stores' work is given: ``sqlite3.Connection``'s calls they use.

    ``with connection:`` is one transaction, committed or rolled back.
    """

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...  # noqa: D102

    def executemany(  # noqa: D102
        self, sql: str, parameters: Iterable[Sequence[Any]], /
    ) -> Any: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> Any: ...


#: Statements written together: ``((sql, params), ...)``.
Statements = tuple[tuple[str, tuple[Any, ...]], ...]

#: One write: a function of the connection, or statements applied together.
Work = Callable[[Any], Any] | Statements

#: Runs in the event loop with the result (or exception) of a queued item.
_Done = Callable[[Any, BaseException | None], None]

#: A queued item: ``(work, done, kind)``; ``done`` is None for writes that
#: nobody waits on.
_Item = tuple[Work, _Done | None, int]


def apply(connection: Connection, works: Sequence[Work]) -> None:
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


_STOP = object()

#: What a queued item is: a read, a write, or a write whose waiter can wait.
_READ, _WRITE, _LAZY = 0, 1, 2


class Database:
    """The thread that owns a database connection: queue writes, await reads.

    Subclasses say how to connect (``_connect``), which failures are the
    database's (worth keeping the writes to retry: ``_sick``) and whether it
    cannot be reached at all (``_down``), and how a batch is committed
    (``_commit``).

    Attributes:
        where: How messages name the database (a path, a URL without password).
        read_only: Opened for reading only: ``write`` refuses (False here).
        stamp: A time as this database stores it.
        moment: A time as this database gives it back, as an aware UTC datetime.
    """

    where: str
    read_only: bool = False
    #: What to do about a value that cannot be read back.
    _damaged_advice = "point the store (--store or store.url) elsewhere"
    stamp: Callable[[datetime], Any] = staticmethod(to_micros)
    moment: Callable[[Any], datetime] = staticmethod(from_micros)

    def __init__(self, where: str) -> None:
        self.where = where
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._call_soon: Callable[[Callable[[], None]], object] | None = None
        self._broken: BaseException | None = None
        #: The thread's connection (owned by the thread).
        self._connection: Any = None
        #: Writes nobody waits on that failed for a sick database, oldest first,
        #: retried before any other write (owned by the store's thread).
        self._kept: list[Work] = []
        #: Why the kept writes last failed; None once there are none.
        self._failing: BaseException | None = None
        #: Set once nothing more may be written (the file was deleted, ...).
        self._lost: StoreError | None = None
        #: Set when a write someone waits on (or a read, or the end) is queued.
        self._urgent = threading.Event()
        #: Runs in the event loop, once, when the store is found lost (a SQLite
        #: file deleted or replaced under the process; None by default: it is
        #: only logged).
        self.on_lost: Callable[[StoreError], None] | None = None

    @property
    def lost(self) -> StoreError | None:
        """Why nothing more may be written (file gone, node fenced out); else None."""
        return self._lost

    # ------------------------------------------------- what subclasses say

    def _connect(self) -> Any:
        """Open, check and set up the database (on the thread): the connection.

        Raises:
            StoreError: It cannot be used; the message says why and what to do.
        """
        raise NotImplementedError

    def _disconnect(self) -> None:
        """Close the connection (on the thread, at the end)."""
        if self._connection is not None:
            self._connection.close()

    def _helpers(self, quit: threading.Event) -> list[threading.Thread]:
        """Threads that run beside the writer until ``quit`` is set (none)."""
        return []

    def _commit(self, works: Sequence[Work]) -> None:
        """Apply ``works`` in one transaction."""
        connection = self._connection
        with connection:
            apply(connection, works)

    def _read(self, work: Callable[[Any], Any]) -> Any:
        """Run a read (or a waited-on flush) on the connection."""
        return work(self._connection)

    def _prepare(self) -> None:
        """Before a batch: make the connection usable if that can be done."""

    def _sick(self, error: BaseException) -> bool:
        """Whether a write failed for the database (worth a retry), not itself."""
        return False

    def _down(self, error: BaseException) -> bool:
        """Whether no write can succeed now (so none is tried alone)."""
        return False

    def _wrap_error(self, error: BaseException) -> BaseException | None:
        """The driver's error as a ``StoreError``, or None if not the driver's."""
        return None

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect, check the layout, start the thread.

        Raises:
            StoreError: The database cannot be used (the message says why).
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
            name=f"sz-store {self._short_name()}",
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
        self._closed()

    def _closed(self) -> None:
        """After the thread has ended (in the event loop)."""

    def _short_name(self) -> str:
        return self.where

    # --------------------------------------------------------------- the API

    def write(
        self,
        work: Work,
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
        One that nobody waits on and that fails for the database (a full disk,
        a lost server) is kept, in order, and retried before every later write
        until it is committed (``flush`` raises meanwhile); up to ``KEEP_LIMIT``
        of them. Any other failure is logged, and the store is marked broken so
        that the next awaited call raises.

        Never blocks; raises only on a store opened for reading.

        Raises:
            StoreError: The store is opened for reading only.
        """
        self._writable()
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

    async def write_and_wait(self, work: Callable[[Any], T]) -> T:
        """Apply ``work(connection)`` in the next transaction; its result, committed.

        One crossing to the thread and one transaction, shared with whatever
        else is queued: a change whose outcome the caller needs (was the row
        inserted?) without a read before it. Under PostgreSQL's pipeline a
        statement's outcome is known only at the commit, so ``work`` may
        return the cursor and the caller read its ``rowcount`` afterwards.

        Raises:
            StoreError: It failed (nothing of it was committed), or the store
                is opened for reading only, closed, lost or broken.
        """
        self._writable()
        result: list[T] = []

        def run(connection: Any) -> None:
            # Assigned, not appended: a batch that fails is tried again one
            # write at a time.
            result[:] = [work(connection)]

        await self._call(run, writes=True)
        return result[0]

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.where}: opened for reading only")

    async def read(self, work: Callable[[Any], T]) -> T:
        """Run ``work(connection)`` after every queued write; return its result."""
        return await self._call(work, writes=False)

    async def flush(self) -> None:
        """Wait until every write queued so far is committed.

        Raises:
            StoreError: A write failed, or writes wait to be retried (a full
                disk, a lost server): not everything queued is durable yet.
        """
        await self._call(lambda connection: None, writes=True)
        failing = self._failing
        if failing is not None:
            raise StoreError(
                f"{self.where}: {len(self._kept)} writes wait to be retried: {failing}"
            ) from failing

    async def _call(self, work: Callable[[Any], T], *, writes: bool) -> T:
        if self._thread is None:
            raise StoreError(f"{self.where}: the store is closed")
        if self._lost is not None:
            raise self._lost
        if self._broken is not None:
            raise StoreError(
                f"{self.where}: a write failed: {self._broken}"
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

    def _run(self, opened: _Done) -> None:
        try:
            self._connection = self._connect()
        except BaseException as exc:
            self._deliver([(opened, None, exc)])
            return
        self._deliver([(opened, None, None)])
        quit_helpers = threading.Event()
        helpers = self._helpers(quit_helpers)
        for helper in helpers:
            helper.start()
        stop = False
        try:
            while not stop:
                batch = self._gather()
                if any(item is _STOP for item in batch):
                    stop = True
                    batch = [item for item in batch if item is not _STOP]
                self._deliver(self._execute(batch))
            if self._kept:
                logger.error(
                    "%s: closed with %d writes the database would not take; jobs "
                    "without their final row are taken up again next start",
                    self.where,
                    len(self._kept),
                )
        finally:
            quit_helpers.set()
            for helper in helpers:
                helper.join()
            with contextlib.suppress(Exception):
                self._disconnect()

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
        self, batch: list[_Item]
    ) -> list[tuple[Any, Any, BaseException | None]]:
        """Run a batch: its writes in one transaction, then its reads."""
        replies: list[tuple[Any, Any, BaseException | None]] = []
        lost = self._lost
        if lost is not None:
            # Not into a store nobody can open again: every call fails instead.
            return [(done, None, lost) for _, done, _ in batch if done is not None]
        self._prepare()
        writes = [item for item in batch if item[2]]
        reads = [item for item in batch if not item[2]]
        if self._kept and not self._retry():
            # Still failing: writes nobody waits on queue up behind the kept
            # ones, so that a schedule's later state never lands before its
            # earlier one; waited-on writes are tried, and fail to their callers.
            self._keep([work for work, done, _ in writes if done is None])
            writes = [item for item in writes if item[1] is not None]
        if writes:
            try:
                self._commit([work for work, _, _ in writes])
            except BaseException as exc:
                if self._down(exc) or self._lost is not None:
                    # Nothing can be written now: each write fails as one would.
                    self._failed(writes, exc, replies)
                else:
                    # One by one, so that one bad write spoils only itself.
                    for item in writes:
                        try:
                            self._commit([item[0]])
                        except BaseException as each:
                            self._failed([item], each, replies)
                        else:
                            replies.append((item[1], None, None))
            else:
                replies.extend((done, None, None) for _, done, _ in writes)
        for work, done, _ in reads:
            assert callable(work)  # reads are functions of the connection
            try:
                replies.append((done, self._read(work), None))
            except BaseException as exc:
                replies.append((done, None, self._wrap(exc)))
        return replies

    def _lose(self, error: StoreError) -> None:
        """Nothing more may be written (on the thread): every call fails with ``error``.

        ``on_lost`` is told in the event loop, once.
        """
        if self._lost is not None:
            return
        self._lost = error
        on_lost = self.on_lost
        if on_lost is not None and self._call_soon is not None:
            # An ended event loop (RuntimeError) leaves nobody to tell.
            with contextlib.suppress(RuntimeError):
                self._call_soon(functools.partial(on_lost, error))

    def _failed(
        self,
        writes: list[_Item],
        error: BaseException,
        replies: list[tuple[Any, Any, BaseException | None]],
    ) -> None:
        """Writes that failed with ``error``: tell, keep, or mark the store broken."""
        lost = self._lost
        if lost is not None:
            # The store was lost in this very commit: its writes go nowhere
            # (logged once, when it was lost), its waiters hear why.
            replies.extend((done, None, lost) for _, done, _ in writes if done)
            return
        for work, done, _ in writes:
            if done is not None:
                # Its caller hears of it; the store stays usable.
                replies.append((done, None, self._wrap(error)))
            elif self._sick(error):
                if not self._kept:
                    logger.error(
                        "%s: a write failed, kept to retry: %s", self.where, error
                    )
                self._failing = error
                self._keep([work])
            else:
                logger.error("%s: a write failed: %r", self.where, error)
                self._broken = error

    def _keep(self, works: list[Work]) -> None:
        """Keep writes to retry, dropping the oldest past ``KEEP_LIMIT``."""
        kept = self._kept
        kept.extend(works)
        if len(kept) > KEEP_LIMIT:
            dropped = len(kept) - KEEP_LIMIT
            del kept[:dropped]
            logger.error(
                "%s: %d writes dropped, the database failed too long: %s",
                self.where,
                dropped,
                self._failing,
            )
            self._broken = StoreError(
                f"{self.where}: {dropped} writes were lost while the database failed"
            )

    def _retry(self) -> bool:
        """Commit the kept writes in one transaction; whether that worked."""
        try:
            self._commit(self._kept)
        except BaseException as exc:
            if not self._sick(exc):
                # Not the database: retrying would never end. Give up on them.
                logger.error(
                    "%s: %d kept writes failed: %r", self.where, len(self._kept), exc
                )
                self._kept.clear()
                self._failing = None
                self._broken = exc
                return True
            self._failing = exc
            return False
        logger.warning(
            "%s: the database writes again; %d kept writes committed",
            self.where,
            len(self._kept),
        )
        self._kept.clear()
        self._failing = None
        return True

    def _wrap(self, error: BaseException) -> BaseException:
        if isinstance(error, DamagedValue):
            return StoreError(f"{self.where}: damaged: {error}; {self._damaged_advice}")
        wrapped = self._wrap_error(error)
        return error if wrapped is None else wrapped

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
                    logger.exception("%s: a store callback failed", self.where)

        assert self._call_soon is not None
        try:
            # Queued, not waited for: the thread goes on to the next batch.
            self._call_soon(run_all)
        except RuntimeError:
            # The event loop is gone (the program is ending): nobody waits any more.
            logger.debug("%s: results dropped, the event loop has ended", self.where)
