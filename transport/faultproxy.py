"""A message-level relay between one worker and the broker that can break the link.

Scenario runs put one ``FaultProxy`` between each worker process and the broker
so that a fault can act on the link rather than the process: drop every message
both ways (a partition with TCP still up), hold messages back, or lose some at
random, while the worker and the broker run unchanged.

The broker knows a worker by the routing id its ROUTER gives each connection
and by the name and incarnation in its READY. So the proxy mirrors connections:
each connection a worker opens to the proxy's ROUTER gets a DEALER of its own
connected to the broker, which therefore sees one connection, one routing id
and one READY per worker connection, as if the worker were connected directly.
When the worker's connection closes (the process killed, or the worker gave
up on a silent broker and reconnects afresh), the proxy closes that DEALER once
what the worker sent before has been relayed, so the broker loses the peer as it
would have. Frames pass unchanged; nothing is decoded.

libzmq (without its draft API) does not say *which* connection closed, only
that one did. A proxy serves one worker, and a worker closes its connection
before it opens the next (it waits a backoff of a second or more between them),
so the proxy retires every DEALER when the last worker connection closes, and
the older DEALERs when a new worker connection speaks.

CURVE is not relayed: the proxy would have to hold the keys of both ends. Runs
that use a proxy run their broker without CURVE.
"""

from __future__ import annotations

import contextlib
import errno
import math
import random
from typing import TYPE_CHECKING, Literal

import anyio
import attrs
import zmq
from zmq.utils.monitor import parse_monitor_message

from .endpoints import check_endpoint
from .errors import TransportError
from .socket import Socket

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import ObjectReceiveStream, TaskGroup

__all__ = ["FaultProxy", "LinkCounters", "ProxyCounters"]

#: Messages waiting in the proxy per direction (held by a delay, or for a
#: socket with no room) before it stops reading and lets libzmq's queues fill.
BACKLOG = 10_000

Direction = Literal["to_broker", "to_worker"]


@attrs.frozen(kw_only=True)
class LinkCounters:
    """What a proxy did with the messages going one way.

    Attributes:
        relayed: Messages delivered (late ones included).
        dropped: Messages a fault dropped (a partition, or a drop fault's draw).
        delayed: Messages a delay fault held back (also counted in ``relayed``
            once delivered).
    """

    relayed: int = 0
    dropped: int = 0
    delayed: int = 0


@attrs.frozen(kw_only=True)
class ProxyCounters:
    """A proxy's counters, each way.

    Attributes:
        to_broker: The worker's messages to the broker.
        to_worker: The broker's messages to the worker.
    """

    to_broker: LinkCounters
    to_worker: LinkCounters

    @property
    def relayed(self) -> int:
        """Messages delivered, both ways."""
        return self.to_broker.relayed + self.to_worker.relayed

    @property
    def dropped(self) -> int:
        """Messages a fault dropped, both ways."""
        return self.to_broker.dropped + self.to_worker.dropped

    @property
    def delayed(self) -> int:
        """Messages a delay fault held back, both ways."""
        return self.to_broker.delayed + self.to_worker.delayed


# Mutable and slotted: one per direction, touched for every message relayed.
class _Tally:
    __slots__ = ("delayed", "dropped", "last_due", "relayed")

    def __init__(self) -> None:
        self.relayed = self.dropped = self.delayed = 0
        #: When the latest message this way is due: none may overtake it.
        self.last_due = -math.inf

    def snapshot(self) -> LinkCounters:
        return LinkCounters(
            relayed=self.relayed, dropped=self.dropped, delayed=self.delayed
        )


class _Link:
    """One worker connection, and the DEALER that stands for it at the broker."""

    __slots__ = ("peer", "retired", "sending", "socket")

    def __init__(self, peer: bytes, socket: Socket) -> None:
        self.peer = peer
        self.socket = socket
        self.retired = False
        #: The scope of a send to the broker waiting for room or a connection.
        self.sending: anyio.CancelScope | None = None


#: What goes through a direction's queue: when it is due, the link, its frames
#: (None: close the link once everything before has gone).
_Item = tuple[float, _Link, list[bytes] | None]


