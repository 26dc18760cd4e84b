"""A supervised actor runtime for AnyIO: the same code runs on asyncio and trio."""

from __future__ import annotations

from . import lowlevel as lowlevel
from .actor import Actor as Actor
from .clock import Clock as Clock, RealClock as RealClock
from .errors import (
    ActorCrashed as ActorCrashed,
    ActorError as ActorError,
    ActorKilled as ActorKilled,
    ActorStopped as ActorStopped,
    AskTimeout as AskTimeout,
    ExpectedCrash as ExpectedCrash,
    MailboxFull as MailboxFull,
)
from .events import (
    ActorEvent as ActorEvent,
    Crashed as Crashed,
    DeadLetter as DeadLetter,
    Escalated as Escalated,
    Restarted as Restarted,
    Started as Started,
    Stopped as Stopped,
    Terminated as Terminated,
)
from .mailbox import MailboxStatistics as MailboxStatistics
from .ref import ActorRef as ActorRef
from .snapshot import (
    ActorDeath as ActorDeath,
    ActorSnapshot as ActorSnapshot,
    ActorState as ActorState,
)
from .supervision import (
    Backoff as Backoff,
    Child as Child,
    Overflow as Overflow,
    RestartType as RestartType,
    Strategy as Strategy,
    Supervision as Supervision,
)
from .supervisor import Supervisor as Supervisor
from .system import ActorSystem as ActorSystem, SystemStatistics as SystemStatistics
from .timers import Timer as Timer

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorDeath",
    "ActorError",
    "ActorEvent",
    "ActorKilled",
    "ActorRef",
    "ActorSnapshot",
    "ActorState",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "Backoff",
    "Child",
    "Clock",
    "Crashed",
    "DeadLetter",
    "Escalated",
    "ExpectedCrash",
    "MailboxFull",
    "MailboxStatistics",
    "Overflow",
    "RealClock",
    "RestartType",
    "Restarted",
    "Started",
    "Stopped",
    "Strategy",
    "Supervision",
    "Supervisor",
    "SystemStatistics",
    "Terminated",
    "Timer",
    "lowlevel",
]
