"""Schedules shared by several nodes on one PostgreSQL store.

The single-node store (``schedules.py``) serves every lookup from memory; here
the database is the truth, since other nodes change it. What differs is how a
node takes fires, in the way Quartz, db-scheduler and their peers do:

- **Claim.** Due schedules are claimed in batches (``FOR UPDATE SKIP LOCKED``:
  no node waits on another's rows), each marked with the node's name and a lease
  on the database's clock (``now()``), never a node's. A schedule is due a
  ``lookahead`` early, as on one node.
- **Release.** APScheduler computes the fires as on one node, and the store
  judges them (``fires.py``); the bridge's sink records each through the
  history, but while the pass runs the history keeps them (``FirePass``)
  instead of writing them. The release then commits everything of the pass in
  ONE transaction: the schedules' new fire times (fenced: only where the lease
  is still this node's, and the row count must match, else the whole pass is
  rolled back and logged), the accepted jobs (``ON CONFLICT (schedule_id,
  fire_time) DO NOTHING``: a fire is accepted once, whatever happens), the fires
  recorded taken, and the skipped fires' rows. Only after that commit does any
  fire reach the dispatcher. The batch's transaction starts, as every
  transaction of a node does, with the node's own fence (``nodes.py``).
- **Wake-ups.** A schedule added or replaced that falls due before the other
  nodes would look anyway (within ``POLL``, the lookahead and ``NOTIFY_MARGIN``)
  is notified (``NOTIFY`` in its transaction); a node's listener wakes its
  schedule loop early. Correctness rests on polling, at least every ``POLL``
  seconds: a notification only saves that wait, so a schedule due later, a
  paused one or a removal sends none (each cost the server its notification
  queue's lock and every node's listener a wake-up).

A schedule removed while a node holds it stays removed; one replaced (paused,
resumed, redefined) has its lease cleared, so the holder's release leaves the
replacement as it is. Fire times only move forward: a replacement built from a
schedule read before another node fired it keeps the fire times stored since.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from apscheduler import (
    ConflictingIdError,
    ConflictPolicy,
    ScheduleAdded,
    ScheduleRemoved,
    ScheduleUpdated,
)

from ..errors import FencedOut, StoreError
from .database import DamagedValue
from .history import _FIRED, _INSERT_ROW, FileHistory, _row_values, _unfinished
from .schedules import ScheduleStore, schedule_of, schedule_row

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from contextlib import AsyncExitStack
    from logging import Logger

    from apscheduler import Job, Schedule, ScheduleResult, Task
    from apscheduler.abc import EventBroker

    from ..jobs import Attempt, Job as SzJob
    from .fires import FireSink, RoundDone
    from .history import Unfinished
    from .postgres import PostgresDatabase

__all__ = ["NOTIFY_MARGIN", "POLL", "FirePass", "NodeHistory", "SharedScheduleStore"]

logger = logging.getLogger("sz.store")

T = TypeVar("T")

#: The longest a node's schedule loop sleeps without looking at the database:
#: schedules another node added or let go are seen within this many seconds,
#: whether or not a notification woke it.
POLL = 1.0

#: Seconds beyond ``POLL`` and the lookahead within which an added schedule's
#: next fire time wakes the other nodes: room for their clocks and the
#: database's to differ, and for the commit to reach them.
NOTIFY_MARGIN = 2.0

#: The shortest sleep between passes, so that a schedule another node is busy
#: claiming (its rows locked) does not spin the loop.
MIN_WAIT = 0.01

_ACCEPT_NODE = (
    "INSERT INTO jobs (id, schedule_id, task, scheduled_at, accepted_at, data, "
    "fire_time, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
    "SET schedule_id=excluded.schedule_id, task=excluded.task, "
    "scheduled_at=excluded.scheduled_at, accepted_at=excluded.accepted_at, "
    "data=excluded.data, fire_time=excluded.fire_time, node=excluded.node"
)

_CLAIM = """
WITH due AS (
    SELECT id FROM schedules
    WHERE next_fire_time <= now() + make_interval(secs => %(ahead)s)
      AND NOT paused
      AND (lease_until IS NULL OR lease_until < now())
      AND EXISTS (SELECT 1 FROM nodes WHERE name = %(node)s AND epoch = %(epoch)s)
    ORDER BY next_fire_time
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE schedules AS s
SET lease_node = %(node)s, lease_until = now() + make_interval(secs => %(lease)s)
FROM due WHERE s.id = due.id
RETURNING s.id, s.data, s.trigger, s.next_fire_time, s.last_fire_time
"""

_RELEASE = """
UPDATE schedules AS s
SET next_fire_time = v.next_fire_time, last_fire_time = v.last_fire_time,
    trigger = v.trigger, lease_node = NULL, lease_until = NULL
FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[], %s::bytea[])
    AS v(id, next_fire_time, last_fire_time, trigger)
