"""Errors as the gateway answers them: a JSON body and a status, never a page.

Every error the API sends is ``{"error": {"status": 404, "message": "..."}}``
with that HTTP status. ``json_error`` builds one as aiohttp's own exception (a
handler raises it); ``error_for`` says which status an error of the scheduler
(``sz``) or of the actor runtime deserves, so that a handler and the
application's error middleware answer the same error the same way.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web, web_exceptions

from actors import ActorError, ActorStopped, AskTimeout
from sz import (
    JobFailed,
    JobTimeout,
    Overloaded,
    ScheduleNotFound,
    StoreError,
    SzError,
    TooManyRuns,
    UnknownScenario,
    UnknownTask,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["error_body", "error_for", "json_error"]

#: The start of the messages ``sz`` raises (as a plain ``SzError``) while the
#: scheduler is not running, is stopping or has stopped: the service is not
#: available, the request was not wrong. ``sz`` has no subclass for them.
_NOT_RUNNING = (
    "the scheduler is not running",
    "the scheduler is stopping",
    "the scheduler stopped",
)


class _JsonHTTPError(web.HTTPError):
    """An error status aiohttp has no plain exception class for (413, 405, ...)."""

    def __init__(self, status: int, **kwargs: Any) -> None:
        # HTTPException.__init__ reads the status from here.
        self.status_code = status
        super().__init__(**kwargs)


def _plain_classes() -> dict[int, type[web.HTTPException]]:
    """The exception class aiohttp has for each status, taking no extra argument."""
    found: dict[int, type[web.HTTPException]] = {}
    for name in web_exceptions.__all__:
        cls = getattr(web_exceptions, name)
        if (
            isinstance(cls, type)
            and issubclass(cls, web.HTTPError)
            and cls.status_code >= 400
            and cls.__init__ is web.HTTPException.__init__
        ):
            found[cls.status_code] = cls
    return found


_CLASSES = _plain_classes()


def error_body(status: int, message: str) -> str:
    """The JSON text of an error: ``{"error": {"status": ..., "message": ...}}``."""
    return json.dumps({"error": {"status": status, "message": message}})


def json_error(
    status: int, message: str, *, headers: Mapping[str, str] | None = None
) -> web.HTTPException:
    """The exception a handler raises to answer ``status`` with a JSON error body.

    Args:
        status: An HTTP error status, from 400 to 599.
        message: What went wrong, for a person to read.
        headers: Extra response headers (``Retry-After``, say), none by default.

    Returns:
        aiohttp's own class for the status (``web.HTTPNotFound`` for 404) where
        it has a plain one, else an ``HTTPError`` carrying the status.

    Raises:
        ValueError: ``status`` is not an error status.
    """
    if not 400 <= status <= 599:
        raise ValueError(f"an error status is from 400 to 599, got {status}")
    kwargs: dict[str, Any] = {
        "text": error_body(status, message),
        "content_type": "application/json",
        "headers": dict(headers) if headers else None,
    }
    cls = _CLASSES.get(status)
    if cls is not None:
        return cls(**kwargs)
    return _JsonHTTPError(status, **kwargs)


def error_for(exc: BaseException) -> web.HTTPException | None:
    """The JSON error that answers ``exc``, or None if it is not the caller's.

    ============================  =====================================
    error                         answer
    ============================  =====================================
    ``ScheduleNotFound``          404
    ``UnknownTask``               422 (the task is named in the body
                                  or the query, never in the path)
    ``UnknownScenario``           404
    ``TooManyRuns``               429 with ``Retry-After: 5``
    ``Overloaded``                429 with ``Retry-After`` (seconds)
    ``JobTimeout``                504
    ``StoreError``                503 (the store cannot be used now)
    not running or stopping       503
    ``AskTimeout``                503 with ``Retry-After: 1`` (an actor
                                  of the scheduler is too busy)
    ``ActorStopped``              503
    any other ``SzError``         422 (bad input: the message says which)
    ``JobFailed``                 None: where a result is asked, a job's
                                  end is an answer (200), not an error
    anything else                 None (the middleware answers 500)
    ============================  =====================================
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ScheduleNotFound):
        return json_error(404, message)
    if isinstance(exc, UnknownTask):
        return json_error(422, message)
    if isinstance(exc, UnknownScenario):
        return json_error(404, message)
    if isinstance(exc, TooManyRuns):
        # A run takes seconds to minutes: a few seconds is a fair first wait.
        return json_error(429, message, headers={"Retry-After": "5"})
    if isinstance(exc, Overloaded):
        retry = exc.retry_after
        seconds = max(1, math.ceil(retry)) if math.isfinite(retry) else 60
        return json_error(429, message, headers={"Retry-After": str(seconds)})
    if isinstance(exc, JobTimeout):
        return json_error(504, message)
    if isinstance(exc, AskTimeout):
        return json_error(
            503, f"the scheduler is busy: {message}", headers={"Retry-After": "1"}
        )
    if isinstance(exc, ActorStopped | StoreError):
        return json_error(503, message)
    if isinstance(exc, JobFailed):
        return None
    if isinstance(exc, SzError):
        if message.startswith(_NOT_RUNNING):
            return json_error(503, message)
        return json_error(422, message)
    if isinstance(exc, ActorError) and "has not started" in message:
        return json_error(503, message)
    return None
