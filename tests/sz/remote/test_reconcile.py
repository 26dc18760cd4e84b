"""Reconciliation: a JOB or RESULT lost on a link that stays up.

A worker's HEARTBEAT lists the jobs it holds from that broker; the broker
tries again a job in flight that the reports leave out for ``LOST_AFTER``
heartbeats (``retry_after_message_lost``), and leaves alone one they list,
however long it runs. Raw DEALERs play the worker here, raw ROUTERs the
brokers of a real worker serving two.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import zmq

from actors.testing import wait_until
from sz import ZMQHandler
from sz.remote.broker import LOST_AFTER
from transport import (
    Heartbeat,
    JobRequest,
    JobResult,
    Message,
    Ready,
    Socket,
    decode_all,
    encode,
    encode_body,
)

from .test_broker import HANG, RawPeer, raw, registered, scheduler, stats

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.anyio

__all__ = ["raw"]  # the fixture, imported for these tests

Context = zmq.Context[zmq.Socket[bytes]]

#: The heartbeat the raw workers announce: the grace is LOST_AFTER of them.
HEARTBEAT = 0.2


async def receive(peer: RawPeer) -> Message:
    """The next message ``peer`` receives, heartbeats included."""
    with anyio.fail_after(HANG):
        while not peer.inbox:
            peer.inbox.extend(decode_all(await peer.socket.receive()))
    message, _ = peer.inbox.popleft()
    return message


async def test_a_job_the_reports_leave_out_is_tried_again_and_its_late_result_ignored(
    raw: Callable[[str], RawPeer],
) -> None:
    async with scheduler() as (sz, endpoint):
        peer = raw(endpoint)
        await peer.ready("raw", heartbeat=HEARTBEAT)
        await registered(sz, "raw")
        outcome: list[Any] = []

        async def submit() -> None:
            outcome.append(await sz.run_now("echo", args=[1], timeout=HANG))

        async with anyio.create_task_group() as tg:
            tg.start_soon(submit)
            first, _ = await peer.next(JobRequest)
            got_first = anyio.current_time()
            # A worker that never got the JOB (or whose RESULT was lost): each
            # report, sent as the broker's heartbeats come, lists nothing.
            while True:
                message = await receive(peer)
                if isinstance(message, Heartbeat):
                    await peer.send(encode(Heartbeat(jobs=())))
                    continue
                assert isinstance(message, JobRequest), message
                second = message
                break
            waited = anyio.current_time() - got_first
            assert (second.job_id, second.attempt) == (first.job_id, 2)
            # Not before the grace (a report may be built before a JOB arrives).
            assert waited >= LOST_AFTER * HEARTBEAT * 0.9
            # The first attempt's RESULT comes after all: too late, ignored.
            await peer.answer(first, "late")
            await peer.answer(second, "second")
        await peer.answer(first, "later still")

        async def three_taken() -> bool:
            return (await stats(sz)).results == 3

        await wait_until(three_taken, timeout=HANG)
        assert outcome == ["second"]
        counts = await stats(sz)
        assert (counts.messages_lost, counts.stale_results) == (1, 2)
        assert counts.workers_lost == 0
        rows = sorted(await sz.history(task="echo"), key=lambda row: row.attempt)
        assert [(r.attempt, r.handler, r.outcome, r.final, r.reason) for r in rows] == [
            (1, "raw", "abandoned", False, "retry_after_message_lost"),
            (2, "raw", "success", True, None),
        ]
        assert len({r.job_id for r in rows}) == 1


@pytest.mark.parametrize(
    "listed", [True, False], ids=["listed-in-reports", "bare-heartbeats"]
)
async def test_a_job_the_reports_list_or_an_old_worker_holds_is_left_alone(
    raw: Callable[[str], RawPeer], listed: bool
) -> None:
    async with scheduler() as (sz, endpoint):
        peer = raw(endpoint)
        await peer.ready("raw", heartbeat=HEARTBEAT)
        await registered(sz, "raw")
        outcome: list[Any] = []

        async def submit() -> None:
            outcome.append(await sz.run_now("echo", args=[1], timeout=HANG))

        async with anyio.create_task_group() as tg:
            tg.start_soon(submit)
            job, _ = await peer.next(JobRequest)
            # Five graces of heartbeats (each answered by a report listing the
            # job, or by a bare heartbeat as a worker before reports sends):
            # the job is never sent again.
            beats = 0
            while beats < 5 * LOST_AFTER:
                message = await receive(peer)
                assert isinstance(message, Heartbeat), message
                report = Heartbeat(jobs=(job.job_id,)) if listed else Heartbeat()
                await peer.send(encode(report))
                beats += 1
            # Taken after every report before it: had one lost the job, this
            # RESULT would be stale and a second attempt sent.
            await peer.answer(job, "done")
        assert outcome == ["done"]
        counts = await stats(sz)
        assert (counts.messages_lost, counts.stale_results, counts.jobs_sent) == (
            0,
            0,
            1,
        )
        (row,) = await sz.history(task="echo")
        assert (row.attempt, row.outcome, row.final) == (1, "success", True)


# ------------------------------------------- a worker's reports, broker by broker


class FakeBroker:
    """A raw ROUTER playing a broker: it records what a worker sends it."""

    def __init__(self, context: Context) -> None:
        raw = context.socket(zmq.ROUTER)
        raw.bind("tcp://127.0.0.1:*")
        self.endpoint = raw.getsockopt_string(zmq.LAST_ENDPOINT)
        self.socket = Socket(raw)
        self.peer: bytes | None = None
        #: Every message the worker sent, in order.
        self.heard: list[Message] = []

    async def run(self) -> None:
        """Read for ever; answer each heartbeat, as a broker keeps a worker alive."""
        while True:
            peer, *frames = await self.socket.receive()
            self.peer = peer
            for message, _ in decode_all(frames):
                self.heard.append(message)
                if isinstance(message, Heartbeat):
                    await self.socket.send([peer, *encode(Heartbeat())])

    async def send_job(self, job_id: str, token: str) -> None:
        assert self.peer is not None
        job = JobRequest(job_id, 1, "hold")
        await self.socket.send([self.peer, *encode(job, encode_body([[token], {}]))])

    def reports(self) -> list[tuple[str, ...]]:
        heard = [m for m in self.heard if type(m) is Heartbeat]
        return [m.jobs for m in heard if m.jobs is not None]

    def reported(self, jobs: tuple[str, ...]) -> bool:
        return jobs in self.reports()

    def registered(self) -> bool:
        return any(isinstance(m, Ready) for m in self.heard)


async def test_a_worker_of_two_brokers_reports_to_each_only_its_jobs_after_results(
    context: Context,
) -> None:
    one, two = FakeBroker(context), FakeBroker(context)
    handler = ZMQHandler([one.endpoint, two.endpoint], name="w", heartbeat=HEARTBEAT)
    release = anyio.Event()

    @handler.task
    async def hold(token: str) -> str:
        await release.wait()
        return token

    async def until(check: Callable[[], bool]) -> None:
        async def holds() -> bool:
            return check()

        await wait_until(holds, timeout=HANG)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(one.run)
            tg.start_soon(two.run)
            tg.start_soon(handler.serve)
            await until(one.registered)
            await until(two.registered)
            # Capacity 1, shared: one job runs, the other waits for the slot;
            # each broker hears of its own job only, running or waiting.
            await one.send_job("a1", "one")
            await two.send_job("b1", "two")
            await until(partial(one.reported, ("a1",)))
            await until(partial(two.reported, ("b1",)))
            release.set()
            await until(partial(one.reported, ()))
            await until(partial(two.reported, ()))
            tg.cancel_scope.cancel()
    finally:
        one.socket.close()
        two.socket.close()
    for broker, job_id in ((one, "a1"), (two, "b1")):
        assert set(broker.reports()) <= {(), (job_id,)}
        # Its RESULT went before the first report that left the job out.
        kinds = [
            "result"
            if type(m) is JobResult
            else "listed"
            if type(m) is Heartbeat and m.jobs == (job_id,)
            else "unlisted"
            if type(m) is Heartbeat and m.jobs == ()
            else "other"
            for m in broker.heard
        ]
        answered = kinds.index("result")
        assert "listed" in kinds[:answered]
        assert "listed" not in kinds[answered:]
        assert "unlisted" in kinds[answered:]
