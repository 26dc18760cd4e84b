"""The dispatcher actor: picks a handler for every job, retries, and records outcomes.

Its state lives in a ``DispatcherState`` that the scheduler owns, so a restarted
dispatcher carries on with the same handlers, queues and jobs in flight: a crash of
the dispatcher loses no job.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from actors import Actor, ActorRef, Backoff, MailboxFull, Terminated, Timer, lowlevel

from .errors import Overloaded, SzError
from .governors import Governor, GovernorStatus, TokenBucket
from .handlers import CancelJob, Execute, Finished
from .health import HandlerHealth, HealthPolicy, HealthTracker
from .history import WithResult
from .jobs import (
    Attempt,
    Job,
    JobFuture,
    JobState,
    JobStatus,
    Outcome,
    Reason,
    describe_arguments,
    describe_error,
    describe_traceback,
)
from .retry import (
    # Re-exported: where its readers have always found it.
    LOST_JOB_RETRIES as LOST_JOB_RETRIES,
    next_attempt,
)
from .routing import HandlerPicker

__all__ = [
    "Attach",
    "Cancel",
    "DispatcherActor",
    "DispatcherState",
    "Drain",
    "GovernorsQuery",
    "HandlerStatus",
    "HandlersQuery",
    "JobsQuery",
    "Register",
    "RunningJob",
    "Submit",
    "Unregister",
]

#: Outcomes whose rows carry the exception's traceback.
_FAILED = frozenset({"failure", "timeout"})

#: Seconds between looks at jobs waiting for a handler.
TICK = 0.25


@attrs.frozen(kw_only=True)
class Register:
    """A handler joins: ``name`` serves ``task`` (or all of ``tasks``) through ``ref``.

    A remote worker serves several tasks with one ``concurrency`` shared among
    them: jobs of any of its tasks count against it.
    """

    name: str
    task: str | None = None
    tasks: tuple[str, ...] = ()
    ref: ActorRef
    concurrency: int
    retries: int
    #: ``"local"`` (a function in this process) or ``"remote"`` (a worker).
    kind: str = "local"
    #: Seconds an attempt may run (the handler's timeout), or None: also how
    #: long a trial job may run before the health policy's ``trial_timeout``.
    timeout: float | None = None
    #: How long a retry after a failure waits, or None: at once.
    retry_backoff: Backoff | None = None

    @property
    def served(self) -> tuple[str, ...]:
        """Every task it serves."""
        return self.tasks or ((self.task,) if self.task is not None else ())


@attrs.frozen(kw_only=True)
class Unregister:
    """A handler leaves, its process still running (a remote worker).

    With ``drain``, it takes no new jobs but finishes those in flight (a worker
    shutting down); else it is forgotten, and its jobs in flight are lost for
    ``reason`` (``worker_lost``, ``worker_left``): each is tried again at once,
    its history row saying ``retry_after_<reason>``.
    """

    name: str
    reason: str = "worker_lost"
    drain: bool = False


# One per job on the hot path: slotted, positional and mutable (STYLE rule 4's
# exception); internal to sz.
@attrs.define
class Submit:
    """Run ``job``; resolve ``future`` (if any) with its final outcome.

    A job taken up again after a restart comes with the number of its next
    ``attempt`` and the ``reason`` for it.
    """

    job: Job
    future: JobFuture | None = None
    attempt: int = 1
    reason: Reason | None = None
    #: Hold the job until its ``scheduled_at`` if that is still to come (a fire
    #: the store took ahead of time).
    hold: bool = False


@attrs.frozen(kw_only=True)
class HandlersQuery:
    """Ask for every handler's status."""


@attrs.frozen(kw_only=True)
class JobsQuery:
    """Ask where live jobs stand: ``JobStatus``es, held, waiting, then running.

    ``state`` keeps only those in it; ``job_id`` only that job (an empty list
    if it is not live here: ended, in transit, or unknown).
    """

    state: JobState | None = None
    job_id: str | None = None


@attrs.frozen
class Attach:
    """Ask for the future of a live job, to wait on its end.

    The answer is the future it has already (a ``submit``'s), or ``future``,
    now attached; None if the job is not live here.
    """

    job_id: str
    future: JobFuture


@attrs.frozen
class Cancel:
    """Cancel a live job. The answer is True if it was, False if not live here.

    Held or waiting, it ends at once. Running, its final row is written now and
    its result, when it comes, is dropped; the handler is told (``CancelJob``),
    and a local async handler cancels the call.
    """

    job_id: str


@attrs.frozen(kw_only=True)
class GovernorsQuery:
    """Ask for every limit's status."""


@attrs.frozen(kw_only=True)
class HandlerStatus:
    """One handler as ``sz.handlers()`` shows it.

    Attributes:
        name: The handler's id.
        task: The task it serves (a remote worker's first).
        concurrency: Jobs it may run at once (a remote worker: its capacity, over
            all its tasks).
        health: Its health: state, counts, failure ratio, durations, load.
        rate: The jobs per second it may start now (its configured rate, lower
            while adaptive throttling holds it back), or None without a rate.
        tasks: Every task it serves.
        kind: ``"local"`` (a function in this process) or ``"remote"`` (a worker
            process connected over ZeroMQ).
        draining: True while it finishes its jobs before leaving (takes no new one).
    """

    name: str
    task: str
    concurrency: int
    health: HandlerHealth
    rate: float | None = None
    tasks: tuple[str, ...] = ()
    kind: str = "local"
    draining: bool = False


