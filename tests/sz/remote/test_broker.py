"""The broker with in-process workers, and raw DEALERs playing misbehaving ones.

Every worker here is a ``ZMQHandler`` on the test's own event loop, or a bare
pyzmq DEALER speaking (or breaking) SZP1 by hand.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import re
import uuid
from collections import deque
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import msgpack
import pytest
import zmq

from actors import Backoff
from actors.cell import Cell
from actors.testing import wait_until
from sz import (
    BrokerSettings,
    BrokerStats,
    HandlerStatus,
    JobFailed,
    RemoteError,
    ScheduleZero,
    SzError,
    ZMQHandler,
)
from transport import (
    MAX_INCARNATION,
    MAX_NAME,
    MAX_REASON,
    MAX_TASKS,
    PROTOCOL,
    Disconnect,
    Heartbeat,
    JobRequest,
    JobResult,
    Message,
    Ready,
    Socket,
    decode_all,
    encode,
)

from .conftest import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

pytestmark = pytest.mark.anyio

#: The bound on any single wait in these tests.
HANG = 10

Context = zmq.Context[zmq.Socket[bytes]]
M = TypeVar("M", Ready, JobRequest, JobResult, Heartbeat, Disconnect)


# ---------------------------------------------------------------- helpers


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[str], RawPeer]]:
    """Make raw peers; every one is closed at teardown."""
    ctx: Context = zmq.Context()
    made: list[RawPeer] = []

    def connect(endpoint: str) -> RawPeer:
        peer = RawPeer(ctx, endpoint)
        made.append(peer)
        return peer

    try:
        yield connect
    finally:
        for peer in made:
            peer.socket.close()
        ctx.destroy(linger=0)


def broker(**settings: Any) -> BrokerSettings:
    """Broker settings on a free loopback port."""
    return BrokerSettings(endpoint="tcp://127.0.0.1:*", **settings)


def worker(
    endpoint: str, name: str = "w1", *, capacity: int = 1, **options: Any
) -> ZMQHandler:
    """A worker serving ``add`` (sync) and ``echo`` (async)."""
    handler = ZMQHandler(endpoint, name=name, capacity=capacity, **options)

    @handler.task
    def add(a: int, b: int) -> int:
        return a + b

    @handler.task
    async def echo(value: Any) -> Any:
        return value

    return handler


@asynccontextmanager
async def serving(*handlers: ZMQHandler) -> AsyncIterator[None]:
    """Run the workers for the duration of the block; cancel them after it."""
    async with anyio.create_task_group() as tg:
        for handler in handlers:
            tg.start_soon(handler.serve)
        yield
        tg.cancel_scope.cancel()


@asynccontextmanager
async def scheduler(
    sz: ScheduleZero | None = None, **settings: Any
) -> AsyncIterator[tuple[ScheduleZero, str]]:
    """A running scheduler whose broker listens on a free port, and that endpoint."""
    sz = sz or ScheduleZero(store="memory", broker=broker(**settings))
    async with sz:
        endpoint, _ = await sz.broker()
        yield sz, endpoint


async def stats(sz: ScheduleZero) -> BrokerStats:
    return (await sz.broker())[1]


async def handler_named(sz: ScheduleZero, name: str) -> HandlerStatus | None:
    for status in await sz.handlers():
        if status.name == name:
            return status
    return None


async def registered(sz: ScheduleZero, name: str) -> HandlerStatus:
    """Wait until the worker ``name`` is a handler; return its status."""

    async def listed() -> bool:
        return await handler_named(sz, name) is not None

    await eventually(listed, what=f"{name} registers")
    status = await handler_named(sz, name)
    assert status is not None
    return status


async def gone(sz: ScheduleZero, name: str) -> None:
    """Wait until the worker ``name`` is no longer a handler."""

    async def unlisted() -> bool:
        return await handler_named(sz, name) is None

    await eventually(unlisted, what=f"{name} is gone")


async def waiting_jobs(sz: ScheduleZero) -> tuple[int, int]:
    """Jobs the dispatcher holds back, and jobs it has in flight."""
    (overall,) = [g for g in await sz.governors() if g.name == "global"]
    return overall.waiting, overall.running


class RawPeer:
    """A bare DEALER that speaks SZP1 by hand, or breaks it."""

    def __init__(self, ctx: Context, endpoint: str) -> None:
        raw = ctx.socket(zmq.DEALER)
        raw.connect(endpoint)
        self.socket = Socket(raw)
        #: Messages received and not yet looked at (a batch brings several).
        self.inbox: deque[tuple[Message, list[bytes]]] = deque()

    async def send(self, frames: list[bytes]) -> None:
        await self.socket.send(frames)

    async def ready(
        self,
        name: str,
        *,
        methods: tuple[str, ...] = ("echo",),
        capacity: int = 1,
        heartbeat: float = 1.0,
        incarnation: str | None = None,
    ) -> None:
        ready = Ready(
            name=name,
            incarnation=incarnation or uuid.uuid4().hex,
            methods=methods,
            capacity=capacity,
            heartbeat=heartbeat,
        )
        await self.send(encode(ready))

    async def next(self, kind: type[M]) -> tuple[M, list[bytes]]:
        """The next message of ``kind`` it receives; heartbeats are skipped."""
        with anyio.fail_after(HANG):
            while True:
                while not self.inbox:
                    self.inbox.extend(decode_all(await self.socket.receive()))
                message, bodies = self.inbox.popleft()
                if isinstance(message, kind):
                    return message, bodies
                assert isinstance(message, Heartbeat), message

    async def answer(self, job: JobRequest, value: Any) -> None:
        """Send a successful RESULT for ``job``."""
        result = JobResult(job_id=job.job_id, attempt=job.attempt, outcome="success")
        await self.send(encode(result, packed(value)))


async def outcome_of(job: Awaitable[Any]) -> Any:
    """What a job returned, or the ``repr`` of its cause if it failed."""
    try:
        return await job
    except JobFailed as failed:
        return f"{failed}: {failed.__cause__!r}"


def packed(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


# ------------------------------------------------------- jobs and results


async def test_a_worker_is_one_remote_handler_of_all_its_tasks_at_its_capacity() -> (
    None
):
    async with scheduler() as (sz, endpoint), serving(worker(endpoint, capacity=3)):
        status = await registered(sz, "w1")
        assert status.kind == "remote"
        assert set(status.tasks) == {"add", "echo"}
        assert status.concurrency == 3
        assert not status.draining
        assert [s.name for s in await sz.handlers()] == ["w1"]
        assert (await stats(sz)).registered == 1


def test_the_roadmaps_handler_method_and_methods_still_register_tasks() -> None:
    handler = ZMQHandler("tcp://127.0.0.1:5555", name="w1")

    @handler.method
    def add(a: int, b: int) -> int:
        return a + b

    handler.method(name="plus", timeout=5)(add)
    assert handler.tasks == handler.methods == ("add", "plus")
    with pytest.raises(SzError, match="task 'add' is registered already"):
        handler.task(add)


def test_a_worker_refuses_tasks_past_szp1_bounds_when_they_are_registered() -> None:
    handler = ZMQHandler("tcp://127.0.0.1:5555", name="w1")

    def task() -> None:
        pass

    handler.task(name="t" * MAX_NAME)(task)
    with pytest.raises(SzError, match=f"at most {MAX_NAME}"):
        handler.task(name="t" * (MAX_NAME + 1))(task)
    for n in range(MAX_TASKS - 1):
        handler.task(name=f"t{n}")(task)
    assert len(handler.tasks) == MAX_TASKS
    with pytest.raises(SzError, match=f"a worker serves at most {MAX_TASKS} tasks"):
        handler.task(name="one_more")(task)


async def test_sync_and_async_tasks_return_their_results_across_the_wire() -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    async with scheduler() as (sz, endpoint), serving(worker(endpoint)):
        await registered(sz, "w1")
        assert await sz.run_now("add", args=[2, 3], timeout=HANG) == 5
        assert await sz.run_now("add", kwargs={"a": 4, "b": 5}, timeout=HANG) == 9
        value = {"when": moment, "raw": b"\x00\xff", "list": [1, 2.5, None, True]}
        assert await sz.run_now("echo", args=[value], timeout=HANG) == value
        (row, *_) = await sz.history(task="echo")
        assert (row.handler, row.outcome, row.final) == ("w1", "success", True)


async def test_a_task_that_raises_fails_the_job_with_the_workers_repr_of_it() -> None:
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint)

        @handler.task
        async def explode(what: str) -> None:
            raise ValueError(f"no {what} here")

        async with serving(handler):
            await registered(sz, "w1")
            with pytest.raises(JobFailed) as failed:
                await sz.run_now("explode", args=["cake"], timeout=HANG)
        assert failed.value.outcome == "failure"
        cause = failed.value.__cause__
        assert isinstance(cause, RemoteError)
        assert repr(cause) == "ValueError('no cake here')"
        (row,) = await sz.history(task="explode")
        assert row.error == "ValueError('no cake here')"


async def test_a_long_error_comes_back_cut_to_4096_characters() -> None:
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint)

        @handler.task
        async def rant() -> None:
            raise RuntimeError("x" * 10_000)

        async with serving(handler):
            await registered(sz, "w1")
            with pytest.raises(JobFailed) as failed:
                await sz.run_now("rant", timeout=HANG)
        text = repr(failed.value.__cause__)
        assert len(text) == 4096
        assert text.startswith("RuntimeError('xxx")


async def test_a_task_past_its_timeout_ends_the_job_as_a_timeout() -> None:
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint)

        @handler.task(timeout=0.05)
        async def dawdle() -> None:
            await anyio.sleep_forever()

        async with serving(handler):
            await registered(sz, "w1")
            with pytest.raises(JobFailed) as failed:
                await sz.run_now("dawdle", timeout=HANG)
            assert failed.value.outcome == "timeout"
            assert isinstance(failed.value.__cause__, RemoteError)
            # The worker is free again at once: its one slot was given back.
            assert await sz.run_now("add", args=[1, 1], timeout=HANG) == 2


@pytest.mark.parametrize(
    "argument",
    [
        pytest.param(object(), id="an-object"),
        pytest.param(2**70, id="an-int-too-large"),
        pytest.param({1, 2}, id="a-set"),
        pytest.param(datetime(2024, 5, 6), id="a-naive-datetime"),
    ],
)
async def test_arguments_msgpack_cannot_encode_fail_the_job_at_once_saying_so(
    argument: object,
) -> None:
    async with scheduler() as (sz, endpoint), serving(worker(endpoint)):
        await registered(sz, "w1")
        with anyio.fail_after(HANG), pytest.raises(JobFailed) as failed:
            await sz.run_now("echo", args=[argument])
        assert failed.value.outcome == "failure"
        cause = failed.value.__cause__
        assert isinstance(cause, SzError)
        assert "cannot go to a remote worker" in str(cause)
        assert "msgpack" in str(cause)
        # Nothing went out, and the worker still serves.
        assert (await stats(sz)).jobs_sent == 0
        assert await sz.run_now("echo", args=["fine"], timeout=HANG) == "fine"


async def test_a_dict_with_integer_keys_travels_as_an_argument() -> None:
    counts = {200: 5, 404: 1}
    async with scheduler() as (sz, endpoint), serving(worker(endpoint)):
        await registered(sz, "w1")
        outcome = await outcome_of(sz.run_now("echo", args=[counts], timeout=HANG))
    assert outcome == counts


async def test_a_dict_with_integer_keys_travels_as_a_result() -> None:
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint)

        @handler.task
        async def by_status() -> dict[int, int]:
            return {200: 5, 404: 1}

        async with serving(handler):
            await registered(sz, "w1")
            outcome = await outcome_of(sz.run_now("by_status", timeout=HANG))
    assert outcome == {200: 5, 404: 1}


async def test_a_result_msgpack_cannot_encode_fails_the_job_saying_so() -> None:
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint)

        @handler.task
        async def opaque() -> object:
            return object()

        async with serving(handler):
            await registered(sz, "w1")
            with pytest.raises(JobFailed) as failed:
                await sz.run_now("opaque", timeout=HANG)
            assert failed.value.outcome == "failure"
            assert "the result cannot travel as msgpack" in repr(failed.value.__cause__)
            assert await sz.run_now("echo", args=[1], timeout=HANG) == 1


async def test_a_result_larger_than_the_broker_takes_fails_its_job_saying_so() -> None:
    limit = 100_000
    async with scheduler(max_message_bytes=limit) as (sz, endpoint):
        handler = worker(endpoint, max_message_bytes=limit)

        @handler.task
        async def blob(size: int) -> bytes:
            return b"x" * size

        async with serving(handler):
            await registered(sz, "w1")
            assert len(await sz.run_now("blob", args=[limit // 2], timeout=HANG)) == (
                limit // 2
            )
            with pytest.raises(JobFailed) as failed:
                await sz.run_now("blob", args=[2 * limit], timeout=HANG)
            # One attempt that says why, not four lost with the connection.
            assert failed.value.outcome == "failure"
            assert (
                "the result is 200,005 bytes encoded, more than the broker takes "
                "(100,000: handlers.zmq.max_message_bytes)"
            ) in repr(failed.value.__cause__)
            rows = await sz.history(task="blob")
            assert [(row.attempt, row.outcome) for row in rows] == [
                (1, "failure"),
                (1, "success"),
            ]
            assert handler.connections == 1
            assert await sz.run_now("echo", args=[1], timeout=HANG) == 1


# ------------------------------------------------------------------- credit


async def test_a_worker_never_runs_more_jobs_at_once_than_its_capacity() -> None:
    capacity, jobs = 3, 12
    running = peak = 0

    async def tracked(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await anyio.sleep(0.01)  # the job's work
        finally:
            running -= 1
        return n

    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint, capacity=capacity)
        # Two tasks share the worker's one capacity.
        handler.task(name="left")(tracked)
        handler.task(name="right")(tracked)
        results: dict[int, int] = {}

        async def submit(n: int) -> None:
            task = "left" if n % 2 else "right"
            results[n] = await sz.run_now(task, args=[n], timeout=HANG)

        async with serving(handler):
            await registered(sz, "w1")
            async with anyio.create_task_group() as tg:
                for n in range(jobs):
                    tg.start_soon(submit, n)
    assert results == {n: n for n in range(jobs)}
    assert peak == capacity


async def test_the_broker_sends_a_worker_its_capacity_in_jobs_then_one_per_result(
    raw: Callable[[str], RawPeer],
) -> None:
    async with scheduler() as (sz, endpoint):
        peer = raw(endpoint)
        await peer.ready("raw", capacity=2)
        await registered(sz, "raw")
        results: list[Any] = []

        async def submit(n: int) -> None:
            results.append(await sz.run_now("echo", args=[n], timeout=HANG))

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(submit, n)
            first, _ = await peer.next(JobRequest)
            second, _ = await peer.next(JobRequest)

            async def two_sent_three_held() -> bool:
                return await waiting_jobs(sz) == (3, 2)

            await eventually(two_sent_three_held, what="3 jobs held back")
            assert (await stats(sz)).jobs_sent == 2
            # Each RESULT gives back one credit: exactly one more JOB follows.
            await peer.answer(first, "first")
            third, _ = await peer.next(JobRequest)

            async def one_more_sent() -> bool:
                return await waiting_jobs(sz) == (2, 2)

            await eventually(one_more_sent, what="a third job sent")
            assert (await stats(sz)).jobs_sent == 3
            await peer.answer(second, "second")
            await peer.answer(third, "third")
            for name in ("fourth", "fifth"):
                job, _ = await peer.next(JobRequest)
                await peer.answer(job, name)
        assert sorted(results) == sorted(
            ["first", "second", "third", "fourth", "fifth"]
        )
        counts = await stats(sz)
        assert (counts.jobs_sent, counts.results, counts.stale_results) == (5, 5, 0)


async def test_a_result_for_the_wrong_attempt_or_a_second_result_is_stale(
    raw: Callable[[str], RawPeer],
) -> None:
    async with scheduler() as (sz, endpoint):
        peer = raw(endpoint)
        await peer.ready("raw")
        await registered(sz, "raw")
        async with anyio.create_task_group() as tg:
            outcome: list[Any] = []

            async def submit() -> None:
                outcome.append(await sz.run_now("echo", args=[1], timeout=HANG))

            tg.start_soon(submit)
            job, _ = await peer.next(JobRequest)
            wrong = JobResult(
                job_id=job.job_id, attempt=job.attempt + 1, outcome="success"
            )
            await peer.send(encode(wrong, packed("wrong")))
            await peer.answer(job, "right")
        await peer.answer(job, "again")

        async def three_taken() -> bool:
            return (await stats(sz)).results == 3

        await eventually(three_taken, what="three RESULTs taken")
        assert outcome == ["right"]
        assert (await stats(sz)).stale_results == 2
        (row,) = await sz.history(task="echo")
        assert row.outcome == "success"


# --------------------------------------------------------------- bad input


BAD_MESSAGES = [
    pytest.param(
        [b"SZP0", Heartbeat.COMMAND, packed({})], "protocol b'SZP0'", id="wrong-tag"
    ),
    pytest.param(
        [PROTOCOL, b"\x09", packed({})], "unknown command b'\\t'", id="unknown-command"
    ),
    pytest.param(
        [PROTOCOL, Heartbeat.COMMAND, b"\xc1"],
        "Heartbeat: the header is not msgpack",
        id="header-not-msgpack",
    ),
    pytest.param(
        [PROTOCOL, Heartbeat.COMMAND, packed([1, 2])],
        "Heartbeat: the header is not a map",
        id="header-not-a-map",
    ),
    pytest.param(
        [PROTOCOL, Heartbeat.COMMAND, packed({"colour": "red"})],
        "Heartbeat: unknown fields colour",
        id="unknown-field",
    ),
    pytest.param(
        [PROTOCOL, Heartbeat.COMMAND, packed({}), *[b"body"] * 5],
        "5 bodies: at most 4",
        id="too-many-bodies",
    ),
    pytest.param(
        [
            PROTOCOL,
            Ready.COMMAND,
            packed(
                {
                    "name": "x",
                    "incarnation": "1",
                    "methods": ["echo"],
                    "capacity": "lots",
                    "heartbeat": 1.0,
                }
            ),
        ],
        "Ready: capacity: expected an integer from 1 to 65535",
        id="wrong-value-type",
    ),
    pytest.param(
        [
            PROTOCOL,
            Ready.COMMAND,
            packed(
                {
                    "name": "zero",
                    "incarnation": "1",
                    "methods": ["echo"],
                    "capacity": 0,
                    "heartbeat": 1.0,
                }
            ),
        ],
        "Ready: capacity: expected an integer from 1 to 65535",
        id="capacity-zero",
    ),
    pytest.param(
        [
            PROTOCOL,
            Ready.COMMAND,
            packed(
                {
                    "name": "immortal",
                    "incarnation": "1",
                    "methods": ["echo"],
                    "capacity": 1,
                    "heartbeat": math.inf,
                }
            ),
        ],
        "Ready: heartbeat: expected seconds from 0.01 to 3600",
        id="heartbeat-infinite",
    ),
    pytest.param(
        [
            PROTOCOL,
            Ready.COMMAND,
            packed(
                {
                    "name": "greedy",
                    "incarnation": "1",
                    "methods": ["echo"],
                    "capacity": 2**64 - 1,
                    "heartbeat": 1.0,
                }
            ),
        ],
        "Ready: capacity: expected an integer from 1 to 65535",
        id="capacity-huge",
    ),
    pytest.param([PROTOCOL, Heartbeat.COMMAND], "2 frames", id="too-few-frames"),
    pytest.param(
        [PROTOCOL, Ready.COMMAND, packed([{"name": "x"}])],
        "Ready: the header is not a map",
        id="batch-of-a-command-never-batched",
    ),
    pytest.param(
        [
            PROTOCOL,
            JobResult.COMMAND,
            packed([["a", 1, "success", None, 0.0]] * 2),
            packed([b""]),
        ],
        "a batch of 2 with 1 bodies",
        id="batch-bodies-do-not-match",
    ),
]


@pytest.mark.parametrize(("bad", "fault"), BAD_MESSAGES)
async def test_a_malformed_message_is_counted_and_answered_and_harms_no_one(
    raw: Callable[[str], RawPeer], bad: list[bytes], fault: str
) -> None:
    async with scheduler() as (sz, endpoint), serving(worker(endpoint)):
        await registered(sz, "w1")
        assert await sz.run_now("add", args=[1, 2], timeout=HANG) == 3
        peer = raw(endpoint)
        await peer.send(bad)
        goodbye, _ = await peer.next(Disconnect)
        assert goodbye.reason.startswith("bad message: ")
        assert fault in goodbye.reason
        counts = await stats(sz)
        assert (counts.malformed, counts.unknown_peer, counts.registered) == (
            0 + 1,
            0,
            1,
        )
        assert await sz.run_now("add", args=[3, 4], timeout=HANG) == 7
        assert [s.name for s in await sz.handlers()] == ["w1"]


async def test_a_registered_worker_that_breaks_the_protocol_is_dropped(
    raw: Callable[[str], RawPeer],
) -> None:
    async with scheduler() as (sz, endpoint):
        peer = raw(endpoint)
        await peer.ready("raw")
        await registered(sz, "raw")
        # JOB goes from the broker to workers, never the other way.
        await peer.send(encode(JobRequest(job_id="j", attempt=1, method="echo")))
        goodbye, _ = await peer.next(Disconnect)
        assert "JOB goes from the broker to workers" in goodbye.reason
        await gone(sz, "raw")
        counts = await stats(sz)
        assert (counts.malformed, counts.workers_lost) == (1, 1)


def ready_frames(**fields: Any) -> list[bytes]:
    """A READY built by hand, so that it may break SZP1's bounds."""
    header = {
        "name": "raw",
        "incarnation": uuid.uuid4().hex,
        "methods": ["echo"],
        "capacity": 1,
        "heartbeat": 1.0,
        **fields,
    }
    return [PROTOCOL, Ready.COMMAND, packed(header)]


