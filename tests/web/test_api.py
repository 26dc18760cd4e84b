"""The JSON API's routes against a real scheduler, served on loopback.

The application here is the least that serves ``add_api_routes``: the
scheduler's ``SchedulerAccess``, and ``MUTATIONS`` when a test sets it; the
client is a real ``aiohttp.ClientSession``. Pinned to asyncio: aiohttp runs on
asyncio only, and the trio host (aiohttp in a thread of its own, calling in
through a portal) is ``web.server``'s part, tested with it.

Every answer the client gets is checked against the OpenAPI document: its
status must be one the operation lists, and its body must match that status's
schema. So each test of a route also tests the document.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import jsonschema
import pytest
from aiohttp import web

from actors.testing import wait_until
from sz import BrokerSettings, JobFailed, ScheduleZero
from web.access import ACCESS, SchedulerAccess
from web.api import MUTATIONS, add_api_routes
from web.app import ROUTES
from web.openapi import OPENAPI

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp is asyncio-only; the trio host is tested with ``web.server``."""
    return "asyncio"


def _template_pattern(template: str) -> re.Pattern[str]:
    """A path template as a regex: ``{path}`` spans slashes, other names do not."""
    pattern = re.escape(template)
    pattern = pattern.replace(r"\{path\}", "(.+)")
    pattern = re.sub(r"\\\{[a-z_]+\\\}", "([^/]+)", pattern)
    return re.compile(pattern + "$")


#: The document's path templates, the most specific first (``.../kill`` before
#: ``{path}``).
_TEMPLATES = sorted(
    ((template, _template_pattern(template)) for template in OPENAPI["paths"]),
    key=lambda item: (item[0].endswith("{path}"), -len(item[0])),
)


def operation_of(method: str, path: str) -> dict[str, Any]:
    """The OpenAPI operation that a request to ``path`` reaches."""
    for template, pattern in _TEMPLATES:
        if pattern.match(path):
            operations = OPENAPI["paths"][template]
            assert method.lower() in operations, f"{method} {template} not documented"
            operation: dict[str, Any] = operations[method.lower()]
            return operation
    raise AssertionError(f"no path of the document matches {path}")


def check_answer(method: str, path: str, status: int, body: Any) -> None:
    """Fail unless the document lists ``status`` for the operation and ``body``
    matches its schema."""
    responses = operation_of(method, path)["responses"]
    response = responses.get(str(status))
    assert response is not None or status >= 400, (
        f"{method} {path} answered {status}, which the document does not list"
    )
    if response is None:
        response = responses["default"]
    content = response.get("content")
    if content is None:
        assert body is None, f"{method} {path} {status} has a body: {body!r}"
        return
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": OPENAPI["components"],
        **content["application/json"]["schema"],
    }
    jsonschema.validate(
        body, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


class Api:
    """A client of one served API: each call returns ``(status, JSON body)``."""

    def __init__(self, session: aiohttp.ClientSession, app: web.Application) -> None:
        self.session = session
        self.app = app

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, path, json=json, data=data, params=params
        ) as response:
            if response.status == 204:
                assert await response.read() == b""
                body = None
            else:
                assert response.content_type == "application/json", (
                    await response.text()
                )
                body = await response.json()
        check_answer(method, path, response.status, body)
        return response.status, body

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, json: Any = None) -> tuple[int, Any]:
        return await self.request("POST", path, json=json)

    async def put(self, path: str, json: Any = None) -> tuple[int, Any]:
        return await self.request("PUT", path, json=json)

    async def delete(self, path: str) -> tuple[int, Any]:
        return await self.request("DELETE", path)


@asynccontextmanager
async def served(
    sz: ScheduleZero, *, mutations: bool | None = None
) -> AsyncIterator[Api]:
    """Serve the API of the running ``sz`` on 127.0.0.1, any free port."""
    app = web.Application()
    app[ACCESS] = SchedulerAccess(sz)
    if mutations is not None:
        app[MUTATIONS] = mutations
    add_api_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            yield Api(session, app)
    finally:
        await runner.cleanup()


