"""Three ``sz serve`` nodes on one PostgreSQL store, one killed, one stopped.

The issue's test of scale-out, with real processes throughout: three nodes
share one database, each with a broker; two ``sz worker`` processes serve all
three brokers (``sz worker EP1,EP2,EP3``). A thousand schedules fire every
second (``SZ_CLUSTER_SCHEDULES`` for another count). A second into the burst of
one second, node 1 is killed (SIGKILL); once it is taken over, node 2 is stopped
(SIGSTOP) in a burst, past its lease, taken over, then resumed (SIGCONT): it
must exit 2, "fenced out", without writing a thing. Node 3 carries on alone,
then stops cleanly.

The moments of the chaos are the scenario's own clock (so many seconds after
the first fire); every outcome is waited for as a condition. Afterwards the
database is checked in SQL: every fire up to each schedule's last one has
exactly one final row or is an accepted job still pending, none twice, none
beyond; no fire waited longer than ``lease + heartbeat + 1 s`` for its record.
"""

from __future__ import annotations

import math
import os
import signal
import socket
from collections import Counter
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from subprocess import PIPE, STDOUT
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest

from actors.testing import wait_until
from sz import BrokerSettings, ScheduleZero

from .logged import crash_tracebacks
from .test_store_recovery import ENV, SZ, Serve, serving

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.postgresql

#: Schedules firing every second.
SCHEDULES = int(os.environ.get("SZ_CLUSTER_SCHEDULES", "1000"))

#: The nodes' lease and heartbeat, in seconds.
LEASE, HEARTBEAT = 3.0, 1.0

#: The slowest a fire may be recorded while nodes are taken over.
LATENESS_BOUND = LEASE + HEARTBEAT + 1.0

#: Seconds any one wait may take.
PATIENCE = 30.0

CONFIG = """\
scheduler: {{mode: distributed, drain_timeout: 1}}
handlers:
  zmq:
    registration_server: tcp://127.0.0.1:{port}
store:
  url: "{url}"
  node: {node}
  lease: {lease}
  heartbeat: {heartbeat}
web:
  enabled: false
"""

