"""``OPENAPI``: the OpenAPI 3.1 document of every ``/api`` route.

The application serves it at ``/api/openapi.json``. Its schemas describe what
``web.json`` builds and ``web.api`` checks, exactly: the tests validate every
answer of the API against them, and hold the document's paths and the ``/api``
routes of ``web.app.ROUTES`` together.
"""

from __future__ import annotations

from typing import Any, get_args

from actors.system import DEATHS_KEPT
from sz import Outcome
from sz.scenarios import KEPT_RESULTS, MAX_LISTED, RUN_STATES

from .api import MAX_HISTORY_PAGE, MAX_ID, MAX_JOB_WAIT, MAX_RESULT_WAIT, MAX_UPCOMING
from .tests import MAX_PARAMS, MAX_SEED, YAML_TYPES

__all__ = ["OPENAPI"]

_OUTCOMES = sorted(get_args(Outcome))


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        nullable = {**schema, "type": [kind, "null"]}
        if "enum" in schema:
            nullable["enum"] = [*schema["enum"], None]
        return nullable
    return {"anyOf": [schema, {"type": "null"}]}


def _object(
    properties: dict[str, Any], *, required: list[str] | None = None
) -> dict[str, Any]:
    """An object of exactly these properties (all required unless told)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


_TIME = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID}

_SCALAR = {"type": ["string", "number", "boolean"]}
_PARAMS = {
    "type": "object",
    "maxProperties": MAX_PARAMS,
    "additionalProperties": _SCALAR,
    "description": "Parameter overrides by name: text is read as the default's type.",
}
_SEED = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SEED}
_RUN_STATE = {"type": "string", "enum": list(RUN_STATES)}
_METRIC = {
    "anyOf": [
        {"type": ["number", "null"]},
        {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
    ]
}

#: The schemas of ``/api/tests`` (``web.tests``).
_TESTS_SCHEMAS: dict[str, Any] = {
    "Scenario": _object(
        {
            "id": {**_TEXT, "description": "The library's id of the scenario."},
            "name": _TEXT,
            "description": _TEXT,
            "parameters": {
                "type": "object",
                "additionalProperties": _SCALAR,
                "description": "Each parameter's default.",
            },
            "units": {"type": "object", "additionalProperties": _TEXT},
            "source": {"type": "string", "enum": ["shipped", "loaded"]},
            "yaml": _TEXT,
        }
    ),
    "ScenarioText": _object(
        {
            "yaml": {**_TEXT, "minLength": 1, "description": "The scenario's YAML."},
            "source": {
                **_ID,
                "description": "The file name its errors give (<api> by default).",
            },
        },
        required=["yaml"],
    ),
    "RunRequest": _object(
        {"id": _ID, "params": _PARAMS, "seed": _SEED}, required=["id"]
    ),
    "RunScheduleRequest": _object(
        {
            "id": _ID,
            "params": _PARAMS,
            "seed": {
                **_SEED,
                "description": "Every run's seed; null for a fresh one each run.",
            },
            "trigger": {
                **_ID,
                "description": "cron, interval, date, calendarinterval or a "
                "crontab line, as /api/schedules takes it.",
            },
            "fields": {
                "type": ["object", "null"],
                "additionalProperties": {"type": ["string", "number"]},
            },
            "schedule_id": _nullable(_ID),
            "paused": {"type": "boolean"},
            "misfire_grace_time": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 366 * 86_400,
            },
            "coalesce": {"type": "string", "enum": ["latest", "earliest", "all"]},
        },
        required=["id"],
    ),
    "RunProgress": _object(
        {
            "run_id": _TEXT,
            "scenario": _TEXT,
            "state": _RUN_STATE,
            "why": {"type": "string", "enum": ["start", "step", "sample", "end"]},
            "step": {**_TEXT, "description": "The step running now."},
            "index": {**_COUNT, "description": "The top-level step, from 1."},
            "total": {**_COUNT, "description": "How many top-level steps."},
            "elapsed": _NUMBER,
            "metrics": {
                "type": "object",
                "additionalProperties": {"type": ["number", "null"]},
                "description": "The latest sample of each metric.",
            },
        }
    ),
    "RunSummary": _object(
        {
            "run_id": _TEXT,
            "scenario_id": _TEXT,
            "schedule_id": _nullable(_TEXT),
            "name": _TEXT,
            "seed": {"type": "integer"},
            "state": _RUN_STATE,
            "outcome": _nullable(
                {"type": "string", "enum": ["passed", "failed", "aborted", "error"]}
            ),
            "error": _nullable(_TEXT),
            "started_at": _TIME,
            "finished_at": _nullable(_TIME),
            "passed": {"type": ["boolean", "null"]},
            # One number per reported metric, for trends (a distribution's p99).
            "metrics": {"type": "object", "additionalProperties": _NUMBER},
            "units": {"type": "object", "additionalProperties": _TEXT},
        }
    ),
    "RunResult": _object(
        {
            "run_id": _TEXT,
            "scenario_id": _TEXT,
            "schedule_id": _nullable(_TEXT),
            "name": _TEXT,
            "seed": {"type": "integer"},
            "parameters": {"type": "object", "additionalProperties": _SCALAR},
            "units": {"type": "object", "additionalProperties": _TEXT},
            "started_at": _TIME,
            "state": _RUN_STATE,
            "outcome": _nullable(
                {"type": "string", "enum": ["passed", "failed", "aborted", "error"]}
            ),
            "error": _nullable(_TEXT),
            "progress": _ref("RunProgress"),
            "finished_at": _TIME,
            "passed": {"type": "boolean"},
            "metrics": {"type": "object", "additionalProperties": _METRIC},
            "checks": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"passed": {"type": "boolean"}},
                    "required": ["passed"],
                },
            },
            "assertions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "expression": _TEXT,
                        "value": {"type": ["boolean", "null"]},
                        "passed": {"type": "boolean"},
                        "error": _TEXT,
                    },
                    "required": ["expression", "value", "passed"],
                },
            },
            "timeline": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": _TIME,
                        "offset": _NUMBER,
                        "event": _TEXT,
                        "name": _TEXT,
                    },
                    "required": ["at", "offset", "event", "name"],
                },
            },
        },
        required=[
            "run_id",
            "scenario_id",
            "schedule_id",
            "name",
            "seed",
            "parameters",
            "units",
            "started_at",
            "state",
            "outcome",
            "error",
            "progress",
        ],
    ),
}

_SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "message": _TEXT,
                }
            )
        }
    ),
    "Actor": _object(
        {
            "path": {**_TEXT, "description": "Such as /user/handlers/echo."},
            "name": _TEXT,
            "actor_class": _TEXT,
            "state": {
                "enum": [
                    "starting",
                    "running",
                    "restarting",
                    "stopping",
                    "stopped",
                    "failed",
                ]
            },
            "mailbox_depth": _COUNT,
            "mailbox_capacity": _COUNT,
            "processed": _COUNT,
            "failures": _COUNT,
            "restarts": _COUNT,
            "last_error": _nullable(_TEXT),
            "started_at": _nullable(_TIME),
            "supervision": _object(
                {
                    "strategy": {
                        "enum": ["one_for_one", "one_for_all", "rest_for_one"]
                    },
                    "max_restarts": _COUNT,
                    "within": {**_NUMBER, "exclusiveMinimum": 0},
                    "window_restarts": {
                        **_COUNT,
                        "description": "Restarts of its children counted against "
                        "max_restarts now (within the last `within` seconds).",
                    },
                    "past_intensity": {
                        "enum": ["escalate", "backoff"],
                        "description": "What a restart beyond the intensity does: "
                        "give up and fail (escalate), or restart after a growing "
                        "delay (backoff).",
                    },
                    "backoff_min": _nullable({**_NUMBER, "minimum": 0}),
                    "backoff_max": _nullable({**_NUMBER, "minimum": 0}),
                }
            ),
            "children": {"type": "array", "items": _ref("Actor")},
        }
    ),
    "Summary": _object(
        {
            "time": _TIME,
            "jobs": _object(
                {
                    "held": _COUNT,
                    "waiting": _COUNT,
                    "running": _COUNT,
                    "retrying": {
                        **_COUNT,
                        "description": "Live jobs on a second attempt or later.",
                    },
                }
            ),
            "ended": _object(
                {
                    "total": _COUNT,
                    "failed": _COUNT,
                    "by_outcome": {
                        "type": "object",
                        "propertyNames": {"enum": _OUTCOMES},
                        "additionalProperties": _COUNT,
                    },
                }
            ),
            "handlers": _object({"up": _COUNT, "total": _COUNT}),
            "actors": _object(
                {
                    "up": _COUNT,
                    "total": _COUNT,
                    "restarts": _COUNT,
                    "restarts_5m": {
                        **_COUNT,
                        "description": "Restarts in the last five minutes.",
                    },
                }
            ),
            "dead_letters": {
                **_COUNT,
                "description": "Messages no actor processed, since the start.",
            },
            "schedules": _object(
                {"total": _COUNT, "paused": _COUNT, "due_within_hour": _COUNT}
            ),
            "lateness": _object(
                {
                    "fires": {
                        **_COUNT,
                        "description": "Fires whose first attempt started, "
                        "since the start.",
                    },
                    "sum": {
                        **_NUMBER,
                        "minimum": 0,
                        "description": "Their lateness summed, in seconds: two "
                        "summaries give an interval's mean.",
                    },
                }
            ),
            "loop_lag": _object(
                {
                    "latest": _nullable({**_NUMBER, "minimum": 0}),
                    "worst_last_minute": _nullable({**_NUMBER, "minimum": 0}),
                }
            ),
        }
    ),
    "ActorAction": _object({"path": _TEXT, "action": {"enum": ["kill", "restart"]}}),
    "Schedule": _object(
        {
            "id": _TEXT,
            "task": _TEXT,
            "trigger": {**_TEXT, "description": "A description of the trigger."},
            "args": {"type": "array"},
            "kwargs": {"type": "object"},
            "paused": {"type": "boolean"},
            "paused_reason": _nullable(
                {"type": "string", "enum": ["requested", "no_healthy_handler"]}
            ),
            "next_fire_time": _nullable(_TIME),
            "affinity": _nullable(_TEXT),
            "coalesce": {"enum": ["latest", "earliest", "all"]},
        }
    ),
    "ScheduleRequest": _object(
        {
            "task": _ID,
            "trigger": {
                **_ID,
                "default": "cron",
                "description": "cron, interval, date, calendarinterval, or a "
                "crontab string such as '*/5 * * * *'.",
            },
            "fields": {
                "type": "object",
                "description": "The trigger's fields: hour, minutes, run_time, ...",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "additionalProperties": {"type": ["string", "number"]},
            },
            "args": {
                "type": ["array", "object", "null"],
                "description": "Positional arguments (an array) or keyword "
                "arguments (an object).",
            },
            "kwargs": {"type": ["object", "null"]},
            "id": _nullable(_ID),
            "paused": {"type": "boolean", "default": False},
            "misfire_grace_time": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 366 * 86_400,
            },
            "coalesce": {"enum": ["latest", "earliest", "all"], "default": "latest"},
            "affinity": _nullable(_ID),
        },
        required=["task"],
    ),
    "Upcoming": _object({"id": _TEXT, "fire_times": {"type": "array", "items": _TIME}}),
    "HandlerHealth": _object(
        {
            "state": {"enum": ["healthy", "degraded", "unhealthy", "dead"]},
            "heartbeat_age": _nullable(
                {**_NUMBER, "description": "Seconds since its last sign of life."}
            ),
            "uptime": _nullable(_NUMBER),
            "successes": _COUNT,
            "failures": _COUNT,
            "failure_ratio": _nullable(_NUMBER),
            "avg_duration": _nullable(_NUMBER),
            "active": _COUNT,
            "trial": {"type": "boolean"},
        }
    ),
    "HandlerStatus": _object(
        {
            "name": _TEXT,
            "task": _TEXT,
            "tasks": {"type": "array", "items": _TEXT},
            "kind": {"enum": ["local", "remote"]},
            "concurrency": _COUNT,
            "busy": _COUNT,
            "rate": _nullable(
                {**_NUMBER, "description": "Jobs per second it may start now."}
            ),
            "draining": {"type": "boolean"},
            "health": _ref("HandlerHealth"),
        }
    ),
    "GovernorStatus": _object(
        {
            "name": _TEXT,
            "rate": _nullable(_NUMBER),
            "effective_rate": _nullable(_NUMBER),
            "burst": _nullable(_NUMBER),
            "tokens": _nullable(_NUMBER),
            "max_running": _nullable({"type": "integer"}),
            "running": _COUNT,
            "waiting": _COUNT,
            "limited": _COUNT,
            "rejected": _COUNT,
        }
    ),
    "Broker": _object(
        {
            "endpoint": _TEXT,
            "stats": _object(
                dict.fromkeys(
                    (
                        "registered",
                        "refused",
                        "malformed",
                        "unknown_peer",
                        "workers_lost",
                        "workers_left",
                        "jobs_sent",
                        "results",
                        "stale_results",
                        "congested",
                        "connections",
                        "disconnections",
                        "handshakes_refused",
                    ),
                    _COUNT,
                )
            ),
        }
    ),
    "JobStatus": _object(
        {
            "id": _TEXT,
            "task": _TEXT,
            "state": {"enum": ["held", "waiting", "running", "ended", "unknown"]},
            "attempt": _nullable({"type": "integer", "minimum": 1}),
            "schedule_id": _nullable(_TEXT),
            "scheduled_at": _nullable(_TIME),
            "handler": _nullable(_TEXT),
            "since": _nullable(_TIME),
            "why": _nullable(_TEXT),
            "outcome": _nullable({"type": "string", "enum": _OUTCOMES}),
        }
    ),
    "JobRequest": _object(
        {
            "task": _ID,
            "args": {"type": ["array", "object", "null"]},
            "kwargs": {"type": ["object", "null"]},
            "job_id": _nullable(
                {
                    **_ID,
                    "description": "An idempotency key: the same id again "
                    "finds the first job.",
                }
            ),
            "affinity": _nullable(_ID),
            "wait": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": MAX_JOB_WAIT,
                "description": "Seconds it may wait for a healthy handler.",
            },
        },
        required=["task"],
    ),
    "JobAccepted": _object({"job_id": _TEXT}),
    "JobCancelled": _object({"job_id": _TEXT, "cancelled": {"type": "boolean"}}),
    "JobResult": _object(
        {
            "job_id": _TEXT,
            "outcome": {"type": "string", "enum": _OUTCOMES},
            "result": {
                "description": "The handler's return value if JSON holds it, "
                "else its repr (a string); null unless the outcome is success."
            },
            "error": _nullable(_TEXT),
            "note": _nullable(
                {**_TEXT, "description": "Why a success's result is not shown."}
            ),
        }
    ),
    "HistoryRow": _object(
        {
            "job_id": _TEXT,
            "schedule_id": _nullable(_TEXT),
            "task": _TEXT,
            "handler": _nullable(_TEXT),
            "scheduled_at": _TIME,
            "started_at": _nullable(_TIME),
            "finished_at": _TIME,
            "duration": _nullable(_NUMBER),
            "outcome": {"type": "string", "enum": _OUTCOMES},
            "error": _nullable(_TEXT),
            "attempt": {"type": "integer", "minimum": 1},
            "final": {"type": "boolean"},
            "reason": _nullable(_TEXT),
            "waited": _nullable(_NUMBER),
            "arguments": _nullable(_TEXT),
            "note": _nullable(_TEXT),
            "traceback": _nullable(_TEXT),
        }
    ),
    "HistoryPage": _object(
        {
            "rows": {"type": "array", "items": _ref("HistoryRow")},
            "next": _nullable({**_TEXT, "description": "The cursor of the next page."}),
        }
    ),
    "DeadLetter": _object(
        {
            "at": _TIME,
            "path": _TEXT,
            "reason": _TEXT,
            "message_type": _TEXT,
            "message": _TEXT,
        }
    ),
    "DeadLetters": _object(
        {
            "total": _COUNT,
            "letters": {"type": "array", "items": _ref("DeadLetter")},
        }
    ),
    "LastRun": _object(
        {
            "job_id": _TEXT,
            "finished_at": _TIME,
            "outcome": {"type": "string", "enum": _OUTCOMES},
            "duration": _nullable({**_NUMBER, "minimum": 0}),
            "attempt": {"type": "integer", "minimum": 1},
        }
    ),
    "ActorDeath": _object(
        {
            "path": _TEXT,
            "name": _TEXT,
            "actor_class": _TEXT,
            "cause": {**_TEXT, "description": "repr of the error that ended it."},
            "died_at": _nullable(_TIME),
            "restarted": {
                "type": "boolean",
                "description": "It came back in place since.",
            },
            "ended": {
                "type": "boolean",
                "description": "It stopped for good instead (neither: a restart "
                "is still to come).",
            },
        }
    ),
    "Deaths": _object(
        {
            "kept": {
                **_COUNT,
                "description": "How many deaths the server keeps, at most.",
            },
            "deaths": {"type": "array", "items": _ref("ActorDeath")},
        }
    ),
    "SeriesSample": _object(
        {
            "seq": {
                "type": "integer",
                "minimum": 1,
                "description": "The sample's number: consecutive.",
            },
            "time": _TIME,
            "finished": {**_COUNT, "description": "Jobs ended in the second."},
            "failed": {**_COUNT, "description": "Of them, those that failed."},
            "fires": {**_COUNT, "description": "Fires' first attempts started."},
            "lateness_mean": _nullable({**_NUMBER, "minimum": 0}),
            "lateness_p50": _nullable({**_NUMBER, "minimum": 0}),
            "lateness_p99": _nullable({**_NUMBER, "minimum": 0}),
        }
    ),
    "Series": _object(
        {
            "interval": {**_NUMBER, "description": "Seconds between two samples."},
            "kept": {**_COUNT, "description": "How many samples are kept, at most."},
            "samples": {"type": "array", "items": _ref("SeriesSample")},
        }
    ),
    **_TESTS_SCHEMAS,
}

#: A schedule as ``GET /api/schedules`` lists it: with its last run.
_SCHEMAS["ListedSchedule"] = _object(
    {
        **_SCHEMAS["Schedule"]["properties"],
        "last_run": _nullable(_ref("LastRun")),
    }
)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


_ERRORS = {
    "401": "A token is set and the request bears neither it nor a session.",
    "413": "The body is larger than web.max_body_bytes.",
    "421": "The Host header names a host the gateway does not answer to.",
    "403": "Refused: mutations are off, or the request's origin is not allowed.",
    "404": "No such resource.",
    "409": "Not possible in the resource's present state; the message says why.",
    "415": "A body of a content type this operation does not take.",
    "422": "A bad parameter or body; the message names the field.",
    "429": "Overloaded: try again after Retry-After seconds.",
    "503": "The scheduler is not running, or too busy to answer.",
    "504": "The job did not end in time; it goes on.",
}


#: What the guards of every request may answer (web.security).
_GUARDS = ("401", "421")
#: ... and of a request with a body.
_BODY_GUARDS = ("413",)


def _operation(
    operation_id: str,
    summary: str,
    ok: tuple[str, dict[str, Any] | None, str],
    *,
    errors: tuple[str, ...] = ("503",),
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    tag: str,
) -> dict[str, Any]:
    status, schema, description = ok
    responses: dict[str, Any] = {
        status: (
            _json(schema, description)
            if schema is not None
            else {"description": description}
        )
    }
    for code in (*errors, *_GUARDS, *(_BODY_GUARDS if body is not None else ())):
        responses[code] = _json(_ref("Error"), _ERRORS[code])
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


def _in_path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def _in_query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_ACTOR_PATH = _in_path(
    "path", "The actor's path without its leading slash: user/handlers/echo."
)
_SCHEDULE_ID = {**_in_path("id", "The schedule's id."), "schema": _ID}
_JOB_ID = {**_in_path("id", "The job's id."), "schema": _ID}


def _kill(action: str) -> dict[str, Any]:
    return {
        "post": _operation(
            f"{action}Actor",
            f"{action.capitalize()} an actor: it crashes, and its supervisor "
            "restarts it.",
            ("202", _ref("ActorAction"), "Killed."),
            errors=("403", "404", "422", "503"),
            parameters=[_ACTOR_PATH],
            tag="actors",
        )
    }


def _replace(schedule: dict[str, Any]) -> dict[str, Any]:
    operation = _operation(
        "replaceSchedule",
        "Replace the schedule (200), or add it (201).",
        ("200", schedule, "Replaced."),
        errors=("422", "429", "503"),
        parameters=[_SCHEDULE_ID],
        body="ScheduleRequest",
        tag="schedules",
    )
    operation["responses"]["201"] = _json(schedule, "Added.")
    return operation


def _events() -> dict[str, Any]:
    operation = _operation(
        "getEvents",
        "The live state as Server-Sent Events: summary, job, schedule, handler "
        "and actor events, each sent only when it changed (polled every "
        "events_interval, 0.5 s by default). A connection, and a reconnection "
        "with Last-Event-ID alike, begins with the current state of each kind "
        "in full; missed intermediate events are not replayed.",
        ("200", None, ""),
        errors=("403", "503"),
        parameters=[
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": "The id of the last event a reconnecting client "
                "got; the stream begins with the current state whatever it is.",
                "schema": _TEXT,
            }
        ],
        tag="summary",
    )
    operation["responses"]["200"] = {
        "description": "A stream of events; each one's data is one line of JSON.",
        # Each event, as clients (and schemathesis) read one: its fields.
        "content": {"text/event-stream": {"schema": _EVENT}},
    }
    return operation


#: One Server-Sent Event of ``/api/events``: a named kind, an id, and one line
#: of JSON as its data.
_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {
            "type": "string",
            "enum": ["summary", "job", "schedule", "handler", "actor"],
        },
        "id": {"type": "string"},
        "data": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["event", "id", "data"],
}


_RUN_ID = {**_in_path("run_id", "The run's id."), "schema": _ID}

#: The events of ``/api/tests/metrics/{run_id}``.
_RUN_EVENT: dict[str, Any] = {
    **_EVENT,
    "properties": {
        **_EVENT["properties"],
        "event": {"type": "string", "enum": ["progress", "fault", "result"]},
    },
}


def _metrics_stream() -> dict[str, Any]:
    operation = _operation(
        "getRunMetrics",
        "A scenario run, live, as Server-Sent Events: progress (a RunProgress) "
        "whenever it changed, looked at four times a second; fault (a timeline "
        "event) as each fault strikes; result (a RunResult) when the run ends, "
        "and then the stream ends. A connection begins with the current "
        "progress and every fault so far; a reconnection with Last-Event-ID "
        "with the current progress alone.",
        ("200", None, ""),
        errors=("403", "404", "422", "503"),
        parameters=[
            _RUN_ID,
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": "Given by a reconnecting client: the stream "
                "begins with the current progress, not the faults before.",
                "schema": _TEXT,
            },
        ],
        tag="tests",
    )
    operation["responses"]["200"] = {
        "description": "A stream of events; each one's data is one line of JSON.",
        "content": {"text/event-stream": {"schema": _RUN_EVENT}},
    }
    return operation


def _load() -> dict[str, Any]:
    operation = _operation(
        "loadScenario",
        "Check a scenario (YAML text) and add it to the library. A scenario "
        "that does not load is a 422 whose message is the loader's "
        "file:line: problem, the file being <api> or the body's source.",
        ("201", _ref("Scenario"), "Loaded (the same text again is the same id)."),
        errors=("403", "413", "415", "422", "503"),
        body="ScenarioText",
        tag="tests",
    )
    content = operation["requestBody"]["content"]
    for kind in sorted(YAML_TYPES):
        content[kind] = {"schema": {"type": "string", "minLength": 1}}
    return operation


def _samples() -> dict[str, Any]:
    operation = _operation(
        "getRunSamples",
        "An ended run's metric samples over time, as CSV: offset,metric,value "
        "(the export of sz scenario run --export FILE.csv).",
        ("200", None, ""),
        errors=("404", "409", "422", "503"),
        parameters=[_RUN_ID],
        tag="tests",
    )
    operation["responses"]["200"] = {
        "description": "The samples.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    return operation


def _tests_paths() -> dict[str, Any]:
    return {
        "/api/tests": {
            "get": _operation(
                "listScenarios",
                "The library: the shipped scenarios, then those loaded.",
                ("200", {"type": "array", "items": _ref("Scenario")}, "The library."),
                tag="tests",
            )
        },
        "/api/tests/load": {"post": _load()},
        "/api/tests/run": {
            "post": _operation(
                "runScenario",
                "Start a run of a library scenario, as /user/scenarios/<run id> "
                "of this server running it in a fresh scheduler of its own.",
                ("202", _ref("RunSummary"), "Started."),
                errors=("403", "404", "422", "429", "503"),
                body="RunRequest",
                tag="tests",
            )
        },
        "/api/tests/schedule": {
            "post": _operation(
                "scheduleScenario",
                "Recurring runs: a schedule of the task sz.scenario whose each "
                "fire starts a run.",
                ("201", _ref("Schedule"), "Scheduled."),
                errors=("403", "404", "409", "422", "429", "503"),
                body="RunScheduleRequest",
                tag="tests",
            )
        },
        "/api/tests/results": {
            "get": _operation(
                "listRuns",
                "Runs, running or ended, newest first: this server's, and those "
                "kept in its store from before a restart (the newest 1,000).",
                ("200", {"type": "array", "items": _ref("RunSummary")}, "The runs."),
                errors=("422", "503"),
                parameters=[
                    _in_query(
                        "scenario",
                        _ID,
                        "Only runs of this scenario: its library id or its name.",
                    ),
                    _in_query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LISTED,
                            "default": KEPT_RESULTS,
                        },
                        "The most runs listed.",
                    ),
                ],
                tag="tests",
            )
        },
        "/api/tests/results/{run_id}": {
            "get": _operation(
                "getRun",
                "A run: where it stands, and its result (the JSON export) once ended.",
                ("200", _ref("RunResult"), "The run."),
                errors=("404", "422", "503"),
                parameters=[_RUN_ID],
                tag="tests",
            )
        },
        "/api/tests/results/{run_id}/csv": {"get": _samples()},
        "/api/tests/metrics/{run_id}": {"get": _metrics_stream()},
        "/api/tests/runs/{run_id}/abort": {
            "post": _operation(
                "abortRun",
                "Stop the run's actor (and with it the run's scheduler): the "
                "run ends aborted. A run already ended is left as it was.",
                ("200", _ref("RunResult"), "The run, ended."),
                errors=("403", "404", "422", "503"),
                parameters=[_RUN_ID],
                tag="tests",
            )
        },
    }


def _paths() -> dict[str, Any]:
    schedule = _ref("Schedule")
    return {
        "/api/summary": {
            "get": _operation(
                "getSummary",
                "The summary bar: counts of jobs, schedules, actors, handlers.",
                ("200", _ref("Summary"), "The summary."),
                tag="summary",
            )
        },
        "/api/openapi.json": {
            "get": _operation(
                "getOpenApi",
                "This document.",
                ("200", {"type": "object"}, "The OpenAPI document."),
                errors=(),
                tag="summary",
            )
        },
        "/api/actors": {
            "get": _operation(
                "getActors",
                "The supervision tree, from /user down.",
                ("200", _ref("Actor"), "The tree."),
                tag="actors",
            )
        },
        "/api/deaths": {
            "get": _operation(
                "getDeaths",
                "The latest crashes of actors, newest first, restarted or not.",
                ("200", _ref("Deaths"), "The deaths."),
                errors=("422", "503"),
                parameters=[
                    _in_query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": DEATHS_KEPT,
                            "default": 100,
                        },
                        "How many.",
                    )
                ],
                tag="actors",
            )
        },
        "/api/series": {
            "get": _operation(
                "getSeries",
                "Throughput and fire lateness, a sample a second, for the last "
                "fifteen minutes.",
                ("200", _ref("Series"), "The samples, oldest first."),
                errors=("422",),
                parameters=[
                    _in_query("since", _TIME, "Only samples taken after this time.")
                ],
                tag="summary",
            )
        },
        "/api/actors/{path}": {
            "get": _operation(
                "getActor",
                "One actor and its children.",
                ("200", _ref("Actor"), "The actor."),
                errors=("404", "422", "503"),
                parameters=[_ACTOR_PATH],
                tag="actors",
            )
        },
        "/api/actors/{path}/kill": _kill("kill"),
        "/api/actors/{path}/restart": _kill("restart"),
        "/api/schedules": {
            "get": _operation(
                "listSchedules",
                "Every schedule, each with its last run.",
                (
                    "200",
                    {"type": "array", "items": _ref("ListedSchedule")},
                    "The schedules.",
                ),
                tag="schedules",
            ),
            "post": _operation(
                "createSchedule",
                "Add a schedule (one of the same id is replaced).",
                ("201", schedule, "Added."),
                errors=("422", "429", "503"),
                body="ScheduleRequest",
                tag="schedules",
            ),
        },
        "/api/schedules/{id}": {
            "get": _operation(
                "getSchedule",
                "One schedule.",
                ("200", schedule, "The schedule."),
                errors=("404", "422", "503"),
                parameters=[_SCHEDULE_ID],
                tag="schedules",
            ),
            "put": _replace(schedule),
            "delete": _operation(
                "deleteSchedule",
                "Remove the schedule.",
                ("204", None, "Removed."),
                errors=("403", "404", "422", "503"),
                parameters=[_SCHEDULE_ID],
                tag="schedules",
            ),
        },
        "/api/schedules/{id}/pause": {
            "post": _operation(
                "pauseSchedule",
                "Pause the schedule.",
                ("200", schedule, "Paused."),
                errors=("404", "422", "503"),
                parameters=[_SCHEDULE_ID],
                tag="schedules",
            )
        },
        "/api/schedules/{id}/resume": {
            "post": _operation(
                "resumeSchedule",
                "Resume the schedule from now on.",
                ("200", schedule, "Resumed."),
                errors=("404", "422", "503"),
                parameters=[_SCHEDULE_ID],
                tag="schedules",
            )
        },
        "/api/schedules/{id}/run": {
            "post": _operation(
                "runSchedule",
                "Submit a job of the schedule's task and arguments now.",
                ("202", _ref("JobAccepted"), "Accepted."),
                errors=("404", "422", "429", "503"),
                parameters=[_SCHEDULE_ID],
                tag="schedules",
            )
        },
        "/api/schedules/{id}/upcoming": {
            "get": _operation(
                "upcomingFires",
                "The schedule's next fire times (none while paused).",
                ("200", _ref("Upcoming"), "The fire times."),
                errors=("404", "422", "503"),
                parameters=[
                    _SCHEDULE_ID,
                    _in_query(
                        "n",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_UPCOMING,
                            "default": 5,
                        },
                        "How many.",
                    ),
                ],
                tag="schedules",
            )
        },
        "/api/handlers": {
            "get": _operation(
                "listHandlers",
                "Every handler, local and remote, with its health.",
                (
                    "200",
                    {"type": "array", "items": _ref("HandlerStatus")},
                    "The handlers.",
                ),
                tag="handlers",
            )
        },
        "/api/governors": {
            "get": _operation(
                "listGovernors",
                "Every limit: rates, tokens, running and waiting jobs.",
                (
                    "200",
                    {"type": "array", "items": _ref("GovernorStatus")},
                    "The limits.",
                ),
                tag="handlers",
            )
        },
        "/api/broker": {
            "get": _operation(
                "getBroker",
                "The endpoint remote workers connect to, and the broker's counters.",
                ("200", _ref("Broker"), "The broker."),
                errors=("404", "503"),
                tag="handlers",
            )
        },
        "/api/jobs": {
            "get": _operation(
                "listJobs",
                "The live jobs: held, waiting (and why), running.",
                ("200", {"type": "array", "items": _ref("JobStatus")}, "The jobs."),
                errors=("422", "503"),
                parameters=[
                    _in_query(
                        "state",
                        {"type": "string", "enum": ["held", "waiting", "running"]},
                        "Only jobs in this state.",
                    )
                ],
                tag="jobs",
            ),
            "post": _operation(
                "submitJob",
                "Accept a job now.",
                ("202", _ref("JobAccepted"), "Accepted."),
                errors=("422", "429", "503"),
                body="JobRequest",
                tag="jobs",
            ),
        },
        "/api/jobs/{id}": {
            "get": _operation(
                "getJob",
                "Where the job stands.",
                ("200", _ref("JobStatus"), "The job."),
                errors=("404", "422", "503"),
                parameters=[_JOB_ID],
                tag="jobs",
            )
        },
        "/api/jobs/{id}/cancel": {
            "post": _operation(
                "cancelJob",
                "Cancel the job if it is live.",
                ("200", _ref("JobCancelled"), "Whether it was cancelled."),
                errors=("404", "422", "503"),
                parameters=[_JOB_ID],
                tag="jobs",
            )
        },
        "/api/jobs/{id}/result": {
            "get": _operation(
                "getJobResult",
                "Wait for the job's end; its outcome and result.",
                ("200", _ref("JobResult"), "The job ended."),
                errors=("404", "422", "503", "504"),
                parameters=[
                    _JOB_ID,
                    _in_query(
                        "timeout",
                        {
                            "type": "number",
                            "minimum": 0,
                            "maximum": MAX_RESULT_WAIT,
                            "default": 10,
                        },
                        "Seconds to wait at most.",
                    ),
                ],
                tag="jobs",
            )
        },
        "/api/history": {
            "get": _operation(
                "getHistory",
                "History rows, newest first, a page at a time.",
                ("200", _ref("HistoryPage"), "A page."),
                errors=("422", "503"),
                parameters=[
                    _in_query("task", _ID, "Only this task's rows."),
                    _in_query("handler", _ID, "Only this handler's rows."),
                    _in_query(
                        "outcome",
                        {"type": "string", "enum": _OUTCOMES},
                        "Only rows with this outcome.",
                    ),
                    _in_query("schedule_id", _ID, "Only this schedule's rows."),
                    _in_query("job_id", _ID, "Only this job's rows."),
                    _in_query("since", _TIME, "Only rows that finished since."),
                    _in_query(
                        "final",
                        {"type": "boolean"},
                        "Only final rows (true) or only the others (false).",
                    ),
                    _in_query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_HISTORY_PAGE,
                            "default": 100,
                        },
                        "Rows in a page.",
                    ),
                    _in_query(
                        "cursor",
                        {"type": "string"},
                        "The page after this cursor (a page's next), with the "
                        "same filters.",
                    ),
                ],
                tag="history",
            )
        },
        "/api/events": {"get": _events()},
        **_tests_paths(),
        "/api/dead-letters": {
            "get": _operation(
                "getDeadLetters",
                "The latest messages no actor processed, newest first.",
                ("200", _ref("DeadLetters"), "The dead letters."),
                errors=("422", "503"),
                parameters=[
                    _in_query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 100,
                        },
                        "How many.",
                    )
                ],
                tag="history",
            )
        },
    }


#: The OpenAPI 3.1 document of the gateway's JSON API.
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "ScheduleZero gateway",
        "version": "1",
        "description": "The JSON API of a running ScheduleZero: its actors, "
        "schedules, handlers, governors, jobs, history and dead letters. Every "
        'error is a JSON body {"error": {"status", "message"}}.',
    },
    # A token, when the server has one: ``Authorization: Bearer <token>``.
    "security": [{}, {"bearer": []}],
    "paths": _paths(),
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