class Gate:
    """What a handler waits on: the test lets it through."""

    def __init__(self) -> None:
        self.open = anyio.Event()
        self.started = 0

    async def enter(self) -> str:
        self.started += 1
        await self.open.wait()
        return "through"


def scheduler(store: str = "memory", **kwargs: Any) -> tuple[ScheduleZero, Gate]:
    """A scheduler with ``echo``, ``fail``, ``odd`` and the ``gated`` handler."""
    sz = ScheduleZero(store=store, **kwargs)
    gate = Gate()

    @sz.handler
    async def echo(value: Any = None) -> Any:
        return value

    @sz.handler
    async def fail() -> None:
        raise ValueError("on purpose")

    @sz.handler
    async def odd() -> object:
        return {1, 2}

    sz.handler(gate.enter, name="gated")
    return sz, gate


# ------------------------------------------------------------------- actors


async def test_the_actor_tree_and_one_actor_are_served() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, tree = await api.get("/api/actors")
        assert status == 200
        assert tree["path"] == "/user"
        names = [child["name"] for child in tree["children"]]
        assert {"history", "dispatcher", "handlers"} <= set(names)
        status, echo = await api.get("/api/actors/user/handlers/echo")
        assert status == 200
        assert (echo["path"], echo["state"], echo["children"]) == (
            "/user/handlers/echo",
            "running",
            [],
        )
        # A client that encodes the slashes of the path reaches it too.
        status, same = await api.get("/api/actors/user%2Fhandlers%2Fecho")
        assert (status, same["path"]) == (200, "/user/handlers/echo")


async def test_unknown_actors_are_404_for_reads_and_kills() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        for method in ("GET", "POST"):
            suffix = "" if method == "GET" else "/kill"
            status, body = await api.request(
                method, f"/api/actors/user/handlers/nobody{suffix}"
            )
            assert status == 404
            assert body["error"]["message"] == "no actor at /user/handlers/nobody"


@pytest.mark.parametrize("action", ["kill", "restart"])
async def test_killing_an_actor_from_the_api_makes_its_supervisor_restart_it(
    action: str,
) -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, body = await api.post(f"/api/actors/user/handlers/echo/{action}")
        assert (status, body) == (
            202,
            {"path": "/user/handlers/echo", "action": action},
        )

        async def restarted() -> bool:
            _, echo = await api.get("/api/actors/user/handlers/echo")
            return bool(echo["restarts"] == 1 and echo["state"] == "running")

        await wait_until(restarted)
        _, echo = await api.get("/api/actors/user/handlers/echo")
        assert "from the gateway" in echo["last_error"]
        # It serves again.
        _, accepted = await api.post("/api/jobs", {"task": "echo", "args": [1]})
        _, result = await api.get(f"/api/jobs/{accepted['job_id']}/result")
        assert (result["outcome"], result["result"]) == ("success", 1)


async def test_a_killed_actor_is_listed_among_the_deaths_with_its_cause() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, body = await api.get("/api/deaths")
        assert (status, body["deaths"]) == (200, [])
        await api.post("/api/actors/user/handlers/echo/kill")

        async def restarted() -> bool:
            _, body = await api.get("/api/deaths")
            return bool(body["deaths"] and body["deaths"][0]["restarted"])

        await wait_until(restarted)
        status, body = await api.get("/api/deaths", limit="1")
        assert status == 200
        [death] = body["deaths"]
        assert (death["path"], death["name"], death["ended"]) == (
            "/user/handlers/echo",
            "echo",
            False,
        )
        assert death["cause"] == "ActorKilled('killed from the gateway')"
        assert body["kept"] >= 100
        status, body = await api.get("/api/deaths", limit="0")
        assert status == 422
        assert body["error"]["message"].startswith("query parameter 'limit'")


