"""``web.errors``: every error is a JSON body, and sz's errors get their status."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from actors import ActorStopped, AskTimeout
from sz import (
    JobFailed,
    JobTimeout,
    Overloaded,
    ScheduleNotFound,
    StoreError,
    SzError,
    UnknownTask,
)
from web.errors import error_for, json_error


@pytest.mark.parametrize("status", [400, 403, 404, 405, 413, 422, 429, 500, 503, 504])
def test_json_error_is_an_http_exception_with_a_json_body(status: int) -> None:
    error = json_error(status, "what went wrong", headers={"X-Why": "test"})
    assert isinstance(error, web.HTTPException)
    assert error.status == status
    assert error.content_type == "application/json"
    assert error.headers["X-Why"] == "test"
    assert error.text is not None
    assert json.loads(error.text) == {
        "error": {"status": status, "message": "what went wrong"}
    }


def test_json_error_uses_aiohttps_own_class_where_it_has_a_plain_one() -> None:
    assert isinstance(json_error(404, "x"), web.HTTPNotFound)
    assert isinstance(json_error(422, "x"), web.HTTPUnprocessableEntity)


def test_json_error_refuses_a_status_that_is_not_an_error() -> None:
    with pytest.raises(ValueError, match="from 400 to 599"):
        json_error(200, "fine")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ScheduleNotFound("no schedule with id 'x'"), 404),
        (UnknownTask("no handler for task 'x'"), 422),
        (Overloaded("busy", retry_after=2.2), 429),
        (JobTimeout("late", job_id="j"), 504),
        (StoreError("disk full"), 503),
        (SzError("the scheduler is not running"), 503),
        (SzError("the scheduler is stopping (drained): it takes no new job"), 503),
        (SzError("bad trigger"), 422),
        (AskTimeout("no answer"), 503),
        (ActorStopped("gone"), 503),
    ],
)
def test_error_for_gives_each_sz_error_its_status(
    error: Exception, status: int
) -> None:
    answer = error_for(error)
    assert answer is not None
    assert answer.status == status
    assert answer.text is not None
    assert json.loads(answer.text)["error"]["message"].endswith(str(error))


def test_overloaded_says_when_to_retry_in_whole_seconds() -> None:
    answer = error_for(Overloaded("busy", retry_after=2.2))
    assert answer is not None
    assert answer.headers["Retry-After"] == "3"


@pytest.mark.parametrize(
    "error", [JobFailed("failed", outcome="failure"), RuntimeError("bug")]
)
def test_error_for_leaves_what_is_not_a_callers_error(error: Exception) -> None:
    assert error_for(error) is None
