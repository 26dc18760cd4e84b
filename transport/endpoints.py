"""What a ZeroMQ endpoint may be, checked before any socket sees it.

libzmq reports a bad endpoint late or not at all: ``connect`` takes
``tcp://127.0.0.1:99999`` and then waits forever, and a typo surfaces as
``EINVAL`` from deep inside an actor's start. Both ends check theirs up front,
so the error names the endpoint and what is wrong with it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import TransportError

__all__ = ["check_endpoint", "endpoint_problem", "is_local"]

_FORMS = "tcp://HOST:PORT, ipc://PATH or inproc://NAME"


def endpoint_problem(endpoint: object, *, bind: bool) -> str | None:
    """What ``endpoint`` should have been (``expected ...``), or None if it is good.

    ``bind``: the endpoint is bound (the broker: ``*`` stands for every
    interface, port ``*`` for a free port), not connected to (a worker).
    """
    if not isinstance(endpoint, str) or "://" not in endpoint:
        return f"a ZeroMQ endpoint: {_FORMS}"
    scheme, rest = endpoint.split("://", 1)
    if scheme in {"ipc", "inproc"}:
        return None if rest else f"{scheme}://{'PATH' if scheme == 'ipc' else 'NAME'}"
    if scheme != "tcp":
        return f"a ZeroMQ endpoint: {_FORMS}"
    host, _, port = rest.rpartition(":")
    if not host or not port or any(char.isspace() for char in host):
        return "tcp://HOST:PORT, with a host and a port"
    if host == "*" and not bind:
        return "tcp://HOST:PORT naming the broker's host (* is for binding)"
    if port == "*":
        return None if bind else "tcp://HOST:PORT with a port from 1 to 65535"
    try:
        parts = urlsplit(f"tcp://{rest}")
        number = parts.port
    except ValueError:
        number = None
    else:
        if parts.path or parts.query or parts.fragment or not parts.hostname:
            return "tcp://HOST:PORT, with nothing after the port"
    if number is None or not 1 <= number <= 65535:
        wildcard = " (or * for a free one)" if bind else ""
        return f"tcp://HOST:PORT with a port from 1 to 65535{wildcard}"
    return None


def is_local(endpoint: str) -> bool:
    """Whether only this machine can reach ``endpoint`` (loopback, ipc, inproc)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme != "tcp":
        return scheme in {"ipc", "inproc"}
    host = rest.rpartition(":")[0].strip("[]")
    return host in {"localhost", "::1"} or host.startswith("127.")


def check_endpoint(endpoint: str, *, bind: bool) -> None:
    """Raise if ``endpoint`` is not one a socket could bind (or connect to).

    Raises:
        TransportError: It is not; the text says what was expected.
    """
    problem = endpoint_problem(endpoint, bind=bind)
    if problem is not None:
        raise TransportError(f"expected {problem}, got {endpoint!r}")