async def test_the_root_guardian_cannot_be_killed() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, body = await api.post("/api/actors/user/kill")
        assert status == 422
        assert body["error"]["message"].startswith("path: ")


async def test_with_mutations_off_kill_restart_and_delete_are_refused_with_403() -> (
    None
):
    sz, _ = scheduler()
    async with sz, served(sz, mutations=False) as api:
        await sz.schedule("echo", "cron", minute=0, id="hourly")
        for method, path in [
            ("POST", "/api/actors/user/handlers/echo/kill"),
            ("POST", "/api/actors/user/handlers/echo/restart"),
            ("DELETE", "/api/schedules/hourly"),
        ]:
            status, body = await api.request(method, path)
            assert status == 403, path
            assert "mutations" in body["error"]["message"]
        # Nothing happened; other changes are still allowed.
        _, echo = await api.get("/api/actors/user/handlers/echo")
        assert echo["restarts"] == 0
        status, _ = await api.post("/api/schedules/hourly/pause")
        assert status == 200
        assert [s.id for s in await sz.schedules()] == ["hourly"]


# ---------------------------------------------------------------- schedules


async def test_a_schedule_is_created_read_replaced_paused_resumed_run_and_deleted() -> (
    None
):
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, created = await api.post(
            "/api/schedules",
            {
                "task": "echo",
                "trigger": "cron",
                "fields": {"hour": 9, "minute": 30, "timezone": "UTC"},
                "args": ["morning"],
                "id": "morning",
                "coalesce": "earliest",
                "misfire_grace_time": 60,
            },
        )
        assert status == 201
        assert (created["id"], created["task"], created["args"]) == (
            "morning",
            "echo",
            ["morning"],
        )
        assert created["coalesce"] == "earliest"
        assert created["next_fire_time"].endswith("09:30:00+00:00")

        status, listed = await api.get("/api/schedules")
        assert (status, listed) == (200, [{**created, "last_run": None}])
        assert await api.get("/api/schedules/morning") == (200, created)

        status, replaced = await api.put(
            "/api/schedules/morning",
            {"task": "echo", "trigger": "*/5 * * * *", "kwargs": {"value": 2}},
        )
        assert status == 200
        assert (replaced["kwargs"], replaced["coalesce"]) == ({"value": 2}, "latest")
        status, added = await api.put(
            "/api/schedules/other", {"task": "echo", "fields": {"hour": 1}}
        )
        assert (status, added["id"]) == (201, "other")

        status, paused = await api.post("/api/schedules/morning/pause")
        assert (status, paused["paused"], paused["paused_reason"]) == (
            200,
            True,
            "requested",
        )
        status, resumed = await api.post("/api/schedules/morning/resume")
        assert (status, resumed["paused"]) == (200, False)

        status, accepted = await api.post("/api/schedules/morning/run")
        assert status == 202
        status, result = await api.get(f"/api/jobs/{accepted['job_id']}/result")
        assert (status, result["outcome"], result["result"]) == (200, "success", 2)

        assert await api.delete("/api/schedules/morning") == (204, None)
        status, _ = await api.get("/api/schedules/morning")
        assert status == 404
        assert [s.id for s in await sz.schedules()] == ["other"]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_the_schedules_list_gives_each_schedules_last_run(
    store: str, tmp_path: Path
) -> None:
    sz, _ = scheduler(
        "memory" if store == "memory" else f"sqlite:///{tmp_path / 'sz.db'}"
    )
    now = datetime.now(UTC).isoformat()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with sz, served(sz) as api:
        for schedule_id, task in (("ok", "echo"), ("bad", "fail")):
            await api.post(
                "/api/schedules",
                {
                    "id": schedule_id,
                    "task": task,
                    "trigger": "date",
                    "fields": {"run_time": now},
                },
            )
        await api.post(
            "/api/schedules",
            {
                "id": "idle",
                "task": "echo",
                "trigger": "date",
                "fields": {"run_time": later},
                "paused": True,
            },
        )

        async def both_ran() -> bool:
            _, listed = await api.get("/api/schedules")
            last = {s["id"]: s["last_run"] for s in listed}
            return bool(last.get("ok") and last.get("bad"))

        await wait_until(both_ran)
        status, listed = await api.get("/api/schedules")
        [row] = await sz.history(schedule_id="ok", final=True, limit=1)
    assert status == 200
    last = {s["id"]: s["last_run"] for s in listed}
    assert last["idle"] is None
    assert (last["ok"]["outcome"], last["bad"]["outcome"]) == ("success", "failure")
    assert last["ok"]["job_id"] == row.job_id
    assert last["ok"]["finished_at"] == row.finished_at.isoformat()


