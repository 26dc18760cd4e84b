"""The governors' settings in ``config.yaml``, and the store layout they added.

Layout 2 of the SQLite store gives each history row ``waited``: a file written
by layout 1 is migrated in place when it is opened.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import anyio
import pytest

from sz import ScheduleZero
from sz.config import (
    AdaptiveConfig,
    BackpressureConfig,
    Config,
    ConfigError,
    GovernorsConfig,
    HandlerLimits,
    MethodLimits,
    load_config,
    parse_config,
)
from sz.store.sqlite import APPLICATION_ID, SCHEMA_VERSION, to_micros

if TYPE_CHECKING:
    from pathlib import Path

GOVERNORS_YAML = """\
governors:
  per_method_limits:
    send_email:
      rate: 5
      burst: 2
    backup_db:
      rate: 0.5
  per_handler_limits:
    send_email:
      rate: 10
      burst: 20
      concurrent: 5
  backpressure:
    high_water: 1000
    low_water: 200
  adaptive:
    enabled: true
    failure_ratio: 0.3
    latency_seconds: 2.5
    decrease: 0.25
    increase: 0.05
"""


async def write_text(path: Path, text: str) -> None:
    await anyio.Path(path).write_text(text, encoding="utf-8")


# ------------------------------------------------------------------ parsing


async def test_a_file_sets_method_and_handler_limits_backpressure_and_adaptive(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    await write_text(path, GOVERNORS_YAML)
    governors = (await anyio.to_thread.run_sync(load_config, path)).governors
    assert governors.per_method_limits == {
        "send_email": MethodLimits(rate=5, burst=2),
        "backup_db": MethodLimits(rate=0.5),
    }
    assert governors.per_handler_limits == {
        "send_email": HandlerLimits(rate=10, burst=20, concurrent=5)
    }
    assert governors.backpressure == BackpressureConfig(
        enabled=True, high_water=1000, low_water=200
    )
    assert governors.adaptive == AdaptiveConfig(
        enabled=True,
        failure_ratio=0.3,
        latency_seconds=2.5,
        decrease=0.25,
        increase=0.05,
    )


def test_a_method_limit_without_a_burst_leaves_it_to_the_rate() -> None:
    config = parse_config({"governors": {"per_method_limits": {"work": {"rate": 3}}}})
    assert config.governors.per_method_limits["work"].burst is None


def test_governors_default_to_backpressure_on_and_adaptive_off() -> None:
    governors = parse_config(None).governors
    assert governors.per_method_limits == {}
    assert governors.backpressure == BackpressureConfig(
        enabled=True, high_water=50_000, low_water=40_000
    )
    assert governors.adaptive == AdaptiveConfig(
        enabled=False,
        failure_ratio=0.2,
        latency_seconds=None,
        decrease=0.5,
        increase=0.1,
    )


def test_backpressure_may_be_switched_off() -> None:
    config = parse_config({"governors": {"backpressure": {"enabled": False}}})
    assert not config.governors.backpressure.enabled


def test_empty_governor_sections_give_their_defaults() -> None:
    config = parse_config(
        {"governors": {"per_method_limits": None, "backpressure": None}}
    )
    assert config.governors.per_method_limits == {}
    assert config.governors.backpressure == BackpressureConfig()


@pytest.mark.parametrize(
    ("governors", "path", "problem"),
    [
        pytest.param(
            {"backpressure": {"high_water": 10, "low_water": 10}},
            "governors.backpressure.low_water",
            "expected a number below high_water (10), got 10",
            id="low-water-at-high-water",
        ),
        pytest.param(
            {"backpressure": {"high_water": 10, "low_water": 20}},
            "governors.backpressure.low_water",
            "expected a number below high_water (10), got 20",
            id="low-water-above-high-water",
        ),
        pytest.param(
            {"backpressure": {"high_water": 0}},
            "governors.backpressure.high_water",
            "expected an integer > 0, got 0",
            id="high-water-zero",
        ),
        pytest.param(
            {"backpressure": {"high_water": 1000, "low_water": 2.5}},
            "governors.backpressure.low_water",
            "expected an integer > 0, got 2.5",
            id="low-water-not-an-integer",
        ),
        pytest.param(
            {"backpressure": {"enabled": "yes"}},
            "governors.backpressure.enabled",
            "expected true or false, got 'yes'",
            id="backpressure-enabled-not-a-flag",
        ),
        pytest.param(
            {"adaptive": {"decrease": 1.5}},
            "governors.adaptive.decrease",
            "expected a number between 0 and 1, got 1.5",
            id="decrease-above-one",
        ),
        pytest.param(
            {"adaptive": {"decrease": 1}},
            "governors.adaptive.decrease",
            "expected a number between 0 and 1, got 1",
            id="decrease-of-one-lowers-nothing",
        ),
        pytest.param(
            {"adaptive": {"decrease": 0}},
            "governors.adaptive.decrease",
            "expected a number between 0 and 1, got 0",
            id="decrease-to-nothing",
        ),
        pytest.param(
            {"adaptive": {"increase": 0}},
            "governors.adaptive.increase",
            "expected a number above 0, at most 1, got 0",
            id="increase-zero",
        ),
        pytest.param(
            {"adaptive": {"failure_ratio": 1.5}},
            "governors.adaptive.failure_ratio",
            "expected a number from 0 to 1, got 1.5",
            id="failure-ratio-above-one",
        ),
        pytest.param(
            {"adaptive": {"latency_seconds": -1}},
            "governors.adaptive.latency_seconds",
            "expected a number > 0, got -1",
            id="negative-latency",
        ),
        pytest.param(
            {"per_method_limits": {"work": {"rate": 0}}},
            "governors.per_method_limits.work.rate",
            "expected a number > 0, got 0",
            id="method-rate-zero",
        ),
        pytest.param(
            {"per_method_limits": {"work": {"burst": 2}}},
            "governors.per_method_limits.work.rate",
            "required key missing",
            id="method-limit-without-a-rate",
        ),
        pytest.param(
            {"per_method_limits": {"work": {"rate": 1, "burst": 0}}},
            "governors.per_method_limits.work.burst",
            "expected an integer > 0, got 0",
            id="method-burst-zero",
        ),
        pytest.param(
            {"per_method_limits": {"work": 5}},
            "governors.per_method_limits.work",
            "expected a mapping, got 5",
            id="method-limit-not-a-mapping",
        ),
        pytest.param(
            {"per_handler_limits": {"h": {"rate": 1, "burst": 1.5}}},
            "governors.per_handler_limits.h.burst",
            "expected an integer > 0, got 1.5",
            id="handler-burst-not-an-integer",
        ),
        pytest.param(
            {"per_handler_limits": {"h": {"rate": 1, "burst": -3}}},
            "governors.per_handler_limits.h.burst",
            "expected an integer > 0, got -3",
            id="handler-burst-negative",
        ),
    ],
)
def test_a_bad_governor_setting_is_named_by_its_key_path(
    governors: dict[str, object], path: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"governors": governors}, source="config.yaml")
    assert caught.value.problems == ((path, problem),)
    assert str(caught.value) == f"config.yaml: {path}: {problem}"


@pytest.mark.parametrize(
    ("section", "known"),
    [
        ("backpressure", "enabled, high_water, low_water"),
        (
            "adaptive",
            "decrease, enabled, failure_ratio, increase, latency_seconds",
        ),
    ],
)
def test_an_unknown_key_in_a_governor_section_lists_the_known_ones(
    section: str, known: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"governors": {section: {"speed": 1}}})
    assert caught.value.problems == (
        (f"governors.{section}.speed", f"unknown key (expected one of: {known})"),
    )


def test_a_backpressure_config_built_in_python_is_held_to_the_same_rule() -> None:
    with pytest.raises(ValueError, match="low_water"):
        BackpressureConfig(high_water=5, low_water=5)


async def test_a_config_files_limits_are_the_ones_the_scheduler_reports(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    await write_text(path, GOVERNORS_YAML)
    config = await anyio.to_thread.run_sync(load_config, path)
    sz = ScheduleZero(config=config)

    @sz.handler
    async def send_email() -> None:
        await anyio.lowlevel.checkpoint()

    async with sz:
        found = {status.name: status for status in await sz.governors()}
    assert list(found) == [
        "global",
        "method:backup_db",
        "method:send_email",
        "handler:send_email",
    ]
    assert (found["global"].rate, found["global"].max_running) == (None, None)
    assert (found["method:send_email"].rate, found["method:send_email"].burst) == (
        5,
        2,
    )
    # No burst: one second's worth of the rate, at least one.
    assert (found["method:backup_db"].rate, found["method:backup_db"].burst) == (
        0.5,
        1.0,
    )
    assert (found["handler:send_email"].rate, found["handler:send_email"].burst) == (
        10,
        20,
    )


# ---------------------------------------------------------------- migration

#: The history table of store layout 1 (before ``waited``), with the rest of
#: that layout, as ScheduleZero wrote it.
LAYOUT_1 = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    next_fire_time INTEGER,
    last_fire_time INTEGER,
    paused INTEGER NOT NULL,
    data BLOB NOT NULL,
    trigger BLOB
);
CREATE INDEX IF NOT EXISTS schedules_by_next_fire ON schedules (next_fire_time);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    schedule_id TEXT,
    task TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS fired (
    schedule_id TEXT PRIMARY KEY,
    fire_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    schedule_id TEXT,
    task TEXT NOT NULL,
    handler TEXT,
    scheduled_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER NOT NULL,
    duration REAL,
    outcome TEXT NOT NULL,
    error TEXT,
    attempt INTEGER NOT NULL,
    final INTEGER NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS history_by_finish ON history (finished_at);
CREATE INDEX IF NOT EXISTS history_by_job ON history (job_id);
"""

