"""A PostgreSQL database, owned by one thread, written in batched transactions.

The twin of the SQLite file (``sqlite.py``): the same thread, queue and batches
(``database.py``), the same statements, over one connection of sync psycopg 3 —
the async PostgreSQL drivers are asyncio's alone, and this runs under trio too.

Where things are: every table lives in one PostgreSQL schema, ``sz`` by default
(``?schema=NAME`` in the URL for another), made on first open with its layout
version in ``meta``; a second ScheduleZero on the same database and schema finds
the layout made and uses it. Times are ``timestamptz``. Besides SQLite's tables,
the layout holds what several nodes sharing one database need: a ``node``
column on accepted jobs and a unique key on ``(schedule_id, fire_time)`` (each
fire accepted once), lease columns on schedules, a ``nodes`` table and the
``fence`` function (``nodes.py``); leases are measured on the database's clock
(``now()``), never a node's.

Opened for a node (``node=``: what ``ScheduleZero`` does), the store is shared:
the node's row is made or taken at open, every batch's transaction starts with
the node's fence, a listener connection wakes the node when another changes a
schedule (``LISTEN``), and nodes hold a shared lock. Opened without a node (a
``ScheduleStore`` alone, the benchmarks), one process holds the store alone, as
one holds a SQLite file. Opened ``read_only`` (``sz history --store``), nothing
is written, locked or registered: every transaction is read-only.

A lost connection (the server restarted, the backend terminated) is made again
at once and the batch or read retried on it, again while each new connection
is lost in turn (up to ``RECONNECTS``): a loss that connecting again makes good
is nobody's error. A batch whose commit was cut off is looked up, by a counter
each batch's transaction raises in ``writers``, so that it is neither lost nor
written twice. While the server cannot be reached, writes nobody waits
on are kept and retried every second (``flush`` raises meanwhile), and writes
someone waits on fail at once with a ``StoreError`` naming the database: as on
a full disk, never silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import FencedOut, StoreError
from . import nodes
from .database import Cursor, Database, Work, apply
from .location import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import psycopg

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "PostgresDatabase"]

logger = logging.getLogger("sz.store")

T = TypeVar("T")

#: The layout this code writes. A database of a newer layout is refused.
SCHEMA_VERSION = 3

#: The PostgreSQL schema the tables live in, unless the URL says ``?schema=``.
DEFAULT_SCHEMA = "sz"

#: Seconds a connection attempt may take.
CONNECT_TIMEOUT = 10

#: New connections in a row that may be lost under one batch (or read) before
#: its callers hear of the loss: the server is reachable, so each loss is
#: made good by connecting again, but a write that itself ends its session
#: would otherwise be retried for ever.
RECONNECTS = 5

#: SQLSTATEs of a session the server ended (``pg_terminate_backend``, a
#: restart): the connection is gone, even before psycopg has noticed.
_SESSION_ENDED = frozenset({"57P01", "57P02"})

#: Seconds a start waits for the store's lock, which a ScheduleZero killed just
#: before still holds until the server notices its connection closed.
LOCK_WAIT = 5.0

#: Scenario runs and their results (``scenario_runs.py``): layout 2's tables,
#: with the fence. ``node`` is the node that ran it (None off a cluster).
_SCENARIO_TABLES = """
CREATE TABLE scenario_runs (
    run_id text PRIMARY KEY,
    node text,
    scenario_id text NOT NULL,
    name text NOT NULL,
    seed bigint NOT NULL,
    parameters text NOT NULL,
    schedule_id text,
    started_at timestamptz NOT NULL,
    -- NULL while the run runs
    finished_at timestamptz,
    outcome text,
    error text,
    passed boolean,
    units text NOT NULL,
    -- the result's JSON export
    result text
);
CREATE INDEX scenario_runs_by_start ON scenario_runs (started_at);
CREATE INDEX scenario_runs_by_scenario ON scenario_runs (scenario_id, started_at);
CREATE TABLE scenario_metrics (
    run_id text NOT NULL,
    name text NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (run_id, name)
);
"""

#: Seconds the listener waits for a notification before it looks whether to end.
LISTEN_POLL = 0.25

#: What turns a database of layout N into layout N + 1.
_MIGRATIONS: dict[int, str] = {
    # 2: the fence of several nodes, and scenario runs and their results
    1: nodes.FENCE_LAYOUT + _SCENARIO_TABLES,
    # 3: each schedule's final rows by finish time (its last run, at once)
    2: "CREATE INDEX IF NOT EXISTS history_by_schedule ON history "
    "(schedule_id, finished_at) WHERE final AND schedule_id IS NOT NULL",
}

_SCHEMA = (
    """
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
    -- the node that holds the schedule, and until when (on the database's
    -- clock; a store opened without a node leaves them empty)
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
    -- the node whose job it is (NULL: opened without a node)
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
-- the nodes sharing the database (nodes.py): a row per name, never deleted
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
    + nodes.FENCE_LAYOUT
    + _SCENARIO_TABLES
)

