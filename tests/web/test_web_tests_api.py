"""``/api/tests``: scenario runs inside a server, on asyncio and trio.

A real ScheduleZero serves the real gateway on loopback (``web.serve``: on
asyncio it shares the loop, under trio it runs in a thread of its own); the
client is the standard library's, in worker threads. Every wait is on what the
server says, polled with a deadline.
"""

from __future__ import annotations

import json
import time
from http.client import HTTPConnection, HTTPResponse
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import attrs
from web_http import Answer, http

import web
from actors.testing import wait_until
from sz import ScheduleZero

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

DEADLINE = 30.0

PASSING = """\
test:
  name: small
  parameters: {naps: 2}
  setup: {handlers: [noop]}
  steps:
    - name: load
      type: action
      action: {method: submit_jobs, args: {task: noop, count: 10}}
    - name: naps
      type: loop
      iterations: ${naps}
      steps: [{type: sleep, duration: 20ms}]
    - {name: settle, type: wait_until, condition: jobs_pending == 0, timeout: 10s}
  checks: [no_lost_jobs]
  metrics: [jobs_per_sec, {memory_usage: MB}]
  assertions: [lost_jobs == 0]
"""

FAILING = """\
test:
  name: never_settles
  setup: {handlers: [noop]}
  steps:
    - {name: never, type: wait_until, condition: "jobs_pending > 5", timeout: 200ms}
"""

#: Runs until stopped (a few minutes), killing its own handler now and then.
ENDLESS = """\
test:
  name: endless
  parameters: {rounds: 2000}
  setup: {handlers: [noop]}
  steps:
    - name: chaos
      type: loop
      iterations: ${rounds}
      steps:
        - {type: chaos, fault: kill_actor, target: "/user/handlers/noop"}
        - {type: sleep, duration: 100ms}
"""


def settings(**more: Any) -> web.GatewaySettings:
    return web.GatewaySettings(port=0, **more)