async def test_unknown_schedule_ids_are_404_on_every_route() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        for method, suffix in [
            ("GET", ""),
            ("DELETE", ""),
            ("POST", "/pause"),
            ("POST", "/resume"),
            ("POST", "/run"),
            ("GET", "/upcoming"),
        ]:
            status, body = await api.request(method, f"/api/schedules/nope{suffix}")
            assert status == 404, (method, suffix)
            assert body == {
                "error": {"status": 404, "message": "no schedule with id 'nope'"}
            }


async def test_upcoming_lists_the_next_fire_times_of_a_schedule() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        # Once a year at New Year: an interval's first fire is now, and a fire
        # between the two reads moved every later read on by one.
        await api.post(
            "/api/schedules",
            {
                "task": "echo",
                "trigger": "cron",
                "fields": {"month": 1, "day": 1, "hour": 0, "minute": 0},
                "id": "i",
            },
        )
        status, five = await api.get("/api/schedules/i/upcoming")
        assert status == 200
        assert len(five["fire_times"]) == 5
        _, three = await api.get("/api/schedules/i/upcoming", n="3")
        assert three["fire_times"] == five["fire_times"][:3]
        expected = await sz.upcoming("i", 3)
        assert three["fire_times"] == [fire.isoformat() for fire in expected]
        for bad in ("0", "101", "x", "2.5"):
            status, body = await api.get("/api/schedules/i/upcoming", n=bad)
            assert status == 422
            assert body["error"]["message"].startswith("query parameter 'n'")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.task"),
        ({"task": 5}, "body.task"),
        ({"task": "echo", "trigger": 3}, "body.trigger"),
        ({"task": "echo", "fields": []}, "body.fields"),
        ({"task": "echo", "fields": {"id": "x"}}, "body.fields.id"),
        ({"task": "echo", "fields": {"hour": [1]}}, "body.fields.hour"),
        ({"task": "echo", "args": "x"}, "body.args"),
        ({"task": "echo", "kwargs": [1]}, "body.kwargs"),
        ({"task": "echo", "paused": "yes"}, "body.paused"),
        ({"task": "echo", "coalesce": "most"}, "body.coalesce"),
        ({"task": "echo", "misfire_grace_time": -1}, "body.misfire_grace_time"),
        ({"task": "echo", "affinity": 1}, "body.affinity"),
        ({"task": "echo", "colour": "red"}, "body.colour"),
        ([1, 2], "body"),
    ],
)
async def test_a_bad_schedule_body_is_422_naming_the_field(
    body: Any, field: str
) -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, answer = await api.post("/api/schedules", body)
    assert status == 422
    assert answer["error"]["message"].startswith(f"{field}: ")


async def test_what_the_scheduler_refuses_in_a_schedule_is_422_with_its_message() -> (
    None
):
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, answer = await api.post("/api/schedules", {"task": "nobody"})
        assert status == 422
        assert "no handler for task 'nobody'" in answer["error"]["message"]
        status, answer = await api.post(
            "/api/schedules", {"task": "echo", "fields": {"hour": "x"}}
        )
        assert status == 422
        assert "bad cron trigger" in answer["error"]["message"]
        status, answer = await api.post(
            "/api/schedules", {"task": "echo", "args": [1, 2, 3]}
        )
        assert status == 422
        assert "do not fit task 'echo'" in answer["error"]["message"]
        status, answer = await api.request("POST", "/api/schedules", data=b"{nope")
        assert (status, answer["error"]["message"]) == (
            422,
            "body: is not valid JSON",
        )
        status, answer = await api.put("/api/schedules/a", {"task": "echo", "id": "b"})
        assert status == 422
        assert answer["error"]["message"].startswith("body.id: ")
        assert await sz.schedules() == []


