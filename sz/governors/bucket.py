"""A token bucket on a clock the caller reads: rate per second, burst."""

from __future__ import annotations

import attrs

__all__ = ["TokenBucket"]


@attrs.define
class TokenBucket:
    """Holds up to ``burst`` tokens, refilled at ``rate`` per second.

    Pure arithmetic on times the caller passes in (the actor system's clock), so
    tests move time by hand and a restarted owner carries on with the same
    bucket. Tokens are fractional: at 10,000 per second a millisecond adds ten.

    Attributes:
        rate: Tokens added per second (the effective rate: adaptive throttling
            lowers it below ``ceiling``).
        burst: The most tokens it holds: how many jobs may start at once after a
            quiet spell.
        ceiling: The configured rate, which ``rate`` never exceeds.
    """

    rate: float
    burst: float
    ceiling: float = attrs.field()
    tokens: float = attrs.field()
    updated: float | None = None

    @ceiling.default
    def _ceiling(self) -> float:
        return self.rate

    @tokens.default
    def _full(self) -> float:
        return self.burst

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last look."""
        if self.updated is not None and now > self.updated:
            self.tokens = min(
                self.burst, self.tokens + (now - self.updated) * self.rate
            )
        if self.updated is None or now > self.updated:
            self.updated = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0.0: one is there now)."""
        self.refill(now)
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        """Spend one token (``wait`` said one is there)."""
        if now != self.updated:
            self.refill(now)
        self.tokens -= 1.0
