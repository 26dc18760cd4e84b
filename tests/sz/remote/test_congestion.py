"""A worker that does not keep up: the broker's messages for it wait, in order, and
each job arrives once when it reads again (``ROUTER_MANDATORY``: never a silent
drop at the high-water mark)."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import msgpack
import pytest
import zmq

from sz import BrokerSettings, ScheduleZero
from transport import (
    Heartbeat,
    JobRequest,
    JobResult,
    Ready,
    Socket,
    decode_all,
    encode,
)

from .conftest import ANY_PORT, eventually

pytestmark = pytest.mark.anyio

Context = zmq.Context[zmq.Socket[bytes]]

#: Jobs sent to the stalled worker, each with a large argument, so that they
#: fill the socket buffers between the two ends.
JOBS = 40
PAYLOAD = b"x" * 256 * 1024


async def test_jobs_for_a_stalled_worker_wait_and_each_arrives_once(
    context: Context,
) -> None:
    settings = BrokerSettings(endpoint=ANY_PORT, send_hwm=1, receive_hwm=1)
    async with ScheduleZero(store="memory", broker=settings) as sz:
        endpoint, _ = await sz.broker()
        raw = context.socket(zmq.DEALER)
        raw.setsockopt(zmq.RCVHWM, 1)
        raw.setsockopt(zmq.RCVBUF, 64 * 1024)
        raw.connect(endpoint)
        peer = Socket(raw)
        await peer.send(
            encode(
                Ready(
                    name="slow",
                    incarnation=uuid.uuid4().hex,
                    methods=("store",),
                    capacity=JOBS,
                    heartbeat=1.0,
                )
            )
        )

        async def registered() -> bool:
            return any(h.name == "slow" for h in await sz.handlers())

        await eventually(registered, what="slow registers")
        outcomes: list[Any] = []
        reading = anyio.Event()
        seen: list[str] = []

        async def beat() -> None:
            # Alive, though it reads nothing yet.
            while True:
                await peer.send(encode(Heartbeat()))
                await anyio.sleep(0.25)

        async def serve() -> None:
            await reading.wait()
            while len(seen) < JOBS:
                for message, _bodies in decode_all(await peer.receive()):
                    if isinstance(message, JobRequest):
                        seen.append(message.job_id)
                        result = JobResult(
                            job_id=message.job_id,
                            attempt=message.attempt,
                            outcome="success",
                        )
                        await peer.send(encode(result, msgpack.packb(len(seen))))

        async def submit() -> None:
            outcomes.append(await sz.run_now("store", args=[PAYLOAD], timeout=30))

        async with anyio.create_task_group() as tg:
            tg.start_soon(beat)
            tg.start_soon(serve)
            async with anyio.create_task_group() as jobs:
                for _ in range(JOBS):
                    jobs.start_soon(submit)

                async def congested() -> bool:
                    return (await sz.broker())[1].congested > 0

                await eventually(congested, what="the worker's queue fills")
                reading.set()
            tg.cancel_scope.cancel()
        _, stats = await sz.broker()
        peer.close()
    assert len(outcomes) == JOBS
    assert len(seen) == len(set(seen)) == JOBS  # each job once, none lost
    assert (stats.jobs_sent, stats.results, stats.workers_lost) == (JOBS, JOBS, 0)
