"""The dashboard's page, static files, login sessions and summary, on a live server.

Each test serves a real gateway on 127.0.0.1 (port 0) beside a running
scheduler and talks to it over HTTP, as a browser would.
"""

from __future__ import annotations

import posixpath
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from web_http import Answer, http

import web
from actors.testing import wait_until
from sz import ScheduleZero
from web.dashboard import STATIC

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TOKEN = "dashboard-token-of-24-chars"
#: The page's JavaScript modules, as paths under /static/.
MODULES = frozenset(
    path.relative_to(STATIC).as_posix() for path in (STATIC / "js").rglob("*.js")
)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@asynccontextmanager
async def gateway(**settings: Any) -> AsyncIterator[str]:
    async with (
        ScheduleZero() as sz,
        web.serve(sz, web.GatewaySettings(port=0, **settings)) as url,
    ):
        yield url


def error_of(answer: Answer) -> tuple[int, str]:
    body = answer.json()
    assert body["error"]["status"] == answer.status
    return answer.status, body["error"]["message"]


async def log_in(url: str, token: str, **headers: str) -> Answer:
    return await http(
        "POST",
        f"{url}/login",
        body=urlencode({"token": token}).encode(),
        headers={**FORM, **headers},
    )


def session_of(answer: Answer) -> str:
    found = re.match(r"sz_session=([^;]+);", answer.headers["set-cookie"])
    assert found is not None, answer.headers["set-cookie"]
    return found.group(1)


# ----------------------------------------------------------- page and files


async def test_the_page_is_served_with_a_policy_that_allows_no_inline_script() -> None:
    async with gateway() as url:
        answer = await http("GET", f"{url}/")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    policy = answer.headers["content-security-policy"]
    assert policy.startswith("default-src 'self';")
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    page = answer.body.decode()
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, re.DOTALL)
    assert scripts == [""]  # one script, from a file, with no inline code
    assert '<script type="module" src="/static/js/app.js">' in page
    assert 'name="sz-mutations" content="on"' in page
    assert 'name="sz-login" content="off"' in page


async def test_static_files_are_served_with_their_content_types() -> None:
    async with gateway() as url:
        answers = {
            name: await http("GET", f"{url}/static/{name}")
            for name in ("app.css", "js/app.js", "favicon.svg")
        }
    assert {name: a.headers["content-type"] for name, a in answers.items()} == {
        "app.css": "text/css; charset=utf-8",
        "js/app.js": "text/javascript; charset=utf-8",
        "favicon.svg": "image/svg+xml; charset=utf-8",
    }
    for answer in answers.values():
        assert answer.status == 200
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["content-security-policy"].startswith("default-src")
        assert answer.headers["x-content-type-options"] == "nosniff"


async def test_every_module_the_page_imports_is_served() -> None:
    assert "js/views/tree.js" in MODULES
    async with gateway() as url:
        for name in MODULES:
            answer = await http("GET", f"{url}/static/{name}")
            assert answer.status == 200, name
            assert answer.headers["content-type"].startswith("text/javascript")
            for imported in re.findall(r'from "(\.{1,2}/[^"]+)"', answer.body.decode()):
                target = posixpath.normpath(
                    posixpath.join(posixpath.dirname(name), imported)
                )
                assert target in MODULES, (name, imported)


async def test_an_unknown_static_file_is_a_json_404() -> None:
    async with gateway() as url:
        missing = await http("GET", f"{url}/static/nothing.js")
        escaping = await http("GET", f"{url}/static/js/../../dashboard.py")
        odd = await http("GET", f"{url}/static/app.py")
    assert error_of(missing) == (404, "no static file 'nothing.js'")
    assert escaping.status == 404
    assert error_of(odd) == (404, "no static file 'app.py'")


async def test_the_page_says_when_kills_are_turned_off() -> None:
    async with gateway(mutations=False) as url:
        answer = await http("GET", f"{url}/")
    assert 'name="sz-mutations" content="off"' in answer.body.decode()


async def test_without_a_token_the_login_form_leads_to_the_page() -> None:
    async with gateway() as url:
        form = await http("GET", f"{url}/login")
        posted = await log_in(url, "anything at all")
    assert (form.status, form.headers["location"]) == (303, "/")
    assert (posted.status, posted.headers["location"]) == (303, "/")
    assert "set-cookie" not in posted.headers


# ------------------------------------------------------------------ login