OVERSIZED = [
    pytest.param(
        ready_frames(methods=[f"t{n}" for n in range(MAX_TASKS + 1)]),
        f"methods: {MAX_TASKS + 1} method names: at most {MAX_TASKS}",
        id="ready-too-many-tasks",
    ),
    pytest.param(
        ready_frames(methods=["echo", "t" * (MAX_NAME + 1)]),
        f"each of 1 to {MAX_NAME} characters",
        id="ready-task-name-too-long",
    ),
    pytest.param(
        ready_frames(incarnation="i" * 100_000),
        f"incarnation: expected a string of 1 to {MAX_INCARNATION} characters",
        id="ready-incarnation-too-long",
    ),
    pytest.param(
        [PROTOCOL, Disconnect.COMMAND, packed({"reason": "r" * 100_000})],
        f"reason: expected a string of 1 to {MAX_REASON} characters",
        id="disconnect-reason-too-long",
    ),
]


@pytest.mark.parametrize(("bad", "fault"), OVERSIZED)
async def test_a_registered_worker_sending_fields_past_szp1_bounds_is_dropped(
    raw: Callable[[str], RawPeer], bad: list[bytes], fault: str
) -> None:
    async with scheduler() as (sz, endpoint), serving(worker(endpoint)):
        await registered(sz, "w1")
        peer = raw(endpoint)
        await peer.ready("raw", methods=("add",))
        await registered(sz, "raw")
        await peer.send(bad)
        goodbye, _ = await peer.next(Disconnect)
        assert goodbye.reason.startswith("bad message: ")
        assert fault in goodbye.reason
        await gone(sz, "raw")
        counts = await stats(sz)
        assert (counts.malformed, counts.workers_lost, counts.registered) == (1, 1, 2)
        # The worker beside it serves on: every job goes to it, none is lost.
        results = [await sz.run_now("add", args=[n, 1], timeout=HANG) for n in range(5)]
        assert results == [1, 2, 3, 4, 5]
        assert [s.name for s in await sz.handlers()] == ["w1"]
        broker_actor = sz.system.snapshot().find("/user/remote/broker")
        assert broker_actor is not None
        assert (broker_actor.failures, broker_actor.restarts) == (0, 0)


