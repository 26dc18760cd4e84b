"""Daemon threads that run sync handlers, awaited under asyncio and trio alike.

AnyIO's worker threads are not daemon threads under asyncio: a sync handler that
never returns (``time.sleep(3600)``, a busy loop) would hold the interpreter's
exit for ever after ``async with ScheduleZero()`` has ended, while under trio the
same program exits. ScheduleZero therefore runs sync calls on threads of its
own, daemon threads under both backends, so that a program ends when its main
function returns, whatever a handler's thread is doing.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import threading
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs

from actors.lowlevel import loop_caller

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["IDLE_TIMEOUT", "DaemonThreads", "ThreadStatistics"]

T = TypeVar("T")

#: Seconds an idle thread waits for another call before it ends.
IDLE_TIMEOUT = 10.0


@attrs.frozen(kw_only=True)
class ThreadStatistics:
    """What ``DaemonThreads.statistics()`` returns.

    Attributes:
        started: Threads started so far.
        idle: Threads waiting for a call now.
    """

    started: int
    idle: int


class _Call:
    """One call handed to a thread, and the way back to the task awaiting it."""

    __slots__ = (
        "abandoned",
        "args",
        "call_soon",
        "context",
        "done",
        "error",
        "func",
        "result",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        done: anyio.Event,
        call_soon: Callable[[Callable[[], None]], object],
    ) -> None:
        self.func = func
        self.args = args
        self.context = contextvars.copy_context()
        self.done = done
        self.call_soon = call_soon
        self.result: Any = None
        self.error: BaseException | None = None
        #: Set by the loop when the awaiting task was cancelled: the outcome
        #: is dropped, and a call not yet begun is not made at all.
        self.abandoned = False

    def make(self) -> None:
        """Make the call (on the thread) and keep its outcome."""
        if self.abandoned:
            return
        try:
            self.result = self.context.run(self.func, *self.args)
        except BaseException as exc:
            # SystemExit, KeyboardInterrupt too: they belong to the task that
            # awaits the call, as anyio.to_thread re-raises them.
            self.error = exc

    def deliver(self) -> None:
        """Wake the awaiting task (from the thread), without waiting for it."""
        # Once the event loop has ended (RuntimeError under asyncio, trio's
        # RunFinishedError), nobody waits for this outcome any more.
        with contextlib.suppress(Exception):
            self.call_soon(self.done.set)


class _Thread:
    """One daemon thread: makes the calls it is given, then waits idle.

    It is in its pool's idle set while it waits. Whoever removes it from the set
    (the loop handing it a call, ``close``, or the thread itself when its wait
    times out) owns the next wake-up: ``dict`` removals are atomic, so exactly
    one of them succeeds, and a thread that finds itself claimed waits again
    for the call that is on its way.
    """

    __slots__ = ("_call", "_pool", "_wake")

    def __init__(self, pool: DaemonThreads, name: str) -> None:
        self._pool = pool
        self._call: _Call | None = None
        self._wake = threading.Lock()
        self._wake.acquire()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def give(self, call: _Call | None) -> None:
        """Hand over the next call (None: end); only its claimer calls this."""
        self._call = call
        self._wake.release()

    def _serve(self) -> None:
        pool = self._pool
        idle = pool._idle
        while True:
            if not self._wake.acquire(timeout=pool.idle_timeout):
                try:
                    del idle[self]
                except KeyError:
                    continue  # claimed meanwhile: its call (or end) is on the way
                return
            call, self._call = self._call, None
            if call is None:
                return
            call.make()
            # Idle again before the loop hears of the outcome, so that the
            # awaiting task's next call finds this thread rather than a new one.
            idle[self] = None
            call.deliver()
            del call  # an idle thread keeps no result alive
            if pool._closed:
                try:
                    del idle[self]
                except KeyError:
                    continue  # close claimed it: its end is on the way
                return


class DaemonThreads:
    """Runs sync calls on daemon threads and awaits them, under asyncio and trio.

    Threads are started as calls need them and kept while calls keep coming: a
    thread idle for ``idle_timeout`` seconds ends. At most ``limiter``'s
    total tokens of calls run at once; a call whose awaiting task is cancelled
    gives its token back at once, though its thread runs on.

    Args:
        limiter: Bounds the calls running at once; share one to share the bound.
        name: The threads' name, as ``threading`` and debuggers show it.
        idle_timeout: Seconds an idle thread waits for a call before it ends,
            ``IDLE_TIMEOUT`` (10) by default.
    """

    def __init__(
        self,
        limiter: anyio.CapacityLimiter,
        *,
        name: str = "sz thread",
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.limiter = limiter
        self.name = name
        self.idle_timeout = idle_timeout
        #: The threads waiting for a call, used as an ordered set.
        self._idle: dict[_Thread, None] = {}
        self._numbers = itertools.count(1)
        self._started = 0
        self._closed = False

    async def run_sync(self, func: Callable[..., T], *args: Any) -> T:
        """Call ``func(*args)`` on a daemon thread and return what it returns.

        The call sees a copy of the caller's context variables. What it raises
        is raised here, ``SystemExit`` and ``KeyboardInterrupt`` included. A
        checkpoint. Cancelled, it returns at once (raising the cancellation):
        the call runs on in its thread, and its outcome is dropped; a call
        cancelled before its thread began it is not made.

        Raises:
            anyio.ClosedResourceError: ``close`` was called.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        async with self.limiter:
            call = _Call(func, args, anyio.Event(), loop_caller())
            try:
                thread, _ = self._idle.popitem()
            except KeyError:
                self._started += 1
                thread = _Thread(self, f"{self.name} {next(self._numbers)}")
            thread.give(call)
            try:
                await call.done.wait()
            except BaseException:
                call.abandoned = True
                raise
        error = call.error
        if error is None:
            return call.result  # type: ignore[no-any-return]
        call.error = None
        try:
            raise error
        finally:
            del error, call  # no cycle through this frame's traceback

    def close(self) -> None:
        """End the idle threads now, and each busy one when its call returns.

        Not a checkpoint; never blocks: a call that never returns keeps its
        (daemon) thread, which does not hold the interpreter's exit.
        """
        self._closed = True
        while True:
            try:
                thread, _ = self._idle.popitem()
            except KeyError:
                return
            thread.give(None)

    def statistics(self) -> ThreadStatistics:
        """Return how many threads were started, and how many wait idle now."""
        return ThreadStatistics(started=self._started, idle=len(self._idle))