# --------------------------------------------------------------------- jobs


async def test_a_submitted_job_gives_its_status_and_result() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, accepted = await api.post(
            "/api/jobs", {"task": "echo", "kwargs": {"value": {"a": [1, "b"]}}}
        )
        assert status == 202
        job_id = accepted["job_id"]
        status, result = await api.get(f"/api/jobs/{job_id}/result", timeout="5")
        assert (status, result) == (
            200,
            {
                "job_id": job_id,
                "outcome": "success",
                "result": {"a": [1, "b"]},
                "error": None,
                "note": None,
            },
        )
        status, job = await api.get(f"/api/jobs/{job_id}")
        assert status == 200
        assert (job["state"], job["outcome"], job["handler"]) == (
            "ended",
            "success",
            "echo",
        )
        # The caller's id is an idempotency key.
        first = await api.post("/api/jobs", {"task": "echo", "job_id": "mine"})
        again = await api.post("/api/jobs", {"task": "echo", "job_id": "mine"})
        assert first == again == (202, {"job_id": "mine"})


async def test_a_result_json_cannot_hold_is_its_repr_and_a_failure_is_an_outcome() -> (
    None
):
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        _, odd = await api.post("/api/jobs", {"task": "odd"})
        _, result = await api.get(f"/api/jobs/{odd['job_id']}/result")
        assert (result["outcome"], result["result"]) == ("success", "{1, 2}")
        _, failed = await api.post("/api/jobs", {"task": "fail"})
        status, result = await api.get(f"/api/jobs/{failed['job_id']}/result")
        assert status == 200
        assert (result["outcome"], result["result"]) == ("failure", None)
        assert "on purpose" in result["error"]


async def test_a_job_that_does_not_end_in_time_is_504_and_can_be_cancelled() -> None:
    sz, gate = scheduler()
    async with sz, served(sz) as api:
        _, running = await api.post("/api/jobs", {"task": "gated"})
        _, waiting = await api.post("/api/jobs", {"task": "gated"})
        await wait_until(lambda: gate.started == 1)
        status, body = await api.get(
            f"/api/jobs/{running['job_id']}/result", timeout="0.05"
        )
        assert status == 504
        assert "did not end within" in body["error"]["message"]

        status, live = await api.get("/api/jobs")
        assert status == 200
        assert {(j["id"], j["state"]) for j in live} == {
            (running["job_id"], "running"),
            (waiting["job_id"], "waiting"),
        }
        _, only = await api.get("/api/jobs", state="waiting")
        assert [(j["id"], j["why"]) for j in only] == [
            (waiting["job_id"], "handlers_busy")
        ]

        status, cancelled = await api.post(f"/api/jobs/{waiting['job_id']}/cancel")
        assert (status, cancelled["cancelled"]) == (200, True)
        _, again = await api.post(f"/api/jobs/{waiting['job_id']}/cancel")
        assert again["cancelled"] is False
        gate.open.set()
        _, result = await api.get(f"/api/jobs/{running['job_id']}/result")
        assert (result["outcome"], result["result"]) == ("success", "through")
        _, ended = await api.get(f"/api/jobs/{waiting['job_id']}/result")
        assert ended["outcome"] == "cancelled"


