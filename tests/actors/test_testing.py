"""``wait_until``: the one poll the tests share, for state no event announces."""

from __future__ import annotations

import anyio
import pytest

from actors.testing import wait_until


async def test_wait_until_returns_at_once_when_the_condition_already_holds() -> None:
    calls: list[None] = []

    def holds() -> bool:
        calls.append(None)
        return True

    await wait_until(holds)
    await wait_until(holds, timeout=0)
    assert len(calls) == 2


async def test_wait_until_looks_again_until_the_condition_becomes_true() -> None:
    calls: list[None] = []

    def third_time() -> bool:
        calls.append(None)
        return len(calls) == 3

    await wait_until(third_time, interval=0.001)
    assert len(calls) == 3


async def test_wait_until_sees_what_another_task_does_meanwhile() -> None:
    flag: list[bool] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_until, lambda: bool(flag))
        await anyio.wait_all_tasks_blocked()  # it is between two looks now
        flag.append(True)


async def test_wait_until_takes_an_async_condition() -> None:
    calls: list[None] = []

    async def second_time() -> bool:
        await anyio.lowlevel.checkpoint()
        calls.append(None)
        return len(calls) == 2

    await wait_until(second_time)
    assert len(calls) == 2


async def test_wait_until_raises_timeout_error_naming_the_message() -> None:
    with pytest.raises(TimeoutError, match=r"after 0\.02 s: the flag is set"):
        await wait_until(lambda: False, timeout=0.02, message="the flag is set")


async def test_wait_until_names_the_condition_when_given_no_message() -> None:
    def never() -> bool:
        return False

    with pytest.raises(TimeoutError, match="never"):
        await wait_until(never, timeout=0.02)


async def test_wait_until_cancels_an_async_condition_running_at_the_deadline() -> None:
    async def stuck() -> bool:
        await anyio.sleep_forever()
        return True

    with pytest.raises(TimeoutError, match="stuck"):
        await wait_until(stuck, timeout=0.02)


async def test_wait_until_is_a_checkpoint_even_when_the_condition_holds() -> None:
    with anyio.CancelScope() as scope:
        scope.cancel()
        await wait_until(lambda: True)
    assert scope.cancelled_caught


async def test_a_deadline_around_wait_until_is_not_reported_as_its_own() -> None:
    with anyio.move_on_after(0.02) as scope:
        await wait_until(lambda: False, timeout=5.0)
    assert scope.cancelled_caught


@pytest.mark.parametrize(("deadline", "interval"), [(-1.0, 0.01), (1.0, -0.01)])
async def test_wait_until_refuses_a_negative_timeout_or_interval(
    deadline: float, interval: float
) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        await wait_until(lambda: True, timeout=deadline, interval=interval)
