"""A frozen picture of the actor tree, for dashboards and tests."""

from __future__ import annotations

from typing import Literal

import attrs

from .supervision import Supervision

__all__ = ["ActorSnapshot", "ActorState"]

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