WHERE s.id = v.id AND s.lease_node = %s
RETURNING s.id
"""

_ACCEPT_FIRES = """
INSERT INTO jobs (id, schedule_id, task, scheduled_at, accepted_at, data,
                  fire_time, node)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[],
                     %s::timestamptz[], %s::bytea[], %s::timestamptz[], %s::text[])
ON CONFLICT (schedule_id, fire_time) DO NOTHING
RETURNING id
"""

_NEXT = """
SELECT EXTRACT(EPOCH FROM min(next_fire_time) - now())::float8 FROM schedules
WHERE next_fire_time IS NOT NULL AND NOT paused
  AND (lease_until IS NULL OR lease_until < now())
"""

# Fire times only move forward (see the module's docstring); a replacement
# clears the lease, so that its holder's release leaves it as it is.
_PUT_SCHEDULE = """
INSERT INTO schedules (id, task, next_fire_time, last_fire_time, paused, data,
                       trigger)
VALUES (?, ?, ?, ?, ?, ?, NULL)
ON CONFLICT (id) DO UPDATE SET
    task = excluded.task, paused = excluded.paused, data = excluded.data,
    lease_node = NULL, lease_until = NULL,
    next_fire_time = CASE WHEN excluded.last_fire_time < schedules.last_fire_time
        THEN schedules.next_fire_time ELSE excluded.next_fire_time END,
    trigger = CASE WHEN excluded.last_fire_time < schedules.last_fire_time
        THEN schedules.trigger ELSE NULL END,
    last_fire_time = CASE WHEN excluded.last_fire_time < schedules.last_fire_time
        THEN schedules.last_fire_time ELSE excluded.last_fire_time END
"""

# A new schedule, unless one of its id exists (the caller reads the row count).
_ADD_SCHEDULE = """
INSERT INTO schedules (id, task, next_fire_time, last_fire_time, paused, data,
                       trigger)
