"""ScheduleZero: a job scheduler built as a supervised actor runtime.

APScheduler 4 decides when; supervised actors decide who, how fast, and what happens
when something dies.
"""

from __future__ import annotations

__all__: list[str] = []
