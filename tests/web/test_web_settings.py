"""``GatewaySettings``: its defaults, and what the config's ``web`` section makes."""

from __future__ import annotations

import pytest

from sz.config import WebConfig, parse_config
from web import GatewaySettings


def test_the_defaults_listen_on_this_machine_only_without_a_token() -> None:
    settings = GatewaySettings()
    assert (settings.host, settings.port, settings.token) == ("127.0.0.1", 8080, None)
    assert settings.allowed_hosts is None
    assert settings.allow_origins == ()
    assert settings.mutations
    assert settings.max_body_bytes == 65536


def test_from_config_carries_every_key_of_the_web_section() -> None:
    web = parse_config(
        {
            "web": {
                "host": "0.0.0.0",
                "port": 9000,
                "token": "t" * 20,
                "allowed_hosts": ["sz.example.com"],
                "allow_origins": ["https://ops.example.com"],
                "mutations": False,
                "max_body_bytes": 4096,
            }
        }
    ).web
    assert GatewaySettings.from_config(web) == GatewaySettings(
        host="0.0.0.0",
        port=9000,
        token="t" * 20,
        allowed_hosts=("sz.example.com",),
        allow_origins=("https://ops.example.com",),
        mutations=False,
        max_body_bytes=4096,
    )
    assert GatewaySettings.from_config(WebConfig()) == GatewaySettings()


def test_the_default_allowed_hosts_are_this_machines_names_and_the_bind_host() -> None:
    assert GatewaySettings(host="10.0.0.5", token="t" * 16).host_names() == frozenset(
        {
            "localhost",
            "127.0.0.1",
            "::1",
            "10.0.0.5",
        }
    )
    names = GatewaySettings(allowed_hosts=["[::1]", "SZ.example.com"]).host_names()
    assert names == frozenset({"::1", "sz.example.com"})
    assert GatewaySettings(allowed_hosts=["*"]).host_names() is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": 65536}, "port: expected a port from 0 to 65535, got 65536"),
        ({"port": True}, "port: expected a port from 0 to 65535, got True"),
        ({"max_body_bytes": 0}, "max_body_bytes: expected an integer > 0, got 0"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        GatewaySettings(**options)  # type: ignore[arg-type]
