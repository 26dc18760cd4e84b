"""``config.yaml``: the scheduler's settings, loaded into frozen attrs classes.

The file has the sections ``scheduler``, ``handlers``, ``governors``,
``reporting``, ``store``, ``web`` and ``schedules``. Every section
and every key is optional: an empty file gives the defaults. A section written with
nothing under it (``web:``) counts as empty.

A bad file raises :class:`ConfigError`, whose message is one line naming the file, the
key path and what is wrong::

    config.yaml: governors.rate_limit.rate: expected a number > 0, got 'fast'

cattrs structures the parsed YAML. Its hooks check the shape (a section is a mapping,
a list is a list); the attrs validators judge each value, type and range together, so
a class built in Python is held to the same rules as one loaded from a file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import attrs
import cattrs
import yaml  # stubs: types-PyYAML
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    is_mapping,
    is_sequence,
    mapping_structure_factory,
)
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn

from transport import endpoint_problem

from .errors import ConfigError, SzError

__all__ = [
    "DEFAULT_LEASE",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_CONFIG_NODES",
    "MAX_DRAIN_SECONDS",
    "MAX_LEASE",
    "MAX_RETENTION_DAYS",
    "MIN_TOKEN_CHARS",
    "AdaptiveConfig",
    "BackpressureConfig",
    "BuiltinHandlerModule",
    "ConcurrencyConfig",
    "Config",
    "ConfigError",
    "CurveConfig",
    "GovernorsConfig",
    "HandlerHealthConfig",
    "HandlerLimits",
    "HandlersConfig",
    "MethodLimits",
    "MetricsConfig",
    "RateLimitConfig",
    "ReportingConfig",
    "ScheduleEntry",
    "SchedulerConfig",
    "SchedulerMode",
    "StoreConfig",
    "WebConfig",
    "ZmqConfig",
    "load_config",
    "parse_config",
]

#: The longest ``reporting.metrics.retention_days``: a thousand years. The pruning
#: cut-off, now minus the retention, must be a date Python can hold (year 1 on).
MAX_RETENTION_DAYS = 365_000

#: The largest config file read, in bytes: a config is a few kilobytes, and
#: anything near this is a mistake, not a config.
MAX_CONFIG_BYTES = 2**20

#: The deepest nesting of mappings and lists in a config file. The deepest key
#: is five levels down; schedule arguments may nest further, not without end.
#: Aliases count as what they stand for: nesting an alias deeper is nesting.
MAX_CONFIG_DEPTH = 32

#: The longest ``scheduler.drain_timeout``: an hour. Jobs longer than that are
#: not waited for by a stop; they are taken up at the next start.
MAX_DRAIN_SECONDS = 3600.0

#: The most values (scalars, lists and mappings, keys included) a config file
#: may hold with its aliases expanded: one per byte of :data:`MAX_CONFIG_BYTES`,
#: about as many as a file of that size holds without aliases, so that only an
#: alias bomb (each alias repeating one before it, "billion laughs") passes it.
#: The expanded document is what reaches schedules' arguments, their pickles and
#: every job's arguments.
MAX_CONFIG_NODES = MAX_CONFIG_BYTES

SchedulerMode = Literal["embedded", "distributed"]
SCHEDULER_MODES: tuple[str, ...] = get_args(SchedulerMode)


class _Invalid(SzError, ValueError):
    """A value breaks its rule; ``at`` is its path below the object being built."""

    def __init__(self, expected: str, value: object, *, at: str = "") -> None:
        self.at = at
        self.problem = f"expected {expected}, got {_show(value)}"
        where = at.removeprefix(".")
        super().__init__(f"{where}: {self.problem}" if where else self.problem)


def _show(value: object) -> str:
    """Show a value on one short line, ``null``/``true``/``false`` as YAML says them."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _step(key: object) -> str:
    """The path step to a mapping key: ``.name``, or ``['odd key']``."""
    if isinstance(key, str) and key.isidentifier():
        return f".{key}"
    return f"[{key!r}]"


# Validators. Each states the whole rule, type included, so one message covers
# both "fast" and -1 for a rate.


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    # YAML's .inf and .nan are floats, yet no setting means anything at either.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _rule(
    expected: str, test: Callable[[Any], bool]
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not test(value):
            raise _Invalid(expected, value, at=f".{attribute.name}")

    return check


