from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

import attrs
import pytest

from sz.config import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_NODES,
    MAX_RETENTION_DAYS,
    BuiltinHandlerModule,
    Config,
    ConfigError,
    HandlerLimits,
    RateLimitConfig,
    StoreConfig,
    WebConfig,
    load_config,
    parse_config,
)
from sz.errors import SzError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

# ROADMAP.md's "Configuration" section, byte for byte: its blank lines keep the
# roadmap's indentation, which the noqa protects from editors and formatters.
ROADMAP_EXAMPLE = """\
# config.yaml
scheduler:
  mode: embedded  # or "distributed"
  
handlers:
  # Built-in handlers (embedded mode)
  builtin:
    - module: schedule_zero.handlers.notifications
      methods: [send_email, send_sms]
    - module: myapp.handlers
      methods: [process_data, backup_db]
  
  # ZMQ handlers (distributed mode)
  zmq:
    registration_server: "tcp://localhost:5555"
    timeout_seconds: 60

governors:
  rate_limit:
    enabled: true
    rate: 100  # per second
    burst: 200
  
  concurrency:
    enabled: true
    max_concurrent: 50
  
  per_handler_limits:
    send_email:
      rate: 10  # emails per second
      concurrent: 5

reporting:
  handler_health:
    enabled: true
    check_interval_seconds: 30
  
  metrics:
    enabled: true
    retention_days: 30
"""  # noqa: W293


@pytest.fixture
def write_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], str]:
    """Write ``config.yaml`` in a fresh working directory; return its name."""
    monkeypatch.chdir(tmp_path)

    def write(text: str) -> str:
        (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
        return "config.yaml"

    return write


def error_for(text: str, write_config: Callable[[str], str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(text))
    return str(caught.value)


# Defaults


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "{}\n"])
def test_an_empty_file_gives_the_defaults(
    text: str, write_config: Callable[[str], str]
) -> None:
    assert load_config(write_config(text)) == Config()


def test_none_and_an_empty_mapping_parse_to_the_defaults() -> None:
    assert parse_config(None) == Config()
    assert parse_config({}) == Config()


def test_a_section_with_nothing_under_it_gives_that_sections_defaults() -> None:
    config = parse_config({"web": None, "handlers": {"builtin": None}})
    assert config == Config()


def test_the_defaults_are_the_documented_ones() -> None:
    config = Config()
    assert config.scheduler.mode == "embedded"
    assert config.scheduler.drain_timeout == 5.0
    assert config.handlers.builtin == ()
    assert config.handlers.zmq.registration_server == "tcp://127.0.0.1:5555"
    assert config.handlers.zmq.timeout_seconds == 60.0
    assert not config.governors.rate_limit.enabled
    assert config.governors.rate_limit.rate == 100.0
    assert config.governors.rate_limit.burst == 200
    assert not config.governors.concurrency.enabled
    assert config.governors.concurrency.max_concurrent == 50
    assert config.governors.per_handler_limits == {}
    assert config.reporting.handler_health.enabled
    assert config.reporting.handler_health.check_interval_seconds == 30.0
    assert config.reporting.metrics.enabled
    assert config.reporting.metrics.retention_days == 30
    assert config.store.url is None


def test_the_web_gateway_is_on_and_binds_127_0_0_1_port_8080_by_default() -> None:
    assert parse_config({}).web == WebConfig(
        enabled=True,
        host="127.0.0.1",
        port=8080,
        token=None,
        allowed_hosts=None,
        allow_origins=(),
        mutations=True,
        max_body_bytes=65536,
    )
    assert parse_config({"web": {"enabled": False}}).web.host == "127.0.0.1"


def test_the_web_gateways_security_settings_load_from_the_file() -> None:
    web = parse_config(
        {
            "web": {
                "host": "0.0.0.0",
                "port": 0,
                "token": "t" * 16,
                "allowed_hosts": ["sz.example.com", "*"],
                "allow_origins": ["https://ops.example.com:8443"],
                "mutations": False,
                "max_body_bytes": 1024,
            }
        }
    ).web
    assert web.port == 0
    assert web.token == "t" * 16
    assert web.allowed_hosts == ("sz.example.com", "*")
    assert web.allow_origins == ("https://ops.example.com:8443",)
    assert not web.mutations
    assert web.max_body_bytes == 1024


