"""``/api/tests``: scenario runs inside the server, its library and its results.

The routes reach the scheduler's ``ScenarioService`` (``sz.scenarios``)
through the application's ``SchedulerAccess``, as every ``/api`` route reaches
the scheduler. Each run is an actor of the server's tree,
``/user/scenarios/<run id>``, running the scenario in a fresh embedded
scheduler of its own (``docs/guide/scenarios.md``, "Through a server").

Loading, running, scheduling and aborting change the server: refused (403)
when mutations are off (``web.mutations``), and, like every POST, when sent by
a page of another origin.

``GET /api/tests/metrics/{run_id}`` is a stream of Server-Sent Events, written
with ``web.events``' machinery (a client that does not read is dropped): a
``progress`` event whenever the run's progress changed, looked at every
``STREAM_INTERVAL`` seconds; a ``fault`` event for each fault the run
injects; and ``result`` when it ends, after which the stream ends. A
connection begins with the current progress and every fault so far; a
reconnection with ``Last-Event-ID`` begins with the current progress alone
(then the faults from then on), as ``/api/events`` resumes with the current
state.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web

from sz import SzError
from sz.scenarios import KEPT_RESULTS, MAX_LISTED, MAX_SCENARIO_BYTES, SCENARIO_TASK

from .access import ACCESS
from .errors import json_error
from .events import (
    RETRY_LINE,
    SlowClient,
    check_stream_origin,
    drop_slow_client,
    event_text,
    next_event_id,
    open_stream,
    write_within,
)
from .json import schedule_data
from .requests import (
    MAX_ID,
    MUTATIONS,
    call_scheduler,
    check_keys,
    invalid,
    optional_text,
    path_id,
    query_int,
    query_text,
    read_body,
    schedule_request,
)
from .settings import SETTINGS, GatewaySettings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sz import Schedule, ScheduleZero
    from sz.scenarios import LibraryEntry, RunState, RunView, ScenarioService

__all__ = [
    "MAX_PARAMS",
    "STREAM_INTERVAL",
    "YAML_TYPES",
    "add_tests_routes",
]

#: Seconds between two looks at a run for its metrics stream.
STREAM_INTERVAL = 0.25

#: The most parameters a run request may override.
MAX_PARAMS = 100

#: The largest seed a request may give.
MAX_SEED = 2**63 - 1

#: Content types of a YAML body for ``/api/tests/load``.
YAML_TYPES = frozenset(
    {"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"}
)

_RUN_FIELDS = frozenset({"id", "params", "seed"})
_SCHEDULE_FIELDS = frozenset(
    {
        "id",
        "params",
        "seed",
        "trigger",
        "fields",
        "schedule_id",
        "paused",
        "misfire_grace_time",
        "coalesce",
    }
)


def add_tests_routes(app: web.Application) -> None:
    """Register the ``/api/tests`` routes."""
    router = app.router
    router.add_get("/api/tests", get_library)
    router.add_post("/api/tests/load", load_scenario)
    router.add_post("/api/tests/run", start_run)
    router.add_post("/api/tests/schedule", schedule_runs)
    router.add_get("/api/tests/results", list_results)
    router.add_get("/api/tests/results/{run_id}", get_result)
    router.add_get("/api/tests/results/{run_id}/csv", get_result_csv)
    router.add_get("/api/tests/metrics/{run_id}", stream_metrics)
    router.add_post("/api/tests/runs/{run_id}/abort", abort_run)


# ------------------------------------------------------------------ plumbing


def _service(sz: ScheduleZero) -> ScenarioService:
    return sz.scenarios


def check_mutations(request: web.Request) -> None:
    if not request.app.get(MUTATIONS, True):
        raise json_error(
            403,
            "mutations (loading, running, scheduling and aborting scenarios) "
            "are turned off on this server (web.mutations)",
        )


async def _scenarios(request: web.Request, func: Any, *args: Any) -> Any:
    """``func(service, *args)`` in the scheduler's loop; errors as JSON."""
    sz = request.app[ACCESS].scheduler

    async def call() -> Any:
        result = func(_service(sz), *args)
        return await result if asyncio.iscoroutine(result) else result

    return await call_scheduler(request, _across, call)


