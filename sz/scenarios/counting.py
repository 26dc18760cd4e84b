"""The run's own handlers: its setup's functions, wrapped to count executions.

``no_duplicate_jobs`` counts how many times each job's function returned, as
the run's handlers saw it, not what the history says (a history that lost a
retry would hide the duplicate). The job comes from
:data:`sz.handlers.CURRENT_JOB`, which the handler actor sets around each call.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import TYPE_CHECKING, Any

from ..errors import SzError
from ..handlers import CURRENT_JOB
from ..startup import import_handler_module

if TYPE_CHECKING:
    from collections.abc import Callable

    from .model import HandlerSpec
    from .record import RunRecord

__all__ = ["counted", "resolve_functions"]


def resolve_functions(spec: HandlerSpec) -> dict[str, Callable[..., Any]]:
    """The functions a setup's handler spec names, by task.

    Raises:
        SzError: The module cannot be imported, or a method is not a function
            of it (the message names which).
    """
    module = import_handler_module(spec.module)
    found: dict[str, Callable[..., Any]] = {}
    for method in spec.methods:
        func = getattr(module, method, None)
        if not callable(func):
            raise SzError(f"setup handlers: {spec.module}.{method} is not a function")
        found[method] = func
    return found


def counted(func: Callable[..., Any], record: RunRecord) -> Callable[..., Any]:
    """``func``, counting in ``record`` each call that returns and each that raises.

    The wrapper keeps ``func``'s signature (``__wrapped__``), so arguments are
    checked against it as before, and stays async if ``func`` is.
    """
    if inspect.iscoroutinefunction(func):
        executions, failed_calls = record.executions, record.failed_calls
        current_job = CURRENT_JOB.get

        # Counted inline, not through ``_count``: this runs once per job of a
        # run at full pace, where a function call more is a measurable share
        # of the runner's overhead.
        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                value = await func(*args, **kwargs)
            except Exception:
                _count(failed_calls)
                raise
            job = current_job()
            if job is not None:
                key = job.id
                executions[key] = executions.get(key, 0) + 1
            return value

        return run_async

    # Sync functions run in the handler's threads: one lock for the counters.
    lock = threading.Lock()

    @functools.wraps(func)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        try:
            value = func(*args, **kwargs)
        except Exception:
            with lock:
                _count(record.failed_calls)
            raise
        with lock:
            _count(record.executions)
        return value

    return run_sync


def _count(counter: Any) -> None:
    job = CURRENT_JOB.get()
    if job is not None:
        # Not ``+= 1``: a Counter's missing key costs a method call, and
        # every job is a new key (half this function's time at full pace).
        counter[job.id] = counter.get(job.id, 0) + 1
