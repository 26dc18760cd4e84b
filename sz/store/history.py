"""Where history rows and accepted jobs are kept: memory, or a database.

A job is *accepted* before it is dispatched and stays so until its final history
row is written; on a durable store (a SQLite file, a PostgreSQL database) both
happen in the database, the final row and the job's removal in one transaction,
so that after a crash every accepted job without a final row is found again
(``unfinished``) and nothing is counted twice.
"""

from __future__ import annotations

import operator
import pickle
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ..jobs import Attempt, HistoryQuery, Job, history_order
from .database import unpickle

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .database import Connection, Database

__all__ = [
    "MAX_RESULT_BYTES",
    "NO_RESULT",
    "FileHistory",
    "HistoryBackend",
    "MemoryHistory",
    "Unfinished",
    "unfinished_of",
]


#: ``add``'s default: no result to keep with the row.
NO_RESULT: Any = object()

#: The largest result a final success row keeps by default, pickled.
MAX_RESULT_BYTES = 64 * 1024


@attrs.frozen(kw_only=True)
class Unfinished:
    """An accepted job with no final row: the process ended while it was in hand.

    Attributes:
        job: The job as it was accepted.
        attempts: History rows it already has (attempts that ended).
    """

    job: Job
    attempts: int


class HistoryBackend(Protocol):
    """What the history actor and the scheduler need from where rows are kept."""

    def accept(
        self,
        job: Job,
        then: Callable[[], None],
        fire_time: datetime | None = None,
        *,
        urgent: bool = True,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Record ``job`` as accepted; ``then()`` once that is durable.

        ``fire_time`` (a schedule's fire, before jitter) is recorded with it as
        its schedule's latest fire taken, so that a restart never fires it again.
        Not ``urgent``: ``then`` may wait a few milliseconds for the commit to be
        shared with other writes (a fire taken ahead of its time). If it cannot
        be recorded (a full disk), ``failed(error)`` runs instead, with a
        ``StoreError``; the job is not accepted and nothing retries it.
        """

    def add(self, row: Attempt, result: Any = NO_RESULT) -> None:
        """Keep a row (a final row also ends its job's acceptance). Never waits.

        ``result``: the value a final success row's job returned, for a durable
        store to keep with it (``NO_RESULT``: none to keep).
        """

    def skip(self, row: Attempt, fire_time: datetime) -> None:
        """Keep the final row of a fire never run, and record the fire as taken.

        ``fire_time`` (before jitter) is then its schedule's latest fire taken,
        in the same commit as the row: a restart neither fires it again nor
        records it twice. Never waits.
        """

    async def query(self, query: HistoryQuery) -> list[Attempt]:
        """Rows matching ``query``, newest first."""

    async def last_runs(self, schedule_ids: tuple[str, ...]) -> dict[str, Attempt]:
        """The last final row of each schedule named that has one, by its id."""

    async def unfinished(self) -> list[Unfinished]:
        """Accepted jobs without a final row."""

    async def result(self, job_id: str) -> tuple[bool, Any]:
        """The result kept with a job's final success row: ``(kept, value)``."""

    def prune(self, before: datetime) -> None:
        """Drop rows that finished before ``before``."""

    async def flush(self) -> None:
        """Wait until every row added so far is durable."""


#: An ``Attempt``'s fields, in order: a memory history keeps each row as the
#: tuple of them.
_FIELDS = tuple(field.name for field in attrs.fields(Attempt))
_AS_TUPLE = operator.attrgetter(*_FIELDS)
_AT = {name: index for index, name in enumerate(_FIELDS)}
_FINISHED = _AT["finished_at"]
#: ``history_order`` of a kept row.
_ORDER = operator.itemgetter(_FINISHED, _AT["job_id"], _AT["attempt"])
#: The filters of a ``HistoryQuery`` that ask for one value of a field.
_EQUAL = ("task", "handler", "outcome", "schedule_id", "job_id", "final")

_Row = tuple[Any, ...]


def _row_matcher(query: HistoryQuery) -> Callable[[_Row], bool]:
    """``query.matches`` for a row kept as a tuple."""
    equal = [
        (_AT[name], value)
        for name in _EQUAL
        if (value := getattr(query, name)) is not None
    ]
    since = query.since
    before = query.before
    before_key = history_order(before) if isinstance(before, Attempt) else None

    def matches(row: _Row) -> bool:
        for index, value in equal:
            if row[index] != value:
                return False
        if since is not None and row[_FINISHED] < since:
            return False
        if before_key is not None:
            return bool(_ORDER(row) < before_key)
        return before is None or bool(row[_FINISHED] < before)

    return matches


class MemoryHistory:
    """The latest rows in memory (older ones fall off); nothing survives the process.

    Each row is kept as a tuple of its fields, not as the ``Attempt``: a tuple
    of strings, numbers and datetimes is one the garbage collector stops
    tracking, so a hundred thousand rows kept add nothing to each full
    collection's walk (which, at ``run_now``'s pace, stalled the loop for
    tens of milliseconds about once a second). A query builds its answer's
    ``Attempt`` objects again.
    """

    def __init__(
        self, capacity: int, on_row: Callable[[Attempt], None] | None = None
    ) -> None:
        self.rows: deque[_Row] = deque(maxlen=capacity)
        #: Told of every row kept (the scheduler's metrics).
        self.on_row = on_row
        #: ``history_order`` of the last row (rows are added at every job's end).
        self._last: tuple[datetime, str, int] | None = None
        #: Each schedule's latest final row: ``last_runs`` reads it instead of
        #: scanning the rows for a schedule that has not run lately.
        self._last_runs: dict[str, _Row] = {}

    def accept(
        self,
        job: Job,
        then: Callable[[], None],
        fire_time: datetime | None = None,
        *,
        urgent: bool = True,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Nothing to record: run ``then`` at once."""
        then()

    def add(self, row: Attempt, result: Any = None) -> None:
        """Keep the row, in history order (rows arrive nearly, not quite, in it).

        Results are not kept: they live in the jobs' futures.
        """
        if self.on_row is not None:
            self.on_row(row)
        rows = self.rows
        kept: _Row = _AS_TUPLE(row)
        key = (row.finished_at, row.job_id, row.attempt)  # history_order(row)
        schedule_id = row.schedule_id
        if schedule_id is not None and row.final:
            known = self._last_runs.get(schedule_id)
            if known is None or _ORDER(known) <= key:
                self._last_runs[schedule_id] = kept
        if self._last is None or not rows or self._last <= key:
            rows.append(kept)
            self._last = key
            return
        at = len(rows) - 1
        while at > 0 and _ORDER(rows[at - 1]) > key:
            at -= 1
        if len(rows) == rows.maxlen:
            rows.popleft()
            at = max(0, at - 1)
        rows.insert(at, kept)
        self._last = _ORDER(rows[-1])

    def skip(self, row: Attempt, fire_time: datetime) -> None:
        """Keep the row (a memory store has no restart to guard)."""
        self.add(row)  # told to on_row there

    async def query(self, query: HistoryQuery) -> list[Attempt]:
        """Scan from the newest row."""
        found: list[Attempt] = []
        if query.limit < 1:
            return found
        matches = _row_matcher(query)
        for row in reversed(self.rows):
            if matches(row):
                found.append(Attempt(*row))
                if len(found) >= query.limit:
                    break
        return found

    async def last_runs(self, schedule_ids: tuple[str, ...]) -> dict[str, Attempt]:
        """Each schedule's latest final row, kept aside as rows are added.

        O(the ids asked): no scan. A row that fell off the oldest end (past
        the capacity) is still its schedule's last run; one pruned is not.
        """
        last_runs = self._last_runs
        return {
            schedule_id: Attempt(*last_runs[schedule_id])
            for schedule_id in schedule_ids
            if schedule_id in last_runs
        }

    async def unfinished(self) -> list[Unfinished]:
        """None: a memory store starts empty."""
        return []

    async def result(self, job_id: str) -> tuple[bool, Any]:
        """Not kept: a memory store's results live only in the jobs' futures."""
        return False, None

    def prune(self, before: datetime) -> None:
        """Drop rows that finished before ``before`` (they are kept in that order)."""
        while self.rows and self.rows[0][_FINISHED] < before:
            self.rows.popleft()
        for schedule_id, row in list(self._last_runs.items()):
            if row[_FINISHED] < before:
                del self._last_runs[schedule_id]

    async def flush(self) -> None:
        """Nothing to wait for."""


_INSERT_ROW = (
    "INSERT INTO history (job_id, schedule_id, task, handler, scheduled_at, "
    "started_at, finished_at, duration, outcome, error, attempt, final, reason, "
    "waited, arguments, note, traceback, result) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_END_JOB = "DELETE FROM jobs WHERE id=?"

# The statements are SQLite's and PostgreSQL's alike (``?`` becomes ``%s`` there).
_ACCEPT = (
    "INSERT INTO jobs (id, schedule_id, task, scheduled_at, accepted_at, data, "
    "fire_time) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "schedule_id=excluded.schedule_id, task=excluded.task, "
    "scheduled_at=excluded.scheduled_at, accepted_at=excluded.accepted_at, "
    "data=excluded.data, fire_time=excluded.fire_time"
)

_FIRED = (
    "INSERT INTO fired (schedule_id, fire_time) VALUES (?, ?) ON CONFLICT "
    "(schedule_id) DO UPDATE SET fire_time=CASE WHEN excluded.fire_time > "
    "fired.fire_time THEN excluded.fire_time ELSE fired.fire_time END"
)

_COLUMNS = (
    "job_id, schedule_id, task, handler, scheduled_at, started_at, finished_at, "
    "duration, outcome, error, attempt, final, reason, waited, arguments, note, "
    "traceback"
)

#: The last final row of each schedule of a list (``ids``: one ``SELECT ? AS
#: id`` per schedule, joined by ``UNION ALL``): SQLite's and PostgreSQL's alike.
_LAST_RUNS = (
    "SELECT {columns} FROM history WHERE seq IN (SELECT (SELECT h.seq "
    "FROM history h WHERE h.schedule_id = ids.id AND h.final "
    "ORDER BY h.finished_at DESC, h.job_id DESC, h.attempt DESC LIMIT 1) "
    "FROM ({ids}) ids)"
)

#: Schedules asked for in one statement of ``last_runs``: SQLite takes at most
#: 32,766 parameters in one.
LAST_RUNS_CHUNK = 500

_RESULT = (
    "SELECT outcome, result, note FROM history WHERE job_id = ? AND final "
    "ORDER BY seq DESC LIMIT 1"
)


def _row_values(
    stamp: Callable[[datetime], Any], row: Attempt, result: bytes | None = None
) -> tuple[Any, ...]:
    started = row.started_at
    return (
        row.job_id,
        row.schedule_id,
        row.task,
        row.handler,
        stamp(row.scheduled_at),
        None if started is None else stamp(started),
        stamp(row.finished_at),
        row.duration,
        row.outcome,
        row.error,
        row.attempt,
        row.final,
        row.reason,
        row.waited,
        row.arguments,
        row.note,
        row.traceback,
        result,
    )


def _attempt(moment: Callable[[Any], datetime], values: tuple[Any, ...]) -> Attempt:
    (job_id, schedule_id, task, handler, scheduled, started, finished) = values[:7]
    (duration, outcome, error, attempt, final, reason, waited) = values[7:14]
    (arguments, note, traceback) = values[14:]
    return Attempt(
        job_id=job_id,
        schedule_id=schedule_id,
        task=task,
        handler=handler,
        scheduled_at=moment(scheduled),
        started_at=None if started is None else moment(started),
        finished_at=moment(finished),
        duration=duration,
        outcome=outcome,
        error=error,
        attempt=attempt,
        final=bool(final),
        reason=reason,
        waited=waited,
        arguments=arguments,
        note=note,
        traceback=traceback,
    )


class FileHistory:
    """Rows and accepted jobs in a database (SQLite, PostgreSQL), written in batches.

    Args:
        file: The store's database.
        max_result_bytes: The largest result kept with a final success row,
            pickled; a larger one (or one that cannot be pickled) is dropped
            with a note in the row. 0 keeps none.
        on_row: Told of every row kept (the scheduler's metrics).
    """

    def __init__(
        self,
        file: Database,
        max_result_bytes: int = MAX_RESULT_BYTES,
        on_row: Callable[[Attempt], None] | None = None,
    ) -> None:
        self.file = file
        self.max_result_bytes = max_result_bytes
        self.on_row = on_row

    def accept(
        self,
        job: Job,
        then: Callable[[], None],
        fire_time: datetime | None = None,
        *,
        urgent: bool = True,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Write the job as accepted (and its fire as taken); ``then()`` after."""
        values = self._accepted(job, fire_time)
        fired = values[6]
        if fired is not None:
            self.file.write(
                ((self._accept_sql, values), (_FIRED, (job.schedule_id, fired))),
                then,
                urgent=urgent,
                failed=failed,
            )
        else:
            self.file.write(
                ((self._accept_sql, values),), then, urgent=urgent, failed=failed
            )

    #: How a job is written as accepted: ``_accepted``'s values in order.
    _accept_sql = _ACCEPT

    def _accepted(self, job: Job, fire_time: datetime | None) -> tuple[Any, ...]:
        """The job's row in ``jobs``, as ``_accept_sql`` takes it."""
        stamp = self.file.stamp
        return (
            job.id,
            job.schedule_id,
            job.task,
            stamp(job.scheduled_at),
            stamp(datetime.now(UTC)),
            pickle.dumps(
                (job.args, dict(job.kwargs), job.affinity, job.wait),
                pickle.HIGHEST_PROTOCOL,
            ),
            None if job.schedule_id is None or fire_time is None else stamp(fire_time),
        )

    def add(self, row: Attempt, result: Any = NO_RESULT) -> None:
        """Queue the row; a final row also removes its job from the accepted.

        A ``result`` is kept with it, pickled, up to ``max_result_bytes``.
        """
        if result is NO_RESULT:
            values = _row_values(self.file.stamp, row)
        else:
            kept, note = self._pickled(result)
            if note is not None:
                row = attrs.evolve(row, note=note)
            values = _row_values(self.file.stamp, row, kept)
        if self.on_row is not None:
            self.on_row(row)
        if row.final:
            self.file.write(((_INSERT_ROW, values), (_END_JOB, (row.job_id,))))
        else:
            self.file.write(((_INSERT_ROW, values),))

    def skip(self, row: Attempt, fire_time: datetime) -> None:
        """Queue the row and the fire's mark as taken, to commit together."""
        if row.schedule_id is None:  # a job of no schedule: no fire to mark
            self.add(row)
            return
        if self.on_row is not None:
            self.on_row(row)
        self.file.write(
            (
                (_INSERT_ROW, _row_values(self.file.stamp, row)),
                (_FIRED, (row.schedule_id, self.file.stamp(fire_time))),
            )
        )

    async def query(self, query: HistoryQuery) -> list[Attempt]:
        """Select matching rows, newest first."""
        if query.limit < 1:
            return []
        stamp = self.file.stamp
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("task", query.task),
            ("handler", query.handler),
            ("outcome", query.outcome),
            ("schedule_id", query.schedule_id),
            ("job_id", query.job_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            where.append("finished_at >= ?")
            params.append(stamp(query.since))
        if isinstance(query.before, Attempt):
            where.append("(finished_at, job_id, attempt) < (?, ?, ?)")
            params.extend(
                (
                    stamp(query.before.finished_at),
                    query.before.job_id,
                    query.before.attempt,
                )
            )
        elif query.before is not None:
            where.append("finished_at < ?")
            params.append(stamp(query.before))
        if query.final is not None:
            where.append("final = ?")
            params.append(query.final)
        sql = f"SELECT {_COLUMNS} FROM history"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY finished_at DESC, job_id DESC, attempt DESC LIMIT ?"
        params.append(query.limit)

        moment = self.file.moment

        def select(connection: Connection) -> list[Attempt]:
            return [_attempt(moment, v) for v in connection.execute(sql, params)]

        return await self.file.read(select)

    async def last_runs(self, schedule_ids: tuple[str, ...]) -> dict[str, Attempt]:
        """Each schedule's last final row: one statement per ``LAST_RUNS_CHUNK`` ids.

        One look in the index of each schedule's final rows by finish time
        (``history_by_schedule``) per schedule, however long the history.
        """
        moment = self.file.moment
        statements = []
        for start in range(0, len(schedule_ids), LAST_RUNS_CHUNK):
            chunk = schedule_ids[start : start + LAST_RUNS_CHUNK]
            ids = " UNION ALL ".join("SELECT CAST(? AS TEXT) AS id" for _ in chunk)
            statements.append((_LAST_RUNS.format(columns=_COLUMNS, ids=ids), chunk))

        def select(connection: Connection) -> dict[str, Attempt]:
            found: dict[str, Attempt] = {}
            for sql, params in statements:
                for values in connection.execute(sql, params):
                    row = _attempt(moment, values)
                    if row.schedule_id is not None:
                        found[row.schedule_id] = row
            return found

        if not statements:
            return {}
        return await self.file.read(select)

    async def unfinished(self) -> list[Unfinished]:
        """Accepted jobs without a final row, with how many attempts they had."""
        moment = self.file.moment
        return await self.file.read(lambda c: _unfinished(c, moment))

    def _pickled(self, result: Any) -> tuple[bytes | None, str | None]:
        """The result as kept, or None and the note that says why not."""
        if self.max_result_bytes == 0:
            return None, None
        try:
            data = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            return None, f"result not kept: it cannot be pickled ({exc!r:.200})"
        if len(data) > self.max_result_bytes:
            return None, (
                f"result not kept: {len(data):,} bytes pickled, over "
                f"store.max_result_bytes ({self.max_result_bytes:,})"
            )
        return data, None

    async def result(self, job_id: str) -> tuple[bool, Any]:
        """The result kept with the job's final success row: ``(kept, value)``.

        Raises:
            StoreError: The kept value cannot be unpickled (damaged, or its
                class is gone).
        """

        def select(connection: Connection) -> tuple[Any, ...] | None:
            found: tuple[Any, ...] | None = connection.execute(
                _RESULT, (job_id,)
            ).fetchone()
            return found

        found = await self.file.read(select)
        if found is None or found[0] != "success" or found[1] is None:
            return False, None
        return True, unpickle(found[1], f"the result of job {job_id}")

    def prune(self, before: datetime) -> None:
        """Delete rows that finished before ``before``."""
        cutoff = self.file.stamp(before)
        self.file.write(
            lambda c: c.execute("DELETE FROM history WHERE finished_at < ?", (cutoff,))
        )

    async def flush(self) -> None:
        """Wait for every queued row to be committed."""
        await self.file.flush()


def _unfinished(
    connection: Connection,
    moment: Callable[[Any], datetime],
    where: str = "",
    parameters: tuple[Any, ...] = (),
) -> list[Unfinished]:
    found: list[Unfinished] = []
    for job_id, schedule_id, task, scheduled_at, data in connection.execute(
        f"SELECT id, schedule_id, task, scheduled_at, data FROM jobs {where} "
        "ORDER BY accepted_at",
        parameters,
    ):
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM history WHERE job_id = ?", (job_id,)
        ).fetchone()
        found.append(
            unfinished_of(
                (job_id, schedule_id, task, scheduled_at, data, count), moment
            )
        )
    return found


def unfinished_of(row: Sequence[Any], moment: Callable[[Any], datetime]) -> Unfinished:
    """An accepted job read back from its row and its count of history rows.

    ``row`` is ``(id, schedule_id, task, scheduled_at, data, attempts)``.

    Raises:
        DamagedValue: Its arguments cannot be read back.
    """
    job_id, schedule_id, task, scheduled_at, data, count = row
    args, kwargs, affinity, wait = unpickle(
        data, f"the arguments of accepted job {job_id!r}"
    )
    job = Job(
        id=job_id,
        task=task,
        args=tuple(args),
        kwargs=kwargs,
        schedule_id=schedule_id,
        scheduled_at=moment(scheduled_at),
        affinity=affinity,
        wait=wait,
    )
    return Unfinished(job=job, attempts=count)