async def _across(call: Any) -> Any:
    # A coroutine function for the portal: it awaits ``call`` on the
    # scheduler's loop.
    return await call()


def _run_id(request: web.Request) -> str:
    return path_id(request, "run_id")


def _params(body: Mapping[str, Any]) -> dict[str, Any]:
    params = body.get("params")
    if params is None:
        return {}
    if not isinstance(params, dict) or len(params) > MAX_PARAMS:
        raise invalid(
            "body.params", f"must be an object of at most {MAX_PARAMS} parameters"
        )
    for name, value in params.items():
        if not name.isidentifier():
            raise invalid(f"body.params.{name}", "is not a parameter name")
        if not isinstance(value, str | int | float | bool) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise invalid(
                f"body.params.{name}", "must be a string, a number or a boolean"
            )
        if isinstance(value, str) and len(value) > MAX_ID:
            raise invalid(
                f"body.params.{name}", f"must be at most {MAX_ID} characters long"
            )
    return dict(params)


def _seed(body: Mapping[str, Any]) -> int | None:
    seed = body.get("seed")
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise invalid("body.seed", f"must be an integer from 0 to {MAX_SEED} or null")
    return seed


def _scenario_id(body: Mapping[str, Any]) -> str:
    value = body.get("id")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        raise invalid("body.id", f"must be a scenario's id (1 to {MAX_ID} characters)")
    return value


# ------------------------------------------------------------------- library


async def _library(service: ScenarioService) -> list[LibraryEntry]:
    return await service.library()


async def get_library(request: web.Request) -> web.Response:
    """``GET /api/tests``: every scenario of the library."""
    entries: list[LibraryEntry] = await _scenarios(request, _library)
    return web.json_response([entry.to_json() for entry in entries])


async def _loaded_text(request: web.Request) -> tuple[str, str]:
    """The YAML a load request carries, and the name its errors give it."""
    kind = request.content_type
    if kind in YAML_TYPES:
        raw = await request.read()
        try:
            return raw.decode("utf-8"), "<api>"
        except UnicodeDecodeError:
            raise invalid("body", "is not UTF-8 text") from None
    if kind != "application/json":
        raise json_error(
            415,
            f"a scenario is sent as YAML (Content-Type: application/yaml or "
            f'text/yaml) or as JSON {{"yaml": "..."}}, not as {kind}',
        )
    body = await read_body(request)
    check_keys(body, frozenset({"yaml", "source"}))
    text = body.get("yaml")
    if not isinstance(text, str) or not text:
        raise invalid("body.yaml", "must be the scenario's YAML text")
    source = body.get("source", "<api>")
    if not isinstance(source, str) or not 0 < len(source) <= MAX_ID:
        raise invalid("body.source", f"must be a file name of 1 to {MAX_ID} characters")
    return text, source


async def _load(service: ScenarioService, text: str, source: str) -> LibraryEntry:
    return await service.load(text, source=source)


async def load_scenario(request: web.Request) -> web.Response:
    """``POST /api/tests/load``: check a scenario and add it to the library. 201.

    A scenario that does not load is a 422 whose message is the loader's
    ``file:line: problem``, the file being ``<api>`` (or the JSON body's
    ``source``).
    """
    check_mutations(request)
    text, source = await _loaded_text(request)
    if len(text.encode()) > MAX_SCENARIO_BYTES:
        raise json_error(413, f"a scenario is at most {MAX_SCENARIO_BYTES:,} bytes")
    entry: LibraryEntry = await _scenarios(request, _load, text, source)
    return web.json_response(entry.to_json(), status=201)


# ---------------------------------------------------------------------- runs


