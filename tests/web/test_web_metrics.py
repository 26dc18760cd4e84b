"""``GET /metrics``: Prometheus' text format, on asyncio and trio."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from web_http import http

import web
from actors.testing import wait_until
from sz import JobFailed, ScheduleZero

ANY_PORT = web.GatewaySettings(port=0)


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each sample by family, keyed by its sorted labels (and name suffix)."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        samples = found.setdefault(family.name, {})
        for sample in family.samples:
            key = (("__name__", sample.name), *sorted(sample.labels.items()))
            samples[key] = sample.value
    return found


async def test_metrics_count_jobs_time_them_and_show_actors_and_handlers() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def good() -> str:
        return "done"

    @sz.handler
    async def bad() -> None:
        raise RuntimeError("failed on purpose")

    async with sz, web.serve(sz, ANY_PORT) as url:
        await sz.run_now("good")
        await sz.run_now("good")
        with pytest.raises(JobFailed):
            await sz.run_now("bad")
        await wait_until(lambda: sum(sz.metrics().jobs.values()) == 3)
        answer = await http("GET", f"{url}/metrics")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found = families(answer.body.decode())
    jobs = found["sz_jobs"]
    assert (
        jobs[(("__name__", "sz_jobs_total"), ("outcome", "success"), ("task", "good"))]
        == 2
    )
    assert (
        jobs[(("__name__", "sz_jobs_total"), ("outcome", "failure"), ("task", "bad"))]
        == 1
    )
    durations = found["sz_attempt_duration_seconds"]
    count = (("__name__", "sz_attempt_duration_seconds_count"), ("task", "good"))
    assert durations[count] == 2
    inf = (
        ("__name__", "sz_attempt_duration_seconds_bucket"),
        ("le", "+Inf"),
        ("task", "good"),
    )
    assert durations[inf] == 2
    paths = {dict(key)["path"] for key in found["sz_actor_up"]}
    assert {"/user/dispatcher", "/user/history", "/user/handlers/good"} <= paths
    up = found["sz_handler_up"]
    assert (
        up[(("__name__", "sz_handler_up"), ("handler", "good"), ("kind", "local"))] == 1
    )
    assert "sz_event_loop_lag_seconds" in found


async def test_metrics_need_the_token_when_there_is_one() -> None:
    token = "a" * 24
    settings = web.GatewaySettings(port=0, token=token)
    async with ScheduleZero() as sz, web.serve(sz, settings) as url:
        refused = await http("GET", f"{url}/metrics")
        allowed = await http(
            "GET", f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
    assert refused.status == 401
    assert allowed.status == 200
