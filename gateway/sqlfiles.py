"""The gateway's named queries (device health), loaded once from the `.sql` files beside this module."""

from pathlib import Path

import aiosql

QUERIES = aiosql.from_path(Path(__file__).with_name("sql"), "apsycopg", mandatory_parameters=False)
