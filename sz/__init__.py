"""ScheduleZero: a job scheduler built as a supervised actor runtime.

APScheduler 4 decides when; supervised actors decide who, how fast, and what happens
when something dies. ``from sz import ScheduleZero`` is the front door.
"""

from __future__ import annotations

from .bridge import Schedule as Schedule, ScheduleNotFound as ScheduleNotFound
from .broker import (
    BrokerSettings as BrokerSettings,
    BrokerStats as BrokerStats,
    RemoteError as RemoteError,
)
from .config import (
    Config as Config,
    ConfigError as ConfigError,
    load_config as load_config,
)
from .dispatcher import HandlerStatus as HandlerStatus
from .errors import (
    JobFailed as JobFailed,
    NoHealthyHandler as NoHealthyHandler,
    Overloaded as Overloaded,
    SzError as SzError,
    UnknownTask as UnknownTask,
)
from .governors import GovernorStatus as GovernorStatus
from .health import HandlerHealth as HandlerHealth, HealthPolicy as HealthPolicy
from .jobs import Attempt as Attempt, Job as Job, Outcome as Outcome
from .scheduler import ScheduleZero as ScheduleZero
from .serve import settle_heap as settle_heap
from .worker import ZMQHandler as ZMQHandler

__all__ = [
    "Attempt",
    "BrokerSettings",
    "BrokerStats",
    "Config",
    "ConfigError",
    "GovernorStatus",
    "HandlerHealth",
    "HandlerStatus",
    "HealthPolicy",
    "Job",
    "JobFailed",
    "NoHealthyHandler",
    "Outcome",
    "Overloaded",
    "RemoteError",
    "Schedule",
    "ScheduleNotFound",
    "ScheduleZero",
    "SzError",
    "UnknownTask",
    "ZMQHandler",
    "load_config",
    "settle_heap",
]
