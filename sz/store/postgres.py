"""A PostgreSQL database, owned by one thread, written in batched transactions.

The twin of the SQLite file (``sqlite.py``): the same thread, queue and batches
(``database.py``), the same statements, over one connection of sync psycopg 3 —
the async PostgreSQL drivers are asyncio's alone, and this runs under trio too.

Where things are: every table lives in one PostgreSQL schema, ``sz`` by default
(``?schema=NAME`` in the URL for another), made on first open with its layout
version in ``meta``; a second ScheduleZero on the same database and schema finds
the layout made and uses it. Times are ``timestamptz``. Besides SQLite's tables,
the layout already holds what several nodes sharing one database will need: a
``node`` column on accepted jobs and a unique key on ``(schedule_id, fire_time)``
(each fire accepted once), lease columns on schedules, and a ``nodes`` table;
leases will be measured on the database's clock (``now()``), never a node's.
A single node leaves them empty for now.

A lost connection (the server restarted, the backend terminated) is made again
before the next batch; a batch whose commit was cut off is looked up, by a
counter each batch's transaction raises in ``writers``, so that it is neither
lost nor written twice. While the server cannot be reached, writes nobody waits
on are kept and retried every second (``flush`` raises meanwhile), and writes
someone waits on fail at once with a ``StoreError`` naming the database: as on
a full disk, never silently.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StoreError
from .database import Cursor, Database, Work, apply
from .location import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import psycopg

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "PostgresDatabase"]

logger = logging.getLogger("sz.store")

#: The layout this code writes. A database of a newer layout is refused.
SCHEMA_VERSION = 2

#: The PostgreSQL schema the tables live in, unless the URL says ``?schema=``.
DEFAULT_SCHEMA = "sz"

#: Seconds a connection attempt may take.
CONNECT_TIMEOUT = 10

#: Seconds a start waits for the store's lock, which a ScheduleZero killed just
#: before still holds until the server notices its connection closed.
LOCK_WAIT = 5.0

#: What turns a database of layout N into layout N + 1.
_MIGRATIONS: dict[int, str] = {
    # 2: each schedule's final rows by finish time (its last run, at once)
    1: "CREATE INDEX IF NOT EXISTS history_by_schedule ON history "
    "(schedule_id, finished_at) WHERE final AND schedule_id IS NOT NULL",
}

_SCHEMA = """
-- Times are timestamptz. Lease columns will be compared with the database's
-- clock (now()), never a node's.
CREATE TABLE meta (
    name text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE tasks (
    id text PRIMARY KEY,
    data bytea NOT NULL
);
CREATE TABLE schedules (
    id text PRIMARY KEY,
    task text NOT NULL,
    next_fire_time timestamptz,
    last_fire_time timestamptz,
    paused boolean NOT NULL,
    -- the schedule as added; its trigger's state after each fire is in trigger
    data bytea NOT NULL,
    trigger bytea,
    -- the node that holds the schedule, and until when (several nodes; unused
    -- by a single node)
    lease_node text,
    lease_until timestamptz
);
CREATE INDEX schedules_by_next_fire ON schedules (next_fire_time);
CREATE TABLE jobs (
    id text PRIMARY KEY,
    schedule_id text,
    task text NOT NULL,
    scheduled_at timestamptz NOT NULL,
    accepted_at timestamptz NOT NULL,
    data bytea NOT NULL,
    -- the fire it was taken for, before jitter (NULL for a job of no schedule)
    fire_time timestamptz,
    -- the node that accepted it (several nodes; NULL for a single node)
    node text,
    CONSTRAINT jobs_one_per_fire UNIQUE (schedule_id, fire_time)
);
CREATE TABLE fired (
    schedule_id text PRIMARY KEY,
    fire_time timestamptz NOT NULL
);
CREATE TABLE history (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL,
    schedule_id text,
    task text NOT NULL,
    handler text,
    scheduled_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz NOT NULL,
    duration double precision,
    outcome text NOT NULL,
    error text,
    attempt integer NOT NULL,
    final boolean NOT NULL,
    reason text,
    waited double precision,
    arguments text,
    result bytea,
    note text,
    traceback text
);
CREATE INDEX history_by_finish ON history (finished_at);
CREATE INDEX history_by_job ON history (job_id);
CREATE INDEX history_by_schedule ON history (schedule_id, finished_at)
    WHERE final AND schedule_id IS NOT NULL;
-- the nodes sharing the database (several nodes; unused by a single node)
CREATE TABLE nodes (
    name text PRIMARY KEY,
    epoch bigint NOT NULL DEFAULT 0,
    lease_until timestamptz,
    endpoint text,
    started_at timestamptz NOT NULL DEFAULT now()
);
-- each open store's count of committed batches: a commit cut off by a lost
-- connection is looked up here, not guessed
CREATE TABLE writers (
    id text PRIMARY KEY,
    batch bigint NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

_MARK = "UPDATE writers SET batch = %s, written_at = clock_timestamp() WHERE id = %s"


def _utc(value: datetime) -> datetime:
    """A ``timestamptz`` read back, in UTC as the rest of ScheduleZero has it."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _same(value: datetime) -> datetime:
    return value


def _split_url(url: str) -> tuple[str, str]:
    """``(conninfo, schema)``: the URL without ``schema=``, which libpq refuses."""
    parts = urlsplit(url)
    schema = DEFAULT_SCHEMA
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not schema:
        raise StoreError(f"{redact(url)}: schema= names no schema")
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


class _Connection:
    """A psycopg connection with ``sqlite3.Connection``'s calls the stores use.

    ``?`` placeholders become ``%s``; ``with connection:`` is one transaction.
    """

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self._sql: dict[str, str] = {}
        self._transactions: list[Any] = []

    def _translated(self, sql: str) -> str:
        found = self._sql.get(sql)
        if found is None:
            found = self._sql[sql] = sql.replace("?", "%s")
        return found

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self.raw.execute(self._translated(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        with self.raw.cursor() as cursor:
            cursor.executemany(self._translated(sql), parameters)

    def __enter__(self) -> _Connection:
        # Pipeline mode: BEGIN, the batch's statements and COMMIT go out
        # together, one round trip to the server rather than one each.
        pipeline = self.raw.pipeline()
        pipeline.__enter__()
        try:
            transaction = self.raw.transaction()
            transaction.__enter__()
        except BaseException as exc:
            pipeline.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._transactions.append((pipeline, transaction))
        return self

    def __exit__(self, *exc: Any) -> Any:
        pipeline, transaction = self._transactions.pop()
        try:
            transaction.__exit__(*exc)
        except BaseException as error:
            pipeline.__exit__(type(error), error, error.__traceback__)
            raise
        pipeline.__exit__(*exc)
        return False

    def close(self) -> None:
        self.raw.close()

    @property
    def usable(self) -> bool:
        return not (self.raw.closed or self.raw.broken)


class PostgresDatabase(Database):
    """A PostgreSQL database: open it, queue writes, await reads, close it.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database`` (or
            ``postgres://``), with libpq's query parameters and ``schema=`` (the
            PostgreSQL schema of the tables, ``sz`` by default). Messages show
            it with its password replaced by ``***``.
    """

    _damaged_advice = (
        "drop the store's schema and start afresh, or point the store (--store "
        "or store.url) at another database or schema"
    )
    stamp = staticmethod(_same)
    moment = staticmethod(_utc)

    def __init__(self, url: str) -> None:
        super().__init__(redact(url))
        self.url = url
        self._conninfo, self.schema = _split_url(url)
        #: This store's row in ``writers``.
        self._writer = uuid.uuid4().hex
        self._batch = 0
        #: A batch whose COMMIT was cut off: ``(number, works)``; whether it
        #: happened is looked up once connected again.
        self._doubt: tuple[int, list[Work]] | None = None
        #: Whether the loss of the connection was logged (once per outage).
        self._outage = False

    # ------------------------------------------------------------ connecting

    def _open(self) -> _Connection:
        """A new connection, in the store's schema, on UTC."""
        import psycopg

        raw = psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="schedulezero",
        )
        try:
            raw.execute(
                "SELECT set_config('search_path', %s, false), "
                "set_config('TimeZone', 'UTC', false)",
                (_quoted(self.schema),),
            )
        except BaseException:
            raw.close()
            raise
        return _Connection(raw)

    def _connect(self) -> _Connection:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                f"{self.where}: a PostgreSQL store needs psycopg; install "
                f"schedulezero[postgresql] (or psycopg[binary])"
            ) from None
        try:
            connection = self._open()
        except psycopg.Error as exc:
            raise StoreError(
                f"{self.where}: cannot connect to PostgreSQL ({_first_line(exc)}); "
                f"check the URL (--store or store.url) and that the server runs"
            ) from None
        try:
            self._set_up(connection)
        except StoreError:
            connection.close()
            raise
        except psycopg.Error as exc:
            connection.close()
            raise StoreError(
                f"{self.where}: cannot set up the store in schema "
                f"{self.schema!r}: {_first_line(exc)}"
            ) from None
        return connection

    def _set_up(self, connection: _Connection) -> None:
        """Make the layout (or check it), and this store's row in ``writers``."""
        raw = connection.raw
        with raw.transaction():
            # Two nodes opening a new database at once: one makes the layout.
            raw.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"schedulezero {self.schema}",),
            )
            raw.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(self.schema)}")
            meta = raw.execute(
                "SELECT to_regclass(%s)", (f"{_quoted(self.schema)}.meta",)
            ).fetchone()
            if meta is None or meta[0] is None:
                tables = raw.execute(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = %s",
                    (self.schema,),
                ).fetchone()
                if tables is not None and tables[0]:
                    raise StoreError(
                        f"{self.where}: schema {self.schema!r} holds another "
                        f"program's tables, not a ScheduleZero store; name another "
                        f"schema (?schema=NAME in the URL)"
                    )
                raw.execute(_SCHEMA)
                raw.execute(
                    "INSERT INTO meta (name, value) VALUES ('layout', %s), "
                    "('application', 'schedulezero')",
                    (str(SCHEMA_VERSION),),
                )
            else:
                row = raw.execute(
                    "SELECT value FROM meta WHERE name = 'layout'"
                ).fetchone()
                version = int(row[0]) if row is not None else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.where}: written by a newer ScheduleZero (layout "
                        f"{version}, this one reads up to {SCHEMA_VERSION}); "
                        f"upgrade ScheduleZero or use another schema"
                    )
                for step in range(version, SCHEMA_VERSION):
                    raw.execute(_MIGRATIONS[step])
                if version < SCHEMA_VERSION:
                    raw.execute(
                        "UPDATE meta SET value = %s WHERE name = 'layout'",
                        (str(SCHEMA_VERSION),),
                    )
        self._register(connection)

    def _register(self, connection: _Connection) -> None:
        """Take the store's lock, and this store's row in ``writers``.

        One ScheduleZero per store, as one per SQLite file: two would fire every
        schedule twice. The lock is the connection's (a session advisory lock):
        a process that dies lets go of it as its connection closes, which the
        server notices within moments; it is waited for up to ``LOCK_WAIT``.

        Raises:
            StoreError: Another ScheduleZero holds the store.
        """
        key = f"schedulezero store {self.schema}"
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            row = connection.raw.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (key,)
            ).fetchone()
            if row is not None and row[0]:
                break
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"{self.where}: another ScheduleZero is using this store "
                    f"(schema {self.schema!r}); stop it, or give this one a "
                    f"schema of its own (?schema=NAME in the URL)"
                )
            time.sleep(0.05)
        connection.raw.execute(
            "INSERT INTO writers (id, batch) VALUES (%s, %s) ON CONFLICT (id) "
            "DO NOTHING",
            (self._writer, self._batch),
        )

    def _disconnect(self) -> None:
        connection: _Connection | None = self._connection
        if connection is None:
            return
        if connection.usable and self._doubt is None:
            connection.raw.execute("DELETE FROM writers WHERE id = %s", (self._writer,))
        connection.close()

    def _reconnect(self) -> int | None:
        """Connect again; the number of a batch in doubt found committed, if any.

        Raises:
            psycopg.OperationalError: The server cannot be reached, or another
                ScheduleZero took the store meanwhile (the store is then lost).
        """
        import psycopg

        old: _Connection = self._connection
        old.close()
        connection = self._open()
        self._connection = connection
        try:
            self._register(connection)
        except StoreError as exc:
            # Another ScheduleZero took the store while this one was cut off:
            # nothing more may be written by this one.
            logger.error("%s", exc)
            self._lost = exc
            raise psycopg.OperationalError(str(exc)) from exc
        if self._outage:
            logger.warning("%s: connected again", self.where)
            self._outage = False
        doubt, self._doubt = self._doubt, None
        if doubt is None:
            return None
        number, works = doubt
        row = connection.raw.execute(
            "SELECT batch FROM writers WHERE id = %s", (self._writer,)
        ).fetchone()
        if row is None or row[0] < number:
            return None
        # It was committed: writes of it kept to retry must not land twice.
        done = {id(work) for work in works}
        self._kept[:] = [work for work in self._kept if id(work) not in done]
        return number

    def _connection_lost(self, error: BaseException) -> None:
        if not self._outage:
            self._outage = True
            logger.error(
                "%s: the connection to PostgreSQL is lost (%s); connecting again",
                self.where,
                _first_line(error),
            )

    # ------------------------------------------------------------ committing

    def _prepare(self) -> None:
        import psycopg

        connection: _Connection = self._connection
        if connection.usable:
            return
        try:
            self._reconnect()
        except psycopg.OperationalError as exc:
            self._connection_lost(exc)

    def _attempt(self, works: Sequence[Work]) -> int:
        """One transaction of ``works`` and the batch counter; its number."""
        connection: _Connection = self._connection
        self._batch += 1
        number = self._batch
        committing = False
        try:
            with connection:
                apply(connection, works)
                connection.raw.execute(_MARK, (number, self._writer))
                committing = True
        except BaseException:
            if committing:
                # The COMMIT went out and no answer came back whole (the
                # connection cut, or the pipeline left in a state it cannot
                # leave): it may have happened or not.
                self._doubt = (number, list(works))
            raise
        return number

    def _commit(self, works: Sequence[Work]) -> None:
        import psycopg

        if not self._connection.usable:
            # Connecting again failed just now (``_prepare``): not twice a batch.
            raise psycopg.OperationalError("the connection is lost")
        try:
            self._attempt(works)
            return
        except psycopg.Error as exc:
            connection: _Connection = self._connection
            if connection.usable and self._doubt is None:
                raise  # the batch was refused: nothing of it was committed
            # Retrying it blindly could write it twice: the batch counter on a
            # new connection says whether it was committed.
            self._connection_lost(exc)
        number = self._batch
        committed = self._reconnect()  # raises if the server cannot be reached
        if committed == number:
            return
        self._attempt(works)

    def _read(self, work: Callable[[Any], Any]) -> Any:
        """Run a read; once more on a new connection if the old one was lost."""
        import psycopg

        try:
            return work(self._connection)
        except psycopg.OperationalError as exc:
            connection: _Connection = self._connection
            if connection.usable:
                raise
            self._connection_lost(exc)
        self._reconnect()  # raises if the server cannot be reached
        return work(self._connection)

    def _sick(self, error: BaseException) -> bool:
        """The server's trouble (lost, shutting down, out of disk): retry later."""
        import psycopg

        return isinstance(error, psycopg.OperationalError)

    def _down(self, error: BaseException) -> bool:
        import psycopg

        connection: _Connection = self._connection
        return isinstance(error, psycopg.OperationalError) and not connection.usable

    def _wrap_error(self, error: BaseException) -> BaseException | None:
        import psycopg

        if isinstance(error, psycopg.Error):
            return StoreError(f"{self.where}: {_first_line(error)}")
        return None

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.where!r})"


def _quoted(name: str) -> str:
    """An identifier, quoted for SQL."""
    return '"' + name.replace('"', '""') + '"'


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