async def test_unknown_jobs_are_404() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        for method, suffix in [("GET", ""), ("POST", "/cancel"), ("GET", "/result")]:
            status, body = await api.request(method, f"/api/jobs/nope{suffix}")
            assert (status, body["error"]["message"]) == (404, "no job 'nope' here")


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "field"),
    [
        ("POST", "/api/jobs", {"args": []}, None, "body.task"),
        ("POST", "/api/jobs", {"task": "echo", "wait": -1}, None, "body.wait"),
        ("POST", "/api/jobs", {"task": "echo", "wait": True}, None, "body.wait"),
        ("POST", "/api/jobs", {"task": "echo", "job_id": ""}, None, "body.job_id"),
        ("POST", "/api/jobs", {"task": "echo", "kwargs": 1}, None, "body.kwargs"),
        ("POST", "/api/jobs", {"task": "echo", "x": 1}, None, "body.x"),
        ("GET", "/api/jobs", None, {"state": "ended"}, "query parameter 'state'"),
        (
            "GET",
            "/api/jobs/j/result",
            None,
            {"timeout": "-1"},
            "query parameter 'timeout'",
        ),
        (
            "GET",
            "/api/jobs/j/result",
            None,
            {"timeout": "nan"},
            "query parameter 'timeout'",
        ),
        ("GET", "/api/history", None, {"limit": "0"}, "query parameter 'limit'"),
        ("GET", "/api/history", None, {"limit": "1001"}, "query parameter 'limit'"),
        ("GET", "/api/history", None, {"outcome": "fine"}, "query parameter 'outcome'"),
        ("GET", "/api/history", None, {"final": "maybe"}, "query parameter 'final'"),
        ("GET", "/api/history", None, {"since": "today"}, "query parameter 'since'"),
        ("GET", "/api/history", None, {"cursor": "!!"}, "query parameter 'cursor'"),
        ("GET", "/api/history", None, {"cursor": "WzFd"}, "query parameter 'cursor'"),
        ("GET", "/api/history", None, {"task": ""}, "query parameter 'task'"),
        ("GET", "/api/dead-letters", None, {"limit": "x"}, "query parameter 'limit'"),
    ],
)
async def test_a_bad_job_or_query_is_422_naming_the_field(
    method: str,
    path: str,
    body: Any,
    params: dict[str, str] | None,
    field: str,
) -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, answer = await api.request(method, path, json=body, params=params)
    assert status == 422
    assert answer["error"]["message"].startswith(f"{field}: ")


async def test_a_job_of_an_unknown_task_or_bad_arguments_is_422() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, body = await api.post("/api/jobs", {"task": "nobody"})
        assert status == 422
        assert "no handler for task 'nobody'" in body["error"]["message"]
        status, body = await api.post("/api/jobs", {"task": "fail", "args": [1]})
        assert status == 422
        assert "do not fit task 'fail'" in body["error"]["message"]


# ------------------------------------------- handlers, governors, the broker


async def test_handlers_and_governors_are_served_with_their_health_and_limits() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        _, accepted = await api.post("/api/jobs", {"task": "echo"})
        await api.get(f"/api/jobs/{accepted['job_id']}/result")
        status, handlers = await api.get("/api/handlers")
        assert status == 200
        echo = next(h for h in handlers if h["name"] == "echo")
        assert (echo["kind"], echo["concurrency"], echo["busy"]) == ("local", 1, 0)
        assert echo["health"]["state"] == "healthy"
        assert echo["health"]["successes"] == 1
        assert 0 <= echo["health"]["heartbeat_age"] < 60
        assert {h["name"] for h in handlers} == {"echo", "fail", "odd", "gated"}
        status, governors = await api.get("/api/governors")
        assert status == 200
        assert "global" in {g["name"] for g in governors}


async def test_the_broker_is_404_without_one_and_shows_its_endpoint_with_one() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        status, body = await api.get("/api/broker")
        assert status == 404
        assert "no broker" in body["error"]["message"]
    with_broker, _ = scheduler(broker=BrokerSettings(endpoint="tcp://127.0.0.1:*"))
    async with with_broker, served(with_broker) as api:
        status, broker = await api.get("/api/broker")
    assert status == 200
    assert broker["endpoint"].startswith("tcp://127.0.0.1:")
    assert broker["stats"]["registered"] == 0


