"""Jobs one can follow: ``JobHandle``, and the desk that answers for every job id.

``ScheduleZero.submit`` returns a ``JobHandle``; ``ScheduleZero.job(id)`` makes
one for any job id, of this run or an earlier one. A handle asks the desk, and
the desk asks whoever knows: the dispatcher while the job is live (held,
waiting or running), the history once it has ended.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import anyio

from .dispatcher import Attach, Cancel, JobsQuery
from .errors import JobFailed, JobTimeout, NoHealthyHandler, Overloaded, SzError
from .history import query_history
from .jobs import HistoryQuery, JobFuture, JobStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from actors import ActorRef

    from .jobs import Attempt, Outcome
    from .store.history import HistoryBackend

__all__ = ["MAX_JOB_ID", "JobDesk", "JobHandle", "call_when_done", "check_job_id"]

#: The longest job id a caller may choose, in characters.
MAX_JOB_ID = 200


def check_job_id(job_id: object) -> str:
    """A caller's job id, checked: a non-empty string of at most ``MAX_JOB_ID``.

    Raises:
        SzError: It is not.
    """
    if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_JOB_ID:
        raise SzError(
            f"job_id must be a non-empty string of at most {MAX_JOB_ID} "
            f"characters, got {job_id!r:.80}"
        )
    return job_id


class JobHandle:
    """A job ScheduleZero accepted: wait for its result, see where it stands, cancel.

    From ``sz.submit(...)`` or ``sz.job(job_id)``. A handle is only an id and a
    way to ask: any number of them may stand for one job, and one made after a
    restart works on the SQLite store as well as one made before.

    Attributes:
        id: The job's id.
    """

    __slots__ = ("_desk", "_future", "id")

    def __init__(
        self, desk: JobDesk, job_id: str, future: JobFuture | None = None
    ) -> None:
        self._desk = desk
        self._future = future
        self.id = job_id

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Wait for the job's end; return its result.

        Args:
            timeout: Seconds to wait at most, None for as long as it takes.

        Raises:
            JobTimeout: ``timeout`` passed first; the job goes on.
            JobFailed: It ended without success (``outcome`` says how; the
                handler's exception is the ``__cause__`` when this process saw
                it); ``NoHealthyHandler`` if no healthy handler took it.
            Overloaded: It was refused for load (its row says ``rejected``).
            StoreError: The store could not record it as accepted: it never ran.
            SzError: No such job (never accepted, or its history pruned); its
                result was not kept; or the scheduler stopped before it ended.
        """
        future = self._future
        if future is not None and timeout is None:
            # The common case, a handle from ``submit``: no lookup.
            await future.wait()
            return settle(self.id, None, future)
        return await self._desk.result(self, timeout)

    @property
    def done(self) -> bool:
        """Whether this process has seen the job end; not a checkpoint.

        True once the job has its final outcome (or was never accepted), as
        seen by the handle ``submit`` returned; False for a handle made by
        ``sz.job(id)`` that this process holds no future for, whatever the
        job's state: ``status()`` asks.
        """
        future = self._future
        return future is not None and future.done

    async def status(self) -> JobStatus:
        """Where the job stands now.

        Held, waiting (and why), running (where, since when), ended (how), or
        unknown (see ``JobState``).

        Raises:
            SzError: The scheduler is not running.
        """
        return await self._desk.status(self.id)

    async def cancel(self) -> bool:
        """Cancel the job; True if it was live and is now cancelled.

        A held or waiting job ends ``cancelled`` at once. A running job's row
        says ``cancelled`` at once too; a local async function's call is
        cancelled, while a sync function runs on in its thread (Python cannot
        stop one) and a remote worker's job runs on in its process: their
        results are dropped. False if the job had ended already (or is unknown).

        Raises:
            SzError: The scheduler is not running.
        """
        return await self._desk.cancel(self.id)

    def __repr__(self) -> str:
        return f"<JobHandle {self.id}>"


