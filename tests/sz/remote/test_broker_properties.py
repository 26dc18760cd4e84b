"""The broker against a peer sending anything at all, beside a real worker.

Whatever READY, RESULT, HEARTBEAT and DISCONNECT messages a peer sends, with
whatever values in their fields, the broker answers and counts what breaks SZP1,
its reader never dies (the same broker incarnation throughout), and a
well-behaved worker process beside it keeps getting jobs.

Hypothesis drives the examples from a worker thread; each example runs on the
test's event loop (``anyio.from_thread.run``), so that the scheduler and the
worker start once per test, not once per example.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, example, given, settings, strategies as st

from sz import BrokerSettings, ScheduleZero
from transport import (
    MAX_HELD,
    PROTOCOL,
    Disconnect,
    Heartbeat,
    JobRequest,
    JobResult,
    Message,
    ProtocolError,
    Ready,
    decode_all,
    encode,
)

from .conftest import ANY_PORT, eventually
from .test_broker import RawPeer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup

    from .conftest import WorkerProcess

pytestmark = pytest.mark.anyio

#: The bound on any single wait here.
HANG = 10
BROKER = "/user/remote/broker"
#: The one task the well-behaved worker serves in these tests.
GOOD_TASK = "add"

_packer = msgpack.Packer(use_bin_type=True)


def pack(value: object) -> bytes:
    packed: bytes = _packer.pack(value)
    return packed


def array(items: list[bytes]) -> bytes:
    head: bytes = _packer.pack_array_header(len(items))
    return head + b"".join(items)


def mapping(pairs: list[tuple[bytes, bytes]]) -> bytes:
    head: bytes = _packer.pack_map_header(len(pairs))
    return head + b"".join(key + value for key, value in pairs)


def nested(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"  # arrays of one, around a nil


# ------------------------------------------------------------- strategies

NUMBERS = st.floats() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
#: Any msgpack value, as bytes: maps may be keyed by arrays, nesting deep.
WILD: st.SearchStrategy[bytes] = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=6)).map(pack)
    | st.binary(max_size=6).map(pack),
    lambda inner: (
        st.lists(inner, max_size=3).map(array)
        | st.lists(st.tuples(inner, inner), max_size=3).map(mapping)
    ),
    max_leaves=8,
) | st.integers(min_value=1, max_value=5000).map(nested)
NAMES = st.from_regex(r"[a-z0-9.:@_-]{1,8}", fullmatch=True)
TEXT = st.text(max_size=8)
#: What each field holds in a message SZP1 takes...
VALID: dict[str, st.SearchStrategy[Any]] = {
    "name": NAMES,
    "incarnation": st.text(min_size=1, max_size=8),
    # never the good worker's task: a peer serving it would be given its jobs
    "methods": st.lists(NAMES.filter(lambda name: name != GOOD_TASK), max_size=3),
    "capacity": st.integers(min_value=1, max_value=65535),
    "heartbeat": st.floats(min_value=0.01, max_value=3600),
    "job_id": st.text(min_size=1, max_size=8),
    "attempt": st.integers(min_value=0, max_value=3),
    "outcome": st.sampled_from(["success", "failure", "timeout"]),
    "error": st.none() | TEXT,
    "duration": st.floats(min_value=0, max_value=1e9),
    "reason": st.text(min_size=1, max_size=8),
    "draining": st.booleans(),
    "caller_error": st.booleans(),
    "traceback": st.none() | TEXT,
    # A worker's report: ids the broker may or may not have sent it.
    "jobs": st.none() | st.lists(st.text(min_size=1, max_size=8), max_size=3),
}
#: Numbers past any field's bounds, or at them.
EDGE_NUMBERS = st.sampled_from([math.inf, -math.inf, math.nan, 1e300, 2**64 - 1, -1, 0])
#: Text past SZP1's length bounds (names 256, reasons 1,024, errors 4,096).
LONG_TEXT = st.integers(min_value=100, max_value=5000).map(lambda n: "x" * n)
#: ...and at or past its edges (any number, empty or long text, anything at all).
EDGES: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(
        ["capacity", "heartbeat", "attempt", "duration", "draining", "caller_error"],
        EDGE_NUMBERS | NUMBERS,
    ),
    **dict.fromkeys(
        ["name", "incarnation", "job_id", "outcome", "error", "reason"],
        TEXT | NUMBERS | LONG_TEXT,
    ),
    "traceback": TEXT | NUMBERS | st.just("t" * 16_385),
    "methods": st.lists(TEXT | NUMBERS | LONG_TEXT, max_size=3)
    | TEXT
    | st.integers(min_value=2040, max_value=2060).map(
        lambda n: [f"m{i}" for i in range(n)]
    ),
    "jobs": st.lists(TEXT | NUMBERS | LONG_TEXT, max_size=3)
    | TEXT
    | NUMBERS
    | st.just(["j"] * (MAX_HELD + 1)),
}
#: One value past (or at) each field's bounds, for a message otherwise right:
#: no number drawn at random, which is mostly within bounds.
PAST: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(
        ["capacity", "heartbeat", "attempt", "duration", "draining", "caller_error"],
        EDGE_NUMBERS,
    ),
    **dict.fromkeys(
        ["name", "incarnation", "job_id", "outcome", "error", "reason"],
        st.sampled_from(["", "x" * 5000, -1, 1.5]),
    ),
    "traceback": st.sampled_from(["t" * 16_385, -1, b"bytes"]),
    "methods": st.sampled_from(
        [[], [""], ["x" * 300], "m", [f"m{i}" for i in range(2049)]]
    ),
    "jobs": st.sampled_from(
        [[""], ["x" * 129], "j", [1], {"j": 1}, ["j"] * (MAX_HELD + 1)]
    ),
}


@attrs.frozen
class Shot:
    """One message a peer sends, every field packed already."""

    command: bytes
    #: A map's (key, value) pairs; or a batch's items, each its fields in order.
    fields: tuple[tuple[bytes, ...], ...]
    bodies: tuple[bytes, ...]
    batch: bool
    #: A RESULT aimed at the job in flight: its job_id and attempt are the job's.
    aimed: bool

    def frames(self, job: JobRequest | None) -> list[bytes]:
        """Its frames (aimed at ``job``, if it has one)."""
        fields = [list(row) for row in self.fields]
        if self.aimed and job is not None:
            own = {pack("job_id"): pack(job.job_id), pack("attempt"): pack(job.attempt)}
            for row in fields:
                if self.batch and len(row) >= 2:
                    row[:2] = own.values()
                elif not self.batch and row[0] in own:
                    row[1] = own[row[0]]
        if self.batch:
            header = array([array(row) for row in fields])
        else:
            header = mapping([(row[0], row[1]) for row in fields])
        return [PROTOCOL, self.command, header, *self.bodies]

    def breaks_szp1(self, job: JobRequest | None) -> bool:
        """Whether SZP1 refuses it (aimed at ``job``, if it has one)."""
        try:
            decode_all(self.frames(job))
        except ProtocolError:
            return True
        return False


KINDS: list[type[Message]] = [Ready, JobResult, Heartbeat, Disconnect]


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in ``one_in`` draws, and never in the simplest example.

    (Hypothesis favours an integer's ends, and starts from the simplest choices:
    a sampled last element is neither.)
    """
    return draw(st.sampled_from(range(one_in))) == one_in - 1