OLD_FINISH = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def write_layout_1(path: Path) -> None:
    """A store file as layout 1 left it, with one history row."""
    connection = sqlite3.connect(path)
    try:
        connection.executescript(LAYOUT_1)
        connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
        connection.execute("PRAGMA user_version=1")
        started = to_micros(OLD_FINISH - timedelta(seconds=2))
        connection.execute(
            "INSERT INTO history (job_id, schedule_id, task, handler, scheduled_at, "
            "started_at, finished_at, duration, outcome, error, attempt, final, "
            "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "old-job",
                None,
                "work",
                "work",
                started,
                started,
                to_micros(OLD_FINISH),
                2.0,
                "success",
                None,
                1,
                1,
                None,
            ),
        )
        connection.commit()
    finally:
        connection.close()


def read_layout(path: Path) -> tuple[int, list[str], list[tuple[str, float | None]]]:
    """The file's layout version, history columns and (job, waited) rows."""
    connection = sqlite3.connect(path)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        columns = [row[1] for row in connection.execute("PRAGMA table_info(history)")]
        rows = connection.execute(
            "SELECT job_id, waited FROM history ORDER BY seq"
        ).fetchall()
        return version, columns, rows
    finally:
        connection.close()


def rated_scheduler(path: Path) -> ScheduleZero:
    sz = ScheduleZero(store=f"sqlite:///{path}")

    # Two jobs at once: the second waits about half a second for its token.
    @sz.handler(rate=2.0, burst=1)
    async def work(n: int) -> int:
        return n

    return sz


