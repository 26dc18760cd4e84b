"""The gateway's aiohttp application: its routes, its guards, and JSON errors.

``make_app`` builds it for one scheduler; ``web.serve`` runs it. Every answer
that is not a success is a JSON body ``{"error": {"status": 404, "message":
"..."}}`` with that HTTP status: aiohttp's own (no such route, wrong method,
body too large), a guard's, a handler's, and any exception a handler did not
expect (500, its traceback in the ``web`` log and never in the answer).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web

from .access import ACCESS
from .api import MUTATIONS, add_api_routes
from .dashboard import add_dashboard_routes
from .events import add_event_routes
from .metrics import add_metrics_route
from .openapi import OPENAPI
from .security import security_middlewares
from .series import add_series_routes
from .settings import SETTINGS, GatewaySettings
from .summary import add_summary_routes
from .tests import add_tests_routes

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from aiohttp.typedefs import Handler

    from .access import SchedulerAccess

    RouteAdder = Callable[[web.Application], None]

__all__ = ["ROUTES", "SETTINGS", "make_app"]

logger = logging.getLogger("web")


def _json_error(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    # Private until web/errors.py (json_error) is merged beside this module.
    return web.json_response(
        {"error": {"status": status, "message": message}},
        status=status,
        headers=headers,
    )


def _message(request: web.Request, error: web.HTTPException) -> str:
    """What went wrong, in words: aiohttp's own errors say little by themselves."""
    default = f"{error.status}: {error.reason}"
    if error.text and error.text != default:
        return error.text
    if isinstance(error, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(error.allowed_methods))
        return f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    if isinstance(error, web.HTTPNotFound):
        return f"no route {request.method} {request.path}"
    return error.reason


#: Headers of an error that its JSON answer keeps (Allow, WWW-Authenticate,
#: Retry-After, ...): all but those describing the body it replaces.
_BODY_HEADERS = frozenset({hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH})


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400 or error.content_type == "application/json":
            raise  # a redirect, or an error already in the JSON form
        headers = {k: v for k, v in error.headers.items() if k not in _BODY_HEADERS}
        return _json_error(error.status, _message(request, error), headers)
    except Exception:
        # A bug: its traceback goes to the log, a plain word to the client.
        logger.exception("%s %s failed", request.method, request.path)
        return _json_error(500, "internal error: the gateway's log has the details")


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[_OPENAPI])


_OPENAPI: web.AppKey[Mapping[str, Any]] = web.AppKey("openapi")


def add_openapi_route(app: web.Application) -> None:
    """Mount ``GET /api/openapi.json``: the OpenAPI document of every route."""
    app[_OPENAPI] = OPENAPI
    app.router.add_get("/api/openapi.json", _openapi)


#: What mounts the gateway's routes, in order.
ROUTES: tuple[RouteAdder, ...] = (
    add_summary_routes,
    add_openapi_route,
    add_api_routes,
    add_metrics_route,
    add_series_routes,
    add_event_routes,
    add_tests_routes,
    add_dashboard_routes,
)


def make_app(
    access: SchedulerAccess,
    settings: GatewaySettings | None = None,
    *,
    extra_routes: Sequence[RouteAdder] = (),
) -> web.Application:
    """The gateway's application for the scheduler ``access`` reaches.

    Args:
        access: How handlers call the scheduler (``request.app[ACCESS]``).
        settings: The guards' settings, ``GatewaySettings()``'s by default.
        extra_routes: Functions that add routes of your own (each is called
            with the application), after the gateway's; under the same guards
            and JSON errors. None by default.
    """
    settings = settings if settings is not None else GatewaySettings()
    app = web.Application(
        middlewares=[_errors, *security_middlewares(settings)],
        client_max_size=settings.max_body_bytes,
    )
    app[ACCESS] = access
    app[SETTINGS] = settings
    app[MUTATIONS] = settings.mutations
    for add_routes in (*ROUTES, *extra_routes):
        add_routes(app)
    return app
