"""``GET /api/series`` and the stream's ``series`` events, on asyncio and trio.

The gateway samples the scheduler's counters every second: a page that opens
late still draws the minutes before it, then goes on from the stream.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from test_web_events import Event, opened, read_until
from web_http import http

import web
from actors.testing import wait_until
from sz import JobFailed, ScheduleZero
from sz.metrics import BUCKETS
from web.series import SERIES_KEPT, Series, percentile

DEADLINE = 30.0


def test_percentiles_interpolate_within_the_bucket_they_fall_in() -> None:
    counts = [0] * (len(BUCKETS) + 1)
    assert percentile(counts, 0.5) is None
    # 0.005 < x <= 0.01: ten observations; the median is halfway through.
    ten_ms = BUCKETS.index(0.01)
    counts[ten_ms] = 10
    assert percentile(counts, 0.5) == pytest.approx(0.0075)
    assert percentile(counts, 0.99) == pytest.approx(0.00995)
    # One very late fire past every bound: the p99 of 100 reads as the last one.
    counts[ten_ms] = 99
    counts[-1] = 1
    assert percentile(counts, 0.99) == pytest.approx(0.01)
    assert percentile(counts, 1.0) == BUCKETS[-1]


def counters(
    ended: int, failed: int, late: dict[int, int], lateness: float
) -> tuple[int, int, tuple[int, ...], int, float]:
    counts = [0] * (len(BUCKETS) + 1)
    for index, count in late.items():
        counts[index] = count
    return ended, failed, tuple(counts), sum(counts), lateness


def test_a_sample_is_what_changed_since_the_reading_before() -> None:
    series = Series(kept=3)
    at = datetime(2030, 1, 2, 9, 30, tzinfo=UTC).timestamp()
    # The first reading only sets where counting starts.
    series.add(at, counters(100, 5, {4: 10}, 0.05))
    assert series.taken == 0
    assert series.since(None) == []
    series.add(at + 1, counters(130, 7, {4: 10, 5: 4}, 0.09))
    [sample] = series.since(None)
    assert sample == {
        "seq": 1,
        "time": "2030-01-02T09:30:01+00:00",
        "finished": 30,
        "failed": 2,
        "fires": 4,
        "lateness_mean": 0.01,
        "lateness_p50": pytest.approx(0.0175),
        "lateness_p99": pytest.approx(0.02485),
    }
    # A second with no fire has no lateness.
    series.add(at + 2, counters(131, 7, {4: 10, 5: 4}, 0.09))
    assert series.since(None)[-1]["lateness_p99"] is None
    # The scheduler went away: the next reading starts over, no sample.
    series.lost()
    series.add(at + 3, counters(0, 0, {}, 0.0))
    assert series.taken == 2
    for second in range(4, 8):
        series.add(at + second, counters(second, 0, {}, 0.0))
    # Three kept, the oldest gone; numbers go on.
    assert [s["seq"] for s in series.since(None)] == [4, 5, 6]
    assert [s["seq"] for s in series.after(4)] == [5, 6]
    assert [s["seq"] for s in series.after(0, upto=5)] == [4, 5]
    moment = datetime.fromtimestamp(at + 5, UTC)
    assert [s["seq"] for s in series.since(moment)] == [5, 6]


def busy() -> ScheduleZero:
    sz = ScheduleZero()

    @sz.handler(concurrency=50)
    async def echo(value: int = 0) -> int:
        return value

    @sz.handler
    async def fail() -> None:
        raise ValueError("on purpose")

    return sz


async def get(url: str, **params: str) -> tuple[int, Any]:
    query = "&".join(f"{name}={value}" for name, value in params.items())
    answer = await http("GET", f"{url}/api/series" + (f"?{query}" if query else ""))
    return answer.status, answer.json()


async def test_the_series_holds_the_seconds_past_and_the_stream_goes_on() -> None:
    sz = busy()
    settings = web.GatewaySettings(port=0, events_interval=0.1)
    async with sz, web.serve(sz, settings) as url:
        status, body = await get(url)
        assert status == 200
        assert (body["interval"], body["kept"]) == (1.0, SERIES_KEPT)

        async def sampling() -> bool:
            # Counting starts from the first reading: what ran before is not news.
            return bool((await get(url))[1]["samples"])

        await wait_until(sampling, timeout=DEADLINE, interval=0.1)
        for value in range(20):
            await sz.run_now("echo", args=[value])
        with pytest.raises(JobFailed):
            await sz.run_now("fail")
        await sz.schedule("echo", "date", run_time=datetime.now(UTC))

        samples: list[dict[str, Any]] = []

        async def counted() -> bool:
            _, body = await get(url)
            samples[:] = body["samples"]
            finished: int = sum(s["finished"] for s in samples)
            fires: int = sum(s["fires"] for s in samples)
            return finished >= 22 and fires >= 1

        await wait_until(counted, timeout=DEADLINE, interval=0.1)
        assert sum(s["failed"] for s in samples) == 1
        [fired] = [s for s in samples if s["fires"]]
        assert fired["lateness_p50"] is not None
        assert fired["lateness_p99"] >= fired["lateness_p50"] >= 0
        seqs = [s["seq"] for s in samples]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

        # Only the samples after a time: none after the latest.
        _, body = await get(url, since=samples[-1]["time"].replace("+", "%2B"))
        assert all(s["seq"] > samples[-1]["seq"] for s in body["samples"])
        status, body = await get(url, since="yesterday")
        assert status == 422
        assert body["error"]["message"].startswith("query parameter 'since'")

        # The stream: the last minute at once, then each new second.
        reader = await opened(url)
        try:

            def new_sample(events: list[Event]) -> bool:
                return any(
                    e.kind == "series" and not e.data["full"] and e.data["items"]
                    for e in events
                )

            await read_until(reader, new_sample)
        finally:
            reader.close()
    [first, *_] = [e.data for e in reader.events if e.kind == "series"]
    assert first["full"] is True
    assert first["items"][0]["seq"] <= samples[-1]["seq"]
    later = [e.data for e in reader.events if e.kind == "series"][1:]
    assert later[0]["items"][0]["seq"] == first["items"][-1]["seq"] + 1
