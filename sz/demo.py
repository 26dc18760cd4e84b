"""A small supervised tree that shows the runtime at work until the scheduler lands.

A ``Ticker`` tells a ``Worker`` to do a job every second; one job in five crashes the
worker, which its ``Supervisor`` restarts in place. Every lifecycle event is logged.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from actors import (
    Actor,
    ActorRef,
    ActorSystem,
    Backoff,
    Child,
    Crashed,
    Restarted,
    Started,
    Stopped,
    Supervision,
    Supervisor,
)

__all__ = ["run_demo"]

logger = logging.getLogger("sz.demo")


class Worker(Actor):
    """Does numbered jobs; crashes on every fifth, to show the restart."""

    async def on_start(self) -> None:
        self.done = 0

    async def receive(self, message: Any) -> Any:
        if message % 5 == 0:
            raise RuntimeError(f"job {message} failed on purpose")
        self.done += 1
        logger.info("job %s done (%s since this worker started)", message, self.done)
        return self.done


class Ticker(Actor):
    """Sends the worker a job every ``interval`` seconds."""

    def __init__(self, worker_path: str, interval: float) -> None:
        self.worker_path = worker_path
        self.interval = interval

    async def on_start(self) -> None:
        self.count = 0
        self.every(self.interval, "tick")

    async def receive(self, message: Any) -> None:
        self.count += 1
        worker: ActorRef | None = self.system.lookup(self.worker_path)
        if worker is not None:
            worker.tell(self.count)


async def run_demo(stop: anyio.Event, interval: float = 1.0) -> None:
    """Run the demo tree until ``stop`` is set, logging its lifecycle events."""
    async with ActorSystem("sz") as system, system.events() as events:
        await system.spawn(
            Supervisor,
            [
                Child(Worker, name="worker", backoff=Backoff(min=0.2, jitter=0.1)),
                Child(Ticker, "/user/demo/worker", interval, name="ticker"),
            ],
            Supervision(strategy="one_for_one", max_restarts=10, within=10.0),
            name="demo",
        )
        logger.info("actor tree: %s", [snap.path for snap in system.snapshot().walk()])
        async with anyio.create_task_group() as tg:

            async def log_events() -> None:
                async for event in events:
                    if isinstance(event, Crashed):
                        logger.warning("%s crashed: %r", event.path, event.error)
                    elif isinstance(event, (Started, Restarted, Stopped)):
                        logger.info("%s", event)

            tg.start_soon(log_events)
            await stop.wait()
            tg.cancel_scope.cancel()
