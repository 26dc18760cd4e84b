"""The retry rule, ``sz.retry.next_attempt``: a pure function, tested without actors."""

from __future__ import annotations

import attrs
import pytest

from sz.retry import LOST_JOB_RETRIES, Retry, next_attempt

# ---------------------------------------------------------- failure, timeout


def test_a_failure_within_the_handlers_retries_is_tried_again() -> None:
    assert next_attempt(1, 2) == Retry(attempt=2, reason="retry_after_failure")
    assert next_attempt(2, 2) == Retry(attempt=3, reason="retry_after_failure")


def test_a_failure_past_the_handlers_retries_ends_the_job_with_no_reason() -> None:
    assert next_attempt(3, 2) == Retry(attempt=None, reason=None)


def test_a_failure_of_a_handler_with_no_retries_ends_the_job() -> None:
    assert next_attempt(1, 0) == Retry(attempt=None, reason=None)


def test_a_failure_gets_no_lost_job_retries() -> None:
    assert next_attempt(2, 1).attempt is None


def test_a_failure_ignores_why() -> None:
    assert next_attempt(1, 1, why="worker_lost") == next_attempt(1, 1)


def test_a_failure_with_no_handler_ends_the_job() -> None:
    assert next_attempt(1, None) == Retry(attempt=None, reason=None)


# ----------------------------------------------------------------------- lost


def test_a_lost_job_gets_lost_job_retries_beyond_the_handlers_own() -> None:
    retries = 2
    last = retries + LOST_JOB_RETRIES
    for attempt in range(1, last + 1):
        assert next_attempt(attempt, retries, lost=True) == Retry(
            attempt=attempt + 1, reason="retry_after_crash"
        )
    assert next_attempt(last + 1, retries, lost=True) == Retry(
        attempt=None, reason=None
    )


def test_a_lost_job_of_a_handler_with_no_retries_still_gets_lost_job_retries() -> None:
    assert next_attempt(LOST_JOB_RETRIES, 0, lost=True).attempt == LOST_JOB_RETRIES + 1
    assert next_attempt(LOST_JOB_RETRIES + 1, 0, lost=True).attempt is None


@pytest.mark.parametrize("why", ["worker_lost", "worker_left", "crash"])
def test_a_lost_jobs_retry_says_how_it_was_lost(why: str) -> None:
    retry = next_attempt(1, 0, lost=True, why=why)
    assert (retry.attempt, retry.reason) == (2, f"retry_after_{why}")


@pytest.mark.parametrize("why", [None, ""])
def test_a_lost_job_with_no_word_of_why_was_lost_to_a_crash(why: str | None) -> None:
    assert next_attempt(1, 0, lost=True, why=why).reason == "retry_after_crash"


def test_a_lost_job_with_no_handler_ends_the_job() -> None:
    assert next_attempt(1, None, lost=True) == Retry(attempt=None, reason=None)


# -------------------------------------------------------------------- restart


def test_a_job_interrupted_by_a_restart_is_retried_after_the_restart() -> None:
    assert next_attempt(1, 0, lost=True, why="restart") == Retry(
        attempt=2, reason="retry_after_restart"
    )


def test_a_job_interrupted_too_often_ends_interrupted_by_restart() -> None:
    last = 1 + LOST_JOB_RETRIES
    assert next_attempt(last, 1, lost=True, why="restart").attempt == last + 1
    assert next_attempt(last + 1, 1, lost=True, why="restart") == Retry(
        attempt=None, reason="interrupted_by_restart"
    )


def test_a_job_interrupted_with_no_handler_to_take_it_up_ends_at_once() -> None:
    assert next_attempt(1, None, lost=True, why="restart") == Retry(
        attempt=None, reason="interrupted_by_restart"
    )


# ---------------------------------------------------------------------- Retry


def test_retry_is_frozen() -> None:
    retry = next_attempt(1, 1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        retry.attempt = 5  # type: ignore[misc]


@pytest.mark.parametrize("attempt", [0, 1, 2.0, True])
def test_retry_refuses_a_next_attempt_that_could_not_follow_one(
    attempt: object,
) -> None:
    with pytest.raises(ValueError, match="attempt"):
        Retry(attempt=attempt, reason=None)  # type: ignore[arg-type]