@pytest.mark.parametrize("duration", [math.inf, 1e300, 2**64 - 1], ids=repr)
async def test_a_result_whose_duration_is_not_finite_seconds_drops_only_its_sender(
    raw: Callable[[str], RawPeer], duration: float
) -> None:
    async with scheduler() as (sz, endpoint), serving(worker(endpoint)):
        await registered(sz, "w1")
        peer = raw(endpoint)
        await peer.ready("raw", methods=("raw_only",))
        await registered(sz, "raw")
        async with anyio.create_task_group() as tg:

            async def submit() -> None:
                with contextlib.suppress(JobFailed, TimeoutError):
                    await sz.run_now("raw_only", timeout=1.0)

            tg.start_soon(submit)
            job, _ = await peer.next(JobRequest)
            # Once, this reached the broker's date arithmetic and ended its reader.
            fields = {
                "job_id": job.job_id,
                "attempt": job.attempt,
                "outcome": "success",
                "duration": duration,
            }
            await peer.send([PROTOCOL, JobResult.COMMAND, packed(fields)])
            goodbye, _ = await peer.next(Disconnect)
            assert "bad message: JobResult: duration: expected seconds" in (
                goodbye.reason
            )
            await gone(sz, "raw")
        counts = await stats(sz)
        assert (counts.malformed, counts.results) == (1, 0)
        assert await sz.run_now("add", args=[2, 2], timeout=HANG) == 4
        broker_actor = sz.system.snapshot().find("/user/remote/broker")
        assert broker_actor is not None
        assert (broker_actor.failures, broker_actor.restarts) == (0, 0)