def field(draw: st.DrawFn, name: str) -> bytes:
    """Mostly valid: one bad value anywhere refuses the whole message."""
    if rarely(draw, 10):
        return draw(WILD)
    return pack(draw(EDGES[name] if rarely(draw, 6) else VALID[name]))


#: Fields an aimed RESULT takes from the job in flight, whatever was drawn.
AIMED_FIELDS = frozenset({"job_id", "attempt"})


def one_fault(draw: st.DrawFn, names: list[str], faulty: str | None) -> list[bytes]:
    """Every field valid but ``faulty`` (None: none), at its edge or wild.

    A value past one bound in a message otherwise right is what gets past
    every other check to the code that bound guards: the broker's date
    arithmetic on a RESULT's ``duration``, say. Messages wrong in several
    fields at once are refused for the first and test nothing further.
    """
    values = []
    for name in names:
        if name != faulty:
            values.append(pack(draw(VALID[name])))
        elif rarely(draw, 8):
            values.append(draw(WILD))
        else:
            values.append(pack(draw(PAST[name])))
    return values


@st.composite
def shots(draw: st.DrawFn, *, aimed: bool = False) -> Shot:
    """A message; ``aimed``: a RESULT for the job in flight.

    An aimed RESULT is mostly right but for one field (``one_fault``): only
    such a RESULT reaches what the broker does with a job's outcome. Other
    messages have each field valid, at an edge, or wild, independently.
    """
    kind = JobResult if aimed else draw(st.sampled_from(KINDS))
    names = [f.name for f in attrs.fields(kind)]
    aimed = aimed or (kind is JobResult and draw(st.booleans()))
    careful = aimed and not rarely(draw, 8)

    def fields() -> list[bytes]:
        if not careful:
            return [field(draw, name) for name in names]
        faults = [name for name in names if name not in AIMED_FIELDS]
        return one_fault(draw, names, draw(st.sampled_from([*faults, None])))

    if kind is JobResult and rarely(draw, 4):
        count = draw(st.integers(min_value=1, max_value=3))
        items = tuple(tuple(fields()) for _ in range(count))
        bodies = draw(st.lists(st.binary(max_size=6), min_size=count, max_size=count))
        body = draw(WILD) if rarely(draw, 4) else pack(bodies)
        return Shot(kind.COMMAND, items, (body,), batch=True, aimed=aimed)
    values = fields()
    pairs = [
        (pack(name), value)
        for name, value in zip(names, values, strict=True)
        if careful or not rarely(draw, 20)
    ]
    if not careful and rarely(draw, 20):
        pairs.append((draw(WILD), draw(WILD)))
    # A careful RESULT's one body is any msgpack value: only its job sees it.
    bodies = draw(st.lists(WILD, max_size=1 if careful else 2))
    return Shot(kind.COMMAND, tuple(pairs), tuple(bodies), batch=False, aimed=aimed)