VALUES (?, ?, ?, ?, ?, ?, NULL)
ON CONFLICT (id) DO NOTHING
"""

_NOTIFY = "SELECT pg_notify(?, '')"

_EXTEND = (
    "UPDATE schedules SET lease_until = now() + make_interval(secs => ?) "
    "WHERE id = ANY(?) AND lease_node = ?"
)

_SCHEDULE_COLUMNS = "id, data, trigger, next_fire_time, last_fire_time"


class FirePass:
    """What the sink recorded during one pass, committed by its release.

    Slotted and mutable: one per pass of the schedule loop, on its hot path.
    """

    __slots__ = ("accepts", "skips")

    def __init__(self) -> None:
        #: ``(job row, then, failed, urgent)`` per fire accepted.
        self.accepts: list[
            tuple[
                tuple[Any, ...],
                Callable[[], None],
                Callable[[BaseException], None] | None,
                bool,
            ]
        ] = []
        #: ``(history row values, (schedule id, fire time))`` per fire skipped.
        self.skips: list[tuple[tuple[Any, ...], tuple[str, Any]]] = []

    def __bool__(self) -> bool:
        return bool(self.accepts or self.skips)


class NodeHistory(FileHistory):
    """The history of a node: its accepted jobs carry its name.

    While a pass of the schedule loop is recorded (``recording``), the fires
    the sink accepts or skips are kept in it, for the release to commit with
    the schedules; everything else is written as ``FileHistory`` writes it.
    ``unfinished`` is this node's only (its previous run's, under its name).

    Args:
        file: The store's database, opened as this node.
        node: The node's name.
        max_result_bytes: As ``FileHistory``.
        on_row: As ``FileHistory``.
    """

    _accept_sql = _ACCEPT_NODE

    def __init__(
        self,
        file: PostgresDatabase,
        node: str,
        max_result_bytes: int,
        on_row: Callable[[Attempt], None] | None = None,
    ) -> None:
        super().__init__(file, max_result_bytes, on_row)
        self.node = node
        #: The pass being recorded, or None.
        self.recording: FirePass | None = None

    def _accepted(self, job: SzJob, fire_time: datetime | None) -> tuple[Any, ...]:
        return (*super()._accepted(job, fire_time), self.node)

    def accept(
        self,
        job: SzJob,
        then: Callable[[], None],
        fire_time: datetime | None = None,
        *,
        urgent: bool = True,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """As ``FileHistory.accept``; a fire of a pass waits for its release."""
        recording = self.recording
        if recording is None or fire_time is None or job.schedule_id is None:
            super().accept(job, then, fire_time, urgent=urgent, failed=failed)
            return
        recording.accepts.append((self._accepted(job, fire_time), then, failed, urgent))

    def skip(self, row: Attempt, fire_time: datetime) -> None:
        """As ``FileHistory.skip``; a fire of a pass waits for its release."""
        recording = self.recording
        if recording is None or row.schedule_id is None:
            super().skip(row, fire_time)
            return
        if self.on_row is not None:
            self.on_row(row)
        stamp = self.file.stamp
        recording.skips.append(
            (_row_values(stamp, row), (row.schedule_id, stamp(fire_time)))
        )

    async def unfinished(self) -> list[Unfinished]:
        """This node's accepted jobs without a final row (its previous run's)."""
        moment, node = self.file.moment, self.node
        return await self.file.read(
            lambda c: _unfinished(c, moment, "WHERE node = ?", (node,))
        )


class _LeaseLost(Exception):
    """Schedules of the pass are held by another node now."""


class _Release:
    """A pass's release: one function of the connection, run in its batch.

    Its own savepoint: a release found fenced is rolled back alone, and the
    batch's other writes (history rows) go on. Run again from scratch if the
    batch is retried.
    """

    __slots__ = ("accepted", "accepts", "fenced", "node", "skips", "updates")

    def __init__(
        self,
        node: str,
        updates: tuple[list[Any], ...],
        accepts: list[tuple[Any, ...]],
        skips: list[tuple[tuple[Any, ...], tuple[str, Any]]],
    ) -> None:
        self.node = node
        self.updates = updates
        self.accepts = accepts
        self.skips = skips
        #: The ids of the jobs accepted (a fire accepted already is not).
        self.accepted: set[str] = set()
        #: The schedules another node held at the release, if it was fenced.
        self.fenced: list[tuple[str, str]] = []

    def __call__(self, connection: Any) -> None:
        self.accepted, self.fenced = set(), []
        raw = connection.raw
        ids = self.updates[0]
        try:
            with raw.transaction():
                if ids:
                    released = raw.execute(_RELEASE, (*self.updates, self.node))
                    found = {row[0] for row in released.fetchall()}
                    if len(found) != len(ids):
                        self._check_missing(raw, [i for i in ids if i not in found])
                if self.accepts:
                    columns = [
                        list(column) for column in zip(*self.accepts, strict=True)
                    ]
                    rows = raw.execute(_ACCEPT_FIRES, columns).fetchall()
                    self.accepted = {row[0] for row in rows}
                    connection.executemany(
                        _FIRED, [(row[1], row[6]) for row in self.accepts]
                    )
                if self.skips:
                    connection.executemany(_INSERT_ROW, [row for row, _ in self.skips])
                    connection.executemany(_FIRED, [fire for _, fire in self.skips])
        except _LeaseLost:
            self.accepted = set()

    def _check_missing(self, raw: Any, missing: list[str]) -> None:
        """Schedules the release did not find held: removed, replaced, or taken.

        Removed or replaced while held, the change stands and the pass goes
        on. Held by another node (this node's lease ran out and that node
        claimed them), the pass must not count: rolled back.

        Raises:
            _LeaseLost: Another node holds some of them.
        """
        held = raw.execute(
            "SELECT id, lease_node FROM schedules WHERE id = ANY(%s) "
            "AND lease_node IS NOT NULL",
            (missing,),
        ).fetchall()
        if held:
            self.fenced = [(schedule_id, holder) for schedule_id, holder in held]
            raise _LeaseLost


class SharedScheduleStore(ScheduleStore):
    """APScheduler's ``DataStore`` for a node of several sharing one PostgreSQL store.

    Tasks are kept as ``ScheduleStore`` keeps them; schedules live in the
    database only (see the module's docstring).

    Args:
        file: The store's database, opened as this node.
        history: The node's history, which records each pass's fires.
        sink: Where fires go (as ``ScheduleStore``).
        round_done: As ``ScheduleStore``.
        lookahead: As ``ScheduleStore``.
        gather: As ``ScheduleStore``.
    """

    def __init__(
        self,
        *,
        file: PostgresDatabase,
        history: NodeHistory,
        sink: FireSink,
        round_done: RoundDone | None = None,
        lookahead: float = 0.0,
        gather: float = 0.0,
    ) -> None:
        if file.node is None or file.epoch is None:
            raise ValueError("a shared store needs a database opened as a node")
        super().__init__(
            file=file,
            sink=sink,
            round_done=round_done,
            release_events=False,
            lookahead=lookahead,
            gather=gather,
            wake_only=True,
        )
        self.db = file
        self.history = history
        self.node = file.node.name
        self.lease = file.node.lease
        self._pass = FirePass()
        #: The schedules the last ``get_schedules`` read (for ``fire_due``).
        self._seen: dict[str, Schedule] = {}
        self._wake = anyio.Event()
        #: Whether the schedule loop's last read failed (logged once per outage).
        self._loop_failing = False

    def __repr__(self) -> str:
        return f"SharedScheduleStore({self.db.where!r}, node={self.node!r})"

    def fire_due(self, schedule_id: str, now: datetime) -> bool:
        """As ``ScheduleStore.fire_due``, of the schedules last read."""
        schedule = self._seen.get(schedule_id)
        if schedule is None or schedule.paused:
            return False
        fire = schedule.next_fire_time
        return fire is not None and fire <= now

    # -------------------------------------------------------------- lifecycle

    async def start(
        self, exit_stack: AsyncExitStack, event_broker: EventBroker, logger: Logger
    ) -> None:
        """Read the tasks, and relay the other nodes' wake-ups to the loop."""
        self._broker = event_broker
        tasks = await self.db.read(_read_tasks)
        self._tasks = {task.id: task for task in tasks}
        group = await exit_stack.enter_async_context(anyio.create_task_group())
        exit_stack.callback(group.cancel_scope.cancel)
        self._wake = anyio.Event()
        self.db.on_notify = self._wake.set
        exit_stack.callback(setattr, self.db, "on_notify", None)
        group.start_soon(self._relay_wakeups)
        exit_stack.push_async_callback(self._finish_round)

    async def _finish_round(self) -> None:
        # A pass cut short has no release: its fires are not recorded, and
        # its schedules are taken again once their lease runs out.
        if self._fires is not None:
            self._fires.discard()
        self._pass = FirePass()

    async def _relay_wakeups(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            self.db.on_notify = self._wake.set
            # Earlier than any wake-up the loop computed: it looks now.
            await self._publish(
                ScheduleUpdated(
                    schedule_id="*", task_id="*", next_fire_time=datetime.now(UTC)
                )
            )

    # -------------------------------------------------------------- schedules

    async def get_schedules(self, ids: set[str] | None = None) -> list[Schedule]:
        """Every schedule, or those with the given ids, as the database has them.

        Raises:
            StoreError: One cannot be read back.
        """
        parameters: tuple[Any, ...] = ()
        if ids is None:
            sql = f"SELECT {_SCHEDULE_COLUMNS} FROM schedules"
        else:
            sql = f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE id = ANY(%s)"
            parameters = (list(ids),)
        rows = await self.db.read(lambda c: c.raw.execute(sql, parameters).fetchall())
        schedules = [self._schedule(row) for row in rows]
        self._seen.update((schedule.id, schedule) for schedule in schedules)
        return schedules

    def _schedule(self, row: Sequence[Any]) -> Schedule:
        try:
            return schedule_of(row, self.db.moment)
        except DamagedValue as exc:
            raise StoreError(
                f"{self.db.where}: damaged: {exc}; remove the schedule, or drop "
                f"the store's schema and start afresh"
            ) from None

    async def add_schedule(
        self, schedule: Schedule, conflict_policy: ConflictPolicy
    ) -> None:
        """Add a schedule, or by ``conflict_policy`` replace or keep the old one.

        Raises:
            ConflictingIdError: Its id exists and the policy is ``exception``.
        """
        row = schedule_row(schedule, self.db.stamp)
        soon = self._wakes_others(schedule)
        notify = ((_NOTIFY, (self.db.channel,)),) if soon else ()
        if conflict_policy is ConflictPolicy.replace:
            if self._fires is not None:
                self._fires.unfold(schedule.id)
            self.db.write(((_PUT_SCHEDULE, row), *notify))
            await self.db.flush()
            event: type[ScheduleAdded | ScheduleUpdated] = ScheduleUpdated
        else:
            # Inserted unless its id exists, told by the insert itself: one
            # trip to the store's thread and one transaction, not a read first.
            def add(connection: Any) -> Any:
                cursor = connection.execute(_ADD_SCHEDULE, row)
                for statement, parameters in notify:
                    connection.execute(statement, parameters)
                return cursor

            cursor = await self.db.write_and_wait(add)
            if cursor.rowcount != 1:
                if conflict_policy is ConflictPolicy.do_nothing:
                    return
                raise ConflictingIdError(schedule.id)  # type: ignore[no-untyped-call]
            if self._fires is not None:
                # A fold left by a removed schedule of the same id.
                self._fires.unfold(schedule.id)
            event = ScheduleAdded
        if not soon:
            # This node's loop, too, looks before it falls due (the one
            # listener of these events; each costs it a task).
            return
        await self._publish(
            event(
                schedule_id=schedule.id,
                task_id=schedule.task_id,
                next_fire_time=schedule.next_fire_time,
            )
        )

    def _wakes_others(self, schedule: Schedule) -> bool:
        """Whether the nodes (this one's loop too) must hear of ``schedule`` at once.

        Only if it falls due before they would look anyway (each looks at
        least every ``POLL`` seconds, a lookahead early): a notification wakes
        every node's listener and takes the server's queue lock at the commit,
        for nothing when the schedule is far off (as most added schedules are).
        """
        fire = schedule.next_fire_time
        if fire is None or schedule.paused:
            return False
        horizon = POLL + self.lookahead.total_seconds() + NOTIFY_MARGIN
        return fire - datetime.now(UTC) <= timedelta(seconds=horizon)

    async def remove_schedules(
        self, ids: Iterable[str], *, finished: bool = False
    ) -> None:
        """Remove schedules; ids that are not there are ignored."""
        wanted = list(ids)
        if not wanted:
            return

        # No notification: a removal never makes a fire due sooner, and a node
        # woken for a schedule since removed only finds nothing to claim.
        removed = await self.db.fenced_rows(
            "DELETE FROM schedules USING node_fence WHERE id = ANY(%s) "
            "RETURNING id, task",
            (wanted,),
        )
        for schedule_id, task_id in removed:
            if self._fires is not None:
                self._fires.unfold(schedule_id)
            self._seen.pop(schedule_id, None)
            await self._publish(
                ScheduleRemoved(
                    schedule_id=schedule_id, task_id=task_id, finished=finished
                )
            )

    # ------------------------------------------------------------------ fires

    async def acquire_schedules(
        self, scheduler_id: str, lease_duration: timedelta, limit: int
    ) -> list[Schedule]:
        """Claim up to ``limit`` due schedules, earliest first, on the database.

        The lease is the node's (``store.lease``), on the database's clock.
        A schedule that cannot be read back is logged and left held (it comes
        back once its lease runs out). Nothing once the store is lost (this
        node fenced out).
        """
        parameters = {
            "ahead": self.lookahead.total_seconds(),
            "node": self.node,
            "epoch": self.db.epoch,
            "limit": limit,
            "lease": self.lease,
        }
        rows = await self._loop_read(
            lambda c: c.raw.execute(_CLAIM, parameters).fetchall()
        )
        if not rows:
            return []
        until = datetime.now(UTC) + timedelta(seconds=self.lease)
        acquired: list[Schedule] = []
        for row in rows:
            try:
                schedule = schedule_of(row, self.db.moment)
            except DamagedValue as exc:
                logger.error("%s: a due schedule is damaged: %s", self.db.where, exc)
                continue
            object.__setattr__(schedule, "acquired_by", scheduler_id)
            object.__setattr__(schedule, "acquired_until", until)
            acquired.append(schedule)
        acquired.sort(key=lambda s: (s.next_fire_time, s.id))
        self._pass = FirePass()
        return acquired

    @contextlib.contextmanager
    def _recording(self) -> Iterator[None]:
        """While the sink runs (never across an await): keep what it records."""
        self.history.recording = self._pass
        try:
            yield
        finally:
            self.history.recording = None

    async def add_job(self, job: Job) -> None:
        """Judge the fire; what the sink makes of it waits for the release."""
        if self._fires is None:
            await super().add_job(job)
            return
        with self._recording():
            self._fires.add(job)
        await self._let_others_run()

    async def release_schedules(
        self, scheduler_id: str, results: Sequence[ScheduleResult]
    ) -> None:
        """Commit the pass: fenced fire times, accepted jobs, skipped rows, at once.

        Not waited for: the loop's next look at the database comes after it.
        Each accepted fire goes to the dispatcher once the commit is done.
        """
        if self._fires is not None:
            with self._recording():
                self._fires.flush()
        fires, self._pass = self._pass, FirePass()
        if not results and not fires:
            return
        stamp = self.db.stamp
        updates: tuple[list[Any], ...] = ([], [], [], [])
        for result in results:
            # APScheduler's types say "always a time"; a first pass may have none.
            next_fire: datetime | None = result.next_fire_time
            last_fire: datetime | None = result.last_fire_time
            updates[0].append(result.schedule_id)
            updates[1].append(None if next_fire is None else stamp(next_fire))
            updates[2].append(None if last_fire is None else stamp(last_fire))
            updates[3].append(
                None
                if next_fire is None
                else pickle.dumps(
                    result.trigger.__getstate__(), pickle.HIGHEST_PROTOCOL
                )
            )
        release = _Release(
            self.node, updates, [accept[0] for accept in fires.accepts], fires.skips
        )
        self.db.write(
            release,
            lambda: self._released(release, fires),
            urgent=any(accept[3] for accept in fires.accepts),
            failed=lambda error: _release_failed(fires, error),
        )

    def _released(self, release: _Release, fires: FirePass) -> None:
        """In the event loop, after the commit: dispatch what was accepted."""
        if release.fenced:
            shown = ", ".join(f"{s} (held by {n})" for s, n in release.fenced[:5])
            logger.error(
                "node %s: %d schedules were claimed by another node before this "
                "one released them (its lease of %gs ran out): the pass is rolled "
                "back, %d fires are not recorded here and run where they are "
                "held now: %s",
                self.node,
                len(release.fenced),
                self.lease,
                len(fires.accepts),
                shown,
            )
            return
        accepted = release.accepted
        for row, then, _failed, _urgent in fires.accepts:
            if row[0] not in accepted:
                logger.warning(
                    "node %s: the fire of schedule %s at %s was accepted already "
                    "(by another node): not run here",
                    self.node,
                    row[1],
                    row[6],
                )
                continue
            try:
                then()
            except Exception:
                logger.exception("dispatching a fire of schedule %s failed", row[1])

    async def _loop_read(self, work: Callable[[Any], T]) -> T | None:
        """A read of APScheduler's loop; None when it could not be done.

        Raising to the loop would end it and take the host's task group down
        with it. Fenced out (or the store lost), this node claims nothing
        more: its owner was told (``on_lost``) and stops it. With the server
        out of reach, the loop looks again after ``POLL`` (what correctness
        rests on), logged once per outage.
        """
        try:
            found = await self.db.read(work)
        except StoreError as exc:
            if self.db.lost is None and not self._loop_failing:
                self._loop_failing = True
                logger.warning(
                    "%s: the schedule loop cannot read the store (%s); it "
                    "looks again every %g s",
                    self.db.where,
                    exc,
                    POLL,
                )
            return None
        if self._loop_failing:
            self._loop_failing = False
            logger.warning("%s: the schedule loop reads the store again", self.db.where)
        return found

    async def get_next_schedule_run_time(self) -> datetime | None:
        """When the loop should look next: the earliest free schedule's early time.

        Measured on the database's clock and turned into this node's, at most
        ``POLL`` seconds away (schedules other nodes let go are seen so).
        """
        row = await self._loop_read(lambda c: c.raw.execute(_NEXT).fetchone())
        due_in = None if row is None else row[0]
        wait = POLL
        if due_in is not None:
            early = due_in - self._wake_ahead.total_seconds()
            wait = min(POLL, max(MIN_WAIT, early))
        return datetime.now(UTC) + timedelta(seconds=wait)

    async def extend_acquired_schedule_leases(
        self, scheduler_id: str, schedule_ids: set[str], duration: timedelta
    ) -> None:
        """Extend this node's leases of the schedules it holds (its own lease)."""
        if schedule_ids:
            ids = list(schedule_ids)
            self.db.write(((_EXTEND, (self.lease, ids, self.node)),))

    async def cleanup(self) -> None:
        """Drop finished schedules no node holds and no accepted job needs."""
        await super().cleanup()

        def finished(raw: Any) -> list[tuple[str, str]]:
            rows: list[tuple[str, str]] = raw.execute(
                "DELETE FROM schedules WHERE next_fire_time IS NULL AND "
                "lease_node IS NULL AND NOT EXISTS (SELECT 1 FROM jobs WHERE "
                "jobs.schedule_id = schedules.id) RETURNING id, task"
            ).fetchall()
            return rows

        for schedule_id, task_id in await self.db.transact(finished):
            await self._publish(
                ScheduleRemoved(schedule_id=schedule_id, task_id=task_id, finished=True)
            )


def _release_failed(fires: FirePass, error: BaseException) -> None:
    """The pass's commit failed: none of its fires runs (nor is recorded)."""
    if isinstance(error, FencedOut):
        return  # said once, when the node was fenced out
    for _row, _then, failed, _urgent in fires.accepts:
        if failed is not None:
            failed(error)


def _read_tasks(connection: Any) -> list[Task]:
    from .database import unpickle

    tasks: list[Task] = []
    for task_id, data in connection.execute("SELECT id, data FROM tasks"):
        task = unpickle(data, f"task {task_id!r}")
        task.running_jobs = 0
        tasks.append(task)
    return tasks
