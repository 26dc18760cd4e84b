"""What a ZeroMQ endpoint may be, checked before any socket sees it.

libzmq reports a bad endpoint late or not at all: ``connect`` takes
``tcp://127.0.0.1:99999`` and then waits forever, and a typo surfaces as
``EINVAL`` from deep inside an actor's start. Both ends check theirs up front,
so the error names the endpoint and what is wrong with it.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from .errors import TransportError

__all__ = ["check_endpoint", "endpoint_problem", "is_local"]

_FORMS = "tcp://HOST:PORT, ipc://PATH or inproc://NAME"

#: One label of a host name (RFC 1123): letters, digits and inner hyphens; and
#: underscores, which container networks' names have and their DNS resolves.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def _host_problem(host: str, *, bind: bool) -> str | None:
    """What a TCP endpoint's host should have been, or None if it can exist.

    An address that cannot exist (``999.1.1.1``, ``[::g]``, a name with an empty
    label) is refused here; libzmq would take it and fail only when resolving.
    """
    if host == "*":
        return (
            None
            if bind
            else "tcp://HOST:PORT naming the broker's host (* is for binding)"
        )
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "tcp://[IPV6]:PORT with an IPv6 address in the brackets"
        return None
    if all(char.isdigit() or char == "." for char in host):
        # Digits and dots are an IPv4 address, all four parts of it.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "tcp://HOST:PORT with an IPv4 address of four numbers from 0 to 255"
        return None
    name = host.removesuffix(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return (
            "tcp://HOST:PORT with a host name of letters, digits, hyphens, "
            "underscores and dots (labels of 1 to 63 characters)"
        )
    return None


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
    problem = _host_problem(host, bind=bind)
    if problem is not None:
        return problem
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
