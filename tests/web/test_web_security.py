"""The gateway's guards, one test per rule, and its JSON errors, on a live server.

Each test serves a real gateway on 127.0.0.1 (port 0) beside a running
scheduler, with a route of the test's own where a rule needs one that takes
a POST or raises.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web as aioweb
from web_http import http

import web
from sz import ScheduleZero, SzError
from web.security import check_bind, is_loopback

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TOKEN = "s3cret-token-of-24-chars"


async def _echo(request: aioweb.Request) -> aioweb.Response:
    return aioweb.json_response({"got": len(await request.read())})


async def _broken(request: aioweb.Request) -> aioweb.Response:
    raise RuntimeError("a bug in a handler")


def _test_routes(app: aioweb.Application) -> None:
    app.router.add_post("/api/test/echo", _echo)
    app.router.add_get("/api/test/broken", _broken)


@asynccontextmanager
async def gateway(**settings: Any) -> AsyncIterator[str]:
    async with (
        ScheduleZero() as sz,
        web.serve(
            sz, web.GatewaySettings(port=0, **settings), extra_routes=[_test_routes]
        ) as url,
    ):
        yield url


def error_of(answer: Any) -> tuple[int, str]:
    body = answer.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == answer.status
    return answer.status, body["error"]["message"]


# ------------------------------------------------------------------- token


async def test_with_a_token_a_request_without_it_gets_401() -> None:
    async with gateway(token=TOKEN) as url:
        answer = await http("GET", f"{url}/api/summary")
    assert error_of(answer) == (
        401,
        "missing or wrong token: send Authorization: Bearer <token>",
    )
    assert answer.headers["www-authenticate"] == 'Bearer realm="sz"'


async def test_with_a_token_a_wrong_one_gets_401() -> None:
    async with gateway(token=TOKEN) as url:
        wrong = await http(
            "GET", f"{url}/api/summary", headers={"Authorization": f"Bearer {TOKEN}x"}
        )
        basic = await http(
            "GET", f"{url}/api/summary", headers={"Authorization": f"Basic {TOKEN}"}
        )
    assert wrong.status == basic.status == 401


async def test_with_a_token_the_right_one_gets_in() -> None:
    async with gateway(token=TOKEN) as url:
        answer = await http(
            "GET", f"{url}/api/summary", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert answer.status == 200
    assert "jobs" in answer.json()


async def test_with_a_token_even_an_unknown_route_needs_it() -> None:
    async with gateway(token=TOKEN) as url:
        answer = await http("GET", f"{url}/api/nothing-here")
    assert answer.status == 401


def test_the_token_never_shows_in_the_settings_repr() -> None:
    assert TOKEN not in repr(web.GatewaySettings(token=TOKEN))


def test_a_short_token_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="at least 16 characters") as caught:
        web.GatewaySettings(token="hunter2")
    assert "hunter2" not in str(caught.value)


# -------------------------------------------------------------------- host


async def test_a_foreign_host_header_is_refused_with_421() -> None:
    async with gateway() as url:
        answer = await http(
            "GET", f"{url}/api/summary", headers={"Host": "evil.example:8080"}
        )
    assert error_of(answer) == (
        421,
        (
            "host 'evil.example:8080' is not one this gateway answers to "
            "(web.allowed_hosts)"
        ),
    )


@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1", "[::1]:80"])
async def test_this_machines_names_are_allowed_hosts_by_default(host: str) -> None:
    async with gateway() as url:
        answer = await http("GET", f"{url}/api/summary", headers={"Host": host})
    assert answer.status == 200


async def test_allowed_hosts_lets_in_the_names_it_lists_only() -> None:
    async with gateway(allowed_hosts=["sz.example.com"]) as url:
        named = await http(
            "GET", f"{url}/api/summary", headers={"Host": "SZ.example.com:8080"}
        )
        local = await http("GET", f"{url}/api/summary", headers={"Host": "localhost"})
    assert named.status == 200
    assert local.status == 421


# ------------------------------------------------------------------ origin


async def test_a_post_from_a_foreign_origin_is_refused_with_403() -> None:
    async with gateway() as url:
        answer = await http(
            "POST",
            f"{url}/api/test/echo",
            body=b"{}",
            headers={"Origin": "https://evil.example"},
        )
    assert error_of(answer) == (
        403,
        (
            "requests from https://evil.example may not change anything here "
            "(web.allow_origins)"
        ),
    )


async def test_a_cross_site_post_without_origin_is_refused_with_403() -> None:
    async with gateway() as url:
        answer = await http(
            "POST",
            f"{url}/api/test/echo",
            body=b"{}",
            headers={"Sec-Fetch-Site": "cross-site"},
        )
    assert answer.status == 403


async def test_a_post_from_the_gateways_own_or_an_allowed_origin_gets_through() -> None:
    async with gateway(allow_origins=["https://ops.example.com"]) as url:
        own = await http(
            "POST", f"{url}/api/test/echo", body=b"{}", headers={"Origin": url}
        )
        allowed = await http(
            "POST",
            f"{url}/api/test/echo",
            body=b"{}",
            headers={"Origin": "https://ops.example.com"},
        )
        program = await http("POST", f"{url}/api/test/echo", body=b"{}")
    assert own.status == allowed.status == program.status == 200


async def test_no_cors_header_is_ever_sent() -> None:
    async with gateway(allow_origins=["https://ops.example.com"]) as url:
        answer = await http(
            "GET", f"{url}/api/summary", headers={"Origin": "https://ops.example.com"}
        )
    assert answer.status == 200
    assert not [h for h in answer.headers if h.startswith("access-control-")]


# -------------------------------------------------------------------- body


async def test_a_body_over_the_cap_is_refused_with_413() -> None:
    async with gateway(max_body_bytes=1024) as url:
        over = await http("POST", f"{url}/api/test/echo", body=b"x" * 1025)
        under = await http("POST", f"{url}/api/test/echo", body=b"x" * 1024)
    assert error_of(over) == (
        413,
        "the body is 1,025 bytes, more than the 1,024 taken (web.max_body_bytes)",
    )
    assert under.json() == {"got": 1024}


# ------------------------------------------------------- where it listens


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "sz.example.com"])
def test_a_host_beyond_this_machine_without_a_token_is_refused(host: str) -> None:
    with pytest.raises(SzError) as caught:
        check_bind(host, None)
    assert str(caught.value) == (
        f"web gateway: refusing to listen on {host} without a token: set "
        "web.token (16 characters or more), or listen on 127.0.0.1"
    )
    assert "\n" not in str(caught.value)
    check_bind(host, TOKEN)  # with a token, it may


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_host_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, None)


# ------------------------------------------------------------------ errors


async def test_an_unknown_route_is_a_json_404() -> None:
    async with gateway() as url:
        answer = await http("GET", f"{url}/api/nothing-here")
    assert error_of(answer) == (404, "no route GET /api/nothing-here")


async def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones() -> None:
    async with gateway() as url:
        answer = await http("DELETE", f"{url}/api/summary")
    assert error_of(answer) == (
        405,
        "DELETE is not allowed on /api/summary (allowed: GET, HEAD)",
    )
    assert answer.headers["allow"] == "GET,HEAD"


async def test_a_handler_that_raises_is_a_json_500_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="web"):
        async with gateway() as url:
            answer = await http("GET", f"{url}/api/test/broken")
    assert error_of(answer) == (
        500,
        "internal error: the gateway's log has the details",
    )
    assert b"Traceback" not in answer.body
    assert b"a bug in a handler" not in answer.body
    [record] = [r for r in caplog.records if r.name == "web"]
    assert record.getMessage() == "GET /api/test/broken failed"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "a bug in a handler"
