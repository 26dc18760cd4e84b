"""A job, the record of each of its attempts, and the future that awaits its end."""

from __future__ import annotations

import itertools
import os
import reprlib
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import attrs

__all__ = [
    "Attempt",
    "HistoryQuery",
    "Job",
    "JobFuture",
    "JobState",
    "JobStatus",
    "LastRunsQuery",
    "Outcome",
    "Reason",
    "bounded_repr",
    "describe_arguments",
    "describe_error",
    "describe_traceback",
    "history_order",
    "must_propagate",
]

#: How one attempt of a job ended. ``missed`` and ``coalesced`` are fires that
#: their schedule's ``misfire_grace_time`` or ``coalesce`` skipped (also jobs
#: taken up after a restart, on their interrupted attempt's row); ``abandoned``
#: a job lost for good with its handler; ``cancelled`` a fire taken ahead of
#: its time whose schedule was paused or removed before it came due;
#: ``skipped`` a fire that fell while its schedule was held back for want of a
#: handler (recorded when the schedule resumes).
Outcome = Literal[
    "success",
    "failure",
    "timeout",
    "no_healthy_handler",
    "abandoned",
    "missed",
    "coalesced",
    "rejected",
    "cancelled",
    "skipped",
]

#: Why an attempt ended as it did, why the next attempt follows, or what held it
#: back before it started: the ``reason`` of a history row. Every reason the
#: code records is here (a test checks it), so that scenarios and dashboards can
#: count by it.
#:
#: ===========================  ============  ===================================
#: reason                       outcome       meaning
#: ===========================  ============  ===================================
#: ``retry_after_failure``      failure,      the handler raised or timed out;
#:                              timeout       the next attempt follows
#: ``retry_after_crash``        abandoned     the handler died mid-job; the next
#:                                            attempt follows on another
#: ``retry_after_worker_lost``  abandoned     the remote worker stopped
#:                                            answering mid-job; the next attempt
#:                                            follows
#: ``retry_after_worker_left``  abandoned     the remote worker left without
#:                                            finishing the job; the next
#:                                            attempt follows
#: ``retry_after_message_lost`` abandoned     the JOB or its RESULT was lost
#:                                            on a link that stayed up (the
#:                                            worker's report no longer lists
#:                                            it); the next attempt follows
#: ``retry_after_restart``      abandoned     the process ended mid-job; the
#:                                            next start tries it again
#: ``interrupted_by_restart``   abandoned     the process ended mid-job and no
#:                                            attempt is left (final row)
#: ``rate_limited``             any           a rate limit held the attempt back
#:                                            before it started (``waited``)
#: ``concurrency_limited``      any           a concurrency limit held it back
#:                                            before it started (``waited``)
#: ``no_healthy_handler``       no_healthy_   no healthy handler took it within
#:                              handler,      its wait; or its schedule was
#:                              cancelled,    paused for want of one before a
#:                              skipped       fire taken early came due; or the
#:                                            fire fell while its schedule was
#:                                            so paused (held back)
#: ``overloaded``               rejected      backpressure: the dispatcher's
#:                                            queues passed their high water
#: ``dispatcher_full``          rejected      the dispatcher's mailbox was full
#: ``schedule_removed``         cancelled     its schedule was removed before a
#:                                            fire taken early came due
#: ``schedule_paused``          cancelled     its schedule was paused before a
#:                                            fire taken early came due
#: ``scheduler_stopped``        cancelled     the scheduler stopped before a fire
#:                                            taken early came due
#: ``cancel_requested``         cancelled     ``JobHandle.cancel()`` ended it
#:                                            (held, waiting or running)
#: ``misfire_grace_time``       missed        the fire came past its schedule's
#:                                            misfire grace time; or a job of it
#:                                            taken up after a restart was past
#:                                            it by then
#: ``coalesce_latest``          coalesced     folded into the latest fire of its
#:                                            round (``coalesce="latest"``); after
#:                                            a restart the jobs taken up and the
#:                                            fires due while down are one round
#: ``coalesce_earliest``        coalesced     folded into the earliest fire of
#:                                            its round (``coalesce="earliest"``),
#:                                            also after a restart, as above
#: ===========================  ============  ===================================
Reason = Literal[
    "retry_after_failure",
    "retry_after_crash",
    "retry_after_worker_lost",
    "retry_after_worker_left",
    "retry_after_message_lost",
    "retry_after_restart",
    "interrupted_by_restart",
    "rate_limited",
    "concurrency_limited",
    "no_healthy_handler",
    "overloaded",
    "dispatcher_full",
    "schedule_removed",
    "schedule_paused",
    "scheduler_stopped",
    "cancel_requested",
    "misfire_grace_time",
    "coalesce_latest",
    "coalesce_earliest",
]


