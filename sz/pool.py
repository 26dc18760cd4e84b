"""Long-lived tasks of an actor that run its queued jobs, up to a bound at once."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

from actors import ActorError, lowlevel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from actors import Actor

__all__ = ["JobTasks"]

Order = TypeVar("Order")


class JobTasks(Generic[Order]):
    """Runs each order put in it with ``run``, on at most ``size`` tasks at once.

    The tasks are the actor's own (``Actor.start_task``), started as orders
    arrive and kept for its incarnation, so an order costs no task of its own.
    A task is woken one at a time: the woken one wakes the next as it takes an
    order. An order that waits (I/O, a sleep) thus lets the next start at once,
    while a run of orders that never wait is taken by one task rather than a
    wake-up each, which would cost a no-op job more than its own bookkeeping.

    Args:
        actor: Whose tasks run the orders.
        size: At most this many orders run at once.
        run: Runs one order; what it raises ends its task, and the actor with it.
        name: The tasks' name.
    """

    def __init__(
        self,
        actor: Actor,
        size: int,
        run: Callable[[Order], Awaitable[None]],
        name: str,
    ) -> None:
        self.actor = actor
        # Looked up once: a task makes an event each time it goes idle.
        self._new_event = lowlevel.event_factory(actor.system)
        self.size = size
        self.run = run
        self.name = name
        #: Orders no task has taken yet, oldest first.
        self.orders: deque[Order] = deque()
        #: Orders being run now.
        self.running = 0
        #: Called whenever the last running order ends and none waits.
        self.on_quiet: Callable[[], None] | None = None
        self._tasks = 0
        self._idle: list[anyio.Event] = []
        #: A task is woken (or started) and has not taken an order yet.
        self._waking = False
        #: Each task's cancel scope and the order it runs now (None: idle).
        self._runs: list[_Run[Order]] = []

    def put(self, order: Order) -> None:
        """Queue ``order``; a task takes it as soon as one is free."""
        self.orders.append(order)
        if not self._waking:
            self._wake()

    def _wake(self) -> None:
        if self._idle:
            self._waking = True
            self._idle.pop().set()
        elif self._tasks < self.size:
            self._waking = True
            self._tasks += 1
            try:
                self.actor.start_task(self._work, name=self.name)
            except ActorError:
                # The incarnation is ending (killed, stopping): no task may
                # start, and the orders left queued are the actor's to hand
                # back (HandlerActor.on_stop). A task that took its order
                # before waking the next must still run it, not lose it.
                self._waking = False
                self._tasks -= 1

    def held(self) -> Iterator[Order]:
        """Every order not yet done: those running, then those queued."""
        for work in self._runs:
            if work.order is not None:
                yield work.order
        yield from self.orders

    def take_out(self, matches: Callable[[Order], bool]) -> list[Order]:
        """Remove the queued orders that ``matches`` says; return them."""
        taken = [order for order in self.orders if matches(order)]
        for order in taken:
            self.orders.remove(order)
        return taken

    def cancel(self, matches: Callable[[Order], bool]) -> int:
        """Cancel the runs of the running orders that ``matches`` says.

        Each ends as its ``run`` sees the cancellation; its task ends with it,
        and another takes the queued orders. Returns how many were cancelled.
        """
        cancelled = 0
        for work in self._runs:
            if work.order is not None and matches(work.order):
                work.scope.cancel()
                cancelled += 1
        return cancelled

    async def _work(self) -> None:
        # One cancel scope per task, not per order (a scope costs microseconds):
        # cancelling an order's run ends its task, and another task goes on.
        work: _Run[Order] = _Run(anyio.CancelScope())
        self._runs.append(work)
        try:
            with work.scope:
                await self._take_orders(work)
        finally:
            self._runs.remove(work)
            self._tasks -= 1
            if work.scope.cancel_called and self.orders and not self._waking:
                self._wake()

    async def _take_orders(self, work: _Run[Order]) -> None:
        orders, run = self.orders, self.run
        while True:
            self._waking = False
            while orders:
                order = orders.popleft()
                if orders and not self._waking:
                    self._wake()
                self.running += 1
                work.order = order
                try:
                    await run(order)
                finally:
                    work.order = None
                    self.running -= 1
                    if not self.running and not orders and self.on_quiet is not None:
                        self.on_quiet()
            wake = self._new_event()
            self._idle.append(wake)
            await wake.wait()


class _Run(Generic[Order]):
    """One task of a ``JobTasks``: its cancel scope, and the order it runs."""

    __slots__ = ("order", "scope")

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.order: Order | None = None
