"""Chromium reaches the gateway of a live ``sz serve`` as a dashboard would."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from playwright.sync_api import Page

    from .conftest import Server


def test_the_browser_reads_the_summary_of_a_server_with_a_remote_worker(
    server: Server, page: Page
) -> None:
    answer = page.goto(server.url + "/api/summary")
    assert answer is not None
    assert answer.status == 200
    summary = json.loads(page.inner_text("body"))
    # The built-in handlers (echo, fail, log) and the remote worker.
    assert summary["handlers"]["total"] >= 4
    assert summary["schedules"]["total"] == 5


def test_without_the_token_the_browser_is_refused(
    token_server: Server, page: Page, shot: Callable[[Page, str], Path]
) -> None:
    answer = page.goto(token_server.url + "/api/summary")
    assert answer is not None
    assert answer.status == 401
    assert "missing or wrong token" in page.inner_text("body")
    # Chromium logs the refusal as an error of the page: the one expected.
    errors = page.console_errors  # type: ignore[attr-defined]
    assert all("401" in error for error in errors)
    errors.clear()
    assert shot(page, "refused-without-token").stat().st_size > 0
