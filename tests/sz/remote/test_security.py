"""CURVE end to end: the broker admits listed keys only, each under its own name."""

from __future__ import annotations

import re
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import attrs
import pytest
import yaml

from actors import Backoff
from sz import (
    BrokerSettings,
    HandlerStatus,
    NoHealthyHandler,
    ScheduleZero,
    SzError,
    ZMQHandler,
)
from sz.cli import main
from sz.config import load_config
from transport import generate_keys, load_public_key, load_secret_key

from .conftest import ANY_PORT, eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

HANG = 10

#: How long a worker that must never register is watched: the one bounded wait
#: for something not to happen.
NEVER = 1.5

#: Reconnect quickly after a refusal, so that a refused worker tries again often.
QUICK = Backoff(min=0.05, max=0.1, jitter=0)


@attrs.frozen
class Keys:
    """Key files made by ``generate_keys``: the broker's, and per worker."""

    folder: Path

    def public(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    def secret(self, name: str) -> Path:
        return self.folder / f"{name}.key_secret"


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    for name in ("server", "w1", "w2", "stranger"):
        generate_keys(tmp_path, name)
    return Keys(tmp_path)


def settings(keys: Keys, endpoint: str = "tcp://127.0.0.1:*") -> BrokerSettings:
    """The broker's secret key; w1's and w2's public keys listed under their names."""
    _, secret = load_secret_key(keys.secret("server"))
    return BrokerSettings(
        endpoint=endpoint,
        secret_key=secret,
        workers={load_public_key(keys.public(name)): name for name in ("w1", "w2")},
    )


async def worker(
    endpoint: str, keys: Keys, *, name: str, key: str, calls: list[str] | None = None
) -> ZMQHandler:
    """A worker called ``name`` proving itself with ``key``'s secret key."""
    # It reads its key files as it is made: not on the event loop.
    handler = await anyio.to_thread.run_sync(
        lambda: ZMQHandler(
            endpoint,
            name=name,
            key=keys.secret(key),
            server_key=keys.public("server"),
            backoff=QUICK,
        )
    )

    @handler.task
    async def whoami() -> str:
        if calls is not None:
            calls.append(name)
        return name

    return handler


@pytest.fixture
def curve_settings(keys: Keys) -> BrokerSettings:
    return settings(keys)


@pytest.fixture
async def curve_scheduler(
    curve_settings: BrokerSettings,
) -> AsyncIterator[tuple[ScheduleZero, str]]:
    async with ScheduleZero(store="memory", broker=curve_settings) as sz:
        endpoint, _ = await sz.broker()
        yield sz, endpoint


async def names(sz: ScheduleZero) -> list[str]:
    return [status.name for status in await sz.handlers()]


async def registered(sz: ScheduleZero, name: str) -> HandlerStatus:
    async def listed() -> bool:
        return name in await names(sz)

    await eventually(listed, what=f"{name} registers")
    (status,) = [s for s in await sz.handlers() if s.name == name]
    return status


async def test_a_worker_with_a_listed_key_registers_and_runs_jobs(
    keys: Keys, curve_scheduler: tuple[ScheduleZero, str]
) -> None:
    sz, endpoint = curve_scheduler
    handler = await worker(endpoint, keys, name="w1", key="w1")
    async with anyio.create_task_group() as tg:
        tg.start_soon(handler.serve)
        status = await registered(sz, "w1")
        assert (status.kind, status.tasks) == ("remote", ("whoami",))
        assert await sz.run_now("whoami", timeout=HANG) == "w1"
        tg.cancel_scope.cancel()
    _, counts = await sz.broker()
    assert (counts.registered, counts.refused) == (1, 0)


async def test_a_worker_with_an_unlisted_key_never_registers_nor_gets_a_job(
    keys: Keys, curve_scheduler: tuple[ScheduleZero, str]
) -> None:
    sz, endpoint = curve_scheduler
    calls: list[str] = []
    # It claims a listed name: the key, not the name, is what the broker checks.
    handler = await worker(endpoint, keys, name="w1", key="stranger", calls=calls)
    async with anyio.create_task_group() as tg:
        tg.start_soon(handler.serve)
        # The job waits NEVER seconds for a handler; none comes.
        with pytest.raises(NoHealthyHandler):
            await sz.run_now("whoami", timeout=NEVER)
        assert await names(sz) == []
        tg.cancel_scope.cancel()
    assert calls == []
    assert handler.registrations == 0
    _, counts = await sz.broker()
    # Refused in the handshake: the broker never saw a message from it, but
    # counts the refusals (the worker retries) for the operator to see.
    assert (counts.registered, counts.refused, counts.unknown_peer) == (0, 0, 0)
    assert (counts.malformed, counts.jobs_sent) == (0, 0)
    assert counts.handshakes_refused >= 1


async def test_a_listed_key_claiming_another_listed_workers_name_is_refused(
    keys: Keys,
    curve_scheduler: tuple[ScheduleZero, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sz, endpoint = curve_scheduler
    calls: list[str] = []
    impostor = await worker(endpoint, keys, name="w2", key="w1", calls=calls)
    async with anyio.create_task_group() as tg:
        tg.start_soon(impostor.serve)

        async def refused_twice() -> bool:
            _, counts = await sz.broker()
            return counts.refused >= 2

        # Refused, it tries again after its backoff, and is refused again.
        await eventually(refused_twice, what="the impostor is refused twice")
        assert await names(sz) == []
        # The real w2 registers, and the jobs are its own.
        real = await worker(endpoint, keys, name="w2", key="w2")
        tg.start_soon(real.serve)
        await registered(sz, "w2")
        for _ in range(3):
            assert await sz.run_now("whoami", timeout=HANG) == "w2"
        tg.cancel_scope.cancel()
    assert calls == []
    _, counts = await sz.broker()
    assert counts.registered == 1
    refusals = {r.getMessage() for r in caplog.records if r.name == "sz.broker"}
    assert "refused worker 'w2': its key is listed for 'w1', not 'w2'" in refusals


# ------------------------------------------------------------------ config


def curve_config(
    tmp_path: Path, endpoint: str, server_secret: Path, **workers: Path
) -> Path:
    """A config.yaml: distributed mode, CURVE with these key files."""
    config = {
        "scheduler": {"mode": "distributed"},
        "handlers": {
            "zmq": {
                "registration_server": endpoint,
                "curve": {
                    "server_secret_key": str(server_secret),
                    "workers": {name: str(path) for name, path in workers.items()},
                },
            }
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def test_a_distributed_config_with_curve_builds_a_broker_that_checks_keys(
    tmp_path: Path, keys: Keys, curve_settings: BrokerSettings
) -> None:
    path = await anyio.to_thread.run_sync(
        lambda: curve_config(
            tmp_path, ANY_PORT, keys.secret("server"), w1=keys.public("w1")
        )
    )
    config = await anyio.to_thread.run_sync(load_config, path)
    broker = await anyio.to_thread.run_sync(
        BrokerSettings.from_config, config.handlers.zmq
    )
    assert broker.endpoint == ANY_PORT
    assert broker.secret_key == curve_settings.secret_key
    (w1_public,) = [key for key, name in curve_settings.workers.items() if name == "w1"]
    assert dict(broker.workers) == {w1_public: "w1"}
    sz = await anyio.to_thread.run_sync(
        lambda: ScheduleZero(config=config, store="memory")
    )
    async with sz:
        endpoint, _ = await sz.broker()
        good = await worker(endpoint, keys, name="w1", key="w1")
        async with anyio.create_task_group() as tg:
            tg.start_soon(good.serve)
            await registered(sz, "w1")
            assert await sz.run_now("whoami", timeout=HANG) == "w1"
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("which", ["server", "worker"])
def test_a_missing_curve_key_file_is_an_error_naming_the_file(
    tmp_path: Path, keys: Keys, which: str
) -> None:
    missing = tmp_path / "nowhere" / f"{which}.key"
    path = curve_config(
        tmp_path,
        ANY_PORT,
        missing if which == "server" else keys.secret("server"),
        w1=missing if which == "worker" else keys.public("w1"),
    )
    config = load_config(path)
    with pytest.raises(SzError) as raised:
        BrokerSettings.from_config(config.handlers.zmq)
    assert str(raised.value).startswith("handlers.zmq.curve: ")
    assert str(missing) in str(raised.value)
    # The scheduler reads them as it is made: the same error, before anything runs.
    with pytest.raises(SzError, match=re.escape(str(missing))):
        ScheduleZero(config=config, store="memory")


def test_a_public_key_file_given_as_the_servers_secret_key_is_an_error(
    tmp_path: Path, keys: Keys
) -> None:
    config_path = curve_config(
        tmp_path, ANY_PORT, keys.secret("server"), w1=keys.public("w1")
    )
    config = load_config(config_path)
    curve = config.handlers.zmq.curve
    assert curve is not None
    wrong = attrs.evolve(curve, server_secret_key=str(keys.public("server")))
    zmq_config = attrs.evolve(config.handlers.zmq, curve=wrong)
    with pytest.raises(SzError, match="holds no secret key") as raised:
        BrokerSettings.from_config(zmq_config)
    assert str(keys.public("server")) in str(raised.value)


def test_a_worker_with_a_missing_key_file_is_an_error_naming_it(
    tmp_path: Path, keys: Keys
) -> None:
    missing = tmp_path / "w9.key_secret"
    with pytest.raises(SzError, match=re.escape(str(missing))):
        ZMQHandler(key=missing, server_key=keys.public("server"))
    with pytest.raises(SzError, match="both"):
        ZMQHandler(key=keys.secret("w1"))


# ----------------------------------------------------------- sz keys generate


def run_sz(argv: list[str]) -> int:
    """``sz ARGV`` in this process: its exit code."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    code = exited.value.code
    assert isinstance(code, int)
    return code


def test_sz_keys_generate_writes_a_key_pair_with_a_private_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "keys"
    assert run_sz(["keys", "generate", "w9", "--dir", str(folder)]) == 0
    public, secret = folder / "w9.key", folder / "w9.key_secret"
    out = capsys.readouterr().out
    assert str(public) in out
    assert str(secret) in out
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # The pair is a pair, and the files are what the broker and workers read.
    assert load_secret_key(secret)[0] == load_public_key(public)


@pytest.mark.parametrize("existing", ["w9.key", "w9.key_secret"])
def test_sz_keys_generate_never_overwrites_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], existing: str
) -> None:
    (tmp_path / existing).write_text("precious")
    assert run_sz(["keys", "generate", "w9", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sz keys: ")
    assert str(tmp_path / existing) in err
    assert "never overwritten" in err
    assert (tmp_path / existing).read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_sz_keys_generate_refuses_a_name_that_is_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_sz(["keys", "generate", "../w9", "--dir", str(tmp_path)]) == 2
    assert "'../w9'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert list(tmp_path.parent.glob("w9.key*")) == []


async def test_python_m_sz_keys_generate_runs_as_a_command(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sz", "keys", "generate", "w9", "--dir"]
    result = await anyio.run_process([*command, str(tmp_path)], check=False)
    assert result.returncode == 0, result.stderr.decode()
    again = await anyio.run_process([*command, str(tmp_path)], check=False)
    assert again.returncode == 2
    assert f"{tmp_path / 'w9.key'} exists" in again.stderr.decode()
