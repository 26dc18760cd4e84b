"""Where schedules, accepted jobs and history live: memory or a SQLite file."""

from __future__ import annotations

from .fires import COALESCE_POLICIES, Fires, FireSink, RoundDone, Verdict
from .schedules import ScheduleStore
from .sqlite import SCHEMA_VERSION, SqliteFile, StoreError

__all__ = [
    "COALESCE_POLICIES",
    "SCHEMA_VERSION",
    "FireSink",
    "Fires",
    "RoundDone",
    "ScheduleStore",
    "SqliteFile",
    "StoreError",
    "Verdict",
]
