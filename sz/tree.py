"""The scheduler's own supervision tree: how each core actor is restarted.

Chaos aimed at the tree (kills at a sustained rate, a crash loop) must never end
the process: every supervisor of the core restarts without end, at once while
within its intensity and, beyond it, after a backoff that paces a crash loop and
logs each burst (``Supervision.past_intensity``). What a restart keeps is the
other half: the history's rows and the dispatcher's jobs live outside the actors
(the backend, the ``DispatcherState``), and the handlers' supervisor registers
its fresh children with the dispatcher every time it starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import Backoff, Child, Supervision, Supervisor

from .dispatcher import Register
from .handlers import HandlerActor

if TYPE_CHECKING:
    from collections.abc import Sequence

    from actors import ActorRef

    from .handlers import HandlerSpec

__all__ = [
    "CORE_BACKOFF",
    "CORE_SUPERVISION",
    "HANDLERS_SUPERVISION",
    "HANDLER_MAILBOX",
    "HandlersSupervisor",
]

#: A handler's mailbox holds its concurrency's worth of jobs plus this many
#: messages (health, queries, control).
HANDLER_MAILBOX = 1000

#: Beyond the intensity, a core actor waits 20 ms before its restart, doubling
#: to at most half a second while its burst lasts (until it stays up 5 s): a
#: crash loop restarts at most twice a second, and an actor killed again and
#: again is back within half a second of each kill.
CORE_BACKOFF = Backoff(min=0.02, max=0.5, factor=2.0, jitter=0.2, reset_after=5.0)

#: ``/user`` under a scheduler: OTP's intensity (3 restarts in 5 s) at once,
#: and beyond it ``CORE_BACKOFF`` rather than the end of the process. Actors a
#: user spawns beside the scheduler's (``sz.system.spawn``) are treated alike.
#: A kill from outside (an operator's ``sz kill``, a chaos run) restarts its
#: actor at once and is not counted: the backoff is for an actor that fails by
#: itself, and pacing a kill storm kept the dispatcher and the history down
#: most of the time (1,000 kills in 26 s: job latency p99 16 s instead of ms).
CORE_SUPERVISION = Supervision(
    max_restarts=3, within=5.0, past_intensity=CORE_BACKOFF, count_kills=False
)

#: ``/user/handlers``: 10 restarts of its handlers in 10 s at once, then
#: ``CORE_BACKOFF``; a handler killed from outside restarts at once, uncounted.
HANDLERS_SUPERVISION = Supervision(
    max_restarts=10, within=10.0, past_intensity=CORE_BACKOFF, count_kills=False
)


class HandlersSupervisor(Supervisor):
    """``/user/handlers``: an actor per handler, each registered with the dispatcher.

    A restart of this supervisor stops its children and starts fresh ones,
    with fresh refs; so every start, the first and each restart, tells the
    dispatcher ``Register`` for each. The dispatcher has by then heard that the
    old ones ended (``Terminated`` overtakes mail), and their jobs in flight
    were lost and tried again.
    """

    def __init__(self, specs: Sequence[HandlerSpec], dispatcher: ActorRef) -> None:
        super().__init__(
            [
                # Room for every job it may run at once: the dispatcher sends up
                # to ``concurrency`` at a time and must never find it full.
                Child(
                    HandlerActor,
                    spec,
                    name=spec.name,
                    capacity=spec.concurrency + HANDLER_MAILBOX,
                )
                for spec in specs
            ],
            HANDLERS_SUPERVISION,
        )
        self.specs = tuple(specs)
        self.dispatcher = dispatcher

    async def on_start(self) -> None:
        """Start the handlers, then register each with the dispatcher."""
        await super().on_start()
        refs = {ref.name: ref for ref in self.children}
        for spec in self.specs:
            self.dispatcher.tell(
                Register(
                    name=spec.name,
                    task=spec.task,
                    ref=refs[spec.name],
                    concurrency=spec.concurrency,
                    retries=spec.retries,
                    timeout=spec.timeout,
                    retry_backoff=spec.retry_backoff,
                )
            )
