"""The fault proxy relays a worker's link unchanged, and breaks it when told.

A real broker ROUTER (``transport.Router``) and a real worker DEALER
(``transport.Dealer``) on loopback, the proxy between them (asyncio and trio).
"""

from __future__ import annotations

import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest

from actors.testing import wait_until
from transport import (
    Dealer,
    FaultProxy,
    LinkCounters,
    PeerGone,
    ProxyCounters,
    Router,
    TransportError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

#: Deadline for anything to arrive over loopback on a busy two-core machine.
PATIENCE = 10.0


class Broker:
    """A ROUTER bound as the broker's, read one message at a time."""

    def __init__(self) -> None:
        self.router = Router("tcp://127.0.0.1:*")
        self.waiting: list[tuple[bytes, list[bytes]]] = []

    async def receive(self) -> tuple[bytes, list[bytes]]:
        with anyio.fail_after(PATIENCE):
            while not self.waiting:
                self.waiting += [
                    (peer, frames) for peer, frames, _ in await self.router.receive()
                ]
        return self.waiting.pop(0)

    def send(self, peer: bytes, frames: list[bytes]) -> None:
        assert self.router.send(peer, frames)


class Worker:
    """A DEALER connected as a worker's, read one message at a time."""

    def __init__(self, endpoint: str) -> None:
        self.dealer = Dealer(endpoint)
        self.waiting: list[list[bytes]] = []

    async def receive(self) -> list[bytes]:
        with anyio.fail_after(PATIENCE):
            while not self.waiting:
                self.waiting += await self.dealer.receive()
        return self.waiting.pop(0)

    async def send(self, frames: list[bytes]) -> None:
        with anyio.fail_after(PATIENCE):
            await self.dealer.send(frames)


@asynccontextmanager
async def linked(
    proxy_rng: random.Random | None = None,
) -> AsyncIterator[tuple[Broker, FaultProxy, Worker, bytes]]:
    """A broker, a proxy to it and a worker through the proxy, introduced.

    Yields the worker's routing id at the broker too: one message has gone up,
    so the broker may answer.
    """
    broker = Broker()
    try:
        async with FaultProxy(broker.router.endpoint, rng=proxy_rng) as proxy:
            worker = Worker(proxy.endpoint)
            try:
                await worker.send([b"hello"])
                peer, frames = await broker.receive()
                assert frames == [b"hello"]
                yield broker, proxy, worker, peer
            finally:
                worker.dealer.close()
    finally:
        broker.router.close()


async def counted(proxy: FaultProxy, *, up: int = 0, down: int = 0) -> None:
    """Wait until the proxy has settled ``up`` and ``down`` messages each way."""

    def settled() -> bool:
        counters = proxy.counters
        return (
            counters.to_broker.relayed + counters.to_broker.dropped >= up
            and counters.to_worker.relayed + counters.to_worker.dropped >= down
        )

    await wait_until(settled, timeout=PATIENCE, message=f"{up} up, {down} down")


# ---------------------------------------------------------------- relaying


async def test_multipart_messages_pass_both_ways_unchanged() -> None:
    frames = [b"SZP1", b"\x01", b"", b"\x00\xff" * 3, bytes(range(256)) * 400]
    async with linked() as (broker, proxy, worker, peer):
        await worker.send(frames)
        assert await broker.receive() == (peer, frames)
        broker.send(peer, [*reversed(frames)])
        assert await worker.receive() == [*reversed(frames)]
        # The proxy counts a message once its send returns, which may be
        # after the receiver has it.
        await counted(proxy, up=2, down=1)
        assert proxy.counters == ProxyCounters(
            to_broker=LinkCounters(relayed=2), to_worker=LinkCounters(relayed=1)
        )


async def test_the_broker_sees_one_routing_id_per_worker_connection() -> None:
    async with linked() as (broker, proxy, worker, peer):
        for index in range(20):
            await worker.send([b"%d" % index])
        assert [await broker.receive() for _ in range(20)] == [
            (peer, [b"%d" % index]) for index in range(20)
        ]
        # The worker connects afresh (as after a silent broker): a new peer
        # at the broker, as if it were connected directly.
        again = Worker(proxy.endpoint)
        try:
            await again.send([b"again"])
            other, frames = await broker.receive()
            assert frames == [b"again"]
            assert other != peer
            broker.send(other, [b"to the new one"])
            assert await again.receive() == [b"to the new one"]
        finally:
            again.dealer.close()


async def test_a_closed_worker_connection_closes_its_connection_to_the_broker() -> None:
    async with linked() as (broker, _, worker, peer):
        worker.dealer.close()

        def gone() -> bool:
            # As with a worker connected directly: the broker's ROUTER
            # refuses a message for a peer whose connection has closed.
            try:
                broker.send(peer, [b"anyone?"])
            except PeerGone:
                return True
            return False

        await wait_until(gone, timeout=PATIENCE, message="the broker loses the peer")


# --------------------------------------------------------------- partition


async def test_a_partition_drops_both_ways_for_its_duration_then_heals() -> None:
    duration = 0.5
    async with linked() as (broker, proxy, worker, peer):
        proxy.partition(duration)
        began = anyio.current_time()
        await worker.send([b"lost up"])
        broker.send(peer, [b"lost down"])
        await counted(proxy, up=2, down=1)
        assert proxy.counters.to_broker == LinkCounters(relayed=1, dropped=1)
        assert proxy.counters.to_worker == LinkCounters(dropped=1)
        await anyio.sleep_until(began + duration)  # the fault's length
        await worker.send([b"healed up"])
        broker.send(peer, [b"healed down"])
        # The first to arrive each way is the one sent after the partition.
        assert await broker.receive() == (peer, [b"healed up"])
        assert await worker.receive() == [b"healed down"]
        assert proxy.counters.dropped == 2


async def test_a_partition_reaches_messages_held_back_by_a_delay() -> None:
    async with linked() as (broker, proxy, worker, peer):
        proxy.delay(0.3, duration=0.1)
        await worker.send([b"held"])
        await wait_until(lambda: proxy.counters.to_broker.delayed == 1)
        proxy.partition(0.6)  # on when the held message is due
        began = anyio.current_time()
        await counted(proxy, up=2)
        assert proxy.counters.to_broker.dropped == 1
        await anyio.sleep_until(began + 0.6)  # the fault's length
        await worker.send([b"after"])
        assert await broker.receive() == (peer, [b"after"])


# ------------------------------------------------------------------- delay


async def test_a_delay_holds_each_message_at_least_its_delay_both_ways() -> None:
    delay = 0.3
    async with linked() as (broker, proxy, worker, peer):
        proxy.delay(delay, duration=30)
        sent = anyio.current_time()
        await worker.send([b"late up"])
        assert await broker.receive() == (peer, [b"late up"])
        up = anyio.current_time() - sent
        sent = anyio.current_time()
        broker.send(peer, [b"late down"])
        assert await worker.receive() == [b"late down"]
        down = anyio.current_time() - sent
        assert up >= delay
        assert down >= delay
        await counted(proxy, up=2, down=1)
        assert proxy.counters == ProxyCounters(
            to_broker=LinkCounters(relayed=2, delayed=1),
            to_worker=LinkCounters(relayed=1, delayed=1),
        )


async def test_a_delay_with_jitter_keeps_the_order_of_each_direction() -> None:
    async with linked(random.Random(3)) as (broker, proxy, worker, peer):
        proxy.delay(0.1, duration=30, jitter=0.1)
        for index in range(30):
            await worker.send([b"%d" % index])
            broker.send(peer, [b"%d" % index])
        assert [await broker.receive() for _ in range(30)] == [
            (peer, [b"%d" % index]) for index in range(30)
        ]
        assert [await worker.receive() for _ in range(30)] == [
            [b"%d" % index] for index in range(30)
        ]


async def test_messages_after_a_delay_ends_pass_at_once() -> None:
    async with linked() as (broker, proxy, worker, peer):
        proxy.delay(0.2, duration=0.2)
        began = anyio.current_time()
        await anyio.sleep_until(began + 0.2)  # the fault's length
        await worker.send([b"prompt"])
        assert await broker.receive() == (peer, [b"prompt"])
        assert proxy.counters.to_broker.delayed == 0


# -------------------------------------------------------------------- drop


async def test_a_drop_of_probability_one_drops_every_message() -> None:
    async with linked() as (broker, proxy, worker, peer):
        proxy.drop(1.0, duration=0.5, rng=random.Random(1))
        began = anyio.current_time()
        for index in range(20):
            await worker.send([b"%d" % index])
            broker.send(peer, [b"%d" % index])
        await counted(proxy, up=21, down=20)
        assert proxy.counters == ProxyCounters(
            to_broker=LinkCounters(relayed=1, dropped=20),
            to_worker=LinkCounters(dropped=20),
        )
        await anyio.sleep_until(began + 0.5)  # the fault's length
        await worker.send([b"after"])
        assert await broker.receive() == (peer, [b"after"])


async def test_a_drop_of_probability_zero_drops_none() -> None:
    async with linked() as (broker, proxy, worker, peer):
        proxy.drop(0.0, duration=30, rng=random.Random(1))
        for index in range(20):
            await worker.send([b"%d" % index])
            broker.send(peer, [b"%d" % index])
        assert [await broker.receive() for _ in range(20)] == [
            (peer, [b"%d" % index]) for index in range(20)
        ]
        assert [await worker.receive() for _ in range(20)] == [
            [b"%d" % index] for index in range(20)
        ]
        assert proxy.counters.dropped == 0


async def test_a_seeded_drop_drops_the_messages_its_seed_says() -> None:
    count, probability, seed = 60, 0.5, 7
    replica = random.Random(seed)
    kept = [index for index in range(count) if replica.random() >= probability]
    assert 0 < len(kept) < count
    async with linked() as (broker, proxy, worker, peer):
        proxy.drop(probability, duration=30, rng=random.Random(seed))
        for index in range(count):
            await worker.send([b"%d" % index])
        await counted(proxy, up=count + 1)
        assert [await broker.receive() for _ in kept] == [
            (peer, [b"%d" % index]) for index in kept
        ]
        assert proxy.counters.to_broker == LinkCounters(
            relayed=1 + len(kept), dropped=count - len(kept)
        )


# ------------------------------------------------------------------ misuse


def test_an_upstream_that_is_no_endpoint_is_refused() -> None:
    with pytest.raises(TransportError):
        FaultProxy("127.0.0.1:5555")


def test_the_endpoint_is_known_only_once_the_proxy_runs() -> None:
    with pytest.raises(TransportError):
        _ = FaultProxy("tcp://127.0.0.1:5555").endpoint


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_a_fault_of_bad_seconds_is_refused(seconds: float) -> None:
    proxy = FaultProxy("tcp://127.0.0.1:5555")
    with pytest.raises(ValueError, match="seconds"):
        proxy.partition(seconds)
    with pytest.raises(ValueError, match="seconds"):
        proxy.delay(seconds, duration=1)
    with pytest.raises(ValueError, match="seconds"):
        proxy.drop(0.5, duration=seconds, rng=random.Random())


@pytest.mark.parametrize("probability", [-0.1, 1.5, float("nan")])
def test_a_drop_probability_outside_zero_to_one_is_refused(
    probability: float,
) -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultProxy("tcp://127.0.0.1:5555").drop(
            probability, duration=1, rng=random.Random()
        )