async def test_with_a_token_the_page_form_and_files_are_open_and_the_api_is_not() -> (
    None
):
    async with gateway(token=TOKEN) as url:
        page = await http("GET", f"{url}/")
        form = await http("GET", f"{url}/login")
        style = await http("GET", f"{url}/static/app.css")
        summary = await http("GET", f"{url}/api/summary")
        metrics = await http("GET", f"{url}/metrics")
    # The page sends a browser without a session to the form.
    assert (page.status, page.headers["location"]) == (303, "/login")
    assert form.status == 200
    assert 'name="token"' in form.body.decode()
    assert form.headers["content-security-policy"].startswith("default-src")
    assert style.status == 200
    assert summary.status == metrics.status == 401


async def test_logging_in_with_the_token_sets_a_strict_httponly_session_cookie() -> (
    None
):
    async with gateway(token=TOKEN) as url:
        answer = await log_in(url, TOKEN, Origin=url)
        session = session_of(answer)
        cookie = {"Cookie": f"sz_session={session}"}
        summary = await http("GET", f"{url}/api/summary", headers=cookie)
        page = await http("GET", f"{url}/", headers=cookie)
        metrics = await http("GET", f"{url}/metrics", headers=cookie)
        forged = await http(
            "GET", f"{url}/api/summary", headers={"Cookie": f"sz_session={session}x"}
        )
    assert (answer.status, answer.headers["location"]) == (303, "/")
    attributes = [
        part.strip().lower() for part in answer.headers["set-cookie"].split(";")
    ]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    assert TOKEN not in answer.headers["set-cookie"]
    assert summary.status == 200
    assert "jobs" in summary.json()
    assert page.status == 200
    assert 'name="sz-login" content="on"' in page.body.decode()
    assert metrics.status == 200
    assert forged.status == 401


async def test_a_wrong_token_gets_the_form_again_with_401_and_no_cookie() -> None:
    async with gateway(token=TOKEN) as url:
        answer = await log_in(url, TOKEN + "x")
        empty = await http("POST", f"{url}/login", body=b"", headers=FORM)
    assert answer.status == 401
    assert "set-cookie" not in answer.headers
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "That is not this server&#x27;s token." in answer.body.decode()
    assert empty.status == 401
    assert "set-cookie" not in empty.headers


async def test_a_login_from_another_sites_page_is_refused() -> None:
    async with gateway(token=TOKEN) as url:
        answer = await log_in(url, TOKEN, Origin="https://evil.example")
    assert answer.status == 403
    assert "set-cookie" not in answer.headers


async def test_logging_out_ends_the_session() -> None:
    async with gateway(token=TOKEN) as url:
        session = session_of(await log_in(url, TOKEN))
        cookie = {"Cookie": f"sz_session={session}"}
        before = await http("GET", f"{url}/api/summary", headers=cookie)
        out = await http("POST", f"{url}/logout", headers={**cookie, "Origin": url})
        after = await http("GET", f"{url}/api/summary", headers=cookie)
        foreign = await http(
            "POST", f"{url}/logout", headers={"Origin": "https://evil.example"}
        )
    assert before.status == 200
    assert (out.status, out.headers["location"]) == (303, "/login")
    assert out.headers["set-cookie"].startswith('sz_session=""')
    assert after.status == 401
    assert foreign.status == 403


# ---------------------------------------------------------------- summary


async def test_the_summary_counts_dead_letters_recent_restarts_and_lateness() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def echo(value: int) -> int:
        return value

    @sz.handler
    async def spare() -> None:
        pass

    async with sz, web.serve(sz, web.GatewaySettings(port=0)) as url:
        before = (await http("GET", f"{url}/api/summary")).json()
        assert before["jobs"]["retrying"] == 0
        assert before["dead_letters"] == 0
        assert before["actors"]["restarts_5m"] == 0
        assert before["lateness"] == {"fires": 0, "sum": 0.0}

        killed = await http("POST", f"{url}/api/actors/user/handlers/spare/kill")
        assert killed.status == 202
        await wait_until(lambda: _restarts(sz, "/user/handlers/spare") == 1)
        # Stopped for good: what is sent to it then is a dead letter.
        ref = sz.system.lookup("/user/handlers/spare")
        assert ref is not None
        await ref.stop()
        ref.tell("lost")
        await sz.schedule("echo", "interval", seconds=0.05, args=[1], id="often")

        async def counted() -> bool:
            now = (await http("GET", f"{url}/api/summary")).json()
            return bool(
                now["actors"]["restarts_5m"] >= 1
                and now["dead_letters"] >= 1
                and now["lateness"]["fires"] >= 1
            )

        await wait_until(counted, timeout=10)
        after = (await http("GET", f"{url}/api/summary")).json()
    # The restart is remembered although the restarted actor has gone since.
    assert after["actors"]["restarts_5m"] == 1
    assert after["lateness"]["sum"] >= 0


def _restarts(sz: ScheduleZero, path: str) -> int:
    found = sz.system.snapshot().find(path)
    return found.restarts if found is not None else -1