async def _start(
    service: ScenarioService, scenario_id: str, params: dict[str, Any], seed: int | None
) -> dict[str, Any]:
    run = await service.start(scenario_id, params, seed)
    return run.summary_json()


async def start_run(request: web.Request) -> web.Response:
    """``POST /api/tests/run``: start a run of a library scenario. 202 with it.

    429 while as many runs as the server allows go on already.
    """
    check_mutations(request)
    body = await read_body(request)
    check_keys(body, _RUN_FIELDS)
    wanted = (_scenario_id(body), _params(body), _seed(body))
    answer: dict[str, Any] = await _scenarios(request, _start, *wanted)
    return web.json_response(answer, status=202)


async def _results(
    service: ScenarioService, scenario: str | None, limit: int
) -> list[dict[str, Any]]:
    return [run.summary_json() for run in await service.runs(scenario, limit)]


async def list_results(request: web.Request) -> web.Response:
    """``GET /api/tests/results``: runs, running or ended, newest first.

    ``?scenario=`` keeps the runs of one scenario (its library id or its
    name); ``?limit=`` lists at most that many (100 by default, up to
    1,000). Runs kept in the store from before a restart are listed too.
    """
    scenario = query_text(request, "scenario")
    limit = query_int(request, "limit", KEPT_RESULTS, MAX_LISTED)
    return web.json_response(await _scenarios(request, _results, scenario, limit))


async def _result(service: ScenarioService, run_id: str) -> dict[str, Any] | None:
    run = await service.run(run_id)
    return run.to_json() if run is not None else None


def _no_run(run_id: str) -> web.HTTPException:
    return json_error(404, f"no scenario run {run_id!r} here (or no longer kept)")


async def get_result(request: web.Request) -> web.Response:
    """``GET /api/tests/results/{run_id}``: the run, with its result once ended."""
    run_id = _run_id(request)
    answer = await _scenarios(request, _result, run_id)
    if answer is None:
        raise _no_run(run_id)
    return web.json_response(answer)


async def _csv(service: ScenarioService, run_id: str) -> tuple[str, str | None] | None:
    run = await service.run(run_id)
    if run is None:
        return None
    if run.result is None:
        return run.state, None
    return run.state, run.result.to_csv()


async def get_result_csv(request: web.Request) -> web.Response:
    """``GET /api/tests/results/{run_id}/csv``: its metric samples, as CSV.

    409 while the run goes on.
    """
    run_id = _run_id(request)
    found = await _scenarios(request, _csv, run_id)
    if found is None:
        raise _no_run(run_id)
    state, text = found
    if text is None:
        raise json_error(409, f"run {run_id!r} is still {state}: no samples yet")
    return web.Response(text=text, content_type="text/csv")


async def _abort(service: ScenarioService, run_id: str) -> dict[str, Any] | None:
    run: RunState | None = await service.abort(run_id)
    return run.to_json() if run is not None else None


async def abort_run(request: web.Request) -> web.Response:
    """``POST /api/tests/runs/{run_id}/abort``: stop it; the run once ended.

    Its actor is stopped, and with it the run's scheduler and worker
    processes; the run ends ``aborted`` (a run already ended is left as it
    was).
    """
    check_mutations(request)
    run_id = _run_id(request)
    answer = await _scenarios(request, _abort, run_id)
    if answer is None:
        raise _no_run(run_id)
    return web.json_response(answer)


# ----------------------------------------------------------------- schedules


async def _schedule(
    service: ScenarioService, wanted: dict[str, Any]
) -> Schedule | None:
    if not service.schedulable:
        return None
    schedule_id = await service.schedule(
        wanted.pop("scenario_id"),
        wanted.pop("trigger"),
        params=wanted.pop("params"),
        seed=wanted.pop("seed"),
        id=wanted.pop("id"),
        **wanted.pop("fields"),
        **wanted,
    )
    return await service.scheduler.get_schedule(schedule_id)


