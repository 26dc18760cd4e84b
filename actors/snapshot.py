"""A frozen picture of the actor tree, for dashboards and tests."""

from __future__ import annotations

from typing import Literal

import attrs

from .supervision import Supervision

__all__ = ["ActorDeath", "ActorSnapshot", "ActorState"]

ActorState = Literal[
    "starting", "running", "restarting", "stopping", "stopped", "failed"
]


@attrs.frozen(kw_only=True)
class ActorSnapshot:
    """One actor and, recursively, its children, as they were when taken.

    Plain data: ``cattrs.unstructure(snapshot)`` is JSON-ready.

    Attributes:
        path: Where the actor lives, such as ``/user/handlers/send_email``.
        actor_class: The qualified name of the actor's class.
        state: ``starting``, ``running``, ``restarting`` (crashed, waiting to come
            back), ``stopping``, ``stopped`` (ended normally) or ``failed`` (ended by
            an error it was not restarted from).
        mailbox_depth: Messages waiting, not counting the one being processed.
        mailbox_capacity: The most messages that may wait.
        processed: Messages handled, over every incarnation.
        failures: Crashes, over every incarnation.
        restarts: Times the actor was restarted in place.
        last_error: ``repr`` of the latest crash, or None.
        started_at: Wall-clock time (Unix seconds) the current incarnation started.
        supervision: How the actor treats its children (its class's
            ``supervision``; the default ``Supervision()`` before it first starts).
        window_restarts: Restarts of its children still counted against its
            ``supervision.max_restarts`` (within ``supervision.within`` seconds).
        children: The children's snapshots, in start order.
    """

    path: str
    actor_class: str
    state: ActorState
    mailbox_depth: int
    mailbox_capacity: int
    processed: int
    failures: int
    restarts: int
    last_error: str | None
    started_at: float | None
    supervision: Supervision = attrs.field(factory=Supervision)
    window_restarts: int = 0
    children: tuple[ActorSnapshot, ...] = ()

    def walk(self) -> list[ActorSnapshot]:
        """Return this snapshot and all below it, depth first, in start order."""
        found = [self]
        for child in self.children:
            found.extend(child.walk())
        return found

    def find(self, path: str) -> ActorSnapshot | None:
        """Return the snapshot at ``path`` within this tree, or None."""
        return next((snap for snap in self.walk() if snap.path == path), None)


@attrs.frozen(kw_only=True)
class ActorDeath:
    """One crash of an actor (raised, or killed), as the system remembers it.

    ``lowlevel.recent_deaths`` returns the latest, for a dashboard that opens
    after the fact: the actor's own snapshot keeps only its last error, and an
    actor that stopped for good leaves the tree.

    Attributes:
        path: Where the actor lived, such as ``/user/handlers/send_email``.
        actor_class: The qualified name of its class.
        cause: ``repr`` of the error that ended it (an ``ActorKilled`` for a kill).
        died_at: Wall-clock time (Unix seconds) of the crash.
        restarted: Whether it came back in place since (its supervisor
            restarted it).
        ended: Whether it stopped for good instead (not restarted: its restart
            type, its supervisor giving up, or the system ending). Neither is
            true while a restart is still to come (a backoff's delay).
    """

    path: str
    actor_class: str
    cause: str
    died_at: float
    restarted: bool
    ended: bool
