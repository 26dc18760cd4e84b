"""Bounded mailboxes: capacity, the four overflow policies, and blocked senders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import (
    Actor,
    ActorSystem,
    DeadLetter,
    MailboxFull,
    MailboxStatistics,
    Overflow,
)
from actors.mailbox import Mailbox
from actors.testing import record_events, wait_until

if TYPE_CHECKING:
    from actors import ActorRef

LONG = 30.0


class Gate(Actor):
    """Records every message; ``"hold"`` then waits until ``gate`` is set."""

    def __init__(self, gate: anyio.Event, seen: list[Any]) -> None:
        self.gate = gate
        self.seen = seen

    async def receive(self, message: Any) -> Any:
        self.seen.append(message)
        if message == "hold":
            await self.gate.wait()
        return message


class CutIn(Gate):
    """On ``"a"``, tells itself ``"intruder"`` the moment "a" leaves the mailbox."""

    async def receive(self, message: Any) -> Any:
        reply = await super().receive(message)
        if message == "a":
            try:
                self.ref.tell("intruder")
            except MailboxFull:
                self.seen.append("refused")
        return reply


class DepthWatcher(Actor):
    """Records the mailbox depth it sees while handling each message."""

    def __init__(self, depths: list[int]) -> None:
        self.depths = depths

    async def receive(self, message: Any) -> Any:
        snapshot = self.system.snapshot().find(self.ref.path)
        assert snapshot is not None
        self.depths.append(snapshot.mailbox_depth)
        await anyio.lowlevel.checkpoint()  # let the senders race this batch
        return None


def depth(system: ActorSystem, ref: ActorRef) -> int:
    snapshot = system.snapshot().find(ref.path)
    assert snapshot is not None
    return snapshot.mailbox_depth


async def held(
    system: ActorSystem, capacity: int, overflow: Overflow
) -> tuple[ActorRef, anyio.Event, list[Any]]:
    """Spawn a ``Gate`` and leave it inside ``receive("hold")``, its mailbox empty."""
    gate = anyio.Event()
    seen: list[Any] = []
    ref = await system.spawn(
        Gate, gate, seen, name="gate", capacity=capacity, overflow=overflow
    )
    ref.tell("hold")
    await wait_until(lambda: seen == ["hold"])
    return ref, gate, seen


async def drain(system: ActorSystem, ref: ActorRef, seen: list[Any]) -> None:
    """Wait until ``ref`` has handled everything sent to it before this call."""
    await wait_until(lambda: depth(system, ref) == 0)
    ref.tell("marker")
    await wait_until(lambda: bool(seen) and seen[-1] == "marker")


# ------------------------------------------------------------------- "block"


async def test_block_policy_tell_raises_mailbox_full_instead_of_waiting() -> None:
    async with ActorSystem() as system:
        ref, gate, seen = await held(system, 2, "block")
        ref.tell("a")
        ref.tell("b")
        with pytest.raises(MailboxFull):
            ref.tell("c")
        gate.set()
        await drain(system, ref, seen)
        assert seen == ["hold", "a", "b", "marker"]
        assert system.statistics().dead_letters == 0  # refused, not dropped


async def test_block_policy_send_waits_for_room_then_delivers() -> None:
    async with ActorSystem() as system:
        ref, gate, seen = await held(system, 2, "block")
        ref.tell("a")
        ref.tell("b")
        sent = anyio.Event()

        async def send() -> None:
            await ref.send("c")
            sent.set()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                await anyio.wait_all_tasks_blocked()
                assert not sent.is_set()
                assert depth(system, ref) == 2
                gate.set()
                await sent.wait()
        await drain(system, ref, seen)
        assert seen == ["hold", "a", "b", "c", "marker"]


async def test_blocked_send_keeps_its_turn_when_room_appears() -> None:
    async with ActorSystem() as system:
        gate = anyio.Event()
        seen: list[Any] = []
        ref = await system.spawn(
            CutIn, gate, seen, name="gate", capacity=1, overflow="block"
        )
        ref.tell("hold")
        await wait_until(lambda: seen == ["hold"])
        ref.tell("a")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ref.send, "b")
            await anyio.wait_all_tasks_blocked()
            gate.set()
        await drain(system, ref, seen)
        # Taking "a" made room for the blocked "b": a tell right then must not
        # take it, or a blocked sender can be overtaken again and again.
        assert seen == ["hold", "a", "refused", "b", "marker"]


async def test_blocked_senders_are_released_in_the_order_they_blocked() -> None:
    async with ActorSystem() as system:
        ref, gate, seen = await held(system, 1, "block")
        ref.tell("a")
        async with anyio.create_task_group() as tg:
            for message in ("b", "c", "d"):
                tg.start_soon(ref.send, message)
                await anyio.wait_all_tasks_blocked()
            gate.set()
        await drain(system, ref, seen)
        assert seen == ["hold", "a", "b", "c", "d", "marker"]


async def test_cancelled_blocked_send_does_not_deliver_its_message() -> None:
    async with ActorSystem() as system:
        ref, gate, seen = await held(system, 1, "block")
        ref.tell("a")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ref.send, "cancelled")
                await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
        gate.set()
        await drain(system, ref, seen)
        assert seen == ["hold", "a", "marker"]
        assert system.statistics().dead_letters == 0


async def test_blocked_send_to_an_actor_that_stops_goes_to_dead_letters() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        ref, gate, _ = await held(system, 1, "block")
        ref.tell("a")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ref.send, "b")
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(ref.stop)
                await anyio.wait_all_tasks_blocked()
                gate.set()
        await log.wait_for(DeadLetter, "/user/gate", count=2)
        letters = log.of(DeadLetter, "/user/gate")
        assert sorted(letter.message for letter in letters) == ["a", "b"]
        assert {letter.reason for letter in letters} == {"stopped"}
        assert system.statistics().dead_letters == 2


# -------------------------------------------------------------------- "fail"


async def test_fail_policy_refuses_tell_send_and_ask_when_full() -> None:
    async with ActorSystem() as system:
        ref, gate, seen = await held(system, 1, "fail")
        ref.tell("a")
        with pytest.raises(MailboxFull):
            ref.tell("b")
        with anyio.fail_after(5), pytest.raises(MailboxFull):
            await ref.send("c")
        with anyio.fail_after(5), pytest.raises(MailboxFull):
            await ref.ask("d", timeout=LONG)
        gate.set()
        await drain(system, ref, seen)
        assert seen == ["hold", "a", "marker"]


# ------------------------------------------------------------- "drop_newest"


async def test_drop_newest_sends_the_incoming_message_to_dead_letters() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        ref, gate, seen = await held(system, 2, "drop_newest")
        ref.tell("a")
        ref.tell("b")
        ref.tell("c")  # neither raises nor waits
        with anyio.fail_after(5):
            await ref.send("d")
        letters = await log.wait_for(DeadLetter, "/user/gate", count=2)
        assert letters.message == "d"
        assert [(e.message, e.reason) for e in log.of(DeadLetter)] == [
            ("c", "mailbox_full"),
            ("d", "mailbox_full"),
        ]
        assert system.statistics().dead_letters == 2
        gate.set()
        await drain(system, ref, seen)
        assert seen == ["hold", "a", "b", "marker"]


async def test_ask_dropped_by_drop_newest_fails_at_once_with_mailbox_full() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        ref, gate, _ = await held(system, 1, "drop_newest")
        ref.tell("a")
        with anyio.fail_after(5), pytest.raises(MailboxFull):
            await ref.ask("question", timeout=LONG)
        letter = await log.wait_for(DeadLetter, "/user/gate")
        assert (letter.message, letter.reason) == ("question", "mailbox_full")
        gate.set()


# ------------------------------------------------------------- "drop_oldest"


async def test_drop_oldest_sends_the_oldest_waiting_message_to_dead_letters() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        ref, gate, seen = await held(system, 2, "drop_oldest")
        for message in ("a", "b", "c"):
            ref.tell(message)
        with anyio.fail_after(5):
            await ref.send("d")
        await log.wait_for(DeadLetter, "/user/gate", count=2)
        assert [(e.message, e.reason) for e in log.of(DeadLetter)] == [
            ("a", "mailbox_full"),
            ("b", "mailbox_full"),
        ]
        assert system.statistics().dead_letters == 2
        gate.set()
        await drain(system, ref, seen)
        assert seen == ["hold", "c", "d", "marker"]


async def test_ask_dropped_by_drop_oldest_fails_at_once_with_mailbox_full() -> None:
    async with ActorSystem() as system, record_events(system) as log:
        ref, gate, seen = await held(system, 1, "drop_oldest")
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await ref.ask("question", timeout=LONG)
            except MailboxFull as exc:
                errors.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await wait_until(lambda: depth(system, ref) == 1)
                ref.tell("newer")  # pushes the waiting ask out
        assert len(errors) == 1
        letter = await log.wait_for(DeadLetter, "/user/gate")
        assert (letter.message, letter.reason) == ("question", "mailbox_full")
        gate.set()
        await drain(system, ref, seen)
        assert seen == ["hold", "newer", "marker"]


# ------------------------------------------------------------------ capacity


@pytest.mark.parametrize("overflow", ["block", "fail"])
async def test_capacity_counts_waiting_messages_not_the_one_in_process(
    overflow: Overflow,
) -> None:
    async with ActorSystem() as system:
        ref, gate, seen = await held(system, 3, overflow)
        for n in range(3):
            ref.tell(n)
        with pytest.raises(MailboxFull):
            ref.tell(3)
        snapshot = system.snapshot().find(ref.path)
        assert snapshot is not None
        assert (snapshot.mailbox_depth, snapshot.mailbox_capacity) == (3, 3)
        gate.set()
        await drain(system, ref, seen)
        assert seen == ["hold", 0, 1, 2, "marker"]


async def test_draining_a_batch_never_lets_more_than_capacity_wait() -> None:
    async with ActorSystem() as system:
        gate = anyio.Event()
        seen: list[Any] = []
        ref = await system.spawn(
            Gate, gate, seen, name="gate", capacity=3, overflow="fail"
        )
        # Three wait before the actor wakes, so its first batch holds all three.
        for message in ("hold", "a", "b"):
            ref.tell(message)
        with pytest.raises(MailboxFull):
            ref.tell("refused early")
        await wait_until(lambda: seen == ["hold"])
        # Taking "hold" made room for one: "a" and "b" still wait.
        ref.tell("c")
        with pytest.raises(MailboxFull):
            ref.tell("refused late")
        assert depth(system, ref) == 3
        gate.set()
        await drain(system, ref, seen)
        assert seen == ["hold", "a", "b", "c", "marker"]


async def test_mailbox_depth_never_exceeds_capacity_while_senders_race() -> None:
    async with ActorSystem() as system:
        depths: list[int] = []
        ref = await system.spawn(DepthWatcher, depths, name="watcher", capacity=4)

        async def sender() -> None:
            for n in range(40):
                await ref.send(n)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(sender)
            await wait_until(lambda: len(depths) == 200)
        assert max(depths) <= 4


# ------------------------------------------------------- Mailbox on its own


def test_mailbox_statistics_report_depth_capacity_policy_and_drops() -> None:
    dropped: list[Any] = []
    mailbox = Mailbox(2, "drop_newest", dropped.append)
    for message in range(4):
        mailbox.put_nowait(message)
    assert mailbox.statistics() == MailboxStatistics(
        depth=2, capacity=2, overflow="drop_newest", blocked_senders=0, dropped=2
    )
    assert list(mailbox.queue) == [0, 1]
    assert dropped == [2, 3]


def test_mailbox_drop_oldest_hands_the_oldest_to_on_drop() -> None:
    dropped: list[Any] = []
    mailbox = Mailbox(2, "drop_oldest", dropped.append)
    for message in range(5):
        mailbox.put_nowait(message)
    assert list(mailbox.queue) == [3, 4]
    assert dropped == [0, 1, 2]
    assert mailbox.statistics().dropped == 3


@pytest.mark.parametrize("overflow", ["block", "fail"])
def test_mailbox_put_nowait_raises_when_full_under_block_and_fail(
    overflow: Overflow,
) -> None:
    dropped: list[Any] = []
    mailbox = Mailbox(1, overflow, dropped.append)
    mailbox.put_nowait("a")
    with pytest.raises(MailboxFull, match="1 messages waiting"):
        mailbox.put_nowait("b")
    assert list(mailbox.queue) == ["a"]
    assert dropped == []
    assert mailbox.statistics().dropped == 0


async def test_mailbox_put_raises_when_full_under_fail() -> None:
    mailbox = Mailbox(1, "fail", lambda _: None)
    mailbox.put_nowait("a")
    with pytest.raises(MailboxFull):
        await mailbox.put("b")
    assert list(mailbox.queue) == ["a"]


async def test_mailbox_put_waits_for_took_under_block() -> None:
    mailbox = Mailbox(1, "block", lambda _: None)
    mailbox.put_nowait("a")
    results: list[bool] = []

    async def put() -> None:
        results.append(await mailbox.put("b"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(put)
            await wait_until(lambda: mailbox.statistics().blocked_senders == 1)
            assert list(mailbox.queue) == ["a"]
            mailbox.queue.popleft()
            mailbox.took()
    assert results == [True]
    assert list(mailbox.queue) == ["b"]


async def test_mailbox_cancelled_put_adds_nothing_and_leaves_no_waiter() -> None:
    mailbox = Mailbox(1, "block", lambda _: None)
    mailbox.put_nowait("a")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(mailbox.put, "b")
            await wait_until(lambda: mailbox.statistics().blocked_senders == 1)
            tg.cancel_scope.cancel()
    assert mailbox.statistics().blocked_senders == 0
    mailbox.queue.popleft()
    mailbox.took()
    mailbox.put_nowait("c")  # no phantom sender holds the freed room
    assert list(mailbox.queue) == ["c"]


async def test_mailbox_woken_sender_that_is_cancelled_passes_the_room_on() -> None:
    mailbox = Mailbox(1, "block", lambda _: None)
    mailbox.put_nowait("a")
    first_done: list[bool] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            first_scope = anyio.CancelScope()

            async def first() -> None:
                with first_scope:
                    first_done.append(await mailbox.put("first"))

            tg.start_soon(first)
            await wait_until(lambda: mailbox.statistics().blocked_senders == 1)
            tg.start_soon(mailbox.put, "second")
            await wait_until(lambda: mailbox.statistics().blocked_senders == 2)
            mailbox.queue.popleft()
            mailbox.took()  # wakes "first" ...
            first_scope.cancel()  # ... which is cancelled before it runs
            # Either "first" got in before its cancellation took effect, or it
            # passed its turn on to "second": the room is used either way.
            await wait_until(lambda: len(mailbox.queue) == 1)
            tg.cancel_scope.cancel()
    if first_done == [True]:
        assert list(mailbox.queue) == ["first"]
    else:
        assert list(mailbox.queue) == ["second"]


async def test_mailbox_close_returns_waiting_messages_and_releases_senders() -> None:
    mailbox = Mailbox(1, "block", lambda _: None)
    mailbox.put_nowait("a")
    results: list[bool] = []

    async def put() -> None:
        results.append(await mailbox.put("b"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(put)
            await wait_until(lambda: mailbox.statistics().blocked_senders == 1)
            assert mailbox.close() == ["a"]
    assert results == [False]
    assert mailbox.closed
    assert list(mailbox.queue) == []


async def test_mailbox_wait_nonempty_returns_on_a_message_or_on_wake() -> None:
    mailbox = Mailbox(2, "block", lambda _: None)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(mailbox.wait_nonempty)
            await anyio.wait_all_tasks_blocked()
            mailbox.put_nowait("a")
        mailbox.queue.clear()
        async with anyio.create_task_group() as tg:
            tg.start_soon(mailbox.wait_nonempty)
            await anyio.wait_all_tasks_blocked()
            mailbox.wake()
    assert list(mailbox.queue) == []
