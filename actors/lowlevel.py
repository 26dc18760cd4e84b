"""What a runtime built on ``actors`` needs of a system, and an application does not.

As ``trio.lowlevel`` stands apart from ``trio``: ``ActorSystem`` keeps its
machinery to itself, and the few pieces that a scheduler or a transport built on
actors needs (the backend's fast event class, the clock, whether the system is
shutting down, its task group) are reached through these functions, so that
every such use is visible and the system's internals can change behind them.
One more, ``loop_caller``, needs no system: how another thread hands the running
event loop a callback without waiting, which both backends offer under different
names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.lowlevel

from .snapshot import ActorDeath
from .system import DEATHS_KEPT

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from .clock import Clock
    from .system import ActorSystem

__all__ = [
    "clock",
    "event_factory",
    "loop_caller",
    "recent_deaths",
    "recent_restarts",
    "shutting_down",
    "task_group",
]


def event_factory(system: ActorSystem) -> Callable[[], anyio.Event]:
    """Return what makes a new ``anyio.Event`` fastest under the running backend.

    The backend's own event class, looked up once when the system started:
    ``anyio.Event()`` looks up the backend on every call. Fetch it once (in
    ``on_start``, say) and keep it; calling it costs no more than the class.

    Raises:
        ActorError: The system is not inside its ``async with``.
    """
    system._check_running()
    return system._new_event


def clock(system: ActorSystem) -> Clock:
    """Return the clock the system's timers, backoff and restart limits read."""
    return system._clock


def recent_restarts(system: ActorSystem, within: float) -> int:
    """Return how many restarts in place the system made in the last ``within`` s.

    Read on the system's clock, for a dashboard's "restarts in 5 minutes"; the
    system keeps the latest ``RESTARTS_KEPT`` (10,000) restart times, so a
    storm of more within the window counts as that many.
    """
    since = system._clock.now() - within
    times = system._restart_times
    while times and times[0] < since:
        times.popleft()
    return len(times)


def recent_deaths(system: ActorSystem, limit: int = DEATHS_KEPT) -> list[ActorDeath]:
    """Return the latest ``limit`` crashes of the system's actors, newest first.

    For a dashboard opened after the fact. Each says whether its actor was
    restarted since, or ended for good; the system keeps the latest
    ``DEATHS_KEPT`` (200). Not a checkpoint: O(limit).
    """
    found: list[ActorDeath] = []
    for death in reversed(system._deaths):
        if len(found) >= limit:
            break
        found.append(
            ActorDeath(
                path=death.path,
                actor_class=death.actor_class,
                cause=death.cause,
                died_at=death.died_at,
                restarted=death.restarted,
                ended=death.ended,
            )
        )
    return found


def shutting_down(system: ActorSystem) -> bool:
    """Return True once the system has begun to stop its actors, for good."""
    return system._shutting_down


def task_group(system: ActorSystem) -> TaskGroup:
    """Return the task group every actor task runs in.

    A task started in it is not shielded from the host's cancellation, as the
    actors' own tasks are: it ends when the system ends, or sooner.

    Raises:
        ActorError: The system is not inside its ``async with``.
    """
    return system._task_group


def loop_caller() -> Callable[[Callable[[], None]], object]:
    """Return how any thread runs a callback soon in the running event loop.

    The returned function takes a callback of no arguments, queues it to run in
    this event loop's thread and returns at once: asyncio's loop
    ``call_soon_threadsafe`` or trio's token ``run_sync_soon``. AnyIO's
    ``from_thread.run_sync`` would instead block the calling thread until the
    loop has run the callback, which a thread that must not wait on a busy loop
    (a store's writer, a handler's thread delivering its result) cannot afford.

    The callback runs in the loop, where it must not raise (trio ends the run if
    it does). Once the loop has ended, calling the returned function raises
    (``RuntimeError`` under asyncio, ``trio.RunFinishedError`` under trio): a
    thread that may outlive the loop catches ``Exception`` around it.

    Raises:
        anyio.NoEventLoopError: No event loop runs in this thread.
    """
    native: Any = anyio.lowlevel.current_token().native_token
    call_soon = getattr(native, "call_soon_threadsafe", None)
    if call_soon is None:
        call_soon = native.run_sync_soon
    return call_soon  # type: ignore[no-any-return]