TICKS = '''\
async def tick(n: int) -> None:
    """A job of the scale-out test: nothing to do."""
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


async def rows_of(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return await anyio.to_thread.run_sync(partial(query, url, sql, *params))


@asynccontextmanager
async def serving_worker(
    cwd: Path, endpoints: str, name: str, backend: str
) -> AsyncIterator[Serve]:
    """``sz worker`` of the brokers ``endpoints``; killed on the way out if alive."""
    argv = [*SZ, "worker", endpoints, "ticks", "--name", name, "--capacity", "200"]
    async with (
        await anyio.open_process(
            [*argv, "--backend", backend], cwd=cwd, stdout=PIPE, stderr=STDOUT, env=ENV
        ) as process,
        anyio.create_task_group() as tg,
    ):
        worker = Serve(process)
        tg.start_soon(worker.read)
        try:
            yield worker
        finally:
            if process.returncode is None:
                process.kill()


async def at(moment: datetime) -> None:
    """The scenario's clock: the moment a chaos step is due (not a wait for it)."""
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay > 0:
        await anyio.sleep(delay)


async def add_schedules(url: str, first: datetime) -> None:
    """A thousand schedules every second from ``first``, added by a node of its own.

    It takes no fire (drained) and leaves cleanly; a broker lets it schedule a
    task only remote workers serve.
    """
    setup = ScheduleZero(
        store=url,
        node="setup",
        broker=BrokerSettings(endpoint=f"tcp://127.0.0.1:{free_port()}"),
    )

    async def add(numbers: range) -> None:
        for n in numbers:
            await setup.schedule(
                "tick",
                "interval",
                seconds=1,
                start_time=first,
                args=[n],
                id=f"s{n:05}",
                coalesce="latest",
            )

    async with setup:
        await setup.drain(0)
        # Sixteen at a time: their commits are shared.
        async with anyio.create_task_group() as tg:
            for start in range(16):
                tg.start_soon(add, range(start, SCHEDULES, 16))
    assert datetime.now(UTC) < first, "the schedules took too long to add"


@pytest.mark.timeout(180)
async def test_three_nodes_one_killed_one_stopped_record_each_fire_once(
    tmp_path: Path, pg_url: str, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    backend = anyio_backend[0]
    await anyio.Path(tmp_path / "ticks.py").write_text(TICKS)
    ports = [free_port() for _ in range(3)]
    names = ["n1", "n2", "n3"]
    for name, port in zip(names, ports, strict=True):
        config = CONFIG.format(
            port=port, url=pg_url, node=name, lease=LEASE, heartbeat=HEARTBEAT
        )
        await anyio.Path(tmp_path / f"{name}.yaml").write_text(config)
    endpoints = ",".join(f"tcp://127.0.0.1:{port}" for port in ports)

    async with AsyncExitStack() as stack:
        nodes: dict[str, Serve] = {}
        for name in names:
            nodes[name] = await stack.enter_async_context(
                serving(
                    tmp_path,
                    "-c",
                    f"{name}.yaml",
                    "--backend",
                    backend,
                    "--log-level",
                    "WARNING",
                )
            )

        async def all_nodes_live() -> bool:
            live = await rows_of(
                pg_url,
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'sz' "
                "AND tablename = 'nodes'",
            )
            if not live[0][0]:
                return False  # the layout is being made
            live = await rows_of(
                pg_url,
                "SELECT count(*) FROM sz.nodes WHERE name = ANY(%s) "
                "AND lease_until > now()",
                names,
            )
            return bool(live[0][0] == 3)

        await wait_until(all_nodes_live, timeout=PATIENCE)
        workers = [
            await stack.enter_async_context(
                serving_worker(tmp_path, endpoints, name, backend)
            )
            for name in ("wa", "wb")
        ]
        for worker_output in workers:
            await worker_output.wait_for(
                lambda w=worker_output: (
                    sum(  # type: ignore[misc]
                        "registering with" in line for line in w.lines
                    )
                    >= 3
                ),
                "registering with the three brokers",
            )

        now = datetime.now(UTC)
        lead = 3 + math.ceil(SCHEDULES / 500)
        first = now.replace(microsecond=0) + timedelta(seconds=lead)
        await add_schedules(pg_url, first)

        async def taken_over(name: str) -> bool:
            row = await rows_of(
                pg_url,
                "SELECT epoch, lease_until FROM sz.nodes WHERE name = %s",
                name,
            )
            return bool(row and row[0][0] >= 2 and row[0][1] is None)

        # Into the burst of the fourth second (taken from 0.25 s ahead).
        await at(first + timedelta(seconds=2.85))
        nodes["n1"].process.kill()
        # Once n1 is taken over (a job taken over twice waits twice), into the
        # burst of the second after next.
        await wait_until(partial(taken_over, "n1"), timeout=PATIENCE)
        next_burst = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        await at(next_burst - timedelta(seconds=0.15))
        stopped_at = datetime.now(UTC)
        nodes["n2"].process.send_signal(signal.SIGSTOP)

        try:
            await wait_until(partial(taken_over, "n2"), timeout=PATIENCE)
        except TimeoutError:
            sessions = await rows_of(
                pg_url,
                "SELECT application_name, state, wait_event, left(query, 60) "
                "FROM pg_stat_activity WHERE datname = current_database()",
            )
            raise AssertionError(
                f"n2 not taken over; sessions {sessions}; n3 said:\n"
                f"{nodes['n3'].output[-3000:]}"
            ) from None
        took = (datetime.now(UTC) - stopped_at).total_seconds()
        writer = await rows_of(
            pg_url, "SELECT id, batch FROM sz.writers WHERE id LIKE 'n2/%%'"
        )
        nodes["n2"].process.send_signal(signal.SIGCONT)
        with anyio.fail_after(PATIENCE):
            code = await nodes["n2"].process.wait()
        await nodes["n2"].wait_for(lambda: nodes["n2"].ended, "end of output")
        assert code == 2, nodes["n2"].output[-3000:]
        assert "fenced out" in nodes["n2"].output
        # Not one write of the resumed node: its batch counter stands.
        assert (
            await rows_of(
                pg_url, "SELECT id, batch FROM sz.writers WHERE id LIKE 'n2/%%'"
            )
            == writer
        )
        assert len(writer) == 1

        # The survivor carries on alone a while, then stops cleanly.
        await at(stopped_at + timedelta(seconds=took + 4.0))
        nodes["n3"].process.send_signal(signal.SIGTERM)
        with anyio.fail_after(PATIENCE):
            assert await nodes["n3"].process.wait() == 0
        for worker_output in workers:
            worker_output.process.send_signal(signal.SIGTERM)
        for worker_output in workers:
            with anyio.fail_after(PATIENCE):
                await worker_output.process.wait()
    for name in names:
        assert crash_tracebacks(nodes[name].output) == [], name

    counts = await anyio.to_thread.run_sync(check_fires, pg_url, first)
    print(
        f"\nscale-out ({backend}): {SCHEDULES} schedules every second; "
        f"n2 taken over {took:.1f} s after SIGSTOP (lease {LEASE:g} s, "
        f"heartbeat {HEARTBEAT:g} s); {counts}"
    )


def check_fires(url: str, first: datetime) -> str:
    """Every fire up to its schedule's last: one final row, or pending; once."""
    last = dict(query(url, "SELECT id, last_fire_time FROM sz.schedules"))
    assert len(last) == SCHEDULES
    expected: set[tuple[str, datetime]] = set()
    for schedule_id, last_fire in last.items():
        assert last_fire is not None, schedule_id
        steps = round((last_fire - first).total_seconds())
        expected.update(
            (schedule_id, first + timedelta(seconds=k)) for k in range(steps + 1)
        )
    finals = query(
        url,
        "SELECT schedule_id, scheduled_at, outcome, "
        "EXTRACT(EPOCH FROM coalesce(started_at, finished_at) - scheduled_at) "
        "FROM sz.history WHERE final AND schedule_id IS NOT NULL",
    )
    final_keys = Counter((s, at) for s, at, _, _ in finals)
    twice = [key for key, n in final_keys.items() if n > 1]
    assert twice == [], f"{len(twice)} fires with two final rows: {twice[:5]}"
    pending = Counter(query(url, "SELECT schedule_id, fire_time FROM sz.jobs"))
    assert [k for k, n in pending.items() if n > 1] == []
    assert set(pending).isdisjoint(final_keys), "a fire both ended and pending"
    recorded = set(final_keys) | set(pending)
    missing = expected - recorded
    assert missing == set(), f"{len(missing)} fires lost: {sorted(missing)[:5]}"
    extra = recorded - expected
    assert extra == set(), f"{len(extra)} fires beyond their schedule's: {extra}"
    late = [float(lateness) for _, _, _, lateness in finals]
    worst = max(late)
    if worst > LATENESS_BOUND:
        latest = query(
            url,
            "SELECT schedule_id, scheduled_at, attempt, outcome, reason, "
            "started_at, finished_at, EXTRACT(EPOCH FROM coalesce(started_at, "
            "finished_at) - scheduled_at) AS late FROM sz.history "
            "WHERE schedule_id IS NOT NULL ORDER BY late DESC LIMIT 8",
        )
        raise AssertionError(f"a fire recorded {worst:.2f} s late: {latest}")
    outcomes = Counter(outcome for _, _, outcome, _ in finals)
    retried = query(
        url,
        "SELECT count(*) FROM sz.history WHERE outcome = 'abandoned' "
        "AND reason = 'retry_after_restart'",
    )[0][0]
    success = sorted(
        float(lateness) for _, _, outcome, lateness in finals if outcome == "success"
    )
    p99 = success[math.ceil(0.99 * len(success)) - 1] if success else float("nan")
    shown = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
    return (
        f"{len(expected)} fires expected, each recorded once: {shown}, "
        f"{len(pending)} pending; {retried} jobs taken over and retried; "
        f"lateness p99 {p99:.2f} s, worst {worst:.2f} s (bound {LATENESS_BOUND:g} s)"
    )


async def test_sz_serve_started_with_a_live_nodes_name_fences_that_node_out(
    tmp_path: Path, pg_url: str, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    """``--node`` names a node: a second process of the same name displaces it.

    The first finds its row taken at its next commit or heartbeat: it exits 2
    saying ``fenced out``; the second runs on and stops cleanly.
    """
    argv = ["--store", pg_url, "--node", "same", "--no-web"]
    argv += ["--backend", anyio_backend[0]]
    async with serving(tmp_path, *argv) as first:
        await first.wait_for_line("actor tree")
        async with serving(tmp_path, *argv) as second:
            await second.wait_for_line("actor tree")
            assert "node same was alive in another process" in second.output
            with anyio.fail_after(PATIENCE):
                code = await first.process.wait()
            await first.wait_for(lambda: first.ended, "end of output")
            assert code == 2, first.output[-3000:]
            assert "node same (epoch 1) is fenced out" in first.output
            assert crash_tracebacks(first.output) == []
            await second.terminate()
    epochs = await rows_of(pg_url, "SELECT name, epoch FROM sz.nodes")
    assert epochs == [("same", 2)]
