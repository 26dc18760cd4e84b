"""Handler actors: each registered function runs its jobs inside one actor."""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import attrs

from actors import Actor, ActorRef, Backoff

from .binding import binding_error, signature_of
from .jobs import Job, Outcome, must_propagate
from .pool import JobTasks
from .threads import DaemonThreads
from .validators import int_at_least, positive_or_none

logger = logging.getLogger("sz.handlers")

__all__ = ["CURRENT_JOB", "Execute", "Finished", "HandlerActor", "HandlerSpec"]

#: The job whose attempt the handler function now running was called for
#: (None outside one): a scenario run's handlers count executions per job by
#: it. Seen by async functions and, through the copied context, sync ones.
CURRENT_JOB: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "sz_current_job", default=None
)


@attrs.frozen(kw_only=True)
class HandlerSpec:
    """A function registered with ``@sz.handler``, and how to run it.

    Attributes:
        name: The handler's id, unique: its actor is ``/user/handlers/<name>``.
        task: The task it serves; several handlers may serve one task.
        func: The function; async functions run on the event loop, sync ones in
            daemon threads (at most ``concurrency`` at once).
        concurrency: Jobs it runs at once, 1 by default.
        timeout: Seconds an attempt may run before it ends as ``timeout``; no
            limit by default.
        retries: Further attempts after the function raised, 0 by default.
        retry_backoff: How long a retry waits after a failure (the runtime's
            ``Backoff``: ``min``, doubled by ``factor`` each attempt, up to
            ``max``, with ``jitter``); None (the default) retries at once.
        observe: Told ``(job, returned)`` right after each call of an async
            ``func`` returns (True) or raises (False), on the event loop; None
            by default. How a scenario run counts executions without a wrapper
            coroutine around every call (``sz.scenarios.counting``).
        signature: The function's signature, read once at registration (None when
            it has none that ``inspect`` can read): what arguments are checked
            against.
    """

    name: str
    task: str
    func: Callable[..., Any]
    concurrency: int = attrs.field(default=1, validator=int_at_least(1))
    timeout: float | None = attrs.field(default=None, validator=positive_or_none)
    retries: int = attrs.field(default=0, validator=int_at_least(0))
    retry_backoff: Backoff | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(Backoff)),
    )
    observe: Callable[[Job, bool], None] | None = attrs.field(
        default=None, eq=False, repr=False
    )
    signature: inspect.Signature | None = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(lambda self: signature_of(self.func), takes_self=True),
    )
    #: The verdict on a call without arguments, judged once: most jobs have
    #: none, and ``Signature.bind`` costs a microsecond on every ``run_now``.
    _bare_error: str | None = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(
            lambda self: binding_error(self.signature, (), {}), takes_self=True
        ),
    )

    @property
    def is_async(self) -> bool:
        """True if ``func`` is a coroutine function."""
        return inspect.iscoroutinefunction(self.func)

    def binding_error(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> str | None:
        """Why ``func(*args, **kwargs)`` cannot be called, or None if it can.

        Only the binding of the arguments to the signature is judged (a missing,
        surplus or unknown argument), not their types; None when the signature
        is unknown.
        """
        if not args and not kwargs:
            return self._bare_error
        return binding_error(self.signature, args, kwargs)


# One per attempt on the hot path: slotted, positional and mutable (STYLE rule
# 4's exception); internal to sz.
@attrs.define
class Execute:
    """Dispatcher to handler: run this attempt of ``job``, report to ``reply_to``."""

    job: Job
    attempt: int
    reply_to: ActorRef


@attrs.frozen
class CancelJob:
    """Dispatcher to handler: the job was cancelled; stop its call if it can.

    An async function's call is cancelled; a sync one runs on in its thread
    (Python cannot stop a thread) and its result is dropped.
    """

    job_id: str


# One per attempt on the hot path: slotted, positional and mutable (STYLE rule
# 4's exception), hence the fields with defaults last; internal to sz.
@attrs.define
class Finished:
    """Handler to dispatcher: how an attempt ended.

    ``outcome`` is ``"lost"`` when the handler went down mid-job (stopped, killed,
    crashed): the dispatcher decides whether to try again, and ``reason`` says
    why it was lost (``crash`` if None; ``worker_lost`` for a remote worker,
    ``message_lost`` for a JOB or RESULT lost on its link).
    """

    job: Job
    attempt: int
    handler: str
    outcome: Outcome | str
    started_at: datetime
    finished_at: datetime
    duration: float
    value: Any = None
    error: BaseException | None = None
    reason: str | None = None
    #: The job's arguments did not bind to the function: the caller's error,
    #: recorded as a failure but not held against the handler's health.
    caller_error: bool = False
    #: The failure's formatted traceback, when ``error`` carries none of its
    #: own (a remote worker's, sent as text).
    traceback: str | None = None

    @classmethod
    def lost(
        cls, job: Job, attempt: int, handler: str, reason: str | None = None
    ) -> Finished:
        """The report of an attempt its handler will never finish, as of now."""
        now = datetime.now(UTC)
        return cls(
            job=job,
            attempt=attempt,
            handler=handler,
            outcome="lost",
            reason=reason,
            started_at=now,
            finished_at=now,
            duration=0.0,
        )


class HandlerActor(Actor):
    """Runs one handler's jobs on up to ``concurrency`` worker tasks.

    Workers are started as jobs arrive and live as long as the incarnation, so a
    job costs no task of its own. The dispatcher never sends more than
    ``concurrency`` jobs at once. A job cut short because this actor stops or
    restarts — running, or waiting for a worker — is reported ``lost``, so that the
    dispatcher can run it again elsewhere. Whatever else the function raises,
    ``SystemExit`` and ``KeyboardInterrupt`` included, ends its job as ``failure``
    and this actor runs on; only the runtime's cancellation goes through.
    """

    def __init__(self, spec: HandlerSpec) -> None:
        self.spec = spec

    async def on_start(self) -> None:
        """Bound the threads of a sync function to its concurrency."""
        self.is_async = self.spec.is_async
        self.name = self.ref.name
        self.threads = DaemonThreads(
            anyio.CapacityLimiter(self.spec.concurrency), name=f"sz handler {self.name}"
        )
        self.jobs = JobTasks(self, self.spec.concurrency, self._run, "worker")

    async def receive(self, message: Any) -> None:
        """Queue each ``Execute`` for a worker task."""
        if isinstance(message, Execute):
            self.jobs.put(message)
        elif isinstance(message, CancelJob):
            self._cancel(message.job_id)
        else:
            await super().receive(message)

    def _cancel(self, job_id: str) -> None:
        """A queued order never starts; an async call is cancelled.

        A sync call runs on in its thread: the dispatcher drops its result.
        Either way the dispatcher hears ``Finished``, which frees the slot.
        """

        def matches(order: Execute) -> bool:
            return order.job.id == job_id

        for order in self.jobs.take_out(matches):
            order.reply_to.tell(Finished.lost(order.job, order.attempt, self.name))
        if self.is_async:
            self.jobs.cancel(matches)

    async def on_stop(self) -> None:
        """Report the jobs no worker got to as lost; let idle threads go."""
        self.threads.close()
        orders = self.jobs.orders
        while orders:
            order = orders.popleft()
            order.reply_to.tell(Finished.lost(order.job, order.attempt, self.name))

    async def _run(self, order: Execute) -> None:
        spec, job = self.spec, order.job
        started_at = datetime.now(UTC)
        start = time.perf_counter()
        outcome: Outcome | str = "success"
        value: Any = None
        error: BaseException | None = None
        caller_error = False
        try:
            if spec.timeout is None:
                value = await self._call(job)
            else:
                with anyio.fail_after(spec.timeout):
                    value = await self._call(job)
        except TimeoutError as exc:
            outcome, error = "timeout", exc
        except TypeError as exc:
            outcome, error = "failure", exc
            # Cheap, and only on a TypeError: did the call fail before the
            # function's body ran, because the arguments do not fit?
            caller_error = spec.binding_error(job.args, job.kwargs) is not None
        except Exception as exc:
            outcome, error = "failure", exc
        except BaseException as exc:
            # SystemExit, KeyboardInterrupt and the like, raised by the function
            # (or, from a worker thread, re-raised here), end its job, not the
            # scheduler; the runtime's cancellation ends the attempt as lost.
            if must_propagate(exc):
                outcome = "lost"
                if not self.is_async:
                    # Python cannot stop a thread: say which job's call runs on,
                    # since only the process's exit ends it.
                    logger.warning(
                        "handler %s: abandoned job %s (schedule %s) mid-call; "
                        "its thread runs on",
                        self.name,
                        job.id,
                        job.schedule_id,
                    )
                raise
            outcome, error = "failure", exc
        finally:
            duration = time.perf_counter() - start
            order.reply_to.tell(
                Finished(
                    job,
                    order.attempt,
                    self.name,
                    outcome,
                    started_at,
                    started_at + timedelta(seconds=duration),
                    duration,
                    value,
                    error,
                    None,
                    caller_error,
                )
            )

    async def _call(self, job: Job) -> Any:
        token = CURRENT_JOB.set(job)
        try:
            if self.is_async:
                observe = self.spec.observe
                if observe is None:
                    return await self.spec.func(*job.args, **job.kwargs)
                try:
                    value = await self.spec.func(*job.args, **job.kwargs)
                except Exception:
                    observe(job, False)
                    raise
                observe(job, True)
                return value
            call = functools.partial(self.spec.func, *job.args, **job.kwargs)
            return await self.threads.run_sync(call)
        finally:
            CURRENT_JOB.reset(token)
