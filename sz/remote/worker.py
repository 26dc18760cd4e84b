"""``ZMQHandler``: functions in a worker process, served to a scheduler over ZeroMQ.

A worker registers its tasks with the scheduler's broker (READY), runs the
jobs it is sent, at most ``capacity`` at once, and answers each with a RESULT.
Its connection is an actor under a supervisor: when the broker falls silent
for ``liveness`` heartbeats, the connection actor fails, closes its socket,
and its supervisor's ``Backoff`` (1 s doubling to 32 s, with jitter) is the
wait before it connects afresh.

A worker given several brokers (one per node of a cluster) has one connection
actor per broker, each registering, beating and reconnecting on its own, and
one pool of ``capacity`` slots that the jobs of every broker take turns for.
Each broker is told the whole capacity: SZP1 has no message that moves credit
from one broker to another, and a share fixed per broker would leave slots idle
when a node dies. A job sent while every slot is taken waits in the worker, in
arrival order, and its timeout counts from when it starts.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, overload

import anyio
import attrs

from actors import (
    Actor,
    ActorRef,
    ActorSystem,
    Backoff,
    Child,
    Supervision,
    Supervisor,
    lowlevel,
)
from transport import (
    MAX_CAPACITY,
    MAX_HEADER,
    MAX_HEARTBEAT,
    MAX_HELD,
    MAX_NAME,
    MAX_TASKS,
    MIN_HEARTBEAT,
    WORKER_NAME,
    WORKER_NAME_RULE,
    Dealer,
    Disconnect,
    Heartbeat,
    JobRequest,
    JobResult,
    KeyFileError,
    ProtocolError,
    Ready,
    TransportError,
    check_endpoint,
    decode_all,
    encode,
    load_public_key,
    load_secret_key,
)

from ..binding import binding_error, signature_of
from ..errors import ConnectionLost, SzError
from ..jobs import describe_error, describe_traceback, must_propagate
from ..pool import JobTasks
from ..threads import DaemonThreads
from ..validators import int_at_least, positive
from .wire import (
    BEAT,
    MAX_ERROR,
    MAX_MESSAGE_BYTES,
    Outbox,
    decode_arguments,
    encode_value,
    frames_of,
)

__all__ = ["RECONNECT_BACKOFF", "ZMQHandler"]

# Named as before the move to sz.remote: operators filter on it.
logger = logging.getLogger("sz.worker")

#: The wait before each reconnection: 1 s, doubling to 32 s, +-20 % jitter;
#: back to 1 s once a connection has lasted 30 s.
RECONNECT_BACKOFF = Backoff(min=1.0, max=32.0, factor=2.0, jitter=0.2, reset_after=30.0)


@attrs.frozen
class _Task:
    name: str
    func: Callable[..., Any]
    timeout: float | None
    is_async: bool
    #: Read once, to tell a caller's arguments that do not fit from the
    #: function's own TypeError.
    signature: inspect.Signature | None = attrs.field(eq=False, repr=False)


class ZMQHandler:
    """A worker: register tasks, then ``start()`` (or ``await serve()``).

    Args:
        endpoint: The broker's endpoint, ``tcp://127.0.0.1:5555`` by default; or
            a sequence of endpoints, one broker per node, all served at once
            (the module's docstring says how their jobs share ``capacity``).
        name: The worker's name, unique among the broker's workers (with CURVE,
            the name its key is listed under); ``<host>-<pid>`` by default.
        capacity: Jobs it runs at once, 1 by default (>= 1), whichever broker
            sent them. Async tasks run on the event loop, sync ones in daemon
            threads.
        heartbeat: Seconds between heartbeats, 1.0 by default.
        liveness: Heartbeats the broker may miss before the worker reconnects,
            3 by default.
        key: This worker's secret key file (``sz keys generate``) for CURVE,
            with ``server_key``; None for none.
        server_key: The broker's public key file: one for every broker, or a
            sequence of one per endpoint, in their order.
        drain_timeout: Seconds a stopping worker lets its jobs finish before it
            hands back the rest, 1.0 by default.
        max_message_bytes: The largest message the broker takes (its
            ``handlers.zmq.max_message_bytes``, 16 MiB by default). A larger
            result fails its job here: sent, it would cost the connection (libzmq
            drops it) and the job would be retried as lost, to the same end.
        backoff: The wait before each reconnection, ``RECONNECT_BACKOFF`` by
            default.

    Raises:
        SzError: An option (an endpoint, the name, a number) is bad, an endpoint
            is given twice, the server keys do not match the endpoints one for
            one, or a key file cannot be read.
    """

    def __init__(
        self,
        endpoint: str | Sequence[str] = "tcp://127.0.0.1:5555",
        *,
        name: str | None = None,
        capacity: int = 1,
        heartbeat: float = 1.0,
        liveness: int = 3,
        key: str | os.PathLike[str] | None = None,
        server_key: str
        | os.PathLike[str]
        | Sequence[str | os.PathLike[str]]
        | None = None,
        drain_timeout: float = 1.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        backoff: Backoff = RECONNECT_BACKOFF,
    ) -> None:
        given: dict[str, Any] = {
            "capacity": capacity,
            "heartbeat": heartbeat,
            "liveness": liveness,
            "drain_timeout": drain_timeout,
            "max_message_bytes": max_message_bytes,
        }
        for label, value in given.items():
            whole = label in {"capacity", "liveness", "max_message_bytes"}
            kinds = int if whole else int | float
            if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
                expected = "an integer >= 1" if whole else "a number > 0"
                raise SzError(f"{label} must be {expected}, got {value!r}")
        # The broker refuses a READY out of SZP1's bounds: say so now, not in a
        # refusal at every reconnection.
        if not MIN_HEARTBEAT <= heartbeat <= MAX_HEARTBEAT:
            raise SzError(
                f"heartbeat must be from {MIN_HEARTBEAT:g} to {MAX_HEARTBEAT:g} "
                f"seconds, got {heartbeat!r}"
            )
        if capacity > MAX_CAPACITY:
            raise SzError(f"capacity must be at most {MAX_CAPACITY}, got {capacity!r}")
        if (key is None) != (server_key is None):
            raise SzError("CURVE needs both key (this worker's) and server_key")
        endpoints = _endpoints(endpoint)
        # The broker refuses a READY under any other name: say so now, not in
        # a refusal at every reconnection.
        if name is not None and not WORKER_NAME.fullmatch(name):
            raise SzError(f"name: expected {WORKER_NAME_RULE}, got {name!r}")
        #: The brokers it serves, in the order given.
        self.endpoints = endpoints
        #: The first of them (the only one, usually).
        self.endpoint = endpoints[0]
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.capacity = capacity
        self.heartbeat = float(heartbeat)
        self.liveness = liveness
        self.drain_timeout = float(drain_timeout)
        self.max_message_bytes = max_message_bytes
        self.backoff = backoff
        #: With CURVE, each endpoint's keys (this worker's pair, its broker's).
        self._keys: tuple[tuple[bytes, bytes, bytes], ...] | None = None
        if key is not None and server_key is not None:
            servers = _server_keys(server_key, len(endpoints))
            try:
                public, secret = load_secret_key(Path(key))
                self._keys = tuple(
                    (public, secret, load_public_key(Path(path))) for path in servers
                )
            except KeyFileError as exc:
                raise SzError(str(exc)) from None
        self._tasks: dict[str, _Task] = {}
        self._stop: anyio.Event | None = None
        self._system: ActorSystem | None = None
        #: Connections made, and READY messages sent (for operators and tests).
        self.connections = 0
        self.registrations = 0

    # ----------------------------------------------------------------- tasks

    @overload
    def task(self, func: Callable[..., Any], /) -> Callable[..., Any]: ...

    @overload
    def task(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def task(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Serve a function as the task ``name`` (its own name by default).

        Usable bare (``@handler.task``) or with options
        (``@handler.task(name="send", timeout=30)``). Arguments and results
        travel as msgpack: None, bools, numbers, strings, bytes, lists, dicts and
        aware datetimes. Returns the function unchanged.

        Raises:
            SzError: The name is empty, longer than ``transport.MAX_NAME`` (256)
                characters or registered already, the worker serves
                ``transport.MAX_TASKS`` (2,048) tasks already, or the timeout is
                not > 0.
        """

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            task = name or function.__name__
            if not task or task in self._tasks:
                raise SzError(f"task {task!r} is registered already")
            # The broker takes no READY past these bounds (SZP1's): say so
            # now, not in a refusal at every reconnection.
            if len(task) > MAX_NAME:
                raise SzError(
                    f"task {task[:32]!r}...: a name of {len(task)} characters, "
                    f"at most {MAX_NAME}"
                )
            if len(self._tasks) >= MAX_TASKS:
                raise SzError(
                    f"task {task!r}: a worker serves at most {MAX_TASKS} tasks"
                )
            if timeout is not None and not timeout > 0:
                raise SzError(f"task {task!r}: timeout must be > 0")
            self._tasks[task] = _Task(
                task,
                function,
                timeout,
                inspect.iscoroutinefunction(function),
                signature_of(function),
            )
            return function

        return register(func) if func is not None else register

    @overload
    def method(self, func: Callable[..., Any], /) -> Callable[..., Any]: ...

    @overload
    def method(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def method(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Another name for ``task`` (``@handler.method``), for code written with it."""
        register = self.task(name=name, timeout=timeout)
        return register(func) if func is not None else register

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this worker serves."""
        return tuple(self._tasks)

    @property
    def methods(self) -> tuple[str, ...]:
        """Another name for ``tasks``."""
        return self.tasks

    # --------------------------------------------------------------- running

    def start(self, backend: Literal["asyncio", "trio"] = "asyncio") -> None:
        """Serve until SIGTERM or SIGINT, on an event loop of its own.

        A signal stops it as ``stop`` does: within ``drain_timeout`` and a little.
        """
        anyio.run(self._serve_until_signalled, backend=backend)

    async def _serve_until_signalled(self) -> None:
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as got:
                    async for signum in got:
                        logger.info(
                            "worker %s: %s, stopping",
                            self.name,
                            signal.Signals(signum).name,
                        )
                        self.stop()
                        return

            tg.start_soon(stop_on_signal)
            await self.serve()
            tg.cancel_scope.cancel()

    async def serve(self) -> None:
        """Connect, register and run jobs until ``stop`` is called (or cancelled).

        Raises:
            SzError: No task is registered.
        """
        if not self._tasks:
            raise SzError("register at least one task with @handler.task")
        if self._stop is not None:
            raise SzError("the worker is already serving")
        stop = self._stop = anyio.Event()
        drained = anyio.Event()
        self.incarnation = uuid.uuid4().hex
        spec = ConnectionSpec(
            endpoint=self.endpoint,
            name=self.name,
            incarnation=self.incarnation,
            keys=None,
            capacity=self.capacity,
            heartbeat=self.heartbeat,
            liveness=self.liveness,
            drain_timeout=self.drain_timeout,
            max_message_bytes=self.max_message_bytes,
            tasks=MappingProxyType(self._tasks),
        )
        undrained = len(self.endpoints)

        def one_drained() -> None:
            nonlocal undrained
            undrained -= 1
            if not undrained:
                drained.set()

        try:
            async with ActorSystem(f"worker-{self.name}") as system:
                self._system = system
                link = HandlerLink(
                    connected=self._connected,
                    registered=self._registered,
                    drained=one_drained,
                    # One broker: its credit bounds what runs, as it always did.
                    slots=(
                        anyio.CapacityLimiter(self.capacity)
                        if len(self.endpoints) > 1
                        else None
                    ),
                )
                names = self._connection_names()
                # Its supervisor never gives up on a connection: the backoff,
                # not a restart limit, is what paces it. One_for_one: a broker
                # lost ends only its own connection's jobs.
                children = [
                    Child(
                        Connection,
                        attrs.evolve(
                            spec,
                            endpoint=endpoint,
                            keys=None if self._keys is None else self._keys[index],
                        ),
                        link,
                        name=names[index],
                        restart="permanent",
                        backoff=self.backoff,
                    )
                    for index, endpoint in enumerate(self.endpoints)
                ]
                await system.spawn(
                    Supervisor,
                    children,
                    Supervision(max_restarts=2**62, within=1.0),
                    name="worker",
                )
                await stop.wait()
                # Finish (or hand back) what runs; a connection waiting to
                # reconnect has nothing to finish.
                for ref in self.connection_refs:
                    ref.tell(_DRAIN)
                with anyio.move_on_after(self.drain_timeout + 0.4):
                    await drained.wait()
        finally:
            self._stop = self._system = None

    def _connection_names(self) -> list[str]:
        if len(self.endpoints) == 1:
            return ["connection"]
        return [f"connection-{n}" for n in range(1, len(self.endpoints) + 1)]

    @property
    def connection(self) -> ActorRef:
        """The (first) connection actor while it serves.

        ``/user/worker/connection`` with one broker; with several, the first
        endpoint's, ``/user/worker/connection-1`` (``connection_refs`` has all).

        Raises:
            SzError: It is not serving.
        """
        return self.connection_refs[0]

    @property
    def connection_refs(self) -> tuple[ActorRef, ...]:
        """Each endpoint's connection actor while it serves, in their order.

        ``/user/worker/connection`` with one broker; ``/user/worker/connection-1``,
        ``connection-2``, ... with several.

        Raises:
            SzError: It is not serving.
        """
        refs = []
        for name in self._connection_names():
            ref = self.system.lookup(f"/user/worker/{name}")
            if ref is None:
                raise SzError("the worker is not serving")
            refs.append(ref)
        return tuple(refs)

    @property
    def system(self) -> ActorSystem:
        """The worker's actor system while it serves.

        Its connection actors are ``/user/worker/connection`` (one broker) or
        ``/user/worker/connection-N`` (``connection_refs``).

        Raises:
            SzError: It is not serving.
        """
        if self._system is None:
            raise SzError("the worker is not serving")
        return self._system

    def stop(self) -> None:
        """Stop serving: ``serve`` returns within ``drain_timeout`` and a little.

        The worker takes no new job, lets those running finish (for
        ``drain_timeout`` at most), hands back the rest and leaves.
        """
        if self._stop is not None:
            self._stop.set()

    def _connected(self) -> None:
        self.connections += 1

    def _registered(self) -> None:
        self.registrations += 1


@attrs.frozen(kw_only=True)
class ConnectionSpec:
    """What a connection knows of its worker: fixed when the worker starts serving.

    Attributes:
        endpoint: The broker's endpoint.
        name: The worker's name.
        incarnation: New at each ``serve``, so that the broker tells a
            restarted worker from the one it knew.
        keys: With CURVE, this worker's public and secret keys and the broker's
            public key (Z85); None without.
        capacity: Jobs it runs at once.
        heartbeat: Seconds between heartbeats.
        liveness: Heartbeats the broker may miss before the connection fails.
        drain_timeout: Seconds a draining connection lets its jobs finish.
        max_message_bytes: The largest message the broker takes.
        tasks: The worker's tasks by name, a read-only view of its own (one
            registered while it serves goes in the next READY, as before).
    """

    endpoint: str
    name: str
    incarnation: str
    keys: tuple[bytes, bytes, bytes] | None = attrs.field(repr=False)
    capacity: int = attrs.field(validator=int_at_least(1))
    heartbeat: float = attrs.field(validator=positive)
    liveness: int = attrs.field(validator=int_at_least(1))
    drain_timeout: float = attrs.field(validator=positive)
    max_message_bytes: int = attrs.field(validator=int_at_least(1))
    tasks: Mapping[str, _Task] = attrs.field(hash=False)

    def ready(self) -> Ready:
        """The READY that registers this worker."""
        return Ready(
            name=self.name,
            incarnation=self.incarnation,
            methods=tuple(self.tasks),
            capacity=self.capacity,
            heartbeat=self.heartbeat,
        )


@attrs.frozen(kw_only=True)
class HandlerLink:
    """A connection's handle on its worker, made and owned by ``ZMQHandler``.

    The connection reports through it and reaches nothing else of the handler.
    Each call is synchronous, not a checkpoint, and never raises.

    Attributes:
        connected: A socket was opened (counted in ``ZMQHandler.connections``).
        registered: A READY was sent (``ZMQHandler.registrations``).
        drained: The connection has finished, or handed back, its jobs and
            said goodbye: ``serve`` may return once every connection has.
        slots: The worker's ``capacity``, shared by its connections when it
            serves several brokers (a job runs holding one); None (one broker,
            the default) when the broker's credit alone bounds what runs.
    """

    connected: Callable[[], None]
    registered: Callable[[], None]
    drained: Callable[[], None]
    slots: anyio.CapacityLimiter | None = None


class _Drain:
    """Stop taking jobs, finish those running, say goodbye."""


_DRAIN = _Drain()


class _Summary:
    """Time for the minute's summary line."""


_SUMMARY = _Summary()

#: Seconds between a worker's summary lines (jobs done, failed, in flight).
SUMMARY_EVERY = 60.0


class Connection(Actor):
    """One connection to the broker: its socket, registration, liveness and jobs.

    Jobs run on up to ``capacity`` tasks of this actor, so a restart (the broker
    fell silent) ends them with the socket: the broker gave them to others when
    it lost sight of this worker.
    """

    def __init__(self, spec: ConnectionSpec, link: HandlerLink) -> None:
        self.spec = spec
        self.link = link

    async def on_start(self) -> None:
        """Open the socket and register; beat every half heartbeat."""
        spec = self.spec
        public, secret, server = spec.keys or (None, None, None)
        self.dealer = Dealer(
            spec.endpoint, secret_key=secret, public_key=public, server_key=server
        )
        self.link.connected()
        self.clock = lowlevel.clock(self.system)
        self.new_event = lowlevel.event_factory(self.system)
        #: When the broker was last heard from; None until registered.
        self.last_heard: float | None = None
        self.last_sent = self.opened = self.clock.now()
        #: When to say that no broker answers yet (then at twice the wait, ...).
        self.nag_at = self.opened + spec.heartbeat * spec.liveness
        self.last_ready = -float("inf")
        self.jobs: JobTasks[tuple[JobRequest, list[bytes]]] = JobTasks(
            self,
            spec.capacity,
            self._run if self.link.slots is None else self._run_in_slot,
            "job",
        )
        self.threads = DaemonThreads(
            anyio.CapacityLimiter(spec.capacity), name=f"sz worker {spec.name}"
        )
        self.draining = False
        #: Said once: more jobs held than a report can list.
        self.unreported = False
        self.quiet = self.new_event()  # set when nothing runs while draining
        self.goodbye = self.new_event()
        #: Results of this turn of the event loop, sent together by ``_ship``.
        self.outbox: Outbox[JobResult] = Outbox()
        #: Results encoded, in order, that found no room yet.
        self.unsent: deque[list[bytes]] = deque()
        self.outgoing = self.new_event()
        #: Jobs ended since the last summary, and how many of them failed.
        self.done = self.failed = 0
        self.start_task(self._read, name="reader")
        self.start_task(self._ship, name="shipper")
        self.every(spec.heartbeat / 2, BEAT)
        self.every(SUMMARY_EVERY, _SUMMARY)

    async def on_stop(self) -> None:
        """Close the socket (if ``on_start`` got as far as opening it).

        Lets the idle job threads go, too.
        """
        dealer = getattr(self, "dealer", None)
        if dealer is not None:
            dealer.close()
        threads = getattr(self, "threads", None)
        if threads is not None:
            threads.close()

    async def receive(self, message: Any) -> Any:
        """Beat, or drain."""
        if message is BEAT:
            self._beat()
        elif message is _SUMMARY:
            self._summarize()
        elif message is _DRAIN:
            self._drain()
        else:
            await super().receive(message)
        return None

    def _summarize(self) -> None:
        """One line a minute: what this worker did since the last one."""
        logger.info(
            "worker %s: %d jobs done (%d failed) in the last %g s, %d in flight",
            self.spec.name,
            self.done,
            self.failed,
            SUMMARY_EVERY,
            self.jobs.running + len(self.jobs.orders),
        )
        self.done = self.failed = 0

    # ------------------------------------------------------------- protocol

    async def _register(self) -> None:
        await self.dealer.send(encode(self.spec.ready()))
        now = self.clock.now()
        self.last_heard = self.last_sent = self.last_ready = self.last_report = now
        self.link.registered()
        logger.info(
            "worker %s: registering with %s (%s, capacity %d)",
            self.spec.name,
            self.spec.endpoint,
            ", ".join(self.spec.tasks),
            self.spec.capacity,
        )

    async def _read(self) -> None:
        # Waits, without a deadline, for the connection to come up (IMMEDIATE):
        # libzmq keeps trying, and liveness starts with registration.
        logger.info("worker %s: connecting to %s", self.spec.name, self.spec.endpoint)
        await self._register()
        while True:
            for frames in await self.dealer.receive():
                self.last_heard = self.clock.now()
                try:
                    messages = decode_all(frames)
                except ProtocolError as exc:
                    raise ConnectionLost(
                        f"bad message from the broker: {exc}"
                    ) from None
                for message, bodies in messages:
                    if isinstance(message, JobRequest):
                        if not self.draining:  # else the goodbye hands it back
                            self.jobs.put((message, bodies))
                    elif isinstance(message, Disconnect):
                        await self._disconnected(message)
                    elif not isinstance(message, Heartbeat):
                        raise ConnectionLost(
                            f"the broker sent {type(message).__name__}, which"
                            " workers send"
                        )

    async def _disconnected(self, message: Disconnect) -> None:
        if self.draining:
            self.goodbye.set()
            return
        if message.reason.startswith("refused"):
            logger.error("worker %s: the broker %s", self.spec.name, message.reason)
            raise ConnectionLost(f"the broker {message.reason}")
        if self.clock.now() - self.last_ready < self.spec.heartbeat:
            # Most likely the answer to something sent just before the READY:
            # if the broker does not know this worker, the next heartbeat's
            # answer will say so again.
            return
        # The broker forgot this worker (it restarted, or judged it dead): the
        # socket is sound, so register again at once.
        logger.info("worker %s: broker says %r", self.spec.name, message.reason)
        await self._register()

    def _beat(self) -> None:
        now = self.clock.now()
        if self.last_heard is None:  # not connected yet
            if now >= self.nag_at:
                logger.warning(
                    "worker %s: no broker answers at %s after %.1f s; still trying",
                    self.spec.name,
                    self.spec.endpoint,
                    now - self.opened,
                )
                self.nag_at = now + (now - self.opened)
            return
        spec = self.spec
        silent = now - self.last_heard
        if silent >= spec.heartbeat * spec.liveness and not self.draining:
            raise ConnectionLost(f"no word from the broker for {silent:.1f} s")
        # The report goes every heartbeat, whatever else was sent: a worker
        # busy sending RESULTs is the one whose lost messages matter.
        if now - self.last_report >= spec.heartbeat and self._report():
            self.last_report = self.last_sent = now
        elif now - self.last_sent >= spec.heartbeat and self.dealer.try_send(
            encode(Heartbeat())
        ):
            self.last_sent = now

    def _report(self) -> bool:
        """Send a HEARTBEAT listing the jobs held from this broker; False: not now.

        The broker takes a job in flight that a report leaves out for answered
        or lost, so the report must go behind every RESULT of a job it leaves
        out: this turn's results go first, and while earlier ones wait for
        room (the shipper sends them), the report waits for the next beat.
        """
        unsent = self.unsent
        if unsent:
            return False
        if self.outbox:
            unsent.extend(self.outbox.take())
            while unsent and self.dealer.try_send(unsent[0]):
                unsent.popleft()
            if unsent:
                self.outgoing.set()  # the shipper sends the rest, then a report
                return False
        jobs = tuple(request.job_id for request, _ in self.jobs.held())
        frames = encode(Heartbeat(jobs=jobs)) if len(jobs) <= MAX_HELD else None
        if frames is None or len(frames[2]) > MAX_HEADER:
            # Past SZP1's bounds (a broker that sent past its credit, or more
            # ids than a header holds): a bare heartbeat, and no report.
            if not self.unreported:
                self.unreported = True
                logger.warning(
                    "worker %s: %d jobs held from %s, too many to report: a "
                    "JOB or RESULT lost on a link that stays up goes unnoticed",
                    self.spec.name,
                    len(jobs),
                    self.spec.endpoint,
                )
            return False
        return self.dealer.try_send(frames)

    def _drain(self) -> None:
        """Take no new job, let those running end, then leave.

        In a task of its own: the heartbeats go on meanwhile.
        """
        if self.draining:
            return
        if self.last_heard is None:
            self.link.drained()  # never registered: nothing to hand back
            return
        self.draining = True
        self.jobs.on_quiet = self.quiet.set
        self.start_task(self._leave, name="leave")

    async def _leave(self) -> None:
        spec = self.spec
        self.dealer.try_send(encode(Disconnect(reason="stopping", draining=True)))
        logger.info(
            "worker %s: draining %d running, %d queued",
            spec.name,
            self.jobs.running,
            len(self.jobs.orders),
        )
        if self.jobs.running or self.jobs.orders:
            with anyio.move_on_after(spec.drain_timeout):
                await self.quiet.wait()
        handed_back = self.jobs.running + len(self.jobs.orders)
        self.jobs.orders.clear()
        with anyio.move_on_after(0.2):
            await self._flush()  # the finished jobs' results go before the goodbye
        if self.dealer.try_send(encode(Disconnect(reason="stopped"))):
            # The broker's answer means it has the goodbye: closing at once
            # (LINGER 0) could otherwise drop it.
            with anyio.move_on_after(0.3):
                await self.goodbye.wait()
        logger.info("worker %s: stopped (%d jobs handed back)", spec.name, handed_back)
        self.link.drained()

    # ----------------------------------------------------------------- jobs

    async def _run_in_slot(self, order: tuple[JobRequest, list[bytes]]) -> None:
        """Run ``order`` once a slot of the worker's shared capacity is free.

        Waiting for a slot is this connection's task; cancelled (its broker was
        lost), the job is forgotten here as the broker forgot it there.
        """
        slots = self.link.slots
        assert slots is not None
        async with slots:
            if self.draining:
                return  # not begun: the goodbye hands it back
            await self._run(order)

    async def _run(self, order: tuple[JobRequest, list[bytes]]) -> None:
        request, bodies = order
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug(
                "worker %s: job %s %s attempt %d started",
                self.spec.name,
                request.job_id,
                request.method,
                request.attempt,
            )
        start = time.perf_counter()
        outcome, value_body = "success", b""
        error: BaseException | None = None
        caller_error = False
        # The wire calls it the JOB's method: it carries the task's name.
        task = self.spec.tasks.get(request.method)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        try:
            if task is None:
                raise SzError(f"worker {self.spec.name} has no task {request.method!r}")
            args, kwargs = decode_arguments(bodies)
            limit = task.timeout or request.timeout
            if limit is None:
                value = await self._call(task, args, kwargs)
            else:
                with anyio.fail_after(limit):
                    value = await self._call(task, args, kwargs)
        except TimeoutError as exc:
            outcome, error = "timeout", exc
        except TypeError as exc:
            outcome, error = "failure", exc
            # As in a local handler, and only on a TypeError: did the call fail
            # before the function's body ran, because the arguments do not fit?
            # Then it is the caller's error, not to be held against this worker.
            caller_error = (
                task is not None
                and binding_error(task.signature, args, kwargs) is not None
            )
        except Exception as exc:
            outcome, error = "failure", exc
        except BaseException as exc:
            # As in a local handler: the function's SystemExit or
            # KeyboardInterrupt ends its job, not the worker; the runtime's
            # cancellation (the connection restarting) goes through.
            if must_propagate(exc):
                if task is not None and not task.is_async:
                    # Python cannot stop a thread: say which job's call runs on,
                    # since only the process's exit ends it.
                    logger.warning(
                        "worker %s: abandoned job %s (task %s) mid-call; "
                        "its thread runs on",
                        self.spec.name,
                        request.job_id,
                        request.method,
                    )
                raise
            outcome, error = "failure", exc
        else:
            try:
                value_body = encode_value(value)
            except BaseException as exc:
                # msgpack's TypeError and the like, or whatever the value's own
                # methods raise while it packs: no checkpoint in packing, so
                # never the runtime's cancellation. The job fails here, once.
                outcome = "failure"
                error = SzError(
                    f"the result cannot travel as msgpack: {describe_error(exc)}"
                )
            size, limit = len(value_body), self.spec.max_message_bytes
            if size > limit:
                outcome, value_body = "failure", b""
                error = SzError(
                    f"the result is {size:,} bytes encoded, more than the broker "
                    f"takes ({limit:,}: handlers.zmq.max_message_bytes)"
                )
        duration = time.perf_counter() - start
        self.done += 1
        if outcome != "success":
            self.failed += 1
        if debug:
            logger.debug(
                "worker %s: job %s %s attempt %d ended: %s in %.1f ms",
                self.spec.name,
                request.job_id,
                request.method,
                request.attempt,
                outcome,
                duration * 1000,
            )
        result = JobResult(
            request.job_id,
            request.attempt,
            outcome,
            describe_error(error)[:MAX_ERROR] if error is not None else None,
            duration,
            caller_error,
            # Within MAX_TRACEBACK: the same 16 KiB, innermost frames kept.
            describe_traceback(error) if error is not None else None,
        )
        outbox = self.outbox
        if (
            self.jobs.running == 1
            and not self.jobs.orders
            and not outbox
            and not self.unsent
            and self.dealer.try_send(frames_of(result, value_body))
        ):
            # Alone: nothing to batch it with, so no reason to wait for one.
            self.last_sent = self.clock.now()
            return
        if outbox.put(result, value_body):
            self.outgoing.set()
        if outbox.full and not self.unsent:
            # Enough for a batch: the broker takes it while more jobs run here.
            self.unsent.extend(outbox.take())
            while self.unsent and self.dealer.try_send(self.unsent[0]):
                self.unsent.popleft()

    async def _ship(self) -> None:
        """Send the results of each turn of the event loop together (batched)."""
        while True:
            await self.outgoing.wait()
            self.outgoing = self.new_event()
            await self._flush()

    async def _flush(self) -> None:
        unsent = self.unsent
        unsent.extend(self.outbox.take())
        if not unsent:
            return
        while unsent:
            if not self.dealer.try_send(unsent[0]):
                await self.dealer.send(unsent[0])  # not connected, or full: wait
            unsent.popleft()
        self.last_sent = self.clock.now()

    async def _call(self, task: _Task, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if task.is_async:
            return await task.func(*args, **kwargs)
        call = functools.partial(task.func, *args, **kwargs)
        return await self.threads.run_sync(call)


def _endpoints(given: str | Sequence[str]) -> tuple[str, ...]:
    """The brokers' endpoints, each checked; a bad or repeated one is named.

    Raises:
        SzError: None is given, one is not an endpoint a worker can connect
            to, or one is given twice.
    """
    endpoints = (given,) if isinstance(given, str) else tuple(given)
    if not endpoints:
        raise SzError("endpoint: expected at least one broker's endpoint")
    for endpoint in endpoints:
        try:
            check_endpoint(endpoint, bind=False)
        except TransportError as exc:
            raise SzError(f"endpoint: {exc}") from None
        if endpoints.count(endpoint) > 1:
            # Two connections to one broker would register the same name twice.
            raise SzError(f"endpoint: {endpoint!r} is given twice")
    return endpoints


def _server_keys(
    given: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], brokers: int
) -> tuple[str | os.PathLike[str], ...]:
    """Each broker's public key file: one for all, or one per endpoint.

    Raises:
        SzError: A sequence whose length is not the number of endpoints.
    """
    if isinstance(given, str | os.PathLike):
        return (given,) * brokers
    keys = tuple(given)
    if len(keys) != brokers:
        raise SzError(
            f"server_key: expected one key file for every broker or one per "
            f"endpoint ({brokers}), got {len(keys)}"
        )
    return keys