def test_a_web_token_is_never_shown_in_a_message_nor_a_repr() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"web": {"token": "hunter2"}})
    assert "hunter2" not in str(caught.value)
    assert str(caught.value) == (
        "<config>: web.token: expected a token of at least 16 characters without "
        "spaces, got 7 characters (not shown)"
    )
    assert "t" * 16 not in repr(WebConfig(token="t" * 16))


def test_unset_keys_keep_their_defaults_beside_set_ones() -> None:
    config = parse_config({"governors": {"rate_limit": {"rate": 5}}})
    assert config.governors.rate_limit == RateLimitConfig(rate=5)
    assert config.governors.concurrency == Config().governors.concurrency


# The roadmap's example


def test_the_roadmaps_example_file_loads_as_is(
    write_config: Callable[[str], str],
) -> None:
    config = load_config(write_config(ROADMAP_EXAMPLE))
    assert config.scheduler.mode == "embedded"
    assert config.handlers.builtin == (
        BuiltinHandlerModule(
            module="schedule_zero.handlers.notifications",
            methods=("send_email", "send_sms"),
        ),
        BuiltinHandlerModule(
            module="myapp.handlers", methods=("process_data", "backup_db")
        ),
    )
    assert config.handlers.zmq.registration_server == "tcp://localhost:5555"
    assert config.handlers.zmq.timeout_seconds == 60
    assert config.governors.rate_limit == RateLimitConfig(
        enabled=True, rate=100, burst=200
    )
    assert config.governors.concurrency.enabled
    assert config.governors.concurrency.max_concurrent == 50
    assert config.governors.per_handler_limits == {
        "send_email": HandlerLimits(rate=10, concurrent=5)
    }
    assert config.reporting.handler_health.check_interval_seconds == 30
    assert config.reporting.metrics.retention_days == 30
    assert config.store == StoreConfig()
    assert config.web == WebConfig()


def test_a_handler_limit_may_set_only_its_rate() -> None:
    config = parse_config({"governors": {"per_handler_limits": {"x": {"rate": 2.5}}}})
    assert config.governors.per_handler_limits["x"] == HandlerLimits(rate=2.5)


def test_distributed_mode_is_accepted() -> None:
    assert parse_config({"scheduler": {"mode": "distributed"}}).scheduler.mode == (
        "distributed"
    )


# store


def test_store_memory_keeps_everything_in_memory() -> None:
    assert parse_config({"store": "memory"}).store == StoreConfig(url=None)


def test_store_url_names_the_database() -> None:
    config = parse_config({"store": {"url": "sqlite:///schedulezero.db"}})
    assert config.store.url == "sqlite:///schedulezero.db"


def test_a_nodes_settings_default_to_a_lease_of_10_s_and_a_third_of_it() -> None:
    store = parse_config({"store": {"url": "postgresql://sz@db/jobs"}}).store
    assert (store.node, store.lease, store.heartbeat) == (None, 10.0, None)
    assert store.heartbeat_seconds == pytest.approx(10 / 3)
    named = parse_config(
        {"store": {"url": "postgresql://sz@db/jobs", "node": "n-1", "lease": 4}}
    ).store
    assert named.node == "n-1"
    assert named.heartbeat_seconds == pytest.approx(4 / 3)


# Configs are values


def test_configs_are_frozen_and_hashable() -> None:
    config = parse_config({"governors": {"per_handler_limits": {"x": {"rate": 1}}}})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.web = WebConfig()  # type: ignore[misc]
    assert hash(config) == hash(
        parse_config({"governors": {"per_handler_limits": {"x": {"rate": 1}}}})
    )


def test_a_class_built_in_python_is_held_to_the_same_rules() -> None:
    with pytest.raises(ValueError, match=r"^rate: expected a number > 0, got 'fast'$"):
        RateLimitConfig(rate="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^port: expected a port from 0 to 65535"):
        WebConfig(port=65536)


