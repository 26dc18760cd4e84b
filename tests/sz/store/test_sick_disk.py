"""A store on a disk that fills up: calls fail at once, nothing is lost, it heals.

Each test runs on a small tmpfs of its own, mounted for it (it needs root); where
that cannot be made the test is skipped and says why.
"""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import pytest

from actors.testing import wait_until
from sz import ScheduleZero
from sz.store import StoreError, sqlite as store_sqlite

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Seconds any one wait may take before the test fails (far above what it needs).
PATIENCE = 20.0

#: An argument too big for what a full disk has left inside the WAL.
BIG = "x" * 200_000


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test, unmounted after it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
        check=False,
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr!r}")
    # No checkpoint restarts the WAL during the test: every commit must then
    # grow the WAL, and fails on a full disk rather than reuse its pages.
    monkeypatch.setattr(store_sqlite, "CHECKPOINT_EVERY", 3_600.0)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` with one file until it has no room; the file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65_536)
    except OSError:
        pass
    try:
        while True:  # the last few bytes
            os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


async def fill(disk: Path) -> Path:
    """Leave ``disk`` full (on a thread: writing a file blocks)."""
    return await anyio.to_thread.run_sync(_fill, disk)


async def heal(filler: Path) -> None:
    """Give the disk its room back."""
    await anyio.to_thread.run_sync(filler.unlink)


def url(path: Path) -> str:
    return f"sqlite:///{path}"


async def test_run_now_fails_at_once_on_a_full_disk_and_works_once_it_has_room(
    small_disk: Path,
) -> None:
    sz = ScheduleZero(store=url(small_disk / "store.db"))

    @sz.handler
    async def echo(value: str) -> int:
        return len(value)

    async with sz:
        assert await sz.run_now("echo", args=["a"]) == 1
        filler = await fill(small_disk)
        with anyio.fail_after(PATIENCE), pytest.raises(StoreError) as refused:
            await sz.run_now("echo", args=[BIG])
        assert "database or disk is full" in str(refused.value)
        await heal(filler)
        # No restart: the store writes again as soon as the disk lets it.
        with anyio.fail_after(PATIENCE):
            assert await sz.run_now("echo", args=[BIG]) == len(BIG)
        rows = await sz.history(task="echo", final=True)
    assert sorted(row.outcome for row in rows) == ["success", "success"]


class _Records(logging.Handler):
    """Error records of a logger, with an event set by the first one.

    The event only for records logged in the event loop's thread.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []
        self.arrived = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.arrived.set()


async def test_a_fire_the_full_disk_refuses_is_logged_with_its_schedule_and_time(
    small_disk: Path,
) -> None:
    store = small_disk / "store.db"
    sz = ScheduleZero(store=url(store))
    ran: list[int] = []

    @sz.handler
    async def echo(value: str) -> None:
        ran.append(len(value))

    records = _Records()
    logger = logging.getLogger("sz.scheduler")
    logger.addHandler(records)
    try:
        async with sz:
            run_time = datetime.now(UTC) + timedelta(seconds=0.6)
            await sz.schedule(
                "echo", "date", run_time=run_time, args=[BIG], id="on-a-full-disk"
            )
            filler = await fill(small_disk)
            with anyio.fail_after(PATIENCE):
                await records.arrived.wait()
            await heal(filler)
            # The store is well again: a job after the lost fire runs.
            with anyio.fail_after(PATIENCE):
                await sz.run_now("echo", args=["ok"])
    finally:
        logger.removeHandler(records)
    lost = (
        f"fire of schedule 'on-a-full-disk' at {run_time.isoformat()} not "
        f"accepted, it will not run: {store}: database or disk is full"
    )
    assert [m for m in records.messages if "not accepted" in m] == [lost], (
        records.messages
    )
    assert ran == [2]


async def test_a_final_row_the_full_disk_refuses_is_kept_and_lands_once_it_heals(
    small_disk: Path,
) -> None:
    """The job's result was returned: after a restart it never runs again."""
    store = small_disk / "store.db"
    sz = ScheduleZero(store=url(store))
    calls: list[str] = []
    go = anyio.Event()

    @sz.handler
    async def echo(value: str) -> int:
        calls.append(value)
        await go.wait()
        return len(value)

    records = _Records()
    logger = logging.getLogger("sz.store")
    logger.addHandler(records)
    try:
        async with sz, anyio.create_task_group() as tg:
            results: list[int] = []

            async def run() -> None:
                results.append(await sz.run_now("echo", args=[BIG]))

            tg.start_soon(run)
            await wait_until(lambda: bool(calls), timeout=PATIENCE)
            filler = await fill(small_disk)
            go.set()
            # The final row (and the job's end) cannot be written: kept. (Logged
            # on the store's thread: looked for, as no event may be set there.)
            await wait_until(
                lambda: any("kept to retry" in m for m in records.messages),
                timeout=PATIENCE,
            )
            await wait_until(lambda: results == [len(BIG)], timeout=PATIENCE)
            await heal(filler)
            # A read follows the kept writes, retried first now the disk has room.
            with anyio.fail_after(PATIENCE):
                rows = await sz.history(task="echo")
            assert [(row.outcome, row.final) for row in rows] == [("success", True)]
    finally:
        logger.removeHandler(records)

    again = ScheduleZero(store=url(store))
    again_calls: list[str] = []

    @again.handler(name="echo")
    async def echo_again(value: str) -> int:
        again_calls.append(value)
        return len(value)

    async with again:
        rows = await again.history(task="echo")
    assert [(row.outcome, row.final) for row in rows] == [("success", True)]
    assert again_calls == []
