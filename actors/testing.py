# ruff: noqa: ASYNC109 - every wait here takes a deadline: a test aid that can hang hides the bug it tests
"""Test aids: a recording ``Probe``, an ``EventLog``, a ``ManualClock``, ``wait_until``.

A ``ManualClock`` makes timers, backoff and restart intensity run on time the test
moves forward by hand, so tests of them never sleep. ``wait_until`` polls what no
event announces.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from .actor import Actor

if TYPE_CHECKING:
    from .events import ActorEvent
    from .ref import ActorRef
    from .system import ActorSystem

__all__ = ["EventLog", "ManualClock", "Probe", "record_events", "wait_until"]

Match = type[Any] | Callable[[Any], bool] | object


def _matches(match: Match, value: Any) -> bool:
    if isinstance(match, type):
        return isinstance(value, match)
    if callable(match):
        return bool(match(value))
    return bool(value == match)


class _Record:
    """What a probe received, kept outside the actor so restarts keep it."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.changed = anyio.Event()

    def add(self, message: Any) -> None:
        self.messages.append(message)
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, start: int, match: Match, timeout: float) -> int:
        with anyio.fail_after(timeout):
            index = start
            while True:
                while index < len(self.messages):
                    if _matches(match, self.messages[index]):
                        return index
                    index += 1
                await self.changed.wait()


class _ProbeActor(Actor):
    def __init__(self, record: _Record, reply: Callable[[Any], Any] | None) -> None:
        self._record = record
        self._reply = reply

    async def receive(self, message: Any) -> Any:
        self._record.add(message)
        return self._reply(message) if self._reply is not None else None


class Probe:
    """An actor that records what it receives, for tests to wait on.

    Create one with ``await Probe.spawn(system_or_actor, name=...)``; send to
    ``probe.ref``. ``expect`` checks the next message; ``wait_for`` skips others.
    """

    def __init__(self, ref: ActorRef, record: _Record) -> None:
        self.ref = ref
        self._record = record
        self._cursor = 0

    @classmethod
    async def spawn(
        cls,
        parent: ActorSystem | Actor,
        *,
        name: str | None = None,
        reply: Callable[[Any], Any] | None = None,
    ) -> Probe:
        """Start a probe under ``parent``; ``reply(message)`` answers asks if given."""
        record = _Record()
        ref = await parent.spawn(_ProbeActor, record, reply, name=name)
        return cls(ref, record)

    @property
    def messages(self) -> list[Any]:
        """Every message received so far, in order."""
        return list(self._record.messages)

    async def expect(self, match: Match = object, *, timeout: float = 5.0) -> Any:
        """Wait for the next message and check it matches; return it.

        ``match`` is a type, a predicate, or a value compared with ``==``.

        Raises:
            AssertionError: The next message does not match.
            TimeoutError: No message within ``timeout``.
        """
        index = await self._record.wait_for(self._cursor, object, timeout)
        message = self._record.messages[index]
        self._cursor = index + 1
        if not _matches(match, message):
            raise AssertionError(
                f"expected a message matching {match!r}, got {message!r}"
            )
        return message

    async def wait_for(self, match: Match, *, timeout: float = 5.0) -> Any:
        """Skip messages until one matches ``match``; return it.

        Raises:
            TimeoutError: None matched within ``timeout``.
        """
        index = await self._record.wait_for(self._cursor, match, timeout)
        self._cursor = index + 1
        return self._record.messages[index]


