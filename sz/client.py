"""A client of a running ScheduleZero's HTTP API, for the ``sz`` remote commands.

``sz status``, ``sz schedules``, ``sz jobs``, ``sz history``, ``sz handlers``,
``sz actors`` and ``sz kill`` ask a running ``sz serve`` through its gateway
(``/api/...``), as tables for people or ``--json`` for scripts. The standard
library's ``urllib`` is enough: one request per command, nothing to keep open.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from .errors import SzError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["DEFAULT_URL", "GatewayClient", "GatewayError"]

#: Where ``sz serve`` serves its gateway by default.
DEFAULT_URL = "http://127.0.0.1:8080"

#: Seconds a command waits for the server's answer.
TIMEOUT = 10.0

#: Seconds a stream of events may stay silent (the server pings every 15 s).
STREAM_TIMEOUT = 60.0


class GatewayError(SzError):
    """The server is not there, refused the request, or answered an error.

    Attributes:
        status: The HTTP status, or None when no answer came.
        detail: The server's own message (an error body's), or None.
    """

    def __init__(
        self, message: str, *, status: int | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class GatewayClient:
    """Requests to one server's API.

    Args:
        url: The server's base URL, such as ``http://127.0.0.1:8080``.
        token: The API token (``Authorization: Bearer``), if the server has one.
    """

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise GatewayError(f"--url: expected http://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self.token = token

    def get(self, path: str, **query: Any) -> Any:
        """GET ``/api/<path>`` with the query's non-None values; the JSON answer."""
        given = {k: v for k, v in query.items() if v is not None}
        suffix = f"?{urllib.parse.urlencode(given)}" if given else ""
        return self.request("GET", f"{path}{suffix}")

    def post(self, path: str, body: Any = None) -> Any:
        """POST to ``/api/<path>`` (a JSON body if given); the JSON answer."""
        return self.request("POST", path, body)

    def delete(self, path: str) -> Any:
        """DELETE ``/api/<path>``; the JSON answer (None when there is none)."""
        return self.request("DELETE", path)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request; the decoded JSON answer, None for an empty one.

        Raises:
            GatewayError: No server answered at the URL, or it answered an
                error status (its message in the error's text).
        """
        with self._open(method, path, body, TIMEOUT) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def text(self, path: str) -> str:
        """GET ``/api/<path>``: the answer as text (a CSV export, say).

        Raises:
            GatewayError: As ``request`` does.
        """
        with self._open("GET", path, None, TIMEOUT) as answer:
            raw: bytes = answer.read()
        return raw.decode("utf-8")

    def events(self, path: str) -> Iterator[tuple[str, Any]]:
        """GET ``/api/<path>``, a stream of Server-Sent Events: each as (name, data).

        Each event's data is decoded from its one line of JSON. The iterator
        ends when the server ends the stream.

        Raises:
            GatewayError: As ``request`` does, and when the stream breaks or
                stays silent for ``STREAM_TIMEOUT`` seconds.
        """
        with self._open("GET", path, None, STREAM_TIMEOUT) as answer:
            fields: dict[str, str] = {}
            try:
                for raw in answer:
                    line = raw.decode("utf-8").rstrip("\r\n")
                    if line:
                        if not line.startswith(":"):
                            name, _, value = line.partition(":")
                            fields[name] = value.removeprefix(" ")
                        continue
                    if "event" in fields and "data" in fields:
                        yield fields["event"], json.loads(fields["data"])
                    fields = {}
            except (OSError, ValueError) as error:
                raise GatewayError(
                    f"the stream of {self.url}/api/{path} broke: {error}"
                ) from None

    @contextlib.contextmanager
    def _open(self, method: str, path: str, body: Any, timeout: float) -> Iterator[Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/api/{path.lstrip('/')}", data=data, method=method
        )
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            answer = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            said = _message(error.read()) or error.reason
            raise GatewayError(
                f"{method} {path}: {error.code} {said}",
                status=error.code,
                detail=said,
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise GatewayError(
                f"no ScheduleZero answers at {self.url} ({reason}): is `sz serve` "
                "running, with its gateway on?"
            ) from None
        with answer:
            yield answer


def _message(raw: bytes) -> str:
    """The message of an error body (``{"error": {"message": ...}}``), if any."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:200]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, str):
                return message
    return ""
