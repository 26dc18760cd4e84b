"""What a page opened late knows of before it: the server keeps it, the page draws it.

The overview's charts begin with the minutes before the page opened; the
Actors view lists an actor killed before the page opened, with its cause; the
Schedules view shows each schedule's last run from one request (no history
request per schedule); the Handlers view follows the event stream, with no
request of its own for handlers while the stream is up.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import expect

from .test_browser_dashboard import open_view

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from playwright.sync_api import Page, Request

    from .conftest import Server

    Shot = Callable[[Page, str], Path]

#: Samples the stream's first ``series`` event holds (``SERIES_ON_CONNECT``,
#: ten seconds): points older than that came from ``/api/series``.
STREAM_SECONDS = 10


def requests_of(page: Page) -> list[str]:
    """The URLs the page asks for from now on, as it asks."""
    urls: list[str] = []

    def seen(request: Request) -> None:
        urls.append(request.url)

    page.on("request", seen)
    return urls


def test_the_overview_charts_begin_with_the_minutes_before_the_page_opened(
    server: Server, page: Page, shot: Shot
) -> None:
    # The server samples every second: twenty-five seconds of them first.
    server.wait_for(
        lambda: len(server.api("GET", "/api/series")["samples"]) >= 25,
        "25 samples on the server",
        timeout=60,
    )
    urls = requests_of(page)
    open_view(page, server, "overview")
    loaded_at = page.evaluate("window.szLoadedAt")
    chart = page.locator('svg[data-chart="throughput"]')
    expect(chart.locator("polyline")).to_be_attached()
    expect(chart).to_have_attribute("data-from", re.compile(r"^\d+$"))
    drawn_from = int(chart.get_attribute("data-from") or 0)
    # Points from well before the page opened: more than the stream gives.
    assert loaded_at - drawn_from > (STREAM_SECONDS + 10) * 1000
    assert any("/api/series" in url for url in urls)
    expect(page.locator('[data-figure="lateness"]')).to_have_text(
        re.compile(r"^p50 .+ · p99 .+")
    )

    # Then live: the line grows from the stream, no reload and no new fetch.
    asked = sum("/api/series" in url for url in urls)
    line = chart.locator("polyline").last
    before = line.get_attribute("points")
    expect(line).not_to_have_attribute("points", before or "", timeout=5000)
    assert sum("/api/series" in url for url in urls) == asked
    assert page.evaluate("window.szLoadedAt") == loaded_at
    shot(page, "overview-with-history")


def test_an_actor_killed_before_the_page_opened_is_listed_with_its_cause(
    server: Server, page: Page, shot: Shot
) -> None:
    server.api("POST", "/api/actors/user/handlers/log/kill")
    server.wait_for(
        lambda: any(
            d["path"] == "/user/handlers/log" and d["restarted"]
            for d in server.api("GET", "/api/deaths")["deaths"]
        ),
        "the killed actor restarted",
    )
    open_view(page, server, "actors")
    death = page.locator(
        '.panel:has-text("Recent deaths") tr[data-path="/user/handlers/log"]'
    ).first
    expect(death).to_contain_text("ActorKilled('killed from the gateway')")
    expect(death.locator(".badge")).to_have_text("restarted")

    # One killed while the page is open appears too, without a reload.
    server.api("POST", "/api/actors/user/handlers/echo/kill")
    echo = page.locator(
        '.panel:has-text("Recent deaths") tr[data-path="/user/handlers/echo"]'
    ).first
    expect(echo).to_contain_text("killed from the gateway")
    expect(echo.locator(".badge")).to_have_text("restarted")
    shot(page, "actors-deaths")


def test_the_schedules_page_shows_last_runs_without_a_history_request_each(
    server: Server, page: Page
) -> None:
    server.api(
        "POST",
        "/api/schedules",
        {
            "id": "not-yet",
            "task": "echo",
            "trigger": "interval",
            "fields": {"hours": 5},
            "paused": True,
        },
    )
    urls = requests_of(page)
    open_view(page, server, "schedules")
    # tick (echo) succeeds every second; flaky (fail) fails every two.
    expect(page.locator('tr[data-id="tick"]')).to_contain_text("success")
    expect(page.locator('tr[data-id="flaky"]')).to_contain_text(
        re.compile("failure|no healthy handler")
    )
    # A schedule that never ran says so.
    expect(page.locator('tr[data-id="not-yet"]')).to_contain_text("never")
    # Asked again as jobs end (3 s apart at most): still never a history request.
    with page.expect_request(lambda r: r.url.endswith("/api/schedules")):
        pass
    assert not [url for url in urls if "/api/history" in url]
    assert sum(url.endswith("/api/schedules") for url in urls) >= 2
    server.api("DELETE", "/api/schedules/not-yet")


def test_a_handlers_change_reaches_its_page_from_the_stream_not_a_poll(
    server: Server, page: Page
) -> None:
    open_view(page, server, "handlers")
    remote = page.locator('tr[data-name="remote-1"]')
    expect(remote).to_contain_text(re.compile(r"\d+ / \d+"))
    urls = requests_of(page)
    counts = remote.locator("td").nth(9)
    before = counts.inner_text()
    # remote_echo runs every second on the worker: its count moves, well
    # within the page's fallback poll (15 s).
    expect(counts).not_to_have_text(before, timeout=8000)
    heartbeat = remote.locator("td").nth(4)
    seen = heartbeat.inner_text()
    expect(heartbeat).not_to_have_text(seen, timeout=5000)
    assert not [url for url in urls if "/api/handlers" in url]
