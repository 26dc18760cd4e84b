"""A tiny HTTP client for the gateway's tests, the same on asyncio and trio.

aiohttp's client runs on asyncio only; the standard library's, in a worker
thread, runs beside either loop. It also sends a ``Host`` header as given.
"""

from __future__ import annotations

import json as jsonlib
from functools import partial
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs


@attrs.frozen(kw_only=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), (
            self.headers,
            self.body,
        )
        return jsonlib.loads(self.body)


def _request(
    method: str, url: str, body: bytes | None, headers: dict[str, str]
) -> Answer:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    connection = HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path or "/", body=body, headers=headers)
        response = connection.getresponse()
        return Answer(
            status=response.status,
            headers={k.lower(): v for k, v in response.getheaders()},
            body=response.read(),
        )
    finally:
        connection.close()


async def http(
    method: str,
    url: str,
    *,
    json: Any = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """Send one request in a worker thread; the answer, whatever its status."""
    headers = dict(headers or {})
    if json is not None:
        body = jsonlib.dumps(json).encode()
        headers.setdefault("Content-Type", "application/json")
    return await anyio.to_thread.run_sync(partial(_request, method, url, body, headers))


def refused(url: str) -> bool:
    """Whether nothing listens at ``url`` any more (a sync check, in a thread)."""
    try:
        _request("GET", url, None, {})
    except ConnectionRefusedError:
        return True
    return False
