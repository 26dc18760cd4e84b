"""The names ``transport`` promises: sockets for AnyIO, SZP1, CURVE, endpoints."""

from __future__ import annotations

import importlib
import inspect

import attrs
import pytest

import transport

PUBLIC = {
    # sockets for AnyIO, and the two ends of a worker connection
    "Socket",
    "Router",
    "Dealer",
    # SZP1: its frames and codec
    "PROTOCOL",
    "Message",
    "Ready",
    "JobRequest",
    "JobResult",
    "Heartbeat",
    "Disconnect",
    "encode",
    "encode_batches",
    "encode_body",
    "decode",
    "decode_all",
    "decode_body",
    "WORKER_NAME",
    "WORKER_NAME_RULE",
    "MIN_HEARTBEAT",
    "MAX_HEARTBEAT",
    "MAX_HELD",
    "MAX_CAPACITY",
    "MAX_TASKS",
    "MAX_TRACEBACK",
    "MAX_NAME",
    "MAX_INCARNATION",
    "MAX_JOB_ID",
    "MAX_ERROR",
    "MAX_HEADER",
    "MAX_REASON",
    # CURVE and its keys
    "ZAP_DOMAIN",
    "WorkerKeys",
    "secure_server",
    "serve_zap",
    "generate_keys",
    "load_public_key",
    "load_secret_key",
    # endpoints
    "check_endpoint",
    "endpoint_problem",
    "is_local",
    # a relay that breaks a worker's link, for scenario runs
    "FaultProxy",
    "ProxyCounters",
    "LinkCounters",
    # errors
    "TransportError",
    "ProtocolError",
    "KeyFileError",
    "PeerGone",
}

FRAMES = [
    transport.Ready,
    transport.JobRequest,
    transport.JobResult,
    transport.Heartbeat,
    transport.Disconnect,
]


def test_all_lists_exactly_the_public_names() -> None:
    assert len(transport.__all__) == len(set(transport.__all__))
    assert set(transport.__all__) == PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_is_importable_from_the_package(name: str) -> None:
    assert getattr(importlib.import_module("transport"), name) is not None


@pytest.mark.parametrize("frame", FRAMES)
def test_every_frame_is_frozen_and_names_its_command(frame: type) -> None:
    command = frame.COMMAND  # type: ignore[attr-defined]
    assert isinstance(command, bytes)
    assert len(command) == 1
    blank: object = object.__new__(frame)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(blank, "anything", None)  # noqa: B010


def test_every_frame_has_its_own_command() -> None:
    commands = [frame.COMMAND for frame in FRAMES]  # type: ignore[attr-defined]
    assert len(set(commands)) == len(FRAMES)


def test_socket_calls_that_wait_are_async_and_their_twins_are_not() -> None:
    for name in ("send", "receive", "receive_from", "receive_many", "aclose"):
        assert inspect.iscoroutinefunction(getattr(transport.Socket, name)), name
    for name in ("try_send", "close"):
        assert not inspect.iscoroutinefunction(getattr(transport.Socket, name)), name
