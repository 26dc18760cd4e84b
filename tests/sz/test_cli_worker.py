"""``sz worker``: bad arguments exit 2 naming the problem; which functions it serves."""

from __future__ import annotations

import sys
import textwrap
import types
from typing import TYPE_CHECKING

import anyio
import pytest

from sz import SzError
from sz.cli import main, public_functions

if TYPE_CHECKING:
    from pathlib import Path

#: A module as a user might write one: its own functions, and other things.
SOURCE = textwrap.dedent(
    """
    import json
    from os.path import join

    LIMIT = 3


    class Mailer:
        def send(self) -> None: ...


    def send_email(to: str) -> str:
        return to


    async def fetch(url: str) -> str:
        return url


    def _helper() -> None: ...
    """
)


def make_module(name: str, source: str = SOURCE) -> types.ModuleType:
    """A module ``name`` built from ``source`` (its functions' ``__module__`` is it)."""
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


@pytest.fixture
def jobs_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """``myjobs``, importable for the length of the test."""
    module = make_module("myjobs")
    monkeypatch.setitem(sys.modules, "myjobs", module)
    return module


@pytest.fixture(autouse=True)
def _keep_sys_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``sz worker`` puts the working directory on sys.path, as ``python -m`` does."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)


def sz_worker(*argv: str) -> int:
    """``sz worker ARGV`` in this process: its exit code."""
    with pytest.raises(SystemExit) as exited:
        main(["worker", *argv])
    code = exited.value.code
    assert isinstance(code, int)
    return code


ENDPOINT = "tcp://127.0.0.1:5999"


# ----------------------------------------------------------- bad arguments


@pytest.mark.usefixtures("jobs_module")
@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        pytest.param(
            ["--capacity", "0"],
            "argument --capacity: expected a number >= 1, got '0'",
            id="capacity-zero",
        ),
        pytest.param(
            ["--capacity", "-2"],
            "argument --capacity: expected a number >= 1, got '-2'",
            id="capacity-negative",
        ),
        pytest.param(
            ["--capacity", "many"],
            "argument --capacity: expected a whole number, got 'many'",
            id="capacity-not-a-number",
        ),
        pytest.param(
            ["--capacity", "1.5"],
            "argument --capacity: expected a whole number, got '1.5'",
            id="capacity-fractional",
        ),
        pytest.param(
            ["--heartbeat", "0"],
            "argument --heartbeat: expected a number > 0, got '0'",
            id="heartbeat-zero",
        ),
        pytest.param(
            ["--max-message-bytes", "0"],
            "argument --max-message-bytes: expected a number >= 1, got '0'",
            id="max-message-bytes-zero",
        ),
        pytest.param(
            ["--backend", "curio"],
            "argument --backend: invalid choice: 'curio'",
            id="unknown-backend",
        ),
        pytest.param(
            ["--tasks", " , "],
            "argument --tasks/--methods: expected names separated by commas",
            id="tasks-empty",
        ),
    ],
)
def test_sz_worker_rejects_a_bad_option_with_exit_code_two_naming_it(
    capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    assert sz_worker(ENDPOINT, "myjobs", *argv) == 2
    assert complaint in capsys.readouterr().err


def test_sz_worker_names_a_module_it_cannot_import(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sz_worker(ENDPOINT, "no_such_module_here") == 2
    err = capsys.readouterr().err
    assert err.startswith("sz worker: cannot import no_such_module_here: ")
    assert "No module named 'no_such_module_here'" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("jobs_module")
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("LIMIT", id="a-constant"),
        pytest.param("Mailer", id="a-class"),
        pytest.param("json", id="a-module"),
        pytest.param("nothing_by_that_name", id="missing"),
    ],
)
# --methods is the roadmap's spelling of --tasks: the same option.
@pytest.mark.parametrize("flag", ["--tasks", "--methods"])
def test_sz_worker_tasks_must_name_functions_of_the_module(
    capsys: pytest.CaptureFixture[str], name: str, flag: str
) -> None:
    assert sz_worker(ENDPOINT, "myjobs", flag, f"send_email,{name}") == 2
    err = capsys.readouterr().err
    assert err.strip() == f"sz worker: myjobs.{name} is not a function"


