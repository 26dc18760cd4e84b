"""ScheduleZero's data store for APScheduler: in memory, optionally on a database.

Every lookup is served from memory: due schedules from a list kept sorted by next
fire time (finding them costs the same with ten schedules or a million); when a
database is given (a SQLite file, PostgreSQL), every change is also written to it
(batched, on its own thread) and read back at start. Schedules and tasks are
durable; jobs of APScheduler's own job layer are not, because ScheduleZero's jobs
never enter it: with a ``sink`` set, ``add_job`` passes each fire on at once (see
``fires``), and the scheduler records it as accepted before it runs.

Against APScheduler 4.0.0a6's memory store, this one also survives a schedule
removed or replaced while APScheduler holds it (its store raises ``KeyError`` on
release and takes the scheduler down).
"""

from __future__ import annotations

import copy
import pickle
import time
from bisect import bisect_left, insort
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from anyio.lowlevel import cancel_shielded_checkpoint
from apscheduler import (
    ConflictingIdError,
    ConflictPolicy,
    Job,
    JobAcquired,
    JobAdded,
    JobOutcome,
    JobReleased,
    JobResult,
    Schedule,
    ScheduleAdded,
    ScheduleRemoved,
    ScheduleResult,
    ScheduleUpdated,
    Task,
    TaskAdded,
    TaskLookupError,
    TaskRemoved,
    TaskUpdated,
)
from apscheduler.abc import DataStore

from .database import DamagedValue, Database, unpickle
from .fires import Fires, FireSink, RoundDone
from .location import database_for
from .sqlite import SqliteFile

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable, Sequence
    from contextlib import AsyncExitStack
    from logging import Logger
    from uuid import UUID

    from apscheduler.abc import EventBroker

    from .database import Connection

__all__ = ["ScheduleStore", "schedule_of", "trigger_state"]

#: The sort key of a schedule with no next fire (never due).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Seconds of a pass over due schedules after which ``add_job`` lets other tasks
#: (the dispatcher starting fires that fell due) run.
YIELD_EVERY = 0.0005


#: Sets an attribute of an APScheduler structure without its attrs converters,
#: for values known to be converted already.
_set = object.__setattr__


def _key(schedule: Schedule) -> tuple[datetime, str] | None:
    """Its place in the due order, or None if it cannot come due."""
    if schedule.next_fire_time is None or schedule.paused:
        return None
    return (schedule.next_fire_time, schedule.id)


