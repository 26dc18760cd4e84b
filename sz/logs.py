"""How ``sz serve`` and ``sz worker`` log: a level, and text or JSON lines.

The library never configures logging: a program that embeds ScheduleZero keeps
its own handlers and levels. Only the commands call ``configure_logging``.

ScheduleZero's loggers, all under ``sz``:

=================  ==========================================================
logger             what it says
=================  ==========================================================
``sz``             the command: signals, start and stop
``sz.scheduler``   the scheduler: store in use, schedules, drain, take-up,
                   fires skipped (one line per schedule and round)
``sz.serve``       ``sz serve``: schedules and the actor tree at start
``sz.history``     every job's outcome, one line per attempt (failures at
                   WARNING)
``sz.handlers``    local handlers: jobs abandoned mid-call
``sz.store``       the durable store: sick disks, a lost file, the WAL
``sz.broker``      the broker: workers joining, leaving, refused
``sz.worker``      a remote worker: connection, drain, each job at DEBUG,
                   a summary every minute
``actors``         the runtime: crashes and restarts of actors
=================  ==========================================================

APScheduler's own loggers (``apscheduler``) say at INFO what ScheduleZero's
history says better; the commands set them to WARNING, and an embedding program
may do the same: ``logging.getLogger("apscheduler").setLevel(logging.WARNING)``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, get_args

from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "LogFormat", "configure_logging"]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

#: The text format: time, level, logger, message.
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(
    level: str = "INFO", format: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Send every log record at ``level`` or above to ``stream`` (stderr).

    ``text``: one line each, as ``TEXT_FORMAT``. ``json``: one JSON object a
    line with ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``,
    then the record's own fields: a job's ``job_id``, ``task``, ``attempt``,
    ``handler``, ``outcome`` and the like, and ``exc_info`` with a traceback.

    Replaces the root logger's handlers: for a process of ScheduleZero's own.
    """
    handler = logging.StreamHandler(stream)
    if format == "json":
        handler.setFormatter(
            JsonFormatter(
                "{levelname}{name}{message}",
                style="{",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler only hands fires over; the history logs what became of them.
    logging.getLogger("apscheduler").setLevel(
        max(logging.WARNING, logging.getLevelName(level))
    )