@attrs.frozen
class Example:
    """What one peer does: maybe register, maybe take a job, then send ``shots``."""

    register: bool
    job: bool
    shots: tuple[Shot, ...]


@st.composite
def examples(draw: st.DrawFn) -> Example:
    # Mostly a registered peer with a job in flight: only it can send a RESULT
    # that the broker acts on.
    register = not rarely(draw, 4)
    job = register and not rarely(draw, 8)
    first = draw(shots(aimed=True) if job else shots())
    rest = draw(st.lists(shots(), max_size=3))
    return Example(register, job, (first, *rest))


def aimed_result(*, batch: bool = False, body: bytes = b"", **fields: Any) -> Shot:
    """A RESULT for the job in flight, right but for ``fields`` (or its body)."""
    values = {
        "job_id": "j",
        "attempt": 1,
        "outcome": "success",
        "error": None,
        "duration": 0.5,
        "caller_error": False,
        **fields,
    }
    if batch:
        # Past the bound, then a right one (five fields, as peers before
        # caller_error send): the broker acts on the first before the second.
        wrong = tuple(pack(value) for value in values.values())
        right = tuple(pack(value) for value in ("j", 1, "success", None, 0.5))
        return Shot(JobResult.COMMAND, (wrong, right), (pack([b"", b""]),), True, True)
    pairs = tuple((pack(name), pack(value)) for name, value in values.items())
    bodies = (body,) if body else ()
    return Shot(JobResult.COMMAND, pairs, bodies, batch=False, aimed=True)


#: Examples run every time, whatever Hypothesis draws: what only a RESULT
#: aimed at a job in flight reaches (the broker's date arithmetic on
#: ``duration`` once ended its reader; a value no dict can hold, its body).
PINNED = [
    Example(register=True, job=True, shots=(aimed_result(**fields),))
    for fields in (
        {"duration": math.inf},
        {"duration": math.nan},
        {"duration": 1e300, "batch": True},
        {"duration": 2**64 - 1, "outcome": "failure", "error": "E"},
        # A map keyed by an array: msgpack, but no Python dict holds it.
        {"body": b"\x81" + pack([1, 2]) + pack(3)},
    )
]


