"""A network partition between a worker's host and the scheduler's broker.

The worker's "host" is a network namespace the test makes (``ip netns``), joined
to this one by a veth pair on a private /30; the broker binds the address of
this side of the pair, so that the worker inside reaches it only through that
link. A second worker runs here, on the same address (no link in its way).
Cutting the link (the namespace's end goes down: a pulled cable on the worker's
host) must not lose a job or record one twice: the broker declares the cut-off
worker lost, its jobs in flight are retried on the other worker with the reason
``retry_after_worker_lost``, each job ends with exactly one final row, and once
the link is back the worker registers again, unaided, and takes new jobs.

Needs root and iproute2's ``ip`` (CI runs as root; ``make pytest`` installs
iproute2 when it is missing); otherwise skipped, saying which is missing.
"""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
import shutil
from collections import defaultdict
from typing import TYPE_CHECKING

import anyio
import attrs
import pytest

from sz import BrokerSettings, ScheduleZero

from .conftest import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from sz.jobs import Attempt

    from .conftest import WorkerProcess

    Spawn = Callable[..., Awaitable[WorkerProcess]]
    Backend = tuple[str, dict[str, object]]

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        shutil.which("ip") is None,
        reason="needs iproute2's `ip` for network namespaces (apt install iproute2)",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="needs root to make network namespaces and veths"
    ),
]

#: Seconds between heartbeats, broker and workers alike: dead after 0.6 s.
HEARTBEAT = 0.2

#: Deadline for "eventually": a worker process starts in about 0.5 s, far
#: slower on a loaded two-core machine, and a worker cut off waits out its
#: reconnection backoff (1 s, then 2 s) before it tries again.
PATIENCE = 20.0

#: The private block the links' /30s are taken from.
BLOCK = ipaddress.IPv4Network("10.213.0.0/16")

#: Jobs in flight on the worker when its link is cut.
IN_FLIGHT = 3


async def ip(*argv: str, check: bool = True) -> str:
    """Run ``ip ARGV``: its stdout; with ``check``, a failure raises naming it."""
    result = await anyio.run_process(["ip", *argv], check=False)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"ip {' '.join(argv)}: exit {result.returncode}: "
            f"{result.stderr.decode(errors='replace').strip()}"
        )
    return result.stdout.decode()


@attrs.frozen(kw_only=True)
class Link:
    """A network namespace joined to this one by a veth pair.

    Attributes:
        namespace: The namespace's name (``ip netns exec NAMESPACE ...``).
        host_device: This side's end of the pair.
        inner_device: The namespace's end.
        host_address: This side's address, which the broker binds.
        inner_address: The namespace's address.
    """

    namespace: str
    host_device: str
    inner_device: str
    host_address: str
    inner_address: str

    @property
    def prefix(self) -> list[str]:
        """What runs a program inside the namespace (it execs the program)."""
        return ["ip", "netns", "exec", self.namespace]

    async def cut(self) -> None:
        """The namespace's end goes down: nothing crosses, either way."""
        await ip("-n", self.namespace, "link", "set", self.inner_device, "down")

    async def mend(self) -> None:
        """The namespace's end comes up again, with its address and route."""
        await ip("-n", self.namespace, "link", "set", self.inner_device, "up")


async def free_subnet() -> ipaddress.IPv4Network:
    """A /30 of ``BLOCK`` that no address on this machine falls in (yet)."""
    used = [
        ipaddress.ip_interface(word)
        for line in (await ip("-o", "-4", "addr", "show")).splitlines()
        for word in line.split()[3:4]
    ]
    subnets = list(BLOCK.subnets(new_prefix=30))
    for _ in range(100):
        subnet = random.choice(subnets)
        if not any(
            address.network.overlaps(subnet) or address.ip in subnet for address in used
        ):
            return subnet
    raise RuntimeError(f"no free /30 in {BLOCK}")


@pytest.fixture
async def link() -> AsyncIterator[Link]:
    """A namespace and its veth pair on a fresh /30, removed after the test
    whatever happened (deleting the namespace's end deletes the pair)."""
    # Names unique to this test (an interface name holds 15 characters).
    token = secrets.token_hex(4)
    subnet = await free_subnet()
    host, inner = (str(address) for address in subnet.hosts())
    made = Link(
        namespace=f"sz-partition-{token}",
        host_device=f"szh{token}",
        inner_device=f"szn{token}",
        host_address=host,
        inner_address=inner,
    )
    try:
        await ip("netns", "add", made.namespace)
        await ip(
            "link",
            "add",
            made.host_device,
            "type",
            "veth",
            "peer",
            "name",
            made.inner_device,
            "netns",
            made.namespace,
        )
        await ip("addr", "add", f"{host}/30", "dev", made.host_device)
        await ip("link", "set", made.host_device, "up")
        await ip("-n", made.namespace, "link", "set", "lo", "up")
        await ip(
            "-n", made.namespace, "addr", "add", f"{inner}/30", "dev", made.inner_device
        )
        await ip("-n", made.namespace, "link", "set", made.inner_device, "up")
        yield made
    finally:
        with anyio.CancelScope(shield=True):
            await ip("netns", "delete", made.namespace, check=False)
            # Gone with the namespace unless a process still holds it open.
            await ip("link", "delete", made.host_device, check=False)


async def registered(sz: ScheduleZero) -> set[str]:
    return {status.name for status in await sz.handlers() if status.kind == "remote"}


