"""Throwaway local services for the tests and benchmarks: a PostgreSQL cluster with TimescaleDB preloaded
and a Mosquitto broker, each on a free loopback port in a temporary folder, removed afterwards.

They never touch a system service that happens to be running. `make system` installs the binaries.
PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` OS user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

# Fast and disposable: durability is not what these clusters are for.
_PG_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "400",
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "timescaledb.telemetry_level": "off",
    # No background scheduler: it would hold connections to template databases and block cloning.
    "timescaledb.max_background_workers": "0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def postgres_bindir() -> Path:
    """The newest Debian PostgreSQL server installed (`make system` installs one)."""
    root = Path("/usr/lib/postgresql")
    majors = sorted((p for p in root.glob("*/bin/postgres")), key=lambda p: int(p.parts[-3]))
    if not majors:
        raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql: run `make system`")
    return majors[-1].parent


class PostgresCluster:
    def __init__(self, *, timescaledb: bool = True) -> None:
        self.timescaledb = timescaledb
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fabhub-pg-"))
        self.data = self.dir / "data"
        self._user = "postgres" if os.geteuid() == 0 else None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, user=self._user, cwd=self.dir)

    def start(self) -> PostgresCluster:
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        settings = dict(_PG_SETTINGS, port=str(self.port), unix_socket_directories=str(self.dir))
        if self.timescaledb:
            settings["shared_preload_libraries"] = "timescaledb"
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = '{value}'\n")
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Mosquitto:
    """A broker with persistence, so a restart keeps QoS 1 sessions as a real one does."""

    def __init__(self, extra: tuple[str, ...] = ()) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed: run `make system`")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fabhub-mqtt-"))
        self._proc: subprocess.Popen | None = None
        conf = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.dir}/",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            conf.append("user root")
        conf.extend(extra)
        (self.dir / "mosquitto.conf").write_text("\n".join(conf) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        log = (self.dir / "log").open("ab")
        # its own session: a Ctrl-C meant for FabHub must not stop the broker before FabHub has let go of it
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.dir / "mosquitto.conf")], stdout=log, stderr=log, start_new_session=True
        )
        _wait_for_port(self.port, 15, "mosquitto", self._proc)
        return self

    def stop(self, *, keep_files: bool = False) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if not keep_files:
            shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self) -> None:
        self.stop(keep_files=True)
        self.start()
