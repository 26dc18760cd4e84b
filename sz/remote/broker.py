"""The broker: worker processes connected over ZeroMQ become handlers.

One ``BrokerActor`` (``/user/remote/broker``) owns the ROUTER every worker connects
to. A worker that registers (READY) gets a proxy actor, ``/user/remote/broker/<name>``,
which the dispatcher sees as a handler like any local one: it serves the
worker's tasks, at most its capacity at once. The proxy turns each
``Execute`` into a JOB frame; the broker turns each RESULT back into the
``Finished`` the dispatcher waits for.

Liveness is the broker's: any frame from a worker is a sign of life, and a
worker silent for ``liveness`` heartbeats is dead. Its jobs in flight go back
to the dispatcher as new attempts (``retry_after_worker_lost``). A frame from a
peer the broker does not know is answered with DISCONNECT, so workers register
again by themselves after the broker restarts.

A JOB or RESULT lost on a link that stays up (libzmq drops what it queued for a
connection that breaks and comes back; a lossy relay drops what it likes) is
found by reconciliation: each heartbeat of a worker lists the jobs it holds
from this broker, and a job its reports have left out for ``LOST_AFTER``
heartbeats is lost, and goes back as a new attempt
(``retry_after_message_lost``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from actors import Actor, ActorRef, ExpectedCrash, lowlevel
from transport import (
    MAX_REASON,
    WORKER_NAME,
    WORKER_NAME_RULE,
    Disconnect,
    Heartbeat,
    JobRequest,
    JobResult,
    KeyFileError,
    Message,
    PeerGone,
    ProtocolError,
    Ready,
    Router,
    TransportError,
    check_endpoint,
    decode_all,
    encode,
    is_local,
    load_public_key,
    load_secret_key,
)

from ..dispatcher import HandlersQuery, Register, Unregister
from ..errors import RemoteError, SzError
from ..handlers import Execute, Finished
from ..validators import int_at_least, positive
from .wire import (
    BEAT,
    MAX_MESSAGE_BYTES,
    UNENCODABLE,
    Outbox,
    decode_value,
    encode_arguments,
    frames_of,
)

if TYPE_CHECKING:
    from ..config import ZmqConfig
    from ..dispatcher import DispatcherState

__all__ = [
    "BoundRouter",
    "BrokerActor",
    "BrokerSettings",
    "BrokerStats",
    "CannotBind",
    "WorkersQuery",
    "bind_router",
]

# Named as before the move to sz.remote: operators filter on it.
logger = logging.getLogger("sz.broker")

#: A proxy's mailbox holds its worker's capacity plus this many messages.
PROXY_MAILBOX = 1000

#: The shortest interval between looks at workers' liveness, in seconds.
MIN_TICK = 0.01

#: Heartbeats (the worker's) that its reports must leave a job out, counted
#: from the first report received after the JOB went, before the job is lost.
#: A report is built before some JOBs sent meanwhile arrive; this grace is
#: how late a healthy link (queues, event loops) may deliver a JOB and carry
#: back the report that then lists it.
LOST_AFTER = 2.0


def _bindable(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    try:
        check_endpoint(value, bind=True)
    except TransportError as exc:
        raise ValueError(f"{attribute.name}: {exc}") from None


@attrs.frozen(kw_only=True)
class BrokerSettings:
    """Where the broker listens and how it judges workers.

    Attributes:
        endpoint: Where it binds, ``tcp://127.0.0.1:5555`` by default (this
            machine only); port ``*`` picks a free one (``await sz.broker()``
            says which), kept when the broker restarts.
        heartbeat: Seconds between heartbeats to each worker, 1.0 by default.
        liveness: Heartbeats a worker may miss before it is dead, 3 by default
            (each worker is judged by the heartbeat interval it announced).
        max_message_bytes: The largest message a worker may send.
        send_hwm: Messages queued for one worker before the broker holds back.
        receive_hwm: Messages queued from one worker before it must wait.
        secret_key: The broker's CURVE secret key (Z85); None: no CURVE.
        workers: With CURVE, the admitted workers' names by public key (Z85).
    """

    endpoint: str = attrs.field(default="tcp://127.0.0.1:5555", validator=_bindable)
    heartbeat: float = attrs.field(default=1.0, validator=positive)
    liveness: int = attrs.field(default=3, validator=int_at_least(1))
    max_message_bytes: int = attrs.field(
        default=MAX_MESSAGE_BYTES, validator=int_at_least(1)
    )
    send_hwm: int = attrs.field(default=1000, validator=int_at_least(0))
    receive_hwm: int = attrs.field(default=1000, validator=int_at_least(0))
    secret_key: bytes | None = attrs.field(default=None, repr=False)
    workers: Mapping[bytes, str] = attrs.field(factory=dict, hash=False)

    @classmethod
    def from_config(cls, config: ZmqConfig) -> BrokerSettings:
        """The settings of ``handlers.zmq``, reading its CURVE key files.

        Raises:
            SzError: A key file is missing or is not one (the message names it).
        """
        secret: bytes | None = None
        workers: dict[bytes, str] = {}
        if config.curve is not None:
            try:
                _, secret = load_secret_key(config.curve.server_secret_key)
                for name, path in config.curve.workers.items():
                    workers[load_public_key(path)] = name
            except KeyFileError as exc:
                raise SzError(f"handlers.zmq.curve: {exc}") from None
        return cls(
            endpoint=config.registration_server,
            heartbeat=config.heartbeat_seconds,
            liveness=config.liveness,
            max_message_bytes=config.max_message_bytes,
            secret_key=secret,
            workers=workers,
        )


@attrs.define
class BrokerStats:
    """What the broker has seen since it started (``await sz.broker()``).

    Attributes:
        registered: Registrations accepted.
        refused: Registrations refused (bad name, key or capacity, name in use).
        malformed: Messages that were not SZP1 or broke its rules.
        unknown_peer: Messages from peers not registered (answered DISCONNECT).
        workers_lost: Workers declared dead (silent, vanished, or replaced).
        workers_left: Workers that left by saying so.
        jobs_sent: JOB messages sent.
        results: RESULT messages taken.
        stale_results: RESULTs for attempts already given up on.
        messages_lost: Jobs whose JOB or RESULT was lost on a live link: a
            worker's reports left them out for ``LOST_AFTER`` heartbeats, and
            they were tried again.
        congested: Sends a worker's full queue held back.
        connections: Connections opened by peers (workers or not).
        disconnections: Connections closed: by a peer, or cut by libzmq (a
            message over ``max_message_bytes``, which is never seen as one).
        handshakes_refused: CURVE handshakes refused (a key not listed): a
            misconfigured worker, or someone trying keys; never seen as a message.
    """

    registered: int = 0
    refused: int = 0
    malformed: int = 0
    unknown_peer: int = 0
    workers_lost: int = 0
    workers_left: int = 0
    jobs_sent: int = 0
    results: int = 0
    stale_results: int = 0
    messages_lost: int = 0
    congested: int = 0
    connections: int = 0
    disconnections: int = 0
    handshakes_refused: int = 0


@attrs.frozen(kw_only=True)
class WorkersQuery:
    """Ask the broker for its statistics and endpoint: ``(endpoint, BrokerStats)``."""


@attrs.define(eq=False)
class _Worker:
    """One registered worker, as its broker incarnation knows it."""

    name: str
    peer: bytes
    incarnation: str
    tasks: tuple[str, ...]
    capacity: int
    heartbeat: float
    last_heard: float
    last_sent: float
    proxy: ActorRef | None = None
    #: Jobs sent (or waiting for room) and not yet answered, by job id.
    in_flight: dict[str, Execute] = attrs.field(factory=dict)
    #: Jobs to send at the end of this turn of the event loop, in one batch.
    outbox: Outbox[JobRequest] = attrs.field(factory=Outbox)
    #: Messages waiting for room in its queue, in order.
    backlog: deque[list[bytes]] = attrs.field(factory=deque)
    #: Jobs in flight its last reports left out: the attempt, and when the
    #: first report that did arrived.
    unlisted: dict[str, tuple[int, float]] = attrs.field(factory=dict)
    #: Something waited for room since its last report (JOBs then went later
    #: than the broker handed them over: reconciliation starts afresh).
    held_back: bool = False
    draining: bool = False
    gone: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


def _cut(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis if longer."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@attrs.frozen(kw_only=True)
class WorkerLink:
    """A proxy's handle on its worker, made and owned by the broker.

    All a proxy may do is hand its worker jobs: the worker's record, the socket
    and the judgement of liveness stay with the broker, out of the proxy's reach.

    Attributes:
        send_job: Send one ``Execute`` to the worker, or answer it as lost if
            the worker is gone. Not a checkpoint; never raises.
    """

    send_job: Callable[[Execute], None]


class WorkerProxy(Actor):
    """A registered worker, as the dispatcher sees it: a handler of its tasks.

    Each ``Execute`` becomes a JOB frame to the worker. The proxy holds nothing
    of its own: the worker's record and the socket belong to its broker.

    Args:
        link: Its handle on the worker.
    """

    def __init__(self, link: WorkerLink) -> None:
        self.link = link

    async def receive(self, message: Any) -> None:
        """Send each ``Execute`` to the worker."""
        if isinstance(message, Execute):
            self.link.send_job(message)
        else:
            await super().receive(message)


class CannotBind(SzError, ExpectedCrash):
    """The broker's endpoint cannot be bound (its port taken, say).

    At start it is the scheduler's refusal, raised before any actor starts; on a
    restart it is an expected crash (one warning line), retried after the
    broker's backoff: the port of the incarnation before may not be free yet.
    """


def bind_router(settings: BrokerSettings, endpoint: str | None = None) -> Router:
    """The broker's ROUTER, bound as ``settings`` say (at ``endpoint`` if given).

    Raises:
        CannotBind: The endpoint cannot be bound; the message names it and why.
    """
    try:
        return Router(
            endpoint or settings.endpoint,
            max_message_bytes=settings.max_message_bytes,
            send_hwm=settings.send_hwm,
            receive_hwm=settings.receive_hwm,
            secret_key=settings.secret_key,
            workers=settings.workers,
        )
    except TransportError as exc:
        raise CannotBind(f"handlers.zmq.registration_server: {exc}") from None


class BoundRouter:
    """A ROUTER bound before the broker started, for its first incarnation only.

    Binding before the actor starts lets a taken port be the scheduler's
    one-line refusal, not an actor's crash. A restarted broker binds afresh, at
    ``endpoint``: the port the first one bound, even if ``*`` chose it, so that
    workers find the broker again.
    """

    # A plain class: made once per start of the scheduler.
    def __init__(self, router: Router) -> None:
        self._router: Router | None = router
        #: Where the first incarnation listens, with the port ``*`` chose.
        self.endpoint = router.endpoint

    def take(self) -> Router | None:
        """The ROUTER the first time; None after."""
        router, self._router = self._router, None
        return router

    def close(self) -> None:
        """Close the ROUTER if nobody took it (the broker did not start)."""
        router = self.take()
        if router is not None:
            router.close()


class BrokerActor(Actor):
    """Owns the ROUTER; registers workers, routes jobs and results, judges liveness.

    Args:
        settings: Where to bind and how to judge workers.
        dispatcher: The dispatcher each worker registers with.
        state: The dispatcher's state, to refuse a worker named as a local handler.
        bound: A ROUTER bound already, for the first incarnation; None (the
            default): each incarnation binds its own.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        dispatcher: ActorRef,
        state: DispatcherState,
        bound: BoundRouter | None = None,
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.state = state
        self.bound = bound
        self.stats = BrokerStats()
        self.workers: dict[bytes, _Worker] = {}
        self.by_name: dict[str, _Worker] = {}
        #: Proxies of workers dropped, until they have ended (a name is reused).
        self.stopping: dict[str, ActorRef] = {}

    async def on_start(self) -> None:
        """Bind; answer CURVE handshakes; read, beat and flush in tasks.

        Raises:
            CannotBind: The endpoint cannot be bound (an expected crash).
        """
        settings, bound = self.settings, self.bound
        router = bound.take() if bound is not None else None
        if router is None:
            router = bind_router(settings, bound.endpoint if bound else None)
        self.router = router
        self.new_event = lowlevel.event_factory(self.system)
        self.clock = lowlevel.clock(self.system)
        self.congested = self.new_event()
        #: Workers with jobs in their outbox, and the event that ships them.
        self.shipping: list[_Worker] = []
        self.outgoing = self.new_event()
        self.start_task(self.router.serve_auth, name="auth")
        self.start_task(self.router.watch_connections, self._connection, name="monitor")
        self.start_task(self._ship, name="shipper")
        self.start_task(self._read, name="reader")
        self.start_task(self._flush, name="flusher")
        self.tick = settings.heartbeat / 4
        self.ticker = self.every(self.tick, BEAT)
        if settings.secret_key is None and not is_local(self.router.endpoint):
            logger.warning(
                "broker listening on %s without CURVE: anyone who can reach it "
                "can register a worker and receive jobs (set handlers.zmq.curve)",
                self.router.endpoint,
            )
        logger.info(
            "broker listening on %s%s",
            self.router.endpoint,
            f", CURVE on ({len(settings.workers)} worker keys)"
            if settings.secret_key
            else "",
        )

    async def on_stop(self) -> None:
        """Close the socket; the dispatcher forgets every worker."""
        try:
            for worker in list(self.workers.values()):
                # Its proxy, a child, has ended already.
                worker.proxy = None
                self.dispatcher.tell(Unregister(name=worker.name, reason="worker_lost"))
                self._drop(worker, "worker_lost", tell=False, count=False)
        finally:
            # None bound if on_start could not bind: nothing to close.
            router: Router | None = getattr(self, "router", None)
            if router is not None:
                router.close()

    async def receive(self, message: Any) -> Any:
        """Beat, or answer a query."""
        if message is BEAT:
            self._beat()
            return None
        if isinstance(message, WorkersQuery):
            return self.router.endpoint, attrs.evolve(
                self.stats, handshakes_refused=self.router.refused
            )
        return await super().receive(message)

    # --------------------------------------------------------------- sending

    def _send_job(self, worker: _Worker, order: Execute) -> None:
        """Send one job to ``worker`` (its proxy calls it, through its link)."""
        job = order.job
        if worker.gone:
            # Dropped between the dispatcher's choice and this: the dispatcher
            # has already taken its jobs back (this report is then ignored).
            order.reply_to.tell(
                Finished.lost(order.job, order.attempt, worker.name, "worker_lost")
            )
            return
        try:
            body = encode_arguments(job.args, job.kwargs)
        except UNENCODABLE as exc:
            now = _now()
            order.reply_to.tell(
                Finished(
                    job=job,
                    attempt=order.attempt,
                    handler=worker.name,
                    outcome="failure",
                    error=SzError(
                        f"the arguments of job {job.id} cannot go to a remote "
                        f"worker (msgpack: {exc})"
                    ),
                    started_at=now,
                    finished_at=now,
                    duration=0.0,
                    caller_error=True,
                )
            )
            return
        worker.in_flight[job.id] = order
        request = JobRequest(job.id, order.attempt, job.task)
        self.stats.jobs_sent += 1
        if len(worker.in_flight) == 1 and not worker.outbox:
            # Alone: nothing to batch it with, so no reason to wait for one.
            self._send(worker, frames_of(request, body))
            return
        outbox = worker.outbox
        if outbox.put(request, body):
            self.shipping.append(worker)
            self.outgoing.set()
        if outbox.full:
            # Enough for a batch: the worker starts on it while this process
            # goes on (else each waits for the other's whole turn).
            for frames in outbox.take():
                self._send(worker, frames)

    async def _ship(self) -> None:
        """Send each worker's jobs of this turn of the event loop, batched."""
        while True:
            await self.outgoing.wait()
            self.outgoing = self.new_event()
            shipping, self.shipping = self.shipping, []
            for worker in shipping:
                batches = worker.outbox.take()
                if worker.gone:
                    continue
                for frames in batches:
                    self._send(worker, frames)

    def _send(self, worker: _Worker, frames: list[bytes]) -> None:
        """Send now, or keep it in order behind what waits for room."""
        if worker.backlog:
            worker.backlog.append(frames)
            return
        try:
            sent = self.router.send(worker.peer, frames)
        except PeerGone:
            self._drop(worker, "worker_lost", tell=False)
            return
        if sent:
            worker.last_sent = self.clock.now()
        else:
            self.stats.congested += 1
            worker.backlog.append(frames)
            worker.held_back = True
            self.congested.set()

    async def _flush(self) -> None:
        """Send what waits for room, trying again after longer and longer naps.

        A ROUTER's readiness to send says some peer has room, not which, so the
        broker cannot wait on it for one worker: it retries instead.
        """
        while True:
            await self.congested.wait()
            self.congested = self.new_event()
            nap = 0.001
            while True:
                waiting = [w for w in self.workers.values() if w.backlog]
                if not waiting:
                    break
                for worker in waiting:
                    self._drain_backlog(worker)
                if any(w.backlog for w in self.workers.values()):
                    await anyio.sleep(nap)
                    nap = min(nap * 2, 0.05)
                else:
                    nap = 0.001

    def _drain_backlog(self, worker: _Worker) -> None:
        backlog = worker.backlog
        while backlog:
            try:
                sent = self.router.send(worker.peer, backlog[0])
            except PeerGone:
                self._drop(worker, "worker_lost", tell=False)
                return
            if not sent:
                return
            backlog.popleft()
            worker.last_sent = self.clock.now()

    def _tell(self, peer: bytes, message: Disconnect | Heartbeat) -> bool:
        """Send a control message if it can go now; never raises."""
        try:
            return self.router.send(peer, encode(message))
        except PeerGone:
            return False

    def _connection(self, opened: bool) -> None:
        if opened:
            self.stats.connections += 1
        else:
            self.stats.disconnections += 1
            logger.debug("a connection closed (%d so far)", self.stats.disconnections)

    # --------------------------------------------------------------- reading

    async def _read(self) -> None:
        """Read and act on every peer's messages; nothing one peer sends ends it.

        Every value a message may carry is checked by ``decode_all``; should
        acting on one still raise, that is a bug here, logged with its
        traceback, and its sender is treated as having broken the protocol
        rather than the reader (and every other worker with it) dying.
        """
        router, clock = self.router, self.clock
        while True:
            batch = await router.receive()
            now, finished_at = clock.now(), _now()
            for peer, frames, user in batch:
                try:
                    messages = decode_all(frames)
                except ProtocolError as exc:
                    self._malformed(peer, str(exc))
                    continue
                try:
                    for message, bodies in messages:
                        if type(message) is Ready:
                            await self._register(peer, message, user, now)
                        elif not self._take(peer, message, bodies, now, finished_at):
                            break
                except Exception as exc:
                    logger.exception(
                        "the broker failed on peer %s's message", peer.hex()
                    )
                    self._malformed(peer, f"the broker could not act on it ({exc!r})")

    def _take(
        self,
        peer: bytes,
        message: Message,
        bodies: list[bytes],
        now: float,
        finished_at: datetime,
    ) -> bool:
        """Act on one message (not READY); False: ignore the rest of its batch.

        Not a coroutine: it runs for every RESULT, and only READY needs awaits.
        """
        worker = self.workers.get(peer)
        if worker is None:
            self.stats.unknown_peer += 1
            if not isinstance(message, Disconnect):
                self._tell(peer, Disconnect(reason="unknown worker: send READY"))
            return False
        worker.last_heard = now
        if type(message) is JobResult:
            self._result(worker, message, bodies, finished_at)
        elif type(message) is Heartbeat:
            if message.jobs is not None:
                self._reconcile(worker, message.jobs, now)
        elif isinstance(message, Disconnect):
            self._leaving(worker, message)
        elif isinstance(message, JobRequest):
            self._malformed(peer, "JOB goes from the broker to workers")
            return False
        return True

    def _malformed(self, peer: bytes, why: str) -> None:
        # SZP1 bounds a DISCONNECT's reason: whatever ``why`` quotes must fit.
        why = _cut(why, MAX_REASON - len("bad message: "))
        self.stats.malformed += 1
        worker = self.workers.get(peer)
        logger.warning(
            "bad message from %s: %s; disconnecting it",
            worker.name if worker else f"peer {peer.hex()}",
            why,
        )
        if worker is not None:
            self._drop(worker, "worker_lost", tell=False)
        self._tell(peer, Disconnect(reason=f"bad message: {why}"))

    def _result(
        self,
        worker: _Worker,
        message: JobResult,
        bodies: list[bytes],
        finished_at: datetime,
    ) -> None:
        self.stats.results += 1
        order = worker.in_flight.get(message.job_id)
        if order is None or order.attempt != message.attempt:
            self.stats.stale_results += 1
            return
        del worker.in_flight[message.job_id]
        outcome, value, error = message.outcome, None, None
        if message.error is not None:
            error = RemoteError(message.error)  # SZP1 bounds its length
        if outcome == "success":
            try:
                value = decode_value(bodies)
            except ProtocolError as exc:
                outcome = "failure"
                error = RemoteError(f"the result is {exc}")
        duration = message.duration
        order.reply_to.tell(
            Finished(
                order.job,
                order.attempt,
                worker.name,
                outcome,
                finished_at - timedelta(seconds=duration),
                finished_at,
                duration,
                value,
                error,
                None,
                # The worker's verdict: the arguments did not fit the function.
                message.caller_error,
                message.traceback,
            )
        )

    def _reconcile(self, worker: _Worker, held: tuple[str, ...], now: float) -> None:
        """Try again the jobs in flight that ``worker``'s reports leave out.

        A report lists the jobs the worker holds from this broker; it follows,
        on the same connection, every RESULT the worker sent before it. So a
        job in flight that it leaves out was either not there yet when it was
        built (the JOB is on its way) or lost: a lost JOB never arrived, a lost
        RESULT was its answer. A job left out by every report for
        ``LOST_AFTER`` heartbeats, from the first one received after it was
        handed to the socket, is taken for lost. A RESULT that still comes for
        it is stale (counted, ignored): the job runs again, at least once.
        """
        if worker.draining:
            # Its goodbye hands back what it did not finish; a job it drops
            # while draining is not lost on the link.
            return
        if worker.held_back or worker.backlog:
            # A JOB that waited for room went later than it entered
            # ``in_flight``: count only from a report after the wait.
            worker.held_back = bool(worker.backlog)
            worker.unlisted.clear()
            return
        listed = set(held)
        before = worker.unlisted
        unlisted: dict[str, tuple[int, float]] = {}
        lost: list[Execute] = []
        grace = worker.heartbeat * LOST_AFTER
        for job_id, order in worker.in_flight.items():
            if job_id in listed:
                continue
            attempt, since = before.get(job_id, (order.attempt, now))
            if attempt != order.attempt:
                since = now
            if now - since >= grace:
                lost.append(order)
            else:
                unlisted[job_id] = (order.attempt, since)
        worker.unlisted = unlisted
        for order in lost:
            del worker.in_flight[order.job.id]
            self.stats.messages_lost += 1
            logger.warning(
                "worker %s: job %s attempt %d lost on the link (its reports "
                "left it out for %.1f s): trying it again",
                worker.name,
                order.job.id,
                order.attempt,
                grace,
            )
            order.reply_to.tell(
                Finished.lost(order.job, order.attempt, worker.name, "message_lost")
            )

    def _leaving(self, worker: _Worker, message: Disconnect) -> None:
        if message.draining:
            if not worker.draining:
                worker.draining = True
                logger.info(
                    "worker %s is draining (%d jobs in flight): %s",
                    worker.name,
                    len(worker.in_flight),
                    message.reason,
                )
                self.dispatcher.tell(Unregister(name=worker.name, drain=True))
            return
        logger.info("worker %s left: %s", worker.name, message.reason)
        self.stats.workers_left += 1
        self._drop(worker, "worker_left", tell=False, count=False)
        self._tell(worker.peer, Disconnect(reason="goodbye"))

    # ---------------------------------------------------------- registration

    def _refuse(self, peer: bytes, name: str, why: str) -> None:
        why = _cut(why, MAX_REASON - len("refused: "))
        self.stats.refused += 1
        logger.warning("refused worker %r: %s", name, why)
        self._tell(peer, Disconnect(reason=f"refused: {why}"))

    async def _register(
        self, peer: bytes, message: Ready, user: str | None, now: float
    ) -> None:
        name = message.name
        if not WORKER_NAME.fullmatch(name):
            self._refuse(peer, name, f"a worker name is {WORKER_NAME_RULE}")
            return
        if self.router.secure and user != name:
            self._refuse(peer, name, f"its key is listed for {user!r}, not {name!r}")
            return
        if not message.methods:
            # SZP1 bounds the capacity already (1 to MAX_CAPACITY).
            self._refuse(peer, name, "it must serve a task")
            return
        local = self.state.handlers.get(name)
        if local is not None and local.kind == "local":
            self._refuse(peer, name, "a handler in the scheduler has that name")
            return
        known = self.by_name.get(name)
        if known is not None and known.peer != peer:
            alive = now - known.last_heard < known.heartbeat * self.settings.liveness
            if known.incarnation != message.incarnation and alive:
                self._refuse(peer, name, "a live worker of that name is registered")
                return
        for old in (known, self.workers.get(peer)):
            if old is not None and not old.gone:
                # The same worker again (reconnected, or registering afresh):
                # what it had in flight is lost with the old registration.
                self._drop(old, "worker_lost", tell=False)
        worker = _Worker(
            name=name,
            peer=peer,
            incarnation=message.incarnation,
            tasks=message.methods,
            capacity=message.capacity,
            heartbeat=float(message.heartbeat),
            last_heard=now,
            last_sent=now,
        )
        self.workers[peer] = worker
        self.by_name[name] = worker
        wanted = max(MIN_TICK, worker.heartbeat / 4)
        if wanted < self.tick:
            # It expects word from us more often than we look: look as often.
            self.ticker.cancel()
            self.tick = wanted
            self.ticker = self.every(wanted, BEAT)
        stopping = self.stopping.pop(name, None)
        if stopping is not None:
            await self._settled()
            await stopping.stop()  # its name is about to be reused
        if not self._current(worker):
            return  # dropped while the old proxy stopped
        worker.proxy = await self.spawn(
            WorkerProxy,
            WorkerLink(send_job=partial(self._send_job, worker)),
            name=name,
            capacity=message.capacity + PROXY_MAILBOX,
            restart="transient",
        )
        if not self._current(worker):
            return
        self.stats.registered += 1
        self.dispatcher.tell(
            Register(
                name=name,
                tasks=message.methods,
                ref=worker.proxy,
                concurrency=message.capacity,
                retries=0,
                kind="remote",
            )
        )
        logger.info(
            "worker %s registered: %s, capacity %d",
            name,
            ", ".join(message.methods),
            message.capacity,
        )

    async def _retire(self, proxy: ActorRef) -> None:
        """Stop a dropped worker's proxy once the dispatcher has unregistered it.

        Else the dispatcher might hear that the proxy ended (which overtakes
        ordinary messages) before the ``Unregister`` saying why its jobs were
        lost.
        """
        await self._settled()
        await proxy.stop()
        if self.stopping.get(proxy.name) is proxy:
            # Ended, and its name not taken again meanwhile: nothing waits for
            # it (else a worker named anew at each start, HOST-PID, would leave
            # one entry per start behind).
            del self.stopping[proxy.name]

    async def _settled(self) -> None:
        """Return once the dispatcher has handled what it was told before."""
        with anyio.move_on_after(5.0):
            await self.dispatcher.ask(HandlersQuery())

    def _current(self, worker: _Worker) -> bool:
        """Whether ``worker`` is still registered (not dropped meanwhile)."""
        return self.workers.get(worker.peer) is worker

    def _drop(
        self, worker: _Worker, reason: str, *, tell: bool = True, count: bool = True
    ) -> None:
        """Forget ``worker``; the dispatcher takes its jobs back for ``reason``.

        With ``tell``, the worker hears DISCONNECT (it may be alive, only slow:
        it then registers again).
        """
        if worker.gone:
            return
        worker.gone = True
        if count:
            self.stats.workers_lost += 1
        if self.workers.get(worker.peer) is worker:
            del self.workers[worker.peer]
        if self.by_name.get(worker.name) is worker:
            del self.by_name[worker.name]
        worker.backlog.clear()
        worker.outbox.clear()
        if worker.proxy is not None:
            # Unregistered first: the dispatcher then sends it no job while it stops.
            self.dispatcher.tell(Unregister(name=worker.name, reason=reason))
            self.stopping[worker.name] = worker.proxy
            self.start_task(self._retire, worker.proxy, name=f"retire {worker.name}")
        worker.in_flight.clear()
        if tell:
            self._tell(worker.peer, Disconnect(reason="declared dead: register again"))

    # -------------------------------------------------------------- liveness

    def _beat(self) -> None:
        now = self.clock.now()
        liveness = self.settings.liveness
        for worker in list(self.workers.values()):
            if now - worker.last_heard >= worker.heartbeat * liveness:
                logger.warning(
                    "worker %s silent for %.1f s: dead",
                    worker.name,
                    now - worker.last_heard,
                )
                self._drop(worker, "worker_lost")
            elif (
                now - worker.last_sent >= worker.heartbeat
                and not worker.backlog
                and self._tell(worker.peer, Heartbeat())
            ):
                worker.last_sent = now
