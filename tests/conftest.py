from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import zmq
from blockbuster import BlockBuster, blockbuster_ctx
from hypothesis import settings

if TYPE_CHECKING:
    from collections.abc import Iterator

# Hypothesis's per-example deadline (200 ms) is a speed check inside a unit test:
# on a loaded 2-core machine it failed a protocol test whose behaviour was right.
# Speed is measured in benchmarks/, never asserted here.
settings.register_profile("sz", deadline=None)
settings.load_profile("sz")


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Every async test runs on asyncio and on trio, named explicitly."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test whose code makes a blocking call on the event loop."""
    with blockbuster_ctx() as bb:
        yield bb


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    """A ZeroMQ context for raw sockets; destroyed after the test, closing what a
    failed test left open (LINGER 0) before terminating."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)
