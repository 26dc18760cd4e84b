"""The dispatcher actor: picks a handler for every job, retries, and records outcomes.

Its state lives in a ``DispatcherState`` that the scheduler owns, so a restarted
dispatcher carries on with the same handlers, queues and jobs in flight: a crash of
the dispatcher loses no job.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

import attrs

from actors import Actor, ActorRef

from .handlers import Execute, Finished
from .health import HandlerHealth, HealthPolicy, HealthTracker
from .jobs import Attempt, Job, JobFuture, Outcome
from .routing import Candidate, Router

__all__ = [
    "DispatcherActor",
    "DispatcherState",
    "HandlerStatus",
    "HandlersQuery",
    "Register",
    "Submit",
]

#: Further attempts for a job lost because its handler went down mid-job, on top of
#: the handler's own ``retries``; the next attempt starts at once, on whichever
#: healthy handler the router picks (possibly the restarted one).
LOST_JOB_RETRIES = 3

#: Seconds between looks at jobs waiting for a handler.
TICK = 0.25


@attrs.frozen(kw_only=True)
class Register:
    """A handler joins: ``name`` serves ``task`` through ``ref``."""

    name: str
    task: str
    ref: ActorRef
    concurrency: int
    retries: int


@attrs.frozen(kw_only=True)
class Submit:
    """Run ``job``; resolve ``future`` (if any) with its final outcome."""

    job: Job
    future: JobFuture | None = None


@attrs.frozen(kw_only=True)
class HandlersQuery:
    """Ask for every handler's status."""


@attrs.frozen(kw_only=True)
class HandlerStatus:
    """One handler as ``sz.handlers()`` shows it.

    Attributes:
        name: The handler's id.
        task: The task it serves.
        concurrency: Jobs it may run at once.
        health: Its health: state, counts, failure ratio, durations, load.
    """

    name: str
    task: str
    concurrency: int
    health: HandlerHealth


class _Tick:
    """Time to look at waiting jobs."""


_TICK = _Tick()


@attrs.define
class _Handler:
    name: str
    task: str
    ref: ActorRef
    concurrency: int
    retries: int
    tracker: HealthTracker
    active: int = 0


@attrs.define
class _Pending:
    job: Job
    attempt: int
    future: JobFuture | None
    deadline: float
    reason: str | None = None


@attrs.define
class _InFlight:
    job: Job
    attempt: int
    future: JobFuture | None
    handler: str


