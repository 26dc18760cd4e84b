"""The governors' arithmetic, on times the tests pass in: no event loop, no clock."""

from __future__ import annotations

import pytest

from sz.governors import (
    AdaptivePolicy,
    Backpressure,
    Governor,
    Limit,
    TokenBucket,
    adapt,
)


def emptied(bucket: TokenBucket, now: float = 0.0) -> TokenBucket:
    """Spend every whole token the bucket holds at ``now``."""
    while bucket.wait(now) == 0.0:
        bucket.take(now)
    return bucket


# ------------------------------------------------------------- token bucket


def test_a_new_bucket_starts_full_at_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=5.0)
    assert bucket.tokens == 5.0
    assert bucket.ceiling == 2.0
    taken = 0
    while bucket.wait(0.0) == 0.0:
        bucket.take(0.0)
        taken += 1
    assert taken == 5


def test_take_spends_exactly_one_token() -> None:
    bucket = TokenBucket(rate=2.0, burst=5.0)
    bucket.take(0.0)
    assert bucket.tokens == 4.0
    bucket.take(0.0)
    assert bucket.tokens == 3.0


def test_an_empty_bucket_refills_at_its_rate() -> None:
    bucket = emptied(TokenBucket(rate=4.0, burst=10.0))
    assert bucket.tokens == 0.0
    bucket.refill(0.5)
    assert bucket.tokens == 2.0
    bucket.refill(1.25)
    assert bucket.tokens == 5.0


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    bucket = emptied(TokenBucket(rate=4.0, burst=3.0))
    bucket.refill(1_000.0)
    assert bucket.tokens == 3.0
    # After a long quiet spell, still only a burst's worth starts at once.
    assert emptied(bucket, 1_000.0).tokens == 0.0
    assert bucket.wait(1_000.0) == 0.25


@pytest.mark.parametrize("window_ms", [1, 50, 200, 1_000, 2_500])
def test_no_window_after_a_stall_starts_more_than_burst_plus_rate_times_it(
    window_ms: int,
) -> None:
    # A dispatcher that starts all a bucket allows each millisecond, but whose
    # loop stalls twice (200 ms, then a whole second): however the stalls
    # fall, a window of W seconds starts at most burst + rate * W jobs.
    rate, burst = 200.0, 50.0
    bucket = TokenBucket(rate=rate, burst=burst)
    stalled = {*range(1_000, 1_200), *range(2_500, 3_500)}
    starts: list[int] = []
    for ms in range(5_000):
        if ms in stalled:
            continue
        while bucket.wait(ms / 1000) == 0.0:
            bucket.take(ms / 1000)
            starts.append(ms)
    cap = burst + rate * window_ms / 1000
    first = 0
    most = 0
    for last, at in enumerate(starts):
        while at - starts[first] > window_ms:
            first += 1
        most = max(most, last - first + 1)
    assert most <= cap + 1e-9
    assert len(starts) >= rate * 3.8  # it did run at its rate between stalls


def test_wait_gives_the_exact_seconds_until_one_token() -> None:
    bucket = emptied(TokenBucket(rate=4.0, burst=2.0))
    assert bucket.wait(0.0) == 0.25
    assert bucket.wait(0.1) == pytest.approx(0.15)
    assert bucket.wait(0.25) == 0.0


def test_wait_is_zero_while_a_whole_token_is_there() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0)
    bucket.take(0.0)
    assert bucket.wait(0.0) == 0.0
    bucket.take(0.0)
    assert bucket.wait(0.0) == 1.0


def test_a_token_is_there_exactly_when_wait_said_it_would_be() -> None:
    bucket = emptied(TokenBucket(rate=3.0, burst=1.0))
    seconds = bucket.wait(0.0)
    assert bucket.wait(seconds * 0.99) > 0.0
    assert bucket.wait(seconds) == 0.0


