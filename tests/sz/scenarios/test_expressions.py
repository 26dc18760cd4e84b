"""The condition language: parsing, printing, checking names and units, evaluating."""

from __future__ import annotations

import pytest
from hypothesis import example, given, strategies as st

from sz.scenarios import (
    COMPARISONS,
    FUNCTIONS,
    MAX_EXPRESSION_DEPTH,
    And,
    Call,
    Compare,
    ExpressionError,
    Metric,
    MetricValue,
    Not,
    Number,
    Or,
    Predicate,
    Quantity,
    Value,
    check_expression,
    evaluate,
    metrics_named,
    parse_expression,
    render,
)

# Generated syntax trees.

KEYWORDS = {"and", "or", "not"}
names = st.from_regex(
    r"[A-Za-z_][A-Za-z0-9_]{0,8}(\.[A-Za-z_][A-Za-z0-9_]{0,5}){0,2}", fullmatch=True
).filter(lambda name: name not in KEYWORDS)
numbers = st.floats(allow_nan=False, allow_infinity=False)
units = st.sampled_from(
    [
        "s",
        "ms",
        "us",
        "m",
        "min",
        "h",
        "sec",
        "B",
        "KB",
        "MB",
        "GB",
        "KiB",
        "MiB",
        "GiB",
        "/s",
        "/m",
        "/h",
        "MB/s",
        "KB/h",
        "s/s",
        "B/min",
        "%",
        "%/s",
    ]
)
values: st.SearchStrategy[Value] = st.one_of(
    st.builds(Number, value=numbers),
    st.builds(Quantity, value=numbers, unit=units),
    st.builds(Metric, name=names),
    st.builds(
        Call,
        function=st.sampled_from(sorted(FUNCTIONS)),
        metric=st.builds(Metric, name=names),
    ),
)
comparisons: st.SearchStrategy[Predicate] = st.builds(
    Compare, op=st.sampled_from(COMPARISONS), left=values, right=values
)


def _joined(children: st.SearchStrategy[Predicate]) -> st.SearchStrategy[Predicate]:
    several = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.one_of(
        st.builds(And, operands=several),
        st.builds(Or, operands=several),
        st.builds(Not, operand=children),
    )


conditions = st.recursive(comparisons, _joined, max_leaves=12)


@given(conditions)
@example(Compare(op="<", left=Number(value=-0.0), right=Quantity(value=1e-7, unit="s")))
@example(
    Not(
        operand=Not(
            operand=Compare(op="==", left=Metric(name="a"), right=Metric(name="b"))
        )
    )
)
def test_a_printed_condition_parses_back_to_the_same_tree(condition: Predicate) -> None:
    assert parse_expression(render(condition)) == condition


@given(st.text())
def test_arbitrary_text_raises_nothing_but_expression_error(text: str) -> None:
    try:
        parse_expression(text)
    except ExpressionError as error:
        column = error.column
    else:
        return
    assert 1 <= column <= len(text) + 1


@given(st.text(alphabet="ab1.2e()<=>!&|-+ sMBK/_%", max_size=40))
def test_text_near_the_language_raises_nothing_but_expression_error(text: str) -> None:
    try:
        parse_expression(text)
    except ExpressionError as error:
        column = error.column
    else:
        return
    assert 1 <= column <= len(text) + 1


# Syntax.


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    parsed = parse_expression("a < 1 or not b < 2 and c < 3")
    a, b, c = (parse_expression(f"{n} < {v}") for n, v in ("a1", "b2", "c3"))
    assert parsed == Or(operands=(a, And(operands=(Not(operand=b), c))))


def test_a_chain_of_and_is_one_node_with_every_operand() -> None:
    parsed = parse_expression("a == 0 and b == 0 and c == 0")
    assert isinstance(parsed, And)
    assert [render(operand) for operand in parsed.operands] == [
        "a == 0",
        "b == 0",
        "c == 0",
    ]


def test_numbers_keep_their_units_and_functions_their_metric() -> None:
    parsed = parse_expression("p99(job_latency) < 1.5m")
    assert parsed == Compare(
        op="<",
        left=Call(function="p99", metric=Metric(name="job_latency")),
        right=Quantity(value=1.5, unit="m"),
    )


def test_positions_are_kept_but_do_not_change_what_a_tree_means() -> None:
    spaced = parse_expression("  lost_jobs   ==  0")
    assert spaced == parse_expression("lost_jobs==0")
    assert isinstance(spaced, Compare)
    assert (spaced.left.column, spaced.column, spaced.right.column) == (3, 15, 19)