def _one_of(
    choices: tuple[str, ...],
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    return _rule(f"one of {', '.join(map(repr, choices))}", lambda v: v in choices)


_flag = _rule("true or false", lambda v: isinstance(v, bool))
_positive_number = _rule("a number > 0", lambda v: _is_number(v) and v > 0)
_result_bytes = _rule(
    "a number of bytes from 0 to 16777216",
    lambda v: _is_int(v) and 0 <= v <= 16 * 2**20,
)
_drain_seconds = _rule(
    "a number of seconds from 0 to 3600",
    lambda v: _is_number(v) and 0 <= v <= MAX_DRAIN_SECONDS,
)
_positive_int = _rule("an integer > 0", lambda v: _is_int(v) and v > 0)
_port = _rule("a port from 1 to 65535", lambda v: _is_int(v) and 1 <= v <= 65535)
_host = _rule(
    "a host name or IP address",
    lambda v: isinstance(v, str) and v != "" and v == v.strip(),
)


def _endpoint(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An endpoint the broker can bind (``tcp://127.0.0.1:5555``, port ``*``)."""
    problem = endpoint_problem(value, bind=True)
    if problem is not None:
        raise _Invalid(problem, value, at=f".{attribute.name}")


_database_url = _rule(
    "a database URL such as 'sqlite:///schedulezero.db' or "
    "'postgresql://user@host:port/database'",
    lambda v: isinstance(v, str) and "://" in v,
)
#: The default ``store.lease``, in seconds.
DEFAULT_LEASE = 10.0

#: The longest ``store.lease``: an hour.
MAX_LEASE = 3600.0

#: The characters a node name may hold (it is logged, stored, and shown).
_NODE_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:@"
)

_node_name = _rule(
    "a node name of 1 to 100 letters, digits or '.-_:@'",
    lambda v: isinstance(v, str) and 0 < len(v) <= 100 and set(v) <= _NODE_CHARACTERS,
)
_lease_seconds = _rule(
    f"a number of seconds from 1 to {MAX_LEASE:.0f}",
    lambda v: _is_number(v) and 1 <= v <= MAX_LEASE,
)
_module_name = _rule(
    "a dotted module name",
    lambda v: isinstance(v, str) and all(part.isidentifier() for part in v.split(".")),
)


def _task_names(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise _Invalid("a non-empty list of task names", value, at=f".{attribute.name}")
    for index, name in enumerate(value):
        if not (isinstance(name, str) and name.isidentifier()):
            raise _Invalid("a task name", name, at=f".{attribute.name}[{index}]")


def _handler_names(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    for name in value:
        if not (isinstance(name, str) and name):
            raise _Invalid("a handler name", name, at=f".{attribute.name}{_step(name)}")


# Sections, leaves first.


@attrs.frozen(kw_only=True)
class SchedulerConfig:
    """``scheduler``: where jobs run.

    Attributes:
        mode: ``"embedded"`` (the default) runs the ``handlers.builtin`` functions in
            the scheduler's own process; ``"distributed"`` also accepts remote handler
            processes that register over ZeroMQ at ``handlers.zmq.registration_server``.
        drain_timeout: Seconds a stopping ``sz serve`` lets the jobs running end
            (``ScheduleZero.drain``) before it abandons them, 5 by default; 0 stops
            at once. From 0 to 3,600.
    """

    mode: SchedulerMode = attrs.field(
        default="embedded", validator=_one_of(SCHEDULER_MODES)
    )
    drain_timeout: float = attrs.field(default=5.0, validator=_drain_seconds)


@attrs.frozen(kw_only=True)
class BuiltinHandlerModule:
    """One item of ``handlers.builtin``: functions the scheduler imports and runs.

    Attributes:
        module: The dotted module to import, such as ``"myapp.handlers"``; required.
        methods: The names of the module's functions that become tasks (each
            served by a handler of that name); required, at least one.
    """

    module: str = attrs.field(validator=_module_name)
    methods: tuple[str, ...] = attrs.field(validator=_task_names)


def _worker_keys(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise _Invalid(
            "a non-empty map of worker names to public key files",
            value,
            at=f".{attribute.name}",
        )
    for name, key in value.items():
        if not (isinstance(name, str) and name):
            raise _Invalid("a worker name", name, at=f".{attribute.name}{_step(name)}")
        if not (isinstance(key, str) and key):
            raise _Invalid(
                "the path of a public key file",
                key,
                at=f".{attribute.name}{_step(name)}",
            )


_key_file = _rule(
    "the path of a key file made by 'sz keys generate'",
    lambda v: isinstance(v, str) and v != "",
)


@attrs.frozen(kw_only=True)
class CurveConfig:
    """``handlers.zmq.curve``: workers must prove who they are (CURVE).

    Key files are those ``sz keys generate NAME`` writes: ``NAME.key`` (public)
    and ``NAME.key_secret`` (secret); relative paths are from the working
    directory.

    Attributes:
        server_secret_key: The broker's secret key file; required.
        workers: The only workers admitted: each worker name and its public key
            file; required. A key admits its worker under that name only.
    """

    server_secret_key: str = attrs.field(validator=_key_file)
    workers: Mapping[str, str] = attrs.field(validator=_worker_keys, hash=False)


@attrs.frozen(kw_only=True)
class ZmqConfig:
    """``handlers.zmq``: where remote handler processes register.

    Attributes:
        registration_server: The ZeroMQ endpoint the scheduler binds and workers
            connect to, ``"tcp://127.0.0.1:5555"`` by default (this machine only).
        timeout_seconds: Seconds a job of a task that no handler in this process
            serves waits for a remote worker to take it (while none that serves
            it is registered and free) before it ends as ``no_healthy_handler``,
            60.0 by default.
        heartbeat_seconds: Seconds between heartbeats each way, 1.0 by default.
            Any message counts as one.
        liveness: Heartbeats a worker may miss before it is dead and its jobs go
            to others, 3 by default.
        max_message_bytes: The largest message a worker may send (libzmq's
            ``MAXMSGSIZE``; a larger one drops its connection), 16 MiB by default.
        curve: Authentication of workers by CURVE keys, off by default.
    """

    registration_server: str = attrs.field(
        default="tcp://127.0.0.1:5555", validator=_endpoint
    )
    timeout_seconds: float = attrs.field(default=60.0, validator=_positive_number)
    heartbeat_seconds: float = attrs.field(default=1.0, validator=_positive_number)
    liveness: int = attrs.field(default=3, validator=_positive_int)
    max_message_bytes: int = attrs.field(default=16 * 2**20, validator=_positive_int)
    curve: CurveConfig | None = None


@attrs.frozen(kw_only=True)
class HandlersConfig:
    """``handlers``: the functions that run jobs.

    Attributes:
        builtin: Modules whose functions run in the scheduler's process, none by
            default.
        zmq: Remote handlers' registration, :class:`ZmqConfig`'s defaults by default.
    """

    builtin: tuple[BuiltinHandlerModule, ...] = ()
    zmq: ZmqConfig = attrs.field(factory=ZmqConfig)


@attrs.frozen(kw_only=True)
class RateLimitConfig:
    """``governors.rate_limit``: a token bucket over all jobs.

    Attributes:
        enabled: Whether jobs are rate-limited at all, false by default.
        rate: Jobs started per second on average, 100.0 by default.
        burst: Jobs that may start at once after a quiet spell (the bucket's size),
            200 by default.
    """

    enabled: bool = attrs.field(default=False, validator=_flag)
    rate: float = attrs.field(default=100.0, validator=_positive_number)
    burst: int = attrs.field(default=200, validator=_positive_int)


@attrs.frozen(kw_only=True)
class ConcurrencyConfig:
    """``governors.concurrency``: a cap on jobs running at once.

    Attributes:
        enabled: Whether the cap applies at all, false by default.
        max_concurrent: Jobs running at once over all handlers, 50 by default.
    """

    enabled: bool = attrs.field(default=False, validator=_flag)
    max_concurrent: int = attrs.field(default=50, validator=_positive_int)


@attrs.frozen(kw_only=True)
class HandlerLimits:
    """One entry of ``governors.per_handler_limits``: limits for one handler.

    Attributes:
        rate: Jobs per second this handler starts, ``None`` (the default) for no limit
            of its own.
        burst: Jobs it may start at once after a quiet spell, ``None`` (the default)
            for one second's worth of ``rate``.
        concurrent: Jobs this handler runs at once, ``None`` (the default) for no
            limit of its own.
    """

    rate: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive_number)
    )
    burst: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive_int)
    )
    concurrent: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive_int)
    )


