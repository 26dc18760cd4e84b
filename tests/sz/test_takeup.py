"""The verdicts on the jobs of one schedule taken up after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sz.takeup import Coalesce, SchedulePolicy, take_up_verdicts

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

#: Three jobs, 3, 2 and 1 hours late, given out of their order.
LATE = [NOW - 2 * HOUR, NOW - 3 * HOUR, NOW - HOUR]


def test_a_job_past_its_grace_is_missed_whatever_the_policy() -> None:
    for coalesce in ("latest", "earliest", "all"):
        policy = SchedulePolicy(grace=HOUR / 2, coalesce=coalesce)
        assert take_up_verdicts(LATE, policy, NOW) == ["missed"] * 3


def test_a_job_exactly_at_the_end_of_its_grace_is_kept() -> None:
    policy = SchedulePolicy(grace=HOUR)
    assert take_up_verdicts([NOW - HOUR], policy, NOW) == ["kept"]
    late = NOW - HOUR - timedelta(microseconds=1)
    assert take_up_verdicts([late], policy, NOW) == ["missed"]


def test_without_a_grace_no_job_is_missed() -> None:
    policy = SchedulePolicy(grace=None, coalesce="all")
    assert take_up_verdicts([NOW - 300 * 24 * HOUR], policy, NOW) == ["kept"]


@pytest.mark.parametrize("fires_due", [False, True])
def test_all_keeps_every_job_within_its_grace(fires_due: bool) -> None:
    policy = SchedulePolicy(grace=2.5 * HOUR, coalesce="all", fires_due=fires_due)
    assert take_up_verdicts(LATE, policy, NOW) == ["kept", "missed", "kept"]


def test_latest_keeps_the_latest_and_coalesces_the_others() -> None:
    policy = SchedulePolicy(coalesce="latest")
    assert take_up_verdicts(LATE, policy, NOW) == ["coalesced", "coalesced", "kept"]


def test_latest_coalesces_every_job_when_a_fire_of_the_downtime_will_run() -> None:
    policy = SchedulePolicy(coalesce="latest", fires_due=True)
    assert take_up_verdicts(LATE, policy, NOW) == ["coalesced"] * 3


@pytest.mark.parametrize("fires_due", [False, True])
def test_earliest_keeps_the_earliest_and_coalesces_the_others(
    fires_due: bool,
) -> None:
    policy = SchedulePolicy(coalesce="earliest", fires_due=fires_due)
    assert take_up_verdicts(LATE, policy, NOW) == ["coalesced", "kept", "coalesced"]


@pytest.mark.parametrize(
    ("coalesce", "kept"),
    [
        ("earliest", ["missed", "kept", "coalesced"]),
        ("latest", ["missed", "coalesced", "kept"]),
    ],
)
def test_the_kept_job_is_chosen_among_those_within_their_grace(
    coalesce: Coalesce, kept: list[str]
) -> None:
    policy = SchedulePolicy(grace=2.5 * HOUR, coalesce=coalesce)
    times = [NOW - 3 * HOUR, NOW - 2 * HOUR, NOW - HOUR]
    assert take_up_verdicts(times, policy, NOW) == kept


def test_equal_fire_times_keep_the_first_given() -> None:
    same = [NOW - HOUR, NOW - HOUR]
    for coalesce in ("latest", "earliest"):
        policy = SchedulePolicy(coalesce=coalesce)
        assert take_up_verdicts(same, policy, NOW) == ["kept", "coalesced"]


def test_no_jobs_no_verdicts() -> None:
    assert take_up_verdicts([], SchedulePolicy(coalesce="latest"), NOW) == []