class JobDesk:
    """Answers for every job id of one scheduler: live, ended, or in transit.

    Jobs submitted with an id of the caller's stay reachable by it from
    acceptance on (``keyed``), so that the same id submitted again finds the
    first job even before the dispatcher has it.
    """

    def __init__(self) -> None:
        #: Futures of live jobs with a caller's id, while anything holds them.
        self.keyed: weakref.WeakValueDictionary[str, JobFuture] = (
            weakref.WeakValueDictionary()
        )
        #: Jobs cancelled before the dispatcher had them: it ends them on arrival.
        self.cancel_on_arrival: set[str] = set()
        #: Ids a ``submit`` is deciding on now (known already, or accepted):
        #: set when it has.
        self.deciding: dict[str, anyio.Event] = {}
        self._dispatcher: ActorRef | None = None
        self._history: ActorRef | None = None
        self._backend: HistoryBackend | None = None
        self._new_event: Callable[[], anyio.Event] = anyio.Event

    def open(
        self,
        dispatcher: ActorRef,
        history: ActorRef,
        backend: HistoryBackend,
        new_event: Callable[[], anyio.Event],
    ) -> None:
        """The scheduler runs: these answer for live and ended jobs.

        Rows are read through the ``history`` actor, not the backend: a job
        the dispatcher has just ended has its row on the way there, and the
        actor takes it before a query that follows.
        """
        self._dispatcher, self._history, self._backend = dispatcher, history, backend
        self._new_event = new_event

    def close(self) -> None:
        """The scheduler stopped."""
        self._dispatcher = self._history = None
        self.cancel_on_arrival.clear()

    def _running_dispatcher(self) -> ActorRef:
        if self._dispatcher is None:
            raise SzError("the scheduler is not running")
        return self._dispatcher

    async def known(self, job_id: str) -> bool:
        """Whether a job of that id is live here or in the history."""
        if await self._running_dispatcher().ask(JobsQuery(job_id=job_id)):
            return True
        return bool(await self._rows(HistoryQuery(job_id=job_id, limit=1)))

    async def _rows(self, query: HistoryQuery) -> list[Attempt]:
        if self._history is None:
            raise SzError("the scheduler is not running")
        rows: list[Attempt] = await query_history(self._history, query)
        return rows

    async def result(
        self,
        handle: JobHandle,
        timeout: float | None,  # noqa: ASYNC109 - JobHandle.result's
    ) -> Any:
        """``JobHandle.result``: the future's end if live, else the history's."""
        future = handle._future
        if future is None:
            future = self.keyed.get(handle.id)
        if future is None and self._dispatcher is not None:
            future = await self._dispatcher.ask(
                Attach(handle.id, JobFuture(self._new_event))
            )
        if future is None:
            return await self._ended_result(handle.id)
        handle._future = future
        if timeout is None:
            await future.wait()
        else:
            with anyio.move_on_after(timeout):
                await future.wait()
            if not future.done:
                raise JobTimeout(
                    f"job {handle.id} did not end within {timeout:g} s; it goes "
                    f"on: sz.job({handle.id!r}) waits on it again or cancels it",
                    job_id=handle.id,
                )
        return settle(handle.id, None, future)

    async def _ended_result(self, job_id: str) -> Any:
        row = await self._final_row(job_id)
        if row is None:
            raise SzError(
                f"no job {job_id!r} here: never accepted, or its history was pruned"
            )
        if row.outcome == "success":
            assert self._backend is not None
            kept, value = await self._backend.result(job_id)
            if not kept:
                raise SzError(
                    f"job {job_id} of task {row.task!r} ended with success, but "
                    "its result was not kept (see store.max_result_bytes; the "
                    "memory store keeps results only while a handle holds the "
                    "job)"
                )
            return value
        raise _failure(job_id, row.task, row.outcome, row.error)

    async def _final_row(self, job_id: str) -> Attempt | None:
        rows = await self._rows(HistoryQuery(job_id=job_id, final=True, limit=1))
        return rows[0] if rows else None

    async def status(self, job_id: str) -> JobStatus:
        """``JobHandle.status``: the dispatcher's view, else the history's."""
        live = await self._running_dispatcher().ask(JobsQuery(job_id=job_id))
        if live:
            status: JobStatus = live[0]
            return status
        row = await self._final_row(job_id)
        if row is not None:
            return JobStatus(
                id=job_id,
                task=row.task,
                state="ended",
                attempt=row.attempt,
                schedule_id=row.schedule_id,
                scheduled_at=row.scheduled_at,
                handler=row.handler,
                since=row.finished_at,
                outcome=row.outcome,
            )
        future = self.keyed.get(job_id)
        if future is not None and not future.done:
            # Accepted, its acceptance not yet durable: about to be dispatched.
            return JobStatus(id=job_id, task="", state="waiting", why="accepting")
        return JobStatus(id=job_id, task="", state="unknown")

    async def cancel(self, job_id: str) -> bool:
        """``JobHandle.cancel``: through the dispatcher, or on arrival there."""
        if await self._running_dispatcher().ask(Cancel(job_id)):
            return True
        future = self.keyed.get(job_id)
        if future is not None and not future.done:
            self.cancel_on_arrival.add(job_id)
            return True
        return False


def settle(job_id: str, task: str | None, future: JobFuture) -> Any:
    """The ended job's result, or the error that says how it ended."""
    if future.outcome == "success":
        return future.value
    if future.outcome is None:
        # Never accepted (a StoreError), or the scheduler stopped first.
        assert future.error is not None
        raise future.error
    if future.outcome == "rejected":
        if isinstance(future.error, Overloaded):
            raise future.error
        raise Overloaded(
            f"job {job_id} was refused: the dispatcher is full",
            retry_after=1.0,
            job_id=job_id,
        )
    raise _failure(job_id, task, future.outcome, None) from future.error


def _failure(
    job_id: str, task: str | None, outcome: Outcome, error: str | None
) -> JobFailed:
    kind = NoHealthyHandler if outcome == "no_healthy_handler" else JobFailed
    of = f" of task {task!r}" if task else ""
    said = f": {error}" if error else ""
    return kind(f"job {job_id}{of} ended with {outcome}{said}", outcome=outcome)


def call_when_done(handle: JobHandle, callback: Callable[[], None]) -> bool:
    """Call ``callback()`` once, when this process sees ``handle``'s job end.

    At once if it has ended; not a checkpoint. For sz's own bookkeeping (the
    scenario runner's count of its jobs not yet ended). Only a handle
    ``submit`` returned (or one made while such a handle was held) sees the
    end, as ``done`` does.

    Returns:
        Whether the end will be seen (or was): False for a handle of a job
        this process holds no future for, whose end it never sees.
    """
    future = handle._future
    if future is None:
        return False
    future.call_when_done(callback)
    return True
