"""The nodes sharing one PostgreSQL store: their rows, leases and takeovers.

Each ScheduleZero on a PostgreSQL store is a *node*. Its row in ``nodes`` (name,
epoch, lease) says it is alive: it renews the lease on the database's clock
(``now()``), never its own, every heartbeat. Each start raises the row's epoch;
every transaction the node commits first checks (``fence``, a function of the
layout) that its row still has the epoch it started with, holding the row
while it commits, so a node whose row was taken over writes nothing more.

A node whose lease has run out is taken over by the first other node to see
it (``FOR UPDATE SKIP LOCKED``: one taker, nobody waits): its accepted jobs
become the taker's, the schedules it held are let go, and its row's epoch is
raised, so that the node, if it comes back, finds itself fenced out. Rows are
never deleted: an epoch only grows, whatever happens to the row.

Everything here runs on the store's thread, with its connection (blocking).
"""

from __future__ import annotations

import os
import socket
from typing import Any

import attrs

__all__ = [
    "FENCED_SQLSTATE",
    "NodeSettings",
    "Registration",
    "TakenOver",
    "application_name",
    "beat",
    "default_node_name",
    "leave",
    "register",
    "take_over",
]

#: The SQLSTATE ``fence`` raises when the node's row is no longer its own.
FENCED_SQLSTATE = "SZ001"

#: Seconds a takeover waits for a row lock before it gives up until its next
#: heartbeat (a node stopped mid-transaction holds its locks until the server's
#: ``idle_in_transaction_session_timeout`` ends its session).
TAKEOVER_LOCK_TIMEOUT = "1s"

#: What the layout adds for several nodes (layout 2): the fence every node's
#: transaction starts with, and the index a takeover looks jobs up by.
FENCE_LAYOUT = """
CREATE FUNCTION fence(node text, node_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- KEY SHARE: a takeover (FOR UPDATE) cannot slip in before the commit.
    PERFORM 1 FROM nodes WHERE name = node AND epoch = node_epoch FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node % (epoch %) is fenced out: its row was taken over',
            node, node_epoch USING ERRCODE = 'SZ001';
    END IF;
END $$;
CREATE INDEX jobs_by_node ON jobs (node);
"""


def application_name(node: str | None, role: str = "") -> str:
    """How a connection of ``node`` names itself to the server (``pg_stat_activity``).

    ``schedulezero`` for a store opened without a node; a node's connections
    carry its name, so that a node taking it over can end them.
    """
    base = "schedulezero" + (f"-{role}" if role else "")
    return base if node is None else f"{base}/{node}"[:63]


def default_node_name() -> str:
    """``HOST-PID``: unique among the live processes of the machines."""
    host = "".join(
        c if c.isalnum() or c in ".-_" else "-" for c in socket.gethostname()
    )
    return f"{host or 'host'}-{os.getpid()}"[:100]


@attrs.frozen(kw_only=True)
class NodeSettings:
    """Who this node is, and how long its claims last.

    Attributes:
        name: The node's name, unique among the nodes sharing the store.
        lease: Seconds its row and the schedules it claims stay its own without
            a renewal, on the database's clock; 10 by default.
        heartbeat: Seconds between renewals (and looks for nodes to take
            over); a third of ``lease`` by default.
        endpoint: The broker endpoint its workers connect to, shown in its row
            (None by default: it has no broker).
    """

    name: str
    lease: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    heartbeat: float = attrs.field(
        default=attrs.Factory(lambda self: self.lease / 3, takes_self=True),
        validator=attrs.validators.gt(0),
    )
    endpoint: str | None = None


@attrs.frozen(kw_only=True)
class Registration:
    """What a node's start found.

    Attributes:
        epoch: The node's epoch from now on.
        displaced: True if a live process held the name (its lease had not run
            out): that process is fenced out now.
    """

    epoch: int
    displaced: bool


@attrs.frozen(kw_only=True)
class TakenOver:
    """A node taken over: its name, epoch, and how many of its jobs moved."""

    name: str
    epoch: int
    jobs: int
    schedules: int


def register(raw: Any, settings: NodeSettings) -> Registration:
    """Make or take the node's row, raising its epoch (one transaction).

    Accepted jobs of no node (left by a ScheduleZero before nodes) become this
    node's, to be taken up as after a restart.
    """
    with raw.transaction():
        row = raw.execute(
            "SELECT lease_until > now() FROM nodes WHERE name = %s FOR UPDATE",
            (settings.name,),
        ).fetchone()
        (epoch,) = raw.execute(
            "INSERT INTO nodes (name, epoch, lease_until, endpoint, started_at) "
            "VALUES (%s, 1, now() + make_interval(secs => %s), %s, now()) "
            "ON CONFLICT (name) DO UPDATE SET epoch = nodes.epoch + 1, "
            "lease_until = excluded.lease_until, endpoint = excluded.endpoint, "
            "started_at = excluded.started_at RETURNING epoch",
            (settings.name, settings.lease, settings.endpoint),
        ).fetchone()
        raw.execute("UPDATE jobs SET node = %s WHERE node IS NULL", (settings.name,))
        # Claims of its previous run (killed mid-pass) end now, not at their lease.
        raw.execute(
            "UPDATE schedules SET lease_node = NULL, lease_until = NULL "
            "WHERE lease_node = %s",
            (settings.name,),
        )
    return Registration(epoch=epoch, displaced=bool(row is not None and row[0]))


