"""The dashboard's login form, on a live ``sz serve`` with a token."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import expect

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from playwright.sync_api import Page

    from .conftest import Server


def test_the_login_form_opens_a_session_and_sign_out_ends_it(
    token_server: Server, page: Page, shot: Callable[[Page, str], Path]
) -> None:
    assert token_server.token is not None
    page.goto(token_server.url + "/#/schedules")
    # No session: the page sends the browser to the form.
    expect(page).to_have_url(re.compile(re.escape(token_server.url + "/login")))
    shot(page, "login")

    page.get_by_label("Token").fill(token_server.token + "-wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".login-error")).to_have_text(
        "That is not this server's token."
    )
    # Chromium logs the 401 of the form's answer: the one error expected.
    errors = page.console_errors  # type: ignore[attr-defined]
    assert all("401" in error for error in errors)
    errors.clear()
    cookies = page.context.cookies()
    assert not any(c["name"] == "sz_session" for c in cookies)

    page.get_by_label("Token").fill(token_server.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#conn")).to_have_text("live")
    [cookie] = [c for c in page.context.cookies() if c["name"] == "sz_session"]
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    # The API answers the page through the cookie alone.
    page.goto(token_server.url + "/#/schedules")
    expect(page.locator('tr[data-id="tick"]')).to_be_visible()
    assert page.evaluate("document.cookie") == ""  # no script can read it

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(token_server.url + "/login")
    page.goto(token_server.url + "/")
    expect(page).to_have_url(token_server.url + "/login")
