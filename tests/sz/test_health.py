from __future__ import annotations

import random
from typing import Any

import attrs
import pytest
from hypothesis import given, strategies as st

from sz.health import HandlerHealth, HealthPolicy, HealthTracker

#: Timings far apart so that each test states the times it depends on.
POLICY = HealthPolicy(
    window=10,
    degraded_ratio=0.2,
    unhealthy_ratio=0.5,
    min_samples=5,
    cooldown=5.0,
    trials=1,
    heartbeat_timeout=None,
    ewma_alpha=0.5,
)


def run(tracker: HealthTracker, now: float, *outcomes: bool) -> None:
    """Start and finish one job per outcome at ``now``, one after the other."""
    for success in outcomes:
        tracker.record_start(now)
        tracker.record_finish(now, success=success, duration=1.0)


@pytest.mark.parametrize(
    "options",
    [
        {"window": 0},
        {"window": True},
        {"degraded_ratio": 0.0},
        {"degraded_ratio": 1.5},
        {"unhealthy_ratio": 0.1},  # below degraded_ratio
        {"min_samples": 0},
        {"min_samples": 101},  # above window
        {"cooldown": -1.0},
        {"trials": 0},
        {"trial_timeout": 0.0},
        {"heartbeat_timeout": 0.0},
        {"ewma_alpha": 0.0},
        {"ewma_alpha": 1.1},
    ],
)
def test_policy_rejects_out_of_range_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        HealthPolicy(**options)


def test_policy_defaults_are_the_documented_ones() -> None:
    assert HealthPolicy() == HealthPolicy(
        window=100,
        degraded_ratio=0.2,
        unhealthy_ratio=0.5,
        min_samples=50,
        cooldown=5.0,
        trials=1,
        trial_timeout=60.0,
        heartbeat_timeout=3.0,
        ewma_alpha=0.2,
    )


def test_new_handler_is_healthy_and_accepts_jobs() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    assert tracker.state(0.0) == "healthy"
    assert tracker.accepts_job(0.0)


def test_fewer_outcomes_than_min_samples_are_not_judged() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    run(tracker, 1.0, False, False, False, False)
    assert tracker.state(1.0) == "healthy"
    run(tracker, 1.0, False)
    assert tracker.state(1.0) == "unhealthy"


def test_handler_goes_through_every_state_and_back_to_healthy() -> None:
    policy = attrs.evolve(POLICY, heartbeat_timeout=3.0)
    tracker = HealthTracker(policy, now=0.0)
    run(tracker, 1.0, True, True, True, True, False)  # 1/5 failed
    assert tracker.state(1.0) == "degraded"
    assert tracker.accepts_job(1.0)
    run(tracker, 1.0, False, False, False)  # 4/8 failed
    assert tracker.state(1.0) == "unhealthy"
    assert not tracker.accepts_job(1.0)
    assert tracker.state(4.0) == "dead"
    assert not tracker.accepts_job(4.0)
    tracker.record_heartbeat(4.5)
    assert tracker.state(4.5) == "unhealthy"
    assert tracker.snapshot(4.5).trial  # back from dead: straight to half-open
    run(tracker, 4.5, True)  # the trial
    assert tracker.state(4.5) == "healthy"


def test_degraded_handler_recovers_as_old_failures_age_out_of_the_window() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    run(tracker, 1.0, False, True, True, True, True)
    assert tracker.state(1.0) == "degraded"
    run(tracker, 2.0, *[True] * 5)  # 1/10: still in the window, below 0.2
    assert tracker.state(2.0) == "healthy"
    run(tracker, 3.0, False, False)  # the first failure aged out: 2/10
    assert tracker.state(3.0) == "degraded"
    run(tracker, 4.0, *[True] * 10)  # both failures pushed out
    assert tracker.state(4.0) == "healthy"
    assert tracker.snapshot(4.0).failure_ratio == 0.0


def test_unhealthy_handler_recovers_through_a_trial_job_after_cooldown() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    run(tracker, 10.0, *[False] * 5)
    assert tracker.state(10.0) == "unhealthy"
    assert not tracker.accepts_job(14.9)
    assert not tracker.snapshot(14.9).trial
    assert tracker.accepts_job(15.0)
    assert tracker.snapshot(15.0).trial
    tracker.record_start(15.0)
    assert not tracker.accepts_job(15.0)  # one trial in flight is the limit
    assert tracker.state(15.0) == "unhealthy"
    tracker.record_finish(16.0, success=True, duration=1.0)
    assert tracker.state(16.0) == "healthy"
    snapshot = tracker.snapshot(16.0)
    assert snapshot.failure_ratio == 0.0
    assert not snapshot.trial
    assert (snapshot.successes, snapshot.failures) == (1, 5)


def test_several_trials_need_that_many_consecutive_successes() -> None:
    tracker = HealthTracker(attrs.evolve(POLICY, trials=2), now=0.0)
    run(tracker, 0.0, *[False] * 5)
    tracker.record_start(5.0)
    tracker.record_start(5.0)
    assert not tracker.accepts_job(5.0)
    tracker.record_finish(6.0, success=True, duration=1.0)
    assert tracker.state(6.0) == "unhealthy"
    assert tracker.accepts_job(6.0)
    tracker.record_finish(6.0, success=True, duration=1.0)
    assert tracker.state(6.0) == "healthy"