# ----------------------------------------------------------------- the test


def sentinel() -> list[bytes]:
    """A READY refused for its name: its answer says all before it was read."""
    ready = Ready(
        name="not a name!", incarnation="x", methods=("x",), capacity=1, heartbeat=1.0
    )
    return encode(ready)


def pinned(test: Callable[[Example], None]) -> Callable[[Example], None]:
    """``test`` with every ``PINNED`` example as a Hypothesis ``@example``."""
    for one in reversed(PINNED):
        test = example(one)(test)
    return test


async def answer_to_sentinel(peer: RawPeer) -> None:
    """Read what the broker sends ``peer`` until it refuses the sentinel."""
    with anyio.fail_after(HANG):
        while True:
            for message, _ in decode_all(await peer.socket.receive()):
                if isinstance(message, Disconnect) and "worker name is" in (
                    message.reason
                ):
                    return


async def next_job(peer: RawPeer) -> JobRequest:
    with anyio.fail_after(HANG):
        while True:
            for message, _ in decode_all(await peer.socket.receive()):
                if isinstance(message, JobRequest):
                    return message


@pytest.mark.timeout(300)
async def test_no_message_from_a_peer_ends_the_broker_or_starves_a_good_worker(
    spawn_worker: Callable[..., Awaitable[WorkerProcess]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sz = ScheduleZero(store="memory", broker=BrokerSettings(endpoint=ANY_PORT))
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    numbers = itertools.count()
    caplog.set_level(logging.WARNING, logger="sz.broker")
    async with sz, anyio.create_task_group() as jobs:
        endpoint, _ = await sz.broker()
        await spawn_worker(endpoint, name="good", tasks=[GOOD_TASK])

        async def good_listed() -> bool:
            return any(s.name == "good" for s in await sz.handlers())

        await eventually(good_listed, what="the good worker registers")
        assert await sz.run_now(GOOD_TASK, args=[1, 1], timeout=HANG) == 2

        async def run(example: Example) -> None:
            await one_example(sz, ctx, jobs, next(numbers), example)

        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(examples())
        @pinned
        def property_holds(example: Example) -> None:
            anyio.from_thread.run(run, example)

        try:
            await anyio.to_thread.run_sync(property_holds)
        finally:
            jobs.cancel_scope.cancel()
            ctx.destroy(linger=0)
    # The reader's guard logs at ERROR what SZP1 should have refused first.
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.name == "sz.broker" and r.levelno >= logging.ERROR
    ]
    assert errors == []


async def one_example(
    sz: ScheduleZero,
    ctx: zmq.Context[zmq.Socket[bytes]],
    jobs: TaskGroup,
    number: int,
    example: Example,
) -> None:
    peer = RawPeer(ctx, (await sz.broker())[0])
    try:
        job: JobRequest | None = None
        name = f"peer{number}"
        if example.register:
            await peer.ready(name, methods=(name,), heartbeat=0.5)

            async def listed() -> bool:
                return any(s.name == name for s in await sz.handlers())

            await eventually(listed, what=f"{name} registers")
            if example.job:
                jobs.start_soon(a_job_for, sz, name)
                job = await next_job(peer)
        before = (await sz.broker())[1]
        for shot in example.shots:
            await peer.send(shot.frames(job))
        await peer.send(sentinel())
        await answer_to_sentinel(peer)
        after = (await sz.broker())[1]
        if any(shot.breaks_szp1(job) for shot in example.shots):
            assert after.malformed > before.malformed
        assert await sz.run_now(GOOD_TASK, args=[number, 1], timeout=HANG) == number + 1
        broker = sz.system.snapshot().find(BROKER)
        assert broker is not None
        assert (broker.state, broker.failures, broker.restarts) == ("running", 0, 0)
    finally:
        peer.socket.close()


async def a_job_for(sz: ScheduleZero, task: str) -> None:
    """A job for a fuzzing peer's task; whatever becomes of it is its business."""
    with contextlib.suppress(Exception):
        await sz.run_now(task, timeout=1.0)
