"""``sz serve``: the scheduler in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any

from . import builtin
from .scheduler import ScheduleZero

if TYPE_CHECKING:
    import anyio

    from .bridge import Schedule

__all__ = [
    "DEFAULT_STORE",
    "SCHEDULES_LOGGED",
    "demo_scheduler",
    "serve",
    "settle_heap",
]

logger = logging.getLogger("sz.serve")


#: Past this many schedules, start-up logs one line for all instead of one each.
SCHEDULES_LOGGED = 20

#: Where ``sz serve`` keeps its schedules and history when no config says.
DEFAULT_STORE = "sqlite:///schedulezero.db"


def demo_scheduler(
    store: str = DEFAULT_STORE, *, node: str | None = None
) -> ScheduleZero:
    """The default when no config is given: built-in handlers, a few schedules.

    Schedules and history go to ``schedulezero.db`` in the working directory.
    ``node`` names it among the nodes of a PostgreSQL store.
    """
    sz = ScheduleZero(store=store, node=node)
    for function in (builtin.noop, builtin.echo, builtin.log, builtin.sleep):
        sz.handler(function)
    sz.handler(builtin.fail, retries=1)
    return sz


def settle_heap() -> None:
    """Leave the objects of startup out of every later garbage collection.

    Modules, classes and functions (tens of thousands of objects) live as long
    as the process, yet a full collection walks them all each time: about 60 ms
    here, during which no fire starts. Frozen once startup is done, they cost
    nothing again, and the longest pause falls to a few milliseconds. What is
    frozen is never collected as a cycle, so this is for a process of our own:
    ``sz serve`` calls it; a program embedding ScheduleZero may call it (or
    ``gc.freeze()``) at the end of its own startup.
    """
    gc.collect()
    gc.freeze()


async def _add_demo_schedules(sz: ScheduleZero, interval: float) -> None:
    demo: list[tuple[str, dict[str, Any]]] = [
        ("echo", {"seconds": interval, "args": ["tick"], "id": "demo-echo"}),
        (
            "log",
            {
                "seconds": interval * 5,
                "args": {"message": "ScheduleZero is alive"},
                "id": "demo-log",
            },
        ),
        (
            "fail",
            {"seconds": interval * 3, "args": {"probability": 0.3}, "id": "demo-fail"},
        ),
    ]
    for task, options in demo:
        await sz.schedule(task, "interval", **options)


def _log_schedules(schedules: list[Schedule]) -> None:
    """One line each when they fit on a screen; past that, one line for all."""
    if len(schedules) <= SCHEDULES_LOGGED:
        for schedule in schedules:
            logger.info(
                "schedule %s: %s %s, next at %s",
                schedule.id,
                schedule.task,
                schedule.trigger,
                schedule.next_fire_time,
            )
        return
    due = [s.next_fire_time for s in schedules if s.next_fire_time is not None]
    logger.info(
        "%d schedules (%d paused), the next fire at %s",
        len(schedules),
        sum(s.paused for s in schedules),
        min(due, default=None),
    )


async def serve(
    sz: ScheduleZero, stop: anyio.Event, *, demo: bool = False, interval: float = 1.0
) -> None:
    """Run the started ``sz`` until ``stop`` is set.

    With ``demo``, add the demo schedules (those a previous run left in the
    store are kept if unchanged, so a restart does not run them twice). They
    run the built-in handlers every ``interval`` seconds (or a multiple of it).
    """
    if demo:
        await _add_demo_schedules(sz, interval)
    _log_schedules(await sz.schedules())
    logger.info(
        "actor tree: %s", ", ".join(s.path for s in sz.system.snapshot().walk())
    )
    settle_heap()
    await stop.wait()
