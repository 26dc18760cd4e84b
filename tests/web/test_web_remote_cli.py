"""The ``sz`` remote commands against a live gateway, as a user runs them."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import pytest

import web
from actors.testing import wait_until
from sz import ScheduleZero

SZ = [sys.executable, "-c", "from sz.cli import main; main()"]
TOKEN = "t" * 20


async def sz_command(*argv: str) -> tuple[int, str, str]:
    result = await anyio.run_process([*SZ, *argv], check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def scheduler() -> ScheduleZero:
    sz = ScheduleZero()

    @sz.handler
    async def echo(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    return sz


async def test_status_schedules_jobs_history_handlers_and_actors_read_a_server() -> (
    None
):
    sz = scheduler()
    settings = web.GatewaySettings(port=0, token=TOKEN)
    async with sz, web.serve(sz, settings) as url:
        common = ("--url", url, "--token", TOKEN)
        code, out, err = await sz_command(
            "schedules",
            "add",
            "echo",
            "interval",
            "--field",
            "hours=1",
            "--id",
            "tick",
            "--args",
            '{"n": 1}',
            *common,
        )
        assert (code, out.strip()) == (0, "added tick"), err
        await wait_until(lambda: sum(sz.metrics().jobs.values()) == 1)
        code, out, err = await sz_command("schedules", *common)
        assert code == 0, err
        header, row = out.strip().splitlines()
        assert header.split()[:3] == ["ID", "TASK", "TRIGGER"]
        assert row.startswith("tick  echo  IntervalTrigger(hours=1")
        code, out, err = await sz_command("history", "--json", *common)
        assert code == 0, err
        (first,) = json.loads(out)["rows"]
        assert (first["task"], first["outcome"], first["schedule_id"]) == (
            "echo",
            "success",
            "tick",
        )
        code, out, err = await sz_command("status", *common)
        assert code == 0, err
        assert any(line.startswith("ended ") for line in out.splitlines())
        code, out, err = await sz_command("handlers", *common)
        assert code == 0, err
        assert out.splitlines()[1].split()[:4] == ["echo", "local", "echo", "healthy"]
        code, out, err = await sz_command("actors", *common)
        assert code == 0, err
        assert "  /user/handlers/echo  running" in out
        code, out, err = await sz_command("jobs", *common)
        assert code == 0, err
        assert out.split()[:3] == ["JOB", "TASK", "STATE"]


async def test_schedules_are_paused_resumed_run_and_removed_from_the_command_line() -> (
    None
):
    sz = scheduler()
    async with sz, web.serve(sz, web.GatewaySettings(port=0)) as url:
        await sz.schedule("echo", "interval", hours=1, id="tick", paused=True)
        for verb, says in (
            ("pause", "paused tick"),
            ("resume", "resumed tick"),
            ("remove", "removed tick"),
        ):
            code, out, err = await sz_command("schedules", verb, "tick", "--url", url)
            assert (code, out.strip()) == (0, says), err
        assert await sz.schedules() == []
        await sz.schedule("echo", "interval", hours=1, id="again", paused=True)
        code, out, err = await sz_command("schedules", "run", "again", "--url", url)
        assert code == 0, err
        assert out.startswith("job ")
        assert out.strip().endswith(" submitted")


async def test_kill_restarts_an_actor_and_refusals_are_one_line() -> None:
    sz = scheduler()
    async with sz, web.serve(sz, web.GatewaySettings(port=0, token=TOKEN)) as url:
        code, out, err = await sz_command(
            "kill", "/user/handlers/echo", "--url", url, "--token", TOKEN
        )
        assert (code, out.strip()) == (0, "killed /user/handlers/echo"), err

        def restarted() -> bool:
            (echo,) = [
                a for a in sz.system.snapshot().walk() if a.path.endswith("/echo")
            ]
            return echo.restarts == 1

        await wait_until(restarted)
        code, out, err = await sz_command("status", "--url", url)  # no token
        assert code == 1
        (line,) = err.strip().splitlines()
        assert line.startswith("sz status: GET summary: 401 ")
        code, out, err = await sz_command(
            "kill", "/user/nobody", "--url", url, "--token", TOKEN
        )
        assert code == 1
        assert err.startswith("sz kill: POST actors/user/nobody/kill: 404 ")


@pytest.fixture(autouse=True)
def _quiet_sz_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # The commands read SZ_URL and SZ_TOKEN: the test's own arguments rule.
    monkeypatch.delenv("SZ_URL", raising=False)
    monkeypatch.delenv("SZ_TOKEN", raising=False)
