"""``/user/cluster``: keeps this node alive among the nodes sharing its store.

On a PostgreSQL store every ScheduleZero is a node (``sz.store.nodes``). This
actor renews the node's lease every heartbeat, on the database's clock, and in
the same visit takes over the nodes whose lease ran out: their accepted jobs are
taken up here as after a restart (an ``abandoned`` row, then a retry within the
task's retries), and the schedules they held are let go for any node to fire.

A heartbeat that finds the node's own row taken over (another node decided it
was dead, or a process started with its name) has found it fenced out: the
store refuses every write from then on and tells the scheduler's owner
(``wait_store_lost``), and ``sz serve`` exits with code 2.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from actors import Actor

from .errors import FencedOut, StoreError
from .store.database import DamagedValue
from .store.history import unfinished_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .store.history import Unfinished
    from .store.postgres import PostgresDatabase

__all__ = ["ClusterActor"]

logger = logging.getLogger("sz.cluster")

_BEAT = "beat"


class ClusterActor(Actor):
    """Renews this node's lease and takes over dead nodes, every heartbeat.

    Args:
        file: The store's database, opened as this node.
        take_over: Takes up the accepted jobs of nodes taken over.
    """

    def __init__(
        self,
        file: PostgresDatabase,
        take_over: Callable[[list[Unfinished]], Awaitable[None]],
    ) -> None:
        assert file.node is not None, "a store opened as a node"
        self.file = file
        self.node = file.node
        self.take_over = take_over

    async def on_start(self) -> None:
        """Arm the first heartbeat: at once (dead nodes are taken over now)."""
        # One beat after another (never two queued while the database is slow).
        self.send_after(0.0, _BEAT)

    async def receive(self, message: Any) -> None:
        """A heartbeat: renew, take over, and arm the next."""
        if message != _BEAT:
            return
        began = time.monotonic()
        try:
            await self._beat()
        finally:
            # Every heartbeat seconds, however long the beat took.
            spent = time.monotonic() - began
            self.send_after(max(0.0, self.node.heartbeat - spent), _BEAT)

    async def _beat(self) -> None:
        try:
            taken, rows = await self.file.heartbeat()
        except FencedOut:
            return  # logged, and the owner told, by the store
        except StoreError as exc:
            logger.warning("node %s: heartbeat failed: %s", self.node.name, exc)
            return
        for node in taken:
            logger.warning(
                "node %s took over node %s (epoch %d, its lease ran out): %d "
                "accepted jobs taken up here, %d schedules let go",
                self.node.name,
                node.name,
                node.epoch,
                node.jobs,
                node.schedules,
                extra={"node": node.name, "jobs": node.jobs},
            )
        jobs: list[Unfinished] = []
        for row in rows:
            try:
                jobs.append(unfinished_of(row, self.file.moment))
            except DamagedValue as exc:
                logger.error("node %s: a job taken over: %s", self.node.name, exc)
        if jobs:
            await self.take_over(jobs)