async def load(url: str, text: str) -> str:
    answer = await http(
        "POST",
        f"{url}/api/tests/load",
        body=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert answer.status == 201, answer.body
    scenario_id: str = answer.json()["id"]
    return scenario_id


async def start(url: str, scenario_id: str, **more: Any) -> str:
    answer = await http(
        "POST", f"{url}/api/tests/run", json={"id": scenario_id, **more}
    )
    assert answer.status == 202, answer.body
    run_id: str = answer.json()["run_id"]
    return run_id


async def result_of(url: str, run_id: str) -> dict[str, Any]:
    answer = await http("GET", f"{url}/api/tests/results/{run_id}")
    assert answer.status == 200, answer.body
    found: dict[str, Any] = answer.json()
    return found


async def ended(url: str, run_id: str) -> dict[str, Any]:
    """The run's result once it has ended."""
    seen: list[dict[str, Any]] = []

    async def done() -> bool:
        seen.append(await result_of(url, run_id))
        return bool(seen[-1]["state"] != "running")

    await wait_until(done, timeout=DEADLINE, interval=0.05)
    return seen[-1]


async def actor_at(url: str, path: str) -> Answer:
    return await http("GET", f"{url}/api/actors{path}")


# --------------------------------------------------------------------- library


async def test_the_library_lists_the_shipped_scenarios_and_those_loaded() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        answer = await http("GET", f"{url}/api/tests")
        assert answer.status == 200
        shipped = {entry["id"]: entry for entry in answer.json()}
        assert "chaos_kill_actors" in shipped
        assert shipped["chaos_kill_actors"]["source"] == "shipped"
        assert shipped["chaos_kill_actors"]["parameters"]
        scenario_id = await load(url, PASSING)
        # As JSON too; the same text is the same entry.
        again = await http(
            "POST", f"{url}/api/tests/load", json={"yaml": PASSING, "source": "x.yaml"}
        )
        assert again.status == 201
        assert again.json()["id"] == scenario_id
        answer = await http("GET", f"{url}/api/tests")
        [loaded] = [e for e in answer.json() if e["source"] == "loaded"]
    assert loaded["id"] == scenario_id
    assert loaded["name"] == "small"
    assert loaded["parameters"] == {"naps": 2}
    assert loaded["units"] == {"memory_usage": "MB"}
    assert loaded["yaml"] == PASSING


async def test_a_bad_scenario_is_refused_with_the_loaders_file_line_and_problem() -> (
    None
):
    sz = ScheduleZero()
    bad = PASSING.replace("type: loop", "type: lop")
    async with sz, web.serve(sz, settings()) as url:
        as_yaml = await http(
            "POST",
            f"{url}/api/tests/load",
            body=bad.encode(),
            headers={"Content-Type": "text/yaml"},
        )
        as_json = await http(
            "POST",
            f"{url}/api/tests/load",
            json={"yaml": bad, "source": "storm.yaml"},
        )
        as_form = await http(
            "POST",
            f"{url}/api/tests/load",
            body=b"yaml=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        unknown = await http(
            "POST", f"{url}/api/tests/run", json={"id": "no-such-scenario"}
        )
    assert as_yaml.status == 422
    message = as_yaml.json()["error"]["message"]
    assert message.startswith("<api>:10:13: unknown step type 'lop'"), message
    assert as_json.status == 422
    assert as_json.json()["error"]["message"].startswith("storm.yaml:10:13: ")
    assert as_form.status == 415
    assert unknown.status == 404
    assert "no-such-scenario" in unknown.json()["error"]["message"]


# ------------------------------------------------------------------------ runs


async def test_a_run_passes_and_its_result_is_the_export_with_its_state() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        scenario_id = await load(url, PASSING)
        run_id = await start(url, scenario_id, params={"naps": "3"}, seed=7)
        result = await ended(url, run_id)
        listed = (await http("GET", f"{url}/api/tests/results")).json()
        samples = await http("GET", f"{url}/api/tests/results/{run_id}/csv")
        gone = await actor_at(url, f"/user/scenarios/{run_id}")
    assert result["state"] == result["outcome"] == "passed", result["error"]
    assert result["passed"] is True
    assert (result["run_id"], result["seed"], result["parameters"]) == (
        run_id,
        7,
        {"naps": 3},
    )
    assert result["checks"]["no_lost_jobs"]["passed"] is True
    assert result["assertions"] == [
        {"expression": "lost_jobs == 0", "value": True, "passed": True}
    ]
    assert {"jobs_per_sec", "memory_usage", "lost_jobs"} <= set(result["metrics"])
    events = [event["event"] for event in result["timeline"]]
    assert (events[0], events[-1]) == ("run_start", "run_end")
    assert listed[0]["run_id"] == run_id
    assert listed[0]["state"] == "passed"
    assert samples.status == 200
    assert samples.headers["content-type"].startswith("text/csv")
    assert samples.body.decode().splitlines()[0] == "offset,metric,value"
    # The run's actor ended with it.
    assert gone.status == 404


async def test_runs_kept_in_the_store_are_served_after_a_restart(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'sz.db'}"
    first = ScheduleZero(store=store)
    async with first, web.serve(first, settings()) as url:
        scenario_id = await load(url, PASSING)
        run_ids = [await start(url, scenario_id, seed=n) for n in (1, 2)]
        before = [await ended(url, run_id) for run_id in run_ids]
        before_csv = (
            await http("GET", f"{url}/api/tests/results/{run_ids[0]}/csv")
        ).body.decode()
        other = await start(url, await load(url, FAILING))
        await ended(url, other)

    again = ScheduleZero(store=store)
    async with again, web.serve(again, settings()) as url:
        listed = (await http("GET", f"{url}/api/tests/results")).json()
        of_small = await http(
            "GET", f"{url}/api/tests/results?scenario={scenario_id}&limit=1"
        )
        by_name = await http("GET", f"{url}/api/tests/results?scenario=small")
        none = await http("GET", f"{url}/api/tests/results?scenario=nothing")
        bad = await http("GET", f"{url}/api/tests/results?limit=0")
        too_many = await http("GET", f"{url}/api/tests/results?limit=1001")
        one = await result_of(url, run_ids[0])
        samples = await http("GET", f"{url}/api/tests/results/{run_ids[0]}/csv")
        missing = await http("GET", f"{url}/api/tests/results/run-nothing")
    assert [run["run_id"] for run in listed] == [other, run_ids[1], run_ids[0]]
    newest = listed[1]
    assert newest["state"] == newest["outcome"] == "passed"
    assert newest["passed"] is True
    assert newest["units"] == {"memory_usage": "MB"}
    assert set(newest["metrics"]) == {"jobs_per_sec", "memory_usage", "lost_jobs"}
    assert all(isinstance(v, float) for v in newest["metrics"].values())
    assert newest["finished_at"] == before[1]["finished_at"]
    assert listed[0]["outcome"] == "failed"
    assert [run["run_id"] for run in of_small.json()] == [run_ids[1]]
    assert [run["run_id"] for run in by_name.json()] == run_ids[::-1]
    assert none.json() == []
    assert (bad.status, too_many.status) == (422, 422)
    # The whole run, as it was served before the restart.
    assert one["state"] == one["outcome"] == "passed"
    for key in ("metrics", "checks", "assertions", "timeline", "units", "seed"):
        assert one[key] == before[0][key], key
    # The samples over time are kept in the store too: the CSV as before.
    assert samples.status == 200
    assert len(before_csv.splitlines()) > 1
    assert samples.body.decode() == before_csv
    assert missing.status == 404


async def test_a_run_whose_condition_never_holds_ends_failed() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        run_id = await start(url, await load(url, FAILING))
        result = await ended(url, run_id)
    assert result["state"] == "failed"
    assert result["passed"] is False
    assert "wait_until jobs_pending > 5: still false" in result["error"]


async def test_aborting_a_run_ends_it_aborted_and_its_actor_is_gone() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        run_id = await start(url, await load(url, ENDLESS))
        path = f"/user/scenarios/{run_id}"
        running = await actor_at(url, path)
        assert running.status == 200
        assert (await result_of(url, run_id))["state"] == "running"
        answer = await http("POST", f"{url}/api/tests/runs/{run_id}/abort")
        gone = await actor_at(url, path)
    assert answer.status == 200
    result = answer.json()
    assert result["state"] == "aborted"
    assert result["passed"] is False
    assert f"{path} was killed or stopped" in result["error"]
    assert result["timeline"][-1]["event"] == "run_end"
    assert result["timeline"][-1]["outcome"] == "aborted"
    assert gone.status == 404


async def test_killing_the_runs_actor_through_the_api_ends_it_aborted() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        run_id = await start(url, await load(url, ENDLESS))
        killed = await http("POST", f"{url}/api/actors/user/scenarios/{run_id}/kill")
        assert killed.status == 202
        result = await ended(url, run_id)
        gone = await actor_at(url, f"/user/scenarios/{run_id}")
        # The server's own scheduler goes on: its parent of runs is there.
        parent = await actor_at(url, "/user/scenarios")
    assert result["state"] == "aborted"
    assert gone.status == 404
    assert parent.status == 200


async def test_a_third_run_is_refused_while_two_go_on() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        scenario_id = await load(url, ENDLESS)
        first = await start(url, scenario_id)
        second = await start(url, scenario_id)
        refused = await http("POST", f"{url}/api/tests/run", json={"id": scenario_id})
        for run_id in (first, second):
            answer = await http("POST", f"{url}/api/tests/runs/{run_id}/abort")
            assert answer.json()["state"] == "aborted"
        # Room again.
        third = await start(url, scenario_id)
        await http("POST", f"{url}/api/tests/runs/{third}/abort")
    assert refused.status == 429
    assert refused.headers["retry-after"] == "5"
    assert (
        "as many as this server allows at once (2)"
        in (refused.json()["error"]["message"])
    )


async def test_bad_run_requests_are_422_and_name_the_field() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        scenario_id = await load(url, PASSING)
        cases = {
            "body.params.naps": {"id": scenario_id, "params": {"naps": [1]}},
            "body.seed": {"id": scenario_id, "seed": -1},
            "body.id": {"id": ""},
            "body.extra": {"id": scenario_id, "extra": 1},
        }
        answers = {
            field: await http("POST", f"{url}/api/tests/run", json=body)
            for field, body in cases.items()
        }
        wrong_type = await http(
            "POST",
            f"{url}/api/tests/run",
            json={"id": scenario_id, "params": {"naps": "many"}},
        )
        unknown_param = await http(
            "POST",
            f"{url}/api/tests/run",
            json={"id": scenario_id, "params": {"jobs": 5}},
        )
    for field, answer in answers.items():
        assert answer.status == 422, field
        assert answer.json()["error"]["message"].startswith(field), field
    assert wrong_type.status == 422
    assert "parameter naps" in wrong_type.json()["error"]["message"]
    assert unknown_param.status == 422


async def test_mutations_off_refuses_loading_running_scheduling_and_aborting() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings(mutations=False)) as url:
        refused = [
            await http("POST", f"{url}/api/tests/load", json={"yaml": PASSING}),
            await http("POST", f"{url}/api/tests/run", json={"id": "soak"}),
            await http(
                "POST",
                f"{url}/api/tests/schedule",
                json={"id": "soak", "trigger": "interval", "fields": {"hours": 1}},
            ),
            await http("POST", f"{url}/api/tests/runs/run-1/abort"),
        ]
        library = await http("GET", f"{url}/api/tests")
        results = await http("GET", f"{url}/api/tests/results")
    for answer in refused:
        assert answer.status == 403
        assert "mutations" in answer.json()["error"]["message"]
    assert library.status == results.status == 200
    assert results.json() == []


