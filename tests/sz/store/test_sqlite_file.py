"""The store's file: checkpoints beside the writer keep the WAL bounded."""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING

import anyio
import pytest

from sz.store import StoreError, sqlite as store_sqlite
from sz.store.sqlite import SqliteFile

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

BLOB = b"x" * 2_000  # about half a page per row: a page of WAL per two rows


def _wal_pages(connection: sqlite3.Connection) -> int:
    _, frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)


async def test_a_steady_stream_of_writes_keeps_the_wal_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes that never pause would keep a passive checkpoint from ever letting
    the WAL start over; past ``WAL_LIMIT`` pages the writer restarts it itself."""
    monkeypatch.setattr(store_sqlite, "CHECKPOINT_EVERY", 0.005)
    monkeypatch.setattr(store_sqlite, "WAL_LIMIT", 200)
    path = tmp_path / "wal.db"
    file = SqliteFile(path)
    await file.open()
    try:
        file.write(
            (("CREATE TABLE IF NOT EXISTS blobs (n INTEGER, data BLOB)", ()),),
        )
        # 6,000 rows is 3,000 pages of WAL if nothing ever started it over.
        for n in range(6_000):
            file.write((("INSERT INTO blobs VALUES (?, ?)", (n, BLOB)),))
            if n % 50 == 0:
                await file.flush()
        await file.flush()
        count = await file.read(
            lambda c: c.execute("SELECT count(*) FROM blobs").fetchone()[0]
        )
        pages = await file.read(_wal_pages)
    finally:
        await file.close()
    assert count == 6_000
    # Bounded by the limit plus what a second of writes adds, far below 3,000.
    assert pages < 1_500


async def test_rows_written_are_in_the_database_file_after_close(
    tmp_path: Path,
) -> None:
    path = tmp_path / "closed.db"
    file = SqliteFile(path)
    await file.open()
    file.write((("CREATE TABLE t (n INTEGER)", ()),))
    for n in range(100):
        file.write((("INSERT INTO t VALUES (?)", (n,)),))
    await file.close()

    def read() -> int:
        connection = sqlite3.connect(path)
        try:
            return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])
        finally:
            connection.close()

    assert await anyio.to_thread.run_sync(read) == 100
    # Checkpointed and removed by the last connection's close.
    assert not await anyio.Path(tmp_path / "closed.db-wal").exists()


async def _lost_after(
    path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[Path], None]
) -> None:
    """Open a store at ``path``, ``change`` the path under it, see it noticed."""
    monkeypatch.setattr(store_sqlite, "WATCH_EVERY", 0.01)
    file = SqliteFile(path)
    noticed: list[StoreError] = []
    arrived = anyio.Event()

    def on_lost(error: StoreError) -> None:
        noticed.append(error)
        arrived.set()

    file.on_lost = on_lost
    await file.open()
    try:
        file.write((("CREATE TABLE kept (n INTEGER)", ()),))
        await file.flush()
        await anyio.to_thread.run_sync(change, path)
        with anyio.fail_after(10):
            await arrived.wait()
        (error,) = noticed
        refused: list[BaseException] = []
        file.write(
            (("INSERT INTO kept VALUES (1)", ()),),
            failed=refused.append,
        )
        with pytest.raises(StoreError) as flushed:
            await file.flush()
        assert flushed.value is error
        with pytest.raises(StoreError):
            await file.read(lambda c: c.execute("SELECT 1").fetchone())
    finally:
        await file.close()
    assert refused == [error]


async def test_a_store_file_deleted_under_the_process_is_noticed_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "deleted.db"
    await _lost_after(path, monkeypatch, os.unlink)
    assert (
        f"{path}: the store file was deleted while in use; nothing more is "
        "written to it: restart ScheduleZero"
    ) in caplog.messages


def _replace(path: Path) -> None:
    other = path.with_name("other.db")
    other.write_bytes(b"")
    other.replace(path)


async def test_a_store_file_replaced_under_the_process_is_noticed_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "replaced.db"
    await _lost_after(path, monkeypatch, _replace)
    assert (
        f"{path}: the store file was replaced by another file while in use; "
        "nothing more is written to it: restart ScheduleZero"
    ) in caplog.messages
    # Nothing was written into the new file at that path.
    assert await anyio.Path(path).read_bytes() == b""


def _pin(path: Path) -> sqlite3.Connection:
    """A reader holding a snapshot open: the WAL cannot start over past it."""
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM blobs").fetchone()
    return reader


async def test_a_reader_pinning_the_wal_never_stalls_the_writer_and_is_warned_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer's restart of the WAL waits for no reader: with a busy timeout
    of a minute, a wait would blow the test's deadline many times over."""
    monkeypatch.setattr(store_sqlite, "CHECKPOINT_EVERY", 0.005)
    monkeypatch.setattr(store_sqlite, "WAL_LIMIT", 50)
    monkeypatch.setattr(store_sqlite, "WAL_WARN", 200)
    monkeypatch.setattr(store_sqlite, "BUSY_MS", 60_000)
    path = tmp_path / "pinned.db"
    file = SqliteFile(path)
    await file.open()
    try:
        file.write(
            (("CREATE TABLE IF NOT EXISTS blobs (n INTEGER, data BLOB)", ()),),
        )
        await file.flush()
        reader = await anyio.to_thread.run_sync(_pin, path)
        try:
            with anyio.fail_after(20):
                for n in range(2_000):
                    file.write((("INSERT INTO blobs VALUES (?, ?)", (n, BLOB)),))
                    if n % 20 == 0:
                        await file.flush()
                await file.flush()
        finally:
            await anyio.to_thread.run_sync(reader.close)
        count = await file.read(
            lambda c: c.execute("SELECT count(*) FROM blobs").fetchone()[0]
        )
    finally:
        await file.close()
    assert count == 2_000
    warnings = [m for m in caplog.messages if "cannot start over" in m]
    assert len(warnings) == 1, caplog.messages
    assert warnings[0].startswith(f"{path}: the WAL has ")
