"""A throwaway PostgreSQL server, for tests and benchmarks of the PostgreSQL store.

It runs the PostgreSQL binaries of the machine (``initdb``, ``pg_ctl``) in a
temporary folder, on a free port of 127.0.0.1, with trust authentication, and is
stopped ``-m immediate`` and removed at the end: nothing of it outlives the
process. PostgreSQL refuses to run as root: as root, the server runs as the
``postgres`` user (Debian's package makes it), or as ``sz-pg``, made with
``useradd`` when neither exists.

The binaries are looked for in ``$SZ_PG_BIN``, then ``pg_config --bindir``, then
Debian's ``/usr/lib/postgresql/<version>/bin`` (newest first). Everything here
blocks (it runs processes): call it from a thread, or before the event loop.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PgServer", "find_binaries", "throwaway_server"]

#: The user a server runs as when the process is root and ``postgres`` is missing.
SYSTEM_USER = "sz-pg"

#: The superuser the cluster is made with (trust authentication: no password).
SUPERUSER = "sz"

#: Seconds ``pg_ctl`` waits for the server to start.
START_TIMEOUT = 60


class NoServer(Exception):
    """PostgreSQL's binaries are not on this machine (the message says where not)."""


def find_binaries() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``.

    Raises:
        NoServer: None is found; the message names the places looked at.
    """
    looked: list[str] = []
    candidates: list[Path] = []
    override = os.environ.get("SZ_PG_BIN")
    if override:
        candidates.append(Path(override))
    else:
        pg_config = shutil.which("pg_config")
        if pg_config is not None:
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                bindir = subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, check=True
                ).stdout.strip()
                candidates.append(Path(bindir))
        debian = Path("/usr/lib/postgresql")
        if debian.is_dir():
            versions = sorted(
                (p for p in debian.iterdir() if p.name.isdigit()),
                key=lambda p: int(p.name),
                reverse=True,
            )
            candidates.extend(p / "bin" for p in versions)
    for folder in candidates:
        looked.append(str(folder))
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    where = ", ".join(looked) or "no candidate folder"
    raise NoServer(
        f"PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not found "
        f"(looked in: {where}); install Debian's 'postgresql' package, or set "
        f"SZ_PG_BIN to their folder"
    )


def _server_user() -> str | None:
    """Whom to run the server as: None for this process's own user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SYSTEM_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
         SYSTEM_USER],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return SYSTEM_USER


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PgServer:
    """A running throwaway server: its URLs, and databases made on it.

    Attributes:
        folder: The temporary folder holding the cluster, its socket and its log.
        port: The TCP port on 127.0.0.1.
    """

    def __init__(self, bindir: Path, folder: Path, port: int, user: str | None):
        self.bindir = bindir
        self.folder = folder
        self.port = port
        self._user = user
        self._made = 0
        self._options: list[str] = []

    def url(self, database: str = "postgres") -> str:
        """The ``postgresql://`` URL of one of its databases."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Make an empty database; return its URL. Named ``t<n>`` by default."""
        if name is None:
            self._made += 1
            name = f"t{self._made}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url`` (``create_database``'s), ending its sessions.

        Raises:
            RuntimeError: ``psql`` failed.
        """
        name = url.rsplit("/", 1)[-1].split("?", 1)[0]
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with ``psql``; return what it printed (unaligned)."""
        done = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url(database),
                "-c",
                statement,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {done.stderr.strip()}")
        return done.stdout

    def log(self) -> str:
        """The server's log so far (to explain a failure)."""
        try:
            return (self.folder / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def _as_user(self, argv: list[str]) -> list[str]:
        if self._user is None:
            return argv
        return ["runuser", "-u", self._user, "--", *argv]

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(self._as_user(argv), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n{self.log()}"
            )

    def start(self, *, durable: bool) -> None:
        """Make the cluster and start the server (``throwaway_server`` does)."""
        data = self.folder / "data"
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                *([] if durable else ["--no-sync"]),
            ]
        )
        self._options = options = [
            f"-p {self.port}",
            f"-k {self.folder}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
        ]
        if not durable:
            # A test's server dies with the test: durability costs it time only.
            options += ["-c fsync=off", "-c full_page_writes=off"]
        self.resume()

    def resume(self) -> None:
        """Start the server again after ``stop`` (same folder, same port)."""
        data = self.folder / "data"
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.folder / "server.log"),
                "-o",
                " ".join(self._options),
                "-t",
                str(START_TIMEOUT),
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        """Stop at once (``-m immediate``): what it held is thrown away anyway."""
        with contextlib.suppress(RuntimeError):
            self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.folder / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ]
            )


@contextlib.contextmanager
def throwaway_server(*, durable: bool = False) -> Iterator[PgServer]:
    """Start a server in a temporary folder; stop it and remove the folder after.

    Args:
        durable: Keep PostgreSQL's fsync and full-page writes (False by default:
            a test's server is thrown away, and they cost it time only); a
            benchmark measures with them on.

    Raises:
        NoServer: PostgreSQL's binaries are not on this machine.
        RuntimeError: ``initdb`` or ``pg_ctl`` failed (with the server's log).
    """
    bindir = find_binaries()
    user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="sz-pg-"))
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        server = PgServer(bindir, folder, _free_port(), user)
        server.start(durable=durable)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
