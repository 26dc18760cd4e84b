"""The names ``web`` promises its users, and the layers it keeps."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib import metadata

import web

PUBLIC = {"ACCESS", "GatewaySettings", "SchedulerAccess", "make_app", "serve"}


def test_all_lists_exactly_the_public_names() -> None:
    assert len(web.__all__) == len(set(web.__all__))
    assert set(web.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(web, name) is not None


def test_serve_takes_the_scheduler_and_optional_settings() -> None:
    parameters = inspect.signature(web.serve).parameters
    assert list(parameters) == ["scheduler", "settings", "extra_routes"]
    assert parameters["settings"].default is None
    assert parameters["extra_routes"].kind is inspect.Parameter.KEYWORD_ONLY


def test_the_sz_command_is_the_one_that_serves_the_gateway() -> None:
    [script] = [
        e for e in metadata.entry_points(group="console_scripts") if e.name == "sz"
    ]
    assert script.value == "web.cli:main"


def test_importing_sz_leaves_aiohttp_and_web_unimported() -> None:
    # The layers: the scheduler's users pay nothing for the gateway.
    code = "import sys, sz; print('aiohttp' in sys.modules, 'web' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]
