"""The gateway's guards: who may listen where, and which requests get through.

Each rule is an aiohttp middleware that refuses with a plain HTTP error whose
text is the message; the error middleware of ``web.app`` turns it into the JSON
body every error has. In the order they run:

- ``Host`` must name an allowed host (DNS rebinding: a page of another site
  reaching this one through a name of its own that resolves here);
- with a token, every request bears it (``Authorization: Bearer``), compared in
  constant time, or the cookie of a dashboard session (``web.sessions``); the
  dashboard's page, login form and static files excepted (``is_open``);
- a request that changes state (POST, PUT, PATCH, DELETE) sent by a browser
  comes from the gateway's own origin or an allowed one (cross-site request
  forgery);
- a body declared larger than the cap is refused before it is read (aiohttp's
  ``client_max_size`` refuses one that only turns out larger).

No CORS header is ever sent: another origin's script cannot read an answer.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from sz import SzError

from .sessions import COOKIE, SESSIONS

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler, Middleware

    from .settings import GatewaySettings

__all__ = [
    "OPEN_PATHS",
    "OPEN_PREFIXES",
    "STATE_CHANGING",
    "bearer_matches",
    "check_bind",
    "is_loopback",
    "is_open",
    "origin_allowed",
    "security_middlewares",
]

#: The methods whose requests change state: their ``Origin`` is checked.
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: Paths served without the token when one is set: the dashboard's page (it
#: sends a browser without a session to the login form), the form itself and
#: logout. Everything else stays behind the token.
OPEN_PATHS: frozenset[str] = frozenset({"/", "/login", "/logout"})

#: Path prefixes served without the token: the dashboard's static files
#: (code and style, no data).
OPEN_PREFIXES: tuple[str, ...] = ("/static/",)


def is_open(path: str) -> bool:
    """Whether ``path`` is served without the token when one is set."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address of this machine only (or ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token.

    Raises:
        SzError: ``host`` is not a loopback address and ``token`` is None.
    """
    if token is None and not is_loopback(host):
        raise SzError(
            f"web gateway: refusing to listen on {host} without a token: set "
            "web.token (16 characters or more), or listen on 127.0.0.1"
        )


def _host_name(header: str) -> str:
    """The host name of a ``Host`` header: lower case, its port and brackets gone."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else header
    name, colon, port = header.rpartition(":")
    if colon and ":" not in name and port.isdigit():
        header = name
    return header.removesuffix(".")


def _bearer(request: web.Request) -> bytes | None:
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip().encode()


def bearer_matches(request: web.Request, token: bytes) -> bool:
    """Whether the request bears ``token`` (``Authorization: Bearer``).

    Compared in constant time: ``compare_digest`` takes as long whatever
    matches, so no timing tells how much of a guess was right.
    """
    given = _bearer(request)
    return given is not None and hmac.compare_digest(given, token)


def _has_session(request: web.Request) -> bool:
    """Whether the request bears a live dashboard session's cookie.

    The dashboard's login form sets it (``web.dashboard``); an application
    without the dashboard's routes has no sessions.
    """
    sessions = request.app.get(SESSIONS)
    return sessions is not None and sessions.valid(request.cookies.get(COOKIE))


def origin_allowed(request: web.Request, allowed: frozenset[str]) -> bool:
    """Whether a browser sent ``request`` from an origin allowed to send it.

    A request without ``Origin`` comes from a program, not a page (browsers
    send it with every POST), unless ``Sec-Fetch-Site`` says another site.
    The gateway's own origin is always allowed. The event stream checks its
    GET requests with this too.
    """
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in (
            "same-origin",
            "none",
        )
    origin = origin.strip().lower().rstrip("/")
    if origin in allowed:
        return True
    own = f"{request.scheme}://{request.headers.get(hdrs.HOST, '')}".lower()
    return origin == own


def security_middlewares(settings: GatewaySettings) -> list[Middleware]:
    """The guards ``settings`` asks for, outermost first."""
    hosts = settings.host_names()
    token = settings.token.encode() if settings.token is not None else None
    origins = frozenset(o.lower().rstrip("/") for o in settings.allow_origins)
    max_body = settings.max_body_bytes

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get(hdrs.HOST)
        if header is None:
            raise web.HTTPBadRequest(text="the request has no Host header")
        if hosts is not None and _host_name(header) not in hosts:
            raise web.HTTPMisdirectedRequest(
                text=f"host {header!r} is not one this gateway answers to "
                "(web.allowed_hosts)"
            )
        return await handler(request)

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            token is not None
            and not is_open(request.path)
            and not (bearer_matches(request, token) or _has_session(request))
        ):
            raise web.HTTPUnauthorized(
                text="missing or wrong token: send Authorization: Bearer <token>",
                headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="sz"'},
            )
        return await handler(request)

    @web.middleware
    async def check_origin(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if request.method in STATE_CHANGING and not origin_allowed(request, origins):
            origin = request.headers.get(hdrs.ORIGIN, "another site")
            raise web.HTTPForbidden(
                text=f"requests from {origin} may not change anything here "
                "(web.allow_origins)"
            )
        return await handler(request)

    @web.middleware
    async def cap_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > max_body:
            raise web.HTTPRequestEntityTooLarge(
                max_size=max_body,
                actual_size=length,
                text=f"the body is {length:,} bytes, more than the "
                f"{max_body:,} taken (web.max_body_bytes)",
            )
        return await handler(request)

    return [check_host, check_token, check_origin, cap_body]
