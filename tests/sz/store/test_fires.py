"""``Fires``: the verdict on each fire of a round, and fires folded after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler import Job

from sz.store import Fires, Verdict

NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)


def fire(
    when: datetime,
    *,
    schedule: str = "s",
    coalesce: str = "earliest",
    jitter: timedelta = timedelta(0),
) -> Job:
    return Job(
        task_id="tick",
        executor="async",
        schedule_id=schedule,
        scheduled_fire_time=when + jitter,
        jitter=jitter,
        metadata={"coalesce": coalesce},
    )


def judge(fires: Fires, jobs: list[Job]) -> None:
    for job in jobs:
        fires.add(job)
    fires.flush()


def recorder() -> tuple[Fires, list[tuple[datetime | None, Verdict]]]:
    seen: list[tuple[datetime | None, Verdict]] = []
    return Fires(
        lambda job, verdict: seen.append((job.scheduled_fire_time, verdict))
    ), seen


def test_fires_up_to_a_fold_are_coalesced_and_later_ones_follow_the_policy() -> None:
    fires, seen = recorder()
    fires.fold("s", NOW)
    times = [NOW - 2 * HOUR, NOW - HOUR, NOW, NOW + HOUR / 4, NOW + HOUR / 2]
    judge(fires, [fire(when) for when in times])
    # Folded: everything up to the restart; then "earliest" among the rest.
    assert seen == [
        (times[0], "coalesced"),
        (times[1], "coalesced"),
        (times[2], "coalesced"),
        (times[4], "coalesced"),
        (times[3], "due"),
    ]


def test_a_fold_applies_to_its_schedules_next_round_only() -> None:
    fires, seen = recorder()
    fires.fold("s", NOW)
    judge(fires, [fire(NOW - HOUR)])
    assert seen == [(NOW - HOUR, "coalesced")]
    seen.clear()
    judge(fires, [fire(NOW - HOUR / 2)])
    assert seen == [(NOW - HOUR / 2, "due")]


def test_a_fold_leaves_other_schedules_alone_and_waits_for_its_own() -> None:
    fires, seen = recorder()
    fires.fold("s", NOW)
    judge(fires, [fire(NOW - HOUR, schedule="other", coalesce="all")])
    assert seen == [(NOW - HOUR, "due")]
    seen.clear()
    judge(fires, [fire(NOW - HOUR)])
    assert seen == [(NOW - HOUR, "coalesced")]


def test_a_fold_compares_fire_times_before_their_jitter() -> None:
    fires, seen = recorder()
    fires.fold("s", NOW)
    jittered = fire(NOW, jitter=timedelta(seconds=30))
    judge(fires, [jittered])
    assert seen == [(jittered.scheduled_fire_time, "coalesced")]


def test_an_unfolded_schedule_follows_its_policy_again() -> None:
    fires, seen = recorder()
    fires.fold("s", NOW)
    fires.unfold("s")
    judge(fires, [fire(NOW - HOUR), fire(NOW - HOUR / 2)])
    assert seen == [(NOW - HOUR / 2, "coalesced"), (NOW - HOUR, "due")]


def test_each_round_is_told_done_once_after_all_its_verdicts() -> None:
    seen: list[tuple[str, object]] = []
    fires = Fires(
        lambda job, verdict: seen.append((verdict, job.schedule_id)),
        lambda schedule_id: seen.append(("done", schedule_id)),
    )
    judge(fires, [fire(NOW - HOUR), fire(NOW - HOUR / 2), fire(NOW, schedule="t")])
    assert seen == [
        ("coalesced", "s"),
        ("due", "s"),
        ("done", "s"),
        ("due", "t"),
        ("done", "t"),
    ]