async def test_a_result_value_no_value_here_can_hold_fails_only_its_job(
    raw: Callable[[str], RawPeer],
) -> None:
    async with scheduler() as (sz, endpoint):
        peer = raw(endpoint)
        await peer.ready("raw")
        await registered(sz, "raw")
        async with anyio.create_task_group() as tg:
            outcome: list[Any] = []

            async def submit() -> None:
                outcome.append(await outcome_of(sz.run_now("echo", timeout=HANG)))

            tg.start_soon(submit)
            job, _ = await peer.next(JobRequest)
            # A map keyed by an array: msgpack, but no Python dict can hold it.
            body = b"\x81" + packed([1, 2]) + packed(3)
            result = JobResult(job.job_id, job.attempt, "success")
            await peer.send(encode(result, body))
        assert "the result is msgpack this end cannot hold" in outcome[0]
        counts = await stats(sz)
        assert (counts.results, counts.malformed, counts.workers_lost) == (1, 0, 0)
        assert [s.name for s in await sz.handlers()] == ["raw"]


async def test_an_oversized_message_drops_only_its_own_connection(
    raw: Callable[[str], RawPeer],
) -> None:
    limit = 4096
    async with (
        scheduler(max_message_bytes=limit) as (sz, endpoint),
        serving(worker(endpoint)),
    ):
        await registered(sz, "w1")
        peer = raw(endpoint)
        monitor = Socket(peer.socket.zmq.get_monitor_socket(zmq.EVENT_DISCONNECTED))
        await peer.send([PROTOCOL, Heartbeat.COMMAND, packed({}), b"x" * 2 * limit])
        # libzmq cuts the connection itself: the broker never sees the message.
        with anyio.fail_after(HANG):
            await monitor.receive()
        monitor.close()
        counts = await stats(sz)
        assert (counts.malformed, counts.unknown_peer) == (0, 0)
        assert await sz.run_now("add", args=[5, 6], timeout=HANG) == 11
        # The sender reconnects by itself and may register with a proper READY.
        await peer.ready("raw")
        await registered(sz, "raw")


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(Heartbeat(), id="heartbeat"),
        pytest.param(JobResult(job_id="j", attempt=1, outcome="success"), id="result"),
    ],
)
async def test_a_message_from_a_peer_that_never_said_ready_is_answered_disconnect(
    raw: Callable[[str], RawPeer], message: Message
) -> None:
    async with scheduler() as (sz, endpoint):
        peer = raw(endpoint)
        await peer.send(encode(message))
        goodbye, _ = await peer.next(Disconnect)
        assert goodbye.reason == "unknown worker: send READY"
        counts = await stats(sz)
        assert (counts.unknown_peer, counts.malformed, counts.results) == (1, 0, 0)
        assert await sz.handlers() == []