@attrs.define
class DispatcherState:
    """Everything the dispatcher knows; outlives any one dispatcher instance."""

    policy: HealthPolicy = attrs.field(factory=HealthPolicy)
    handlers: dict[str, _Handler] = attrs.field(factory=dict)
    routers: dict[str, Router] = attrs.field(factory=dict)
    waiting: dict[str, deque[_Pending]] = attrs.field(factory=dict)
    in_flight: dict[str, _InFlight] = attrs.field(factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


def _describe(error: BaseException | None) -> str | None:
    return repr(error) if error is not None else None


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

    async def on_start(self) -> None:
        """Look at waiting jobs now and every ``TICK`` seconds."""
        self.every(TICK, _TICK)
        self._drain_all()

    async def receive(self, message: Any) -> Any:
        """Handle a submission, a report, a registration, a query or a tick."""
        if isinstance(message, Finished):
            self._finished(message)
        elif isinstance(message, Submit):
            self._dispatch(message.job, 1, message.future, None)
        elif message is _TICK:
            self._drain_all()
        elif isinstance(message, Register):
            self._register(message)
        elif isinstance(message, HandlersQuery):
            return self._statuses()
        else:
            await super().receive(message)
        return None

    # ------------------------------------------------------------ bookkeeping

    def _clock(self) -> float:
        return self.system.clock.now()

    def _register(self, message: Register) -> None:
        self.state.handlers[message.name] = _Handler(
            name=message.name,
            task=message.task,
            ref=message.ref,
            concurrency=message.concurrency,
            retries=message.retries,
            tracker=HealthTracker(self.state.policy, self._clock()),
        )
        self.state.routers.setdefault(message.task, Router())
        self._drain(message.task)

    def _statuses(self) -> list[HandlerStatus]:
        now = self._clock()
        return [
            HandlerStatus(
                name=handler.name,
                task=handler.task,
                concurrency=handler.concurrency,
                health=handler.tracker.snapshot(now),
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
        reason: str | None = None,
    ) -> None:
        self.history.tell(
            Attempt(
                job_id=job.id,
                schedule_id=job.schedule_id,
                task=job.task,
                handler=handler,
                scheduled_at=job.scheduled_at,
                started_at=started_at,
                finished_at=finished_at or _now(),
                duration=duration,
                outcome=outcome,
                error=_describe(error),
                attempt=attempt,
                final=final,
                reason=reason,
            )
        )

    # --------------------------------------------------------------- dispatch

    def _dispatch(
        self, job: Job, attempt: int, future: JobFuture | None, reason: str | None
    ) -> None:
        if not self._try_send(job, attempt, future):
            deadline = self._clock() + job.wait
            pending = _Pending(job, attempt, future, deadline, reason)
            self.state.waiting.setdefault(job.task, deque()).append(pending)

    def _try_send(self, job: Job, attempt: int, future: JobFuture | None) -> bool:
        now = self._clock()
        free = [
            handler
            for handler in self.state.handlers.values()
            if handler.task == job.task
            and handler.active < handler.concurrency
            and handler.tracker.accepts_job(now)
        ]
        if not free:
            return False
        router = self.state.routers.setdefault(job.task, Router())
        chosen = router.choose(
            [
                Candidate(name=h.name, active=h.active, concurrency=h.concurrency)
                for h in free
            ],
            job.affinity,
        )
        assert chosen is not None
        handler = self.state.handlers[chosen.name]
        handler.active += 1
        handler.tracker.record_start(now)
        self.state.in_flight[job.id] = _InFlight(job, attempt, future, handler.name)
        handler.ref.tell(Execute(job=job, attempt=attempt, reply_to=self.ref))
        return True

    def _drain_all(self) -> None:
        for task in list(self.state.waiting):
            self._drain(task)

    def _drain(self, task: str) -> None:
        """Send waiting jobs of ``task`` while handlers take them; expire the rest."""
        queue = self.state.waiting.get(task)
        if not queue:
            return
        while queue and self._try_send(queue[0].job, queue[0].attempt, queue[0].future):
            queue.popleft()
        now = self._clock()
        if queue and not self._has_healthy_handler(task, now):
            keep = deque(pending for pending in queue if pending.deadline > now)
            for pending in queue:
                if pending.deadline <= now:
                    self._end(
                        pending.job,
                        pending.attempt,
                        pending.future,
                        "no_healthy_handler",
                        reason="no_healthy_handler",
                    )
            self.state.waiting[task] = queue = keep
        if not queue:
            del self.state.waiting[task]

    def _has_healthy_handler(self, task: str, now: float) -> bool:
        return any(
            handler.task == task and handler.tracker.accepts_job(now)
            for handler in self.state.handlers.values()
        )

    # -------------------------------------------------------------- outcomes

    def _finished(self, message: Finished) -> None:
        job, attempt = message.job, message.attempt
        entry = self.state.in_flight.get(job.id)
        if entry is None or entry.attempt != attempt:
            return  # a report for an attempt already given up on
        del self.state.in_flight[job.id]
        handler = self.state.handlers.get(message.handler)
        now = self._clock()
        retries = 0
        if handler is not None:
            handler.active = max(0, handler.active - 1)
            retries = handler.retries
            if message.outcome == "lost":
                handler.tracker.record_lost(now)
            else:
                handler.tracker.record_finish(
                    now, success=message.outcome == "success", duration=message.duration
                )

        def record(outcome: Outcome, *, final: bool, reason: str | None = None) -> None:
            self._record(
                job,
                attempt,
                outcome,
                handler=message.handler,
                started_at=message.started_at,
                finished_at=message.finished_at,
                duration=message.duration,
                error=message.error,
                final=final,
                reason=reason,
            )

        if message.outcome == "success":
            record("success", final=True)
            if entry.future is not None:
                entry.future.resolve("success", message.value, None)
        elif message.outcome == "lost":
            if attempt <= retries + LOST_JOB_RETRIES:
                record("abandoned", final=False, reason="retry_after_crash")
                self._dispatch(job, attempt + 1, entry.future, "retry_after_crash")
            else:
                record("abandoned", final=True)
                self._resolve_failed(entry.future, "abandoned", message.error)
        else:
            outcome: Outcome = "timeout" if message.outcome == "timeout" else "failure"
            if attempt <= retries:
                record(outcome, final=False, reason="retry_after_failure")
                self._dispatch(job, attempt + 1, entry.future, "retry_after_failure")
            else:
                record(outcome, final=True)
                self._resolve_failed(entry.future, outcome, message.error)
        self._drain(job.task)

    def _end(
        self,
        job: Job,
        attempt: int,
        future: JobFuture | None,
        outcome: Outcome,
        *,
        reason: str,
    ) -> None:
        self._record(job, attempt, outcome, final=True, reason=reason)
        self._resolve_failed(future, outcome, None)

    @staticmethod
    def _resolve_failed(
        future: JobFuture | None, outcome: Outcome, error: BaseException | None
    ) -> None:
        if future is not None:
            future.resolve(outcome, None, error)
