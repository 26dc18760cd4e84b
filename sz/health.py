"""Per-handler health: a sliding window and a circuit breaker, not a counter.

A ``HealthTracker`` judges one handler from its recent outcomes and its signs of
life. Old failures age out of the window, and a handler whose circuit opened earns
its way back through trial jobs (the circuit breaker's half-open state), after
which its past is forgotten. Pure and synchronous: the health monitor actor feeds
it events and the time (``now``, in seconds, from one monotonic clock), so nothing
here blocks or reads a clock.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

import attrs

from .validators import int_at_least, not_negative, positive, positive_or_none, ratio

__all__ = ["HandlerHealth", "HealthPolicy", "HealthState", "HealthTracker"]

HealthState = Literal["healthy", "degraded", "unhealthy", "dead"]


@attrs.frozen(kw_only=True)
class HealthPolicy:
    """When a handler counts as degraded, unhealthy or dead, and how it recovers.

    The breaker judges handlers slowly on purpose: a handler that fails 30 % of
    its jobs by chance must not open its circuit. With the defaults (a window of
    100, judged from 50 outcomes, opening at 0.5) that takes 25 failures out of
    the first 50 (binomial tail 0.24 %) or 50 out of any 100 (0.002 %); over
    1,000 jobs, about 0.4 % of such handlers ever open (simulated), against 98 %
    within 500 jobs with a window of 20 judged from 5 outcomes.

    Attributes:
        window: How many of the latest outcomes are judged, 100 by default (>= 1).
        degraded_ratio: Failure ratio over the window at or above which the handler
            is degraded, 0.2 by default, in (0, 1]. Degraded handlers still take jobs.
        unhealthy_ratio: Failure ratio at or above which the circuit opens and the
            handler is unhealthy, 0.5 by default, in (0, 1] and >= ``degraded_ratio``.
        min_samples: Outcomes the window must hold before any judgement, 50 by
            default, between 1 and ``window``.
        cooldown: Seconds an unhealthy handler rests before it is offered trial jobs,
            5.0 by default (>= 0).
        trials: Consecutive successful trial jobs that make an unhealthy handler
            healthy again, 1 by default (>= 1); also the most trial jobs in flight.
        trial_timeout: Seconds a trial job may run before it is judged failed
            (the circuit reopens, so that it cannot stay half-open for ever behind
            a stuck job), 60.0 by default (> 0); a handler with a timeout of its
            own uses that instead.
        heartbeat_timeout: Seconds without any sign of life (heartbeat, job start or
            finish) after which the handler is dead, 3.0 by default; None never
            declares a handler dead (for handlers in the scheduler's own process).
        ewma_alpha: Weight of the newest duration in the moving average, 0.2 by
            default, in (0, 1].
    """

    window: int = attrs.field(default=100, validator=int_at_least(1))
    degraded_ratio: float = attrs.field(default=0.2, validator=ratio)
    unhealthy_ratio: float = attrs.field(default=0.5, validator=ratio)
    min_samples: int = attrs.field(default=50, validator=int_at_least(1))
    cooldown: float = attrs.field(default=5.0, validator=not_negative)
    trials: int = attrs.field(default=1, validator=int_at_least(1))
    trial_timeout: float = attrs.field(default=60.0, validator=positive)
    heartbeat_timeout: float | None = attrs.field(
        default=3.0, validator=positive_or_none
    )
    ewma_alpha: float = attrs.field(default=0.2, validator=ratio)

    def __attrs_post_init__(self) -> None:
        if self.unhealthy_ratio < self.degraded_ratio:
            raise ValueError(
                f"unhealthy_ratio ({self.unhealthy_ratio}) must be >= "
                f"degraded_ratio ({self.degraded_ratio})"
            )
        if self.min_samples > self.window:
            raise ValueError(
                f"min_samples ({self.min_samples}) must be <= window ({self.window})"
            )


@attrs.frozen(kw_only=True)
class HandlerHealth:
    """One handler's health at one moment, as ``HealthTracker.snapshot`` saw it.

    Attributes:
        state: ``"healthy"``, ``"degraded"``, ``"unhealthy"`` or ``"dead"``.
        last_seen: When the handler last showed a sign of life.
        uptime: Seconds since the handler was first seen, or since it came back
            from dead.
        successes: Successful jobs, in total since the tracker was made.
        failures: Failed or lost jobs, in total since the tracker was made.
        failure_ratio: Failures over the outcomes in the window, 0.0 when empty.
        avg_duration: Moving average of job durations, None before the first.
        active: Jobs in flight.
        trial: True while the handler is unhealthy but past its cooldown
            (half-open): it accepts trial jobs.
    """

    state: HealthState
    last_seen: float
    uptime: float
    successes: int
    failures: int
    failure_ratio: float
    avg_duration: float | None
    active: int
    trial: bool


class HealthTracker:
    """The health of one handler, fed its events as they happen.

    Healthy and degraded are read off the window; crossing ``unhealthy_ratio``
    opens the circuit (unhealthy). After ``cooldown`` the circuit is half-open:
    up to ``trials`` jobs started then are trial jobs. A failed trial reopens the
    circuit and restarts the cooldown; ``trials`` consecutive successes close it
    and clear the window. Any state reads as dead once ``heartbeat_timeout`` has
    passed since the last sign of life; the next sign brings the handler back to
    what its window says, or to half-open if its circuit was open. A trial that
    has not finished within its deadline (the handler's timeout, else the policy's
    ``trial_timeout``, from the first trial's start) counts as failed.

    The tracker counts jobs, it does not know them: while trial jobs are in flight,
    the next finish is taken as a trial's outcome.
    """

    __slots__ = (
        "_active",
        "_avg_duration",
        "_failures",
        "_last_seen",
        "_policy",
        "_since",
        "_successes",
        "_timeout",
        "_trial_active",
        "_trial_deadline",
        "_trial_successes",
        "_trial_timeout",
        "_trials_from",
        "_window",
        "_window_failures",
    )

    def __init__(
        self, policy: HealthPolicy, now: float, *, trial_timeout: float | None = None
    ) -> None:
        """Start tracking a handler first seen at ``now``.

        Args:
            policy: The thresholds and timings to judge by.
            now: The current time, in seconds.
            trial_timeout: Seconds a trial job may run before it counts as
                failed; None (the default) for the policy's ``trial_timeout``.
        """
        self._policy = policy
        #: The policy's heartbeat timeout, read at every job: kept at hand.
        self._timeout = policy.heartbeat_timeout
        self._since = now
        self._last_seen = now
        self._window: deque[bool] = deque(maxlen=policy.window)
        #: Failures in the window, kept as outcomes come and go (the ratio is
        #: read at every finish).
        self._window_failures = 0
        self._successes = 0
        self._failures = 0
        self._avg_duration: float | None = None
        self._active = 0
        # None while the circuit is closed; else when trial jobs become allowed.
        self._trials_from: float | None = None
        self._trial_active = 0
        self._trial_successes = 0
        self._trial_timeout = (
            trial_timeout if trial_timeout is not None else policy.trial_timeout
        )
        #: When the trials in flight are judged failed, or None without any.
        self._trial_deadline: float | None = None

    @property
    def policy(self) -> HealthPolicy:
        """The policy this tracker judges by."""
        return self._policy

    def record_start(self, now: float) -> None:
        """Count a job started on the handler at ``now`` (a sign of life).

        A job started while the circuit is half-open is a trial job.
        """
        if self._timeout is not None:
            self._seen(now)
        else:
            self._last_seen = now
        self._active += 1
        if self._trials_from is not None and now >= self._trials_from:
            self._expire_trial(now)  # may reopen the circuit
            if self._half_open(now):
                if not self._trial_active:
                    self._trial_deadline = now + self._trial_timeout
                self._trial_active += 1

    def record_finish(self, now: float, *, success: bool, duration: float) -> None:
        """Count a job the handler finished at ``now`` (a sign of life).

        Args:
            now: The current time, in seconds.
            success: Whether the job succeeded.
            duration: How long the job ran, in seconds (>= 0).

        Raises:
            ValueError: ``duration`` is negative.
        """
        if not duration >= 0:
            raise ValueError(f"duration must be >= 0, got {duration!r}")
        if self._timeout is not None:
            self._seen(now)
        else:
            self._last_seen = now
        self._finished(now, success)
        alpha = self._policy.ewma_alpha
        average = self._avg_duration
        self._avg_duration = (
            duration if average is None else alpha * duration + (1 - alpha) * average
        )

    def record_lost(self, now: float) -> None:
        """Count a job in flight that the handler will never finish, as a failure.

        For the dispatcher when the handler died or its connection dropped mid-job:
        unlike ``record_finish`` this is no sign of life, and no duration is known.
        """
        self._finished(now, False)

    def record_caller_error(self, now: float) -> None:
        """Count a job that ended on its caller's error, not the handler's.

        Its arguments did not bind to the function's signature: a sign of life
        that says nothing of the handler's health, so the window and the circuit
        ignore it (a trial it was frees its slot, judged neither way).
        """
        if self._timeout is not None:
            self._seen(now)
        else:
            self._last_seen = now
        self._active = max(0, self._active - 1)
        if self._trials_from is not None and self._trial_active:
            self._trial_active -= 1
            if not self._trial_active:
                self._trial_deadline = None

    def record_heartbeat(self, now: float) -> None:
        """Note a heartbeat from the handler at ``now`` (a sign of life)."""
        self._seen(now)

    def state(self, now: float) -> HealthState:
        """Return the handler's state at ``now``.

        A trial past its deadline is judged failed on the way (the circuit
        opens again): the state is ``unhealthy`` either way.
        """
        state = self.peek_state(now)
        if state == "unhealthy":
            self._expire_trial(now)
        return state

    def peek_state(self, now: float) -> HealthState:
        """Return the state ``state(now)`` would, changing nothing.

        For readers other than the dispatcher (``ScheduleZero.live_counts``),
        which must not judge a handler's trials on its behalf.
        """
        if self._dead(now):
            return "dead"
        if self._trials_from is not None:
            return "unhealthy"
        ratio = self._judged_ratio()
        if ratio is not None and ratio >= self._policy.degraded_ratio:
            return "degraded"
        return "healthy"

    def accepts_job(self, now: float) -> bool:
        """Return whether the handler should be given a job at ``now``.

        Healthy and degraded handlers accept; an unhealthy one accepts only trial
        jobs, once its cooldown has passed and while fewer than ``trials`` are in
        flight; a dead one accepts none.
        """
        if self._trials_from is None and self._timeout is None:
            return True  # closed, and never judged dead: the common case
        if self._dead(now):
            return False
        if self._trials_from is None:
            return True
        self._expire_trial(now)
        return self._half_open(now) and self._trial_active < self._policy.trials

    def serves(self, now: float) -> bool:
        """Return whether the handler is in service: closed, or half-open.

        Unlike ``accepts_job``, a half-open handler whose trial slots are all
        taken still serves: its trials decide, and jobs can wait for them.
        """
        if self._dead(now):
            return False
        self._expire_trial(now)
        return self._trials_from is None or self._half_open(now)

    def snapshot(self, now: float) -> HandlerHealth:
        """Return the handler's health at ``now``."""
        window = self._window
        state = self.state(now)
        return HandlerHealth(
            state=state,
            last_seen=self._last_seen,
            uptime=now - self._since,
            successes=self._successes,
            failures=self._failures,
            failure_ratio=self._window_failures / len(window) if window else 0.0,
            avg_duration=self._avg_duration,
            active=self._active,
            trial=state == "unhealthy" and self._half_open(now),
        )

    def _dead(self, now: float) -> bool:
        timeout = self._timeout
        return timeout is not None and now - self._last_seen >= timeout

    def _expire_trial(self, now: float) -> None:
        deadline = self._trial_deadline
        if deadline is not None and now >= deadline:
            # A stuck trial must not hold the circuit half-open (and the
            # handler's other slots idle) for ever: judged failed.
            self._open(now)

    def _half_open(self, now: float) -> bool:
        return self._trials_from is not None and now >= self._trials_from

    def _seen(self, now: float) -> None:
        if self._dead(now):
            self._since = now
            # Back from dead, an open circuit has rested long enough: probably a
            # restarted process, and a trial job is the quickest way to find out.
            if self._trials_from is not None:
                self._trials_from = min(self._trials_from, now)
        self._last_seen = now

    def _finished(self, now: float, success: bool) -> None:
        # Never below zero: a finish can still arrive after the dispatcher gave
        # the job up as lost (a partition, not a death).
        self._active = max(0, self._active - 1)
        window = self._window
        if len(window) == window.maxlen and not window[0]:
            self._window_failures -= 1  # the oldest outcome, a failure, drops out
        window.append(success)
        if not success:
            self._window_failures += 1
        if success:
            self._successes += 1
        else:
            self._failures += 1
        policy = self._policy
        if self._trials_from is not None:
            if not self._trial_active:
                # A job from before the circuit opened: no evidence either way.
                return
            self._trial_active -= 1
            if not self._trial_active:
                self._trial_deadline = None
            if not success:
                self._open(now)
                return
            self._trial_successes += 1
            if self._trial_successes >= policy.trials:
                self._close()
            return
        ratio = self._judged_ratio()
        if ratio is not None and ratio >= policy.unhealthy_ratio:
            self._open(now)

    def _judged_ratio(self) -> float | None:
        window = self._window
        if len(window) < self._policy.min_samples:
            return None
        return self._window_failures / len(window)

    def _open(self, now: float) -> None:
        self._trials_from = now + self._policy.cooldown
        # Trials still in flight belong to the failed attempt: no longer trials.
        self._trial_active = 0
        self._trial_successes = 0
        self._trial_deadline = None

    def _close(self) -> None:
        # Forgetting the past is the point: one bad hour must not haunt the handler.
        self._window.clear()
        self._window_failures = 0
        self._trials_from = None
        self._trial_active = 0
        self._trial_successes = 0
        self._trial_deadline = None