# Error messages: one line, "<file>: <key.path>: <problem>"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "governors:\n  rate_limit:\n    rate: fast\n",
            "governors.rate_limit.rate: expected a number > 0, got 'fast'",
            id="wrong-type",
        ),
        pytest.param(
            "governors:\n  rate_limit:\n    rate: -1\n",
            "governors.rate_limit.rate: expected a number > 0, got -1",
            id="bad-value",
        ),
        pytest.param(
            "governors:\n  rate_limit:\n    rate: true\n",
            "governors.rate_limit.rate: expected a number > 0, got true",
            id="bool-for-number",
        ),
        pytest.param(
            "governors:\n  concurrency:\n    max_concurrent: 2.5\n",
            "governors.concurrency.max_concurrent: expected an integer > 0, got 2.5",
            id="float-for-integer",
        ),
        pytest.param(
            "web:\n  enabled: 'on'\n",
            "web.enabled: expected true or false, got 'on'",
            id="string-for-bool",
        ),
        pytest.param(
            "web:\n  port: 70000\n",
            "web.port: expected a port from 0 to 65535 (0: any free port), got 70000",
            id="bad-port",
        ),
        pytest.param(
            "scheduler:\n  mode: local\n",
            "scheduler.mode: expected one of 'embedded', 'distributed', got 'local'",
            id="bad-choice",
        ),
        pytest.param(
            "scheduler:\n  drain_timeout: -1\n",
            "scheduler.drain_timeout: expected a number of seconds from 0 to 3600, "
            "got -1",
            id="negative-drain",
        ),
        pytest.param(
            "scheduler:\n  drain_timeout: .inf\n",
            "scheduler.drain_timeout: expected a number of seconds from 0 to 3600, "
            "got inf",
            id="infinite-drain",
        ),
        pytest.param(
            "governors:\n  rate_limt:\n    rate: 5\n",
            "governors.rate_limt: unknown key "
            "(expected one of: adaptive, backpressure, concurrency, "
            "per_handler_limits, per_method_limits, rate_limit)",
            id="unknown-key-at-depth",
        ),
        pytest.param(
            "schedular:\n  mode: embedded\n",
            "schedular: unknown key (expected one of: "
            "governors, handlers, reporting, scheduler, schedules, store, web)",
            id="unknown-key-at-top",
        ),
        pytest.param(
            "handlers:\n  builtin:\n    - module: a\n      methods: [x]\n"
            "    - module: 3\n      methods: [y]\n",
            "handlers.builtin[1].module: expected a dotted module name, got 3",
            id="bad-list-item",
        ),
        pytest.param(
            "handlers:\n  builtin:\n    - module: a\n      methods: [x, 5]\n",
            "handlers.builtin[0].methods[1]: expected a task name, got 5",
            id="bad-item-in-nested-list",
        ),
        pytest.param(
            "handlers:\n  builtin:\n    - module: a\n      method: [x]\n",
            "handlers.builtin[0].methods: required key missing; "
            "handlers.builtin[0].method: unknown key "
            "(expected one of: methods, module)",
            id="misspelt-key-in-list-item",
        ),
        pytest.param(
            "handlers:\n  builtin:\n    - module: a\n      methods: send_email\n",
            "handlers.builtin[0].methods: expected a list, got 'send_email'",
            id="string-for-list",
        ),
        pytest.param(
            "governors:\n  concurrency: 3\n",
            "governors.concurrency: expected a mapping, got 3",
            id="scalar-for-section",
        ),
        pytest.param(
            "governors:\n  per_handler_limits:\n    send_email:\n      rate: fast\n",
            "governors.per_handler_limits.send_email.rate: "
            "expected a number > 0, got 'fast'",
            id="bad-value-under-a-handler-name",
        ),
        pytest.param(
            "store: 5\n",
            "store: expected 'memory' or a mapping with a url, got 5",
            id="bad-store",
        ),
        pytest.param(
            "store:\n  url: schedulezero.db\n",
            "store.url: expected a database URL such as "
            "'sqlite:///schedulezero.db' or 'postgresql://user@host:port/database', "
            "got 'schedulezero.db'",
            id="bad-store-url",
        ),
        pytest.param(
            "store:\n  node: two words\n",
            "store.node: expected a node name of 1 to 100 letters, digits or "
            "'.-_:@', got 'two words'",
            id="bad-node-name",
        ),
        pytest.param(
            "store:\n  lease: 0\n",
            "store.lease: expected a number of seconds from 1 to 3600, got 0",
            id="bad-lease",
        ),
        pytest.param(
            "store:\n  lease: 5\n  heartbeat: 5\n",
            "store.heartbeat: expected a number of seconds below lease (5), got 5",
            id="heartbeat-not-below-lease",
        ),
        pytest.param(
            "handlers:\n  zmq:\n    registration_server: tcp://127.0.0.1:70000\n",
            "handlers.zmq.registration_server: expected tcp://HOST:PORT with a port "
            "from 1 to 65535 (or * for a free one), got 'tcp://127.0.0.1:70000'",
            id="bad-endpoint-port",
        ),
        pytest.param(
            "handlers:\n  zmq:\n    registration_server: 127.0.0.1:5555\n",
            "handlers.zmq.registration_server: expected a ZeroMQ endpoint: "
            "tcp://HOST:PORT, ipc://PATH or inproc://NAME, got '127.0.0.1:5555'",
            id="endpoint-without-scheme",
        ),
        pytest.param(
            "- scheduler\n",
            "expected a mapping, got ['scheduler']",
            id="not-a-mapping",
        ),
        pytest.param(
            "web:\n  port: -1\nscheduler:\n  mode: local\n",
            "scheduler.mode: expected one of 'embedded', 'distributed', got 'local'; "
            "web.port: expected a port from 0 to 65535 (0: any free port), got -1",
            id="several-problems",
        ),
    ],
)
def test_a_bad_file_gets_one_line_naming_the_key_path_and_the_problem(
    text: str, message: str, write_config: Callable[[str], str]
) -> None:
    assert error_for(text, write_config) == f"config.yaml: {message}"


