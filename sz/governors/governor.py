"""What may start now: the limits every dispatch passes, and what they let through.

The governor is consulted by the dispatcher for each job, synchronously, on the
job's way to a handler: a check and a few subtractions when a limit is not
binding. Its counters live here, in the dispatcher's state, not in any actor
instance: a dispatcher killed and restarted carries on with the same buckets,
the same jobs in flight and the same waiting queues, so no limit is exceeded
after a restart and no waiting job is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from .adaptive import AdaptivePolicy, adapt
from .bucket import TokenBucket

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Backpressure", "Governor", "GovernorStatus", "Limit"]


@attrs.frozen(kw_only=True)
class Limit:
    """A rate (jobs started per second) with its burst."""

    rate: float
    burst: float | None = None  # None: one second's worth of the rate, at least 1

    def bucket(self) -> TokenBucket:
        """A full bucket of this rate and burst."""
        burst = self.burst if self.burst is not None else max(1.0, self.rate)
        return TokenBucket(rate=self.rate, burst=burst)


@attrs.frozen(kw_only=True)
class Backpressure:
    """When new work is refused: from ``high_water`` jobs waiting to ``low_water``."""

    high_water: int = 50_000
    low_water: int = 40_000

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.low_water < self.high_water:
            raise ValueError(
                f"backpressure: low_water ({self.low_water}) must be below "
                f"high_water ({self.high_water})"
            )


@attrs.frozen(kw_only=True)
class GovernorStatus:
    """One limit as ``sz.governors()`` shows it.

    Attributes:
        name: ``global``, ``method:<task>`` (named for its config section,
            ``per_method_limits``) or ``handler:<handler>``.
        rate: The configured rate (jobs per second), or None for no rate limit.
        effective_rate: The rate in force (below ``rate`` while adaptive
            throttling holds a suffering handler back), or None.
        burst: The bucket's size, or None.
        tokens: Tokens in the bucket now, or None.
        max_running: The cap on jobs running at once, or None.
        running: Jobs running now under this limit.
        waiting: Jobs waiting that this limit covers.
        limited: Jobs that have waited for this limit so far.
        rejected: Jobs refused as ``overloaded`` (global only).
    """

    name: str
    rate: float | None
    effective_rate: float | None
    burst: float | None
    tokens: float | None
    max_running: int | None
    running: int
    waiting: int
    limited: int
    rejected: int = 0


@attrs.define
class Governor:
    """The limits: global, per task and per handler.

    A job may start when the global bucket, its task's bucket and its handler's
    bucket each hold a token, and fewer than ``max_running`` jobs run in all;
    starting takes one token from each.
    """

    global_rate: TokenBucket | None = None
    max_running: int | None = None
    task_rates: dict[str, TokenBucket] = attrs.field(factory=dict)
    handler_rates: dict[str, TokenBucket] = attrs.field(factory=dict)
    adaptive: AdaptivePolicy | None = None
    backpressure: Backpressure | None = attrs.field(factory=Backpressure)
    #: Refusing new work: set past high water, cleared at low water.
    overloaded: bool = False
    rejected: int = 0
    #: Jobs that waited for each limit (keys as GovernorStatus names).
    limited: dict[str, int] = attrs.field(factory=dict)
    #: When each handler's rate was last adjusted (adaptive throttling).
    adjusted: dict[str, float] = attrs.field(factory=dict)

    @classmethod
    def of(
        cls,
        *,
        global_rate: Limit | None = None,
        max_running: int | None = None,
        task_rates: Mapping[str, Limit] | None = None,
        handler_rates: Mapping[str, Limit] | None = None,
        adaptive: AdaptivePolicy | None = None,
        backpressure: Backpressure | None = None,
    ) -> Governor:
        """A governor with full buckets of these limits."""
        return cls(
            global_rate=global_rate.bucket() if global_rate else None,
            max_running=max_running,
            task_rates={k: v.bucket() for k, v in (task_rates or {}).items()},
            handler_rates={k: v.bucket() for k, v in (handler_rates or {}).items()},
            adaptive=adaptive,
            backpressure=backpressure,
        )

    @property
    def rate_limited(self) -> bool:
        """Whether any rate limit is configured (else every check is skipped)."""
        return bool(self.global_rate or self.task_rates or self.handler_rates)

    def task_wait(self, task: str, now: float) -> tuple[float, str | None]:
        """Seconds until the global and ``task``'s buckets both have a token.

        With the name of the limit that binds (None when none does).
        """
        wait, why = 0.0, None
        if self.global_rate is not None:
            wait = self.global_rate.wait(now)
            why = "global" if wait > 0 else None
        bucket = self.task_rates.get(task)
        if bucket is not None:
            mine = bucket.wait(now)
            if mine > wait:
                # "method:", not "task:": the name users see in sz.governors()
                # follows the config section, per_method_limits.
                wait, why = mine, f"method:{task}"
        return wait, why

    def handler_wait(self, handler: str, now: float) -> float:
        """Seconds until ``handler``'s own bucket has a token."""
        bucket = self.handler_rates.get(handler)
        return bucket.wait(now) if bucket is not None else 0.0

    def take(self, task: str, handler: str, now: float) -> None:
        """A job of ``task`` starts on ``handler``: spend a token of each bucket."""
        if self.global_rate is not None:
            self.global_rate.take(now)
        bucket = self.task_rates.get(task)
        if bucket is not None:
            bucket.take(now)
        bucket = self.handler_rates.get(handler)
        if bucket is not None:
            bucket.take(now)

    def count_limited(self, name: str) -> None:
        """A job began to wait for the limit ``name``."""
        self.limited[name] = self.limited.get(name, 0) + 1

    def watch_water(self, waiting: int) -> bool:
        """Update ``overloaded`` for ``waiting`` jobs; return it."""
        marks = self.backpressure
        if marks is None:
            return False
        if self.overloaded:
            self.overloaded = waiting > marks.low_water
        else:
            self.overloaded = waiting >= marks.high_water
        return self.overloaded

    def retry_after(self, waiting: int) -> float:
        """Seconds a refused caller should wait: what draining to low water takes.

        At the tightest rate in force, else one second per thousand jobs over
        the low-water mark (a guess with no rate to go by), at least a second.
        """
        marks = self.backpressure
        over = waiting - (marks.low_water if marks is not None else 0)
        rates = [
            bucket.rate
            for bucket in (self.global_rate, *self.task_rates.values())
            if bucket is not None
        ]
        per_second = min(rates) if rates else 1000.0
        return max(1.0, over / per_second)

    def adjust_due(self, handler: str, now: float) -> bool:
        """Whether ``handler``'s rate is adaptive and due for an adjustment."""
        if self.adaptive is None or handler not in self.handler_rates:
            return False
        last = self.adjusted.get(handler)
        return last is None or now - last >= self.adaptive.interval

    def adjust(
        self,
        handler: str,
        *,
        failure_ratio: float,
        mean_duration: float | None,
        now: float,
    ) -> None:
        """Adaptive throttling of ``handler``'s rate, if it has one."""
        bucket = self.handler_rates.get(handler)
        if bucket is None or self.adaptive is None:
            return
        if adapt(
            bucket,
            self.adaptive,
            failure_ratio=failure_ratio,
            mean_duration=mean_duration,
            now=now,
            last=self.adjusted.get(handler),
        ):
            self.adjusted[handler] = now