def test_trial_failure_reopens_the_circuit_and_restarts_the_cooldown() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    run(tracker, 0.0, *[False] * 5)
    tracker.record_start(5.0)
    tracker.record_finish(7.0, success=False, duration=2.0)
    assert tracker.state(7.0) == "unhealthy"
    assert not tracker.accepts_job(11.9)
    assert tracker.accepts_job(12.0)
    run(tracker, 12.0, True)
    assert tracker.state(12.0) == "healthy"


def test_old_failures_do_not_count_after_recovery() -> None:
    # A counter that never forgets (failures > successes * 0.5) would call this
    # handler unhealthy for its next twenty jobs; the window has forgotten them.
    tracker = HealthTracker(POLICY, now=0.0)
    run(tracker, 0.0, *[False] * 5)
    run(tracker, 5.0, True)  # the trial
    run(tracker, 6.0, False, True, True, True, True)
    snapshot = tracker.snapshot(6.0)
    assert snapshot.failures > snapshot.successes * 0.5
    assert snapshot.state == "degraded"
    assert snapshot.failure_ratio == pytest.approx(0.2)
    run(tracker, 7.0, True, True, True, True, True)
    assert tracker.state(7.0) == "healthy"


def test_job_from_before_the_circuit_opened_is_not_taken_for_a_trial() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    tracker.record_start(0.0)  # still running when the circuit opens
    run(tracker, 0.0, *[False] * 5)
    tracker.record_finish(6.0, success=True, duration=6.0)
    assert tracker.state(6.0) == "unhealthy"
    assert tracker.accepts_job(6.0)


def test_handler_is_dead_after_heartbeat_timeout_and_back_on_heartbeat() -> None:
    tracker = HealthTracker(attrs.evolve(POLICY, heartbeat_timeout=3.0), now=0.0)
    tracker.record_heartbeat(2.0)
    assert tracker.state(4.9) == "healthy"
    assert tracker.state(5.0) == "dead"
    assert not tracker.accepts_job(5.0)
    assert tracker.snapshot(5.0).uptime == 5.0
    tracker.record_heartbeat(9.0)
    assert tracker.state(9.0) == "healthy"
    assert tracker.accepts_job(9.0)
    snapshot = tracker.snapshot(10.0)
    assert (snapshot.last_seen, snapshot.uptime) == (9.0, 1.0)


def test_dead_handler_comes_back_to_the_state_its_window_says() -> None:
    tracker = HealthTracker(attrs.evolve(POLICY, heartbeat_timeout=3.0), now=0.0)
    run(tracker, 0.0, False, True, True, True, True)
    assert tracker.state(3.0) == "dead"
    tracker.record_heartbeat(3.0)
    assert tracker.state(3.0) == "degraded"


def test_jobs_and_their_finishes_are_signs_of_life_but_lost_jobs_are_not() -> None:
    tracker = HealthTracker(attrs.evolve(POLICY, heartbeat_timeout=3.0), now=0.0)
    tracker.record_start(2.0)
    tracker.record_start(2.0)
    assert tracker.state(4.0) == "healthy"
    tracker.record_finish(4.0, success=True, duration=2.0)
    assert tracker.state(6.9) == "healthy"
    assert tracker.state(7.0) == "dead"
    tracker.record_lost(8.0)
    snapshot = tracker.snapshot(8.0)
    assert (snapshot.state, snapshot.active, snapshot.failures) == ("dead", 0, 1)


def test_lost_trial_job_reopens_the_circuit() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    run(tracker, 0.0, *[False] * 5)
    tracker.record_start(5.0)
    tracker.record_lost(6.0)
    assert not tracker.accepts_job(10.9)
    assert tracker.accepts_job(11.0)


def test_without_heartbeat_timeout_a_handler_never_dies() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    assert tracker.state(1e9) == "healthy"


def test_average_duration_is_an_exponentially_weighted_moving_average() -> None:
    tracker = HealthTracker(POLICY, now=0.0)  # ewma_alpha=0.5
    assert tracker.snapshot(0.0).avg_duration is None
    for duration in [4.0, 2.0, 1.0]:
        tracker.record_start(0.0)
        tracker.record_finish(0.0, success=duration != 2.0, duration=duration)
    # 4 -> 0.5*2 + 0.5*4 = 3 -> 0.5*1 + 0.5*3 = 2: failures' durations count too.
    assert tracker.snapshot(0.0).avg_duration == pytest.approx(2.0)


def test_negative_duration_is_rejected() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    with pytest.raises(ValueError, match="duration"):
        tracker.record_finish(0.0, success=True, duration=-1.0)


