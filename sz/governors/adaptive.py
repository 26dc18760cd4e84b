"""Adaptive throttling: a handler's rate falls fast when it suffers, climbs slowly back.

Additive increase, multiplicative decrease (AIMD), as TCP's congestion control:
a handler whose failure ratio or mean duration passes its threshold has its rate
multiplied by ``decrease``; a healthy one gains ``increase`` of its configured
rate per adjustment, up to that rate. At most one adjustment per ``interval``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .bucket import TokenBucket

__all__ = ["AdaptivePolicy", "adapt"]


@attrs.frozen(kw_only=True)
class AdaptivePolicy:
    """When and how much a rate-limited handler's rate moves.

    Attributes:
        failure_ratio: Failures over outcomes in the health window past which the
            rate falls (0.2 by default).
        latency: Mean duration in seconds past which the rate falls, or None (the
            default) to look at failures only.
        decrease: What the rate is multiplied by when it falls (0.5).
        increase: The share of the configured rate gained per healthy adjustment
            (0.1: from the floor to full in about ten intervals).
        floor: The lowest share of the configured rate it falls to (0.01).
        interval: Seconds between adjustments (1.0).
    """

    failure_ratio: float = 0.2
    latency: float | None = None
    decrease: float = 0.5
    increase: float = 0.1
    floor: float = 0.01
    interval: float = 1.0


def adapt(
    bucket: TokenBucket,
    policy: AdaptivePolicy,
    *,
    failure_ratio: float,
    mean_duration: float | None,
    now: float,
    last: float | None,
) -> bool:
    """Move ``bucket.rate`` for one adjustment if one is due; say if one was.

    ``last`` is when the previous adjustment was made (None: never).
    """
    if last is not None and now - last < policy.interval:
        return False
    bucket.refill(now)  # tokens earned so far at the old rate
    suffering = failure_ratio > policy.failure_ratio or (
        policy.latency is not None
        and mean_duration is not None
        and mean_duration > policy.latency
    )
    if suffering:
        bucket.rate = max(bucket.ceiling * policy.floor, bucket.rate * policy.decrease)
    else:
        bucket.rate = min(
            bucket.ceiling, bucket.rate + bucket.ceiling * policy.increase
        )
    return True