def test_tokens_are_fractional_at_high_rates() -> None:
    bucket = emptied(TokenBucket(rate=10_000.0, burst=100.0))
    # A millisecond at 10,000 per second adds ten tokens.
    bucket.refill(0.001)
    assert bucket.tokens == pytest.approx(10.0)
    bucket = emptied(TokenBucket(rate=10_000.0, burst=100.0))
    # Half a token after 50 microseconds: the other half takes as long again.
    assert bucket.wait(0.00005) == pytest.approx(0.00005)
    assert bucket.tokens == pytest.approx(0.5)


def test_a_look_at_an_earlier_time_adds_nothing_and_keeps_the_later_time() -> None:
    bucket = TokenBucket(rate=1.0, burst=5.0)
    bucket.take(10.0)
    bucket.refill(9.0)
    assert (bucket.tokens, bucket.updated) == (4.0, 10.0)
    bucket.refill(11.0)
    assert bucket.tokens == 5.0


# ------------------------------------------------------------------- limits


def test_a_limit_without_a_burst_holds_one_seconds_worth_of_its_rate() -> None:
    bucket = Limit(rate=5.0).bucket()
    assert (bucket.rate, bucket.burst, bucket.tokens) == (5.0, 5.0, 5.0)


def test_a_slow_limit_without_a_burst_still_holds_one_token() -> None:
    bucket = Limit(rate=0.25).bucket()
    assert (bucket.burst, bucket.tokens) == (1.0, 1.0)


def test_a_limit_with_a_burst_makes_a_full_bucket_of_that_size() -> None:
    bucket = Limit(rate=5.0, burst=2).bucket()
    assert (bucket.rate, bucket.burst, bucket.tokens, bucket.ceiling) == (
        5.0,
        2,
        2,
        5.0,
    )


def test_each_limit_makes_a_bucket_of_its_own() -> None:
    limit = Limit(rate=1.0, burst=1)
    first, second = limit.bucket(), limit.bucket()
    first.take(0.0)
    assert second.tokens == 1


# ------------------------------------------------------------- backpressure


def test_backpressure_defaults_to_refusing_from_50_000_down_to_40_000() -> None:
    marks = Backpressure()
    assert (marks.high_water, marks.low_water) == (50_000, 40_000)


@pytest.mark.parametrize(("high", "low"), [(10, 10), (10, 11), (10, -1)])
def test_backpressure_needs_low_water_from_zero_to_below_high_water(
    high: int, low: int
) -> None:
    with pytest.raises(ValueError, match="low_water"):
        Backpressure(high_water=high, low_water=low)


def test_backpressure_accepts_a_low_water_of_zero() -> None:
    assert Backpressure(high_water=1, low_water=0).low_water == 0


# -------------------------------------------------------- adaptive throttling


def adapted(
    bucket: TokenBucket,
    policy: AdaptivePolicy,
    *,
    failure_ratio: float = 0.0,
    mean_duration: float | None = None,
    now: float = 0.0,
    last: float | None = None,
) -> bool:
    return adapt(
        bucket,
        policy,
        failure_ratio=failure_ratio,
        mean_duration=mean_duration,
        now=now,
        last=last,
    )


def test_the_rate_is_halved_when_failures_pass_the_ratio() -> None:
    bucket = TokenBucket(rate=10.0, burst=10.0)
    assert adapted(bucket, AdaptivePolicy(), failure_ratio=0.5)
    assert bucket.rate == 5.0
    assert bucket.ceiling == 10.0


def test_the_rate_falls_by_the_policys_decrease() -> None:
    bucket = TokenBucket(rate=10.0, burst=10.0)
    adapted(bucket, AdaptivePolicy(decrease=0.8), failure_ratio=1.0)
    assert bucket.rate == pytest.approx(8.0)


def test_a_failure_ratio_at_the_threshold_is_not_suffering() -> None:
    bucket = TokenBucket(rate=5.0, burst=10.0, ceiling=10.0)
    adapted(bucket, AdaptivePolicy(failure_ratio=0.2), failure_ratio=0.2)
    assert bucket.rate == 6.0