def test_a_missing_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config("config.yaml")
    assert str(caught.value) == "config.yaml: no such file"


def test_a_directory_is_not_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config("config.yaml")
    assert str(caught.value).startswith("config.yaml: cannot read the file (")


def test_a_yaml_syntax_error_names_the_file_and_line(
    write_config: Callable[[str], str],
) -> None:
    assert error_for("web:\n  port: 80\n  host: a: b\n", write_config) == (
        "config.yaml: line 3, column 10: invalid YAML: "
        "mapping values are not allowed here"
    )


def test_a_file_that_is_not_utf_8_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_bytes(b"web:\n  host: \xff\n")
    with pytest.raises(ConfigError) as caught:
        load_config("config.yaml")
    assert str(caught.value) == "config.yaml: not UTF-8 text (byte 13)"


def test_parse_config_names_its_source() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"web": {"port": "http"}}, source="inline")
    assert str(caught.value) == (
        "inline: web.port: expected a port from 0 to 65535 (0: any free port), "
        "got 'http'"
    )
    with pytest.raises(ConfigError, match=r"^<config>: web\.port: "):
        parse_config({"web": {"port": "http"}})


def test_an_odd_handler_name_is_quoted_in_the_key_path() -> None:
    data = {"governors": {"per_handler_limits": {"send email": {"concurrent": 0}}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="config.yaml")
    assert str(caught.value) == (
        "config.yaml: governors.per_handler_limits['send email'].concurrent: "
        "expected an integer > 0, got 0"
    )


def test_config_error_is_an_sz_error_and_a_value_error_with_its_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"governors": {"rate_limit": {"rate": 0}}, "web": {"hots": "x"}},
            source="config.yaml",
        )
    error = caught.value
    assert isinstance(error, SzError)
    assert isinstance(error, ValueError)
    assert error.source == "config.yaml"
    assert error.problems == (
        ("governors.rate_limit.rate", "expected a number > 0, got 0"),
        (
            "web.hots",
            (
                "unknown key (expected one of: allow_origins, allowed_hosts, enabled, "
                "host, max_body_bytes, mutations, port, token)"
            ),
        ),
    )
    assert "\n" not in str(error)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


# Hardening: what the loader refuses before it builds anything


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "web:\n  port: 80\nweb:\n  port: 81\n",
            "line 3, column 1: invalid YAML: duplicate key 'web' (first on line 1)",
            id="top-level",
        ),
        pytest.param(
            "web: {port: 80, port: 81}\n",
            "line 1, column 17: invalid YAML: duplicate key 'port' (first on line 1)",
            id="flow-mapping",
        ),
    ],
)
def test_a_key_written_twice_is_an_error_not_the_last_one_wins(
    text: str, message: str, write_config: Callable[[str], str]
) -> None:
    assert error_for(text, write_config) == f"config.yaml: {message}"


def test_a_merge_key_may_still_be_overridden(
    write_config: Callable[[str], str],
) -> None:
    config = load_config(
        write_config(
            "governors:\n  per_method_limits:\n"
            "    a: &slow {rate: 1, burst: 2}\n    b: {<<: *slow, rate: 3}\n"
        )
    )
    assert config.governors.per_method_limits["b"].rate == 3


