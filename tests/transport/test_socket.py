"""The AnyIO socket over pyzmq, on asyncio and trio: it never hangs, never loses.

Real sockets on loopback TCP with high-water marks of one message, many tasks
on each end, and cancellations at random points.
"""

from __future__ import annotations

import random
from collections import Counter

import anyio
import pytest
import zmq

from transport import Socket

#: Seconds any of these tests may take before it counts as a hang.
HANG = 20


def pair(ctx: zmq.Context[zmq.Socket[bytes]], hwm: int = 1) -> tuple[Socket, Socket]:
    """Two DEALERs joined over loopback TCP, each queue one message deep."""
    sockets = []
    for _ in range(2):
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.SNDHWM, hwm)
        raw.setsockopt(zmq.RCVHWM, hwm)
        sockets.append(raw)
    port = sockets[0].bind_to_random_port("tcp://127.0.0.1")
    sockets[1].connect(f"tcp://127.0.0.1:{port}")
    return Socket(sockets[0]), Socket(sockets[1])


async def test_a_message_goes_and_comes_back_whole(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    left, right = pair(context)
    async with left, right:
        with anyio.fail_after(HANG):
            await left.send([b"head", b"", b"body" * 1000])
            assert await right.receive() == [b"head", b"", b"body" * 1000]
            await right.send([b"back"])
            assert await left.receive() == [b"back"]


async def test_many_tasks_both_ways_at_once_lose_and_double_nothing(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    """Four senders and four receivers on each end, queues one message deep."""
    left, right = pair(context)
    per_sender, senders = 500, 4
    received: dict[str, Counter[bytes]] = {"left": Counter(), "right": Counter()}

    async def send_all(socket: Socket, tag: bytes) -> None:
        for i in range(per_sender):
            await socket.send([tag, str(i).encode()])

    async def receive_all(
        socket: Socket, side: str, done: anyio.Event, expected: int
    ) -> None:
        while sum(received[side].values()) < expected:
            tag, number = await socket.receive()
            received[side][tag + b":" + number] += 1
        done.set()

    left_done, right_done = anyio.Event(), anyio.Event()
    total = per_sender * senders
    async with left, right:
        with anyio.fail_after(HANG):
            async with anyio.create_task_group() as tg:
                for n in range(senders):
                    tg.start_soon(send_all, left, f"L{n}".encode())
                    tg.start_soon(send_all, right, f"R{n}".encode())
                tg.start_soon(receive_all, right, "right", right_done, total)
                tg.start_soon(receive_all, left, "left", left_done, total)
                await left_done.wait()
                await right_done.wait()
                tg.cancel_scope.cancel()
    for side, tag in (("right", "L"), ("left", "R")):
        assert len(received[side]) == total, side
        assert set(received[side].values()) == {1}, f"{side} got a message twice"
        assert all(key.startswith(tag.encode()) for key in received[side])


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_cancellation_at_random_points_never_hangs_and_never_loses_a_sent_message(
    context: zmq.Context[zmq.Socket[bytes]], seed: int
) -> None:
    """Senders and receivers cancelled at random moments, again and again.

    A send that returned was delivered exactly once; a cancelled send sent
    nothing; a message a cancelled receive did not return stays for the next.
    """
    rng = random.Random(seed)
    left, right = pair(context)
    sent: Counter[bytes] = Counter()
    got: Counter[bytes] = Counter()

    async def send_some(tag: str, count: int) -> None:
        for i in range(count):
            frame = f"{tag}-{i}".encode()
            with anyio.move_on_after(rng.choice([0, 0.0001, 0.001, 0.01])):
                await left.send([frame])
                sent[frame] += 1

    async def receive_some(count: int) -> None:
        for _ in range(count):
            with anyio.move_on_after(rng.choice([0, 0.0001, 0.001, 0.01])):
                (frame,) = await right.receive()
                got[frame] += 1

    async with left, right:
        with anyio.fail_after(HANG):
            for round_ in range(20):
                async with anyio.create_task_group() as tg:
                    for n in range(3):
                        tg.start_soon(send_some, f"{round_}.{n}", 30)
                        tg.start_soon(receive_some, 30)
            # Whatever was sent and not yet received is still there, once each.
            while sum(got.values()) < sum(sent.values()):
                (frame,) = await right.receive()
                got[frame] += 1
    assert got == sent
    assert sum(sent.values()) > 0


async def test_closing_wakes_every_waiting_task_with_closed_resource_error(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    left, right = pair(context)
    outcomes: list[str] = []

    async def wait_for_one() -> None:
        try:
            await right.receive()
        except anyio.ClosedResourceError:
            outcomes.append("closed")

    with anyio.fail_after(HANG):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(wait_for_one)
            # All three asleep: one on the FD, two waiting for a change.
            await anyio.wait_all_tasks_blocked()
            right.close()
    await left.aclose()
    assert outcomes == ["closed"] * 3
    with pytest.raises(anyio.ClosedResourceError):
        await right.send([b"late"])


async def test_receive_many_takes_what_arrived_in_order_up_to_its_limit(
    context: zmq.Context[zmq.Socket[bytes]],
) -> None:
    left, right = pair(context, hwm=100)
    async with left, right:
        with anyio.fail_after(HANG):
            for i in range(10):
                await left.send([str(i).encode()])
            got: list[bytes] = []
            while len(got) < 10:
                batch = await right.receive_many(limit=4)
                assert 1 <= len(batch) <= 4
                got.extend(frames[0] for frames in batch)
    assert got == [str(i).encode() for i in range(10)]
