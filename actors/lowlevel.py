"""What a runtime built on ``actors`` needs of a system, and an application does not.

As ``trio.lowlevel`` stands apart from ``trio``: ``ActorSystem`` keeps its
machinery to itself, and the few pieces that a scheduler or a transport built on
actors needs (the backend's fast event class, the clock, whether the system is
shutting down, its task group) are reached through these functions, so that
every such use is visible and the system's internals can change behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import anyio
    from anyio.abc import TaskGroup

    from .clock import Clock
    from .system import ActorSystem

__all__ = ["clock", "event_factory", "shutting_down", "task_group"]


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