def test_sz_worker_refuses_a_module_with_no_public_function(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = make_module("emptyjobs", "from os.path import join\n\ndef _private(): ...")
    monkeypatch.setitem(sys.modules, "emptyjobs", empty)
    assert sz_worker(ENDPOINT, "emptyjobs") == 2
    err = capsys.readouterr().err
    assert err.strip() == "sz worker: emptyjobs defines no public function to serve"


@pytest.mark.usefixtures("jobs_module")
@pytest.mark.parametrize(
    ("endpoint", "complaint"),
    [
        pytest.param(
            "localhost:5555",
            "expected a ZeroMQ endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME"
            ", got 'localhost:5555'",
            id="no-scheme",
        ),
        pytest.param(
            "tcp://127.0.0.1:99999",
            "expected tcp://HOST:PORT with a port from 1 to 65535, "
            "got 'tcp://127.0.0.1:99999'",
            id="port-out-of-range",
        ),
        pytest.param(
            "tcp://*:5555",
            "expected tcp://HOST:PORT naming the broker's host (* is for binding)",
            id="wildcard-host",
        ),
    ],
)
def test_sz_worker_refuses_an_endpoint_it_could_never_reach_naming_it(
    capsys: pytest.CaptureFixture[str], endpoint: str, complaint: str
) -> None:
    # libzmq would take the bad port and wait forever, and a typo would come
    # up as a crash of the connection actor: the worker says so at once instead.
    assert sz_worker(endpoint, "myjobs") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sz worker: endpoint: {complaint}")
    assert "Traceback" not in err


@pytest.mark.usefixtures("jobs_module")
def test_sz_worker_refuses_a_name_the_broker_would_refuse(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sz_worker(ENDPOINT, "myjobs", "--name", "night shift") == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "sz worker: name: expected 1-128 of A-Z a-z 0-9 _ . : @ -, got 'night shift'"
    )


@pytest.mark.usefixtures("jobs_module")
def test_sz_worker_needs_both_curve_keys_or_neither(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sz_worker(ENDPOINT, "myjobs", "--key", "w1.key_secret") == 2
    assert "CURVE needs both" in capsys.readouterr().err


@pytest.mark.usefixtures("jobs_module")
def test_sz_worker_names_a_missing_key_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--key", "absent.key_secret", "--server-key", "server.key"]
    assert sz_worker(ENDPOINT, "myjobs", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sz worker: absent.key_secret")


async def test_python_m_sz_worker_exits_two_naming_the_module(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sz", "worker", ENDPOINT, "no_such_module_here"]
    result = await anyio.run_process(command, check=False, cwd=tmp_path)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "sz worker: cannot import no_such_module_here" in err
    assert "Traceback" not in err


# -------------------------------------------------------- public_functions


def test_public_functions_are_the_modules_own_public_functions(
    jobs_module: types.ModuleType,
) -> None:
    found = public_functions(jobs_module)
    assert found == {
        "send_email": jobs_module.send_email,
        "fetch": jobs_module.fetch,
    }


def test_public_functions_only_takes_the_named_functions_in_order(
    jobs_module: types.ModuleType,
) -> None:
    found = public_functions(jobs_module, ["fetch", "send_email"])
    assert list(found) == ["fetch", "send_email"]
    assert found["fetch"] is jobs_module.fetch


@pytest.mark.parametrize("name", ["LIMIT", "Mailer", "json", "absent"])
def test_public_functions_only_refuses_what_is_not_a_function(
    jobs_module: types.ModuleType, name: str
) -> None:
    with pytest.raises(SzError, match=f"^myjobs.{name} is not a function$"):
        public_functions(jobs_module, [name])


def test_public_functions_of_a_module_with_none_is_an_error() -> None:
    module = make_module("bare", "import os\nfrom json import dumps\nX = 1\n")
    with pytest.raises(SzError, match="bare defines no public function to serve"):
        public_functions(module)
