"""``DaemonThreads``: sync calls on daemon threads, awaited on asyncio and trio."""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING

import anyio
import pytest

from actors.testing import wait_until
from sz.threads import DaemonThreads

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Read in the calls: each sees a copy of its caller's context.
current = contextvars.ContextVar("current", default="unset")


def pool(size: int = 1, **options: float) -> DaemonThreads:
    return DaemonThreads(anyio.CapacityLimiter(size), name="test", **options)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What blocked calls wait on; opened at teardown, so no thread is left stuck."""
    opened = threading.Event()
    try:
        yield opened
    finally:
        opened.set()


async def test_run_sync_returns_what_the_call_returns() -> None:
    threads = pool()
    assert await threads.run_sync(divmod, 17, 5) == (3, 2)


@pytest.mark.parametrize(
    "make",
    [lambda: ValueError("bad"), lambda: SystemExit(3), KeyboardInterrupt],
    ids=["ValueError", "SystemExit", "KeyboardInterrupt"],
)
async def test_run_sync_raises_what_the_call_raised_base_exceptions_included(
    make: Callable[[], BaseException],
) -> None:
    error = make()

    def hostile() -> None:
        raise error

    threads = pool()
    with pytest.raises(type(error)) as raised:
        await threads.run_sync(hostile)
    assert raised.value is error
    # The thread survived the call's exception and serves the next one.
    assert await threads.run_sync(lambda: 1) == 1
    assert threads.statistics().started == 1


async def test_the_call_sees_a_copy_of_the_callers_context_variables() -> None:
    def read_and_write() -> str:
        seen = current.get()
        current.set("set in the thread")
        return seen

    current.set("set by the caller")
    assert await pool().run_sync(read_and_write) == "set by the caller"
    assert current.get() == "set by the caller"


async def test_calls_are_made_on_daemon_threads_named_after_the_pool() -> None:
    thread = await pool().run_sync(threading.current_thread)
    assert thread is not threading.current_thread()
    assert thread.daemon
    assert thread.name == "test 1"


async def test_no_more_calls_run_at_once_than_the_limiter_has_tokens(
    gate: threading.Event,
) -> None:
    threads = pool(2)
    lock = threading.Lock()
    running = most = 0

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait()
        with lock:
            running -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(threads.run_sync, call)
        await wait_until(
            lambda: running == 2 and threads.limiter.statistics().tasks_waiting == 3
        )
        gate.set()
    assert most == 2
    assert threads.statistics().started == 2


async def test_an_idle_thread_takes_the_next_call() -> None:
    threads = pool()
    first = await threads.run_sync(threading.get_ident)
    assert threads.statistics().idle == 1
    assert await threads.run_sync(threading.get_ident) == first
    assert threads.statistics().started == 1


async def test_an_idle_thread_ends_after_its_idle_timeout() -> None:
    threads = pool(idle_timeout=0.05)
    thread = await threads.run_sync(threading.current_thread)
    await wait_until(lambda: not thread.is_alive())
    assert threads.statistics().idle == 0
    assert await threads.run_sync(threading.current_thread) is not thread
    assert threads.statistics().started == 2


async def test_a_cancelled_call_returns_at_once_while_its_thread_runs_on(
    gate: threading.Event,
) -> None:
    threads = pool()
    began = threading.Event()
    finished = threading.Event()
    thread: threading.Thread | None = None

    def stuck() -> str:
        nonlocal thread
        thread = threading.current_thread()
        began.set()
        gate.wait()
        finished.set()
        return "too late"

    with anyio.CancelScope() as scope:

        async def cancel_once_begun() -> None:
            await wait_until(began.is_set)
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_once_begun)
            await threads.run_sync(stuck)
    # Back while the call still waits on the gate: it runs on, abandoned, and
    # its token is free for the next call.
    assert scope.cancelled_caught
    assert thread is not None
    assert thread.is_alive()
    assert not finished.is_set()
    assert threads.limiter.borrowed_tokens == 0
    assert await threads.run_sync(lambda: "next") == "next"
    assert threads.statistics().started == 2
    gate.set()
    # Its late result is dropped; the thread waits idle for another call.
    await wait_until(lambda: threads.statistics().idle == 2)


async def test_close_ends_the_idle_threads_and_refuses_new_calls() -> None:
    threads = pool()
    thread = await threads.run_sync(threading.current_thread)
    threads.close()
    await wait_until(lambda: not thread.is_alive())
    assert threads.statistics().idle == 0
    with pytest.raises(anyio.ClosedResourceError):
        await threads.run_sync(lambda: None)


async def test_a_busy_thread_ends_when_its_call_returns_after_close(
    gate: threading.Event,
) -> None:
    threads = pool()
    began = threading.Event()
    thread: threading.Thread | None = None

    def call() -> None:
        nonlocal thread
        thread = threading.current_thread()
        began.set()
        gate.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(threads.run_sync, call)
        await wait_until(began.is_set)
        threads.close()
        gate.set()
    assert thread is not None
    await wait_until(lambda: not thread.is_alive())
    assert threads.statistics().idle == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_outcome_that_comes_after_the_event_loop_ended_is_dropped_quietly(
    backend: str, gate: threading.Event
) -> None:
    threads = pool()
    began = threading.Event()
    thread: threading.Thread | None = None

    def stuck() -> None:
        nonlocal thread
        thread = threading.current_thread()
        began.set()
        gate.wait()

    async def main() -> None:
        with anyio.move_on_after(5) as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_once_begun() -> None:
                    await wait_until(began.is_set)
                    tg.cancel_scope.cancel()

                tg.start_soon(cancel_once_begun)
                await threads.run_sync(stuck)
        assert not scope.cancelled_caught, "the call never began"

    anyio.run(main, backend=backend)
    assert thread is not None
    failures: list[threading.ExceptHookArgs] = []
    hook, threading.excepthook = threading.excepthook, failures.append
    try:
        # Closed now, the thread ends once its call has returned and its
        # "call soon" to the closed loop has failed: quietly, not with a
        # traceback (which would reach the except hook).
        threads.close()
        gate.set()
        thread.join(timeout=10.0)
    finally:
        threading.excepthook = hook
    assert not thread.is_alive()
    assert failures == []


async def test_a_call_reaches_back_into_the_event_loop_with_its_token() -> None:
    token = anyio.lowlevel.current_token()

    def call() -> str:
        return anyio.from_thread.run_sync(threading.current_thread, token=token).name

    assert await pool().run_sync(call) == threading.current_thread().name