class FaultProxy:
    """A relay between one worker and the broker, with faults to order.

    ``async with FaultProxy(upstream) as proxy:`` binds a free port on
    127.0.0.1 (``proxy.endpoint``) for the worker to connect to, and relays
    every message both ways unchanged, multipart frames intact, until a fault
    says otherwise. Leaving closes every socket; messages still held are lost.

    Faults are set with ``partition``, ``delay`` and ``drop``, each for a
    duration from the moment it is called; they end by themselves and may
    overlap. Each is decided for a message as the proxy reads it: a partition
    drops it, then a drop fault may, then a delay fault holds it. A message held
    back and due while a partition is on is dropped too.

    Args:
        upstream: The broker's endpoint (``tcp://127.0.0.1:5555``).
        rng: Draws the jitter of delays; a fresh ``random.Random()`` by default.
            (A drop fault brings its own.)

    Raises:
        TransportError: ``upstream`` is not an endpoint to connect to.
    """

    def __init__(self, upstream: str, *, rng: random.Random | None = None) -> None:
        check_endpoint(upstream, bind=False)
        self.upstream = upstream
        self._rng = rng if rng is not None else random.Random()
        self._endpoint: str | None = None
        self._tallies: dict[Direction, _Tally] = {
            "to_broker": _Tally(),
            "to_worker": _Tally(),
        }
        self._links: dict[bytes, _Link] = {}
        self._connections = 0
        # The faults: until when each lasts (on anyio's clock), and its terms.
        self._partition_until = -math.inf
        self._delay_until = -math.inf
        self._delay = self._jitter = 0.0
        self._drop_until = -math.inf
        self._drop_probability = 0.0
        self._drop_rng = self._rng
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    # ------------------------------------------------------------- faults

    @property
    def endpoint(self) -> str:
        """Where the worker connects: ``tcp://127.0.0.1:PORT``.

        Raises:
            TransportError: The proxy has not been entered.
        """
        if self._endpoint is None:
            raise TransportError("the fault proxy has not started")
        return self._endpoint

    def partition(self, duration: float) -> None:
        """Drop every message both ways for ``duration`` seconds from now.

        The connections stay up (as a partition that leaves TCP alone): both ends
        learn of it only by the silence, through their heartbeats. Not a
        checkpoint; call it from the proxy's event loop. A partition already on
        lasts until the later of the two ends.

        Raises:
            ValueError: ``duration`` is negative or not finite.
        """
        until = _seconds(duration) + anyio.current_time()
        self._partition_until = max(self._partition_until, until)

    def delay(self, delay: float, duration: float, jitter: float = 0.0) -> None:
        """Deliver each message ``delay`` ± ``jitter`` seconds late, for ``duration``.

        Each message read within ``duration`` seconds from now is held for
        ``delay`` plus a uniform draw in [-``jitter``, ``jitter``] (never less
        than 0), and never overtakes one sent before it the same way: order is
        kept per direction. Replaces a delay fault already on. Not a checkpoint.

        Raises:
            ValueError: A negative or infinite number.
        """
        delay, jitter, duration = _seconds(delay), _seconds(jitter), _seconds(duration)
        self._delay, self._jitter = delay, jitter
        self._delay_until = anyio.current_time() + duration

    def drop(self, probability: float, duration: float, rng: random.Random) -> None:
        """Drop each message with ``probability``, for ``duration`` seconds from now.

        ``rng`` draws once for each message read either way while the fault is
        on: seeded, the same messages in the same order meet the same fate.
        Replaces a drop fault already on. Not a checkpoint.

        Raises:
            ValueError: ``probability`` is not within [0, 1], or ``duration`` is
                negative or not finite.
        """
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"expected a probability from 0 to 1, got {probability}")
        duration = _seconds(duration)
        self._drop_probability = probability
        self._drop_rng = rng
        self._drop_until = anyio.current_time() + duration

    @property
    def counters(self) -> ProxyCounters:
        """What the proxy did so far, each way."""
        return ProxyCounters(
            to_broker=self._tallies["to_broker"].snapshot(),
            to_worker=self._tallies["to_worker"].snapshot(),
        )

    def statistics(self) -> ProxyCounters:
        """The same as ``counters``: the house name of a counter snapshot."""
        return self.counters

    def _fate(self, tally: _Tally) -> float | None:
        """When a message read now is due; None if a fault drops it."""
        now = anyio.current_time()
        if now < self._partition_until or (
            now < self._drop_until and self._drop_rng.random() < self._drop_probability
        ):
            tally.dropped += 1
            return None
        due = now
        if now < self._delay_until:
            hold = self._delay
            if self._jitter:
                hold += self._rng.uniform(-self._jitter, self._jitter)
            if hold > 0:
                due += hold
                tally.delayed += 1
        # Order is kept: a message is never due before the one read before it.
        due = max(due, tally.last_due)
        tally.last_due = due
        return due

    # ---------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FaultProxy:
        async with contextlib.AsyncExitStack() as stack:
            context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            stack.callback(context.destroy, linger=0)
            self._context = context
            try:
                raw = context.socket(zmq.ROUTER)
                raw.setsockopt(zmq.LINGER, 0)
                # A message for a worker connection that has gone is an error
                # to skip, not a silent drop; a full one waits.
                raw.setsockopt(zmq.ROUTER_MANDATORY, 1)
                raw.bind("tcp://127.0.0.1:*")
            except zmq.ZMQError as exc:
                raise TransportError(
                    f"the fault proxy cannot bind: {exc.strerror}"
                ) from None
            last = raw.getsockopt(zmq.LAST_ENDPOINT)
            assert isinstance(last, bytes)
            self._endpoint = last.decode()
            self._router = Socket(raw)
            stack.callback(self._router.close)
            events = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
            self._monitor = Socket(raw.get_monitor_socket(events))
            stack.callback(self._monitor.close)
            stack.callback(self._close_links)
            to_broker = anyio.create_memory_object_stream[_Item](BACKLOG)
            to_worker = anyio.create_memory_object_stream[_Item](BACKLOG)
            for end in (*to_broker, *to_worker):
                stack.push_async_callback(end.aclose)
            self._to_broker, self._to_worker = to_broker[0], to_worker[0]
            group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(group.cancel_scope.cancel)
            self._group: TaskGroup = group
            group.start_soon(self._watch_connections)
            group.start_soon(self._from_worker)
            group.start_soon(self._deliver, to_broker[1], "to_broker")
            group.start_soon(self._deliver, to_worker[1], "to_worker")
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        return await stack.__aexit__(exc_type, exc, traceback)

    def _close_links(self) -> None:
        for link in self._links.values():
            link.socket.close()
        self._links.clear()

    # ------------------------------------------------------------ relaying

    async def _from_worker(self) -> None:
        tally = self._tallies["to_broker"]
        while True:
            for frames in await self._router.receive_many():
                if len(frames) < 2:  # a routing id alone: nothing to relay
                    continue
                peer, body = frames[0], frames[1:]
                link = self._links.get(peer)
                if link is None:
                    link = await self._open(peer)
                due = self._fate(tally)
                if due is not None:
                    await self._to_broker.send((due, link, body))

    async def _open(self, peer: bytes) -> _Link:
        """A DEALER to the broker for a new worker connection, ``peer``."""
        # One worker per proxy: a new connection means its last one is over.
        for old in list(self._links.values()):
            await self._retire(old)
        assert self._context is not None
        raw = self._context.socket(zmq.DEALER)
        # As the worker's own DEALER: nothing queued for a broker not there.
        raw.setsockopt(zmq.IMMEDIATE, 1)
        try:
            raw.connect(self.upstream)
        except zmq.ZMQError as exc:
            raw.close(linger=0)
            raise TransportError(
                f"the fault proxy cannot connect to {self.upstream}: {exc.strerror}"
            ) from None
        link = _Link(peer, Socket(raw))
        self._links[peer] = link
        self._group.start_soon(self._from_broker, link)
        return link

    async def _retire(self, link: _Link) -> None:
        """Close ``link``'s DEALER once what was read before it has gone."""
        if link.retired:
            return
        link.retired = True
        if self._links.get(link.peer) is link:
            del self._links[link.peer]
        if link.sending is not None:
            # Waiting for a broker that is not there: its worker has gone now,
            # and what it sent goes with its connection, as it would directly.
            link.sending.cancel()
        # Behind everything this way, and never held longer than they are.
        await self._to_broker.send((self._tallies["to_broker"].last_due, link, None))

    async def _from_broker(self, link: _Link) -> None:
        tally = self._tallies["to_worker"]
        with contextlib.suppress(anyio.ClosedResourceError):
            while True:
                for frames in await link.socket.receive_many():
                    due = self._fate(tally)
                    if due is not None:
                        await self._to_worker.send((due, link, frames))

    async def _deliver(
        self, items: ObjectReceiveStream[_Item], direction: Direction
    ) -> None:
        tally = self._tallies[direction]
        async for due, link, frames in items:
            if due > anyio.current_time():
                await anyio.sleep_until(due)
            if frames is None:
                link.socket.close()
                continue
            if anyio.current_time() < self._partition_until:
                tally.dropped += 1
                continue
            try:
                if direction == "to_worker":
                    await self._router.send([link.peer, *frames])
                elif link.retired:  # its worker has gone: no waiting for room
                    if not link.socket.try_send(frames):
                        continue
                else:
                    with anyio.CancelScope() as scope:
                        link.sending = scope
                        await link.socket.send(frames)
                    link.sending = None
                    if scope.cancelled_caught:
                        continue
            except anyio.ClosedResourceError:
                continue  # the worker's connection closed: so did this one
            except zmq.ZMQError as exc:
                if exc.errno != errno.EHOSTUNREACH:
                    raise
                continue  # the worker's connection has gone, as direct
            tally.relayed += 1

    async def _watch_connections(self) -> None:
        """Retire the DEALERs when the worker's last connection closes."""
        while True:
            event = parse_monitor_message(await self._monitor.receive())
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._connections += 1
                continue
            self._connections = max(0, self._connections - 1)
            if not self._connections:
                for link in list(self._links.values()):
                    await self._retire(link)


def _seconds(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"expected seconds >= 0, got {value}")
    return float(value)