def test_the_rate_falls_when_the_mean_duration_passes_the_latency() -> None:
    bucket = TokenBucket(rate=10.0, burst=10.0)
    adapted(bucket, AdaptivePolicy(latency=2.0), mean_duration=2.5)
    assert bucket.rate == 5.0


def test_a_mean_duration_within_the_latency_is_healthy() -> None:
    bucket = TokenBucket(rate=4.0, burst=10.0, ceiling=10.0)
    adapted(bucket, AdaptivePolicy(latency=2.0), mean_duration=2.0)
    assert bucket.rate == 5.0


def test_durations_are_ignored_without_a_latency_threshold() -> None:
    bucket = TokenBucket(rate=10.0, burst=10.0)
    adapted(bucket, AdaptivePolicy(latency=None), mean_duration=1_000.0)
    assert bucket.rate == 10.0


def test_a_latency_threshold_without_any_duration_yet_is_healthy() -> None:
    bucket = TokenBucket(rate=10.0, burst=10.0)
    adapted(bucket, AdaptivePolicy(latency=0.1), mean_duration=None)
    assert bucket.rate == 10.0


def test_the_rate_never_falls_below_its_floor() -> None:
    bucket = TokenBucket(rate=10.0, burst=10.0)
    policy = AdaptivePolicy(floor=0.05)
    rates = []
    for second in range(12):
        adapted(bucket, policy, failure_ratio=1.0, now=float(second), last=None)
        rates.append(bucket.rate)
    assert rates[:4] == [5.0, 2.5, 1.25, 0.625]
    assert min(rates) == pytest.approx(0.5)
    assert rates[-1] == pytest.approx(0.5)


def test_a_healthy_handler_regains_a_share_of_its_configured_rate_per_step() -> None:
    bucket = TokenBucket(rate=1.0, burst=10.0, ceiling=10.0)
    policy = AdaptivePolicy(increase=0.1)
    rates = []
    for second in range(12):
        adapted(bucket, policy, now=float(second))
        rates.append(bucket.rate)
    assert rates[:3] == pytest.approx([2.0, 3.0, 4.0])
    assert rates[8:] == [10.0] * 4


def test_the_rate_climbs_back_no_higher_than_its_ceiling() -> None:
    bucket = TokenBucket(rate=9.5, burst=10.0, ceiling=10.0)
    adapted(bucket, AdaptivePolicy(increase=0.1))
    assert bucket.rate == 10.0


def test_the_rate_moves_at_most_once_per_interval() -> None:
    bucket = TokenBucket(rate=10.0, burst=10.0)
    policy = AdaptivePolicy(interval=2.0)
    assert adapted(bucket, policy, failure_ratio=1.0, now=0.0, last=None)
    assert not adapted(bucket, policy, failure_ratio=1.0, now=1.9, last=0.0)
    assert bucket.rate == 5.0
    assert adapted(bucket, policy, failure_ratio=1.0, now=2.0, last=0.0)
    assert bucket.rate == 2.5


def test_tokens_earned_before_an_adjustment_count_at_the_old_rate() -> None:
    bucket = emptied(TokenBucket(rate=10.0, burst=100.0))
    adapted(bucket, AdaptivePolicy(), failure_ratio=1.0, now=1.0)
    assert bucket.tokens == pytest.approx(10.0)
    bucket.refill(2.0)
    assert bucket.tokens == pytest.approx(15.0)


# ----------------------------------------------------------------- governor


def test_no_limit_binds_a_governor_without_rates() -> None:
    governor = Governor.of(max_running=3)
    assert not governor.rate_limited
    assert governor.task_wait("work", 0.0) == (0.0, None)
    assert governor.handler_wait("work", 0.0) == 0.0


def test_any_rate_makes_a_governor_rate_limited() -> None:
    assert Governor.of(global_rate=Limit(rate=1.0)).rate_limited
    assert Governor.of(task_rates={"work": Limit(rate=1.0)}).rate_limited
    assert Governor.of(handler_rates={"work": Limit(rate=1.0)}).rate_limited