def beat(raw: Any, settings: NodeSettings, epoch: int) -> bool:
    """Renew the node's lease; False if its row is no longer its own."""
    row = raw.execute(
        "UPDATE nodes SET lease_until = now() + make_interval(secs => %s) "
        "WHERE name = %s AND epoch = %s RETURNING 1",
        (settings.lease, settings.name, epoch),
    ).fetchone()
    return row is not None


def leave(raw: Any, settings: NodeSettings, epoch: int) -> None:
    """End the node's lease now (a clean stop): its leftovers are taken over.

    The schedules it still holds (a pass cut short) are let go.
    """
    with raw.transaction():
        row = raw.execute(
            "UPDATE nodes SET lease_until = now() WHERE name = %s AND epoch = %s "
            "RETURNING 1",
            (settings.name, epoch),
        ).fetchone()
        if row is not None:
            raw.execute(
                "UPDATE schedules SET lease_node = NULL, lease_until = NULL "
                "WHERE lease_node = %s",
                (settings.name,),
            )


def take_over(
    raw: Any, settings: NodeSettings, epoch: int
) -> tuple[list[TakenOver], list[tuple[Any, ...]]]:
    """Take over every node whose lease ran out (one transaction).

    Their accepted jobs become this node's; the schedules they held are let
    go; their scenario runs still running end ``aborted``; their epochs are
    raised (fencing them out).

    Returns:
        The nodes taken over, and their accepted jobs as ``(id, schedule_id,
        task, scheduled_at, data, attempts)`` rows, ``attempts`` being how many
        history rows each has (the take-up's ``Unfinished``).

    Raises:
        psycopg.Error: A lock was not had within ``TAKEOVER_LOCK_TIMEOUT`` (a
            stopped node's transaction still holds it), or this node is fenced
            out itself (SQLSTATE ``FENCED_SQLSTATE``); nothing was changed.
    """
    taken: list[TakenOver] = []
    jobs: list[tuple[Any, ...]] = []
    expired = [
        name
        for (name,) in raw.execute(
            "SELECT name FROM nodes WHERE lease_until < now() AND name <> %s",
            (settings.name,),
        ).fetchall()
    ]
    if not expired:
        return taken, jobs
    # A node stopped in the middle of a pipelined transaction holds its locks
    # (its node row among them) for as long as it stays stopped: the server
    # sees an active session waiting for the rest of its statements. Its
    # sessions are ended first, as its row is about to be taken anyway.
    applications = [application_name(name) for name in expired] + [
        application_name(name, "listener") for name in expired
    ]
    raw.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND application_name = ANY(%s)",
        (applications,),
    )
    with raw.transaction():
        raw.execute(f"SET LOCAL lock_timeout = '{TAKEOVER_LOCK_TIMEOUT}'")
        raw.execute("SELECT fence(%s, %s)", (settings.name, epoch))
        dead = raw.execute(
            "SELECT name, epoch FROM nodes WHERE lease_until < now() "
            "AND name <> %s ORDER BY name FOR UPDATE SKIP LOCKED",
            (settings.name,),
        ).fetchall()
        for name, old_epoch in dead:
            moved = raw.execute(
                "UPDATE jobs SET node = %s WHERE node = %s RETURNING id, "
                "schedule_id, task, scheduled_at, data, "
                "(SELECT count(*) FROM history WHERE history.job_id = jobs.id)",
                (settings.name, name),
            ).fetchall()
            let_go = raw.execute(
                "UPDATE schedules SET lease_node = NULL, lease_until = NULL "
                "WHERE lease_node = %s",
                (name,),
            ).rowcount
            raw.execute(
                "UPDATE nodes SET epoch = epoch + 1, lease_until = NULL "
                "WHERE name = %s",
                (name,),
            )
            # Its scenario runs ran in its process: they ended with it.
            raw.execute(
                "UPDATE scenario_runs SET outcome = 'aborted', passed = false, "
                "error = %s, finished_at = now() "
                "WHERE node = %s AND outcome IS NULL",
                (f"its node {name} ended during the run (taken over)", name),
            )
            jobs.extend(moved)
            taken.append(
                TakenOver(name=name, epoch=old_epoch, jobs=len(moved), schedules=let_go)
            )
    return taken, jobs
