"""An actor that crashes on purpose (``ExpectedCrash``) says why in one line."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from actors import Actor, ActorSystem, ExpectedCrash
from actors.testing import wait_until

if TYPE_CHECKING:
    import pytest


class LinkDown(ExpectedCrash):
    """What an actor owning a connection raises when its peer goes quiet."""


class Link(Actor):
    """Crashes on purpose when told its peer is gone, crashes badly on "bug"."""

    starts = 0

    async def on_start(self) -> None:
        Link.starts += 1

    async def receive(self, message: object) -> None:
        if message == "peer gone":
            raise LinkDown("no word from the peer for 3.0 s")
        if message == "bug":
            raise RuntimeError("a real bug")


def records_of(caplog: pytest.LogCaptureFixture, path: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if path in record.getMessage()]


async def test_an_expected_crash_is_one_warning_line_and_the_actor_restarts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="actors")
    Link.starts = 0
    async with ActorSystem("expected") as system:
        link = await system.spawn(Link, name="link")
        link.tell("peer gone")
        await wait_until(lambda: Link.starts == 2, message="the link restarted")
        (record,) = records_of(caplog, "/user/link")
        assert record.levelno == logging.WARNING
        assert record.getMessage() == (
            "/user/link ended: no word from the peer for 3.0 s"
        )
        assert record.exc_info is None
        snapshot = system.snapshot()
        (node,) = [n for n in snapshot.children if n.path == "/user/link"]
        assert node.failures == 1


async def test_any_other_crash_is_still_an_error_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="actors")
    Link.starts = 0
    async with ActorSystem("unexpected") as system:
        link = await system.spawn(Link, name="link")
        link.tell("bug")
        await wait_until(lambda: Link.starts == 2, message="the link restarted")
        (record,) = records_of(caplog, "/user/link")
        assert record.levelno == logging.ERROR
        assert record.exc_info is not None
