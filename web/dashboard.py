"""The dashboard: its page, its static files, and the login form that opens a session.

The page is plain HTML, CSS and JavaScript modules under ``web/static``, served
as they are (no build step), each answer with ``Cache-Control: no-cache`` (so a
new version shows on the next load) and a Content-Security-Policy that lets the
page run only its own scripts, from files, never inline. The JavaScript reads
the JSON API and the event stream; this module only serves files and sessions.

With a token set (``web.token``), the page, the login form and the static files
are open (they hold no data); the API is not. ``POST /login`` with the right
token opens a session (``web.sessions``): a cookie ``sz_session`` that is
HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends
it). Without a token there is nothing to log in to: ``/login`` leads to the page.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import re
from pathlib import Path
from typing import Final

from aiohttp import hdrs, web

from .api import MUTATIONS
from .security import bearer_matches
from .sessions import COOKIE, SESSION_LIFETIME, SESSIONS, Sessions
from .settings import SETTINGS, GatewaySettings

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC", "add_dashboard_routes"]

#: Where the page's files live.
STATIC: Final = Path(__file__).parent / "static"

#: The page may load and connect to its own origin only; no inline script or
#: style, no plugin, no frame around it.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_TYPES: Final = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}

#: What a static file's name may be: lower-case words in folders, a known suffix.
_NAME: Final = re.compile(r"^(?:[a-z0-9_-]+/)*[a-z0-9_-]+\.(?:html|css|js|svg)$")

_HEADERS: Final = {
    hdrs.CACHE_CONTROL: "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


async def _file(name: str) -> bytes | None:
    """The static file ``name``, read off the loop; None if there is none."""
    if not _NAME.match(name):
        return None
    return await asyncio.to_thread(_read, STATIC / name)


def _answer(body: bytes, suffix: str, status: int = 200) -> web.Response:
    return web.Response(
        body=body,
        status=status,
        content_type=_TYPES[suffix],
        charset="utf-8",
        headers=_HEADERS,
    )


def _token(request: web.Request) -> bytes | None:
    settings = request.app.get(SETTINGS) or GatewaySettings()
    return settings.token.encode() if settings.token is not None else None


def _signed_in(request: web.Request, token: bytes) -> bool:
    sessions = request.app[SESSIONS]
    return sessions.valid(request.cookies.get(COOKIE)) or bearer_matches(request, token)


async def page(request: web.Request) -> web.StreamResponse:
    """``GET /``: the dashboard; with a token and no session, the login form."""
    token = _token(request)
    if token is not None and not _signed_in(request, token):
        raise web.HTTPSeeOther("/login")
    body = await _file("index.html")
    if body is None:  # a broken installation
        raise web.HTTPNotFound(text="the dashboard's files are missing")
    # What the page cannot ask the API without trying: whether kills are
    # allowed, and whether there is a session to log out of.
    text = body.decode().replace(
        "{{mutations}}", "on" if request.app.get(MUTATIONS, True) else "off"
    )
    text = text.replace("{{login}}", "on" if token is not None else "off")
    return _answer(text.encode(), ".html")


async def static(request: web.Request) -> web.Response:
    """``GET /static/{name}``: one of the page's files; a JSON 404 if none."""
    name = request.match_info["name"]
    body = await _file(name)
    if body is None:
        raise web.HTTPNotFound(text=f"no static file {name!r}")
    return _answer(body, Path(name).suffix)


_LOGIN_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ScheduleZero · sign in</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css">
</head>
<body class="login">
<form class="login-box" method="post" action="/login">
<h1><span class="logo">SZ</span> ScheduleZero</h1>
<p>This server asks for its token (<code>web.token</code>).</p>
{message}
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password"
 required autofocus>
<button type="submit" class="primary">Sign in</button>
</form>
</body>
</html>
"""


def _login_page(message: str | None = None, status: int = 200) -> web.Response:
    shown = (
        f'<p class="login-error" role="alert">{html.escape(message)}</p>'
        if message
        else ""
    )
    return _answer(_LOGIN_PAGE.format(message=shown).encode(), ".html", status)


async def login_form(request: web.Request) -> web.StreamResponse:
    """``GET /login``: the form; without a token, the dashboard itself."""
    if _token(request) is None:
        raise web.HTTPSeeOther("/")
    return _login_page()


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /login`` (form field ``token``): open a session, or say why not.

    The right token: a new session, its cookie, and 303 to the dashboard.
    A wrong one: the form again, with a message, and 401.
    """
    token = _token(request)
    if token is None:
        raise web.HTTPSeeOther("/")
    form = await request.post()
    given = form.get("token")
    # compare_digest takes as long whatever matches: no timing oracle.
    if not (
        isinstance(given, str) and hmac.compare_digest(given.strip().encode(), token)
    ):
        return _login_page("That is not this server's token.", status=401)
    session_id = request.app[SESSIONS].open()
    answer = web.HTTPSeeOther("/")
    answer.set_cookie(
        COOKIE,
        session_id,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure or None,
        max_age=int(SESSION_LIFETIME),
    )
    raise answer


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /logout``: end the session, forget its cookie, 303 to the form."""
    request.app[SESSIONS].close(request.cookies.get(COOKIE))
    answer = web.HTTPSeeOther("/login" if _token(request) is not None else "/")
    answer.del_cookie(COOKIE, path="/", samesite="Strict")
    raise answer


def add_dashboard_routes(app: web.Application) -> None:
    """Mount the dashboard: ``/``, ``/static/...``, ``/login`` and ``/logout``."""
    app[SESSIONS] = Sessions()
    router = app.router
    router.add_get("/", page)
    router.add_get("/static/{name:.+}", static)
    router.add_get("/login", login_form)
    router.add_post("/login", login)
    router.add_post("/logout", logout)
