"""ScheduleZero: a job scheduler built as a supervised actor runtime.

APScheduler 4 decides when; supervised actors decide who, how fast, and what happens
when something dies.
"""

from __future__ import annotations

from .config import (
    Config as Config,
    ConfigError as ConfigError,
    load_config as load_config,
)
from .errors import SzError as SzError

__all__ = ["Config", "ConfigError", "SzError", "load_config"]
