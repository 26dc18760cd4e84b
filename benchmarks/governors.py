"""Governors benchmark: ``python -m benchmarks.governors [--quick] [--backend B]``.

Two figures, each read off one run on each backend:

- ``run_now`` throughput to a no-op handler from many callers with every governor
  on but none binding (a global rate and concurrency cap, a rate on the task
  and on the handler, all far above what the machine does; adaptive throttling
  and backpressure on), beside the same with no governor at all. Runs alternate,
  and each side is the best of ``REPEAT``.
- Rate accuracy: a global rate of 10,000 jobs/s (burst 2,000), every job told to
  the dispatcher at once so that the limiter sets the pace. N jobs at rate R with
  burst B take (N - B) / R from the first start to the last: the rate achieved is
  the starts beyond the burst over that time, on the event loop's clock.
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import anyio

from actors import ActorSystem, lowlevel
from benchmarks.common import (
    CALLERS,
    arguments,
    each_backend,
    say,
    sz_run_now_rate,
    verdict,
)
from sz import Config, GovernorStatus
from sz.config import (
    AdaptiveConfig,
    ConcurrencyConfig,
    GovernorsConfig,
    HandlerLimits,
    MethodLimits,
    RateLimitConfig,
)
from sz.dispatcher import (
    DispatcherActor,
    DispatcherState,
    GovernorsQuery,
    Register,
    Submit,
)
from sz.governors import Governor, Limit
from sz.handlers import HandlerActor, HandlerSpec
from sz.history import HistoryActor
from sz.jobs import Job, JobFuture
from sz.store.history import MemoryHistory

REPEAT = 5

#: Far above anything this machine does: the limits are checked, never binding.
UNREACHABLE = 10_000_000

TARGETS = {"ratio": 0.8, "accuracy": 0.02}

#: The configured rate for the accuracy figure, and its burst: a fifth of a
#: second's worth. A bucket gives no more than its burst after a stall, and taking
#: in 40,000 jobs at once costs this process full garbage collections of up to
#: 0.2 s; tokens that would overflow a smaller bucket then are lost to the rate.
RATE, BURST = 10_000.0, 2_000


def governed() -> Config:
    """Every governor on, none binding."""
    return Config(
        governors=GovernorsConfig(
            rate_limit=RateLimitConfig(
                enabled=True, rate=UNREACHABLE, burst=UNREACHABLE
            ),
            concurrency=ConcurrencyConfig(enabled=True, max_concurrent=UNREACHABLE),
            per_method_limits={
                "noop": MethodLimits(rate=UNREACHABLE, burst=UNREACHABLE)
            },
            per_handler_limits={
                "noop": HandlerLimits(rate=UNREACHABLE, burst=UNREACHABLE)
            },
            adaptive=AdaptiveConfig(enabled=True),
        )
    )


def ungoverned() -> Config:
    """No governor at all (backpressure off too)."""
    config = Config()
    return Config(
        governors=GovernorsConfig(
            backpressure=type(config.governors.backpressure)(enabled=False)
        )
    )


async def achieved_rate(n: int) -> tuple[float, int]:
    """The start rate under a global ``RATE`` limit; and the jobs that waited.

    The dispatcher, its history and a handler actor as ``ScheduleZero`` runs them,
    the jobs told to the dispatcher all at once: ``run_now``'s callers could not
    keep 10,000 jobs a second coming here, and the figure is the limiter's pace,
    not the callers'.
    """
    starts: list[float] = []

    async def noop() -> None:
        starts.append(anyio.current_time())

    governor = Governor.of(global_rate=Limit(rate=RATE, burst=BURST))
    # Room for every job: the rate, not the handler, is what binds.
    spec = HandlerSpec(name="noop", task="noop", func=noop, concurrency=n)
    async with ActorSystem("bench") as system:
        history = await system.spawn(
            HistoryActor, MemoryHistory(n), name="history", capacity=2 * n
        )
        dispatcher = await system.spawn(
            DispatcherActor,
            DispatcherState(governor=governor),
            history,
            name="dispatcher",
            capacity=2 * n,
        )
        handler = await system.spawn(HandlerActor, spec, name="noop", capacity=2 * n)
        dispatcher.tell(
            Register(
                name="noop",
                task="noop",
                ref=handler,
                concurrency=n,
                retries=0,
            )
        )
        new_event = lowlevel.event_factory(system)
        futures = [JobFuture(new_event) for _ in range(n)]
        gc.collect()
        now = datetime.now(UTC)
        for future in futures:
            dispatcher.tell(
                Submit(job=Job(task="noop", scheduled_at=now, wait=600), future=future)
            )
        for future in futures:
            await future.wait()
        statuses: list[GovernorStatus] = await dispatcher.ask(GovernorsQuery())
    # N jobs at rate R with burst B take (N - B) / R from the first start to
    # the last: the rate achieved is the starts beyond the burst over that time.
    rate = (len(starts) - BURST) / (starts[-1] - starts[0])
    return rate, statuses[0].limited


async def run_backend(quick: bool) -> None:
    n = 2_000 if quick else 20_000
    free: list[float] = []
    limited: list[float] = []
    for _ in range(REPEAT):
        free.append(await sz_run_now_rate(n, CALLERS, ungoverned()))
        limited.append(await sz_run_now_rate(n, CALLERS, governed()))
    ours, raw = max(limited), max(free)
    ratio = ours / raw
    say(
        f"  run_now, {CALLERS} callers, no-op handler, every governor on, none"
        f" binding  {ours:>7,.0f} jobs/s   no governors {raw:>7,.0f} jobs/s"
        f"   ratio {ratio:4.2f}   target >= {TARGETS['ratio']:.2f}"
        f"  {verdict(ratio >= TARGETS['ratio'])}"
    )
    jobs = 20_000 if quick else 40_000
    rate, waited = await achieved_rate(jobs)
    error = abs(rate - RATE) / RATE
    say(
        f"  rate accuracy, global rate {RATE:,.0f}/s (burst {BURST}), {jobs:,} jobs"
        f" told at once  achieved {rate:>9,.1f} jobs/s"
        f"   error {error * 100:4.2f} %   ({waited:,} jobs waited for a token)"
        f"   target <= {TARGETS['accuracy'] * 100:.0f} %"
        f"  {verdict(error <= TARGETS['accuracy'])}"
    )


def main() -> None:
    options = arguments(__doc__, "a tenth of the jobs").parse_args()
    each_backend(options, lambda _: run_backend(options.quick))


if __name__ == "__main__":
    main()
