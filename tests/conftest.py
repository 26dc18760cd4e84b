from __future__ import annotations

from pathlib import Path
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

#: The browser tests' folder: they run in a pytest process of their own
#: (``make browser``), so that Playwright's event loop never meets AnyIO's tests.
BROWSER_TESTS = Path(__file__).parent / "browser"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave ``tests/browser`` out unless the run names it (or a file in it)."""
    if collection_path != BROWSER_TESTS:
        return None
    here = config.invocation_params.dir
    named = ((here / argument.split("::")[0]).resolve() for argument in config.args)
    return not any(path.is_relative_to(BROWSER_TESTS) for path in named)


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