@attrs.frozen(kw_only=True)
class MethodLimits:
    """One entry of ``governors.per_method_limits``: one task's rate.

    The rate is over all of the task's handlers together. (The class and the
    key say "method", an older word for a task, as configs were written.)

    Attributes:
        rate: Jobs of the task started per second.
        burst: Jobs it may start at once after a quiet spell, ``None`` (the default)
            for one second's worth of ``rate``.
    """

    rate: float = attrs.field(validator=_positive_number)
    burst: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive_int)
    )


@attrs.frozen(kw_only=True)
class BackpressureConfig:
    """``governors.backpressure``: when new work is refused.

    Attributes:
        enabled: Whether work is ever refused, true by default.
        high_water: Jobs waiting (for a handler or a governor) at which new
            ``run_now`` calls and schedules are refused with ``Overloaded`` and
            fired jobs are recorded as ``rejected`` (reason ``overloaded``),
            50,000 by default.
        low_water: Jobs waiting at which work is accepted again, 40,000 by default.
    """

    enabled: bool = attrs.field(default=True, validator=_flag)
    high_water: int = attrs.field(default=50_000, validator=_positive_int)
    low_water: int = attrs.field(default=40_000, validator=_positive_int)

    def __attrs_post_init__(self) -> None:
        if self.low_water >= self.high_water:
            raise _Invalid(
                f"a number below high_water ({self.high_water})",
                self.low_water,
                at=".low_water",
            )


