"""CURVE with a key allow-list, on asyncio and trio: the known key gets through
under its listed name, an unknown key never does."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import zmq
from zmq.utils.monitor import parse_monitor_message

from transport import Socket
from transport.auth import WorkerKeys, secure_server, serve_zap

if TYPE_CHECKING:
    import pytest

HANG = 20

Context = zmq.Context[zmq.Socket[bytes]]

#: Every way a handshake ends, success included.
HANDSHAKE_ENDS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


def client(ctx: Context, server_public: bytes, keys: tuple[bytes, bytes]) -> Socket:
    public, secret = keys
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    raw.setsockopt(zmq.CURVE_PUBLICKEY, public)
    raw.setsockopt(zmq.CURVE_SECRETKEY, secret)
    return Socket(raw)


async def test_a_listed_key_gets_through_named_and_an_unlisted_one_is_refused(
    context: Context,
) -> None:
    server_public, server_secret = zmq.curve_keypair()
    known, stranger = zmq.curve_keypair(), zmq.curve_keypair()
    keys = WorkerKeys(context, {known[0]: "mailer"})
    # Bound before the server is: a handshake finding no handler fails closed.
    keys.start()
    with anyio.fail_after(HANG):
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve_zap, keys)
            raw = context.socket(zmq.ROUTER)
            secure_server(raw, server_secret)
            port = raw.bind_to_random_port("tcp://127.0.0.1")
            endpoint = f"tcp://127.0.0.1:{port}"
            async with Socket(raw) as broker:
                # The stranger's handshake is refused: its monitor says so.
                outsider = client(context, server_public, stranger)
                monitor = Socket(outsider.zmq.get_monitor_socket(HANDSHAKE_ENDS))
                outsider.zmq.connect(endpoint)
                await outsider.send([b"let me in"])
                event = parse_monitor_message(await monitor.receive())
                assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
                outsider.zmq.disable_monitor()
                monitor.close()
                # The known worker's message arrives, under its listed name.
                insider = client(context, server_public, known)
                insider.zmq.connect(endpoint)
                await insider.send([b"READY"])
                frames, user = await broker.receive_from()
                assert frames[1:] == [b"READY"]
                assert user == "mailer"
                outsider.close()
                insider.close()
            tg.cancel_scope.cancel()


async def test_without_the_zap_handler_a_secured_server_admits_no_one(
    context: Context,
) -> None:
    """ZAP_ENFORCE_DOMAIN: with no handler answering, the server fails closed."""
    server_public, server_secret = zmq.curve_keypair()
    raw = context.socket(zmq.ROUTER)
    secure_server(raw, server_secret)
    port = raw.bind_to_random_port("tcp://127.0.0.1")
    async with Socket(raw):
        outsider = client(context, server_public, zmq.curve_keypair())
        monitor = Socket(outsider.zmq.get_monitor_socket(HANDSHAKE_ENDS))
        outsider.zmq.connect(f"tcp://127.0.0.1:{port}")
        with anyio.fail_after(HANG):
            event = parse_monitor_message(await monitor.receive())
        assert event["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED, event
        outsider.zmq.disable_monitor()
        monitor.close()
        outsider.close()


async def test_refused_handshakes_are_counted_and_warned_of_once_per_interval(
    context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator sees a misconfigured worker, or someone trying keys: every
    refusal counted, the first warned of with its address and key, the rest of
    the interval folded into the next warning."""
    caplog.set_level(logging.WARNING, logger="transport.auth")
    server_public, server_secret = zmq.curve_keypair()
    keys = WorkerKeys(context, {zmq.curve_keypair()[0]: "mailer"})
    keys.start()
    strangers = [zmq.curve_keypair() for _ in range(3)]
    with anyio.fail_after(HANG):
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve_zap, keys)
            raw = context.socket(zmq.ROUTER)
            secure_server(raw, server_secret)
            port = raw.bind_to_random_port("tcp://127.0.0.1")
            async with Socket(raw):
                for stranger in strangers:
                    outsider = client(context, server_public, stranger)
                    monitor = Socket(outsider.zmq.get_monitor_socket(HANDSHAKE_ENDS))
                    outsider.zmq.connect(f"tcp://127.0.0.1:{port}")
                    event = parse_monitor_message(await monitor.receive())
                    assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    outsider.zmq.disable_monitor()
                    monitor.close()
                    outsider.close()
            tg.cancel_scope.cancel()
    # A refused DEALER may try once more before it is closed: at least three.
    assert keys.refused >= 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "transport.auth"]
    assert warnings == [
        (
            f"refused a CURVE handshake from 127.0.0.1: key {strangers[0][0].decode()} "
            "is not a listed worker's"
        )
    ]
