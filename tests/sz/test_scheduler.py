"""The ``ScheduleZero`` facade: lifecycle, handlers, ``run_now``, history, config.

Schedules and their triggers are tested in ``test_scheduler_schedules.py``. Every
async test runs under asyncio and under trio (``tests/conftest.py``), so each one is
also a test that the scheduler embeds in a program of either backend.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actors import ActorRef, ActorSystem
from sz.errors import JobFailed, SzError, UnknownTask
from sz.scheduler import ScheduleZero

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path


def with_tick() -> ScheduleZero:
    """A scheduler with one async handler, ``tick``, that does nothing."""
    sz = ScheduleZero()

    @sz.handler
    async def tick(*args: Any, **kwargs: Any) -> None:
        pass

    return sz


# ------------------------------------------------------------- lifecycle


async def test_async_with_starts_the_scheduler_and_leaves_it_stopped() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def ping() -> str:
        return "pong"

    async with sz as entered:
        assert entered is sz
        assert isinstance(sz.system, ActorSystem)
        assert await sz.run_now("ping") == "pong"
    with pytest.raises(SzError, match="not running"):
        _ = sz.system
    with pytest.raises(SzError, match="not running"):
        await sz.run_now("ping")


async def test_start_and_stop_run_the_scheduler_and_stop_may_be_called_twice() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def ping() -> str:
        return "pong"

    await sz.start()
    try:
        with pytest.raises(SzError, match="already running"):
            await sz.start()
        assert await sz.run_now("ping") == "pong"
    finally:
        await sz.stop()
    await sz.stop()
    with pytest.raises(SzError, match="not running"):
        await sz.schedules()


async def test_the_system_holds_each_handler_actor_and_the_dispatcher() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def send_notification() -> None:
        pass

    @sz.handler(name="backup")
    def backup_db() -> None:
        pass

    async with sz:
        for path in (
            "/user/handlers/send_notification",
            "/user/handlers/backup",
            "/user/dispatcher",
        ):
            assert isinstance(sz.system.lookup(path), ActorRef), path
        assert sz.system.lookup("/user/handlers/backup_db") is None


# -------------------------------------------------------------- handlers


async def test_a_bare_handler_decorator_returns_the_function_and_names_the_task() -> (
    None
):
    sz = ScheduleZero()

    async def greet(name: str) -> str:
        return f"hello {name}"

    assert sz.handler(greet) is greet
    async with sz:
        assert await sz.run_now("greet", args=["Ada"]) == "hello Ada"
        [status] = await sz.handlers()
        assert (status.name, status.task, status.concurrency) == ("greet", "greet", 1)


async def test_handler_options_set_the_task_name_and_the_concurrency() -> None:
    sz = ScheduleZero()

    @sz.handler(name="greet", concurrency=3, timeout=5.0, retries=2)
    async def say_hello(name: str) -> str:
        return f"hello {name}"

    async with sz:
        assert await sz.run_now("greet", args={"name": "Ada"}) == "hello Ada"
        [status] = await sz.handlers()
        assert (status.name, status.task, status.concurrency) == ("greet", "greet", 3)
        with pytest.raises(UnknownTask, match="say_hello"):
            await sz.run_now("say_hello")


async def test_a_handler_timeout_ends_a_job_that_runs_too_long_as_timeout() -> None:
    sz = ScheduleZero()

    @sz.handler(timeout=0.05)
    async def hang() -> None:
        await anyio.sleep_forever()

    async with sz:
        with pytest.raises(JobFailed) as caught:
            await sz.run_now("hang")
        assert caught.value.outcome == "timeout"
        [row] = await sz.history(task="hang")
        assert (row.outcome, row.final) == ("timeout", True)


async def test_observe_hears_each_async_call_end_with_its_job_but_no_timeout() -> None:
    heard: list[tuple[str, bool]] = []
    sz = ScheduleZero()

    def observe(job: Any, returned: bool) -> None:
        heard.append((job.id, returned))

    @sz.handler(observe=observe, timeout=0.05)
    async def flaky(fail: bool = False, hang: bool = False) -> str:
        if hang:
            await anyio.sleep_forever()
        if fail:
            raise ValueError("asked to")
        return "ok"

    async with sz:
        ok = await sz.submit("flaky", job_id="ok")
        assert await ok.result(timeout=10) == "ok"
        bad = await sz.submit("flaky", kwargs={"fail": True}, job_id="bad")
        with pytest.raises(JobFailed):
            await bad.result(timeout=10)
        # Cancelled by its timeout: the call neither returned nor raised.
        hung = await sz.submit("flaky", kwargs={"hang": True}, job_id="hung")
        with pytest.raises(JobFailed) as caught:
            await hung.result(timeout=10)
        assert caught.value.outcome == "timeout"
    assert heard == [("ok", True), ("bad", False)]


async def test_sync_handlers_run_in_worker_threads_and_async_ones_on_the_loop() -> None:
    sz = ScheduleZero()

    @sz.handler
    def in_thread() -> threading.Thread:
        return threading.current_thread()

    @sz.handler(name="in_thread_with_options", concurrency=2)
    def add(a: int, b: int) -> threading.Thread:
        assert a + b == 3
        return threading.current_thread()

    @sz.handler
    async def on_loop() -> threading.Thread:
        return threading.current_thread()

    async with sz:
        assert await sz.run_now("in_thread") is not threading.main_thread()
        worker = await sz.run_now("in_thread_with_options", args=[1, 2])
        assert worker is not threading.main_thread()
        assert await sz.run_now("on_loop") is threading.current_thread()


async def test_several_functions_under_one_name_become_several_handlers() -> None:
    sz = ScheduleZero()

    @sz.handler(name="work")
    async def first() -> str:
        return "first"

    @sz.handler(name="work")
    async def second() -> str:
        return "second"

    async with sz:
        assert sz.system.lookup("/user/handlers/work#2") is not None
        results = {await sz.run_now("work") for _ in range(4)}
        assert results == {"first", "second"}
        statuses = await sz.handlers()
        assert sorted((s.name, s.task) for s in statuses) == [
            ("work", "work"),
            ("work#2", "work"),
        ]


async def test_registering_a_handler_after_start_raises_sz_error() -> None:
    sz = ScheduleZero()

    async def late() -> None:
        pass

    async with sz:
        with pytest.raises(SzError, match="before the scheduler starts"):
            sz.handler(late)
        with pytest.raises(SzError, match="before the scheduler starts"):
            sz.handler(name="late", concurrency=2)(late)


def test_a_bad_handler_option_raises_sz_error_naming_the_handler() -> None:
    sz = ScheduleZero()

    async def work() -> None:
        pass

    with pytest.raises(SzError, match=r"'work'.*concurrency"):
        sz.handler(concurrency=0)(work)
    with pytest.raises(SzError, match=r"'work'.*retries"):
        sz.handler(retries=-1)(work)


async def test_handlers_reports_health_counts_and_average_duration() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def flaky(fail: bool) -> None:
        if fail:
            raise RuntimeError("failed on purpose")

    async with sz:
        [status] = await sz.handlers()
        assert status.health.state == "healthy"
        assert (status.health.successes, status.health.failures) == (0, 0)
        assert status.health.avg_duration is None
        for _ in range(3):
            await sz.run_now("flaky", args=[False])
        with pytest.raises(JobFailed):
            await sz.run_now("flaky", args=[True])
        [status] = await sz.handlers()
        assert status.name == "flaky"
        assert status.health.state == "healthy"
        assert (status.health.successes, status.health.failures) == (3, 1)
        assert status.health.avg_duration is not None
        assert status.health.avg_duration > 0
        assert status.health.active == 0


# --------------------------------------------------------------- run_now


async def test_run_now_returns_the_handlers_result() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def combine(*args: Any, **kwargs: Any) -> Any:
        return args, kwargs

    async with sz:
        assert await sz.run_now("combine") == ((), {})
        assert await sz.run_now("combine", args=[1, 2]) == ((1, 2), {})
        assert await sz.run_now("combine", args={"a": 1}) == ((), {"a": 1})
        assert await sz.run_now("combine", args=[1], kwargs={"b": 2}) == (
            (1,),
            {"b": 2},
        )
        assert await sz.run_now("combine", args={"a": 1}, kwargs={"b": 2}) == (
            (),
            {"a": 1, "b": 2},
        )


async def test_run_now_raises_job_failed_caused_by_the_handlers_exception() -> None:
    sz = ScheduleZero()
    raised: list[ValueError] = []

    @sz.handler
    async def explode() -> None:
        error = ValueError("boom")
        raised.append(error)
        raise error

    async with sz:
        with pytest.raises(JobFailed, match="explode") as caught:
            await sz.run_now("explode")
    assert caught.value.outcome == "failure"
    assert caught.value.__cause__ is raised[0]


async def test_run_now_of_an_unregistered_task_raises_unknown_task_naming_it() -> None:
    sz = with_tick()
    async with sz:
        with pytest.raises(UnknownTask, match="'nosuch'") as caught:
            await sz.run_now("nosuch")
    assert isinstance(caught.value, SzError)
    assert isinstance(caught.value, KeyError)
    assert "nosuch" in str(caught.value)
    assert "tick" in str(caught.value)  # and names the tasks that do exist


async def test_run_now_with_arguments_that_are_a_string_raises_sz_error() -> None:
    sz = with_tick()
    async with sz:
        with pytest.raises(SzError, match="sequence or a mapping"):
            await sz.run_now("tick", args="abc")


# --------------------------------------------------------------- history


async def test_history_filters_by_task_outcome_final_and_limit() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def good() -> None:
        pass

    @sz.handler
    async def bad() -> None:
        raise RuntimeError("failed on purpose")

    async with sz:
        for _ in range(3):
            await sz.run_now("good")
        for _ in range(2):
            with pytest.raises(JobFailed):
                await sz.run_now("bad")
        assert len(await sz.history()) == 5
        assert {row.task for row in await sz.history(task="good")} == {"good"}
        assert len(await sz.history(task="good")) == 3
        failures = await sz.history(outcome="failure")
        assert [(row.task, row.error) for row in failures] == [
            ("bad", "RuntimeError('failed on purpose')")
        ] * 2
        assert len(await sz.history(final=True)) == 5
        assert await sz.history(final=False) == []
        newest = await sz.history(limit=2)
        assert [row.task for row in newest] == ["bad", "bad"]
        assert newest == (await sz.history())[:2]


async def test_history_pages_newest_first_with_before() -> None:
    sz = ScheduleZero()

    @sz.handler
    async def number(n: int) -> int:
        return n

    async with sz:
        for n in range(25):
            await sz.run_now("number", args=[n])
        pages: list[list[Any]] = []
        before: datetime | None = None
        while True:
            page = await sz.history(task="number", limit=10, before=before)
            if not page:
                break
            pages.append(page)
            before = page[-1].finished_at
        assert [len(page) for page in pages] == [10, 10, 5]
        rows = [row for page in pages for row in page]
        assert len({row.job_id for row in rows}) == 25
        finished = [row.finished_at for row in rows]
        assert finished == sorted(finished, reverse=True)


async def test_history_with_limit_zero_is_refused() -> None:
    # It returned no rows once; a limit below one is now a caller's mistake.
    sz = with_tick()
    async with sz:
        await sz.run_now("tick")
        with pytest.raises(SzError, match="limit"):
            await sz.history(limit=0)


async def test_a_retried_job_has_one_row_per_attempt_and_only_the_last_is_final() -> (
    None
):
    sz = ScheduleZero()
    attempts: list[int] = []

    @sz.handler(retries=1)
    async def shaky() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return "second try works"

    async with sz:
        assert await sz.run_now("shaky") == "second try works"
        rows = await sz.history(task="shaky")
        assert len({row.job_id for row in rows}) == 1
        second, first = rows
        assert (first.attempt, first.outcome, first.final, first.reason) == (
            1,
            "failure",
            False,
            "retry_after_failure",
        )
        assert first.error == "RuntimeError('first try fails')"
        assert (second.attempt, second.outcome, second.final) == (2, "success", True)
        assert await sz.history(task="shaky", final=True) == [second]
        assert await sz.history(task="shaky", final=False) == [first]


# ---------------------------------------------------------------- config


@pytest.fixture
def from_config(tmp_path: Path) -> ScheduleZero:
    """A scheduler built from a config.yaml that lists two built-in handlers.

    Built in a sync fixture: reading the file is a blocking call.
    """
    path = tmp_path / "config.yaml"
    path.write_text(
        "handlers:\n"
        "  builtin:\n"
        "    - module: sz.builtin\n"
        "      methods: [echo, noop]\n",
        encoding="utf-8",
    )
    return ScheduleZero.from_config(str(path))


async def test_from_config_registers_the_builtin_handlers_it_lists(
    from_config: ScheduleZero,
) -> None:
    sz = from_config
    async with sz:
        assert await sz.run_now("echo", args=["x"]) == "x"
        assert await sz.run_now("noop") is None
        assert sorted(status.name for status in await sz.handlers()) == [
            "echo",
            "noop",
        ]
        with pytest.raises(UnknownTask, match="'sleep'"):
            await sz.run_now("sleep")


def test_from_config_with_a_task_the_module_lacks_raises_sz_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "handlers:\n  builtin:\n    - module: sz.builtin\n      methods: [nosuch]\n",
        encoding="utf-8",
    )
    with pytest.raises(SzError, match=r"sz\.builtin\.nosuch"):
        ScheduleZero.from_config(str(path))