# ------------------------------------------------------------------ history


async def test_history_pages_with_the_cursor_without_repeats_or_gaps(
    tmp_path: Path,
) -> None:
    sz, _ = scheduler(f"sqlite:///{tmp_path / 'sz.db'}")
    async with sz, served(sz) as api:
        for n in range(25):
            await sz.run_now("echo", args=[n])
        await sz.run_now("echo", args=["other"], affinity="x")
        with pytest.raises(JobFailed, match="ended with failure"):
            await sz.run_now("fail")
        expected = await sz.history(task="echo", limit=1000)
        assert len(expected) == 26

        pages: list[list[dict[str, Any]]] = []
        cursor: str | None = None
        while True:
            params = {"task": "echo", "limit": "10"}
            if cursor is not None:
                params["cursor"] = cursor
            status, page = await api.get("/api/history", **params)
            assert status == 200
            pages.append(page["rows"])
            cursor = page["next"]
            if cursor is None:
                break
    assert [len(page) for page in pages] == [10, 10, 6]
    rows = [row for page in pages for row in page]
    assert [(r["job_id"], r["attempt"]) for r in rows] == [
        (r.job_id, r.attempt) for r in expected
    ]
    assert rows[0]["arguments"] == "('other',), {}"
    assert rows[-1]["arguments"] == "(0,), {}"


async def test_history_filters_and_shows_a_failure_with_its_traceback() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        await sz.run_now("echo", args=[1])
        with pytest.raises(JobFailed, match="ended with failure"):
            await sz.run_now("fail")
        status, page = await api.get("/api/history", outcome="failure", final="true")
        assert status == 200
        assert page["next"] is None
        [row] = page["rows"]
        assert (row["task"], row["outcome"], row["final"]) == ("fail", "failure", True)
        assert "ValueError" in row["error"]
        assert "on purpose" in row["traceback"]
        _, recent = await api.get("/api/history", since=row["finished_at"])
        assert row in recent["rows"]
        _, none = await api.get("/api/history", final="false")
        assert none["rows"] == []


# ------------------------------------------------------------- dead letters


async def test_dead_letters_show_messages_sent_to_a_stopped_actor() -> None:
    sz, _ = scheduler()
    async with sz, served(sz) as api:
        ref = sz.system.lookup("/user/handlers/echo")
        assert ref is not None
        # Replaced by a plain stop: the handler's messages then go nowhere.
        await ref.stop()
        ref.tell("lost")

        async def kept() -> bool:
            _, body = await api.get("/api/dead-letters")
            return bool(body["letters"])

        await wait_until(kept)
        status, body = await api.get("/api/dead-letters", limit="1")
    assert status == 200
    assert body["total"] >= 1
    [letter] = body["letters"]
    assert (letter["path"], letter["reason"], letter["message"]) == (
        "/user/handlers/echo",
        "stopped",
        "'lost'",
    )


# ------------------------------------------------------------------ openapi


def test_the_openapi_document_lists_every_route_and_only_those() -> None:
    app = web.Application()
    for add_routes in ROUTES:
        add_routes(app)
    routes = {
        (route.method, route.resource.canonical.replace("{path:.+}", "{path}"))
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical.startswith("/api/")
    }
    for route in app.router.routes():
        assert route.resource is not None
    documented = {
        (method.upper(), path)
        for path, operations in OPENAPI["paths"].items()
        for method in operations
    }
    assert routes == documented
    ids = [
        operation["operationId"]
        for operations in OPENAPI["paths"].values()
        for operation in operations.values()
    ]
    assert len(ids) == len(set(ids))
    for name in (
        "Schedule",
        "JobStatus",
        "HistoryRow",
        "HandlerStatus",
        "GovernorStatus",
        "Actor",
        "Error",
    ):
        assert name in OPENAPI["components"]["schemas"]