# ------------------------------------------------------------ registration


@pytest.mark.parametrize(
    ("name", "ready", "why"),
    [
        pytest.param(
            "not a name!", {}, "a worker name is 1-128 of", id="bad-name-characters"
        ),
        pytest.param("x" * 129, {}, "a worker name is 1-128 of", id="name-too-long"),
        pytest.param(
            "local_job",
            {},
            "a handler in the scheduler has that name",
            id="name-of-a-local-handler",
        ),
        pytest.param("idle", {"methods": ()}, "it must serve a task", id="no-tasks"),
    ],
)
async def test_a_ready_the_broker_cannot_accept_is_refused_and_counted(
    raw: Callable[[str], RawPeer], name: str, ready: dict[str, Any], why: str
) -> None:
    sz = ScheduleZero(store="memory", broker=broker())

    @sz.handler
    async def local_job() -> str:
        return "local"

    async with scheduler(sz) as (sz, endpoint):
        peer = raw(endpoint)
        await peer.ready(name, **ready)
        refusal, _ = await peer.next(Disconnect)
        assert refusal.reason.startswith("refused: ")
        assert why in refusal.reason
        counts = await stats(sz)
        assert (counts.refused, counts.registered) == (1, 0)
        statuses = await sz.handlers()
        assert [(s.name, s.kind) for s in statuses] == [("local_job", "local")]
        assert await sz.run_now("local_job", timeout=HANG) == "local"


