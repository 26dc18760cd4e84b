"""The dashboard in Chromium, on a live ``sz serve`` with a remote worker.

Every view renders the server's real data; the page follows the server live,
without a reload; killing an actor from the tree shows its restart; bulk pause
pauses. Each view's screenshot goes to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import expect

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from playwright.sync_api import Page

    from .conftest import Server

    Shot = Callable[[Page, str], Path]


def open_view(page: Page, server: Server, view: str) -> None:
    page.goto(f"{server.url}/#/{view}")
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator('[data-stat="processed"] .stat-value')).not_to_have_text(
        "\N{EN DASH}"
    )


def stat(page: Page, name: str) -> int:
    text = page.locator(f'[data-stat="{name}"] .stat-value').inner_text()
    return int(text.replace(",", "").split("/")[0])


def test_the_overview_follows_the_server_live_without_a_reload(
    server: Server, page: Page, shot: Shot
) -> None:
    open_view(page, server, "overview")
    loaded_at = page.evaluate("window.szLoadedAt")
    processed = stat(page, "processed")
    recent = page.locator(".overview .recent tr[data-key]")
    expect(recent.first).to_be_visible()
    first_row = recent.first.get_attribute("data-key")

    # Jobs fire every second: the counts and the recent jobs move by themselves.
    expect(page.locator('[data-stat="processed"] .stat-value')).not_to_have_text(
        str(processed), timeout=10_000
    )
    expect(recent.first).not_to_have_attribute("data-key", first_row or "")
    expect(page.locator('[data-figure="throughput"]')).to_have_text(
        re.compile(r"jobs/s$")
    )
    expect(page.locator(".chart polyline").first).to_be_attached()
    assert stat(page, "processed") > processed
    assert page.evaluate("window.szLoadedAt") == loaded_at
    assert page.evaluate("performance.getEntriesByType('navigation')[0].type") in (
        "navigate",
        "back_forward",
    )
    # The summary bar shows the whole server: five schedules, four handlers.
    assert stat(page, "handlers") >= 4
    assert stat(page, "actors") >= 8
    expect(page.locator(".overview")).to_contain_text("remote-tick")
    shot(page, "overview")


def test_the_tree_shows_the_actors_and_a_killed_one_restarts(
    server: Server, page: Page, shot: Shot
) -> None:
    open_view(page, server, "tree")
    dispatcher = page.locator('li[data-path="/user/dispatcher"]').first
    expect(dispatcher).to_contain_text("DispatcherActor")
    handlers = page.locator('li[data-path="/user/handlers"] > .tree-row')
    expect(handlers).to_contain_text(re.compile(r"one for one · \d+/\d+ in"))
    echo = page.locator('li[data-path="/user/handlers/echo"] > .tree-row')
    restarts = echo.locator('[data-metric="restarts"] .metric-value')
    before = int(restarts.inner_text())

    echo.get_by_role("button", name="Kill").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("/user/handlers/echo")
    dialog.get_by_role("button", name="Kill").click()

    expect(restarts).to_have_text(str(before + 1))
    expect(echo.locator(".badge")).to_have_text("running")
    assert server.wait_for(
        lambda: (
            server.api("GET", "/api/actors/user/handlers/echo")["restarts"]
            == before + 1
        ),
        "the kill reached the server",
    )
    expect(page.locator('[data-stat="restarts"] .stat-value')).not_to_have_text("0")

    # Collapsing a supervisor hides its children, and opens them again.
    toggle = page.locator('button.toggle[data-path="/user/handlers"]')
    toggle.click()
    expect(page.locator('li[data-path="/user/handlers/echo"]')).to_have_count(0)
    toggle.click()
    expect(page.locator('li[data-path="/user/handlers/echo"]')).to_have_count(1)
    shot(page, "tree")


def test_a_kill_cancelled_in_the_dialog_kills_nothing(
    server: Server, page: Page
) -> None:
    open_view(page, server, "tree")
    row = page.locator('li[data-path="/user/handlers/log"] > .tree-row')
    before = server.api("GET", "/api/actors/user/handlers/log")["restarts"]
    row.get_by_role("button", name="Kill").click()
    page.locator("dialog#confirm").get_by_role("button", name="Cancel").click()
    expect(page.locator("dialog#confirm")).to_be_hidden()
    assert server.api("GET", "/api/actors/user/handlers/log")["restarts"] == before


def test_the_actors_table_lists_every_actor_and_sorts_by_rate(
    server: Server, page: Page, shot: Shot
) -> None:
    open_view(page, server, "actors")
    table = page.locator("#view table").first
    expect(table).to_contain_text("/user/dispatcher")
    expect(table).to_contain_text("/user/history")
    # The remote worker's proxy sits in the same tree as the local handlers.
    paths = {a["path"] for a in _walk(server.api("GET", "/api/actors"))}
    for path in paths:
        expect(table.locator(f'tr[data-key="{path}"]')).to_have_count(1)

    header = table.locator("th", has_text="Msg/s")
    header.click()
    expect(header).to_have_attribute("aria-sort", "descending")
    table.locator("th", has_text="Mailbox").click()
    expect(table.locator("th", has_text="Mailbox")).to_have_attribute(
        "aria-sort", "descending"
    )
    shot(page, "actors")


def _walk(actor: dict[str, object]) -> list[dict[str, object]]:
    children = actor["children"]
    assert isinstance(children, list)
    return [actor, *(a for child in children for a in _walk(child))]


def test_schedules_pause_in_bulk_run_now_and_show_upcoming_fires(
    server: Server, page: Page, shot: Shot
) -> None:
    open_view(page, server, "schedules")
    rows = page.locator("#view tbody tr[data-id]")
    for schedule in ("tick", "flaky", "remote-tick", "remote-flaky", "hourly"):
        expect(page.locator(f'tr[data-id="{schedule}"]')).to_have_count(1)

    # The upcoming fire times of an hourly schedule: five of them.
    page.locator('tr[data-id="hourly"]').get_by_role("button", name="Upcoming").click()
    expect(page.locator(".fire-times li")).to_have_count(5)

    for schedule in ("hourly", "remote-flaky"):
        page.get_by_label(f"Select {schedule}").check()
    page.get_by_role("button", name="Pause selected").click()
    for schedule in ("hourly", "remote-flaky"):
        row = page.locator(f'tr[data-id="{schedule}"]')
        expect(row.locator(".badge").first).to_have_text("paused")
        expect(row).to_contain_text("requested")
        assert server.api("GET", f"/api/schedules/{schedule}")["paused"]
    expect(page.locator('tr[data-id="tick"] .badge').first).to_have_text("active")

    shot(page, "schedules")

    page.get_by_label("Select hourly").check()
    page.get_by_label("Select remote-flaky").check()
    page.get_by_role("button", name="Resume selected").click()
    for schedule in ("hourly", "remote-flaky"):
        expect(page.locator(f'tr[data-id="{schedule}"] .badge').first).to_have_text(
            "active"
        )
        assert not server.api("GET", f"/api/schedules/{schedule}")["paused"]

    # Run now: a job of its task at once.
    page.locator('tr[data-id="hourly"]').get_by_role("button", name="Run now").click()
    expect(page.locator(".toast", has_text="hourly: job")).to_be_visible()
    assert rows.count() == 5


def test_a_schedule_made_with_the_form_appears_on_the_server(
    server: Server, page: Page
) -> None:
    open_view(page, server, "schedules")
    page.locator("details.create > summary").click()
    form = page.get_by_role("form", name="New schedule")
    form.get_by_label("Id").fill("from-the-form")
    form.get_by_label("Task").fill("echo")
    form.get_by_label("Trigger").select_option("interval")
    form.get_by_label("Fields or crontab").fill("hours=2")
    form.get_by_label("Arguments (JSON)").fill('{"message": "<b>not markup</b>"}')
    form.get_by_role("button", name="Create").click()
    row = page.locator('tr[data-id="from-the-form"]')
    expect(row).to_contain_text("echo")
    made = server.api("GET", "/api/schedules/from-the-form")
    assert made["kwargs"] == {"message": "<b>not markup</b>"}

    # A refused schedule says why, in the form, and makes nothing.
    form.get_by_label("Id").fill("refused")
    form.get_by_label("Task").fill("echo")
    form.get_by_label("Fields or crontab").fill("fortnights=2")
    form.get_by_role("button", name="Create").click()
    expect(form.locator(".form-message")).to_contain_text("fortnights")
    page.console_errors.clear()  # type: ignore[attr-defined]  # the 4xx refusal
    assert "refused" not in {s["id"] for s in server.api("GET", "/api/schedules")}
    server.api("DELETE", "/api/schedules/from-the-form")


def test_handlers_show_the_remote_worker_and_its_health(
    server: Server, page: Page, shot: Shot
) -> None:
    open_view(page, server, "handlers")
    remote = page.locator('tr[data-name="remote-1"]')
    expect(remote).to_contain_text("remote")
    expect(remote).to_contain_text("remote_echo")
    expect(remote.locator(".badge")).to_have_text(re.compile("healthy|degraded"))
    expect(remote).to_contain_text(re.compile(r"\d+/\d+"))
    for local in ("echo", "fail", "log"):
        expect(page.locator(f'tr[data-name="{local}"]')).to_contain_text("local")
    expect(page.locator(".panel", has_text="Governors")).to_contain_text("remote_echo")
    shot(page, "handlers")


def test_jobs_show_what_waits_and_why(server: Server, page: Page, shot: Shot) -> None:
    open_view(page, server, "jobs")
    waiting = page.locator(".panel", has_text="Waiting")
    expect(waiting.locator("table")).to_be_visible()
    # More than the rate limit of remote_echo lets through at once.
    for n in range(150):
        server.api("POST", "/api/jobs", {"task": "remote_echo", "args": [n]})
    expect(waiting.locator(".why").first).to_contain_text("rate")
    expect(waiting).to_contain_text("remote_echo")
    shot(page, "jobs")


def test_history_filters_pages_and_shows_a_failed_jobs_timeline(
    server: Server, page: Page, shot: Shot
) -> None:
    server.wait_for(
        lambda: server.api("GET", "/api/history?task=remote_fail&limit=1")["rows"],
        "a remote failure in the history",
    )
    # More than a page of remote_echo rows, for the cursor.
    if len(server.api("GET", "/api/history?task=remote_echo&limit=60")["rows"]) < 60:
        for n in range(60):
            server.api("POST", "/api/jobs", {"task": "remote_echo", "args": [n]})
        server.wait_for(
            lambda: (
                len(server.api("GET", "/api/history?task=remote_echo&limit=60")["rows"])
                == 60
            ),
            "60 rows of remote_echo",
        )
    open_view(page, server, "history")
    table = page.locator("#view table")
    expect(table.locator("tbody tr[data-job]").first).to_be_visible()

    page.get_by_label("Task").fill("remote_echo")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr[data-job]").first).to_contain_text("remote_echo")
    expect(table.locator("tbody tr[data-job]").first).to_contain_text("remote-1")
    assert "remote_fail" not in table.inner_text()

    # Older pages through the cursor, and back.
    page.get_by_role("button", name="Older →").click()
    expect(page.locator(".pager")).to_contain_text("page 2")
    page.get_by_role("button", name="← Newer").click()
    expect(page.locator(".pager")).to_contain_text("page 1")

    page.get_by_label("Task").fill("remote_fail")
    page.get_by_label("Outcome").select_option("failure")
    page.get_by_role("button", name="Filter").click()
    failed = table.locator("tbody tr[data-job]").first
    expect(failed).to_contain_text("remote_fail")
    failed.click()
    timeline = page.locator(".side .timeline-box")
    expect(timeline.locator(".timeline")).to_contain_text("Accepted")
    expect(timeline.locator(".timeline")).to_contain_text("Dispatched")
    expect(timeline.locator(".timeline")).to_contain_text("Started")
    expect(timeline.locator("pre")).to_contain_text("remote failure on purpose")
    assert "?job=" in page.url
    shot(page, "history")


def test_dead_letters_show_the_servers_count(
    server: Server, page: Page, shot: Shot
) -> None:
    open_view(page, server, "dead-letters")
    total = server.api("GET", "/api/dead-letters")["total"]
    count = page.locator("#view .count")
    expect(count).to_contain_text("dead letter")
    shown = int(count.inner_text().split(" ")[0].replace(",", ""))
    assert shown >= total
    if total == 0:
        expect(page.locator("#view table")).to_contain_text("No dead letter")
    else:
        expect(page.locator("#view tbody tr").first).to_contain_text("/user/")
    shot(page, "dead-letters")
