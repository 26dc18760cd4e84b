"""ScheduleZero: a job scheduler built as a supervised actor runtime.

APScheduler 4 decides when; supervised actors decide who, how fast, and what happens
when something dies. ``from sz import ScheduleZero`` is the front door.
"""

from __future__ import annotations

# First: a file of the user's named like one of our packages is named as such.
from . import shadowing as shadowing
from .bridge import Schedule as Schedule, ScheduleNotFound as ScheduleNotFound
from .config import Config as Config, load_config as load_config
from .deadletters import RecentDeadLetter as RecentDeadLetter
from .dispatcher import HandlerStatus as HandlerStatus, RunningJob as RunningJob
from .errors import (
    ConfigError as ConfigError,
    ConnectionLost as ConnectionLost,
    ExpressionError as ExpressionError,
    FencedOut as FencedOut,
    JobFailed as JobFailed,
    JobTimeout as JobTimeout,
    NoHealthyHandler as NoHealthyHandler,
    Overloaded as Overloaded,
    RemoteError as RemoteError,
    ScenarioError as ScenarioError,
    StoreError as StoreError,
    SzError as SzError,
    TooManyRuns as TooManyRuns,
    UnknownScenario as UnknownScenario,
    UnknownTask as UnknownTask,
)
from .governors import GovernorStatus as GovernorStatus
from .handles import JobHandle as JobHandle
from .health import HandlerHealth as HandlerHealth, HealthPolicy as HealthPolicy
from .jobs import (
    Attempt as Attempt,
    Job as Job,
    JobState as JobState,
    JobStatus as JobStatus,
    Outcome as Outcome,
    Reason as Reason,
)
from .livecounts import LiveCounts as LiveCounts
from .remote import (
    BrokerSettings as BrokerSettings,
    BrokerStats as BrokerStats,
    ZMQHandler as ZMQHandler,
)
from .scheduler import ScheduleZero as ScheduleZero
from .serve import settle_heap as settle_heap

__all__ = [
    "Attempt",
    "BrokerSettings",
    "BrokerStats",
    "Config",
    "ConfigError",
    "ConnectionLost",
    "ExpressionError",
    "FencedOut",
    "GovernorStatus",
    "HandlerHealth",
    "HandlerStatus",
    "HealthPolicy",
    "Job",
    "JobFailed",
    "JobHandle",
    "JobState",
    "JobStatus",
    "JobTimeout",
    "LiveCounts",
    "NoHealthyHandler",
    "Outcome",
    "Overloaded",
    "Reason",
    "RecentDeadLetter",
    "RemoteError",
    "RunningJob",
    "ScenarioError",
    "Schedule",
    "ScheduleNotFound",
    "ScheduleZero",
    "StoreError",
    "SzError",
    "TooManyRuns",
    "UnknownScenario",
    "UnknownTask",
    "ZMQHandler",
    "load_config",
    "settle_heap",
]
