"""Named queries of the outbox."""

from pathlib import Path

import aiosql

QUERIES = aiosql.from_path(Path(__file__).with_name("sql"), "apsycopg", mandatory_parameters=False)