def test_snapshot_reports_every_field() -> None:
    tracker = HealthTracker(attrs.evolve(POLICY, heartbeat_timeout=3.0), now=10.0)
    run(tracker, 11.0, True, True, True, False)
    tracker.record_start(12.0)
    tracker.record_start(12.0)
    assert tracker.snapshot(13.0) == HandlerHealth(
        state="healthy",  # 1/4 failed, but fewer than min_samples
        last_seen=12.0,
        uptime=3.0,
        successes=3,
        failures=1,
        failure_ratio=0.25,
        avg_duration=1.0,
        active=2,
        trial=False,
    )


@given(
    st.lists(
        st.tuples(st.sampled_from(["success", "failure", "lost"]), st.booleans()),
        max_size=80,
    )
)
def test_the_failure_ratio_is_that_of_the_last_window_of_outcomes(
    events: list[tuple[str, bool]],
) -> None:
    """Whatever the outcomes, the ratio reads the last ``window`` since the circuit
    last closed (a close forgets the past), failures and losses alike."""
    tracker = HealthTracker(POLICY, 0.0)
    seen: list[bool] = []
    now = 0.0
    for outcome, later in events:
        if later:
            now += POLICY.cooldown  # let an open circuit go half-open
        was_open = tracker.state(now) == "unhealthy"
        tracker.record_start(now)
        if outcome == "lost":
            tracker.record_lost(now)
        else:
            tracker.record_finish(now, success=outcome == "success", duration=1.0)
        seen.append(outcome == "success")
        if was_open and tracker.state(now) != "unhealthy":
            seen.clear()  # closed again: its window starts afresh
        window = seen[-POLICY.window :]
        expected = window.count(False) / len(window) if window else 0.0
        assert tracker.snapshot(now).failure_ratio == expected


def test_defaults_keep_a_handler_failing_30_percent_at_random_closed() -> None:
    tracker = HealthTracker(HealthPolicy(heartbeat_timeout=None), now=0.0)
    chance = random.Random(15)
    for n in range(2_000):
        run(tracker, float(n), chance.random() >= 0.3)
        assert tracker.state(float(n)) != "unhealthy", n


def test_caller_errors_are_not_held_against_the_handler() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    for _ in range(20):
        tracker.record_start(1.0)
        tracker.record_caller_error(1.0)
    health = tracker.snapshot(1.0)
    assert (health.state, health.failures, health.active) == ("healthy", 0, 0)
    assert health.failure_ratio == 0.0


def test_a_caller_error_frees_the_trial_slot_and_judges_nothing() -> None:
    tracker = HealthTracker(POLICY, now=0.0)
    run(tracker, 10.0, *[False] * 5)
    tracker.record_start(15.0)  # the trial
    assert not tracker.accepts_job(15.0)
    tracker.record_caller_error(15.0)
    assert tracker.state(15.0) == "unhealthy"
    assert tracker.accepts_job(15.0)  # still half-open: another trial may go


def test_stuck_trial_is_judged_failed_at_the_policys_trial_timeout() -> None:
    policy = attrs.evolve(POLICY, trial_timeout=2.0)
    tracker = HealthTracker(policy, now=0.0)
    run(tracker, 10.0, *[False] * 5)
    tracker.record_start(15.0)  # the trial, which never finishes
    assert not tracker.accepts_job(16.9)
    assert tracker.snapshot(16.9).trial
    # Past the deadline: failed, so the circuit is open again for a cooldown.
    assert not tracker.snapshot(17.0).trial
    assert not tracker.accepts_job(21.9)
    assert tracker.accepts_job(22.0)
    tracker.record_start(22.0)
    tracker.record_finish(22.0, success=True, duration=1.0)  # the new trial
    assert tracker.state(22.0) == "healthy"


def test_a_handlers_own_timeout_is_its_trials_deadline() -> None:
    tracker = HealthTracker(POLICY, now=0.0, trial_timeout=0.5)
    run(tracker, 10.0, *[False] * 5)
    tracker.record_start(15.0)
    assert tracker.snapshot(15.4).trial
    assert not tracker.snapshot(15.5).trial


def test_peek_state_reads_the_state_and_leaves_a_stuck_trial_alone() -> None:
    policy = attrs.evolve(POLICY, trial_timeout=2.0, heartbeat_timeout=30.0)
    tracker = HealthTracker(policy, now=0.0)
    assert tracker.peek_state(1.0) == tracker.state(1.0) == "healthy"
    run(tracker, 2.0, True, False, True, True, True)
    assert tracker.peek_state(2.0) == tracker.state(2.0) == "degraded"
    assert tracker.peek_state(40.0) == tracker.state(40.0) == "dead"
    run(tracker, 41.0, *[False] * 5)
    tracker.record_start(46.0)  # a trial, which never finishes
    # Past its deadline, peeking judges nothing: the trial still holds the
    # circuit half-open, as before the deadline.
    assert tracker.peek_state(48.0) == "unhealthy"
    assert tracker.snapshot(47.9).trial
    # The dispatcher's reading judges it failed: open again for a cooldown.
    assert tracker.state(48.0) == "unhealthy"
    assert not tracker.snapshot(47.9).trial
