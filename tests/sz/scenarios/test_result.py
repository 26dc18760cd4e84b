"""What the store keeps of a run's result: the export and its samples."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from sz.scenarios import STORED_SAMPLES, MetricSample, ScenarioResult

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def result(samples: tuple[MetricSample, ...]) -> ScenarioResult:
    return ScenarioResult(
        name="kept",
        run_id="run-1",
        seed=1,
        parameters={"jobs": 10},
        started_at=START,
        finished_at=START + timedelta(seconds=5),
        outcome="passed",
        samples=samples,
    )


def test_a_stored_result_reads_back_with_its_samples_and_the_same_csv() -> None:
    samples = tuple(
        MetricSample(metric=metric, offset=i * 0.2, value=float(i) / 3)
        for i in range(25)
        for metric in ("jobs_per_sec", "memory_usage")
    )
    original = result(samples)
    # Through JSON text, as the store writes it (no NaN allowed).
    stored = json.loads(json.dumps(original.to_stored_json(), allow_nan=False))
    back = ScenarioResult.from_json(stored)
    assert back.to_csv() == original.to_csv()
    assert back.to_json() == original.to_json()
    # The export itself stays as documented: no samples in it.
    assert "samples" not in original.to_json()
    assert ScenarioResult.from_json(original.to_json()).samples == ()


def test_a_long_runs_samples_are_thinned_alike_keeping_each_metrics_last() -> None:
    per_metric = STORED_SAMPLES  # two metrics: twice the cap in all
    samples = tuple(
        MetricSample(metric=metric, offset=float(i), value=float(i))
        for i in range(per_metric)
        for metric in ("a", "b")
    )
    kept = ScenarioResult.from_json(result(samples).to_stored_json()).samples
    assert len(kept) <= STORED_SAMPLES + 2
    for metric in ("a", "b"):
        offsets = [s.offset for s in kept if s.metric == metric]
        assert offsets[0] == 0.0
        assert offsets[-1] == float(per_metric - 1)
        assert offsets[1] - offsets[0] == 2.0  # every second one


def test_a_sample_that_is_not_a_finite_number_is_not_stored() -> None:
    samples = (
        MetricSample(metric="lateness", offset=0.0, value=math.inf),
        MetricSample(metric="lateness", offset=0.2, value=0.5),
        MetricSample(metric="lateness", offset=0.4, value=math.nan),
    )
    stored = json.loads(json.dumps(result(samples).to_stored_json(), allow_nan=False))
    back = ScenarioResult.from_json(stored)
    assert [(s.offset, s.value) for s in back.samples] == [(0.2, 0.5)]