def test_dotted_metric_names_are_one_name() -> None:
    parsed = parse_expression("handlers.echo.latency > 0")
    assert isinstance(parsed, Compare)
    assert parsed.left == Metric(name="handlers.echo.latency")


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("lost_jobs", 1, "expected a condition (a comparison such as lost_jobs =="),
        ("a = 1", 3, "unexpected '=' (compare with ==)"),
        ("a < 1 && b < 2", 7, "unexpected '&' (join with and)"),
        ("a < 1 || b < 2", 7, "unexpected '|' (join with or)"),
        ("a < 2xs", 6, "unknown unit 'xs' (expected one of: h, m, min, ms, s"),
        ("a < 5 MB", 7, "a unit follows its number with no space: 5MB"),
        ("a < 5 %", 7, "unexpected '%'"),
        ("a < %5", 5, "unexpected '%'"),
        ("a < 5%%", 7, "unexpected '%'"),
        ("p95x(a) < 1", 1, "unknown function 'p95x' (did you mean 'p95'?"),
        ("p99(2) < 1", 5, "expected a metric name inside p99(...), got '2'"),
        ("p99(a < 1", 7, "expected ')' to close p99(, got '<'"),
        ("0 < a < 1", 7, "comparisons do not chain: join them with and"),
        ("(a < 1) < 2", 4, "expected a value on each side of <, got a condition"),
        ("a <", 4, "expected a number, a metric, a function such as p99(...), or '('"),
        ("((a < 1)", 9, "expected and, or, or ')' to close the '(' at column 1"),
        ("a 0", 3, "expected a comparison (<, <=, >, >=, ==, !=), got '0'"),
        ("a < 1 b", 7, "expected and, or, or the end, got 'b'"),
        ("a < 1 and 2", 11, "expected a condition (a comparison such as"),
        ("not 3", 5, "expected a condition (a comparison such as"),
        ("a < 1e999", 5, "'1e999' is too large a number"),
        ("", 1, "expected a number, a metric, a function"),
    ],
)
def test_bad_syntax_names_the_column_and_what_was_expected(
    text: str, column: int, problem: str
) -> None:
    with pytest.raises(ExpressionError) as raised:
        parse_expression(text)
    assert raised.value.column == column
    assert problem in raised.value.problem
    assert str(raised.value).startswith(f"column {column}: ")


def test_nesting_past_the_limit_is_refused_not_a_recursion_error() -> None:
    deep = "(" * (MAX_EXPRESSION_DEPTH + 1) + "a < 1" + ")" * (MAX_EXPRESSION_DEPTH + 1)
    with pytest.raises(ExpressionError, match="nested deeper than"):
        parse_expression(deep)
    negated = "not " * (MAX_EXPRESSION_DEPTH + 1) + "a < 1"
    with pytest.raises(ExpressionError, match="nested deeper than"):
        parse_expression(negated)
    fine = "(" * MAX_EXPRESSION_DEPTH + "a < 1" + ")" * MAX_EXPRESSION_DEPTH
    assert parse_expression(fine) == parse_expression("a < 1")


# Names and units.


def checked(text: str, **display_units: str) -> Predicate:
    return check_expression(parse_expression(text), display_units=display_units)


