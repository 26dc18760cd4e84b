"""Where schedules, accepted jobs and history live: memory, SQLite or PostgreSQL."""

from __future__ import annotations

from .database import Database
from .fires import COALESCE_POLICIES, Fires, FireSink, RoundDone, Verdict
from .nodes import NodeSettings
from .postgres import PostgresDatabase
from .schedules import ScheduleStore
from .shared import NodeHistory, SharedScheduleStore
from .sqlite import SCHEMA_VERSION, SqliteFile, StoreError

__all__ = [
    "COALESCE_POLICIES",
    "SCHEMA_VERSION",
    "Database",
    "FireSink",
    "Fires",
    "NodeHistory",
    "NodeSettings",
    "PostgresDatabase",
    "RoundDone",
    "ScheduleStore",
    "SharedScheduleStore",
    "SqliteFile",
    "StoreError",
    "Verdict",
]
