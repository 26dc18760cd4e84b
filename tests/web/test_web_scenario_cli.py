"""``sz scenario run --url``: a run inside a live ``sz serve``, as a user runs it.

The server is a real ``sz serve`` process on the test's backend; the client is
the real ``sz`` command in a process of its own. Nothing waits by sleeping.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import anyio
from test_web_cli import DASHBOARD, SZ, running, stop
from web_http import http

import web
from actors.testing import wait_until
from sz import ScheduleZero

if TYPE_CHECKING:
    from pathlib import Path

PASSING = """\
test:
  name: small
  parameters: {naps: 2}
  setup: {handlers: [noop]}
  steps:
    - name: load
      type: action
      action: {method: submit_jobs, args: {task: noop, count: 20}}
    - name: naps
      type: loop
      iterations: ${naps}
      steps:
        - {type: chaos, fault: kill_actor, target: "/user/handlers/noop"}
        - {type: sleep, duration: 50ms}
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

CLIENT = [sys.executable, "-m", "web"]


async def sz_command(cwd: Path, *argv: str) -> tuple[int, str, str]:
    result = await anyio.run_process([*CLIENT, *argv], cwd=cwd, check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_sz_scenario_run_url_runs_inside_a_live_server(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    folder = anyio.Path(tmp_path)
    await (folder / "small.yaml").write_text(PASSING)
    await (folder / "fails.yaml").write_text(FAILING)
    await (folder / "bad.yaml").write_text(PASSING.replace("type: loop", "type: lop"))
    command = [
        *SZ,
        "serve",
        "--web",
        "127.0.0.1:0",
        "--store",
        "memory",
        "--backend",
        anyio_backend_name,
    ]
    async with running(command, tmp_path) as output:
        await output.wait_for("actor tree")
        found = DASHBOARD.search(output.text)
        assert found is not None, output.text
        url = found[1]
        code, out, err = await sz_command(
            tmp_path,
            "scenario",
            "run",
            "small.yaml",
            "--url",
            url,
            "--param",
            "naps=3",
            "--seed",
            "7",
            "--export",
            "out.json",
        )
        assert code == 0, out + err
        assert out.startswith("scenario small  run run-")
        assert "seed 7" in out.splitlines()[0]
        assert "no_lost_jobs  PASS" in out
        assert "lost_jobs == 0  true   PASS" in out
        assert out.endswith("\nPASS\n")
        # Into a pipe: a line per top-level step it saw start.
        assert err.splitlines()[-1].startswith("[3/3] settle"), err
        exported = json.loads(await (folder / "out.json").read_text())
        assert exported["passed"] is True
        assert (exported["seed"], exported["parameters"]) == (7, {"naps": 3})
        assert [e["event"] for e in exported["timeline"]].count("fault") == 3
        code, out, err = await sz_command(
            tmp_path, "scenario", "run", "fails.yaml", "--url", url
        )
        assert code == 1, out + err
        assert out.endswith("\nFAIL\n")
        code, out, err = await sz_command(
            tmp_path, "scenario", "run", "bad.yaml", "--url", url
        )
        assert (code, out) == (2, "")
        assert err.startswith(
            "sz scenario run: bad.yaml:10:13: unknown step type 'lop'"
        )
        code, out, err = await sz_command(
            tmp_path, "scenario", "run", "no_such_scenario", "--url", url
        )
        assert code == 2
        assert "no scenario 'no_such_scenario'" in err
        await stop(output)
    # No server there any more: one line, and 2 (the run could not start).
    code, out, err = await sz_command(
        tmp_path, "scenario", "run", "small.yaml", "--url", url
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "no ScheduleZero answers at" in err


#: Runs until stopped, killing its own handler now and then.
ENDLESS = """\
test:
  name: endless
  setup: {handlers: [noop]}
  steps:
    - name: chaos
      type: loop
      iterations: 100000
      steps:
        - {type: chaos, fault: kill_actor, target: "/user/handlers/noop"}
        - {type: sleep, duration: 100ms}
"""


async def test_a_run_whose_server_is_killed_comes_back_aborted_after_a_restart(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    store = f"sqlite:///{tmp_path / 'sz.db'}"
    command = [
        *SZ,
        "serve",
        "--web",
        "127.0.0.1:0",
        "--store",
        store,
        "--backend",
        anyio_backend_name,
    ]
    async with running(command, tmp_path) as output:
        await output.wait_for("actor tree")
        found = DASHBOARD.search(output.text)
        assert found is not None, output.text
        url = found[1]
        loaded = await http(
            "POST",
            f"{url}/api/tests/load",
            body=ENDLESS.encode(),
            headers={"Content-Type": "application/yaml"},
        )
        started = await http(
            "POST", f"{url}/api/tests/run", json={"id": loaded.json()["id"]}
        )
        assert started.status == 202, started.body
        run_id = started.json()["run_id"]

        async def stepping() -> bool:
            answer = (await http("GET", f"{url}/api/tests/results/{run_id}")).json()
            running = answer["state"] == "running"
            return bool(running and answer["progress"]["elapsed"] > 0.5)

        await wait_until(stepping, timeout=20)
        output.process.kill()  # SIGKILL: the run never ends there
        await output.process.wait()

    again = ScheduleZero(store=store)
    async with again, web.serve(again, web.GatewaySettings(port=0)) as url:
        listed = (await http("GET", f"{url}/api/tests/results")).json()
        one = (await http("GET", f"{url}/api/tests/results/{run_id}")).json()
    assert [run["run_id"] for run in listed] == [run_id]
    assert listed[0]["outcome"] == "aborted"
    assert one["state"] == one["outcome"] == "aborted"
    assert one["error"] == "the process ended during the run"
    assert one["passed"] is False
