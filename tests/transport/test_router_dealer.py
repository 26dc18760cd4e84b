"""The broker's ROUTER end drops a connection that never finishes its handshake."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from transport import Router, router_dealer

if TYPE_CHECKING:
    import pytest

#: How long the test waits for the broker to drop the silent connection.
PATIENCE = 10.0


async def test_a_connection_that_never_shakes_hands_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A half-open connection (a scan, a stuck client) costs the broker a
    socket only for ``HANDSHAKE_SECONDS``, not libzmq's 30 s."""
    monkeypatch.setattr(router_dealer, "HANDSHAKE_SECONDS", 0.2)
    router = Router("tcp://127.0.0.1:*")
    try:
        port = int(router.endpoint.rpartition(":")[2])
        async with await anyio.connect_tcp("127.0.0.1", port) as silent:
            received = b""
            with anyio.fail_after(PATIENCE):
                # ZMTP's greeting comes, then nothing: the connection ends.
                while True:
                    try:
                        received += await silent.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        break
        assert received.startswith(b"\xff")  # the start of a ZMTP greeting
    finally:
        router.close()