async def schedule_runs(request: web.Request) -> web.Response:
    """``POST /api/tests/schedule``: recurring runs, through the scheduler. 201.

    The trigger is given as ``/api/schedules`` takes it (``trigger`` and
    ``fields``); each fire starts a run (a job of the task ``sz.scenario``).
    409 when this scheduler cannot schedule runs (its ``sz.scenarios`` was
    made after it started).
    """
    check_mutations(request)
    body = await read_body(request)
    check_keys(body, _SCHEDULE_FIELDS)
    scenario_id, params, seed = _scenario_id(body), _params(body), _seed(body)
    shape: dict[str, Any] = {
        key: body[key]
        for key in ("trigger", "fields", "paused", "misfire_grace_time", "coalesce")
        if key in body
    }
    shape["id"] = optional_text(body, "schedule_id")
    checked = schedule_request({"task": SCENARIO_TASK, **shape}, None)
    wanted = {
        "scenario_id": scenario_id,
        "params": params,
        "seed": seed,
        "trigger": checked["trigger"],
        "fields": checked["fields"],
        "id": checked["id"],
        "paused": checked["paused"],
        "misfire_grace_time": checked["misfire_grace_time"],
        "coalesce": checked["coalesce"],
    }
    schedule: Schedule | None = await _scenarios(request, _schedule, wanted)
    if schedule is None:
        raise json_error(
            409,
            "scenario runs cannot be scheduled on this server: the sz.scenario "
            "handler is registered when sz.scenarios is first used before the "
            "scheduler starts (sz serve does so)",
        )
    return web.json_response(schedule_data(schedule), status=201)


# -------------------------------------------------------------------- stream


async def _watch(service: ScenarioService, run_id: str, seen: int) -> RunView | None:
    return await service.watch(run_id, seen)


async def stream_metrics(request: web.Request) -> web.StreamResponse:
    """``GET /api/tests/metrics/{run_id}``: a run, live, as Server-Sent Events.

    ``progress`` events (the current step and the latest samples) whenever
    they change, ``fault`` events as faults strike, and ``result`` (the run
    as ``/api/tests/results/{run_id}`` shows it) when it ends; then the
    stream ends. 404 for a run not kept, 403 for a page of another origin.
    """
    check_stream_origin(request, "a scenario run's metrics")
    run_id = _run_id(request)
    view: RunView | None = await _scenarios(request, _watch, run_id, 0)
    if view is None:
        raise _no_run(run_id)
    settings = request.app.get(SETTINGS) or GatewaySettings()
    patience = settings.events_write_timeout
    app = request.app
    response = await open_stream(request)
    # Resumed: the current state, not what was missed.
    resumed = hdrs.LAST_EVENT_ID in request.headers
    loop = asyncio.get_running_loop()
    try:
        await write_within(response, RETRY_LINE, patience)
        sent: dict[str, Any] | None = None
        pinged = loop.time()
        events = () if resumed else view.events
        while True:
            text = "".join(
                event_text("fault", next_event_id(app), json.dumps(event))
                for event in events
                if event["event"] == "fault"
            )
            if view.progress != sent:
                sent = view.progress
                text += event_text("progress", next_event_id(app), json.dumps(sent))
            if view.result is not None:
                text += event_text(
                    "result", next_event_id(app), json.dumps(view.result)
                )
            if loop.time() - pinged >= settings.events_heartbeat:
                text += ": ping\n\n"
                pinged = loop.time()
            if text:
                await write_within(response, text, patience)
            if view.result is not None:
                break
            await asyncio.sleep(STREAM_INTERVAL)
            transport = request.transport
            if transport is None or transport.is_closing():
                break  # the client went away
            try:
                found = await _scenarios(request, _watch, run_id, view.seen)
            except (web.HTTPException, SzError):
                break  # the scheduler stopped
            if found is None:
                break  # no longer kept
            view, events = found, found.events
    except SlowClient as why:
        drop_slow_client(request, why)
    except ConnectionError:
        pass  # the client went away between two looks
    return response