@pytest.mark.parametrize(
    "text",
    [
        "p99(job_latency) < 2s",
        "job_latency <= 50ms",
        "memory_usage < 500MB",
        "max(memory_usage) < 1.5GiB",
        "lost_jobs == 0 and duplicate_jobs == 0",
        "jobs_per_sec > 100",
        "jobs_per_sec > 100/s",
        "creation_rate >= 2000",
        "rate(memory_usage) < 100KB/s",
        "rate(fds) < 0.1/s",
        "count(job_latency) > 0",
        "p50(scheduler_latency) < p99(job_latency)",
        "not (restarts > 10 or fds >= 1000)",
        "error_rate < 1%",
        "error_rate <= 0.01",
        "error_rate < 0.5% or lost_jobs == 0",
    ],
)
def test_conditions_whose_units_agree_pass_the_check(text: str) -> None:
    assert checked(text) == parse_expression(text)


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        (
            "job_latncy < 2s",
            1,
            (
                "unknown metric 'job_latncy' (did you mean 'job_latency'? expected "
                "one of: creation_rate, deletion_rate, duplicate_jobs, error_rate, "
                "fds, job_latency, jobs_pending, jobs_per_sec, lost_jobs, "
                "memory_usage, restarts, scheduler_latency)"
            ),
        ),
        (
            "p99(nope) < 2s",
            5,
            "unknown metric 'nope'",
        ),
        (
            "job_latency < 500MB",
            15,
            "job_latency is in seconds and 500MB is in bytes: they cannot be compared",
        ),
        ("2s < memory_usage", 6, "2s is in seconds and memory_usage is in bytes"),
        ("jobs_per_sec > 5MB/s", 16, "is in per second and 5MB/s is in bytes per"),
        ("lost_jobs < 1s", 13, "lost_jobs is in count and 1s is in seconds"),
        ("lost_jobs < 1%", 13, "lost_jobs is in count and 1% is in ratio"),
        ("error_rate < 1s", 14, "error_rate is in ratio and 1s is in seconds"),
        (
            "p99(job_latency) < 2",
            20,
            (
                "p99(job_latency) is in seconds: give 2 a unit, as in 2s or 50ms (or "
                "show job_latency in a unit in the metrics section)"
            ),
        ),
        ("memory_usage < 500", 16, "give 500 a unit, as in 500MB"),
        ("p99(lost_jobs) > 0", 1, "p99() reads samples, and lost_jobs is one"),
        ("rate(jobs_per_sec) > 0", 1, "jobs_per_sec is already per second"),
        ("rate(job_latency) > 1s", 21, "per second and 1s is in seconds"),
    ],
)
def test_unknown_metrics_and_units_that_disagree_are_refused_with_the_column(
    text: str, column: int, problem: str
) -> None:
    with pytest.raises(ExpressionError) as raised:
        checked(text)
    assert raised.value.column == column
    assert problem in raised.value.problem


def test_a_bare_number_takes_the_unit_its_metric_is_shown_in() -> None:
    # The roadmap's ``memory_usage: MB`` then ``memory_usage < 500``.
    assert render(checked("memory_usage < 500", memory_usage="MB")) == (
        "memory_usage < 500MB"
    )
    assert render(checked("p99(scheduler_latency) < 50", scheduler_latency="ms")) == (
        "p99(scheduler_latency) < 50ms"
    )
    assert render(checked("rate(memory_usage) < 1", memory_usage="MB")) == (
        "rate(memory_usage) < 1MB/s"
    )
    # A rate shown per second, or a count in words, keeps its bare numbers.
    assert render(checked("creation_rate > 100", creation_rate="schedules/sec")) == (
        "creation_rate > 100"
    )
    assert render(checked("creation_rate > 2", creation_rate="schedules/min")) == (
        "creation_rate > 2/min"
    )
    # A ratio shown in % reads a bare number in percent; without, as the ratio.
    assert render(checked("error_rate < 1", error_rate="%")) == "error_rate < 1%"
    assert render(checked("error_rate < 0.01")) == "error_rate < 0.01"


def test_metrics_named_lists_every_metric_read() -> None:
    condition = parse_expression("a < 1 and (p99(b) > 2s or not c.d == 0)")
    assert metrics_named(condition) == {"a", "b", "c.d"}


# Evaluation.


def value_of(text: str, **metrics: MetricValue) -> bool:
    return evaluate(parse_expression(text), metrics)


def test_quantities_compare_in_base_units() -> None:
    assert value_of("2s == 2000ms")
    assert value_of("1.5m == 90s")
    assert value_of("1KiB == 1024B")
    assert value_of("1MB == 1000KB")
    assert value_of("1GB < 1GiB")
    assert value_of("60/m == 1/s")
    assert value_of("3600MB/h == 1MB/s")
    assert value_of("-1s < 0s")
    assert value_of("1% == 0.01")
    assert value_of("100% == 1")
    assert value_of("50%/s == 0.5/s")


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_a_percentage_is_a_hundredth_of_its_number(number: float) -> None:
    parsed = parse_expression(f"error_rate < {number!r}%")
    assert isinstance(parsed, Compare)
    assert isinstance(parsed.right, Quantity)
    assert parsed.right.base_value == number * 0.01


def test_error_rate_below_one_percent_reads_the_ratio() -> None:
    condition = checked("error_rate < 1%")
    assert evaluate(condition, {"error_rate": 0.009})
    assert not evaluate(condition, {"error_rate": 0.01})
    shown = checked("error_rate < 1", error_rate="%")
    assert evaluate(shown, {"error_rate": 0.009})
    assert not evaluate(shown, {"error_rate": 0.5})