async def test_a_layout_1_store_gains_waited_and_keeps_its_old_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    await anyio.to_thread.run_sync(write_layout_1, path)
    sz = rated_scheduler(path)
    async with sz:
        (old,) = await sz.history(job_id="old-job")
        async with anyio.create_task_group() as tg:
            for n in range(2):
                tg.start_soon(partial(sz.run_now, "work", args=[n], timeout=10))
        finals = await sz.history(task="work", final=True)
    new = [row for row in finals if row.job_id != "old-job"]
    assert (old.outcome, old.finished_at, old.reason, old.waited) == (
        "success",
        OLD_FINISH,
        None,
        None,
    )
    assert len(new) == 2
    (held,) = [row for row in new if row.reason == "rate_limited"]
    assert held.waited is not None
    assert held.waited > 0

    version, columns, rows = await anyio.to_thread.run_sync(read_layout, path)
    assert version == SCHEMA_VERSION == 6
    assert columns[-5:] == ["waited", "arguments", "result", "note", "traceback"]
    assert rows[0] == ("old-job", None)
    assert sorted(waited is None for _, waited in rows[1:]) == [False, True]

    # Read back by the next run, as written.
    async with rated_scheduler(path) as again:
        reread = {row.job_id: row for row in await again.history(limit=10)}
    assert reread["old-job"].waited is None
    assert reread[held.job_id].waited == held.waited


async def test_a_new_store_starts_at_the_current_layout(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with rated_scheduler(path) as sz:
        await sz.run_now("work", args=[1])
    version, columns, rows = await anyio.to_thread.run_sync(read_layout, path)
    assert version == SCHEMA_VERSION == 6
    assert {"waited", "arguments", "result", "note", "traceback"} <= set(columns)
    assert len(rows) == 1


async def test_a_configured_concurrent_limit_overrides_the_handlers_own() -> None:
    config = Config(
        governors=GovernorsConfig(
            per_handler_limits={"work": HandlerLimits(concurrent=3)}
        )
    )
    sz = ScheduleZero(config=config)

    @sz.handler(concurrency=1)
    async def work() -> None:
        return None

    @sz.handler(name="other", concurrency=2)
    async def other() -> None:
        return None

    async with sz:
        statuses = {status.name: status for status in await sz.handlers()}
    assert statuses["work"].concurrency == 3
    assert statuses["other"].concurrency == 2
