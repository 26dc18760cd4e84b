"""A throwaway PostgreSQL server for the store's tests, and a database per test.

The server starts once per test session (``initdb`` and ``pg_ctl`` in a
temporary folder, as an unprivileged user: see ``sz.store.pgserver``), the first
time a test asks for it; each test gets a database of its own. Where PostgreSQL's
binaries cannot be had, the tests that need them are skipped, saying why.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest

from sz.store.pgserver import NoServer, PgServer, throwaway_server

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Marks a parametrization that runs on the PostgreSQL store.
POSTGRESQL = pytest.mark.postgresql


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (skips the test where none can run)."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(throwaway_server())
        except NoServer as exc:
            pytest.skip(str(exc))
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of an empty database of the session's server, the test's own.

    Dropped after the test: a session's hundreds of databases otherwise fill
    the server's folder with gigabytes that take minutes to remove at its end.
    """
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)