_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def new_job_id() -> str:
    """Return a fresh job id: unique across processes, cheaper than a uuid4.

    A random prefix per process, then a counter.
    """
    return f"{_PREFIX}{next(_COUNTER):08x}"


def describe_error(error: BaseException) -> str:
    """The text that stands for ``error`` in a history row, a log line or a RESULT.

    Its ``repr``; if that raises, a placeholder naming its type and what the
    ``repr`` raised, such as ``<Oops: unprintable (repr raised ValueError)>``.
    Never raises.
    """
    try:
        return repr(error)
    except BaseException as exc:
        # Even SystemExit: a handler's exception must not end the scheduler
        # while it is being recorded. ``repr`` is no checkpoint, so what it
        # raises is never the runtime's cancellation.
        kind = type(error).__qualname__
        return f"<{kind}: unprintable (repr raised {type(exc).__qualname__})>"


#: The longest text ``describe_arguments`` gives, in characters.
MAX_ARGUMENTS_TEXT = 1000

# Bounded at every level, so that a huge argument costs little to describe.
_ARGUMENTS_REPR = reprlib.Repr()
_ARGUMENTS_REPR.maxlevel = 4
_ARGUMENTS_REPR.maxtuple = _ARGUMENTS_REPR.maxlist = _ARGUMENTS_REPR.maxdict = 20
_ARGUMENTS_REPR.maxset = _ARGUMENTS_REPR.maxfrozenset = 20
_ARGUMENTS_REPR.maxstring = _ARGUMENTS_REPR.maxother = 200
_ARGUMENTS_REPR.maxlong = 100


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether every argument is a scalar with a short repr (strings <= 200)."""
    if len(args) + len(kwargs) > 20:
        return False
    for value in (*args, *kwargs.values()):
        kind = type(value)
        if kind not in _SCALARS or (kind is str and len(value) > 200):
            return False
        if kind is int and not -(10**50) < value < 10**50:
            return False
    return True


def bounded_repr(value: Any, limit: int = MAX_ARGUMENTS_TEXT) -> str:
    """``value``'s ``repr``, bounded at every level and to ``limit`` characters.

    Long strings and lists are elided with ``...``, so that a huge value costs
    little to describe. A value whose ``repr`` raises is a placeholder naming
    its type. Never raises: for users' values in rows, logs and the gateway.
    """
    try:
        text = _ARGUMENTS_REPR.repr(value)
    except Exception:
        text = f"<{type(value).__qualname__} whose repr raised>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def describe_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """The text of a job's arguments in its history rows; None if it has none.

    ``args, {kwargs}`` as their ``repr``, each part bounded (long strings and
    lists are elided with ``...``) and the whole at most ``MAX_ARGUMENTS_TEXT``
    characters. An argument whose ``repr`` raises is a placeholder. Never raises.
    """
    if not args and not kwargs:
        return None
    if _plain(args, kwargs):
        # The common case, a few short scalars: their own repr is bounded.
        text = f"{args!r}, {dict(kwargs)!r}"
    else:
        text = f"{bounded_repr(args)}, {bounded_repr(dict(kwargs))}"
    if len(text) > MAX_ARGUMENTS_TEXT:
        text = text[: MAX_ARGUMENTS_TEXT - 3] + "..."
    return text


#: The modules whose frames lead up to a handler's call (and say nothing of
#: its failure): the handler actor, its tasks and threads, a worker.
_CALLERS = frozenset(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), *parts)
    for parts in (
        ("handlers.py",),
        ("pool.py",),
        ("threads.py",),
        ("remote", "worker.py"),
    )
)

#: The longest traceback text kept with a row, in characters: the innermost
#: frames (the end of the text) are kept, the outermost elided.
MAX_TRACEBACK = 16 * 1024


def describe_traceback(error: BaseException) -> str | None:
    """The formatted traceback of ``error`` for its history row, or None.

    As ``traceback.format_exception`` prints it, chained causes included, less
    ScheduleZero's own frames that called the function (they say nothing of
    the failure); past ``MAX_TRACEBACK`` characters the start is cut, keeping
    the innermost frames and the exception itself. None if it has no
    traceback. Never raises.
    """
    frames = error.__traceback__
    if frames is None:
        return None
    outermost = frames
    while frames is not None and frames.tb_frame.f_code.co_filename in _CALLERS:
        frames = frames.tb_next
    try:
        text = "".join(
            traceback.format_exception(
                type(error), error, frames if frames is not None else outermost
            )
        )
    except BaseException:  # a broken exception: its row says what repr can
        return None
    if len(text) > MAX_TRACEBACK:
        # The note and what is kept fit the bound together (the wire's too).
        room = MAX_TRACEBACK - 64
        cut = len(text) - room
        text = f"[{cut:,} characters of outer frames cut]\n{text[cut:]}"
    return text


def must_propagate(error: BaseException) -> bool:
    """True if ``error``, raised out of a job, must not end that job as ``failure``.

    That is the running backend's cancellation (``anyio.get_cancelled_exc_class``),
    an exception group holding one, at any depth, and ``GeneratorExit`` (the job's
    coroutine being closed): they belong to the runtime, which must see them.
    Anything else a handler raises, ``SystemExit`` and ``KeyboardInterrupt``
    included, is the job's failure. Call it from a running event loop.
    """
    if isinstance(error, Exception):
        return False  # an ExceptionGroup cannot hold a cancellation either
    kinds = (anyio.get_cancelled_exc_class(), GeneratorExit)
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(kinds) is not None
    return isinstance(error, kinds)


# Built once per job on the hot path: frozen and public, but positional as well
# as keyword (STYLE rule 4's exception), so the scheduler builds it without a
# keyword dict; hence the required fields come first.
@attrs.frozen
class Job:
    """One run of a task, from a schedule's fire or from ``run_now``.

    Attributes:
        id: Unique job id.
        task: The task to run (the name its handlers serve).
        args: Positional arguments.
        kwargs: Keyword arguments.
        schedule_id: The schedule that fired it, or None for ``run_now``.
        scheduled_at: When it was due (wall clock, UTC).
        affinity: Jobs with the same key stick to one handler while it is healthy.
        wait: Seconds the job may wait for a healthy handler before it fails with
            ``no_healthy_handler``.
    """

    task: str
    scheduled_at: datetime
    id: str = attrs.field(factory=new_job_id)
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)
    schedule_id: str | None = None
    affinity: str | None = None
    wait: float = 30.0


# Built for every attempt on the hot path: frozen, public and persisted, but
# positional as well as keyword (STYLE rule 4's exception): ``of`` builds it
# without a keyword dict.
@attrs.frozen
class Attempt:
    """One row of history: one attempt of one job.

    Attributes:
        job_id: The job.
        schedule_id: Its schedule, or None.
        task: The task.
        handler: The handler that ran it, or None if none did.
        scheduled_at: When the job was due.
        started_at: When this attempt started, or None if it never did.
        finished_at: When this attempt ended.
        duration: Seconds it ran, or None.
        outcome: How it ended.
        error: The exception's text (``describe_error``: its ``repr``), or None.
        attempt: Its number, from 1.
        final: True on the row that ends the job: exactly one per job.
        reason: Why it ended so, or why the next attempt follows
            (``retry_after_failure``, ``retry_after_crash``, ``no_healthy_handler``),
            or what held it back before it started (``rate_limited``,
            ``concurrency_limited``): one of ``Reason``, or None.
        waited: Seconds a governor held this attempt back before it started, or
            None if none did.
        arguments: What the job was called with, as text (``describe_arguments``,
            bounded), or None if it had no arguments.
        note: What else the row must say: a result that was not kept (too large
            for ``store.max_result_bytes``, or not picklable), or None.
        traceback: The failure's formatted traceback (bounded, the innermost
            frames kept), or None.
    """

    job_id: str
    schedule_id: str | None
    task: str
    handler: str | None
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime
    duration: float | None
    outcome: Outcome
    error: str | None
    attempt: int
    final: bool
    reason: Reason | None = None
    waited: float | None = None
    arguments: str | None = None
    note: str | None = None
    traceback: str | None = None

    @classmethod
    def of(
        cls,
        job: Job,
        attempt: int,
        outcome: Outcome,
        *,
        final: bool,
        reason: Reason | None = None,
        handler: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        duration: float | None = None,
        error: BaseException | None = None,
        waited: float | None = None,
    ) -> Attempt:
        """The row of ``job``'s attempt number ``attempt``, ended now by default.

        Without ``handler`` and ``started_at``, an attempt that never ran (no
        handler took it, or it was lost with the process).
        """
        return cls(
            job.id,
            job.schedule_id,
            job.task,
            handler,
            job.scheduled_at,
            started_at,
            finished_at or datetime.now(UTC),
            duration,
            outcome,
            describe_error(error) if error is not None else None,
            attempt,
            final,
            reason,
            waited,
            describe_arguments(job.args, job.kwargs) if final else None,
        )


class JobFuture:
    """The final result of one job, for whoever waits on it (``run_now``)."""

    # A weak reference: the scheduler finds the future of a job submitted with
    # a caller's id while anything (a handle, the dispatcher) still holds it.
    __slots__ = ("__weakref__", "_done", "_on_done", "error", "outcome", "value")

    def __init__(self, new_event: Callable[[], anyio.Event] = anyio.Event) -> None:
        self._done = new_event()
        #: One callback, or a list of them (rarely: one job, two handles).
        self._on_done: Callable[[], None] | list[Callable[[], None]] | None = None
        self.outcome: Outcome | None = None
        self.value: Any = None
        self.error: BaseException | None = None

    def resolve(
        self, outcome: Outcome, value: Any, error: BaseException | None
    ) -> None:
        """Record the job's end, once; later calls are ignored."""
        if self.outcome is None:
            self.outcome, self.value, self.error = outcome, value, error
            self._done.set()
            if self._on_done is not None:
                self._ended()

    def fail(self, error: BaseException) -> None:
        """The job was never accepted: its waiter gets ``error``.

        ``outcome`` stays None. Ignored once the job has ended or failed.
        """
        if not self._done.is_set():
            self.error = error
            self._done.set()
            if self._on_done is not None:
                self._ended()

    def call_when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once, when the job ends; at once if it has.

        For a count of jobs not yet ended that costs nothing per look (the
        scenario runner's ``jobs_pending``), where polling every future costs
        one look per open job. ``callback`` must not raise.
        """
        waiting = self._on_done
        # Ended (``resolve`` sets the outcome, ``fail`` the error): plain
        # attributes, where the event's ``is_set`` is a call per job.
        if self.outcome is not None or self.error is not None:
            callback()
        elif waiting is None:
            self._on_done = callback
        elif isinstance(waiting, list):
            waiting.append(callback)
        else:
            self._on_done = [waiting, callback]

    def _ended(self) -> None:
        waiting, self._on_done = self._on_done, None
        if isinstance(waiting, list):
            for callback in waiting:
                callback()
        elif waiting is not None:
            waiting()

    @property
    def done(self) -> bool:
        """Whether the job has ended (or was never accepted)."""
        return self._done.is_set()

    def wait(self) -> Awaitable[None]:
        """Wait until the job has ended (await it). A checkpoint.

        The event's own wait, not a coroutine around it: one frame fewer to
        resume for every job a caller waits on.
        """
        return self._done.wait()


#: Where a job stands. ``held``: taken ahead of its due time, held until then;
#: ``waiting``: for a handler with room, a healthy one, or a governor;
#: ``running``: on a handler now; ``ended``: its final row is written;
#: ``unknown``: no such job here (never accepted, or its rows pruned).
JobState = Literal["held", "waiting", "running", "ended", "unknown"]


@attrs.frozen(kw_only=True)
class JobStatus:
    """Where one job stands now: ``sz.jobs()`` and ``JobHandle.status()``.

    Attributes:
        id: The job.
        task: Its task (empty when ``unknown``).
        state: See ``JobState``.
        attempt: The attempt held, waiting or running; the last one when
            ended; None when unknown.
        schedule_id: The schedule that fired it, or None.
        scheduled_at: When it was due, or None when unknown.
        handler: Running: the handler running it; ended: the one that ran its
            last attempt (None if none did).
        since: Held: when it comes due; waiting: since when it waits; running:
            since when this attempt runs; ended: when it ended.
        why: Waiting: ``rate_limited`` or ``concurrency_limited`` (a governor),
            ``no_healthy_handler``, ``handlers_busy`` (every healthy handler at
            its concurrency), ``stopping`` (the scheduler drains); held:
            ``due_later``. None otherwise.
        outcome: Ended: the final outcome.
    """

    id: str
    task: str
    state: JobState
    attempt: int | None = None
    schedule_id: str | None = None
    scheduled_at: datetime | None = None
    handler: str | None = None
    since: datetime | None = None
    why: str | None = None
    outcome: Outcome | None = None


def history_order(row: Attempt) -> tuple[datetime, str, int]:
    """Where a row stands in the history: by finish time, then job and attempt.

    Unique per row, so paging with ``before=<a row>`` never skips nor repeats one.
    """
    return (row.finished_at, row.job_id, row.attempt)


@attrs.frozen(kw_only=True)
class HistoryQuery:
    """Ask the history for rows, newest first.

    Attributes:
        task: Only this task's rows.
        handler: Only this handler's rows.
        outcome: Only rows with this outcome.
        schedule_id: Only this schedule's rows.
        job_id: Only this job's rows.
        since: Only rows that finished at or after this time.
        before: Only rows before this one in the history's order (pass the last
            row of a page for the next page), or that finished before this time.
        limit: At most this many rows, 100 by default.
        final: Only final rows (True), only non-final (False), or both (None).
    """

    task: str | None = None
    handler: str | None = None
    outcome: str | None = None
    schedule_id: str | None = None
    job_id: str | None = None
    since: datetime | None = None
    before: datetime | Attempt | None = None
    limit: int = 100
    final: bool | None = None

    @staticmethod
    def _is_before(row: Attempt, before: datetime | Attempt) -> bool:
        if isinstance(before, Attempt):
            return history_order(row) < history_order(before)
        return row.finished_at < before

    def matches(self, row: Attempt) -> bool:
        """True if ``row`` passes every filter."""
        return (
            (self.task is None or row.task == self.task)
            and (self.handler is None or row.handler == self.handler)
            and (self.outcome is None or row.outcome == self.outcome)
            and (self.schedule_id is None or row.schedule_id == self.schedule_id)
            and (self.job_id is None or row.job_id == self.job_id)
            and (self.since is None or row.finished_at >= self.since)
            and (self.before is None or self._is_before(row, self.before))
            and (self.final is None or row.final == self.final)
        )


@attrs.frozen(kw_only=True)
class LastRunsQuery:
    """Ask the history for the last final row of each schedule named.

    Attributes:
        schedule_ids: The schedules; one without a final row is left out of
            the answer (a dict by schedule id).
    """

    schedule_ids: tuple[str, ...]
