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
    """A loopback port nobody listens on now. Racy by nature: the port is free again once this returns, and
    another process may take it first. Prefer `listening_socket()` where a server takes a socket, or port 0
    where it reports the port it got; a server that needs a number retries on `port_taken` (see below)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a port the kernel picked and already listening, so the port is held until the server
    it is handed to (uvicorn's `serve(sockets=[...])`, asyncio's `start_server(sock=...)`) closes it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


PORT_ATTEMPTS = 5


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _port_taken(log: Path) -> bool:
    """Whether a server's log says its port was taken between free_port() and its bind."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    return "Address already in use" in text or "could not bind" in text


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
    def __init__(self, *, timescaledb: bool = True, settings: dict[str, str] | None = None) -> None:
        """`settings` go to postgresql.conf after the defaults (a benchmark's track_commit_timestamp)."""
        self.timescaledb = timescaledb
        self.settings = settings or {}
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
        settings = dict(_PG_SETTINGS, unix_socket_directories=str(self.dir))
        if self.timescaledb:
            settings["shared_preload_libraries"] = "timescaledb"
        settings.update(self.settings)
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = '{value}'\n")
        # PostgreSQL needs a port number, so one from free_port() may be taken before it binds: then another.
        log = self.dir / "log"
        for attempt in range(PORT_ATTEMPTS):
            with (self.data / "postgresql.auto.conf").open("a") as conf:
                conf.write(f"port = '{self.port}'\n")  # the last line wins
            log.unlink(missing_ok=True)
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "start")
                return self
            except subprocess.CalledProcessError:
                if attempt == PORT_ATTEMPTS - 1 or not _port_taken(log):
                    raise
                self.port = free_port()
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
        self._started = False
        self._extra = extra
        self._configure()

    def _configure(self) -> None:
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
        conf.extend(self._extra)
        (self.dir / "mosquitto.conf").write_text("\n".join(conf) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The running broker's process (a benchmark counts its CPU)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Mosquitto:
        """Mosquitto needs a port number, so one from free_port() may be taken before it binds: the first
        start then moves to another; a restart keeps its port, as the sessions of its clients expect."""
        log_path = self.dir / "log"
        for attempt in range(1 if self._started else PORT_ATTEMPTS):
            if not self._started and _listening(self.port):
                self.port = free_port()
                self._configure()
                continue
            with log_path.open("ab") as log:
                # its own session: a Ctrl-C meant for FabHub must not stop the broker before FabHub let go of it
                self._proc = subprocess.Popen(
                    [self.binary, "-c", str(self.dir / "mosquitto.conf")],
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            try:
                _wait_for_port(self.port, 15, "mosquitto", self._proc)
                time.sleep(0.05)  # a broker that lost the port to another process exits at once
                if self._proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited with code {self._proc.returncode}")
            except RuntimeError:
                if self._started or attempt == PORT_ATTEMPTS - 1 or not _port_taken(log_path):
                    raise
                self.port = free_port()
                self._configure()
                continue
            self._started = True
            return self
        raise RuntimeError(f"mosquitto found no free port in {PORT_ATTEMPTS} attempts")

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
