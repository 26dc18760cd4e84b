"""The JSON API under ``/api``: actors, schedules, handlers, governors, jobs, history.

``add_api_routes(app)`` registers every route but ``/api/summary`` and
``/api/openapi.json`` (the application serves those). Each handler checks what
it was given (a bad query parameter or body is a 422 naming the field), reaches
the scheduler only through the application's ``SchedulerAccess`` (the scheduler
may live on another event loop, in another thread), and answers JSON built by
``web.json``. Several calls that belong together run as one small coroutine in
the scheduler's loop, so a request crosses over once.

``web.openapi.OPENAPI`` describes every route here; a test holds them together.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import unquote

from aiohttp import web

from actors import lowlevel
from actors.system import DEATHS_KEPT
from sz import (
    Attempt,
    JobFailed,
    JobHandle,
    JobTimeout,
    Outcome,
    Overloaded,
    ScheduleNotFound,
    ScheduleZero,
    SzError,
)
from sz.jobs import describe_error
from sz.shapes import history_cursor, row_after

from .access import ACCESS
from .errors import json_error
from .json import (
    actor_data,
    attempt_data,
    broker_data,
    dead_letter_data,
    death_data,
    governor_data,
    handler_data,
    job_status_data,
    last_run_data,
    schedule_data,
    value_data,
)
from .requests import (
    MAX_ID as MAX_ID,
    MUTATIONS as MUTATIONS,
    arguments,
    call_scheduler,
    check_keys,
    check_mutations,
    invalid,
    json_answer,
    number,
    optional_text,
    path_id,
    query_bool,
    query_int,
    query_seconds,
    query_text,
    query_time,
    read_body,
    required_text,
    schedule_request,
)

if TYPE_CHECKING:
    from actors import ActorDeath, ActorSnapshot
    from sz import BrokerStats, HandlerStatus, JobStatus, Schedule

__all__ = [
    "MAX_HISTORY_PAGE",
    "MAX_RESULT_WAIT",
    "MAX_UPCOMING",
    "MUTATIONS",
    "SUBMITTED_KEPT",
    "add_api_routes",
]

#: The most rows one history page holds (``limit``).
MAX_HISTORY_PAGE = 1000

#: The most fire times ``/upcoming`` computes (``n``).
MAX_UPCOMING = 100

#: The longest wait a ``/result`` request may ask for, in seconds; 10 by default.
MAX_RESULT_WAIT = 300.0
DEFAULT_RESULT_WAIT = 10.0

#: The longest a submitted job may wait for a healthy handler (``wait``).
MAX_JOB_WAIT = 86_400.0

#: Handles of the latest jobs submitted through the API, kept so that their
#: results can be fetched on a store that keeps no results (memory).
SUBMITTED_KEPT = 1000


_OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
_STATES = ("held", "waiting", "running")


class _Submitted:
    """The handles of the latest jobs submitted through the API, by job id."""

    def __init__(self, size: int = SUBMITTED_KEPT) -> None:
        self._size = size
        self._handles: OrderedDict[str, JobHandle] = OrderedDict()

    def add(self, handle: JobHandle) -> None:
        self._handles[handle.id] = handle
        self._handles.move_to_end(handle.id)
        while len(self._handles) > self._size:
            self._handles.popitem(last=False)

    def get(self, job_id: str) -> JobHandle | None:
        return self._handles.get(job_id)


_SUBMITTED: web.AppKey[_Submitted] = web.AppKey("submitted_jobs", _Submitted)


def add_api_routes(app: web.Application) -> None:
    """Register every ``/api`` route but ``/api/summary`` and ``/api/openapi.json``.

    ``app[ACCESS]`` must be set before the first request; ``app[MUTATIONS]``
    may be (True if not).
    """
    app[_SUBMITTED] = _Submitted()
    router = app.router
    router.add_get("/api/actors", get_actors)
    router.add_get("/api/deaths", get_deaths)
    router.add_post("/api/actors/{path:.+}/kill", partial(kill_actor, action="kill"))
    router.add_post(
        "/api/actors/{path:.+}/restart", partial(kill_actor, action="restart")
    )
    router.add_get("/api/actors/{path:.+}", get_actor)
    router.add_get("/api/schedules", list_schedules)
    router.add_post("/api/schedules", create_schedule)
    router.add_get("/api/schedules/{id}", get_schedule)
    router.add_put("/api/schedules/{id}", replace_schedule)
    router.add_delete("/api/schedules/{id}", delete_schedule)
    router.add_post("/api/schedules/{id}/pause", partial(pause_or_resume, pause=True))
    router.add_post("/api/schedules/{id}/resume", partial(pause_or_resume, pause=False))
    router.add_post("/api/schedules/{id}/run", run_schedule)
    router.add_get("/api/schedules/{id}/upcoming", upcoming)
    router.add_get("/api/handlers", list_handlers)
    router.add_get("/api/governors", list_governors)
    router.add_get("/api/broker", get_broker)
    router.add_get("/api/jobs", list_jobs)
    router.add_post("/api/jobs", submit_job)
    router.add_get("/api/jobs/{id}", get_job)
    router.add_post("/api/jobs/{id}/cancel", cancel_job)
    router.add_get("/api/jobs/{id}/result", job_result)
    router.add_get("/api/history", history)
    router.add_get("/api/dead-letters", dead_letters)


# ------------------------------------------------------------------ plumbing
# -------------------------------------------------------------------- actors


def _snapshot(sz: ScheduleZero) -> ActorSnapshot:
    return sz.system.snapshot()


def _actor_path(request: web.Request) -> str:
    path = unquote(request.match_info["path"]).strip("/")
    if not path or len(path) > 1000:
        raise invalid("path", "must name an actor, such as user/handlers/echo")
    return "/" + path


async def get_actors(request: web.Request) -> web.Response:
    """``GET /api/actors``: the whole supervision tree, from ``/user`` down."""
    snapshot: ActorSnapshot = await call_scheduler(
        request, _snapshot, request.app[ACCESS].scheduler
    )
    return json_answer(actor_data(snapshot))


def _deaths(sz: ScheduleZero, limit: int) -> list[ActorDeath]:
    return lowlevel.recent_deaths(sz.system, limit)


async def get_deaths(request: web.Request) -> web.Response:
    """``GET /api/deaths?limit=100``: the latest crashes of actors, newest first.

    Each with its cause and whether the actor was restarted since or ended for
    good: kept by the actor system (its latest ``DEATHS_KEPT``), so a page
    opened after a death still shows it.
    """
    limit = query_int(request, "limit", 100, DEATHS_KEPT)
    found: list[ActorDeath] = await call_scheduler(
        request, _deaths, request.app[ACCESS].scheduler, limit
    )
    return json_answer({"kept": DEATHS_KEPT, "deaths": [death_data(d) for d in found]})


async def get_actor(request: web.Request) -> web.Response:
    """``GET /api/actors/{path}``: one actor and its children."""
    path = _actor_path(request)
    snapshot: ActorSnapshot = await call_scheduler(
        request, _snapshot, request.app[ACCESS].scheduler
    )
    found = snapshot.find(path)
    if found is None:
        raise json_error(404, f"no actor at {path}")
    return json_answer(actor_data(found))


async def _kill(sz: ScheduleZero, path: str, reason: str) -> bool:
    ref = sz.system.lookup(path)
    if ref is None:
        return False
    await ref.kill(reason)
    return True


async def kill_actor(request: web.Request, *, action: str) -> web.Response:
    """``POST /api/actors/{path}/kill`` or ``/restart``: 202 with its path.

    Both kill it: a kill is a crash, and its supervisor restarts it.
    """
    check_mutations(request)
    path = _actor_path(request)
    if path == "/user":
        raise invalid(
            "path", "the root guardian /user cannot be killed: nothing supervises it"
        )
    found = await call_scheduler(
        request,
        _kill,
        request.app[ACCESS].scheduler,
        path,
        f"{'killed' if action == 'kill' else 'restarted'} from the gateway",
    )
    if not found:
        raise json_error(404, f"no actor at {path}")
    return json_answer({"path": path, "action": action}, status=202)


# ----------------------------------------------------------------- schedules


async def _put_schedule(
    sz: ScheduleZero, request: dict[str, Any], replace: bool
) -> tuple[Schedule, bool]:
    """Add or replace a schedule; it as stored, and whether it is new."""
    existed = False
    if replace:
        try:
            await sz.get_schedule(request["id"])
            existed = True
        except ScheduleNotFound:
            pass
    fields = request.pop("fields")
    task_id, trigger = request.pop("task_id"), request.pop("trigger")
    schedule_id = await sz.schedule(task_id, trigger, **request, **fields)
    return await sz.get_schedule(schedule_id), not existed


async def _schedules_and_last_runs(
    sz: ScheduleZero,
) -> tuple[list[Schedule], dict[str, Attempt]]:
    schedules = await sz.schedules()
    last = await sz.last_runs(schedule.id for schedule in schedules)
    return schedules, last


async def list_schedules(request: web.Request) -> web.Response:
    """``GET /api/schedules``: every schedule, each with its last run.

    ``last_run`` is its latest job's end (one read of the history for every
    schedule), or null if none ended (or its rows were pruned).
    """
    found, last = await call_scheduler(
        request, _schedules_and_last_runs, request.app[ACCESS].scheduler
    )
    return json_answer(
        [
            {
                **schedule_data(schedule),
                "last_run": last_run_data(last.get(schedule.id)),
            }
            for schedule in found
        ]
    )


async def create_schedule(request: web.Request) -> web.Response:
    """``POST /api/schedules``: add a schedule (replace one of the same id). 201."""
    wanted = schedule_request(await read_body(request), None)
    schedule, _ = await call_scheduler(
        request, _put_schedule, request.app[ACCESS].scheduler, wanted, False
    )
    return json_answer(schedule_data(schedule), status=201)


async def replace_schedule(request: web.Request) -> web.Response:
    """``PUT /api/schedules/{id}``: replace it (200), or add it (201)."""
    schedule_id = path_id(request)
    wanted = schedule_request(await read_body(request), schedule_id)
    schedule, new = await call_scheduler(
        request, _put_schedule, request.app[ACCESS].scheduler, wanted, True
    )
    return json_answer(schedule_data(schedule), status=201 if new else 200)


async def get_schedule(request: web.Request) -> web.Response:
    """``GET /api/schedules/{id}``: one schedule; 404 if none."""
    schedule: Schedule = await call_scheduler(
        request,
        ScheduleZero.get_schedule,
        request.app[ACCESS].scheduler,
        path_id(request),
    )
    return json_answer(schedule_data(schedule))


async def _delete(sz: ScheduleZero, schedule_id: str) -> None:
    await sz.get_schedule(schedule_id)  # ScheduleNotFound: a 404
    await sz.unschedule(schedule_id)


async def delete_schedule(request: web.Request) -> web.Response:
    """``DELETE /api/schedules/{id}``: remove it. 204; 404 if none."""
    check_mutations(request)
    await call_scheduler(
        request, _delete, request.app[ACCESS].scheduler, path_id(request)
    )
    return web.Response(status=204)


async def _pause_or_resume(sz: ScheduleZero, schedule_id: str, pause: bool) -> Schedule:
    if pause:
        await sz.pause(schedule_id)
    else:
        await sz.resume(schedule_id)
    return await sz.get_schedule(schedule_id)


async def pause_or_resume(request: web.Request, *, pause: bool) -> web.Response:
    """``POST /api/schedules/{id}/pause`` or ``/resume``: 200 with the schedule."""
    schedule: Schedule = await call_scheduler(
        request,
        _pause_or_resume,
        request.app[ACCESS].scheduler,
        path_id(request),
        pause,
    )
    return json_answer(schedule_data(schedule))


async def _run_schedule(sz: ScheduleZero, schedule_id: str) -> JobHandle:
    schedule = await sz.get_schedule(schedule_id)
    return await sz.submit(
        schedule.task,
        args=schedule.args,
        kwargs=schedule.kwargs,
        affinity=schedule.affinity,
    )


async def run_schedule(request: web.Request) -> web.Response:
    """``POST /api/schedules/{id}/run``: a job of its task and arguments now. 202."""
    handle: JobHandle = await call_scheduler(
        request, _run_schedule, request.app[ACCESS].scheduler, path_id(request)
    )
    request.app[_SUBMITTED].add(handle)
    return json_answer({"job_id": handle.id}, status=202)


async def upcoming(request: web.Request) -> web.Response:
    """``GET /api/schedules/{id}/upcoming?n=5``: its next ``n`` fire times."""
    schedule_id = path_id(request)
    n = query_int(request, "n", 5, MAX_UPCOMING)
    fires: list[datetime] = await call_scheduler(
        request, ScheduleZero.upcoming, request.app[ACCESS].scheduler, schedule_id, n
    )
    return json_answer(
        {
            "id": schedule_id,
            "fire_times": [fire.astimezone(UTC).isoformat() for fire in fires],
        }
    )


# ------------------------------------------- handlers, governors, the broker


async def _handlers(sz: ScheduleZero) -> tuple[list[HandlerStatus], float]:
    statuses = await sz.handlers()
    # The clock the statuses' last_seen is on: for their heartbeat's age.
    return statuses, lowlevel.clock(sz.system).now()


async def list_handlers(request: web.Request) -> web.Response:
    """``GET /api/handlers``: every handler, local and remote, with its health."""
    statuses, now = await call_scheduler(
        request, _handlers, request.app[ACCESS].scheduler
    )
    return json_answer([handler_data(status, now) for status in statuses])


async def list_governors(request: web.Request) -> web.Response:
    """``GET /api/governors``: every limit, with its tokens and counts."""
    found = await call_scheduler(
        request, ScheduleZero.governors, request.app[ACCESS].scheduler
    )
    return json_answer([governor_data(status) for status in found])


async def _broker(sz: ScheduleZero) -> tuple[str, BrokerStats] | None:
    if sz.broker_settings is None:
        return None
    return await sz.broker()


async def get_broker(request: web.Request) -> web.Response:
    """``GET /api/broker``: its endpoint and counters; 404 without a broker."""
    found = await call_scheduler(request, _broker, request.app[ACCESS].scheduler)
    if found is None:
        raise json_error(404, "no broker: this scheduler accepts no remote workers")
    return json_answer(broker_data(*found))


# ---------------------------------------------------------------------- jobs

_JOB_FIELDS = frozenset({"task", "args", "kwargs", "job_id", "affinity", "wait"})


async def list_jobs(request: web.Request) -> web.Response:
    """``GET /api/jobs?state=``: the live jobs (held, waiting and why, running)."""
    state = request.query.get("state")
    if state is not None and state not in _STATES:
        raise invalid("query parameter 'state'", f"must be one of {', '.join(_STATES)}")
    found: list[JobStatus] = await call_scheduler(
        request, ScheduleZero.jobs, request.app[ACCESS].scheduler, state
    )
    return json_answer([job_status_data(status) for status in found])


async def _submit(sz: ScheduleZero, wanted: dict[str, Any]) -> JobHandle:
    task = wanted.pop("task")
    return await sz.submit(task, **wanted)


async def submit_job(request: web.Request) -> web.Response:
    """``POST /api/jobs``: accept a job now. 202 with its id."""
    body = await read_body(request)
    check_keys(body, _JOB_FIELDS)
    task = required_text(body, "task")
    args, kwargs = arguments(body)
    wanted = {
        "task": task,
        "args": args,
        "kwargs": kwargs,
        "job_id": optional_text(body, "job_id"),
        "affinity": optional_text(body, "affinity"),
        "wait": number(body, "wait", MAX_JOB_WAIT),
    }
    handle: JobHandle = await call_scheduler(
        request, _submit, request.app[ACCESS].scheduler, wanted
    )
    request.app[_SUBMITTED].add(handle)
    return json_answer({"job_id": handle.id}, status=202)


def _kept(request: web.Request, job_id: str) -> JobHandle | None:
    """The handle of a job submitted through the API, if still kept."""
    return request.app[_SUBMITTED].get(job_id)


def _handle(sz: ScheduleZero, job_id: str, kept: JobHandle | None) -> JobHandle:
    """A handle for the job: the one kept from its submit, else a new one."""
    return kept if kept is not None else sz.job(job_id)


async def _status(sz: ScheduleZero, job_id: str, kept: JobHandle | None) -> JobStatus:
    return await _handle(sz, job_id, kept).status()


async def get_job(request: web.Request) -> web.Response:
    """``GET /api/jobs/{id}``: where the job stands; 404 if unknown."""
    job_id = path_id(request)
    status: JobStatus = await call_scheduler(
        request, _status, request.app[ACCESS].scheduler, job_id, _kept(request, job_id)
    )
    if status.state == "unknown":
        raise json_error(404, f"no job {job_id!r} here")
    return json_answer(job_status_data(status))


async def _cancel(sz: ScheduleZero, job_id: str, kept: JobHandle | None) -> bool | None:
    handle = _handle(sz, job_id, kept)
    if await handle.cancel():
        return True
    status = await handle.status()
    return None if status.state == "unknown" else False


async def cancel_job(request: web.Request) -> web.Response:
    """``POST /api/jobs/{id}/cancel``: cancel it if live; 404 if unknown."""
    job_id = path_id(request)
    cancelled: bool | None = await call_scheduler(
        request, _cancel, request.app[ACCESS].scheduler, job_id, _kept(request, job_id)
    )
    if cancelled is None:
        raise json_error(404, f"no job {job_id!r} here")
    return json_answer({"job_id": job_id, "cancelled": cancelled})


async def _result(
    sz: ScheduleZero,
    job_id: str,
    kept: JobHandle | None,
    timeout: float,  # noqa: ASYNC109 - JobHandle.result's, sent on
) -> dict[str, Any] | None:
    """The job's end as the API shows it; None if the job is unknown.

    Raises:
        JobTimeout: It did not end within ``timeout``.
    """
    handle = _handle(sz, job_id, kept)
    status = await handle.status()
    if status.state == "unknown":
        return None
    answer: dict[str, Any] = {
        "job_id": handle.id,
        "outcome": "success",
        "result": None,
        "error": None,
        "note": None,
    }
    try:
        answer["result"] = await handle.result(timeout)
    except JobTimeout:
        raise
    except JobFailed as exc:
        cause = exc.__cause__
        said = f"{exc}: {describe_error(cause)}" if cause is not None else str(exc)
        answer.update(outcome=exc.outcome, error=said)
    except Overloaded as exc:
        answer.update(outcome="rejected", error=str(exc))
    except SzError as exc:
        ended = await handle.status()
        if ended.outcome != "success":
            raise
        # Ended with success, its result not kept (memory store, or too big).
        answer["note"] = str(exc)
    return answer


async def job_result(request: web.Request) -> web.Response:
    """``GET /api/jobs/{id}/result?timeout=10``: the outcome and the result.

    Waits for the job's end at most ``timeout`` seconds (504 then).
    """
    job_id = path_id(request)
    timeout = query_seconds(request, "timeout", DEFAULT_RESULT_WAIT, MAX_RESULT_WAIT)
    answer: dict[str, Any] | None = await call_scheduler(
        request,
        _result,
        request.app[ACCESS].scheduler,
        job_id,
        _kept(request, job_id),
        timeout,
    )
    if answer is None:
        raise json_error(404, f"no job {job_id!r} here")
    answer["result"] = value_data(answer["result"])
    return json_answer(answer)


# ------------------------------------------------------------------- history


#: The old name of ``sz.shapes.history_cursor`` (an opaque cursor: where a
#: row stands in the history's order, shared with ``sz history --store``),
#: kept for code that still imports it from here; use that one.
_cursor = history_cursor


def _after(cursor: str) -> Attempt:
    """The stand-in row a cursor names: ``history(before=)`` reads its order only."""
    try:
        return row_after(cursor)
    except ValueError:
        raise invalid(
            "query parameter 'cursor'", "is not a cursor this API gave"
        ) from None


async def history(request: web.Request) -> web.Response:
    """``GET /api/history``: rows newest first, a page of ``limit``.

    ``next`` is the cursor of the page after (null on the last).
    """
    outcome = request.query.get("outcome")
    if outcome is not None and outcome not in _OUTCOMES:
        raise invalid(
            "query parameter 'outcome'",
            f"must be one of {', '.join(sorted(_OUTCOMES))}",
        )
    limit = query_int(request, "limit", 100, MAX_HISTORY_PAGE)
    cursor = request.query.get("cursor")
    query: dict[str, Any] = {
        "task": query_text(request, "task"),
        "handler": query_text(request, "handler"),
        "outcome": outcome,
        "schedule_id": query_text(request, "schedule_id"),
        "job_id": query_text(request, "job_id"),
        "since": query_time(request, "since"),
        "final": query_bool(request, "final"),
        "before": _after(cursor) if cursor is not None else None,
        # One more than the page: whether a next page exists.
        "limit": limit + 1,
    }
    rows: list[Attempt] = await call_scheduler(
        request, partial(request.app[ACCESS].scheduler.history, **query)
    )
    page = rows[:limit]
    more = len(rows) > limit
    return json_answer(
        {
            "rows": [attempt_data(row) for row in page],
            "next": history_cursor(page[-1]) if more and page else None,
        }
    )


# -------------------------------------------------------------- dead letters


def _dead_letters(sz: ScheduleZero, limit: int) -> tuple[int, list[Any]]:
    return sz.system.statistics().dead_letters, sz.dead_letters(limit)


async def dead_letters(request: web.Request) -> web.Response:
    """``GET /api/dead-letters?limit=100``: the latest, newest first, and a count.

    ``total`` counts every dead letter of the run, kept or not.
    """
    limit = query_int(request, "limit", 100, 1000)
    total, letters = await call_scheduler(
        request, _dead_letters, request.app[ACCESS].scheduler, limit
    )
    return json_answer(
        {"total": total, "letters": [dead_letter_data(letter) for letter in letters]}
    )
