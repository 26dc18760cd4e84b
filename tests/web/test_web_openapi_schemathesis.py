"""Schemathesis against the live gateway: every operation of ``/api/openapi.json``.

A real ScheduleZero (memory store; a no-op handler, one that fails, one sync)
serves the gateway on a free port, on asyncio in a thread of its own (an AnyIO
blocking portal). Schemathesis loads the document from the live server, not
from ``web.openapi``, generates requests for each operation (valid ones, and
invalid ones that the server must refuse with a documented error), sends them
over a real socket and checks every answer: no 5xx, a documented status, a
documented content type, a body that matches the documented schema.

The test itself is synchronous: schemathesis sends its requests with a
blocking client, which must stay off the event loop. Examples are few per
operation and derandomized, so a run is the same every time and short.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
import requests
import schemathesis
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import web
from sz import ScheduleZero
from web.openapi import OPENAPI

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from schemathesis.specs.openapi.schemas import OpenApiSchema

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

#: Examples per operation and generation mode: enough to find a 500 on a bad
#: parameter, few enough that the run stays within seconds on a small machine.
EXAMPLES = 25

#: The tasks the live scheduler has, and the schedule made at the start: the
#: generated valid requests often name them (drawn at random), so that the
#: routes' success paths are exercised too, not only their 404s and 422s.
TASKS = ("noop", "boom", "blocking")
SCHEDULE_ID = "every-hour"
ACTOR_PATHS = ("user/handlers/noop", "user/handlers/boom", "user/dispatcher")

#: Generated kills and restarts are never aimed at live actors (they miss: 404
#: or 422). A few kills of /user/dispatcher in a row exceed /user's restart
#: intensity and stop the whole scheduler (ActorKilled is the system's fatal
#: error; the gateway then refuses connections), and tens of kills of a
#: handler bring its supervisor /user/handlers near the same: either would
#: leave the rest of the run meaningless. One kill and one restart of a
#: handler actor are checked by
#: ``test_a_kill_and_a_restart_of_a_live_actor_answer_as_documented``.
KILLS = ("/api/actors/{path}/kill", "/api/actors/{path}/restart")


#: Operations whose answer never ends: schemathesis reads an answer whole before
#: it checks it. The event stream is checked by tests/web/test_web_events.py, a
#: run's metrics stream (which lasts as long as its run) by
#: tests/web/test_web_tests_api.py.
ENDLESS = frozenset({"/api/events", "/api/tests/metrics/{run_id}"})


def cases() -> list[tuple[str, str, str]]:
    """Every (method, path, generation mode) to run.

    Invalid requests only for operations that take something to get wrong (a
    parameter or a body): there is no invalid request of the others.
    """
    found = []
    for path, item in OPENAPI["paths"].items():
        if path in ENDLESS:
            continue
        for method, operation in item.items():
            found.append((method.upper(), path, "positive"))
            if "parameters" in operation or "requestBody" in operation:
                found.append((method.upper(), path, "negative"))
    return found


def live_scheduler() -> ScheduleZero:
    sz = ScheduleZero(store="memory")

    @sz.handler
    async def noop() -> None:
        return None

    @sz.handler
    async def boom() -> None:
        raise RuntimeError("fails on purpose")

    @sz.handler
    def blocking(value: Any = None) -> Any:
        return value

    return sz


@asynccontextmanager
async def served() -> AsyncIterator[str]:
    sz = live_scheduler()
    async with sz, web.serve(sz, web.GatewaySettings(port=0)) as url:
        await sz.schedule("noop", "interval", hours=1, id=SCHEDULE_ID)
        yield url


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    """The URL of a live gateway, served on asyncio in a thread of its own."""
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(served()) as url,
    ):
        yield url


@pytest.fixture(scope="module")
def schema(live_url: str) -> OpenApiSchema:
    """The document as the live server serves it."""
    return schemathesis.openapi.from_url(f"{live_url}/api/openapi.json", timeout=10)


def test_the_live_document_is_web_openapi(schema: OpenApiSchema) -> None:
    assert schema.raw_schema == OPENAPI


def _aim(
    path: str, case: Any, task: str | None, target: str | None, actor: str | None
) -> None:
    """Point a generated request at things that exist, when drawn to."""
    if task is not None and isinstance(case.body, dict) and "task" in case.body:
        case.body["task"] = task
    parameters = case.path_parameters or {}
    if target is not None and "id" in parameters:
        parameters["id"] = target
    if actor is not None and "path" in parameters and path not in KILLS:
        parameters["path"] = actor


@pytest.mark.parametrize(("method", "path", "mode"), cases())
def test_every_operation_answers_as_documented(
    schema: OpenApiSchema, live_url: str, method: str, path: str, mode: str
) -> None:
    operation = schema[path][method]
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))
    with requests.Session() as session:

        @given(
            case=strategy,
            task=st.sampled_from((None, *TASKS)),
            target=st.sampled_from((None, SCHEDULE_ID)),
            actor=st.sampled_from((None, *ACTOR_PATHS)),
        )
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(
            case: Any, task: str | None, target: str | None, actor: str | None
        ) -> None:
            if mode == "positive":
                _aim(path, case, task, target, actor)
            case.call_and_validate(
                base_url=live_url, session=session, checks=CHECKS, timeout=10
            )

        try:
            check()
        except Unsatisfiable:
            # Invalid values of its parameters cannot be sent at all (an
            # empty path segment): no invalid request of it exists.
            assert mode == "negative"
            pytest.skip(f"no invalid request of {method} {path} can be sent")


@pytest.mark.parametrize("path", KILLS)
def test_a_kill_and_a_restart_of_a_live_actor_answer_as_documented(
    schema: OpenApiSchema, live_url: str, path: str
) -> None:
    case = schema[path]["POST"].Case(path_parameters={"path": "user/handlers/noop"})
    response = case.call_and_validate(base_url=live_url, checks=CHECKS, timeout=10)
    assert response.status_code == 202
