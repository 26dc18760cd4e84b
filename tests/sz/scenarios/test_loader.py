"""Loading scenarios: the model built, parameters substituted, each error's line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sz import builtin
from sz.scenarios import (
    ActionStep,
    BlockLoop,
    ChaosStep,
    Delay,
    Drop,
    FloodMailbox,
    HandlerSpec,
    KillActor,
    KillWorker,
    LoopStep,
    ParallelStep,
    Partition,
    PauseWorker,
    Quantity,
    Scenario,
    ScenarioError,
    SleepStep,
    StopActor,
    WaitUntilStep,
    WorkerSpec,
    load_scenario,
    parse_scenario,
    render,
)

EXAMPLES = Path(__file__).with_name("examples")
#: The issue's example, as written there.
ISSUE_EXAMPLE = (EXAMPLES / "issue18.yaml").read_text(encoding="utf-8")
#: The roadmap's ``schedule_storm``, as written there (blank lines and all).
ROADMAP_EXAMPLE = (EXAMPLES / "roadmap_schedule_storm.yaml").read_text(encoding="utf-8")


def scenario(body: str, **parameters: object) -> Scenario:
    """A scenario of ``test:`` and the (dedented) body below it."""
    text = "test:\n" + textwrap.indent(textwrap.dedent(body), "  ")
    return parse_scenario(text, source="s.yaml", parameters=parameters)


def refused(body: str, **parameters: object) -> ScenarioError:
    with pytest.raises(ScenarioError) as raised:
        scenario(body, **parameters)
    return raised.value


def test_the_issues_example_loads_into_the_model() -> None:
    loaded = parse_scenario(ISSUE_EXAMPLE, source="chaos.yaml")
    assert loaded.name == "chaos_kill_handlers"
    assert loaded.parameters == {"jobs": 2000, "kills": 50, "rate": 400}
    assert loaded.setup.handlers == (
        HandlerSpec(module="sz.builtin", methods=("noop",), concurrency=8),
    )
    assert loaded.setup.workers == (
        WorkerSpec(module="sz.builtin", methods=("noop",), count=2),
    )
    assert loaded.setup.worker_names == ("worker-1", "worker-2")
    load, settle = loaded.steps
    assert isinstance(load, ParallelStep)
    assert load.name == "load"
    submit, kills = load.steps
    assert submit == ActionStep(
        method="submit_jobs", args={"task": "noop", "count": 2000, "rate": 400}
    )
    assert kills == LoopStep(
        iterations=50,
        steps=(
            ChaosStep(fault=KillActor(target="/user/handlers/*", pick="random")),
            SleepStep(duration=0.05),
        ),
    )
    assert isinstance(settle, WaitUntilStep)
    assert (settle.condition.text, settle.timeout) == ("jobs_pending == 0", 60.0)
    assert [check.name for check in loaded.checks] == [
        "no_lost_jobs",
        "no_duplicate_jobs",
    ]
    assert [metric.name for metric in loaded.metrics] == [
        "jobs_per_sec",
        "job_latency",
        "restarts",
        "memory_usage",
    ]
    assert [str(assertion) for assertion in loaded.assertions] == [
        "lost_jobs == 0",
        "duplicate_jobs == 0",
        "p99(job_latency) < 2s",
    ]


def test_every_node_remembers_its_file_and_line() -> None:
    loaded = parse_scenario(ISSUE_EXAMPLE, source="chaos.yaml")
    assert str(loaded.location) == "chaos.yaml:2"
    load, settle = loaded.steps
    assert isinstance(load, ParallelStep)
    assert (load.location.line, settle.location.line) == (10, 19)
    submit, kills = load.steps
    assert (submit.location.line, kills.location.line) == (13, 14)
    assert isinstance(kills, LoopStep)
    assert [step.location.line for step in kills.steps] == [17, 18]
    assert [check.location.line for check in loaded.checks] == [20, 20]
    assert [condition.location.line for condition in loaded.assertions] == [23, 24, 25]
    assert loaded.setup.handlers[0].location.line == 6


def test_the_roadmaps_example_loads_as_written_there() -> None:
    loaded = parse_scenario(ROADMAP_EXAMPLE, source="storm.yaml")
    create, wait, delete = loaded.steps
    assert create == LoopStep(
        name="create_schedules",
        iterations=1000,
        steps=(
            ActionStep(
                method="create_schedule",
                args={
                    "task_id": "noop",
                    "trigger": {"type": "interval", "seconds": 10},
                },
            ),
        ),
    )
    assert wait == SleepStep(name="wait", duration=60.0)
    assert delete == LoopStep(
        name="delete_schedules",
        iterations=1000,
        steps=(ActionStep(method="delete_schedule"),),
    )
    # Without a setup, every built-in handler serves the run.
    assert loaded.setup.tasks == set(builtin.__all__)
    assert [(m.name, m.unit) for m in loaded.metrics] == [
        ("creation_rate", "schedules/sec"),
        ("deletion_rate", "schedules/sec"),
        ("memory_usage", "MB"),
        ("scheduler_latency", "ms"),
    ]
    # ``memory_usage: MB`` says what the bare 500 below it means.
    memory = loaded.assertions[2]
    assert (memory.text, str(memory)) == ("memory_usage < 500", "memory_usage < 500MB")


def test_scenario_walk_visits_every_step_depth_first() -> None:
    loaded = parse_scenario(ISSUE_EXAMPLE)
    assert [step.kind for step in loaded.walk()] == [
        "parallel",
        "action",
        "loop",
        "chaos",
        "sleep",
        "wait_until",
    ]


def test_load_scenario_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "chaos.yaml"
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")
    assert load_scenario(path).name == "chaos_kill_handlers"
    path.write_text(ISSUE_EXAMPLE.replace("type: loop", "type: lop"))
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(raised.value).startswith(f"{path}:14:17: unknown step type 'lop'")
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "missing.yaml")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ScenarioError, match="not UTF-8 text"):
        load_scenario(path)


# Parameters.


def test_a_whole_value_keeps_the_parameters_type_and_text_inside_text_is_text() -> None:
    loaded = scenario(
        """\
        parameters: {n: 3, pause: 0.5, task: noop, tag: run}
        name: "${tag}-${n} costs $$${n}"
        steps:
          - type: loop
            iterations: ${n}
            action: {method: submit_jobs, args: {task: "${task}", count: "${n}"}}
          - {type: sleep, duration: "${pause}"}
        """
    )
    assert loaded.name == "run-3 costs $3"
    loop, sleep = loaded.steps
    assert isinstance(loop, LoopStep)
    assert loop.iterations == 3
    assert loop.steps == (
        ActionStep(method="submit_jobs", args={"task": "noop", "count": 3}),
    )
    assert sleep == SleepStep(duration=0.5)


def test_parameters_substitute_into_conditions_too() -> None:
    loaded = scenario(
        """\
        parameters: {limit: 2s}
        name: s
        steps: [{type: sleep, duration: 1}]
        assertions: ["p99(job_latency) < ${limit}"]
        """
    )
    assert str(loaded.assertions[0]) == "p99(job_latency) < 2s"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"n": "7"}, 7),
        ({"n": 7}, 7),
        ({"pause": "2"}, 2.0),
        ({"pause": 2}, 2.0),
        ({"flag": "no"}, False),
        ({"flag": "TRUE"}, True),
        ({"label": "42"}, "42"),
    ],
)
def test_overrides_are_read_as_the_defaults_type(
    given: dict[str, object], expected: object
) -> None:
    loaded = scenario(
        """\
        parameters: {n: 1, pause: 0.5, flag: true, label: x}
        name: s
        steps: [{type: sleep, duration: 1}]
        """,
        **given,
    )
    ((name, _),) = given.items()
    assert loaded.parameters[name] == expected
    assert type(loaded.parameters[name]) is type(expected)


@pytest.mark.parametrize(
    ("given", "line", "problem"),
    [
        (
            {"n": "many"},
            2,
            "parameter n: expected a whole number like its default 1, got 'many'",
        ),
        ({"n": "2.5"}, 2, "expected a whole number"),
        ({"n": True}, 2, "expected a whole number"),
        ({"pause": "inf"}, 2, "parameter pause: expected a number like its default"),
        ({"flag": "maybe"}, 2, "parameter flag: expected true or false"),
        (
            {"m": "1"},
            2,
            "unknown parameter 'm' given (expected one of: flag, n, pause)",
        ),
    ],
)
def test_bad_overrides_name_the_parameter_and_its_type(
    given: dict[str, object], line: int, problem: str
) -> None:
    error = refused(
        """\
        parameters: {n: 1, pause: 0.5, flag: true}
        name: s
        steps: [{type: sleep, duration: 1}]
        """,
        **given,
    )
    assert error.line == line
    assert problem in error.problem


def test_an_unknown_parameter_names_its_file_line_and_column() -> None:
    error = refused(
        """\
        parameters: {jobs: 10}
        name: s
        steps:
          - type: action
            action: {method: submit_jobs, args: {task: noop, count: "${jbs}"}}
        """
    )
    assert str(error) == (
        "s.yaml:6:64: unknown parameter ${jbs} (did you mean 'jobs'? expected one "
        "of: jobs)"
    )


def test_text_in_parameters_is_not_substituted() -> None:
    loaded = scenario(
        """\
        parameters: {a: "${b}"}
        name: s
        steps: [{type: sleep, duration: 1}]
        """
    )
    assert loaded.parameters == {"a": "${b}"}


# Every kind of error names its line.


def doc(*lines: str) -> str:
    """The body below ``test:``, a line an argument."""
    return "\n".join(lines) + "\n"


#: A scenario body with one mistake, where the error is, and what it says.
ERRORS = [
    (
        doc(
            "name: s",
            "steps: [{type: lop}]",
        ),
        "s.yaml:3:18",
        (
            "unknown step type 'lop' (did you mean 'loop'? expected one of: action, "
            "chaos, loop, parallel, sleep, wait_until)"
        ),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {name: x}",
        ),
        "s.yaml:4",
        "step: missing field 'type' (expected one of: action, chaos, loop",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: sleep",
            "    duraton: 1",
        ),
        "s.yaml:5:7",
        "sleep step: unknown key 'duraton' (did you mean 'duration'?",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: sleep",
        ),
        "s.yaml:4",
        "sleep step: missing field 'duration'",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: sleep, duration: soon}",
        ),
        "s.yaml:4",
        (
            "sleep: duration: expected a duration (seconds, or a number with a unit "
            "such as 50ms), got 'soon'"
        ),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: sleep, duration: -1}",
        ),
        "s.yaml:4",
        "sleep: duration: expected a duration",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: action, action: {method: frobnicate}}",
        ),
        "s.yaml:4:39",
        (
            "unknown action 'frobnicate' (expected one of: create_schedule, "
            "delete_schedule, pause_schedule, resume_schedule, run_job, "
            "spawn_handler, stop_handler, submit_jobs)"
        ),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: action",
            "    action:",
            "      method: run_job",
            "      args: {task: noop, timout: 1}",
        ),
        "s.yaml:7",
        (
            "run_job: unknown argument 'timout' (did you mean 'timeout'? expected "
            "one of: args, kwargs, task, timeout)"
        ),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: action",
            "    action:",
            "      method: submit_jobs",
            "      args: {task: noop}",
        ),
        "s.yaml:6",
        "submit_jobs: missing argument 'count' (how many jobs)",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: action",
            "    action:",
            "      method: submit_jobs",
            "      args: {task: noop, count: 10, rate: fast}",
        ),
        "s.yaml:7",
        "submit_jobs: rate: expected a number > 0, got 'fast'",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: action",
            "    action:",
            "      method: submit_jobs",
            "      args: {task: nop, count: 1}",
        ),
        "s.yaml:7",
        (
            "submit_jobs: no handler or worker of the setup serves task 'nop' (did "
            "you mean 'noop'?"
        ),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: action",
            "    action:",
            "      method: create_schedule",
            "      args: {task_id: noop, trigger: {type: hourly}}",
        ),
        "s.yaml:7",
        (
            "create_schedule: trigger: unknown type 'hourly' (expected one of: "
            "calendarinterval, cron, date, interval)"
        ),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: action",
            "    action:",
            "      method: create_schedule",
            "      args: {task_id: noop, trigger: {type: interval, secs: 1}}",
        ),
        "s.yaml:7",
        "create_schedule: trigger: interval trigger: unknown field 'secs'",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: loop",
            "    iterations: 2",
            "    duration: 1",
            "    steps: [{type: sleep, duration: 1}]",
        ),
        "s.yaml:4",
        "loop step: expected exactly one of iterations and duration, got both",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - type: loop",
            "    steps: [{type: sleep, duration: 1}]",
        ),
        "s.yaml:4",
        ("loop step: expected exactly one of iterations and duration, got neither"),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: loop, iterations: 1}",
        ),
        "s.yaml:4",
        "loop step: expected exactly one of steps and action",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: loop, iterations: -1, steps: []}",
        ),
        "s.yaml:4",
        "loop: iterations: expected a whole number >= 0, got -1",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: parallel, steps: []}",
        ),
        "s.yaml:4",
        "parallel step: steps: expected a non-empty list, got []",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: chaos, fault: kill_everything}",
        ),
        "s.yaml:4:28",
        (
            "unknown fault 'kill_everything' (expected one of: block_loop, delay, "
            "drop, flood_mailbox, kill_actor, kill_worker, partition, pause_worker, "
            "stop_actor)"
        ),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: chaos, fault: kill_actor}",
        ),
        "s.yaml:4",
        "kill_actor: missing field 'target'",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: chaos, fault: kill_actor, target: handlers}",
        ),
        "s.yaml:4",
        (
            "kill_actor: target: expected an actor path glob such as "
            "/user/handlers/*, got 'handlers'"
        ),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: chaos, fault: kill_actor, target: /user/*,",
            "     pick: all, count: 2}",
        ),
        "s.yaml:5",
        "kill_actor: count does not go with pick: all",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: chaos, fault: kill_worker, signal: SIGHUP}",
        ),
        "s.yaml:4:49",
        "unknown signal 'SIGHUP' (expected one of: SIGKILL, SIGTERM)",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: chaos, fault: drop, probability: 2, duration: 1}",
        ),
        "s.yaml:4",
        "drop: probability: expected a number from 0 to 1, got 2",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: chaos, fault: block_loop, duration: 1, target: /user}",
        ),
        "s.yaml:4:53",
        (
            "block_loop: unknown key 'target' (expected one of: duration, fault, "
            "name, type)"
        ),
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: wait_until, condition: jobs_pending == 0}",
        ),
        "s.yaml:4",
        "wait_until step: missing field 'timeout'",
    ),
    (
        doc(
            "name: s",
            "steps:",
            "  - {type: wait_until, condition: 'jobs_pendng == 0', timeout: 5}",
        ),
        "s.yaml:4:38",
        (
            "wait_until condition: unknown metric 'jobs_pendng' (did you mean "
            "'jobs_pending'?"
        ),
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "checks: [no_lost_job]",
        ),
        "s.yaml:4:12",
        (
            "unknown check 'no_lost_job' (did you mean 'no_lost_jobs'? expected one "
            "of: no_duplicate_jobs, no_lost_jobs, recovery_time, restart_budget, "
            "schedule_fidelity)"
        ),
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "metrics: [latency]",
        ),
        "s.yaml:4:13",
        "unknown metric 'latency' (did you mean 'job_latency'?",
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "metrics:",
            "  - memory_usage: ms",
        ),
        "s.yaml:5",
        "metrics: memory_usage is in bytes, and 'ms' is in seconds",
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "assertions:",
            "  - p99(job_latency) < 500MB",
        ),
        "s.yaml:5:26",
        (
            "assertion: p99(job_latency) is in seconds and 500MB is in bytes: they "
            "cannot be compared"
        ),
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "assertions:",
            "  - lost_jobs = 0",
        ),
        "s.yaml:5:17",
        "assertion: unexpected '=' (compare with ==)",
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "steady_state:",
            "  - |",
            "    lost_jobs <",
        ),
        "s.yaml:5",
        (
            "steady_state: expected a number, a metric, a function such as "
            "p99(...), or '(', got the end (column 13 of 'lost_jobs <\\n')"
        ),
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "stepz: []",
        ),
        "s.yaml:4:3",
        "test: unknown key 'stepz' (did you mean 'steps'?",
    ),
    (
        doc(
            "steps: [{type: sleep, duration: 1}]",
        ),
        "s.yaml:2",
        "test: missing field 'name'",
    ),
    (
        doc(
            "name: s",
        ),
        "s.yaml:2",
        "test: missing field 'steps'",
    ),
    (
        doc(
            "name: s",
            "steps: []",
        ),
        "s.yaml:3",
        "steps: expected a non-empty list",
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "setup:",
            "  handlers: [nope]",
        ),
        "s.yaml:5:16",
        (
            "unknown built-in handler 'nope' (did you mean 'noop'? expected one of: "
            "echo, fail, log, noop, sleep)"
        ),
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "setup:",
            "  handlers: [{module: my.jobs}]",
        ),
        "s.yaml:5",
        ("setup.handlers: missing field 'methods' (or give task: a built-in name)"),
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "setup:",
            "  workers: [{module: my.jobs, methods: [a], count: 0}]",
        ),
        "s.yaml:5",
        "setup.workers: count: expected a whole number >= 1, got 0",
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "setup:",
            "  store: postgres",
        ),
        "s.yaml:5:12",
        "unknown store 'postgres' (expected one of: memory, sqlite)",
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "setup:",
            "  config:",
            "    governors:",
            "      rate_limit:",
            "        rate: fast",
        ),
        "s.yaml:8",
        ("setup.config: governors.rate_limit.rate: expected a number > 0, got 'fast'"),
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}]",
            "setup:",
            "  config:",
            "    web: {port: 1}",
        ),
        "s.yaml:6:7",
        (
            "setup.config: unknown key 'web' (expected one of: governors, "
            "reporting, scheduler)"
        ),
    ),
    (
        doc(
            "name: s",
            "name: t",
            "steps: [{type: sleep, duration: 1}]",
        ),
        "s.yaml:3:3",
        "duplicate key 'name' (first on line 2)",
    ),
    (
        doc(
            "name: s",
            "steps: [{type: sleep, duration: 1}",
        ),
        "s.yaml:4:1",
        "invalid YAML: expected ',' or ']', but got '<stream end>'",
    ),
]


@pytest.mark.parametrize(("body", "where", "problem"), ERRORS)
def test_each_error_names_the_file_the_line_and_what_was_expected(
    body: str, where: str, problem: str
) -> None:
    error = refused(body)
    assert str(error).startswith(f"{where}: {problem}"), str(error)
    assert "\n" not in str(error).rstrip("'")


def test_a_document_that_is_not_a_test_mapping_is_refused_at_line_one() -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario("scenario: {}\n", source="s.yaml")
    assert str(raised.value) == (
        "s.yaml:1: expected a mapping with the one key test, got the keys 'scenario'"
    )
    with pytest.raises(ScenarioError, match=r"^s\.yaml:1: empty"):
        parse_scenario("", source="s.yaml")
    with pytest.raises(ScenarioError, match="a scenario: expected a mapping, got"):
        parse_scenario("- 1\n", source="s.yaml")


# The model each step and fault becomes.


def test_every_fault_loads_into_its_class_with_durations_in_seconds() -> None:
    loaded = scenario(
        """\
        name: s
        setup: {workers: [{module: sz.builtin, methods: [noop], count: 3}]}
        steps:
          - {type: chaos, fault: kill_actor, target: /user/**, count: 3, pick: first}
          - {type: chaos, fault: stop_actor, target: /user/handlers/noop}
          - {type: chaos, fault: kill_worker, signal: SIGTERM, restart_after: 500ms}
          - {type: chaos, fault: pause_worker, target: worker-2, duration: 2s}
          - {type: chaos, fault: partition, pick: all, duration: 1.5m}
          - {type: chaos, fault: delay, delay: 50ms, jitter: 10ms, duration: 3}
          - {type: chaos, fault: drop, probability: 0.25, duration: 1}
          - {type: chaos, fault: block_loop, duration: 200ms}
          - {type: chaos, fault: flood_mailbox, target: /user/dispatcher, count: 1000}
        """
    )
    faults = [step.fault for step in loaded.steps if isinstance(step, ChaosStep)]
    assert faults == [
        KillActor(target="/user/**", count=3, pick="first"),
        StopActor(target="/user/handlers/noop"),
        KillWorker(signal="SIGTERM", restart_after=0.5),
        PauseWorker(target="worker-2", duration=2.0),
        Partition(pick="all", duration=90.0),
        Delay(delay=0.05, jitter=0.01, duration=3.0),
        Drop(probability=0.25, duration=1.0),
        BlockLoop(duration=0.2),
        FloodMailbox(target="/user/dispatcher", count=1000),
    ]
    assert [fault.kind for fault in faults] == [
        "kill_actor",
        "stop_actor",
        "kill_worker",
        "pause_worker",
        "partition",
        "delay",
        "drop",
        "block_loop",
        "flood_mailbox",
    ]


def test_every_action_loads_with_its_arguments_converted() -> None:
    loaded = scenario(
        """\
        name: s
        setup:
          handlers: [{module: my.jobs, methods: [send], concurrency: 2}, echo]
        steps:
          - type: action
            action:
              method: create_schedule
              args: {task_id: send, trigger: "*/5 * * * *", schedule_id: a, args: [1]}
          - {type: action, action: {method: pause_schedule, args: {schedule_id: a}}}
          - {type: action, action: {method: resume_schedule}}
          - {type: action, action: {method: delete_schedule, args: {schedule_id: a}}}
          - {type: action, action: {method: run_job, args: {task: echo, timeout: 2s}}}
          - type: action
            action:
              method: submit_jobs
              args: {task: send, count: 10, rate: 2.5, kwargs: {to: x}}
          - {type: action, action: {method: spawn_handler, args: {task: noop}}}
          - {type: action, action: {method: stop_handler, args: {task: send}}}
        """
    )
    assert [(step.method, step.args) for step in loaded.steps] == [  # type: ignore[union-attr]
        (
            "create_schedule",
            {
                "task_id": "send",
                "trigger": "*/5 * * * *",
                "schedule_id": "a",
                "args": (1,),
            },
        ),
        ("pause_schedule", {"schedule_id": "a"}),
        ("resume_schedule", {}),
        ("delete_schedule", {"schedule_id": "a"}),
        ("run_job", {"task": "echo", "timeout": 2.0}),
        (
            "submit_jobs",
            {"task": "send", "count": 10, "rate": 2.5, "kwargs": {"to": "x"}},
        ),
        ("spawn_handler", {"task": "noop"}),
        ("stop_handler", {"task": "send"}),
    ]
    assert loaded.setup.handlers[0] == HandlerSpec(
        module="my.jobs", methods=("send",), concurrency=2
    )


def test_spawn_and_stop_handler_want_a_local_task() -> None:
    error = refused(
        """\
        name: s
        setup: {handlers: [], workers: [{module: my.jobs, methods: [send]}]}
        steps: [{type: action, action: {method: stop_handler, args: {task: send}}}]
        """
    )
    assert error.line == 4
    assert "stop_handler: task 'send' is neither a local handler of the setup nor" in (
        error.problem
    )


def test_a_loop_for_a_duration_and_a_wait_until_condition_load() -> None:
    loaded = scenario(
        """\
        name: s
        metrics: [{scheduler_latency: ms}]
        steps:
          - {type: loop, duration: 2m, steps: [{type: sleep, duration: 0}]}
          - {type: wait_until, condition: "p99(scheduler_latency) < 5", timeout: 1m}
        steady_state: ["fds < 1000"]
        """
    )
    loop, wait = loaded.steps
    assert isinstance(loop, LoopStep)
    assert (loop.iterations, loop.duration) == (None, 120.0)
    assert isinstance(wait, WaitUntilStep)
    assert wait.timeout == 60.0
    assert isinstance(wait.condition.expression.right, Quantity)  # type: ignore[union-attr]
    assert render(wait.condition.expression) == "p99(scheduler_latency) < 5ms"
    assert [str(condition) for condition in loaded.steady_state] == ["fds < 1000"]


def test_anchors_and_merge_keys_work_as_yaml_says() -> None:
    loaded = scenario(
        """\
        name: s
        steps:
          - &kill {type: chaos, fault: kill_actor, target: /user/handlers/*}
          - <<: *kill
            pick: first
        """
    )
    first, second = loaded.steps
    assert isinstance(first, ChaosStep)
    assert isinstance(second, ChaosStep)
    assert second.fault == KillActor(target="/user/handlers/*", pick="first")


def test_warmup_is_a_duration_or_a_top_level_steps_name() -> None:
    steps = """\
        steps:
          - {name: warm, type: sleep, duration: 1s}
          - {name: day, type: sleep, duration: 1s}
        """
    assert scenario(f"name: s\nwarmup: 2.5s\n{textwrap.dedent(steps)}").warmup == 2.5
    assert scenario(f"name: s\nwarmup: 3\n{textwrap.dedent(steps)}").warmup == 3.0
    assert scenario(f"name: s\nwarmup: warm\n{textwrap.dedent(steps)}").warmup == "warm"
    assert scenario(f"name: s\n{textwrap.dedent(steps)}").warmup is None
    # Through a parameter, as the shipped soak's duration is.
    with_param = (
        f"name: s\nparameters: {{w: 1s}}\nwarmup: ${{w}}\n{textwrap.dedent(steps)}"
    )
    assert scenario(with_param, w="250ms").warmup == 0.25
    error = refused(f"name: s\nwarmup: warmer\n{textwrap.dedent(steps)}")
    assert str(error) == (
        "s.yaml:3: warmup: expected a duration (such as 10s) or the name of a "
        "top-level step (warm, day), got 'warmer'"
    )
