"""The actions of ``action`` steps, done against the run's scheduler.

Each action of :data:`sz.scenarios.ACTIONS` is a method here; the arguments
come checked and converted by the loader. Jobs go through
``ScheduleZero.submit`` so that the run knows every job id it caused (for
``no_lost_jobs``); schedules through ``schedule``/``unschedule``/``pause``/
``resume``, each recorded with the times it was due to fire (for
``no_lost_jobs`` and ``schedule_fidelity``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import Overloaded, SzError
from .pacing import Pacer
from .record import ScheduleRecord

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from actors import ActorRef

    from ..scheduler import ScheduleZero
    from .record import RunRecord

__all__ = ["ActionFailed", "LocalHandler", "Operations"]


class ActionFailed(SzError, RuntimeError):
    """An action could not do its work (no schedule to delete, a job that failed)."""


@attrs.define
class LocalHandler:
    """A local handler of the run, where its actor lives.

    Attributes:
        name: Its id (``echo``, ``echo#2``).
        task: The task it serves.
        path: Its actor's path.
    """

    name: str
    task: str
    path: str


class Operations:
    """Does the run's actions.

    Args:
        sz: The run's scheduler.
        record: Where the run's jobs and schedules are recorded.
        handlers: The run's local handlers by task, oldest first.
        spawn_handler: Starts one more local handler of a task.
    """

    def __init__(
        self,
        sz: ScheduleZero,
        record: RunRecord,
        handlers: dict[str, list[LocalHandler]],
        spawn_handler: Callable[[str, str, int | None], Awaitable[ActorRef]],
    ) -> None:
        self.sz = sz
        self.record = record
        self.handlers = handlers
        self._spawn_handler = spawn_handler
        self._serial = 0

    async def perform(self, method: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Do the action ``method``; return what the timeline should say of it.

        Raises:
            ActionFailed: It could not do its work.
            SzError: The scheduler refused it (the message says why).
        """
        action: Callable[..., Awaitable[dict[str, Any]]] = getattr(self, method)
        return await action(**args)

    # Schedules.

    async def create_schedule(
        self,
        *,
        task_id: str,
        trigger: str | Mapping[str, Any],
        schedule_id: str | None = None,
        args: Any = None,
        kwargs: Mapping[str, Any] | None = None,
        paused: bool = False,
        misfire_grace_time: float | None = None,
    ) -> dict[str, Any]:
        """Add a schedule (``ScheduleZero.schedule``), recorded for the checks."""
        if isinstance(trigger, str):
            name, fields = trigger, {}
        else:
            fields = {key: value for key, value in trigger.items() if key != "type"}
            name = str(trigger["type"])
        if schedule_id is None:
            self._serial += 1
            schedule_id = f"{self.record.started_at:%H%M%S}-{self._serial}"
        started = time.perf_counter()
        await self.sz.schedule(
            task_id,
            name,
            args=args,
            kwargs=kwargs,
            id=schedule_id,
            paused=paused,
            misfire_grace_time=misfire_grace_time,
            **fields,
        )
        self.record.creating += time.perf_counter() - started
        self.record.created += 1
        now = datetime.now(UTC)
        entry = ScheduleRecord(
            id=schedule_id,
            task=task_id,
            trigger=name,
            fields=fields,
            grace=misfire_grace_time,
            created_at=now,
        )
        if paused:
            entry.paused.append((now, None))
        # Created again under one id: the schedule is replaced, and so is its
        # record (at the end of the order, as the newest).
        self.record.schedules.pop(schedule_id, None)
        self.record.schedules[schedule_id] = entry
        return {"schedule_id": schedule_id}

    def _pick(self, given: str | None, fits: Callable[[ScheduleRecord], bool]) -> str:
        if given is not None:
            return given
        for entry in self.record.schedules.values():
            if entry.deleted_at is None and fits(entry):
                return entry.id
        raise ActionFailed("no schedule of the run that this action can apply to")

    async def delete_schedule(
        self, *, schedule_id: str | None = None
    ) -> dict[str, Any]:
        """Remove a schedule; by default the oldest the run created and kept."""
        schedule_id = self._pick(schedule_id, lambda entry: True)
        started = time.perf_counter()
        await self.sz.unschedule(schedule_id)
        self.record.deleting += time.perf_counter() - started
        self.record.deleted += 1
        entry = self.record.schedules.get(schedule_id)
        if entry is not None:
            entry.deleted_at = datetime.now(UTC)
        return {"schedule_id": schedule_id}

    async def pause_schedule(self, *, schedule_id: str | None = None) -> dict[str, Any]:
        """Pause a schedule; by default the oldest the run created that runs."""
        schedule_id = self._pick(schedule_id, lambda entry: not entry.is_paused)
        await self.sz.pause(schedule_id)
        entry = self.record.schedules.get(schedule_id)
        if entry is not None and not entry.is_paused:
            entry.paused.append((datetime.now(UTC), None))
        return {"schedule_id": schedule_id}

    async def resume_schedule(
        self, *, schedule_id: str | None = None
    ) -> dict[str, Any]:
        """Resume a schedule; by default the oldest the run paused."""
        schedule_id = self._pick(schedule_id, lambda entry: entry.is_paused)
        await self.sz.resume(schedule_id)
        entry = self.record.schedules.get(schedule_id)
        if entry is not None and entry.is_paused:
            entry.paused[-1] = (entry.paused[-1][0], datetime.now(UTC))
        return {"schedule_id": schedule_id}

    # Jobs.

    async def run_job(
        self,
        *,
        task: str,
        args: Any = None,
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the action's argument
    ) -> dict[str, Any]:
        """Run one job and wait for its end (``submit``, then ``result``)."""
        handle = await self.sz.submit(task, args=args, kwargs=kwargs)
        self.record.submitted_job(handle)
        try:
            value = await handle.result(timeout)
        except SzError as error:
            raise ActionFailed(f"run_job {task}: {error}") from error
        return {"job_id": handle.id, "result": repr(value)[:200]}

    async def submit_jobs(
        self,
        *,
        task: str,
        count: int,
        rate: float | None = None,
        args: Any = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Submit ``count`` jobs at ``rate`` a second, paced by deadline."""
        pacer = Pacer(count, rate)
        accepted = refused = 0
        submit, record = self.sz.submit, self.record
        while n := await pacer.due():
            for _ in range(n):
                try:
                    handle = await submit(task, args=args, kwargs=kwargs)
                except Overloaded:
                    # Refused before it was accepted: nothing to lose. The
                    # offer goes on at the rate, as a client's would.
                    refused += 1
                    continue
                record.submitted_job(handle)
                accepted += 1
        record.refused += refused
        return {"accepted": accepted, "refused": refused}

    # Handlers.

    async def spawn_handler(
        self, *, task: str, concurrency: int | None = None
    ) -> dict[str, Any]:
        """Start one more local handler of ``task`` (``task#2``, ...)."""
        serving = self.handlers.setdefault(task, [])
        taken = {handler.name for handler in serving}
        number = len(serving) + 1
        name = task if number == 1 and task not in taken else f"{task}#{number}"
        while name in taken:
            number += 1
            name = f"{task}#{number}"
        ref = await self._spawn_handler(task, name, concurrency)
        serving.append(LocalHandler(name=name, task=task, path=ref.path))
        return {"handler": name, "path": ref.path}

    async def stop_handler(self, *, task: str) -> dict[str, Any]:
        """Stop the newest local handler of ``task``; its jobs go to others."""
        serving = self.handlers.get(task)
        if not serving:
            raise ActionFailed(f"stop_handler: no local handler of {task!r} is left")
        handler = serving.pop()
        ref = self.sz.system.lookup(handler.path)
        if ref is not None:
            await ref.stop()
        return {"handler": handler.name, "path": handler.path}