async def starts(trace: Path) -> list[tuple[str, int]]:
    """The ``announce_until`` lines written so far: (token, pid) of each start."""
    path = anyio.Path(trace)
    if not await path.exists():
        return []
    # Whole lines only: a worker may be writing the last one.
    lines = (await path.read_text(encoding="utf-8")).split("\n")[:-1]
    return [(token, int(pid)) for token, pid in (line.split() for line in lines)]


async def wait_starts(trace: Path, count: int, what: str) -> list[tuple[str, int]]:
    async def enough() -> bool:
        return len(await starts(trace)) >= count

    await eventually(enough, timeout=PATIENCE, what=what)
    return await starts(trace)


def summary(rows: list[Attempt]) -> list[tuple[int, str, str | None, str | None, bool]]:
    """A job's rows as (attempt, outcome, reason, handler, final)."""
    return [(r.attempt, r.outcome, r.reason, r.handler, r.final) for r in rows]


async def rows_by_job(sz: ScheduleZero, task: str) -> dict[str, list[Attempt]]:
    """Every history row of ``task``, by job id, in attempt order."""
    jobs: dict[str, list[Attempt]] = defaultdict(list)
    for row in await sz.history(task=task, limit=10_000):
        jobs[row.job_id].append(row)
    return {job: sorted(rows, key=lambda r: r.attempt) for job, rows in jobs.items()}


# Above the default 60 s: the test's own deadlines (two worker starts, the loss,
# the retries, the return) add up to more on a loaded machine.
@pytest.mark.timeout(120)
async def test_jobs_of_a_worker_cut_off_are_retried_elsewhere_and_it_rejoins(
    link: Link, spawn_worker: Spawn, anyio_backend: Backend, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    gate = tmp_path / "gate"
    backend = anyio_backend[0]
    broker = BrokerSettings(
        endpoint=f"tcp://{link.host_address}:*", heartbeat=HEARTBEAT
    )
    async with ScheduleZero(store="memory", broker=broker) as sz:
        endpoint, _ = await sz.broker()
        assert endpoint.startswith(f"tcp://{link.host_address}:")
        # The worker behind the link starts alone, so that every job is its own.
        cut_off = await spawn_worker(
            endpoint,
            name="cut-off",
            capacity=IN_FLIGHT,
            backend=backend,
            heartbeat=HEARTBEAT,
            prefix=link.prefix,
        )

        async def cut_off_registered() -> bool:
            return cut_off.name in await registered(sz)

        await eventually(cut_off_registered, timeout=PATIENCE, what="cut-off registers")
        results: list[int] = []
        async with anyio.create_task_group() as tg:
            for index in range(IN_FLIGHT):

                async def run(token: str) -> None:
                    args = [str(trace), token, str(gate)]
                    results.append(
                        await sz.run_now("announce_until", args=args, timeout=60)
                    )

                tg.start_soon(run, f"job{index}")
            first = await wait_starts(trace, IN_FLIGHT, "the jobs start")
            assert {pid for _, pid in first} == {cut_off.pid}
            other = await spawn_worker(
                endpoint,
                name="other",
                capacity=IN_FLIGHT,
                backend=backend,
                heartbeat=HEARTBEAT,
            )

            async def other_registered() -> bool:
                return other.name in await registered(sz)

            await eventually(other_registered, timeout=PATIENCE, what="other registers")
            _, before = await sz.broker()

            await link.cut()
            cut_at = anyio.current_time()

            async def declared_lost() -> bool:
                _, stats = await sz.broker()
                return (
                    stats.workers_lost > before.workers_lost
                    and cut_off.name not in await registered(sz)
                )

            await eventually(declared_lost, timeout=PATIENCE, what="cut-off is lost")
            print(f"declared lost {anyio.current_time() - cut_at:.3f} s after the cut")
            # Its jobs start again on the other worker while the link is down.
            again = (await wait_starts(trace, 2 * IN_FLIGHT, "the retries start"))[
                IN_FLIGHT:
            ]
            assert sorted(token for token, _ in again) == sorted(
                token for token, _ in first
            )
            assert {pid for _, pid in again} == {other.pid}
            assert cut_off.name not in await registered(sz)

            await link.mend()
            mended_at = anyio.current_time()

            async def rejoined() -> bool:
                _, stats = await sz.broker()
                return (
                    stats.registered > before.registered
                    and cut_off.name in await registered(sz)
                )

            await eventually(rejoined, timeout=PATIENCE, what="cut-off rejoins")
            print(f"registered {anyio.current_time() - mended_at:.3f} s after the mend")
            await anyio.Path(gate).touch()
        assert results == [other.pid] * IN_FLIGHT
        # Back on its link, the worker takes new jobs: one each, the least
        # loaded taking the next.
        pids: set[int] = set()
        async with anyio.create_task_group() as tg:
            for _ in range(2):

                async def run_nap() -> None:
                    pids.add(await sz.run_now("nap", args=[0.5], timeout=30))

                tg.start_soon(run_nap)
        assert pids == {cut_off.pid, other.pid}
        # Whatever the cut-off worker said of its old attempts once back, each
        # job ended once: lost there, done here.
        jobs = await rows_by_job(sz, "announce_until")
        assert len(jobs) == IN_FLIGHT
        for job, rows in jobs.items():
            assert summary(rows) == [
                (1, "abandoned", "retry_after_worker_lost", cut_off.name, False),
                (2, "success", None, other.name, True),
            ], job
        naps = await rows_by_job(sz, "nap")
        assert sorted(summary(rows) for rows in naps.values()) == [
            [(1, "success", None, cut_off.name, True)],
            [(1, "success", None, other.name, True)],
        ]