async def test_a_second_live_worker_of_the_same_name_is_refused_and_the_first_serves(
    raw: Callable[[str], RawPeer],
) -> None:
    async with scheduler() as (sz, endpoint):
        first = worker(endpoint)
        async with serving(first):
            await registered(sz, "w1")
            impostor = raw(endpoint)
            await impostor.ready("w1", methods=("add", "steal"))
            refusal, _ = await impostor.next(Disconnect)
            assert "a live worker of that name is registered" in refusal.reason
            counts = await stats(sz)
            assert (counts.refused, counts.registered, counts.workers_lost) == (1, 1, 0)
            (status,) = await sz.handlers()
            assert set(status.tasks) == {"add", "echo"}
            for n in range(3):
                assert await sz.run_now("add", args=[n, n], timeout=HANG) == 2 * n
            assert first.registrations == 1


# --------------------------------------------------------------- liveness


async def test_a_silent_worker_is_dead_after_liveness_heartbeats_and_its_job_moves(
    raw: Callable[[str], RawPeer],
) -> None:
    heartbeat, liveness = 0.25, 3
    async with scheduler(liveness=liveness) as (sz, endpoint):
        silent = raw(endpoint)
        said_ready = anyio.current_time()
        await silent.ready("silent", heartbeat=heartbeat)
        await registered(sz, "silent")
        outcome: list[Any] = []

        async def submit() -> None:
            outcome.append(await sz.run_now("echo", args=["moved"], timeout=HANG))

        # The worker that takes the job over outlives the job (outer group).
        async with anyio.create_task_group() as workers:
            async with anyio.create_task_group() as jobs:
                jobs.start_soon(submit)
                job, _ = await silent.next(JobRequest)
                assert job.attempt == 1
                workers.start_soon(worker(endpoint, name="good").serve)
                await gone(sz, "silent")
                dead_after = anyio.current_time() - said_ready
                goodbye, _ = await silent.next(Disconnect)
                assert goodbye.reason == "declared dead: register again"
            workers.cancel_scope.cancel()
        assert outcome == ["moved"]
        # Judged by the heartbeat it announced (0.25 s x 3), not the broker's 1 s.
        assert heartbeat * liveness <= dead_after < heartbeat * liveness + 0.75
        assert (await stats(sz)).workers_lost == 1
        rows = sorted(await sz.history(task="echo"), key=lambda row: row.attempt)
        assert [(r.attempt, r.handler, r.outcome, r.final) for r in rows] == [
            (1, "silent", "abandoned", False),
            (2, "good", "success", True),
        ]
        assert rows[0].reason == "retry_after_worker_lost"
        assert len({r.job_id for r in rows}) == 1


