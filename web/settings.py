"""How the gateway listens and whom it lets in: ``GatewaySettings``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from sz.config import MIN_TOKEN_CHARS

if TYPE_CHECKING:
    from sz.config import WebConfig

__all__ = ["SETTINGS", "GatewaySettings"]

#: The names a browser on this machine reaches a loopback gateway by.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _port(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool)) or not (
        0 <= value <= 65535
    ):
        raise ValueError(
            f"{attribute.name}: expected a port from 0 to 65535, got {value!r}"
        )


def _token(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not (
        isinstance(value, str)
        and len(value) >= MIN_TOKEN_CHARS
        and value.isprintable()
        and not any(c.isspace() for c in value)
    ):
        # Never the value: it is a secret, even a bad one.
        raise ValueError(
            f"{attribute.name}: expected a token of at least {MIN_TOKEN_CHARS} "
            "characters without spaces"
        )


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool)) or value < 1:
        raise ValueError(f"{attribute.name}: expected an integer > 0, got {value!r}")


def _seconds(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < float("inf")
    ):
        raise ValueError(
            f"{attribute.name}: expected a number of seconds > 0, got {value!r}"
        )


def _names(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _origins(value: Any) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class GatewaySettings:
    """Where the gateway listens, and the rules every request must pass.

    The config's ``web`` section (``WebConfig``) says the same for ``sz
    serve``; :meth:`from_config` turns one into the other.

    Attributes:
        host: The address to bind, ``"127.0.0.1"`` by default. Any address but a
            loopback one needs a ``token``: ``serve`` refuses to start without.
        port: The TCP port, 8080 by default; 0 takes a free one (``serve``
            yields the URL with the port taken).
        token: The secret every ``/api`` request must bear as ``Authorization:
            Bearer <token>`` (compared in constant time), at least 16 characters;
            None (the default) asks for none. Not shown by ``repr``.
        allowed_hosts: The host names a request's ``Host`` header may name, its
            port aside (DNS rebinding: a page of another site reaching this one
            through a name of its own), ``"*"`` for any; None (the default) for
            ``localhost``, ``127.0.0.1``, ``::1`` and ``host``.
        allow_origins: Origins (``"https://ops.example.com"``) whose pages may
            send requests that change state (POST, PUT, PATCH, DELETE), besides
            the gateway's own; none by default. The gateway sends no CORS
            headers whatever this says.
        mutations: Whether requests may kill or restart actors and change or
            delete schedules, true by default.
        max_body_bytes: The largest request body taken, 65,536 bytes by default;
            a larger one is refused with 413.
        events_interval: How often the event stream (``/api/events``) reads
            the scheduler's state and sends what changed, every 0.5 seconds by
            default: however many jobs run, a client gets at most one event of
            each kind per interval.
        events_heartbeat: Seconds between the comment lines (``: ping``) the
            event stream sends whatever else it sends, 15 by default, so that
            proxies do not close a quiet stream as idle.
        events_write_timeout: Seconds one write to an event stream may wait for
            its client to read, 5 by default; a client slower than that is
            dropped rather than buffered for.
    """

    host: str = attrs.field(default="127.0.0.1", validator=attrs.validators.min_len(1))
    port: int = attrs.field(default=8080, validator=_port)
    token: str | None = attrs.field(default=None, validator=_token, repr=False)
    allowed_hosts: tuple[str, ...] | None = attrs.field(default=None, converter=_names)
    allow_origins: tuple[str, ...] = attrs.field(default=(), converter=_origins)
    mutations: bool = attrs.field(
        default=True, validator=attrs.validators.instance_of(bool)
    )
    max_body_bytes: int = attrs.field(default=64 * 1024, validator=_positive)
    events_interval: float = attrs.field(default=0.5, validator=_seconds)
    events_heartbeat: float = attrs.field(default=15.0, validator=_seconds)
    events_write_timeout: float = attrs.field(default=5.0, validator=_seconds)

    @classmethod
    def from_config(cls, config: WebConfig) -> GatewaySettings:
        """The settings a config's ``web`` section describes."""
        return cls(
            host=config.host,
            port=config.port,
            token=config.token,
            allowed_hosts=config.allowed_hosts,
            allow_origins=config.allow_origins,
            mutations=config.mutations,
            max_body_bytes=config.max_body_bytes,
        )

    def host_names(self) -> frozenset[str] | None:
        """The ``Host`` names let in, lower-cased; None lets in any (``"*"``)."""
        names = self.allowed_hosts
        if names is None:
            names = (*LOOPBACK_NAMES, self.host)
        if "*" in names:
            return None
        return frozenset(_bare(name) for name in names)


#: The gateway's settings in its application, for handlers that need them
#: (``mutations``, the event stream's pace).
SETTINGS: web.AppKey[GatewaySettings] = web.AppKey("settings", GatewaySettings)


def _bare(host: str) -> str:
    """A host name as the ``Host`` check compares it: lower case, no brackets."""
    return host.lower().removeprefix("[").removesuffix("]")
