"""``web.serve``: the gateway embedded beside a scheduler, on asyncio and on trio.

Every test runs on both backends: on asyncio the gateway shares the loop, on
trio it runs on an asyncio loop in a thread of its own and calls the scheduler
through a portal. Real sockets on 127.0.0.1, port 0; a real HTTP client.
"""

from __future__ import annotations

import socket
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import pytest
from web_http import http, refused

import web
from actors.testing import wait_until
from sz import JobFailed, ScheduleZero, SzError

if TYPE_CHECKING:
    from collections.abc import Iterator

ANY_PORT = web.GatewaySettings(port=0)


def gateway_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sz-gateway"]


def with_tasks() -> ScheduleZero:
    sz = ScheduleZero()

    @sz.handler
    async def good() -> str:
        return "done"

    @sz.handler
    async def bad() -> None:
        raise RuntimeError("failed on purpose")

    return sz


async def test_the_gateway_answers_on_the_port_it_took_and_stops_on_leaving(
    anyio_backend_name: str,
) -> None:
    async with ScheduleZero() as sz, web.serve(sz, ANY_PORT) as url:
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")
        answer = await http("GET", f"{url}/api/summary")
        assert answer.status == 200
        # Under trio the gateway has a thread of its own, and only then.
        assert len(gateway_threads()) == (anyio_backend_name == "trio")
    assert await anyio.to_thread.run_sync(refused, url)
    assert gateway_threads() == []


async def test_a_gateway_thread_shortens_the_switch_interval_while_it_runs(
    anyio_backend_name: str,
) -> None:
    # Its thread shares the GIL with a busy scheduler loop: at Python's 5 ms
    # a request waited that long at each of its waits for the lock.
    before = sys.getswitchinterval()
    async with ScheduleZero() as sz, web.serve(sz, ANY_PORT):
        during = sys.getswitchinterval()
    assert sys.getswitchinterval() == before
    if anyio_backend_name == "trio":
        assert during == min(before, web.server.GIL_SWITCH_INTERVAL)
    else:  # the same loop as the scheduler's: no thread, nothing to share
        assert during == before


async def test_the_summary_counts_jobs_schedules_handlers_and_actors() -> None:
    sz = with_tasks()
    async with sz, web.serve(sz, ANY_PORT) as url:
        await sz.run_now("good")
        with pytest.raises(JobFailed):
            await sz.run_now("bad")
        now = datetime.now(UTC)
        await sz.schedule("good", "date", run_time=now + timedelta(minutes=30))
        await sz.schedule("good", "date", run_time=now + timedelta(hours=2))
        await sz.schedule(
            "good", "interval", minutes=5, start_time=now, id="paused", paused=True
        )
        await wait_until(lambda: sum(sz.metrics().jobs.values()) == 2)
        summary = (await http("GET", f"{url}/api/summary")).json()
        handlers = await sz.handlers()
    assert summary["ended"] == {
        "total": 2,
        "failed": 1,
        "by_outcome": {"failure": 1, "success": 1},
    }
    assert summary["schedules"] == {"total": 3, "paused": 1, "due_within_hour": 1}
    assert summary["handlers"] == {
        "up": sum(h.health.state in {"healthy", "degraded"} for h in handlers),
        "total": 2,
    }
    assert summary["actors"]["total"] >= 5
    assert summary["actors"]["up"] == summary["actors"]["total"]
    assert summary["actors"]["restarts"] == 0
    assert set(summary["jobs"]) == {"held", "waiting", "running", "retrying"}
    assert summary["time"].endswith("+00:00")


async def test_the_summary_counts_live_jobs_as_sz_jobs_does() -> None:
    sz = ScheduleZero()
    gate = anyio.Event()

    @sz.handler(concurrency=2)
    async def gated() -> None:
        await gate.wait()

    async with sz, web.serve(sz, ANY_PORT) as url:
        handles = [await sz.submit("gated") for _ in range(5)]

        async def two_run_three_wait() -> bool:
            states = [job.state for job in await sz.jobs()]
            return (states.count("running"), states.count("waiting")) == (2, 3)

        await wait_until(two_run_three_wait)
        during = (await http("GET", f"{url}/api/summary")).json()
        gate.set()
        for handle in handles:
            await handle.result(timeout=10)
        await wait_until(lambda: sum(sz.metrics().jobs.values()) == 5)
        after = (await http("GET", f"{url}/api/summary")).json()
    assert during["jobs"] == {"held": 0, "waiting": 3, "running": 2, "retrying": 0}
    assert during["ended"]["total"] == 0
    assert after["jobs"] == {"held": 0, "waiting": 0, "running": 0, "retrying": 0}
    assert after["ended"] == {"total": 5, "failed": 0, "by_outcome": {"success": 5}}
    assert during["handlers"] == after["handlers"] == {"up": 1, "total": 1}


async def test_the_summary_reports_the_scheduler_loops_lag_once_measured() -> None:
    async with ScheduleZero() as sz, web.serve(sz, ANY_PORT) as url:

        async def measured() -> bool:
            lag = (await http("GET", f"{url}/api/summary")).json()["loop_lag"]
            return lag["latest"] is not None

        await wait_until(measured, timeout=10)
        lag = (await http("GET", f"{url}/api/summary")).json()["loop_lag"]
    assert 0 <= lag["latest"] <= lag["worst_last_minute"]


async def test_a_scheduler_not_running_gets_503_in_json() -> None:
    sz = ScheduleZero()
    async with web.serve(sz, ANY_PORT) as url:
        answer = await http("GET", f"{url}/api/summary")
    assert answer.status == 503
    assert answer.json() == {
        "error": {"status": 503, "message": "the scheduler is not running"}
    }


async def test_an_error_of_the_callers_block_comes_out_as_itself() -> None:
    async with ScheduleZero() as sz:
        with pytest.raises(KeyError, match="mine"):
            async with web.serve(sz, ANY_PORT):
                raise KeyError("mine")
    assert gateway_threads() == []


async def test_cancelling_the_block_stops_the_gateway_cleanly() -> None:
    async with ScheduleZero() as sz:
        with anyio.CancelScope() as scope:
            async with web.serve(sz, ANY_PORT) as url:
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught
    assert await anyio.to_thread.run_sync(refused, url)
    assert gateway_threads() == []


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


async def test_a_taken_port_refuses_to_start_with_one_line(taken_port: int) -> None:
    async with ScheduleZero() as sz:
        with pytest.raises(SzError) as caught:
            async with web.serve(sz, web.GatewaySettings(port=taken_port)):
                pytest.fail("the gateway started on a taken port")
    assert str(caught.value) == (
        f"web gateway: cannot listen on http://127.0.0.1:{taken_port}: "
        "address already in use"
    )
    assert gateway_threads() == []


async def test_a_host_beyond_this_machine_without_a_token_refuses_to_start() -> None:
    async with ScheduleZero() as sz:
        with pytest.raises(SzError, match=r"^web gateway: refusing to listen on "):
            async with web.serve(sz, web.GatewaySettings(host="0.0.0.0", port=0)):
                pytest.fail("the gateway started without a token")
    assert gateway_threads() == []