# ---------------------------------------------------------------- leaving


async def test_a_stopping_worker_drains_finishes_its_job_and_then_leaves() -> None:
    started, release = anyio.Event(), anyio.Event()
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint)

        @handler.task
        async def hold() -> str:
            started.set()
            await release.wait()
            return "finished"

        outcome: list[Any] = []
        async with serving(handler), anyio.create_task_group() as tg:
            await registered(sz, "w1")

            async def submit() -> None:
                outcome.append(await sz.run_now("hold", timeout=HANG))

            tg.start_soon(submit)
            with anyio.fail_after(HANG):
                await started.wait()
            handler.stop()

            async def draining() -> bool:
                status = await handler_named(sz, "w1")
                return status is not None and status.draining

            await eventually(draining, what="w1 shows as draining")
            release.set()
        assert outcome == ["finished"]
        await gone(sz, "w1")
        counts = await stats(sz)
        assert (counts.workers_left, counts.workers_lost) == (1, 0)
        (row,) = await sz.history(task="hold")
        assert (row.outcome, row.attempt, row.final) == ("success", 1, True)


async def test_workers_that_left_leave_nothing_of_themselves_behind() -> None:
    # Workers named anew at each start (HOST-PID by default) come and go for as
    # long as the scheduler runs: each must be forgotten once it has left.
    async with scheduler() as (sz, endpoint):
        for n in range(5):
            handler = worker(endpoint, name=f"gone-{n}")
            async with serving(handler):
                await registered(sz, f"gone-{n}")
                assert await sz.run_now("echo", args=[n], timeout=HANG) == n
                handler.stop()

        async def forgotten() -> bool:
            gc.collect()
            return not any(
                isinstance(thing, Cell) and "/gone-" in thing.path
                for thing in gc.get_objects()
            )

        await eventually(forgotten, what="no actor cell of a departed worker is left")
        assert await handler_named(sz, "gone-4") is None
        assert (await stats(sz)).workers_left == 5


async def test_a_draining_worker_is_sent_no_new_job() -> None:
    started, release = anyio.Event(), anyio.Event()
    async with scheduler() as (sz, endpoint):
        leaving = worker(endpoint, "leaving", capacity=2)

        @leaving.task
        async def hold() -> str:
            started.set()
            await release.wait()
            return "finished"

        outcome: dict[str, Any] = {}

        async def submit(task: str, *args: Any) -> None:
            outcome[task] = await sz.run_now(task, args=list(args), timeout=HANG)

        async with anyio.create_task_group() as workers:
            workers.start_soon(leaving.serve)
            await registered(sz, "leaving")
            async with anyio.create_task_group() as jobs:
                jobs.start_soon(submit, "hold")
                with anyio.fail_after(HANG):
                    await started.wait()
                leaving.stop()

                async def draining() -> bool:
                    status = await handler_named(sz, "leaving")
                    return status is not None and status.draining

                await eventually(draining, what="leaving shows as draining")
                # It has room for one more, but it is leaving: the job waits
                # for another worker.
                jobs.start_soon(submit, "echo", "waited")

                async def held_back() -> bool:
                    return (await waiting_jobs(sz))[0] == 1

                await eventually(held_back, what="the echo job waits")
                workers.start_soon(worker(endpoint, "staying").serve)
                await registered(sz, "staying")
                release.set()
            workers.cancel_scope.cancel()
        assert outcome == {"hold": "finished", "echo": "waited"}
        (echo,) = await sz.history(task="echo")
        assert (echo.handler, echo.attempt) == ("staying", 1)


# ------------------------------------------------------------- coming back


async def test_a_worker_registers_again_by_itself_after_the_scheduler_restarts() -> (
    None
):
    async with anyio.create_task_group() as tg:
        first = ScheduleZero(store="memory", broker=broker())
        async with first:
            # The second scheduler binds the port the first one chose.
            endpoint, _ = await first.broker()
            handler = worker(endpoint)
            tg.start_soon(handler.serve)
            await registered(first, "w1")
            assert await first.run_now("add", args=[1, 2], timeout=HANG) == 3
        second = ScheduleZero(store="memory", broker=BrokerSettings(endpoint=endpoint))
        async with second:
            with anyio.fail_after(2):
                await registered(second, "w1")
            assert await second.run_now("add", args=[2, 3], timeout=HANG) == 5
        tg.cancel_scope.cancel()
    assert handler.registrations == 2