@attrs.frozen(kw_only=True)
class AdaptiveConfig:
    """``governors.adaptive``: throttling of rate-limited handlers that suffer.

    A handler with a rate of its own (``per_handler_limits`` or
    ``@sz.handler(rate=...)``) whose failure ratio or mean duration passes its
    threshold has its rate halved (``decrease``), at most once per second; once
    below both it regains ``increase`` of its configured rate per second.

    Attributes:
        enabled: False by default.
        failure_ratio: Failures over the health window's outcomes past which the
            rate falls, 0.2 by default.
        latency_seconds: Mean duration past which the rate falls, ``None`` (the
            default) to watch failures only.
        decrease: What the rate is multiplied by when it falls, 0.5 by default.
        increase: The share of the configured rate regained per second, 0.1 by
            default.
    """

    enabled: bool = attrs.field(default=False, validator=_flag)
    failure_ratio: float = attrs.field(
        default=0.2,
        validator=_rule(
            "a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1
        ),
    )
    latency_seconds: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive_number)
    )
    decrease: float = attrs.field(
        default=0.5,
        validator=_rule(
            "a number between 0 and 1", lambda v: _is_number(v) and 0 < v < 1
        ),
    )
    increase: float = attrs.field(
        default=0.1,
        validator=_rule(
            "a number above 0, at most 1", lambda v: _is_number(v) and 0 < v <= 1
        ),
    )


@attrs.frozen(kw_only=True)
class GovernorsConfig:
    """``governors``: how fast and how much runs.

    Attributes:
        rate_limit: The global token bucket, off by default.
        concurrency: The global cap on running jobs, off by default.
        per_handler_limits: Limits by handler name, on top of the global ones, none
            by default.
        per_method_limits: Rates by task name, over all its handlers,
            none by default.
        backpressure: When new work is refused (on by default).
        adaptive: Throttling of rate-limited handlers that fail or slow down (off
            by default).
    """

    rate_limit: RateLimitConfig = attrs.field(factory=RateLimitConfig)
    concurrency: ConcurrencyConfig = attrs.field(factory=ConcurrencyConfig)
    # A dict is unhashable; leaving it out of the hash keeps equal configs'
    # hashes equal.
    per_handler_limits: Mapping[str, HandlerLimits] = attrs.field(
        factory=dict, validator=_handler_names, hash=False
    )
    per_method_limits: Mapping[str, MethodLimits] = attrs.field(
        factory=dict, validator=_handler_names, hash=False
    )
    backpressure: BackpressureConfig = attrs.field(factory=BackpressureConfig)
    adaptive: AdaptiveConfig = attrs.field(factory=AdaptiveConfig)


@attrs.frozen(kw_only=True)
class HandlerHealthConfig:
    """``reporting.handler_health``: the health monitor.

    Attributes:
        enabled: Whether handlers' health is checked, true by default.
        check_interval_seconds: Seconds between checks, 30.0 by default.
    """

    enabled: bool = attrs.field(default=True, validator=_flag)
    check_interval_seconds: float = attrs.field(
        default=30.0, validator=_positive_number
    )


@attrs.frozen(kw_only=True)
class MetricsConfig:
    """``reporting.metrics``: the execution history.

    Attributes:
        enabled: Whether job attempts are recorded, true by default.
        retention_days: Days a record is kept before it is pruned, 30 by default;
            at most :data:`MAX_RETENTION_DAYS`.
    """

    enabled: bool = attrs.field(default=True, validator=_flag)
    retention_days: int = attrs.field(
        default=30,
        validator=_rule(
            f"an integer from 1 to {MAX_RETENTION_DAYS}",
            lambda v: _is_int(v) and 1 <= v <= MAX_RETENTION_DAYS,
        ),
    )