def test_a_bare_metric_reads_its_number_or_latest_sample() -> None:
    assert value_of("lost_jobs == 0", lost_jobs=0)
    assert value_of("jobs_pending == 0", jobs_pending=[5, 3, 0])
    assert value_of("fds == 12", fds=[(0.0, 10), (1.0, 12)])
    assert not value_of("lost_jobs == 0", lost_jobs=1)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("p50", 5.5),
        ("p90", 9.1),
        ("p99", 9.91),
        ("max", 10.0),
        ("min", 1.0),
        ("mean", 5.5),
        ("count", 10.0),
    ],
)
def test_functions_of_samples(function: str, expected: float) -> None:
    samples = [3.0, 1.0, 2.0, 10.0, 4.0, 5.0, 6.0, 9.0, 7.0, 8.0]
    call = Call(function=function, metric=Metric(name="m"))
    assert evaluate(call, {"m": samples}) == pytest.approx(expected)


def test_rate_is_the_slope_of_timed_samples_per_second() -> None:
    growing = [(float(t), 100.0 + 2.0 * t) for t in range(10)]
    assert evaluate(parse_expression("rate(m) == 2"), {"m": growing})
    flat_but_noisy = [(0.0, 10.0), (1.0, 11.0), (2.0, 10.0), (3.0, 11.0), (4.0, 10.0)]
    rate = Call(function="rate", metric=Metric(name="m"))
    assert abs(evaluate(rate, {"m": flat_but_noisy})) < 0.1


def test_the_percentile_of_one_sample_is_that_sample() -> None:
    p99 = Call(function="p99", metric=Metric(name="m"))
    assert evaluate(p99, {"m": [4.0]}) == 4.0
    assert evaluate(p99, {"m": 7.0}) == 7.0


def test_and_or_not_evaluate_as_logic_and_stop_at_the_first_answer() -> None:
    assert value_of("a == 1 and b == 2", a=1, b=2)
    assert not value_of("a == 1 and b == 2", a=1, b=3)
    assert value_of("a == 0 or b == 2", a=1, b=2)
    assert value_of("not a == 0", a=1)
    # ``b`` has no value: read only if ``a`` does not settle the answer.
    assert value_of("a == 1 or b == 2", a=1)
    assert not value_of("a == 0 and b == 2", a=1)


@pytest.mark.parametrize(
    ("text", "metrics", "column", "problem"),
    [
        ("a < 1", {}, 1, "no value for metric 'a'"),
        ("a < 1", {"a": []}, 1, "no samples of a"),
        ("p99(a) < 1", {"a": []}, 1, "no samples of a"),
        ("x < 1 or rate(a) < 1", {"x": 2, "a": [1.0, 2.0]}, 10, "rate() needs two"),
        ("rate(a) < 1", {"a": [(1.0, 1.0), (1.0, 2.0)]}, 1, "at different times"),
    ],
)
def test_evaluation_without_the_values_it_needs_names_the_column(
    text: str,
    metrics: dict[str, MetricValue],
    column: int,
    problem: str,
) -> None:
    with pytest.raises(ExpressionError) as raised:
        evaluate(parse_expression(text), metrics)
    assert raised.value.column == column
    assert problem in raised.value.problem


def test_a_checked_bare_number_is_evaluated_in_its_display_unit() -> None:
    condition = checked("memory_usage < 500", memory_usage="MB")
    assert evaluate(condition, {"memory_usage": [400e6]})
    assert not evaluate(condition, {"memory_usage": [600e6]})


def test_rate_after_a_warm_up_reads_only_the_samples_from_its_end() -> None:
    condition = parse_expression("rate(m) < 0.5/s")
    # Rising fast while warming up (to 3s), flat after.
    samples = [(0.0, 0.0), (1.0, 10.0), (2.0, 20.0), (3.0, 30.0), (4.0, 30.0)]
    assert not evaluate(condition, {"m": samples})
    assert evaluate(condition, {"m": samples}, trend_after=3.0)
    assert evaluate(parse_expression("max(m) == 30"), {"m": samples}, trend_after=3.0)
    with pytest.raises(ExpressionError, match="samples of m after the warm-up"):
        evaluate(condition, {"m": samples}, trend_after=4.0)
