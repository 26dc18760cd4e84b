"""What the dashboard's browser tests stand on: a live ``sz serve`` and Chromium.

These tests run in a pytest process of their own (``make browser``): Playwright's
sync API drives its own event loop, which must not meet the AnyIO tests'. The
main run leaves this folder alone (``tests/conftest.py``).

- ``server``: ``sz serve`` (the console script, so the gateway is on) in a
  distributed config, on a fresh SQLite file, with a remote ``sz worker``
  process connected to its broker; ``token_server``: the same with a token;
  ``read_only_server``: the same with ``web.mutations`` off.
- ``page``: a new page of a headless Debian Chromium (``/usr/bin/chromium``,
  or ``SZ_CHROMIUM``); an error in the page's console fails the test, unless
  the test expected it and removed it from ``page.console_errors``.
- ``shot``: a full-page screenshot under ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from playwright.sync_api import Browser, ConsoleMessage, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("SZ_CHROMIUM", "/usr/bin/chromium")
#: Flags for a closed network: without the background ones, Chromium keeps
#: trying to reach its vendor's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How long a process may take to say it is ready.
START_TIMEOUT = 30.0
TOKEN = "browser-test-token-0123456789"

CONFIG = """\
scheduler: {{mode: distributed, drain_timeout: 2}}
store: {{url: "sqlite:///{db}"}}
handlers:
  builtin:
    - {{module: sz.builtin, methods: [echo, fail, log]}}
  zmq:
    registration_server: tcp://127.0.0.1:*
governors:
  per_method_limits:
    remote_echo: {{rate: 50, burst: 50}}
web: {{enabled: true{token}{mutations}}}
schedules:
  - {{id: tick, task: echo, interval: {{seconds: 1}}, args: {{message: tick}}}}
  - {{id: flaky, task: fail, interval: {{seconds: 2}}, args: {{probability: 1.0}}}}
  - {{id: remote-tick, task: remote_echo, interval: {{seconds: 1}}, args: {{value: 1}}}}
  - {{id: remote-flaky, task: remote_fail, interval: {{seconds: 3}}}}
  - {{id: hourly, task: echo, interval: {{hours: 1}}}}
"""

TASKS = '''\
"""Tasks the browser tests' remote worker serves."""


async def remote_echo(value=None):
    return value


async def remote_fail():
    raise ValueError("remote failure on purpose")
'''


class Server:
    """A running ``sz serve`` with a remote worker, as the tests reach it.

    Attributes:
        url: The gateway's base URL, ``http://127.0.0.1:PORT``.
        token: Its token, or None.
        log: The lines ``sz serve`` has printed so far.
        worker_log: The lines the worker has printed so far.
    """

    def __init__(self, url: str, token: str | None, log: list[str]) -> None:
        self.url = url
        self.token = token
        self.log = log
        self.worker_log: list[str] = []

    def api(self, method: str, path: str, json_body: Any = None) -> Any:
        """Call ``path`` of the JSON API; the parsed answer.

        Raises:
            AssertionError: The answer's status is 400 or more.
        """
        data = None if json_body is None else json.dumps(json_body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = answer.read()
        except urllib.error.HTTPError as error:
            raise AssertionError(
                f"{method} {path}: {error.code} {error.read().decode(errors='replace')}"
            ) from None
        return json.loads(body) if body else None

    def wait_for(
        self, check: Callable[[], Any], what: str, timeout: float = 20.0
    ) -> Any:
        """Poll ``check`` until it returns something true; that value.

        Raises:
            AssertionError: ``timeout`` passed first, naming ``what``.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s")
            time.sleep(0.05)


class _Log:
    """Collects a process's stderr lines on a thread, and waits for one."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._thread = threading.Thread(target=self._read, args=(process,))
        self._thread.daemon = True
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        process.stderr.close()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def join(self) -> None:
        """Wait until the process's stderr has ended (it has exited)."""
        self._thread.join(timeout=START_TIMEOUT)

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first match of ``pattern`` in a line, waiting for it to be printed."""
        deadline = time.monotonic() + START_TIMEOUT
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if found := re.search(pattern, line):
                        return found
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    log = "\n".join(self.lines)
                    raise AssertionError(f"no line matched {pattern!r}:\n{log}")
                self._changed.wait(left)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(tmp: Path, token: str | None, *, mutations: bool = True) -> Iterator[Server]:
    (tmp / "tasks.py").write_text(TASKS)
    (tmp / "config.yaml").write_text(
        CONFIG.format(
            db=tmp / "sz.db",
            token="" if token is None else f", token: {token}",
            mutations="" if mutations else ", mutations: false",
        )
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(tmp)}
    sz = Path(sys.executable).with_name("sz")
    serve = subprocess.Popen(
        [str(sz), "serve", "-c", "config.yaml", "--web", "127.0.0.1:0"],
        cwd=tmp,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker: subprocess.Popen[str] | None = None
    serve_log = _Log(serve)
    try:
        url = serve_log.wait_for(r"dashboard: (http://\S+?)/?$").group(1)
        endpoint = serve_log.wait_for(r"broker listening on (tcp://\S+)").group(1)
        worker = subprocess.Popen(
            [str(sz), "worker", endpoint, "tasks", "--name", "remote-1"],
            cwd=tmp,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        worker_log = _Log(worker)  # before anything may fail: it closes the pipe
        server = Server(url, token, serve_log.lines)
        server.worker_log = worker_log.lines
        server.wait_for(
            lambda: any(
                h["name"] == "remote-1" for h in server.api("GET", "/api/handlers")
            ),
            "the remote worker registered",
        )
        yield server
    finally:
        if worker is not None:
            _stop(worker)
            worker_log.join()
        _stop(serve)
        serve_log.join()
    if serve.returncode != 0:
        log = "\n".join(serve_log.lines)
        pytest.fail(f"sz serve ended with exit code {serve.returncode}:\n{log}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running ``sz serve`` with a remote worker, no token."""
    yield from _start(tmp_path_factory.mktemp("serve"), None)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running ``sz serve`` with a remote worker and ``web.token`` set."""
    yield from _start(tmp_path_factory.mktemp("serve-token"), TOKEN)


@pytest.fixture(scope="module")
def read_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running ``sz serve`` with a remote worker and ``web.mutations`` off."""
    yield from _start(tmp_path_factory.mktemp("serve-read-only"), None, mutations=False)


@pytest.fixture(autouse=True)
def blockbuster() -> None:
    """No blocking-call guard here: these tests run no event loop of their own.

    Playwright's sync API runs its loop between the test's own blocking calls
    (HTTP requests, polling), which the guard of ``tests/conftest.py`` would
    take for calls made on that loop.
    """


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium, Debian's, for the whole run."""
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's chromium package "
            "(make browser-deps) or set SZ_CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in a context of its own; console errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A page opened on an API URL makes Chromium ask for /favicon.ico.
        if message.type == "error" and not message.location.get("url", "").endswith(
            "/favicon.ico"
        ):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.console_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()
    assert not errors, f"the page's console had errors: {errors}"


@pytest.fixture
def shot() -> Callable[[Page, str], Path]:
    """Save a full-page screenshot as ``test-artifacts/browser/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