class EventLog:
    """Every lifecycle event published while it was open, for tests to wait on."""

    def __init__(self) -> None:
        self._record = _Record()

    @property
    def events(self) -> list[ActorEvent]:
        """The events so far, in order."""
        return list(self._record.messages)

    def of(self, kind: type[ActorEvent], path: str | None = None) -> list[Any]:
        """The events of type ``kind`` (about ``path``, if given) so far."""
        return [
            event
            for event in self._record.messages
            if isinstance(event, kind) and (path is None or event.path == path)
        ]

    async def wait_for(
        self,
        kind: type[ActorEvent],
        path: str | None = None,
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> Any:
        """Wait until ``count`` events of ``kind`` (about ``path``) have been seen.

        Returns the last of them.

        Raises:
            TimeoutError: Fewer were seen within ``timeout``.
        """

        def wanted(event: Any) -> bool:
            return isinstance(event, kind) and (path is None or event.path == path)

        index = -1
        for _ in range(count):
            index = await self._record.wait_for(index + 1, wanted, timeout)
        return self._record.messages[index]


@asynccontextmanager
async def record_events(
    system: ActorSystem, buffer: int = 100_000
) -> AsyncIterator[EventLog]:
    """Record the system's events into an ``EventLog`` for the block's duration."""
    log = EventLog()
    async with system.events(buffer) as events, anyio.create_task_group() as tg:

        async def pump() -> None:
            async for event in events:
                log._record.add(event)

        tg.start_soon(pump)
        yield log
        tg.cancel_scope.cancel()


class ManualClock:
    """A clock that moves only when the test calls ``advance``.

    Pass it as ``ActorSystem(clock=ManualClock())``: timers, backoff delays and
    restart intensity then follow it, and a test of them never sleeps.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()
        self._arrived = anyio.Event()

    def now(self) -> float:
        """Return the manual time."""
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        """Wait until ``advance`` moves the time to ``deadline`` or past it."""
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        woken = anyio.Event()
        if not math.isinf(deadline):
            heapq.heappush(self._sleepers, (deadline, next(self._seq), woken))
        self._arrived.set()
        self._arrived = anyio.Event()
        try:
            await woken.wait()
        finally:
            if not woken.is_set():  # cancelled: no longer a sleeper
                self._sleepers = [s for s in self._sleepers if s[2] is not woken]
                heapq.heapify(self._sleepers)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper now due."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, woken = heapq.heappop(self._sleepers)
            woken.set()

    def next_deadline(self) -> float | None:
        """The earliest deadline anyone sleeps until, or None."""
        while self._sleepers and self._sleepers[0][2].is_set():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def wait_for_sleeper(
        self, until: float | None = None, *, timeout: float = 5.0
    ) -> float:
        """Wait until someone sleeps (until ``until``, if given); return the deadline.

        Raises:
            TimeoutError: Nobody did within ``timeout`` (real seconds).
        """
        with anyio.fail_after(timeout):
            while True:
                deadlines = [d for d, _, e in self._sleepers if not e.is_set()]
                if until is None and deadlines:
                    return min(deadlines)
                if until is not None and any(math.isclose(d, until) for d in deadlines):
                    return until
                await self._arrived.wait()


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    message: str | None = None,
) -> None:
    """Wait until ``condition()`` is true, looking again every ``interval`` seconds.

    For state that nothing announces: a snapshot's counter, a row in a store,
    another process's registration. Where an event, a ``Probe`` or an
    ``EventLog`` can tell when something happened, wait on that instead.

    ``condition`` may be a plain or an async callable. It is first called after
    one checkpoint, so this returns at once if it is already true (even with a
    ``timeout`` of 0); after that it is called again every ``interval`` seconds.
    Nothing runs between the call that found it true and the return, so the
    caller sees the state it saw.

    Always a checkpoint. Times are real seconds (``anyio.sleep``), not an actor
    system's clock: a ``ManualClock`` neither speeds nor stops it. Cancellation
    leaves nothing behind; an async ``condition`` still running at the deadline
    is cancelled.

    Args:
        condition: What must become true; its result is taken as a truth value.
        timeout: How long to keep looking, in seconds; 5.0 by default.
        interval: Seconds between looks; 0.01 by default, often enough not to
            slow a test down and seldom enough to leave the CPU to the code
            under test. ``0`` looks at every pass of the event loop, for a
            state that may not last.
        message: What should become true, for the error; by default the
            condition's name.

    Raises:
        TimeoutError: ``condition`` was still false after ``timeout`` seconds;
            the error's text names it (``message``, or the condition's name).
        ValueError: ``timeout`` or ``interval`` is negative.
    """
    if timeout < 0 or interval < 0:
        raise ValueError(
            f"timeout and interval must be >= 0, not {timeout}, {interval}"
        )
    # Before the deadline starts: even a zero timeout gets one look.
    await anyio.lowlevel.checkpoint()
    with anyio.move_on_after(timeout):
        # A poll by design: it is for state that no event announces.
        while not await _holds(condition):  # noqa: ASYNC110
            await anyio.sleep(interval)
        return
    what = message or getattr(condition, "__qualname__", repr(condition))
    raise TimeoutError(f"still not true after {timeout} s: {what}")


async def _holds(condition: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = condition()
    if inspect.isawaitable(result):
        result = await result
    return bool(result)