class _Release:
    """Time to dispatch held jobs that are due."""


_RELEASE = _Release()


class _Tick:
    """Time to look at waiting jobs."""


_TICK = _Tick()


class _Govern:
    """Time to look again at jobs waiting for a rate limit."""


_GOVERN = _Govern()


@attrs.frozen
class _LoseJobs:
    """The handler ``name`` behind ``ref`` ended: its jobs still in flight are lost.

    Told to itself when the ``Terminated`` comes, so that it is handled after the
    handler's last reports: those were sent before it ended and wait in the
    mailbox, which ``Terminated`` overtakes.
    """

    name: str
    ref: ActorRef
    reason: str


class Stopping:
    """The scheduler stops: end held jobs, and free whoever waits on the rest.

    Asked as the scheduler stops. Every job held ahead of its time ends as
    ``cancelled`` (``scheduler_stopped``), so that a fire taken early gets its
    final row now rather than run late at the next start. A caller waiting on a
    job that will not end in this run (waiting, or running: handlers are
    stopped next) gets an ``SzError`` saying so, rather than wait for ever;
    the job itself stays accepted. The answer is how many held jobs it ended.
    """


STOPPING = Stopping()


@attrs.frozen
class RunningJob:
    """A job running now: its attempt, and the handler that runs it."""

    job: Job
    attempt: int
    handler: str


@attrs.frozen
class Drain:
    """Ask the dispatcher to start no job from now on, for good: the scheduler stops.

    Jobs taken ahead of their time end as ``cancelled`` (``scheduler_stopped``);
    jobs waiting stay waiting (a durable store takes them up at the next start);
    a retry of an attempt that ends meanwhile waits too. ``quiet`` is called
    once no job is running. The answer: the jobs running now (``RunningJob``).
    Asked again, it answers again.
    """

    quiet: Callable[[], None]


class _Sent:
    """A job went to a handler."""


class _Wait:
    """A job must wait: no healthy handler, or none with room."""


_SENT = _Sent()
_WAIT = _Wait()


@attrs.frozen
class _Limited:
    """A job must wait for a governor.

    ``limit`` (a ``GovernorStatus`` name) binds for ``seconds`` more (0.0: until
    a running job ends).
    """

    seconds: float
    limit: str
    reason: Reason  # rate_limited or concurrency_limited


@attrs.frozen(kw_only=True)
class _Expire:
    """A waiting job's wait is up."""

    job_id: str
    attempt: int


@attrs.define
class _Handler:
    name: str
    tasks: tuple[str, ...]
    ref: ActorRef
    concurrency: int
    retries: int
    tracker: HealthTracker
    active: int = 0
    retry_backoff: Backoff | None = None
    kind: str = "local"
    #: Finishing its jobs before it leaves: it takes no new one.
    draining: bool = False

    def takes(self, now: float) -> bool:
        """Whether it may be given a job now (health permitting)."""
        return not self.draining and self.tracker.accepts_job(now)

    def serves(self, now: float) -> bool:
        """Whether it is in service now."""
        return not self.draining and self.tracker.serves(now)


@attrs.define
class _Pending:
    job: Job
    attempt: int
    future: JobFuture | None
    deadline: float
    reason: Reason | None = None
    #: When it began to wait (the dispatcher's clock).
    since: float = 0.0
    #: Why a governor held it back (rate_limited, concurrency_limited), if one did.
    limited: Reason | None = None


@attrs.define
class _InFlight:
    job: Job
    attempt: int
    future: JobFuture | None
    handler: str
    #: When it was sent (the dispatcher's clock): a loss or a cancel records
    #: it as the attempt's start, turned into wall time only then.
    sent: float
    #: The actor it was sent to: a handler's name may outlive its actor.
    ref: ActorRef
    #: Seconds it waited for a governor, and why (None: it did not).
    waited: float | None = None
    limited: Reason | None = None
    #: Cancelled while it ran: its row is written; its report frees the slot.
    cancelled: bool = False