def test_a_governor_of_limits_starts_with_full_buckets() -> None:
    governor = Governor.of(
        global_rate=Limit(rate=10.0, burst=20),
        task_rates={"work": Limit(rate=3.0)},
        handler_rates={"h": Limit(rate=0.5)},
    )
    assert governor.global_rate is not None
    assert governor.global_rate.tokens == 20
    assert governor.task_rates["work"].tokens == 3.0
    assert governor.handler_rates["h"].tokens == 1.0


def test_the_global_limit_binds_once_its_bucket_is_empty() -> None:
    governor = Governor.of(global_rate=Limit(rate=2.0, burst=1))
    assert governor.task_wait("work", 0.0) == (0.0, None)
    governor.take("work", "h", 0.0)
    assert governor.task_wait("work", 0.0) == (0.5, "global")
    assert governor.task_wait("other", 0.0) == (0.5, "global")
    assert governor.task_wait("work", 0.5) == (0.0, None)


def test_the_tighter_method_limit_wins_over_the_global_one() -> None:
    governor = Governor.of(
        global_rate=Limit(rate=10.0, burst=1),
        task_rates={"work": Limit(rate=2.0, burst=1)},
    )
    governor.take("work", "h", 0.0)
    assert governor.task_wait("work", 0.0) == (0.5, "method:work")
    # A task without a limit of its own waits for the global one only.
    assert governor.task_wait("other", 0.0) == (0.1, "global")


def test_the_tighter_global_limit_wins_over_the_method_one() -> None:
    governor = Governor.of(
        global_rate=Limit(rate=1.0, burst=1),
        task_rates={"work": Limit(rate=4.0, burst=1)},
    )
    governor.take("work", "h", 0.0)
    assert governor.task_wait("work", 0.0) == (1.0, "global")
    assert governor.task_wait("work", 0.25) == (0.75, "global")


def test_a_method_limit_binds_while_the_global_bucket_has_tokens() -> None:
    governor = Governor.of(
        global_rate=Limit(rate=100.0, burst=100),
        task_rates={"work": Limit(rate=4.0, burst=1)},
    )
    governor.take("work", "h", 0.0)
    assert governor.task_wait("work", 0.0) == (0.25, "method:work")
    assert governor.task_wait("other", 0.0) == (0.0, None)


def test_a_handler_waits_for_its_own_bucket_only() -> None:
    governor = Governor.of(handler_rates={"a": Limit(rate=4.0, burst=1)})
    assert governor.handler_wait("a", 0.0) == 0.0
    governor.take("work", "a", 0.0)
    assert governor.handler_wait("a", 0.0) == 0.25
    assert governor.handler_wait("b", 0.0) == 0.0
    # Handler limits do not hold the task back: another handler may take it.
    assert governor.task_wait("work", 0.0) == (0.0, None)


def test_take_spends_a_token_of_the_global_the_task_and_the_handler_bucket() -> None:
    governor = Governor.of(
        global_rate=Limit(rate=1.0, burst=5),
        task_rates={"work": Limit(rate=1.0, burst=5), "other": Limit(rate=1.0)},
        handler_rates={"a": Limit(rate=1.0, burst=5), "b": Limit(rate=1.0)},
    )
    governor.take("work", "a", 0.0)
    assert governor.global_rate is not None
    assert governor.global_rate.tokens == 4
    assert governor.task_rates["work"].tokens == 4
    assert governor.handler_rates["a"].tokens == 4
    assert governor.task_rates["other"].tokens == 1.0
    assert governor.handler_rates["b"].tokens == 1.0


def test_jobs_that_waited_are_counted_by_the_limit_that_held_them() -> None:
    governor = Governor.of(global_rate=Limit(rate=1.0))
    governor.count_limited("global")
    governor.count_limited("global")
    governor.count_limited("method:work")
    assert governor.limited == {"global": 2, "method:work": 1}


