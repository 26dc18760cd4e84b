"""``ScheduleZero.dead_letters``: the latest messages no actor processed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from actors import Actor, DeadLetter
from actors.testing import wait_until
from sz import RecentDeadLetter, ScheduleZero, SzError
from sz.deadletters import MAX_MESSAGE_TEXT, DeadLetterLog, describe_message


class Quiet(Actor):
    async def receive(self, message: Any) -> None:
        return None


async def test_messages_to_a_stopped_actor_are_kept_newest_first() -> None:
    sz = ScheduleZero()
    async with sz:
        ref = await sz.system.spawn(Quiet, name="quiet")
        await ref.stop()
        before = datetime.now(UTC)
        ref.tell({"n": 1})
        ref.tell("second")
        await wait_until(lambda: len(sz.dead_letters()) == 2)
        letters = sz.dead_letters()
        counted = sz.system.statistics().dead_letters
    assert [(d.path, d.reason, d.message) for d in letters] == [
        ("/user/quiet", "stopped", "'second'"),
        ("/user/quiet", "stopped", "{'n': 1}"),
    ]
    assert [d.message_type for d in letters] == ["builtins.str", "builtins.dict"]
    assert all(type(d) is RecentDeadLetter for d in letters)
    assert all(d.at >= before for d in letters)
    assert counted >= 2


async def test_dead_letters_are_bounded_and_the_limit_is_checked() -> None:
    sz = ScheduleZero()
    async with sz:
        ref = await sz.system.spawn(Quiet, name="quiet")
        await ref.stop()
        for n in range(1005):
            ref.tell(n)
        await wait_until(lambda: [d.message for d in sz.dead_letters(1)] == ["1004"])
        kept = sz.dead_letters(1000)
        assert [d.message for d in sz.dead_letters(2)] == ["1004", "1003"]
        for bad in (0, 1001, True, "5"):
            with pytest.raises(SzError, match="from 1 to 1,000"):
                sz.dead_letters(bad)  # type: ignore[arg-type]
    assert len(kept) == 1000
    assert kept[-1].message == "5"


def test_a_message_is_described_bounded_and_never_raises() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert describe_message(Hostile()).startswith("<Hostile")
    assert len(describe_message(list(range(10_000)))) <= MAX_MESSAGE_TEXT
    assert len(describe_message("x" * 10_000)) <= MAX_MESSAGE_TEXT
    log = DeadLetterLog(size=2)
    for n in range(3):
        log.add(DeadLetter(path="/user/a", message=n, reason="stopped"))
    assert [d.message for d in log.latest(5)] == ["2", "1"]
