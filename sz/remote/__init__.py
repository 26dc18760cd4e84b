"""Remote handlers: the broker in the scheduler and the workers that connect to it.

The two ends of SZP1 over ``transport/``: ``BrokerActor`` owns the ROUTER and
turns each registered worker into a handler; ``ZMQHandler`` serves a process's
functions to it.
"""

from __future__ import annotations

from .broker import (
    BrokerActor as BrokerActor,
    BrokerSettings as BrokerSettings,
    BrokerStats as BrokerStats,
    WorkersQuery as WorkersQuery,
)
from .worker import RECONNECT_BACKOFF as RECONNECT_BACKOFF, ZMQHandler as ZMQHandler

__all__ = [
    "RECONNECT_BACKOFF",
    "BrokerActor",
    "BrokerSettings",
    "BrokerStats",
    "WorkersQuery",
    "ZMQHandler",
]