async def test_a_worker_whose_connection_dies_reconnects_and_registers_again() -> None:
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint, backoff=Backoff(min=0.01, max=0.05, jitter=0))
        async with serving(handler):
            await registered(sz, "w1")
            assert handler.connections == 1
            # Again and again: its supervisor never gives up on it.
            for n in range(2, 6):
                await handler.connection.kill()

                async def reconnected(n: int = n) -> bool:
                    return (
                        handler.connections == n and (await stats(sz)).registered == n
                    )

                await eventually(reconnected, what=f"connection {n} registers")
                await registered(sz, "w1")
                assert await sz.run_now("add", args=[n, 40], timeout=HANG) == n + 40
            assert [s.name for s in await sz.handlers()] == ["w1"]
            assert handler.registrations == 5
            # Each new registration replaced the last one (same incarnation).
            counts = await stats(sz)
            assert (counts.refused, counts.workers_lost) == (0, 4)


async def test_a_job_cut_short_by_a_dead_connection_runs_again_after_reconnection() -> (
    None
):
    started = anyio.Event()
    calls = 0
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint, backoff=Backoff(min=0.01, max=0.05, jitter=0))

        @handler.task
        async def flaky() -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                started.set()
                await anyio.sleep_forever()
            return calls

        outcome: list[Any] = []
        async with serving(handler), anyio.create_task_group() as tg:
            await registered(sz, "w1")

            async def submit() -> None:
                outcome.append(await sz.run_now("flaky", timeout=HANG))

            tg.start_soon(submit)
            with anyio.fail_after(HANG):
                await started.wait()
            await handler.connection.kill()
        assert outcome == [2]
        rows = sorted(await sz.history(task="flaky"), key=lambda row: row.attempt)
        assert [(r.attempt, r.outcome, r.final) for r in rows] == [
            (1, "abandoned", False),
            (2, "success", True),
        ]
        assert rows[0].reason is not None
        assert rows[0].reason.startswith("retry_after_")


async def test_a_job_lost_with_a_replaced_connection_is_recorded_as_worker_lost() -> (
    None
):
    rounds = 12
    cut: list[anyio.Event] = [anyio.Event() for _ in range(rounds)]
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint, backoff=Backoff(min=0.01, max=0.05, jitter=0))

        @handler.task
        async def hang_once(n: int) -> int:
            if not cut[n].is_set():
                cut[n].set()
                await anyio.sleep_forever()
            return n

        async with serving(handler):
            for n in range(rounds):
                await registered(sz, "w1")
                async with anyio.create_task_group() as tg:
                    job = partial(sz.run_now, "hang_once", args=[n], timeout=HANG)
                    tg.start_soon(job)
                    with anyio.fail_after(HANG):
                        await cut[n].wait()
                    await handler.connection.kill()
        rows = await sz.history(task="hang_once", final=False)
        assert len(rows) == rounds
        assert [row.reason for row in rows] == ["retry_after_worker_lost"] * rounds


SUMMARY = re.compile(r"worker w9: (?P<done>\d+) jobs done \((?P<failed>\d+) failed\)")


async def test_a_worker_logs_each_job_at_debug_and_sums_up_at_info(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sz.remote.worker as remote_worker

    monkeypatch.setattr(remote_worker, "SUMMARY_EVERY", 0.2)
    caplog.set_level(logging.DEBUG, logger="sz.worker")
    async with scheduler() as (sz, endpoint):
        handler = worker(endpoint, name="w9")
        async with serving(handler):

            async def registered() -> bool:
                return any(s.name == "w9" for s in await sz.handlers())

            await wait_until(registered)
            assert await sz.run_now("add", args=[1, 2], timeout=10) == 3
            with pytest.raises(JobFailed):
                await sz.run_now("add", args=[1], timeout=10)

            def totals() -> tuple[int, int]:
                # A summary may fall between the two jobs: add them all up.
                done = failed = 0
                for message in caplog.messages:
                    found = SUMMARY.search(message)
                    if found:
                        done += int(found["done"])
                        failed += int(found["failed"])
                return done, failed

            await wait_until(lambda: totals() == (2, 1))
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    started = [m for m in debug if m.startswith("worker w9: job ") and "started" in m]
    ended = [m for m in debug if " ended: " in m]
    assert len(started) == 2
    assert sorted(m.split(": ")[-1].split(" ")[0] for m in ended) == [
        "failure",
        "success",
    ]
    last = [m for m in caplog.messages if SUMMARY.search(m)][-1]
    assert last.endswith(", 0 in flight")


async def test_a_running_remote_job_cancelled_runs_on_and_only_frees_its_slot() -> None:
    release = anyio.Event()
    started = anyio.Event()
    async with scheduler() as (sz, endpoint):
        handler = ZMQHandler(endpoint, name="w8", capacity=1)

        @handler.task
        async def slow() -> str:
            started.set()
            await release.wait()
            return "late"

        @handler.task
        async def quick() -> str:
            return "quick"

        async with serving(handler):

            async def registered() -> bool:
                return any(s.name == "w8" for s in await sz.handlers())

            await wait_until(registered)
            job = await sz.submit("slow")
            await started.wait()
            assert await job.cancel()
            with pytest.raises(JobFailed, match="cancelled"):
                await job.result(timeout=10)
            release.set()  # the worker's result comes, and is dropped
            assert await sz.run_now("quick", timeout=10) == "quick"
            rows = await sz.history(job_id=job.id)
    assert [(r.outcome, r.reason, r.handler, r.final) for r in rows] == [
        ("cancelled", "cancel_requested", "w8", True)
    ]
