"""ZeroMQ transport for remote handler workers: sockets for AnyIO, the protocol."""

from __future__ import annotations

from .auth import (
    ZAP_DOMAIN as ZAP_DOMAIN,
    WorkerKeys as WorkerKeys,
    secure_server as secure_server,
    serve_zap as serve_zap,
)
from .endpoints import (
    check_endpoint as check_endpoint,
    endpoint_problem as endpoint_problem,
    is_local as is_local,
)
from .errors import (
    KeyFileError as KeyFileError,
    PeerGone as PeerGone,
    ProtocolError as ProtocolError,
    TransportError as TransportError,
)
from .faultproxy import (
    FaultProxy as FaultProxy,
    LinkCounters as LinkCounters,
    ProxyCounters as ProxyCounters,
)
from .keys import (
    generate_keys as generate_keys,
    load_public_key as load_public_key,
    load_secret_key as load_secret_key,
)
from .protocol import (
    MAX_CAPACITY as MAX_CAPACITY,
    MAX_ERROR as MAX_ERROR,
    MAX_HEARTBEAT as MAX_HEARTBEAT,
    MAX_INCARNATION as MAX_INCARNATION,
    MAX_JOB_ID as MAX_JOB_ID,
    MAX_NAME as MAX_NAME,
    MAX_REASON as MAX_REASON,
    MAX_TASKS as MAX_TASKS,
    MAX_TRACEBACK as MAX_TRACEBACK,
    MIN_HEARTBEAT as MIN_HEARTBEAT,
    PROTOCOL as PROTOCOL,
    WORKER_NAME as WORKER_NAME,
    WORKER_NAME_RULE as WORKER_NAME_RULE,
    Disconnect as Disconnect,
    Heartbeat as Heartbeat,
    JobRequest as JobRequest,
    JobResult as JobResult,
    Message as Message,
    Ready as Ready,
    decode as decode,
    decode_all as decode_all,
    decode_body as decode_body,
    encode as encode,
    encode_batches as encode_batches,
    encode_body as encode_body,
)
from .router_dealer import Dealer as Dealer, Router as Router
from .socket import Socket as Socket

__all__ = [
    "MAX_CAPACITY",
    "MAX_ERROR",
    "MAX_HEARTBEAT",
    "MAX_INCARNATION",
    "MAX_JOB_ID",
    "MAX_NAME",
    "MAX_REASON",
    "MAX_TASKS",
    "MAX_TRACEBACK",
    "MIN_HEARTBEAT",
    "PROTOCOL",
    "WORKER_NAME",
    "WORKER_NAME_RULE",
    "ZAP_DOMAIN",
    "Dealer",
    "Disconnect",
    "FaultProxy",
    "Heartbeat",
    "JobRequest",
    "JobResult",
    "KeyFileError",
    "LinkCounters",
    "Message",
    "PeerGone",
    "ProtocolError",
    "ProxyCounters",
    "Ready",
    "Router",
    "Socket",
    "TransportError",
    "WorkerKeys",
    "check_endpoint",
    "decode",
    "decode_all",
    "decode_body",
    "encode",
    "encode_batches",
    "encode_body",
    "endpoint_problem",
    "generate_keys",
    "is_local",
    "load_public_key",
    "load_secret_key",
    "secure_server",
    "serve_zap",
]