def test_overload_begins_at_high_water_and_lasts_down_to_low_water() -> None:
    governor = Governor.of(backpressure=Backpressure(high_water=10, low_water=4))
    seen = [
        governor.watch_water(waiting) for waiting in (0, 9, 10, 9, 7, 5, 4, 5, 9, 12)
    ]
    assert seen == [False, False, True, True, True, True, False, False, False, True]
    assert governor.overloaded


def test_no_backpressure_never_overloads() -> None:
    governor = Governor.of(backpressure=None)
    assert not governor.watch_water(10**9)
    assert not governor.overloaded


def test_the_default_governor_refuses_work_at_the_default_high_water() -> None:
    governor = Governor()
    assert not governor.watch_water(49_999)
    assert governor.watch_water(50_000)


def test_retry_after_is_the_time_to_drain_to_low_water_at_the_tightest_rate() -> None:
    governor = Governor.of(
        global_rate=Limit(rate=100.0),
        task_rates={"work": Limit(rate=10.0), "other": Limit(rate=50.0)},
        backpressure=Backpressure(high_water=100, low_water=40),
    )
    assert governor.retry_after(140) == 10.0


def test_retry_after_guesses_a_thousand_jobs_a_second_without_a_rate() -> None:
    governor = Governor.of(backpressure=Backpressure(high_water=10_000, low_water=0))
    assert governor.retry_after(5_000) == 5.0


def test_retry_after_is_at_least_a_second() -> None:
    governor = Governor.of(
        global_rate=Limit(rate=1_000.0),
        backpressure=Backpressure(high_water=10, low_water=5),
    )
    assert governor.retry_after(10) == 1.0


def test_adjustments_are_due_only_for_adaptive_handlers_with_a_rate() -> None:
    plain = Governor.of(handler_rates={"a": Limit(rate=10.0)})
    assert not plain.adjust_due("a", 0.0)
    governor = Governor.of(
        handler_rates={"a": Limit(rate=10.0)}, adaptive=AdaptivePolicy()
    )
    assert governor.adjust_due("a", 0.0)
    assert not governor.adjust_due("b", 0.0)


def test_an_adaptive_handler_is_adjusted_at_most_once_per_interval() -> None:
    governor = Governor.of(
        handler_rates={"a": Limit(rate=10.0)},
        adaptive=AdaptivePolicy(interval=1.0),
    )
    governor.adjust("a", failure_ratio=1.0, mean_duration=None, now=0.0)
    assert governor.handler_rates["a"].rate == 5.0
    assert not governor.adjust_due("a", 0.5)
    governor.adjust("a", failure_ratio=1.0, mean_duration=None, now=0.5)
    assert governor.handler_rates["a"].rate == 5.0
    assert governor.adjust_due("a", 1.0)
    governor.adjust("a", failure_ratio=0.0, mean_duration=None, now=1.0)
    assert governor.handler_rates["a"].rate == 6.0


def test_adjusting_a_handler_without_a_rate_changes_nothing() -> None:
    governor = Governor.of(
        handler_rates={"a": Limit(rate=10.0)}, adaptive=AdaptivePolicy()
    )
    governor.adjust("b", failure_ratio=1.0, mean_duration=None, now=0.0)
    assert governor.adjusted == {}
    assert governor.handler_rates["a"].rate == 10.0


def test_a_lowered_handler_rate_makes_its_jobs_wait_longer() -> None:
    governor = Governor.of(
        handler_rates={"a": Limit(rate=10.0, burst=1)}, adaptive=AdaptivePolicy()
    )
    governor.take("work", "a", 0.0)
    assert governor.handler_wait("a", 0.0) == pytest.approx(0.1)
    governor.adjust("a", failure_ratio=1.0, mean_duration=None, now=0.0)
    assert governor.handler_wait("a", 0.0) == pytest.approx(0.2)