class ScheduleStore(DataStore):
    """APScheduler's ``DataStore``, in memory or backed by a database.

    Args:
        path: A SQLite file this store opens at start and closes at the end.
        url: A store URL (``sqlite:///...``, ``postgresql://...``) this store
            opens at start and closes at the end.
        file: A database opened by the caller (who shares it, e.g. with the
            history).
        sink: Where fires go instead of APScheduler's job layer (set it before
            start, or later: jobs added before it is set stay in the job layer).
        round_done: Told a schedule's id once each fire of its round has been
            passed to ``sink`` (None by default: not told).
        release_events: Publish ``ScheduleUpdated`` for every schedule released
            after a fire, as the ``DataStore`` contract says. APScheduler's event
            broker starts a task per event and subscriber, and the only subscriber
            is the schedule loop that just released the schedule and computes its
            next wake-up anyway: ScheduleZero turns them off (about a fifth of the
            CPU of a fire).
        lookahead: Seconds ahead of its next fire time that a schedule counts as
            due (0 by default, as the contract says). APScheduler then hands fires
            over up to this long before they are due, and the sink holds them:
            their bookkeeping and commits happen before the fire time rather than
            after it (as Quartz's "fire-ahead" trigger acquisition does).
        wake_only: Publish ``ScheduleAdded`` (or ``ScheduleUpdated``) for an added
            schedule only when it becomes the earliest due: the one subscriber in
            ScheduleZero is APScheduler's schedule loop, which needs waking only
            then, and its event broker starts a task per event (a fifth of the
            cost of adding a schedule).
        gather: Seconds (at most ``lookahead``) that the schedule loop's wake-up
            waits past the earliest schedule's early due time, so that one pass
            takes every schedule due within that window. APScheduler's loop costs
            hundreds of microseconds a pass whatever it takes: with fire times
            spread over the second, a pass per fire kept a core busy. Each fire
            is still taken at least ``lookahead - gather`` ahead of its time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        url: str | None = None,
        file: Database | None = None,
        sink: FireSink | None = None,
        round_done: RoundDone | None = None,
        release_events: bool = True,
        lookahead: float = 0.0,
        gather: float = 0.0,
        wake_only: bool = False,
    ) -> None:
        if (path is not None) + (url is not None) + (file is not None) > 1:
            raise ValueError("give a path, a url or an open database, not several")
        if not 0.0 <= gather <= lookahead:
            raise ValueError(
                f"gather ({gather}) must be within 0..lookahead ({lookahead})"
            )
        self._path = path
        self._url = url
        self.file = file
        self.release_events = release_events
        self.wake_only = wake_only
        self.lookahead = timedelta(seconds=lookahead)
        #: The wake-up falls this long before the earliest schedule's fire time.
        self._wake_ahead = timedelta(seconds=lookahead - gather)
        self._round_done = round_done
        self._fires = Fires(sink, round_done) if sink is not None else None
        self._tasks: dict[str, Task] = {}
        self._schedules: dict[str, Schedule] = {}
        self._due: list[tuple[datetime, str]] = []
        self._held: dict[str, Schedule] = {}  # acquired, by id
        self._jobs: dict[UUID, Job] = {}
        self._results: dict[UUID, JobResult] = {}
        self._broker: EventBroker | None = None
        #: Per schedule, its latest fire a previous run already took (a crash
        #: can come between taking a fire and storing the schedule's next one).
        self._taken: dict[str, datetime] = {}
        #: When the schedule loop last got the event loop back from other tasks.
        self._yielded = 0.0

    @property
    def sink(self) -> FireSink | None:
        """Where fires go (None: into APScheduler's job layer)."""
        return self._fires.sink if self._fires is not None else None

    @sink.setter
    def sink(self, sink: FireSink | None) -> None:
        if self._fires is not None:
            self._fires.flush()
        self._fires = Fires(sink, self._round_done) if sink is not None else None

    def fold(self, schedule_id: str, until: datetime) -> None:
        """Coalesce the schedule's fires up to ``until`` in its next round.

        See ``Fires.fold``. Without a sink, fires are not judged: nothing to do.
        """
        if self._fires is not None:
            self._fires.fold(schedule_id, until)

    def taken(self, schedule_id: str) -> datetime | None:
        """The schedule's latest fire a previous run took (or recorded), or None.

        Read from the file at start; forgotten once a later fire is taken, or
        the schedule is stored anew.
        """
        return self._taken.get(schedule_id)

    def fire_due(self, schedule_id: str, now: datetime) -> bool:
        """Whether the schedule's next round takes a fire at or before ``now``.

        True for a schedule not paused whose next fire not yet taken (a fire a
        previous run took before it stopped is not taken again) is at or before
        ``now``: a fire that came due while the process was down. Read before
        the schedule loop starts.
        """
        schedule = self._schedules.get(schedule_id)
        if schedule is None or schedule.paused:
            return False
        fire = schedule.next_fire_time
        taken = self._taken.get(schedule_id)
        if fire is not None and taken is not None and fire <= taken:
            # The process stopped between taking a fire and storing the next:
            # step a copy of the trigger past the fires taken.
            trigger = copy.deepcopy(schedule.trigger)
            while fire is not None and fire <= taken:
                fire = trigger.next()
        return fire is not None and fire <= now

    def __repr__(self) -> str:
        where = (
            self.file.where
            if self.file is not None
            else self._path or self._url or "memory"
        )
        return f"ScheduleStore({str(where)!r})"

    # -------------------------------------------------------------- lifecycle

    async def start(
        self, exit_stack: AsyncExitStack, event_broker: EventBroker, logger: Logger
    ) -> None:
        """Open the file if this store owns one, and load what it holds."""
        self._broker = event_broker
        if self.file is None and (self._path is not None or self._url is not None):
            file = (
                SqliteFile(self._path)
                if self._path is not None
                else database_for(self._url)
            )
            assert file is not None, "a url of memory: nothing to open"
            await file.open()
            exit_stack.push_async_callback(file.close)
            self.file = file
        if self.file is not None:
            moment = self.file.moment
            tasks, schedules, self._taken = await self.file.read(
                lambda c: _load(c, moment)
            )
            self._tasks = {task.id: task for task in tasks}
            self._schedules = {schedule.id: schedule for schedule in schedules}
            self._due = sorted(
                key for key in map(_key, self._schedules.values()) if key is not None
            )
        exit_stack.push_async_callback(self._finish_round)

    async def _finish_round(self) -> None:
        if self._fires is not None:
            self._fires.flush()

    async def _publish(self, event: Any) -> None:
        assert self._broker is not None, "the store has not started"
        await self._broker.publish(event)

    # ------------------------------------------------------------------ tasks

    async def add_task(self, task: Task) -> None:
        """Add or replace a task (its count of running jobs carries over)."""
        old = self._tasks.get(task.id)
        if old is not None:
            task.running_jobs = old.running_jobs
        self._tasks[task.id] = task
        if self.file is not None:
            data = pickle.dumps(task, pickle.HIGHEST_PROTOCOL)
            self.file.write(lambda c: _put_task(c, task.id, data))
            await self.file.flush()
        event = TaskUpdated if old is not None else TaskAdded
        await self._publish(event(task_id=task.id))

    async def remove_task(self, task_id: str) -> None:
        """Remove a task.

        Raises:
            TaskLookupError: No such task.
        """
        if self._tasks.pop(task_id, None) is None:
            raise TaskLookupError(task_id)
        if self.file is not None:
            self.file.write(
                lambda c: c.execute("DELETE FROM tasks WHERE id=?", (task_id,))
            )
            await self.file.flush()
        await self._publish(TaskRemoved(task_id=task_id))

    async def get_task(self, task_id: str) -> Task:
        """One task.

        Raises:
            TaskLookupError: No such task.
        """
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskLookupError(task_id) from None

    async def get_tasks(self) -> list[Task]:
        """Every task, by id."""
        return sorted(self._tasks.values())

    # -------------------------------------------------------------- schedules

    async def get_schedules(self, ids: set[str] | None = None) -> list[Schedule]:
        """Every schedule, or those with the given ids."""
        if ids is None:
            return list(self._schedules.values())
        return [s for s in self._schedules.values() if s.id in ids]

    async def add_schedule(
        self, schedule: Schedule, conflict_policy: ConflictPolicy
    ) -> None:
        """Add a schedule, or by ``conflict_policy`` replace or keep the old one.

        Raises:
            ConflictingIdError: Its id exists and the policy is ``exception``.
        """
        old = self._schedules.get(schedule.id)
        if old is not None:
            if conflict_policy is ConflictPolicy.do_nothing:
                return
            if conflict_policy is ConflictPolicy.exception:
                raise ConflictingIdError(schedule.id)  # type: ignore[no-untyped-call]
            self._unindex(old)
        self._schedules[schedule.id] = schedule
        self._taken.pop(schedule.id, None)  # a new schedule: its fires are new
        if self._fires is not None:
            self._fires.unfold(schedule.id)  # nor folded into a job taken up
        self._index(schedule)
        if self.file is not None:
            self._persist(schedule)
            await self.file.flush()
        if self.wake_only and not (self._due and self._due[0][1] == schedule.id):
            # Not the earliest: the loop's wake-up, computed from an earlier
            # schedule (or one since removed, which wakes it early), comes first.
            return
        event = ScheduleUpdated if old is not None else ScheduleAdded
        await self._publish(
            event(
                schedule_id=schedule.id,
                task_id=schedule.task_id,
                next_fire_time=schedule.next_fire_time,
            )
        )

    async def remove_schedules(
        self, ids: Iterable[str], *, finished: bool = False
    ) -> None:
        """Remove schedules; ids that are not there are ignored."""
        removed: list[Schedule] = []
        for schedule_id in ids:
            schedule = self._schedules.pop(schedule_id, None)
            if schedule is not None:
                self._unindex(schedule)
                self._taken.pop(schedule_id, None)
                if self._fires is not None:
                    self._fires.unfold(schedule_id)
                removed.append(schedule)
        if not removed:
            return
        if self.file is not None:
            gone = [(schedule.id,) for schedule in removed]

            def delete(connection: Connection) -> None:
                connection.executemany("DELETE FROM schedules WHERE id=?", gone)
                connection.executemany("DELETE FROM fired WHERE schedule_id=?", gone)

            self.file.write(delete)
            await self.file.flush()
        for schedule in removed:
            await self._publish(
                ScheduleRemoved(
                    schedule_id=schedule.id, task_id=schedule.task_id, finished=finished
                )
            )

    async def acquire_schedules(
        self, scheduler_id: str, lease_duration: timedelta, limit: int
    ) -> list[Schedule]:
        """Claim up to ``limit`` due schedules, earliest first."""
        now = datetime.now(UTC)
        until = now + lease_duration
        horizon = now + self.lookahead
        acquired: list[Schedule] = []
        for fire_time, schedule_id in self._due:
            if fire_time > horizon or len(acquired) >= limit:
                break
            schedule = self._schedules[schedule_id]
            if (
                schedule.acquired_by not in (None, scheduler_id)
                and schedule.acquired_until is not None
                and now <= schedule.acquired_until
            ):
                continue  # another scheduler holds it
            _set(schedule, "acquired_by", scheduler_id)
            _set(schedule, "acquired_until", until)
            self._held[schedule_id] = schedule
            acquired.append(schedule)
        return acquired

    async def release_schedules(
        self, scheduler_id: str, results: Sequence[ScheduleResult]
    ) -> None:
        """Store each schedule's new fire times and let go of it.

        A schedule removed or replaced by a new one while held is not brought
        back: the removal or the replacement stands. One paused or resumed while
        held (APScheduler stores a copy sharing the trigger) gets the new times.
        """
        if self._fires is not None:
            self._fires.flush()
        for result in results:
            await self._let_others_run()
            held = self._held.pop(result.schedule_id, None)
            schedule = self._schedules.get(result.schedule_id)
            if schedule is None:
                continue  # removed while held: the removal stands
            if (
                held is not None
                and schedule is not held
                and schedule.trigger is not held.trigger
            ):
                continue  # replaced by a new schedule: the replacement stands
            # The schedule itself, or the same schedule paused or resumed while
            # held (a copy sharing its trigger): it takes the fire times on, or
            # a resume would fire again the fires just taken.
            self._unindex(schedule)
            # Past attrs' converters: APScheduler's values are aware datetimes
            # already, and converting four fields cost a sixth of a fire.
            _set(schedule, "last_fire_time", result.last_fire_time)
            _set(schedule, "next_fire_time", result.next_fire_time)
            _set(schedule, "acquired_by", None)
            _set(schedule, "acquired_until", None)
            self._index(schedule)
            if self.file is not None:
                self._persist_fire(schedule)
            if not self.release_events:
                continue
            await self._publish(
                ScheduleUpdated(
                    schedule_id=schedule.id,
                    task_id=schedule.task_id,
                    next_fire_time=schedule.next_fire_time,
                )
            )

    async def get_next_schedule_run_time(self) -> datetime | None:
        """When the loop should next look for due schedules.

        The earliest unpaused schedule's fire time, less the lookahead, plus the
        gather window.
        """
        return self._due[0][0] - self._wake_ahead if self._due else None

    async def extend_acquired_schedule_leases(
        self, scheduler_id: str, schedule_ids: set[str], duration: timedelta
    ) -> None:
        """Extend the leases of schedules this scheduler holds."""
        until = datetime.now(UTC) + duration
        for schedule_id in schedule_ids:
            schedule = self._schedules.get(schedule_id)
            if schedule is not None and schedule.acquired_by == scheduler_id:
                schedule.acquired_until = until

    def _index(self, schedule: Schedule) -> None:
        key = _key(schedule)
        if key is not None:
            insort(self._due, key)

    def _unindex(self, schedule: Schedule) -> None:
        key = _key(schedule)
        if key is None:
            return
        at = bisect_left(self._due, key)
        if at < len(self._due) and self._due[at] == key:
            del self._due[at]

    def _persist(self, schedule: Schedule) -> None:
        """Queue the schedule's current state for the file (no wait)."""
        assert self.file is not None
        self.file.write(((_PUT_SCHEDULE, schedule_row(schedule, self.file.stamp)),))

    def _persist_fire(self, schedule: Schedule) -> None:
        """Queue what a fire changed: fire times and the trigger's state.

        Half the cost of storing the whole schedule again, on every fire.
        """
        assert self.file is not None
        trigger = trigger_state(schedule)
        stamp = self.file.stamp
        next_fire, last_fire = schedule.next_fire_time, schedule.last_fire_time
        row = (
            None if next_fire is None else stamp(next_fire),
            None if last_fire is None else stamp(last_fire),
            trigger,
            schedule.id,
        )
        self.file.write(((_FIRED_SCHEDULE, row),))

    async def _let_others_run(self) -> None:
        """Yield to other tasks if this call has kept the loop ``YIELD_EVERY``.

        APScheduler's pass over due schedules awaits only the store: a pass of a
        hundred fires would hold the loop for ten milliseconds or more, and held
        fires falling due meanwhile would start that late. Never raises
        cancellation: a pass is not left half done.
        """
        if time.monotonic() - self._yielded >= YIELD_EVERY:
            await cancel_shielded_checkpoint()
            self._yielded = time.monotonic()

    # ------------------------------------------------------------------- jobs

    async def add_job(self, job: Job) -> None:
        """Pass the job to the sink if one is set; else queue it for acquisition.

        With a sink this never raises and never waits (beyond letting other tasks
        run now and then): APScheduler calls it from its schedule loop.
        """
        if self._fires is not None:
            if self._taken and job.schedule_id in self._taken:
                taken = self._taken[job.schedule_id]
                fire = job.scheduled_fire_time
                if fire is not None and fire - job.jitter <= taken:
                    return  # accepted before the restart: not again
                del self._taken[job.schedule_id]
            self._fires.add(job)
            await self._let_others_run()
            return
        self._jobs[job.id] = job
        await self._publish(
            JobAdded(job_id=job.id, task_id=job.task_id, schedule_id=job.schedule_id)
        )

    async def get_jobs(self, ids: Iterable[UUID] | None = None) -> list[Job]:
        """Jobs waiting or running in the job layer."""
        if ids is None:
            return list(self._jobs.values())
        wanted = frozenset(ids)
        return [job for job in self._jobs.values() if job.id in wanted]

    async def acquire_jobs(
        self, scheduler_id: str, lease_duration: timedelta, limit: int | None = None
    ) -> list[Job]:
        """Claim jobs to run, oldest first, within each task's running limit.

        A job past its start deadline is released as ``missed_start_deadline``.
        """
        now = datetime.now(UTC)
        until = now + lease_duration
        acquired: list[Job] = []
        missed: list[Job] = []
        for job in self._jobs.values():
            if limit is not None and len(acquired) >= limit:
                break
            task = self._tasks.get(job.task_id)
            if job.acquired_until is not None:
                if job.acquired_until >= now:
                    continue
                if task is not None:  # its lease ran out: no longer running
                    task.running_jobs = max(0, task.running_jobs - 1)
            if job.start_deadline is not None and job.start_deadline < now:
                missed.append(job)
                continue
            if (
                task is not None
                and task.max_running_jobs is not None
                and task.running_jobs >= task.max_running_jobs
            ):
                continue
            job.acquired_by = scheduler_id
            job.acquired_until = until
            if task is not None:
                task.running_jobs += 1
            acquired.append(job)
        for job in acquired:
            await self._publish(JobAcquired.from_job(job, scheduler_id=scheduler_id))
        for job in missed:
            await self.release_job(
                scheduler_id,
                job,
                JobResult(
                    job_id=job.id,
                    outcome=JobOutcome.missed_start_deadline,
                    finished_at=now,
                    expires_at=now + job.result_expiration_time,
                ),
            )
        return acquired

    async def release_job(self, scheduler_id: str, job: Job, result: JobResult) -> None:
        """Record the job's result (if it is to be kept) and forget the job."""
        if result.expires_at > result.finished_at:
            self._results[result.job_id] = result
        stored = self._jobs.pop(result.job_id, None)
        if stored is not None and stored.acquired_by is not None:
            task = self._tasks.get(stored.task_id)
            if task is not None:
                task.running_jobs = max(0, task.running_jobs - 1)
        await self._publish(
            JobReleased.from_result(
                result,
                scheduler_id,
                job.task_id,
                job.schedule_id,
                job.scheduled_fire_time,
            )
        )

    async def get_job_result(self, job_id: UUID) -> JobResult | None:
        """A job's result, once (it is removed)."""
        return self._results.pop(job_id, None)

    async def extend_acquired_job_leases(
        self, scheduler_id: str, job_ids: set[UUID], duration: timedelta
    ) -> None:
        """Extend the leases of jobs this scheduler runs."""
        until = datetime.now(UTC) + duration
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is not None and job.acquired_by == scheduler_id:
                job.acquired_until = until

    async def reap_abandoned_jobs(self, scheduler_id: str) -> None:
        """Release as ``abandoned`` the jobs this scheduler held (it restarted)."""
        now = datetime.now(UTC)
        for job in [j for j in self._jobs.values() if j.acquired_by == scheduler_id]:
            await self.release_job(
                scheduler_id,
                job,
                JobResult.from_job(job, outcome=JobOutcome.abandoned, finished_at=now),
            )

    async def cleanup(self) -> None:
        """Purge old results, release jobs past their lease, drop ended schedules."""
        now = datetime.now(UTC)
        for job_id in [k for k, r in self._results.items() if r.expires_at <= now]:
            del self._results[job_id]
        for job in [
            j
            for j in self._jobs.values()
            if j.acquired_until is not None and j.acquired_until < now
        ]:
            assert job.acquired_by is not None
            await self.release_job(
                job.acquired_by,
                job,
                JobResult.from_job(job, outcome=JobOutcome.abandoned, finished_at=now),
            )
        busy = {job.schedule_id for job in self._jobs.values()}
        finished = [
            schedule_id
            for schedule_id, schedule in self._schedules.items()
            if schedule.next_fire_time is None
            and schedule_id not in busy
            and schedule_id not in self._held
        ]
        await self.remove_schedules(finished, finished=True)


_PUT_SCHEDULE = (
    "INSERT INTO schedules (id, task, next_fire_time, last_fire_time, paused, data, "
    "trigger) VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (id) DO UPDATE SET "
    "task=excluded.task, next_fire_time=excluded.next_fire_time, "
    "last_fire_time=excluded.last_fire_time, paused=excluded.paused, "
    "data=excluded.data, trigger=NULL"
)

_FIRED_SCHEDULE = (
    "UPDATE schedules SET next_fire_time=?, last_fire_time=?, trigger=? WHERE id=?"
)


def _put_task(connection: Connection, task_id: str, data: bytes) -> None:
    connection.execute(
        "INSERT INTO tasks (id, data) VALUES (?, ?) "
        "ON CONFLICT (id) DO UPDATE SET data=excluded.data",
        (task_id, data),
    )


def schedule_row(
    schedule: Schedule, stamp: Callable[[datetime], Any]
) -> tuple[Any, ...]:
    """The ``schedules`` row of ``schedule``, its times as ``stamp`` stores them."""
    next_fire, last_fire = schedule.next_fire_time, schedule.last_fire_time
    return (
        schedule.id,
        schedule.task_id,
        None if next_fire is None else stamp(next_fire),
        None if last_fire is None else stamp(last_fire),
        schedule.paused,
        pickle.dumps(schedule, pickle.HIGHEST_PROTOCOL),
    )


def schedule_of(row: Sequence[Any], moment: Callable[[Any], datetime]) -> Schedule:
    """A schedule read back from ``(id, data, trigger, next_fire, last_fire)``.

    Held by nobody: a restart ends every lease.

    Raises:
        DamagedValue: It, or its trigger's state, cannot be read back.
    """
    schedule_id, data, trigger, next_fire, last_fire = row
    schedule: Schedule = unpickle(data, f"schedule {schedule_id!r}")
    # The columns have the latest fire times; the trigger's state after a
    # fire is there unless the schedule was stored whole since, or finished.
    if trigger is not None:
        state = unpickle(trigger, f"the trigger of schedule {schedule_id!r}")
        try:
            schedule.trigger.__setstate__(state)
        except Exception as exc:
            raise DamagedValue(
                f"the trigger of schedule {schedule_id!r} cannot be read back ({exc!r})"
            ) from None
    _set(schedule, "next_fire_time", None if next_fire is None else moment(next_fire))
    _set(schedule, "last_fire_time", None if last_fire is None else moment(last_fire))
    _set(schedule, "acquired_by", None)
    _set(schedule, "acquired_until", None)
    return schedule


def trigger_state(schedule: Schedule) -> bytes | None:
    """What a fire changed in the schedule's trigger, pickled (None once finished).

    Half the cost of storing the whole schedule again, on every fire.
    """
    if schedule.next_fire_time is None:
        return None  # a finished schedule never fires again: its state is moot
    return pickle.dumps(schedule.trigger.__getstate__(), pickle.HIGHEST_PROTOCOL)


def _load(
    connection: Connection, moment: Callable[[Any], datetime]
) -> tuple[list[Task], list[Schedule], dict[str, datetime]]:
    """Every task and schedule in the file, and each schedule's latest fire taken.

    A restart ends every lease and every running job.
    """
    tasks: list[Task] = []
    for task_id, data in connection.execute("SELECT id, data FROM tasks"):
        task = unpickle(data, f"task {task_id!r}")
        task.running_jobs = 0
        tasks.append(task)
    schedules = [
        schedule_of(row, moment)
        for row in connection.execute(
            "SELECT id, data, trigger, next_fire_time, last_fire_time FROM schedules"
        )
    ]
    taken = {
        schedule_id: moment(fire_time)
        for schedule_id, fire_time in connection.execute(
            "SELECT schedule_id, fire_time FROM fired"
        )
    }
    return tasks, schedules, taken
