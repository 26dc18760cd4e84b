"""The run's own handlers: its setup's functions, counting executions.

``no_duplicate_jobs`` counts how many times each job's function returned, as
the run's handlers saw it, not what the history says (a history that lost a
retry would hide the duplicate). An async function's handler actor tells the
run of each call's end (``HandlerSpec.observe``); a sync function is wrapped,
and its job comes from :data:`sz.handlers.CURRENT_JOB`, which the handler
actor sets around each call.
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

    from ..jobs import Job
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


def counted(
    func: Callable[..., Any], record: RunRecord
) -> tuple[Callable[..., Any], Callable[[Job, bool], None] | None]:
    """``func`` as the run registers it, counting in ``record`` each call's end.

    Returns ``(function, observe)`` for ``ScheduleZero.handler``. An async
    ``func`` is registered unchanged and counted by its handler actor, which
    tells ``observe`` right after each call returns or raises: a wrapper
    coroutine around every call cost a run at full pace a twentieth of its
    throughput. A sync ``func`` runs in the handler's threads, where nothing
    observes it: it is wrapped (keeping its signature through
    ``__wrapped__``) and counts itself, and ``observe`` is None.
    """
    executions, failed_calls = record.executions, record.failed_calls
    if inspect.iscoroutinefunction(func):

        def observe(job: Job, returned: bool) -> None:
            _add(executions if returned else failed_calls, job)

        return func, observe

    # Sync functions run in the handler's threads: one lock for the counters.
    lock = threading.Lock()

    @functools.wraps(func)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        try:
            value = func(*args, **kwargs)
        except Exception:
            with lock:
                _count(failed_calls)
            raise
        with lock:
            _count(executions)
        return value

    return run_sync, None


def _count(counter: Any) -> None:
    job = CURRENT_JOB.get()
    if job is not None:
        _add(counter, job)


def _add(counter: Any, job: Job) -> None:
    # Not ``+= 1``: a Counter's missing key costs a method call, and every job
    # is a new key (half the counting's time at full pace).
    counter[job.id] = counter.get(job.id, 0) + 1