@attrs.define
class DispatcherState:
    """Everything the dispatcher knows; outlives any one dispatcher instance."""

    policy: HealthPolicy = attrs.field(factory=HealthPolicy)
    handlers: dict[str, _Handler] = attrs.field(factory=dict)
    #: The same handlers by the task they serve: what every dispatch looks up.
    by_task: dict[str, list[_Handler]] = attrs.field(factory=dict)
    #: Per task, the picker that chooses which of its handlers takes a job.
    pickers: dict[str, HandlerPicker] = attrs.field(factory=dict)
    waiting: dict[str, deque[_Pending]] = attrs.field(factory=dict)
    #: Per task, how many of its waiting jobs have an affinity key.
    keyed: dict[str, int] = attrs.field(factory=dict)
    #: The task of every waiting job, by job id.
    waiting_task: dict[str, str] = attrs.field(factory=dict)
    #: Jobs taken ahead of their time: a heap of (due, sequence, submission).
    held: list[tuple[datetime, int, Submit]] = attrs.field(factory=list)
    held_count: int = 0
    #: Why a schedule's held fires must not run (paused or removed since they
    #: were taken), or None: asked when a held fire comes due.
    withdrawn: Callable[[str], Reason | None] = lambda _schedule_id: None
    in_flight: dict[str, _InFlight] = attrs.field(factory=dict)
    #: The limits every dispatch passes (none by default but backpressure).
    governor: Governor = attrs.field(factory=Governor)
    #: The task the fair drain last sent a job of: the next drain starts after it.
    last_served: str | None = None
    #: Tasks none of whose handlers takes jobs now (all unhealthy or gone).
    unserved: set[str] = attrs.field(factory=set)
    #: Told ``(task, False)`` when a task's last handler stops taking jobs, and
    #: ``(task, True)`` when one takes them again (a trial job counts).
    on_served: Callable[[str, bool], None] = lambda _task, _served: None
    #: Whether accepted jobs outlive the process (the SQLite store).
    durable: bool = False
    #: What spreads retry backoffs (``Backoff.jitter``).
    rng: random.Random = attrs.field(factory=random.Random)
    #: Set by ``Drain``: no job is sent to a handler any more.
    draining: bool = False
    #: Called (once) when the last running job ends while draining.
    on_quiet: Callable[[], None] | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class DispatcherActor(Actor):
    """Sends each job to the least loaded healthy handler of its task.

    Ties go round-robin; a job with an affinity key sticks to one handler while it
    is healthy. A job with no healthy handler waits up to its ``wait`` seconds, then
    ends as ``no_healthy_handler``. Every attempt is written to the history, and
    exactly one row per job is final.
    """

    def __init__(self, state: DispatcherState, history: ActorRef) -> None:
        self.state = state
        self.history = history
        self._release_at: datetime | None = None
        self._release_timer: Timer | None = None
        self._govern_at: float | None = None
        self._govern_timer: Timer | None = None

    async def on_start(self) -> None:
        """Watch the handlers; look at waiting jobs now and every ``TICK`` seconds."""
        self._clock = lowlevel.clock(self.system).now
        self._me = self.ref  # the reply-to of every job sent
        for handler in self.state.handlers.values():
            self.watch(handler.ref)  # watches end with an incarnation: renew them
        self.every(TICK, _TICK)
        self._drain_all()
        self._arm_release()

    async def receive(self, message: Any) -> Any:
        """Handle a submission, a report, a registration, a query or a tick."""
        if isinstance(message, Finished):
            self._finished(message)
        elif isinstance(message, Submit):
            if message.hold and message.job.scheduled_at > _now():
                self._hold(message)
            else:
                self._dispatch(
                    message.job, message.attempt, message.future, message.reason
                )
        elif message is _RELEASE:
            self._release()
        elif message is STOPPING:
            return self._stopping()
        elif isinstance(message, Drain):
            return self._drain_for_stop(message)
        elif message is _GOVERN:
            self._govern_at = self._govern_timer = None
            self._drain_all()
        elif message is _TICK:
            self._drain_all()
            self._check_served()
        elif isinstance(message, _Expire):
            self._expire(message)
        elif isinstance(message, Terminated):
            self._handler_gone(message.ref)
        elif isinstance(message, _LoseJobs):
            self._lose_jobs_of(message.name, message.reason, message.ref)
        elif isinstance(message, Register):
            self._register(message)
        elif isinstance(message, Unregister):
            self._unregister(message)
        elif isinstance(message, HandlersQuery):
            return self._statuses()
        elif isinstance(message, JobsQuery):
            return self._job_statuses(message)
        elif isinstance(message, Attach):
            return self._attach(message)
        elif isinstance(message, Cancel):
            return self._cancel(message.job_id)
        elif isinstance(message, GovernorsQuery):
            return self._governor_statuses()
        else:
            await super().receive(message)
        return None

    # ---------------------------------------------------------------- holding

    def _hold(self, message: Submit, due: datetime | None = None) -> None:
        """Keep a job until it is due.

        A fire taken ahead of its time is due at its ``scheduled_at``; a retry
        spaced out by a backoff at ``due``.

        In the state, which outlives this instance: a restarted dispatcher arms
        its timer again in ``on_start``.
        """
        self.state.held_count += 1
        heapq.heappush(
            self.state.held,
            (
                due if due is not None else message.job.scheduled_at,
                self.state.held_count,
                message,
            ),
        )
        self._arm_release()

    def _arm_release(self) -> None:
        """One timer, for the earliest held job."""
        if not self.state.held:
            return
        due = self.state.held[0][0]
        if self._release_at is not None and self._release_at <= due:
            return
        if self._release_timer is not None:
            self._release_timer.cancel()
        self._release_at = due
        delay = max(0.0, (due - _now()).total_seconds())
        self._release_timer = self.send_after(delay, _RELEASE)

    def _release(self) -> None:
        """Dispatch every held job now due; arm the timer for the next."""
        self._release_at = self._release_timer = None
        held, now = self.state.held, _now()
        while held and held[0][0] <= now:
            _, _, message = heapq.heappop(held)
            job = message.job
            # A fire taken early whose schedule was paused or removed since
            # does not run; a retry of a job under way does.
            why = (
                self.state.withdrawn(job.schedule_id)
                if job.schedule_id and message.attempt == 1
                else None
            )
            if why is not None:
                self._end(job, message.attempt, message.future, "cancelled", reason=why)
                continue
            self._dispatch(job, message.attempt, message.future, message.reason)
        self._arm_release()

    def _stopping(self) -> int:
        cancelled = self._cancel_held()
        state = self.state
        waiters = [
            (pending.job, pending.future)
            for queue in state.waiting.values()
            for pending in queue
        ]
        waiters += [(entry.job, entry.future) for entry in state.in_flight.values()]
        for job, future in waiters:
            if future is not None:
                future.fail(
                    SzError(
                        f"the scheduler stopped before job {job.id} of task "
                        f"{job.task!r} ended; "
                        + (
                            "it stays accepted: the next start takes it up"
                            if self.state.durable
                            else "on the memory store it is lost"
                        )
                    )
                )
        return cancelled

    def _cancel_held(self) -> int:
        """End every fire held ahead of time as cancelled: the scheduler stops.

        A retry held for its backoff is not a fire: it stays accepted (on a
        durable store the next start takes its job up, and tries it again).
        """
        fires = [item for item in self.state.held if item[2].attempt == 1]
        self.state.held = [item for item in self.state.held if item[2].attempt > 1]
        heapq.heapify(self.state.held)
        if self._release_timer is not None:
            self._release_timer.cancel()
        self._release_at = self._release_timer = None
        held = fires
        self._arm_release()
        for _, _, message in held:
            self._end(
                message.job,
                message.attempt,
                message.future,
                "cancelled",
                reason="scheduler_stopped",
            )
        return len(held)

    def _drain_for_stop(self, message: Drain) -> list[RunningJob]:
        """Start nothing more; say which jobs run; call ``quiet`` when none does."""
        state = self.state
        state.draining = True
        self._cancel_held()
        state.on_quiet = message.quiet
        running = [
            RunningJob(entry.job, entry.attempt, entry.handler)
            for entry in state.in_flight.values()
        ]
        self._check_quiet()
        return running

    def _check_quiet(self) -> None:
        state = self.state
        if state.on_quiet is not None and not state.in_flight:
            quiet, state.on_quiet = state.on_quiet, None
            quiet()

    # ------------------------------------------------------------------ jobs

    def _find(self, job_id: str) -> _Pending | _InFlight | Submit | None:
        """The live job ``job_id``: running, waiting or held (None if not live)."""
        state = self.state
        entry = state.in_flight.get(job_id)
        if entry is not None:
            return None if entry.cancelled else entry
        task = state.waiting_task.get(job_id)
        if task is not None:
            for pending in state.waiting.get(task, ()):
                if pending.job.id == job_id:
                    return pending
        for _, _, submit in state.held:
            if submit.job.id == job_id:
                return submit
        return None

    def _attach(self, message: Attach) -> JobFuture | None:
        found = self._find(message.job_id)
        if found is None:
            return None
        if found.future is None:
            found.future = message.future
        return found.future

    def _job_statuses(self, query: JobsQuery) -> list[JobStatus]:
        state, now = self.state, self._clock()
        wall = _now()

        def at(moment: float) -> datetime:
            return wall - timedelta(seconds=max(0.0, now - moment))

        found: list[JobStatus] = []
        wanted = query.state
        due = {submit.job.id: at for at, _, submit in state.held}
        if query.job_id is not None:
            entry = self._find(query.job_id)
            items: list[_Pending | _InFlight | Submit] = (
                [] if entry is None else [entry]
            )
        else:
            items = []
            if wanted in (None, "held"):
                items += [submit for _, _, submit in sorted(state.held)]
            if wanted in (None, "waiting"):
                items += [p for queue in state.waiting.values() for p in queue]
            if wanted in (None, "running"):
                items += [e for e in state.in_flight.values() if not e.cancelled]
        for item in items:
            job = item.job
            common: dict[str, Any] = {
                "id": job.id,
                "task": job.task,
                "attempt": item.attempt,
                "schedule_id": job.schedule_id,
                "scheduled_at": job.scheduled_at,
            }
            if isinstance(item, _InFlight):
                found.append(
                    JobStatus(
                        state="running",
                        handler=item.handler,
                        since=at(item.sent),
                        **common,
                    )
                )
            elif isinstance(item, _Pending):
                found.append(
                    JobStatus(
                        state="waiting",
                        since=at(item.since),
                        why=self._why_waiting(item, now),
                        **common,
                    )
                )
            else:
                found.append(
                    JobStatus(
                        state="held",
                        since=due.get(job.id, job.scheduled_at),
                        why="retry_backoff" if item.attempt > 1 else "due_later",
                        **common,
                    )
                )
        return found

    def _why_waiting(self, pending: _Pending, now: float) -> str:
        if self.state.draining:
            return "stopping"
        if pending.limited is not None:
            return pending.limited
        if not self._has_healthy_handler(pending.job.task, now):
            return "no_healthy_handler"
        return "handlers_busy"

    def _cancel(self, job_id: str) -> bool:
        """End a live job as ``cancelled`` (``cancel_requested``)."""
        state = self.state
        found = self._find(job_id)
        if found is None:
            return False
        if isinstance(found, _InFlight):
            found.cancelled = True
            now = self._clock()
            handler = state.handlers.get(found.handler)
            started = _now() - timedelta(seconds=max(0.0, now - found.sent))
            self.history.tell(
                Attempt.of(
                    found.job,
                    found.attempt,
                    "cancelled",
                    final=True,
                    reason="cancel_requested",
                    handler=found.handler,
                    started_at=started,
                    duration=now - found.sent,
                )
            )
            self._resolve_failed(found.future, "cancelled", None)
            if handler is not None and handler.kind == "local":
                # A remote worker is not told (SZP1 has no cancel): its job
                # runs on there, and its RESULT only frees the slot.
                handler.ref.tell(CancelJob(job_id))
            return True
        if isinstance(found, _Pending):
            task = state.waiting_task.pop(job_id)
            queue = state.waiting[task]
            queue.remove(found)
            if not queue:
                del state.waiting[task]
            if found.job.affinity is not None:
                state.keyed[task] = max(0, state.keyed.get(task, 0) - 1)
        else:
            state.held = [item for item in state.held if item[2] is not found]
            heapq.heapify(state.held)
        self._end(
            found.job,
            found.attempt,
            found.future,
            "cancelled",
            reason="cancel_requested",
        )
        return True

    # ------------------------------------------------------------ bookkeeping

    def _register(self, message: Register) -> None:
        old = self.state.handlers.get(message.name)
        if old is not None and old.ref != message.ref and not old.ref.is_alive:
            # A fresh actor of a handler that ended (its supervisor restarted):
            # the old one's jobs are lost, whether or not its Terminated came.
            self.unwatch(old.ref)
            self._lose_jobs_of(message.name, "crash", old.ref)
        self._forget(message.name)  # a re-registration replaces the old entry
        tasks = message.served
        handler = self.state.handlers[message.name] = _Handler(
            name=message.name,
            tasks=tasks,
            ref=message.ref,
            concurrency=message.concurrency,
            retries=message.retries,
            retry_backoff=message.retry_backoff,
            tracker=HealthTracker(
                self.state.policy, self._clock(), trial_timeout=message.timeout
            ),
            kind=message.kind,
        )
        for task in tasks:
            self.state.by_task.setdefault(task, []).append(handler)
            self.state.pickers.setdefault(task, HandlerPicker())
        self.watch(message.ref)
        for task in tasks:
            self._drain(task)
        self._check_served()

    def _unregister(self, message: Unregister) -> None:
        handler = self.state.handlers.get(message.name)
        if handler is None:
            return
        if message.drain:
            handler.draining = True
        else:
            self.unwatch(handler.ref)
            self._lose_jobs_of(message.name, message.reason)
        self._check_served()

    def _forget(self, name: str) -> tuple[str, ...]:
        """Drop the handler ``name`` from both indexes; return its tasks."""
        handler = self.state.handlers.pop(name, None)
        if handler is None:
            return ()
        for task in handler.tasks:
            peers = self.state.by_task.get(task, [])
            if handler in peers:
                peers.remove(handler)
        return handler.tasks

    def _lose_jobs_of(
        self, name: str, reason: str, ref: ActorRef | None = None
    ) -> None:
        """Forget the handler ``name``; its jobs in flight are lost for ``reason``.

        With ``ref``, only what was sent to that actor: the name may be a fresh
        actor's by now (its supervisor restarted), whose jobs are not lost.
        """
        current = self.state.handlers.get(name)
        tasks: tuple[str, ...] = ()
        if current is not None and (ref is None or current.ref == ref):
            tasks = self._forget(name)
        lost = [
            e
            for e in self.state.in_flight.values()
            if e.handler == name and (ref is None or e.ref == ref)
        ]
        wall, now = _now(), self._clock()
        for entry in lost:
            # Since it was sent: the row shows how long the attempt really ran
            # before its handler went, not a 0 ms attempt at the moment we knew.
            ran = max(0.0, now - entry.sent)
            self._finished(
                Finished(
                    entry.job,
                    entry.attempt,
                    name,
                    "lost",
                    wall - timedelta(seconds=ran),
                    wall,
                    ran,
                    reason=reason,
                )
            )
        for task in tasks:
            self._drain(task)

    def _handler_gone(self, ref: ActorRef) -> None:
        """A handler ended for good: forget it now; its jobs in flight are lost.

        Lost once its last reports are in: ``Terminated`` overtakes them, and a
        job it finished must not be tried again (run twice).
        """
        gone = [h for h in self.state.handlers.values() if h.ref == ref]
        for handler in gone:
            # A remote worker's proxy ends only when its worker is lost.
            why = "worker_lost" if handler.kind == "remote" else "crash"
            self._forget(handler.name)  # no new job goes to it
            try:
                self._me.tell(_LoseJobs(handler.name, ref, why))
            except MailboxFull:
                self._lose_jobs_of(handler.name, why, ref)  # better late than lost
        self._check_served()

    def _governor_statuses(self) -> list[GovernorStatus]:
        """Every limit in force, global first, then by task, then by handler."""
        state, governor, now = self.state, self.state.governor, self._clock()
        waiting = {task: len(queue) for task, queue in state.waiting.items()}
        running: dict[str, int] = {}
        for entry in state.in_flight.values():
            running[entry.job.task] = running.get(entry.job.task, 0) + 1
        statuses: list[GovernorStatus] = []

        def status(name: str, bucket: TokenBucket | None, **counts: Any) -> None:
            if bucket is not None:
                bucket.refill(now)
            statuses.append(
                GovernorStatus(
                    name=name,
                    rate=bucket.ceiling if bucket else None,
                    effective_rate=bucket.rate if bucket else None,
                    burst=bucket.burst if bucket else None,
                    tokens=bucket.tokens if bucket else None,
                    limited=governor.limited.get(name, 0),
                    **counts,
                )
            )

        status(
            "global",
            governor.global_rate,
            max_running=governor.max_running,
            running=len(state.in_flight),
            waiting=len(state.waiting_task),
            rejected=governor.rejected,
        )
        for task, bucket in sorted(governor.task_rates.items()):
            status(
                # Named for its config section, per_method_limits, as users see it.
                f"method:{task}",
                bucket,
                max_running=None,
                running=running.get(task, 0),
                waiting=waiting.get(task, 0),
            )
        for name in sorted(set(governor.handler_rates) | set(state.handlers)):
            handler = state.handlers.get(name)
            status(
                f"handler:{name}",
                governor.handler_rates.get(name),
                max_running=handler.concurrency if handler else None,
                running=handler.active if handler else 0,
                waiting=(
                    sum(waiting.get(task, 0) for task in handler.tasks)
                    if handler
                    else 0
                ),
            )
        return statuses

    def _check_served(self) -> None:
        """Tell ``on_served`` of every task that lost or regained a handler."""
        if lowlevel.shutting_down(self.system):
            return  # handlers end because everything does
        now, state = self._clock(), self.state
        for task, handlers in state.by_task.items():
            served = any(handler.serves(now) for handler in handlers)
            if served != (task in state.unserved):
                continue  # no change
            if served:
                state.unserved.discard(task)
            else:
                state.unserved.add(task)
            state.on_served(task, served)

    def _statuses(self) -> list[HandlerStatus]:
        now = self._clock()
        rates = self.state.governor.handler_rates
        return [
            HandlerStatus(
                name=handler.name,
                task=handler.tasks[0],
                concurrency=handler.concurrency,
                health=handler.tracker.snapshot(now),
                rate=rates[handler.name].rate if handler.name in rates else None,
                tasks=handler.tasks,
                kind=handler.kind,
                draining=handler.draining,
            )
            for handler in self.state.handlers.values()
        ]

    def _record(
        self,
        job: Job,
        attempt: int,
        outcome: Outcome,
        *,
        handler: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        duration: float | None = None,
        error: BaseException | None = None,
        final: bool,
        reason: Reason | None = None,
        waited: float | None = None,
    ) -> None:
        self.history.tell(
            Attempt.of(
                job,
                attempt,
                outcome,
                final=final,
                reason=reason,
                waited=waited,
                handler=handler,
                started_at=started_at,
                finished_at=finished_at,
                duration=duration,
                error=error,
            )
        )

    # --------------------------------------------------------------- dispatch

    def _dispatch(
        self, job: Job, attempt: int, future: JobFuture | None, reason: Reason | None
    ) -> None:
        sent = self._try_send(job, attempt, future)
        if sent is _SENT:
            return
        state = self.state
        waiting = len(state.waiting_task)
        if attempt == 1 and state.governor.watch_water(waiting):
            # At high water: new work that would wait is refused, with a row (a
            # retry of work already under way is not new, and waits).
            state.governor.rejected += 1
            self._record(job, attempt, "rejected", final=True, reason="overloaded")
            if future is not None:
                retry_after = state.governor.retry_after(waiting)
                future.resolve(
                    "rejected",
                    None,
                    Overloaded(
                        f"job {job.id} of task {job.task!r} was refused: {waiting:,} "
                        f"jobs are waiting: try again in {retry_after:.0f} s",
                        retry_after=retry_after,
                        job_id=job.id,
                    ),
                )
            return
        now = self._clock()
        pending = _Pending(job, attempt, future, now + job.wait, reason, since=now)
        if isinstance(sent, _Limited):
            self._limited(pending, sent)
        queue = state.waiting.get(job.task)
        if queue is None:
            queue = state.waiting[job.task] = deque()
        if attempt > 1 and queue and queue[-1].job.scheduled_at > job.scheduled_at:
            # A retry keeps its place by due time: ahead of the jobs due after
            # it (fires that came later), not behind them.
            at = next(
                index
                for index, other in enumerate(queue)
                if other.job.scheduled_at > job.scheduled_at
            )
            queue.insert(at, pending)
        else:
            queue.append(pending)
        state.waiting_task[job.id] = job.task
        if job.affinity is not None:
            state.keyed[job.task] = state.keyed.get(job.task, 0) + 1
        # Expire it exactly at its wait, not at the next tick.
        self.send_after(job.wait, _Expire(job_id=job.id, attempt=attempt))

    def _limited(self, pending: _Pending, limit: _Limited) -> None:
        """A governor holds ``pending`` back: count it once, look again in time."""
        if pending.limited is None:
            pending.limited = limit.reason
            self.state.governor.count_limited(limit.limit)
        if limit.seconds > 0:
            self._arm_govern(self._clock() + limit.seconds)

    def _arm_govern(self, at: float) -> None:
        """One timer, for the earliest moment a rate limit lets a job through."""
        if self._govern_at is not None and self._govern_at <= at:
            return
        if self._govern_timer is not None:
            self._govern_timer.cancel()
        self._govern_at = at
        self._govern_timer = self.send_after(max(0.0, at - self._clock()), _GOVERN)

    def _try_send(
        self,
        job: Job,
        attempt: int,
        future: JobFuture | None,
        pending: _Pending | None = None,
    ) -> _Sent | _Wait | _Limited:
        """Send the job to a handler, or say it must wait (and why not)."""
        if self.state.draining:
            return _WAIT  # the scheduler stops: what has not started waits
        now = self._clock()
        if job.affinity is None:
            # Without a key, any healthy handler with room will do.
            healthy = [
                handler
                for handler in self.state.by_task.get(job.task, ())
                if handler.active < handler.concurrency and handler.takes(now)
            ]
        else:
            healthy = [
                handler
                for handler in self.state.by_task.get(job.task, ())
                if handler.takes(now)
            ]
        if not healthy:
            return _WAIT
        governor = self.state.governor
        if (
            governor.max_running is not None
            and len(self.state.in_flight) >= governor.max_running
        ):
            return _Limited(0.0, "global", "concurrency_limited")
        rate_limited = governor.rate_limited
        if rate_limited:
            seconds, limit = governor.task_wait(job.task, now)
            if limit is not None:
                return _Limited(seconds, limit, "rate_limited")
            if governor.handler_rates and job.affinity is None:
                # Any handler with a token will do; else the first to get one.
                waits = [governor.handler_wait(h.name, now) for h in healthy]
                ready = [h for h, wait in zip(healthy, waits, strict=True) if not wait]
                if not ready:
                    soonest = min(range(len(waits)), key=waits.__getitem__)
                    return _Limited(
                        waits[soonest],
                        f"handler:{healthy[soonest].name}",
                        "rate_limited",
                    )
                healthy = ready
        pickers = self.state.pickers
        picker = pickers.get(job.task) or pickers.setdefault(job.task, HandlerPicker())
        handler = picker.choose(healthy, job.affinity)
        assert handler is not None
        if handler.active >= handler.concurrency:
            return _WAIT  # its key's handler is busy: wait for it, not another
        if rate_limited:
            if job.affinity is not None:
                wait = governor.handler_wait(handler.name, now)
                if wait > 0:  # a keyed job waits for its own handler's token
                    return _Limited(wait, f"handler:{handler.name}", "rate_limited")
            governor.take(job.task, handler.name, now)
        handler.active += 1
        handler.tracker.record_start(now)
        entry = _InFlight(job, attempt, future, handler.name, now, handler.ref)
        if pending is not None and pending.limited is not None:
            entry.waited = now - pending.since
            entry.limited = pending.limited
        self.state.in_flight[job.id] = entry
        handler.ref.tell(Execute(job, attempt, self._me))
        return _SENT

    def _drain_all(self) -> None:
        """Send what waits, fairly across tasks when a limit over all binds.

        Under a global rate or concurrency limit, tasks take turns one job at a
        time (starting from a different task each time), so that a flood of one
        task cannot starve the others of the shared limit.
        """
        tasks = list(self.state.waiting)
        if not tasks:
            return
        governor = self.state.governor
        if governor.global_rate is None and governor.max_running is None:
            for task in tasks:
                self._drain(task)
            return
        last = self.state.last_served
        start = tasks.index(last) + 1 if last in tasks else 0
        tasks = tasks[start:] + tasks[:start]
        while tasks:
            served = [task for task in tasks if self._drain(task, budget=1)]
            if served:
                self.state.last_served = served[-1]
            tasks = served

    def _drain(self, task: str, budget: int | None = None) -> int:
        """Send waiting jobs of ``task`` that a handler takes; expire the overdue.

        In order, but a job waiting for its key's busy handler does not hold up
        the jobs behind it. At most ``budget`` jobs are sent (None: no bound).
        Returns how many were sent.
        """
        queue = self.state.waiting.get(task)
        if not queue:
            return 0
        sent = 0
        now = self._clock()
        healthy = self._has_healthy_handler(task, now)
        if healthy and not self.state.keyed.get(task):
            # Jobs without keys, and a healthy handler (so none expires): send
            # from the front until no handler has room, and look no further —
            # a burst of thousands waiting costs one look per job sent, not a
            # walk of the whole queue per job finished.
            while queue and (budget is None or sent < budget):
                if not self._send_pending(queue[0]):
                    break
                del self.state.waiting_task[queue.popleft().job.id]
                sent += 1
            if not queue:
                del self.state.waiting[task]
            return sent
        keep: deque[_Pending] = deque()
        room = True
        for pending in queue:
            keyed = pending.job.affinity is not None
            if (
                (room or keyed)
                and (budget is None or sent < budget)
                and self._send_pending(pending)
            ):
                sent += 1
                continue
            if not keyed:
                room = False  # no handler had room: nor will it for the next ones
            if not healthy and pending.deadline <= now:
                self._end(
                    pending.job,
                    pending.attempt,
                    pending.future,
                    "no_healthy_handler",
                    reason="no_healthy_handler",
                )
            else:
                keep.append(pending)
        for pending in queue:
            self.state.waiting_task.pop(pending.job.id, None)
        for pending in keep:
            self.state.waiting_task[pending.job.id] = task
        self.state.keyed[task] = sum(p.job.affinity is not None for p in keep)
        if keep:
            self.state.waiting[task] = keep
        else:
            del self.state.waiting[task]
        return sent

    def _send_pending(self, pending: _Pending) -> bool:
        sent = self._try_send(pending.job, pending.attempt, pending.future, pending)
        if isinstance(sent, _Limited):
            self._limited(pending, sent)
        return sent is _SENT

    def _expire(self, message: _Expire) -> None:
        """A waiting job's wait is up: it ends unless a healthy handler exists."""
        task = self.state.waiting_task.get(message.job_id)
        if task is not None:
            self._drain(task)

    def _has_healthy_handler(self, task: str, now: float) -> bool:
        return any(handler.takes(now) for handler in self.state.by_task.get(task, ()))

    # -------------------------------------------------------------- outcomes

    def _finished(self, message: Finished) -> None:
        job, attempt = message.job, message.attempt
        entry = self.state.in_flight.get(job.id)
        if entry is None or entry.attempt != attempt:
            return  # a report for an attempt already given up on
        del self.state.in_flight[job.id]
        if self.state.on_quiet is not None:
            self._check_quiet()
        handler = self.state.handlers.get(message.handler)
        if entry.cancelled:
            # Its row was written when it was cancelled: free the slot only.
            if handler is not None:
                handler.active = max(0, handler.active - 1)
            self._drain(job.task)
            return
        now = self._clock()
        retries = 0
        if handler is not None:
            handler.active = max(0, handler.active - 1)
            retries = handler.retries
            if message.outcome == "lost":
                handler.tracker.record_lost(now)
            elif message.caller_error:
                # Arguments that do not fit the function: the caller's fault,
                # not the handler's, so its health does not hear of it.
                handler.tracker.record_caller_error(now)
            else:
                handler.tracker.record_finish(
                    now, success=message.outcome == "success", duration=message.duration
                )
            governor = self.state.governor
            if governor.adaptive is not None and governor.adjust_due(handler.name, now):
                health = handler.tracker.snapshot(now)
                governor.adjust(
                    handler.name,
                    failure_ratio=health.failure_ratio,
                    mean_duration=health.avg_duration,
                    now=now,
                )

        record = self._record_end
        if message.outcome == "success":
            record(message, entry, "success", final=True)
            if entry.future is not None:
                entry.future.resolve("success", message.value, None)
        elif message.outcome == "lost" and lowlevel.shutting_down(self.system):
            # Handlers end because the scheduler stops, not because they crashed:
            # no crash to record, nowhere to retry. The job stays accepted, and a
            # durable store takes it up at the next start.
            pass
        else:
            lost = message.outcome == "lost"
            outcome: Outcome = (
                "abandoned"
                if lost
                else "timeout"
                if message.outcome == "timeout"
                else "failure"
            )
            retry = next_attempt(attempt, retries, lost=lost, why=message.reason)
            if retry.attempt is not None:
                record(message, entry, outcome, final=False, reason=retry.reason)
                backoff = handler.retry_backoff if handler is not None else None
                if backoff is not None and not lost:
                    # Spaced out: held until then, as a fire taken early is.
                    delay = backoff.delay(attempt - 1, self.state.rng)
                    self._hold(
                        Submit(job, entry.future, retry.attempt, retry.reason),
                        due=_now() + timedelta(seconds=delay),
                    )
                else:
                    self._dispatch(job, retry.attempt, entry.future, retry.reason)
            else:
                record(message, entry, outcome, final=True, reason=retry.reason)
                self._resolve_failed(entry.future, outcome, message.error)
        governor = self.state.governor
        if not self.state.waiting:
            pass  # nothing waits for the room this job freed
        elif governor.max_running is not None or governor.global_rate is not None:
            self._drain_all()  # a shared limit: every task's turn
        elif handler is not None and len(handler.tasks) > 1:
            for task in handler.tasks:  # its freed room may serve any of them
                self._drain(task)
        else:
            self._drain(job.task)
        if message.outcome != "success":
            self._check_served()

    def _record_end(
        self,
        message: Finished,
        entry: _InFlight,
        outcome: Outcome,
        *,
        final: bool,
        reason: Reason | None = None,
    ) -> None:
        """Record the attempt ``message`` reports, ended with ``outcome``."""
        # Once per attempt: the row is built positionally, not through
        # ``Attempt.of``'s keywords (STYLE rule 4's exception).
        job, error = message.job, message.error
        row = Attempt(
            job.id,
            job.schedule_id,
            job.task,
            message.handler,
            job.scheduled_at,
            message.started_at,
            message.finished_at,
            message.duration,
            outcome,
            describe_error(error) if error is not None else None,
            message.attempt,
            final,
            reason or entry.limited,
            entry.waited,
            # Once per job, with its end.
            describe_arguments(job.args, job.kwargs) if final else None,
            None,
            (
                message.traceback or describe_traceback(error)
                if error is not None and outcome in _FAILED
                else None
            ),
        )
        if final and outcome == "success" and self.state.durable:
            self.history.tell(WithResult(row, message.value))
        else:
            self.history.tell(row)

    def _end(
        self,
        job: Job,
        attempt: int,
        future: JobFuture | None,
        outcome: Outcome,
        *,
        reason: Reason,
    ) -> None:
        self._record(job, attempt, outcome, final=True, reason=reason)
        self._resolve_failed(future, outcome, None)

    @staticmethod
    def _resolve_failed(
        future: JobFuture | None, outcome: Outcome, error: BaseException | None
    ) -> None:
        if future is not None:
            future.resolve(outcome, None, error)