@attrs.frozen(kw_only=True)
class ReportingConfig:
    """``reporting``: what the scheduler observes and keeps.

    Attributes:
        handler_health: The health monitor, on by default.
        metrics: The execution history, on by default.
    """

    handler_health: HandlerHealthConfig = attrs.field(factory=HandlerHealthConfig)
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)


@attrs.frozen(kw_only=True)
class StoreConfig:
    """``store``: where schedules and job history live.

    Written either as ``store: memory`` or as ``store: {url: ...}``.

    Attributes:
        url: A database URL such as ``"sqlite:///schedulezero.db"`` or
            ``"postgresql://user@host:port/database"``, or ``None``
            (the default, also written ``store: memory``) to keep everything in
            memory and lose it at exit.
        max_result_bytes: The largest result (pickled) a durable store keeps
            with a job's final row, for ``JobHandle.result()`` after a restart;
            a larger one is dropped with a note in the row. 65,536 by default;
            0 keeps none; at most 16 MiB.
        node: This process's name among the nodes sharing a PostgreSQL store
            (``sz serve --node``); None (the default) for ``HOST-PID``. Letters,
            digits and ``.-_:@``, at most 100 characters. A second process
            started with the name of a live node fences that node out.
        lease: Seconds a node's claim on its row and on the schedules it fires
            lasts on the database's clock, 10 by default (from 1 to 3,600). A
            node silent that long is taken over by the others.
        heartbeat: Seconds between a node's renewals of its lease (and its
            look for nodes to take over); a third of ``lease`` if None (the
            default). Must be below ``lease``.
    """

    url: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_database_url)
    )
    max_result_bytes: int = attrs.field(default=64 * 1024, validator=_result_bytes)
    node: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_node_name)
    )
    lease: float = attrs.field(default=DEFAULT_LEASE, validator=_lease_seconds)
    heartbeat: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive_number)
    )

    def __attrs_post_init__(self) -> None:
        if self.heartbeat is not None and self.heartbeat >= self.lease:
            raise _Invalid(
                f"a number of seconds below lease ({self.lease:g})",
                self.heartbeat,
                at=".heartbeat",
            )

    @property
    def heartbeat_seconds(self) -> float:
        """``heartbeat``, or a third of ``lease`` when it is not set."""
        return self.heartbeat if self.heartbeat is not None else self.lease / 3


_web_port = _rule(
    "a port from 0 to 65535 (0: any free port)",
    lambda v: _is_int(v) and 0 <= v <= 65535,
)
#: The shortest ``web.token``: guessing one of 16 random characters is out of
#: reach; "secret" is not.
MIN_TOKEN_CHARS = 16


class _Hidden:
    """Stands for a secret in a message: its length, never its text."""

    def __init__(self, secret: str) -> None:
        self.length = len(secret)

    def __repr__(self) -> str:
        return f"{self.length} characters (not shown)"