def test_a_file_nested_past_the_cap_is_one_line(
    write_config: Callable[[str], str],
) -> None:
    # Deep enough to exhaust the stack of a recursive composer.
    text = "schedules: " + "[" * 100_000 + "]" * 100_000 + "\n"
    assert error_for(text, write_config) == (
        f"config.yaml: line 1, column {12 + MAX_CONFIG_DEPTH - 1}: invalid YAML: "
        f"nested deeper than {MAX_CONFIG_DEPTH} levels"
    )


def alias_bomb(levels: int, width: int = 10, indent: str = "") -> str:
    """Anchors each repeating the one before ``width`` times ("billion laughs")."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [
        f"{indent}l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]"
        for n in range(1, levels)
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("where", "text"),
    [
        pytest.param("top", alias_bomb(9), id="top-level"),
        pytest.param(
            "args",
            "schedules:\n  - id: s\n    task: t\n    interval: {seconds: 5}\n"
            "    args:\n" + alias_bomb(9, indent="      "),
            id="schedule-arguments",
        ),
    ],
)
def test_an_alias_bomb_is_refused_in_one_line_before_it_expands(
    where: str, text: str, write_config: Callable[[str], str]
) -> None:
    # 10**9 values once expanded; refused as soon as a node passes the cap.
    message = error_for(text, write_config)
    assert message.startswith("config.yaml: line "), message
    assert message.endswith(
        f"invalid YAML: more than {MAX_CONFIG_NODES} values with its aliases expanded"
    )
    assert "\n" not in message


def test_aliases_nesting_past_the_depth_cap_are_refused(
    write_config: Callable[[str], str],
) -> None:
    # Each anchor nests the one before one level deeper: 40 levels, none in text.
    lines = ["d0: &d0 [x]"] + [f"d{n}: &d{n} [*d{n - 1}]" for n in range(1, 40)]
    message = error_for("\n".join(lines) + "\n", write_config)
    assert message.endswith(
        f"nested deeper than {MAX_CONFIG_DEPTH} levels with its aliases expanded"
    ), message


def test_an_alias_inside_its_own_anchor_is_refused(
    write_config: Callable[[str], str],
) -> None:
    text = "schedules:\n  - &s {id: s, task: t, interval: {seconds: 5}, args: *s}\n"
    assert error_for(text, write_config) == (
        "config.yaml: line 2, column 55: invalid YAML: an alias inside its own "
        "anchor: endless"
    )


def test_aliases_that_expand_within_the_caps_load_as_written(
    write_config: Callable[[str], str],
) -> None:
    # 10**4 values expanded: an anchor used many times is fine in itself.
    text = (
        "schedules:\n  - id: s\n    task: t\n    interval: {seconds: 5}\n"
        "    args:\n" + alias_bomb(4, indent="      ")
    )
    config = load_config(write_config(text))
    (entry,) = config.schedules
    assert entry.args is not None
    assert entry.args["l3"][9][9][9][9] == "lol"


def test_a_file_larger_than_the_cap_is_refused_unparsed(
    write_config: Callable[[str], str],
) -> None:
    text = "# " + "x" * MAX_CONFIG_BYTES + "\n"
    assert error_for(text, write_config) == (
        f"config.yaml: larger than {MAX_CONFIG_BYTES} bytes: not a config file"
    )


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
@pytest.mark.parametrize(
    "key", ["governors.rate_limit.rate", "handlers.zmq.timeout_seconds"]
)
def test_a_number_that_is_not_finite_is_refused(
    key: str, value: str, write_config: Callable[[str], str]
) -> None:
    section, subsection, name = key.split(".")
    text = f"{section}:\n  {subsection}:\n    {name}: {value}\n"
    assert error_for(text, write_config).startswith(
        f"config.yaml: {key}: expected a number > 0, got "
    )


@pytest.mark.parametrize("days", [MAX_RETENTION_DAYS + 1, 10**30])
def test_a_retention_too_long_for_a_date_is_refused(
    days: int, write_config: Callable[[str], str]
) -> None:
    text = f"reporting:\n  metrics:\n    retention_days: {days}\n"
    assert error_for(text, write_config) == (
        "config.yaml: reporting.metrics.retention_days: expected an integer "
        f"from 1 to {MAX_RETENTION_DAYS}, got {days}"
    )
