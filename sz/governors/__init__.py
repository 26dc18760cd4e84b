"""Governors: rate limits, concurrency limits, adaptive throttling and backpressure."""

from __future__ import annotations

from .adaptive import AdaptivePolicy as AdaptivePolicy, adapt as adapt
from .bucket import TokenBucket as TokenBucket
from .governor import (
    Backpressure as Backpressure,
    Governor as Governor,
    GovernorStatus as GovernorStatus,
    Limit as Limit,
)

__all__ = [
    "AdaptivePolicy",
    "Backpressure",
    "Governor",
    "GovernorStatus",
    "Limit",
    "TokenBucket",
    "adapt",
]