async def test_a_page_of_another_origin_may_not_start_a_run() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        answer = await http(
            "POST",
            f"{url}/api/tests/run",
            json={"id": "soak"},
            headers={"Origin": "http://evil.example"},
        )
        stream = await http(
            "GET",
            f"{url}/api/tests/metrics/run-1",
            headers={"Origin": "http://evil.example"},
        )
    assert answer.status == 403
    assert stream.status == 403


# ------------------------------------------------------------------- schedules


async def test_a_scheduled_run_fires_through_the_scheduler_and_its_result_appears() -> (
    None
):
    sz = ScheduleZero()
    sz.scenarios  # noqa: B018 - made before the start: its handler is registered
    async with sz, web.serve(sz, settings()) as url:
        scenario_id = await load(url, PASSING)
        answer = await http(
            "POST",
            f"{url}/api/tests/schedule",
            json={
                "id": scenario_id,
                "params": {"naps": 1},
                "seed": 3,
                "trigger": "interval",
                "fields": {"seconds": 1},
                "schedule_id": "nightly",
            },
        )
        assert answer.status == 201, answer.body
        schedule = answer.json()
        found: list[dict[str, Any]] = []

        async def scheduled_run_passed() -> bool:
            listed = (await http("GET", f"{url}/api/tests/results")).json()
            found[:] = [r for r in listed if r["schedule_id"] == "nightly"]
            return any(r["state"] == "passed" for r in found)

        await wait_until(scheduled_run_passed, timeout=DEADLINE, interval=0.1)
        await http("DELETE", f"{url}/api/schedules/nightly")
    assert (schedule["id"], schedule["task"]) == ("nightly", "sz.scenario")
    passed = next(r for r in found if r["state"] == "passed")
    assert (passed["scenario_id"], passed["seed"]) == (scenario_id, 3)


