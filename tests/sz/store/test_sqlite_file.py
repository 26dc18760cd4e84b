"""The store's file: checkpoints beside the writer keep the WAL bounded."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import anyio

from sz.store import sqlite as store_sqlite
from sz.store.sqlite import SqliteFile

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

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
