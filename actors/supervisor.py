"""``Supervisor``: an actor that does nothing but supervise a declared child list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .actor import Actor
from .errors import ActorError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .supervision import Child, Supervision

__all__ = ["Supervisor"]


class Supervisor(Actor):
    """Starts ``children`` left to right and supervises them by ``supervision``.

    ``spawn`` of a ``Supervisor`` returns once every child has started; children
    stop in reverse order. Messages sent to it are unhandled (dead letters).
    """

    def __init__(
        self, children: Sequence[Child], supervision: Supervision | None = None
    ) -> None:
        names = [child.name for child in children]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ActorError(
                f"Supervisor children share names: {', '.join(duplicates)}"
            )
        self.declared = tuple(children)
        if supervision is not None:
            # An instance value shadows the class default for this supervisor alone.
            self.supervision = supervision  # type: ignore[misc]

    async def on_start(self) -> None:
        """Start the declared children in order."""
        for child in self.declared:
            await self.spawn(
                child.factory,
                *child.args,
                name=child.name,
                capacity=child.capacity,
                overflow=child.overflow,
                restart=child.restart,
                backoff=child.backoff,
            )