async def test_scheduling_is_409_where_the_service_was_made_after_the_start() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        answer = await http(
            "POST",
            f"{url}/api/tests/schedule",
            json={"id": "soak", "trigger": "interval", "fields": {"hours": 1}},
        )
    assert answer.status == 409
    assert "sz.scenario" in answer.json()["error"]["message"]


# ---------------------------------------------------------------------- stream


@attrs.frozen(kw_only=True)
class Event:
    kind: str
    id: int
    data: Any


class StreamReader:
    """One connection to a run's metrics stream, read in worker threads."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        self.path = parts.path
        self.connection = HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
        self.headers = headers or {}
        self.response: HTTPResponse | None = None
        self.events: list[Event] = []
        self.finished = False

    def open(self) -> int:
        self.connection.request("GET", self.path, headers=self.headers)
        self.response = self.connection.getresponse()
        return self.response.status

    def read_until(self, done: Callable[[list[Event]], bool]) -> None:
        assert self.response is not None
        deadline = time.monotonic() + DEADLINE
        fields: dict[str, str] = {}
        while not done(self.events):
            assert time.monotonic() < deadline, self.events[-5:]
            line = self.response.readline().decode()
            if not line:
                self.finished = True
                return
            line = line.rstrip("\n")
            if not line:
                if "event" in fields:
                    self.events.append(
                        Event(
                            kind=fields["event"],
                            id=int(fields["id"]),
                            data=json.loads(fields["data"]),
                        )
                    )
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value

    def close(self) -> None:
        self.connection.close()


async def read(reader: StreamReader, done: Callable[[list[Event]], bool]) -> None:
    await anyio.to_thread.run_sync(reader.read_until, done)


def kinds(events: list[Event], kind: str) -> list[Event]:
    return [event for event in events if event.kind == kind]


async def test_the_metrics_stream_sends_progress_faults_then_the_result() -> None:
    sz = ScheduleZero()
    text = ENDLESS.replace("rounds: 2000", "rounds: 4")
    async with sz, web.serve(sz, settings()) as url:
        run_id = await start(url, await load(url, text))
        reader = StreamReader(f"{url}/api/tests/metrics/{run_id}")
        try:
            assert await anyio.to_thread.run_sync(reader.open) == 200
            await read(reader, lambda events: False)  # to the stream's end
        finally:
            reader.close()
    assert reader.finished
    events = reader.events
    progress = kinds(events, "progress")
    assert progress
    assert progress[0].data["run_id"] == run_id
    assert any(p.data["step"] and p.data["metrics"] for p in progress)
    faults = kinds(events, "fault")
    assert len(faults) == 4
    assert {fault.data["name"] for fault in faults} == {"kill_actor"}
    [result] = kinds(events, "result")
    assert events[-1] == result
    assert result.data["state"] == "passed"
    assert result.data["run_id"] == run_id
    ids = [event.id for event in events]
    assert ids == sorted(ids)


async def test_a_resumed_stream_begins_with_the_current_progress_alone() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        run_id = await start(url, await load(url, ENDLESS))
        stream = f"{url}/api/tests/metrics/{run_id}"
        first = StreamReader(stream)
        try:
            assert await anyio.to_thread.run_sync(first.open) == 200
            await read(first, lambda events: len(kinds(events, "fault")) >= 2)
        finally:
            first.close()
        resumed = StreamReader(stream, {"Last-Event-ID": str(first.events[-1].id)})
        try:
            assert await anyio.to_thread.run_sync(resumed.open) == 200
            await read(resumed, lambda events: bool(events))
        finally:
            resumed.close()
        missing = await http("GET", f"{url}/api/tests/metrics/run-none")
        await http("POST", f"{url}/api/tests/runs/{run_id}/abort")
    assert resumed.events[0].kind == "progress"
    assert resumed.events[0].data["state"] == "running"
    assert missing.status == 404


async def test_a_run_goes_on_while_the_server_shows_its_actor_in_the_tree() -> None:
    sz = ScheduleZero()
    async with sz, web.serve(sz, settings()) as url:
        run_id = await start(url, await load(url, ENDLESS))
        await wait_until(
            lambda: sz.system.lookup(f"/user/scenarios/{run_id}") is not None
        )
        tree = (await http("GET", f"{url}/api/actors/user/scenarios")).json()
        # Its faults (a kill every 100 ms) hit the run's own scheduler: none
        # of the server's actors restarted.

        async def faulted() -> bool:
            runs = await sz.scenarios.runs()
            return any(event.event == "fault" for event in runs[0].timeline)

        await wait_until(faulted)
        restarts = [a.restarts for a in sz.system.snapshot().walk()]
        await http("POST", f"{url}/api/tests/runs/{run_id}/abort")
    assert [child["name"] for child in tree["children"]] == [run_id]
    assert set(restarts) == {0}