def _token(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not (
        isinstance(value, str)
        and len(value) >= MIN_TOKEN_CHARS
        and value.isprintable()
        and not any(c.isspace() for c in value)
    ):
        raise _Invalid(
            f"a token of at least {MIN_TOKEN_CHARS} characters without spaces",
            _Hidden(value) if isinstance(value, str) else value,
            at=f".{attribute.name}",
        )


_body_bytes = _rule(
    "a number of bytes from 1 to 16777216",
    lambda v: _is_int(v) and 1 <= v <= 16 * 2**20,
)


def _host_names(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    for index, name in enumerate(value):
        if not (
            isinstance(name, str)
            and name != ""
            and not any(c.isspace() or c in "/@" for c in name)
        ):
            raise _Invalid(
                "a host name or address, or '*'", name, at=f".{attribute.name}[{index}]"
            )


def _origins(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    for index, origin in enumerate(value):
        scheme, _, rest = (
            origin.partition("://") if isinstance(origin, str) else ("",) * 3
        )
        if not (
            scheme in ("http", "https")
            and rest != ""
            and not any(c.isspace() or c in "/?#@" for c in rest)
        ):
            raise _Invalid(
                "an origin such as 'https://ops.example.com:8443'",
                origin,
                at=f".{attribute.name}[{index}]",
            )


@attrs.frozen(kw_only=True)
class WebConfig:
    """``web``: the HTTP gateway (JSON API under ``/api/``) that ``sz serve`` runs.

    Attributes:
        enabled: Whether ``sz serve`` runs the gateway, true by default
            (``sz serve --no-web`` turns it off for one run).
        host: The address it binds, ``"127.0.0.1"`` by default (this machine only).
            Any other address needs a ``token``: the gateway refuses to start
            without one.
        port: The TCP port it binds, 8080 by default; 0 takes any free port
            (the one taken is logged at start).
        token: The secret every ``/api`` request must bear as
            ``Authorization: Bearer <token>``, at least 16 characters; None (the
            default) asks for none, allowed on a loopback address only.
        allowed_hosts: The host names a request's ``Host`` header may name
            (against DNS rebinding), ``"*"`` for any; None (the default) for
            ``localhost``, ``127.0.0.1``, ``::1`` and ``host``.
        allow_origins: Origins besides the gateway's own (such as
            ``"https://ops.example.com"``) whose pages may send requests that
            change state, none by default. No CORS headers are sent either way.
        mutations: Whether requests may kill or restart actors and change or
            delete schedules, true by default; false leaves the gateway
            read-only for them.
        max_body_bytes: The largest request body taken, 65,536 bytes by
            default (413 past it); from 1 to 16 MiB.
    """

    enabled: bool = attrs.field(default=True, validator=_flag)
    host: str = attrs.field(default="127.0.0.1", validator=_host)
    port: int = attrs.field(default=8080, validator=_web_port)
    token: str | None = attrs.field(default=None, validator=_token, repr=False)
    allowed_hosts: tuple[str, ...] | None = attrs.field(
        default=None, validator=_host_names
    )
    allow_origins: tuple[str, ...] = attrs.field(default=(), validator=_origins)
    mutations: bool = attrs.field(default=True, validator=_flag)
    max_body_bytes: int = attrs.field(default=64 * 1024, validator=_body_bytes)


_INTERVAL_UNITS = ("weeks", "days", "hours", "minutes", "seconds")


def _interval(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not value:
        raise _Invalid(
            f"a mapping of {', '.join(_INTERVAL_UNITS)}", value, at=f".{attribute.name}"
        )
    for unit, amount in value.items():
        if unit not in _INTERVAL_UNITS:
            raise _Invalid(
                f"one of {', '.join(_INTERVAL_UNITS)}",
                unit,
                at=f".{attribute.name}{_step(unit)}",
            )
        if not (_is_number(amount) and amount > 0):
            raise _Invalid("a number > 0", amount, at=f".{attribute.name}.{unit}")


_text = _rule("a non-empty string", lambda v: isinstance(v, str) and v.strip() != "")
_crontab = _rule(
    "a crontab line of five fields, such as '*/5 * * * *'",
    lambda v: v is None or (isinstance(v, str) and len(v.split()) == 5),
)


@attrs.frozen(kw_only=True)
class ScheduleEntry:
    """One item of ``schedules``: a schedule the scheduler adds (or replaces) at start.

    Exactly one of ``cron`` and ``interval`` says when it fires.

    Attributes:
        id: The schedule's id; required, unique.
        task: The task it runs; required.
        cron: A crontab line, such as ``"*/5 * * * *"``.
        interval: Every so long: ``{minutes: 5}`` (``weeks``, ``days``, ``hours``,
            ``minutes``, ``seconds``).
        args: Keyword arguments of each job, none by default.
        paused: Added paused, false by default.
    """

    id: str = attrs.field(validator=_text)
    task: str = attrs.field(validator=_text)
    cron: str | None = attrs.field(default=None, validator=_crontab)
    interval: Mapping[str, float] | None = attrs.field(
        default=None, validator=_interval, hash=False
    )
    args: Mapping[str, Any] | None = attrs.field(default=None, hash=False)
    paused: bool = attrs.field(default=False, validator=_flag)

    def __attrs_post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise _Invalid("exactly one of cron and interval", None, at=".cron")


def _unique_ids(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    seen: set[str] = set()
    for index, entry in enumerate(value):
        if entry.id in seen:
            raise _Invalid("a unique id", entry.id, at=f".{attribute.name}[{index}].id")
        seen.add(entry.id)


@attrs.frozen(kw_only=True)
class Config:
    """The whole ``config.yaml``; each section has its class's defaults when absent.

    Attributes:
        scheduler: Where jobs run.
        handlers: The functions that run jobs.
        governors: How fast and how much runs.
        reporting: What the scheduler observes and keeps.
        store: Where schedules and job history live, memory by default.
        web: The HTTP gateway, on by default (for ``sz serve``).
        schedules: Schedules added (or replaced, by id) at every start, none by
            default.
    """

    scheduler: SchedulerConfig = attrs.field(factory=SchedulerConfig)
    handlers: HandlersConfig = attrs.field(factory=HandlersConfig)
    governors: GovernorsConfig = attrs.field(factory=GovernorsConfig)
    reporting: ReportingConfig = attrs.field(factory=ReportingConfig)
    store: StoreConfig = attrs.field(factory=StoreConfig)
    web: WebConfig = attrs.field(factory=WebConfig)
    schedules: tuple[ScheduleEntry, ...] = attrs.field(
        default=(), validator=_unique_ids
    )


# Structuring.

_Hook = Callable[[Any, Any], Any]


def _as_is(value: object, _type: object) -> object:
    # The field's validator judges the value, type included, so that its message
    # can say "> 0" too. An int stays an int where a float is expected: converting
    # it first would turn the -1 the file says into -1.0 in the message.
    return value


def _shape_checked(
    accepts: Callable[[object], bool], expected: str, empty: object, structure: _Hook
) -> _Hook:
    """Check a value's shape before cattrs iterates it (a string is iterable too).

    ``None`` (a key with nothing under it) stands for ``empty``.
    """

    def check(value: object, type_: object) -> object:
        if value is None:
            value = empty
        if not accepts(value):
            raise _Invalid(expected, value)
        return structure(value, type_)

    return check


def _is_literal(type_: object) -> bool:
    return get_origin(type_) is Literal


def _is_mapping(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple)


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    for type_ in (str, int, float, bool):
        converter.register_structure_hook(type_, _as_is)
    converter.register_structure_hook_factory(_is_literal, lambda _t: _as_is)
    converter.register_structure_hook_factory(
        attrs.has,
        lambda t: _shape_checked(
            _is_mapping, "a mapping", {}, make_dict_structure_fn(t, converter)
        ),
    )
    converter.register_structure_hook_factory(
        is_sequence,
        lambda t: _shape_checked(
            _is_list, "a list", [], homogenous_tuple_structure_factory(t, converter)
        ),
    )
    converter.register_structure_hook_factory(
        is_mapping,
        lambda t: _shape_checked(
            _is_mapping, "a mapping", {}, mapping_structure_factory(t, converter)
        ),
    )
    store_fields = make_dict_structure_fn(StoreConfig, converter)

    def structure_store(value: object, type_: object) -> StoreConfig:
        if value is None or value == "memory":
            return StoreConfig()
        if not isinstance(value, Mapping):
            raise _Invalid("'memory' or a mapping with a url", value)
        store: StoreConfig = store_fields(value, type_)
        return store

    converter.register_structure_hook(StoreConfig, structure_store)
    return converter


_CONVERTER = _converter()


def _problems(error: BaseException, path: str) -> Iterator[tuple[str, str]]:
    """Yield ``(key_path, problem)`` for each failure in a cattrs error tree."""
    if isinstance(error, ClassValidationError):
        named, unnamed = error.group_exceptions()
        for sub, attribute in named:
            yield from _problems(sub, f"{path}.{attribute.name}")
        for sub in unnamed:
            yield from _problems(sub, path)
    elif isinstance(error, IterableValidationError):
        indexed, unindexed = error.group_exceptions()
        for sub, item in indexed:
            step = f"[{item.index}]" if _is_int(item.index) else _step(item.index)
            yield from _problems(sub, path + step)
        for sub in unindexed:
            yield from _problems(sub, path)
    elif isinstance(error, ForbiddenExtraKeysError):
        known = ", ".join(sorted(field.name for field in attrs.fields(error.cl)))
        for key in sorted(error.extra_fields, key=str):
            yield (
                (path + _step(key)).removeprefix("."),
                f"unknown key (expected one of: {known})",
            )
    elif isinstance(error, _Invalid):
        yield (path + error.at).removeprefix("."), error.problem
    elif isinstance(error, KeyError):
        yield path.removeprefix("."), "required key missing"
    else:  # Not raised by any hook or validator here; said on one line all the same.
        yield path.removeprefix("."), " ".join(f"invalid value ({error})".split())


def parse_config(data: object, *, source: str = "<config>") -> Config:
    """Build a :class:`Config` from already-parsed YAML data.

    Args:
        data: What ``yaml.safe_load`` returned: a mapping of sections, or ``None``
            for an empty file (all defaults).
        source: Where ``data`` came from, named at the start of error messages;
            ``"<config>"`` by default.

    Returns:
        The configuration, every absent key at its default.

    Raises:
        ConfigError: A key is unknown or a value has the wrong type or a bad value;
            its message names each such key's path and what is wrong.
    """
    try:
        return _CONVERTER.structure(data, Config)
    except (
        ClassValidationError,
        IterableValidationError,
        ForbiddenExtraKeysError,
        _Invalid,
    ) as error:
        raise ConfigError(source, tuple(_problems(error, ""))) from None


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter where a config must be.

    A key written twice is an error (PyYAML keeps the last, silently dropping
    the first), and nesting stops at :data:`MAX_CONFIG_DEPTH` (composing is
    recursive: a file of ten thousand ``[`` would exhaust the stack). Aliases are
    measured as what they stand for: the document they expand to may hold no more
    than :data:`MAX_CONFIG_NODES` values nor nest deeper than
    :data:`MAX_CONFIG_DEPTH`, and an alias inside its own anchor is refused (its
    value would be endless). PyYAML composes an alias as the node it names, so
    loading costs nothing; what expands is everything after (arguments pickled,
    packed for a worker, shown as JSON).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        #: Each node composed: its values and its depth with aliases expanded.
        self._measures: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            if self._depth > MAX_CONFIG_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_CONFIG_DEPTH} levels", mark
                )
            alias = self.check_event(yaml.AliasEvent)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._measure(node, mark, alias=alias)
        return node

    def _measure(self, node: yaml.Node, mark: yaml.Mark, *, alias: bool) -> None:
        """Refuse ``node`` if, aliases expanded, it is too large or too deep."""
        measures = self._measures
        if alias:
            if id(node) not in measures:
                # Its anchor is still being composed: the alias is inside it.
                raise yaml.composer.ComposerError(
                    None, None, "an alias inside its own anchor: endless", mark
                )
            return  # counted where it is used, by the node holding it
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        values, depth = 1, 0
        for child in children:
            # Every child was composed, hence measured, before its parent.
            child_values, child_depth = measures[id(child)]
            values += child_values
            depth = max(depth, child_depth)
        depth += 1
        if values > MAX_CONFIG_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"more than {MAX_CONFIG_NODES} values with its aliases expanded",
                mark,
            )
        if depth > MAX_CONFIG_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nested deeper than {MAX_CONFIG_DEPTH} levels with its aliases "
                "expanded",
                mark,
            )
        measures[id(node)] = (values, depth)

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *defaults`` is meant to be overridden
            key = self.construct_object(key_node, deep=deep)
            try:
                first = lines.get(key)
            except TypeError:
                continue  # unhashable: PyYAML's own check says so
            lines[key] = key_node.start_mark.line
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {_show(key)} (first on line {first + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _read_text(path: str | os.PathLike[str], source: str) -> str:
    """The file's text, refused unread past :data:`MAX_CONFIG_BYTES`."""
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(source, (("", "no such file"),)) from None
    except OSError as error:
        problem = f"cannot read the file ({error.strerror or error})"
        raise ConfigError(source, (("", problem),)) from None
    if len(data) > MAX_CONFIG_BYTES:
        problem = f"larger than {MAX_CONFIG_BYTES} bytes: not a config file"
        raise ConfigError(source, (("", problem),))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text (byte {error.start})"
        raise ConfigError(source, (("", problem),)) from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read a ``config.yaml`` file (UTF-8) and build a :class:`Config` from it.

    Args:
        path: The file to read.

    Returns:
        The configuration, every absent key at its default.

    Raises:
        ConfigError: The file is missing or unreadable, larger than
            :data:`MAX_CONFIG_BYTES`, is not valid YAML, repeats a key in a mapping
            or nests deeper than :data:`MAX_CONFIG_DEPTH` (the message gives the
            line and column), or does not describe a valid configuration (see
            :func:`parse_config`).
    """
    source = os.fspath(path)
    text = _read_text(path, source)
    try:
        data = yaml.load(text, Loader=_ConfigLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(
            f"{where}invalid YAML: {error.problem or error.context}".split()
        )
        raise ConfigError(source, (("", problem),)) from None
    except yaml.YAMLError as error:
        problem = " ".join(f"invalid YAML: {error}".split())
        raise ConfigError(source, (("", problem),)) from None
    return parse_config(data, source=source)
