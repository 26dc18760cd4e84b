"""Store URLs: ``memory``, ``sqlite:///path``, ``postgresql://...``.

What a URL names is decided here, once, for the facade, the CLI and the config:
a SQLite file's path, or a PostgreSQL database (``postgres://`` too).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StoreError

if TYPE_CHECKING:
    from .database import Database

__all__ = ["database_for", "is_postgres", "redact", "store_path"]

_POSTGRES = ("postgresql://", "postgres://")

#: What a bad URL is told it should look like.
_EXPECTED = (
    "expected 'memory', 'sqlite:///path/to/file.db' or "
    "'postgresql://user@host:port/database'"
)


def is_postgres(url: str | None) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return url is not None and url.startswith(_POSTGRES)


def redact(url: str) -> str:
    """The URL as messages show it: a password in it replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if query:
        pairs = [
            (key, "***" if key == "password" else value)
            for key, value in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def store_path(url: str | None) -> Path | None:
    """The file of a ``sqlite:///path`` URL; None for memory and PostgreSQL.

    ``sqlite:///jobs.db`` is relative to the working directory,
    ``sqlite:////var/lib/sz/jobs.db`` absolute.

    Raises:
        StoreError: Not ``memory``, a ``sqlite:///`` nor a ``postgresql://`` URL.
    """
    if url is None or url == "memory":
        return None
    if is_postgres(url):
        if url.partition("://")[2] == "":
            raise StoreError(f"store url {url!r}: {_EXPECTED}")
        return None
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise StoreError(f"store url {redact(url)!r}: {_EXPECTED}")
    return Path(url[len(prefix) :])


def database_for(url: str | None) -> Database | None:
    """The database a store URL names (not opened yet); None for memory.

    Raises:
        StoreError: Not a store URL, or a PostgreSQL one while psycopg is not
            installed.
    """
    path = store_path(url)
    if path is not None:
        from .sqlite import SqliteFile

        return SqliteFile(path)
    if url is None or not is_postgres(url):
        return None
    from .postgres import PostgresDatabase

    return PostgresDatabase(url)