_MARK = "UPDATE writers SET batch = %s, written_at = clock_timestamp() WHERE id = %s"

_FENCE = "SELECT fence(%s, %s)"

_FENCED_MARK = (
    "WITH node_fence AS MATERIALIZED (SELECT fence(%s, %s)) "
    "UPDATE writers SET batch = %s, written_at = clock_timestamp() "
    "FROM node_fence WHERE id = %s"
)


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
        # Pipeline mode, with BEGIN and COMMIT as statements of their own:
        # BEGIN, the batch's statements and COMMIT go out together and are
        # answered at one sync, one round trip. (psycopg's ``transaction()``
        # syncs as it begins, in pipeline mode too: a round trip more.)
        pipeline = self.raw.pipeline()
        pipeline.__enter__()
        try:
            self.raw.execute("BEGIN")
        except BaseException as exc:
            pipeline.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._transactions.append(pipeline)
        return self

    def __exit__(self, *exc: Any) -> Any:
        pipeline = self._transactions.pop()
        try:
            if exc[0] is None:
                self.raw.execute("COMMIT")
            # The sync: every statement's answer, or the first one's error.
            pipeline.__exit__(*exc)
        except BaseException:
            self._roll_back()
            raise
        if exc[0] is not None:
            self._roll_back()
        return False

    def _roll_back(self) -> None:
        """End a transaction an error left open, unless its connection is gone.

        After an error the server skips the rest of the pipeline, COMMIT too.
        """
        import psycopg

        raw = self.raw
        if raw.closed or raw.broken:
            return
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                raw.execute("ROLLBACK")

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
        node: Open it as this node of several sharing the store (see the
            module's docstring); None (the default) to hold it alone.
        read_only: Open it for reading only, False by default: the layout
            must be there and of this code's version exactly; nothing is made,
            migrated, locked or registered, every transaction is read-only, and
            ``write`` raises.

    Attributes:
        epoch: The node's epoch once open (None without a node).
        channel: The channel schedule changes are notified on.
        on_notify: Runs in the event loop when another connection notified a
            schedule change (None by default: nothing runs).
    """

    _damaged_advice = (
        "drop the store's schema and start afresh, or point the store (--store "
        "or store.url) at another database or schema"
    )
    stamp = staticmethod(_same)
    moment = staticmethod(_utc)

    def __init__(
        self,
        url: str,
        *,
        node: nodes.NodeSettings | None = None,
        read_only: bool = False,
    ) -> None:
        super().__init__(redact(url))
        self.url = url
        self.node = None if read_only else node
        self.read_only = read_only
        self.epoch: int | None = None
        self.on_notify: Callable[[], None] | None = None
        self._conninfo, self.schema = _split_url(url)
        self.channel = "sz_" + hashlib.sha256(self.schema.encode()).hexdigest()[:20]
        #: This store's row in ``writers`` (a node's name shows whose it is).
        self._writer = (
            uuid.uuid4().hex if node is None else f"{node.name}/{uuid.uuid4().hex}"
        )
        self._batch = 0
        #: A batch whose COMMIT was cut off: ``(number, works)``; whether it
        #: happened is looked up once connected again.
        self._doubt: tuple[int, list[Work]] | None = None
        #: Whether the loss of the connection was logged (once per outage).
        self._outage = False
        #: The server process of the writer's connection (its notifications
        #: are this node's own).
        self._writer_pid = 0

    # ------------------------------------------------------------ connecting

    def _open(self, role: str = "") -> _Connection:
        """A new connection, in the store's schema, on UTC."""
        connection = self._dial(role)
        self._configure(connection)
        return connection

    def _dial(self, role: str = "") -> _Connection:
        """A new connection, as the server gave it (the server answered)."""
        import psycopg

        return _Connection(
            psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name=nodes.application_name(
                    None if self.node is None else self.node.name, role
                ),
            )
        )

    def _configure(self, connection: _Connection) -> None:
        """Set a new connection's session up: schema, UTC; closed if that fails."""
        raw = connection.raw
        # A node stopped inside a transaction would hold its row locks (and
        # its node row) for as long as it stays stopped: the server ends such
        # a session after half a lease, so that a takeover can proceed.
        idle = 0 if self.node is None else int(self.node.lease * 500)
        try:
            raw.execute(
                "SELECT set_config('search_path', %s, false), "
                "set_config('TimeZone', 'UTC', false), "
                "set_config('idle_in_transaction_session_timeout', %s, false), "
                "set_config('default_transaction_read_only', %s, false)",
                (
                    _quoted(self.schema),
                    str(idle),
                    "on" if self.read_only else "off",
                ),
            )
        except BaseException:
            raw.close()
            raise

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
        if self.read_only:
            self._check_layout(raw)
            return
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
        self._writer_pid = raw.info.backend_pid
        if self.node is not None:
            registration = nodes.register(raw, self.node)
            self.epoch = registration.epoch
            if registration.displaced:
                logger.warning(
                    "%s: node %s was alive in another process: that process is "
                    "fenced out now (give each node a name of its own, --node)",
                    self.where,
                    self.node.name,
                )
            logger.info(
                "%s: node %s, epoch %d (lease %gs, heartbeat %gs)",
                self.where,
                self.node.name,
                self.epoch,
                self.node.lease,
                self.node.heartbeat,
            )

    def _check_layout(self, raw: Any) -> None:
        """For reading only: the layout must be there, and this code's exactly.

        Raises:
            StoreError: No store in the schema, or one of another layout.
        """
        meta = raw.execute(
            "SELECT to_regclass(%s)", (f"{_quoted(self.schema)}.meta",)
        ).fetchone()
        if meta is None or meta[0] is None:
            raise StoreError(
                f"{self.where}: no ScheduleZero store in schema {self.schema!r}"
            )
        row = raw.execute("SELECT value FROM meta WHERE name = 'layout'").fetchone()
        version = int(row[0]) if row is not None else 0
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.where}: a store of layout {version}, and this ScheduleZero "
                f"reads layout {SCHEMA_VERSION}; open it with a matching version "
                f"(sz serve brings an older layout up to date)"
            )

    def _register(self, connection: _Connection) -> None:
        """Take the store's lock, and this store's row in ``writers``.

        Without a node, one ScheduleZero per store, as one per SQLite file: two
        would fire every schedule twice. Nodes share the store: they take the
        lock shared, which keeps out only a ScheduleZero that wants it alone.
        The lock is the connection's (a session advisory lock): a process that
        dies lets go of it as its connection closes, which the server notices
        within moments; it is waited for up to ``LOCK_WAIT``.

        Raises:
            StoreError: Another ScheduleZero holds the store (alone, or as
                nodes while this one would hold it alone).
        """
        key = f"schedulezero store {self.schema}"
        take = (
            "pg_try_advisory_lock(hashtext(%s))"
            if self.node is None
            else "pg_try_advisory_lock_shared(hashtext(%s))"
        )
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            row = connection.raw.execute(f"SELECT {take}", (key,)).fetchone()
            if row is not None and row[0]:
                break
            if time.monotonic() >= deadline:
                if self.node is not None:
                    raise StoreError(
                        f"{self.where}: a ScheduleZero that is no node holds this "
                        f"store alone (schema {self.schema!r}); stop it, or give "
                        f"the nodes a schema of their own (?schema=NAME in the URL)"
                    )
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

    def _still_ours(self, connection: _Connection) -> None:
        """On a new connection: the node's row must still have its epoch.

        Raises:
            FencedOut: It was taken over while the connection was lost.
        """
        if self.node is None:
            return
        row = connection.raw.execute(
            "SELECT epoch FROM nodes WHERE name = %s", (self.node.name,)
        ).fetchone()
        if row is None or row[0] != self.epoch:
            raise self._fenced_error("while its connection was lost")

    def _fenced_error(self, when: str) -> FencedOut:
        assert self.node is not None
        return FencedOut(
            f"{self.where}: node {self.node.name} (epoch {self.epoch}) is fenced "
            f"out: another node took over its row {when} (it was silent past its "
            f"lease of {self.node.lease:g}s); it stops and writes nothing more"
        )

    def fence_out(self, when: str) -> FencedOut:
        """Mark this node fenced out (on the store's thread): nothing more is written.

        The owner's ``on_lost`` is told. Returns the error every call now raises.
        """
        error = self._fenced_error(when)
        if self._lost is None:
            logger.error("%s", error)
            self._lose(error)
        return error

    def leave(self) -> None:
        """On the thread, at a clean close: end the node's lease now."""
        if self.node is not None and self.epoch is not None and self._lost is None:
            nodes.leave(self._connection.raw, self.node, self.epoch)

    def _disconnect(self) -> None:
        connection: _Connection | None = self._connection
        if connection is None:
            return
        try:
            # Lost (fenced out): not one more write, its writers row included.
            writable = not self.read_only and self._lost is None
            if connection.usable and self._doubt is None and writable:
                connection.raw.execute(
                    "DELETE FROM writers WHERE id = %s", (self._writer,)
                )
                # Its leftover accepted jobs go to the other nodes at once
                # rather than when its lease would have run out.
                self.leave()
        finally:
            connection.close()

    def _helpers(self, quit: threading.Event) -> list[threading.Thread]:
        """A node listens for schedule changes beside the writer."""
        if self.node is None:
            return []
        return [
            threading.Thread(
                target=self._listen,
                args=(quit,),
                name=f"sz-store-listen {self.schema}",
                daemon=True,
            )
        ]

    def _listen(self, quit: threading.Event) -> None:
        """Tell ``on_notify`` of each burst of schedule changes, until ``quit``.

        A connection of its own, made again (every ``RETRY_EVERY``) while the
        server cannot be reached: the wake-ups are a shortcut, and the nodes'
        polling, at least once a second, does not rest on them.
        """
        import psycopg

        while not quit.is_set():
            try:
                connection = self._open("listener")
            except psycopg.Error:
                quit.wait(1.0)
                continue
            try:
                raw = connection.raw
                raw.execute(f"LISTEN {_quoted(self.channel)}")
                while not quit.is_set():
                    for notify in raw.notifies(timeout=LISTEN_POLL):
                        # This node's own changes woke its loop already.
                        if notify.pid != self._writer_pid:
                            self._notified()
                        if quit.is_set():
                            break
            except psycopg.Error as exc:
                logger.debug("%s: the listener lost its connection: %s", self, exc)
                quit.wait(1.0)
            finally:
                connection.close()

    def _notified(self) -> None:
        on_notify, call_soon = self.on_notify, self._call_soon
        if on_notify is None or call_soon is None:
            return
        with contextlib.suppress(RuntimeError):  # the event loop has ended
            call_soon(on_notify)

    def _reconnect(self) -> int | None:
        """Connect again; the number of a batch in doubt found committed, if any.

        Raises:
            psycopg.OperationalError: The server cannot be reached, the new
                connection was lost too, or another ScheduleZero took the
                store meanwhile (the store is then lost).
        """
        import psycopg

        old: _Connection = self._connection
        old.close()
        connection = self._dial()
        # The server answered: a loss from here on is this connection's, and
        # ``_recover`` connects again rather than take the server for gone.
        self._connection = connection
        self._configure(connection)
        self._writer_pid = connection.raw.info.backend_pid
        try:
            if not self.read_only:
                self._register(connection)
                self._still_ours(connection)
        except FencedOut as exc:
            self.fence_out("while its connection was lost")
            raise psycopg.OperationalError(str(exc)) from exc
        except StoreError as exc:
            # Another ScheduleZero took the store while this one was cut off:
            # nothing more may be written by this one.
            logger.error("%s", exc)
            self._lost = exc
            raise psycopg.OperationalError(str(exc)) from exc
        if self._outage:
            logger.warning("%s: connected again", self.where)
            self._outage = False
        doubt = self._doubt
        if doubt is None:
            return None
        number, works = doubt
        row = connection.raw.execute(
            "SELECT batch FROM writers WHERE id = %s", (self._writer,)
        ).fetchone()
        # Only once it is known: a new connection lost before the answer leaves
        # the batch in doubt for the next one to look up.
        self._doubt = None
        if row is None or row[0] < number:
            return None
        # It was committed: writes of it kept to retry must not land twice.
        done = {id(work) for work in works}
        self._kept[:] = [work for work in self._kept if id(work) not in done]
        return number

    def _recover(self) -> int | None:
        """Connect again (``_reconnect``), as often as the new connection is lost.

        A backend ended while it is set up (``pg_terminate_backend`` twice in a
        row, a failover) is no reason to fail a batch: the server answered, so
        another connection is made, up to ``RECONNECTS`` in a row.

        Raises:
            psycopg.OperationalError: The server cannot be reached, the store
                is lost, or ``RECONNECTS`` new connections in a row were lost.
        """
        import psycopg

        tries = 0
        while True:
            tries += 1
            before = self._connection
            try:
                return self._reconnect()
            except psycopg.OperationalError as exc:
                made = self._connection is not before
                if not made or self._lost is not None or tries >= RECONNECTS:
                    raise
                if not self._gone(exc):
                    raise  # the new connection refused a statement: no loss
                self._connection_lost(exc)

    def _gone(self, error: BaseException) -> bool:
        """Whether ``error`` was the connection's loss, not a statement refused.

        The server's word that it ended the session can come before psycopg
        finds the socket closed: the connection then still looks usable.
        """
        connection: _Connection = self._connection
        if not connection.usable:
            return True
        state = getattr(error, "sqlstate", None)
        return isinstance(state, str) and (
            state in _SESSION_ENDED or state.startswith("08")
        )

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
            self._recover()
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
                # First, the batch counter and, for a node, its fence (one
                # statement: each costs the pipeline a parse and an answer):
                # a node whose row was taken over commits nothing.
                if self.node is None:
                    connection.raw.execute(_MARK, (number, self._writer))
                else:
                    connection.raw.execute(
                        _FENCED_MARK,
                        (self.node.name, self.epoch, number, self._writer),
                    )
                apply(connection, works)
                committing = True
        except BaseException as exc:
            if _is_fenced(exc):
                raise self.fence_out("while it was silent") from None
            if committing:
                # The COMMIT went out and no answer came back whole (the
                # connection cut, or the pipeline left in a state it cannot
                # leave): it may have happened or not.
                self._doubt = (number, list(works))
            raise
        return number

    def _commit(self, works: Sequence[Work]) -> None:
        """Commit ``works`` in one transaction, on new connections if lost.

        A connection lost under the batch is made again and the batch retried
        (or found committed), up to ``RECONNECTS`` times in a row: its waiters
        hear of a loss only when the server cannot be reached, never of one
        that connecting again made good.
        """
        import psycopg

        if not self._connection.usable:
            # Connecting again failed just now (``_prepare``): not twice a batch.
            raise psycopg.OperationalError("the connection is lost")
        tries = 0
        while True:
            tries += 1
            try:
                self._attempt(works)
                return
            except psycopg.Error as exc:
                if self._doubt is None and not self._gone(exc):
                    raise  # the batch was refused: nothing of it was committed
                if tries > RECONNECTS:
                    raise
                # Retrying it blindly could write it twice: the batch counter
                # on a new connection says whether it was committed.
                self._connection_lost(exc)
            number = self._batch
            # Raises if the server cannot be reached: the batch fails as one.
            if self._recover() == number:
                return

    def _read(self, work: Callable[[Any], Any]) -> Any:
        """Run a read; again on a new connection while the connection is lost.

        Up to ``RECONNECTS`` new connections in a row, as a batch.
        """
        import psycopg

        tries = 0
        while True:
            tries += 1
            try:
                return work(self._connection)
            except psycopg.OperationalError as exc:
                if not self._gone(exc) or tries > RECONNECTS:
                    raise
                self._connection_lost(exc)
            self._recover()  # raises if the server cannot be reached

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

    async def transact(self, work: Callable[[Any], T]) -> T:
        """Run ``work(raw connection)`` in a transaction of its own; its result.

        After every write queued before it. A node's transaction starts with
        its fence, as every batch does: a node fenced out changes nothing.
        In pipeline mode: BEGIN, the fence and ``work``'s statements go out
        together until ``work`` reads a result, and COMMIT after; ``work`` must
        not use what pipeline mode refuses (``COPY``, server-side cursors).
        A checkpoint.

        Raises:
            FencedOut: This node's row was taken over.
            StoreError: The database refused it, or cannot be reached.
        """
        node = self.node

        def run(connection: _Connection) -> T:
            raw = connection.raw
            try:
                # A batch's transaction (``_Connection``): BEGIN is no round
                # trip of its own.
                with connection:
                    if node is not None:
                        raw.execute(_FENCE, (node.name, self.epoch))
                    return work(raw)
            except Exception as exc:
                if _is_fenced(exc):
                    raise self.fence_out("while it was silent") from None
                raise

        return await self.read(run)

    async def fenced_rows(
        self, sql: str, parameters: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """One statement, fenced, in a transaction of its own: its rows.

        ``sql`` follows ``WITH node_fence AS MATERIALIZED (SELECT fence(...))``
        and must read ``node_fence`` (``... USING node_fence``) before it
        changes a row: the fence is then checked, in the statement's own
        transaction, before anything is written. One round trip, where
        ``transact`` needs two. After every write queued before it. A
        checkpoint.

        Raises:
            FencedOut: This node's row was taken over.
            StoreError: The database refused it, or cannot be reached.
        """
        node = self.node
        if node is None:
            statement = "WITH node_fence AS MATERIALIZED (SELECT 1) " + sql
            arguments = tuple(parameters)
        else:
            statement = "WITH node_fence AS MATERIALIZED (SELECT fence(%s, %s)) " + sql
            arguments = (node.name, self.epoch, *parameters)

        def run(connection: _Connection) -> list[tuple[Any, ...]]:
            try:
                rows: list[tuple[Any, ...]] = connection.raw.execute(
                    statement, arguments
                ).fetchall()
            except Exception as exc:
                if _is_fenced(exc):
                    raise self.fence_out("while it was silent") from None
                raise
            return rows

        return await self.read(run)

    async def heartbeat(
        self,
    ) -> tuple[list[nodes.TakenOver], list[tuple[Any, ...]]]:
        """Renew the node's lease, then take over the nodes whose lease ran out.

        A checkpoint. Returns what ``nodes.take_over`` returns (nothing taken
        while a stopped node's transaction still holds a lock: the next
        heartbeat tries again).

        Raises:
            FencedOut: This node's row was taken over: from now on every call
                raises it, and ``on_lost`` was told.
            StoreError: The database cannot be reached.
        """
        settings, epoch = self.node, self.epoch
        if settings is None or epoch is None:
            raise StoreError(f"{self.where}: not opened as a node")

        def work(connection: _Connection) -> Any:
            import psycopg

            raw = connection.raw
            if not nodes.beat(raw, settings, epoch):
                raise self.fence_out("while it was silent")
            try:
                return nodes.take_over(raw, settings, epoch)
            except psycopg.Error as exc:
                if _is_fenced(exc):
                    raise self.fence_out("while it was silent") from None
                if getattr(exc, "sqlstate", None) != "55P03":  # lock_not_available
                    raise
                logger.debug("%s: a takeover waits for a lock: %s", self, exc)
                return [], []

        found: tuple[list[nodes.TakenOver], list[tuple[Any, ...]]] = await self.read(
            work
        )
        return found

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.where!r})"


def _is_fenced(error: BaseException) -> bool:
    """Whether ``error`` is the fence's: the node's row is no longer its own."""
    return getattr(error, "sqlstate", None) == nodes.FENCED_SQLSTATE


def _quoted(name: str) -> str:
    """An identifier, quoted for SQL."""
    return '"' + name.replace('"', '""') + '"'


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
